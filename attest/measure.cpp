#include "attest/measure.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <optional>

#include "tpm/pcr.hpp"
#include "tpm/tpm.hpp"
#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "base/sha256.hpp"

namespace trustme::attest {
namespace {

std::string sha256_hex(std::string_view data) {
    Sha256 h;
    h.update(data);
    return Sha256::hex(h.finish());
}

bool is_hex_sha256(const std::string& s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string readlink_str(const std::string& p) {
    char buf[PATH_MAX];
    ssize_t n = ::readlink(p.c_str(), buf, sizeof buf - 1);
    if (n < 0) return {};
    return std::string(buf, static_cast<size_t>(n));
}

std::string now_rfc3339() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

bool parent_is_trustme_runtime() {
    std::string self = readlink_str("/proc/self/exe");
    auto slash = self.rfind('/');
    if (self.empty() || slash == std::string::npos) return false;
    // Compare the files, not the names: trustme-runtime re-executes itself from a read-only detached
    // mount of its binary (CVE-2019-5736 protection), so /proc/<ppid>/exe does not read as its path,
    // but it is the same inode on the same filesystem.
    // The runtime is the static trustme-runtime next to us, or its dynamically linked twin, which runs the
    // commands that load trust plugins (a cold verification among them): lib/trustme/trustme-runtime-full.
    struct stat parent {};
    if (::stat(("/proc/" + std::to_string(::getppid()) + "/exe").c_str(), &parent) != 0) return false;
    const std::string dir = self.substr(0, slash);
    for (const std::string& runtime_path : {dir + "/trustme-runtime", dir + "/../lib/trustme/trustme-runtime-full"}) {
        struct stat runtime {};
        if (::stat(runtime_path.c_str(), &runtime) == 0 && parent.st_dev == runtime.st_dev &&
            parent.st_ino == runtime.st_ino)
            return true;
    }
    return false;
}

BundleMeasurement measure_bundle(const nlohmann::json& state, bool trust_annotations,
                                 const ManifestDigestFn& manifest_digest) {
    if (!state.is_object()) fail("OCI state: not a JSON object");
    if (!state.contains("bundle") || !state["bundle"].is_string() || state["bundle"].get<std::string>().empty())
        fail("OCI state: bundle: missing or not a string");
    std::string bundle = state["bundle"].get<std::string>();
    UniqueFd bfd(::open(bundle.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!bfd) fail_errno("bundle " + bundle);
    std::string config = read_file_at(bfd.get(), "config.json");

    BundleMeasurement m;
    m.config_sha256 = sha256_hex(config);

    nlohmann::json ann = state.value("annotations", nlohmann::json::object());
    if (!ann.is_object()) fail("OCI state: annotations: not an object");
    if (trust_annotations && ann.contains(kAnnManifest)) {
        auto str = [&](const char* k) {
            if (!ann.contains(k)) return std::string();
            if (!ann[k].is_string()) fail(std::string("OCI state: annotations.") + k + ": not a string");
            return ann[k].get<std::string>();
        };
        m.manifest_sha256 = str(kAnnManifest);
        if (!is_hex_sha256(m.manifest_sha256))
            fail(std::string("OCI state: annotations.") + kAnnManifest + ": not a lower-case hex sha256");
        std::string cfg = str(kAnnConfig);
        // The runtime verified this config; a different one now means it changed since.
        if (!cfg.empty() && cfg != m.config_sha256)
            fail("bundle " + bundle + ": config.json differs from the one the runtime verified");
        m.signer = str(kAnnSigner);
        m.source = "runtime-verified";
        return m;
    }

    // Unverified: measure what is actually there, never a manifest file's claim about it.
    std::string root = "rootfs";
    try {
        auto cj = nlohmann::json::parse(config);
        if (cj.contains("root") && cj["root"].is_object() && cj["root"].contains("path") &&
            cj["root"]["path"].is_string())
            root = cj["root"]["path"].get<std::string>();
    } catch (const nlohmann::json::exception& e) {
        fail("bundle " + bundle + ": config.json: not JSON: " + e.what());
    }
    m.source = "computed";
    UniqueFd rfd(::openat(bfd.get(), root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!rfd) fail_errno("bundle " + bundle + ": root.path " + root);
    // Which manifest form to build follows the signer's choice: the embedded manifest covers the rootfs
    // only (engine-generated configs), the bundle manifest covers config.json too.
    bool embedded = ::faccessat(bfd.get(), "trustme.manifest", F_OK, AT_SYMLINK_NOFOLLOW) != 0 &&
                    ::faccessat(rfd.get(), ".trustme/manifest", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
    m.manifest_sha256 = manifest_digest(bfd.get(), rfd.get(), !embedded);
    return m;
}

namespace {

std::vector<uint8_t> extend(const std::vector<uint8_t>& value, const std::vector<uint8_t>& digest) {
    Sha256 h;
    h.update(std::string_view(reinterpret_cast<const char*>(value.data()), value.size()));
    h.update(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
    auto d = h.finish();
    return std::vector<uint8_t>(d.begin(), d.end());
}

// The log's replay for one PCR and epoch, folded record by record from a starting point.
struct Running {
    std::vector<uint8_t> value = std::vector<uint8_t>(32, 0);
    std::vector<uint8_t> before_last;  // value before the last folded record of this PCR and epoch
    const Event* last = nullptr;       // that record, when it was among the folded ones
    uint64_t records = 0;

    void fold(const std::vector<Event>& events, uint32_t pcr, int64_t reset) {
        for (const Event& e : events) {
            records = e.recnum + 1;
            if (e.pcr != pcr || e.reset_count() != reset) continue;
            before_last = value;
            last = &e;
            value = extend(value, e.digest);
        }
    }
};

}  // namespace

MeasureResult measure(const MeasureOptions& opt, const nlohmann::json& state, const BundleMeasurement& m) {
    if (opt.pcr > 23) fail("pcr " + std::to_string(opt.pcr) + ": out of range (0..23)");
    if (!state.contains("id") || !state["id"].is_string() || state["id"].get<std::string>().empty())
        fail("OCI state: id: missing or not a string");
    if (!state.contains("bundle") || !state["bundle"].is_string()) fail("OCI state: bundle: missing or not a string");
    if (opt.log.empty()) fail("event log: no path given");

    const std::string boot = boot_id();
    const std::string path = boot_log_path(opt.log, boot);
    const std::string ckpt_path = Checkpoint::path_for(path);

    // First run of this boot: make sure the TPM answers before creating the log (and its directory), so
    // that a host without a TPM or a wrong TCTI is one error line and nothing left behind. That connection
    // is kept for the measurement when the lock is free at once.
    std::optional<tpm::PcrTpm> t;
    bool first = ::access(path.c_str(), F_OK) != 0;
    if (first) t.emplace(opt.tcti);

    // Lock before opening the TPM: swtpm serves one connection at a time, so a process holding the TPM
    // while waiting for the lock could deadlock with the lock holder. Hence also: never wait for the lock
    // with the TPM open.
    LogFile log(path, LogFile::Mode::Append);
    if (!t || !log.try_lock(true)) {
        t.reset();
        log.lock(true);
    }
    if (first) prune_boot_logs(opt.log, boot, kKeptBoots);

    // Start from the checkpoint and read only what was appended after it (normally nothing): the cost of a
    // start does not grow with the history. Without a usable checkpoint, read the whole log once.
    Checkpoint ck;
    uint64_t size = log.size();
    bool from_ckpt = Checkpoint::load(ckpt_path, &ck) && ck.pcr == opt.pcr && ck.length <= size;
    std::vector<Event> events;
    size_t good = 0;
    if (from_ckpt) {
        try {
            events = log.read_tail(ck.length, &good);
            good += ck.length;
        } catch (const Error&) {
            from_ckpt = false;  // not a record boundary: the checkpoint does not belong to this log
        }
    }
    auto full_scan = [&] {
        events = log.read_tail(0, &good);
        from_ckpt = false;
    };
    if (!from_ckpt) full_scan();
    // A record without its newline was never extended (append precedes extend): drop it.
    if (good < size) log.truncate_to(good);
    if (!t) t.emplace(opt.tcti);

    MeasureResult res;
    int64_t reset = t->reset_count();
    std::vector<uint8_t> current = t->pcr_read(opt.pcr);
    auto replay_now = [&] {
        Running r;
        if (from_ckpt) {
            r.records = ck.records;
            // Another epoch: the TPM was reset since, its PCRs started again from zero.
            if (ck.reset_count == reset) r.value = ck.value;
        }
        r.fold(events, opt.pcr, reset);
        return r;
    };
    Running run = replay_now();
    if (run.value != current && from_ckpt) {
        // The checkpoint and the TPM disagree: trust neither, replay the whole log.
        full_scan();
        run = replay_now();
    }
    if (run.value != current && run.last && run.before_last == current) {
        // Recovery: a previous run appended its record and died before extending. That record is the
        // last one of this PCR and epoch, and the PCR equals the replay without it: extend it now.
        t->pcr_extend(opt.pcr, run.last->digest);
        res.recovered = true;
    }
    // Otherwise a mismatch means the PCR was extended out of band (or the log was edited): nothing here
    // can repair that, and the verifier reports it. Measuring still goes on, so the record of this
    // container is not lost.

    Event& e = res.event;
    e.recnum = run.records;
    e.pcr = opt.pcr;
    e.content = {{"event", "container-create"},
                 {"container_id", state["id"].get<std::string>()},
                 {"bundle", state["bundle"].get<std::string>()},
                 {"manifest_sha256", m.manifest_sha256},
                 {"config_sha256", m.config_sha256},
                 {"signer", m.signer},
                 {"source", m.source},
                 {"time", now_rfc3339()},
                 {"boot_id", boot},
                 {"tpm_reset_count", reset}};
    e.digest = content_digest(e.content);
    // Write-ahead: the record is durable before the PCR moves. A crash in between leaves a record the
    // PCR lacks, which the next run completes (above) and a verifier reports as pending until then.
    size_t rec_len = log.append(e);
    t->pcr_extend(opt.pcr, e.digest);
    Checkpoint next;
    next.reset_count = reset;
    next.pcr = opt.pcr;
    next.value = extend(run.value, e.digest);
    next.records = e.recnum + 1;
    next.length = good + rec_len;
    next.store(ckpt_path);
    return res;
}

}  // namespace trustme::attest
