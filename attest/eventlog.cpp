#include "attest/eventlog.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "tpm/tpm.hpp"
#include "base/sha256.hpp"
#include "base/error.hpp"
#include "base/files.hpp"
#include "base/owned.hpp"

namespace trustme::attest {

nlohmann::json Event::to_json() const {
    return {{"recnum", recnum},
            {"pcr", pcr},
            {"digests", nlohmann::json::array({{{"hashAlg", "sha256"}, {"digest", tpm::to_hex(digest)}}})},
            {"content_type", content_type},
            {"content", content}};
}

Event Event::from_json(const nlohmann::json& j, const std::string& where) {
    auto bad = [&](const std::string& f, const std::string& why) { fail(where + ": " + f + ": " + why); };
    if (!j.is_object()) fail(where + ": not a JSON object");
    for (const char* k : {"recnum", "pcr", "digests", "content_type", "content"})
        if (!j.contains(k)) bad(k, "missing");
    Event e;
    if (!j["recnum"].is_number_unsigned()) bad("recnum", "must be a non-negative integer");
    e.recnum = j["recnum"].get<uint64_t>();
    if (!j["pcr"].is_number_unsigned() || j["pcr"].get<uint64_t>() > 23) bad("pcr", "must be 0..23");
    e.pcr = j["pcr"].get<uint32_t>();
    if (!j["content_type"].is_string()) bad("content_type", "must be a string");
    e.content_type = j["content_type"].get<std::string>();
    if (!j["content"].is_object()) bad("content", "must be an object");
    e.content = j["content"];
    const auto& ds = j["digests"];
    if (!ds.is_array() || ds.empty()) bad("digests", "must be a non-empty array");
    for (size_t i = 0; i < ds.size(); ++i) {
        const auto& d = ds[i];
        std::string f = "digests[" + std::to_string(i) + "]";
        if (!d.is_object() || !d.contains("hashAlg") || !d.contains("digest") || !d["hashAlg"].is_string() ||
            !d["digest"].is_string())
            bad(f, "needs string fields hashAlg and digest");
        if (d["hashAlg"] != "sha256") continue;  // other banks may be present; we replay sha256
        e.digest = tpm::from_hex(d["digest"].get<std::string>(), where + ": " + f + ".digest");
        if (e.digest.size() != 32) bad(f + ".digest", "a sha256 digest has 32 bytes");
    }
    if (e.digest.empty()) bad("digests", "no sha256 digest");
    return e;
}

int64_t Event::reset_count() const {
    auto it = content.find("tpm_reset_count");
    if (it == content.end() || !it->is_number_unsigned()) return -1;
    return static_cast<int64_t>(it->get<uint64_t>());
}

std::string canonical(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<uint8_t> content_digest(const nlohmann::json& content) {
    // Our own SHA-256, not OpenSSL's: the measure hook does not load libcrypto (tpm/pcr.hpp).
    Sha256 h;
    h.update(canonical(content));
    auto d = h.finish();
    return std::vector<uint8_t>(d.begin(), d.end());
}

std::string serialize_record(const Event& e) { return "\x1e" + canonical(e.to_json()) + "\n"; }

std::vector<Event> parse_log(const std::string& text, const std::string& name, size_t* good_len) {
    std::vector<Event> out;
    size_t pos = 0, good = 0;
    while (pos < text.size()) {
        if (text[pos] != '\x1e')
            fail(name + ": byte " + std::to_string(pos) + ": expected a record separator (0x1E, RFC 7464)");
        size_t next = text.find('\x1e', pos + 1);
        size_t end = next == std::string::npos ? text.size() : next;
        std::string body = text.substr(pos + 1, end - pos - 1);
        bool complete = !body.empty() && body.back() == '\n';
        if (!complete && next == std::string::npos) break;  // torn last record: a crash during write
        std::string where = name + ": record " + std::to_string(out.size());
        if (!complete) fail(where + ": not terminated by a newline");
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(body);
        } catch (const nlohmann::json::exception& ex) {
            fail(where + ": not JSON: " + ex.what());
        }
        out.push_back(Event::from_json(j, where));
        pos = end;
        good = end;
    }
    if (good_len) *good_len = good;
    return out;
}

std::vector<uint8_t> replay(const std::vector<Event>& events, uint32_t pcr, int64_t reset_count) {
    std::vector<uint8_t> v(32, 0);
    for (const auto& e : events) {
        if (e.pcr != pcr || e.reset_count() != reset_count) continue;
        Sha256 h;
        h.update(std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
        h.update(std::string_view(reinterpret_cast<const char*>(e.digest.data()), e.digest.size()));
        auto d = h.finish();
        std::copy(d.begin(), d.end(), v.begin());
    }
    return v;
}

namespace {
void mkdir_parents(const std::string& path) {
    // Create missing parent directories of `path` (0700: the log says which containers ran).
    for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
        std::string dir = path.substr(0, slash);
        if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) fail_errno("event log: mkdir " + dir);
    }
}
}  // namespace

LogFile::LogFile(const std::string& path, Mode mode) : path_(path) {
    if (path.empty()) fail("event log: no path given");
    if (mode == Mode::Append) {
        auto open_append = [&] {
            return ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
        };
        fd_.reset(open_append());
        if (!fd_ && errno == ENOENT) {  // only the first run creates the directories
            mkdir_parents(path);
            fd_.reset(open_append());
        }
        if (!fd_) fail_errno("event log " + path);
    } else {
        fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd_ && errno != ENOENT) fail_errno("event log " + path);
    }
}

void LogFile::lock(bool exclusive) {
    if (!fd_) return;
    while (::flock(fd_.get(), exclusive ? LOCK_EX : LOCK_SH) < 0) {
        if (errno != EINTR) fail_errno("event log " + path_ + ": flock");
    }
}

bool LogFile::try_lock(bool exclusive) {
    if (!fd_) return true;
    while (::flock(fd_.get(), (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) return false;
        if (errno != EINTR) fail_errno("event log " + path_ + ": flock");
    }
    return true;
}

std::string LogFile::read_all() {
    struct stat st {};
    check(::fstat(fd_.get(), &st), "event log " + path_ + ": fstat");
    std::string text;
    text.reserve(static_cast<size_t>(st.st_size));
    char buf[65536];
    for (off_t off = 0;;) {
        ssize_t n = ::pread(fd_.get(), buf, sizeof buf, off);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno("event log " + path_ + ": read");
        }
        if (n == 0) break;
        text.append(buf, static_cast<size_t>(n));
        off += n;
    }
    return text;
}

std::vector<Event> LogFile::read() {
    if (!fd_) return {};
    return parse_log(read_all(), "event log " + path_);
}

std::vector<Event> LogFile::read_dropping_torn_tail() {
    std::string text = read_all();
    size_t good = 0;
    std::vector<Event> events = parse_log(text, "event log " + path_, &good);
    if (good < text.size()) {
        // A record without its newline was never extended (append precedes extend): drop it.
        check(::ftruncate(fd_.get(), static_cast<off_t>(good)), "event log " + path_ + ": truncate torn record");
        check(::fdatasync(fd_.get()), "event log " + path_ + ": fdatasync");
    }
    return events;
}

size_t LogFile::append(const Event& e) {
    std::string rec = serialize_record(e);
    // One write with O_APPEND: the record lands contiguously at the end; a short write is reported and
    // its torn remainder removed by the next writer (read_dropping_torn_tail).
    ssize_t n;
    do n = ::write(fd_.get(), rec.data(), rec.size());
    while (n < 0 && errno == EINTR);
    if (n < 0) fail_errno("event log " + path_ + ": write");
    if (static_cast<size_t>(n) != rec.size()) fail("event log " + path_ + ": short write");
    check(::fdatasync(fd_.get()), "event log " + path_ + ": fdatasync");
    return rec.size();
}

}  // namespace trustme::attest

namespace trustme::attest {

std::string boot_id() {
    std::string id = read_file("/proc/sys/kernel/random/boot_id");
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (id.size() != 36) fail("/proc/sys/kernel/random/boot_id: not a boot id");
    return id;
}

std::string boot_log_path(const std::string& base, const std::string& boot) { return base + "." + boot; }

namespace {
bool is_boot_id(std::string_view s) {
    if (s.size() != 36) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}
}  // namespace

void prune_boot_logs(const std::string& base, const std::string& current_boot, size_t keep) {
    auto slash = base.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : base.substr(0, slash));
    std::string prefix = (slash == std::string::npos ? base : base.substr(slash + 1)) + ".";
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd) return;
    UniqueDir d = open_dir(dfd.get());
    if (!d) return;
    std::vector<std::pair<int64_t, std::string>> boots;  // (mtime ns, boot id)
    while (dirent* de = ::readdir(d.get())) {
        std::string_view n = de->d_name;
        if (n.size() != prefix.size() + 36 || n.substr(0, prefix.size()) != prefix) continue;
        std::string id(n.substr(prefix.size()));
        if (!is_boot_id(id) || id == current_boot) continue;
        struct stat st {};
        if (::fstatat(dfd.get(), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
        boots.emplace_back(int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, id);
    }
    d.reset();
    if (boots.size() <= keep) return;
    std::sort(boots.begin(), boots.end(), std::greater<>());
    for (size_t i = keep; i < boots.size(); ++i) {
        std::string name = prefix + boots[i].second;
        ::unlinkat(dfd.get(), (name + ".ckpt").c_str(), 0);
        ::unlinkat(dfd.get(), name.c_str(), 0);
    }
}

// "trustme-checkpoint 1 <reset> <pcr> <value hex> <records> <length> <sha256 hex of all before it>\n",
// numbers zero-padded: every checkpoint has the same length, so an in-place overwrite leaves no stale tail.
namespace {
constexpr size_t kCkptBody = 19 + 2 + 21 + 3 + 65 + 21 + 21;

std::string sha256_hex(std::string_view s) {
    Sha256 h;
    h.update(s);
    return Sha256::hex(h.finish());
}
}  // namespace

bool Checkpoint::load(const std::string& path, Checkpoint* out) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return false;
    char buf[512];
    ssize_t n = ::pread(fd.get(), buf, sizeof buf, 0);
    if (n != static_cast<ssize_t>(kCkptBody + 65)) return false;
    std::string_view text(buf, static_cast<size_t>(n));
    if (text.back() != '\n' || sha256_hex(text.substr(0, kCkptBody)) != text.substr(kCkptBody, 64)) return false;
    std::string body(text.substr(0, kCkptBody));
    long long reset = 0;
    unsigned pcr = 0;
    char hex[65] = {};
    unsigned long long records = 0, length = 0;
    if (std::sscanf(body.c_str(), "trustme-checkpoint 1 %20lld %2u %64s %20llu %20llu", &reset, &pcr, hex, &records,
                    &length) != 5 ||
        pcr > 23)
        return false;
    try {
        out->value = tpm::from_hex(hex, "checkpoint");
    } catch (const Error&) {
        return false;
    }
    if (out->value.size() != 32) return false;
    out->reset_count = reset;
    out->pcr = pcr;
    out->records = records;
    out->length = length;
    return true;
}

void Checkpoint::store(const std::string& path) const {
    char body[kCkptBody + 1];
    int n = std::snprintf(body, sizeof body, "trustme-checkpoint 1 %020lld %02u %s %020llu %020llu ",
                          static_cast<long long>(reset_count), pcr, tpm::to_hex(value).c_str(),
                          static_cast<unsigned long long>(records), static_cast<unsigned long long>(length));
    if (n != static_cast<int>(kCkptBody)) fail("checkpoint " + path + ": cannot format");
    std::string text(body, kCkptBody);
    text += sha256_hex(text) + "\n";
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) fail_errno("checkpoint " + path);
    ssize_t w;
    do w = ::pwrite(fd.get(), text.data(), text.size(), 0);
    while (w < 0 && errno == EINTR);
    if (w != static_cast<ssize_t>(text.size())) fail(w < 0 ? errno : EIO, "checkpoint " + path + ": write");
}

uint64_t LogFile::size() {
    if (!fd_) return 0;
    struct stat st {};
    check(::fstat(fd_.get(), &st), "event log " + path_ + ": fstat");
    return static_cast<uint64_t>(st.st_size);
}

namespace {
// pread exactly [off, off+len) (less at end of file).
std::string pread_range(int fd, uint64_t off, size_t len, const std::string& what) {
    std::string out(len, '\0');
    size_t got = 0;
    while (got < len) {
        ssize_t n = ::pread(fd, out.data() + got, len - got, static_cast<off_t>(off + got));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(what + ": read");
        }
        if (n == 0) break;
        got += static_cast<size_t>(n);
    }
    out.resize(got);
    return out;
}
}  // namespace

std::vector<Event> LogFile::read_tail(uint64_t offset, size_t* good_len) {
    uint64_t end = size();
    if (offset > end) fail("event log " + path_ + ": offset beyond its end");
    std::string text = pread_range(fd_.get(), offset, static_cast<size_t>(end - offset), "event log " + path_);
    return parse_log(text, "event log " + path_ + " (from byte " + std::to_string(offset) + ")", good_len);
}

void LogFile::truncate_to(uint64_t length) {
    check(::ftruncate(fd_.get(), static_cast<off_t>(length)), "event log " + path_ + ": truncate torn record");
    check(::fdatasync(fd_.get()), "event log " + path_ + ": fdatasync");
}

uint64_t LogFile::complete_length() {
    uint64_t end = size();
    // Walk back to the last newline: every complete record ends with one, and no record holds a raw one.
    while (end > 0) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(end, 65536));
        std::string buf = pread_range(fd_.get(), end - chunk, chunk, "event log " + path_);
        auto nl = buf.rfind('\n');
        if (nl != std::string::npos) return end - chunk + nl + 1;
        end -= chunk;
    }
    return 0;
}

uint64_t LogFile::offset_of(uint64_t recnum, uint64_t end) {
    if (recnum == 0 || end == 0) return 0;
    const std::string what = "event log " + path_;
    struct Rec {
        uint64_t start, stop, recnum;
    };
    // The first record starting at or after `pos` and before `limit`, with its recnum: the canonical
    // encoding sorts keys, so "recnum" is the last member of the record's top-level object.
    auto record_from = [&](uint64_t pos, uint64_t limit, Rec* r) -> bool {
        size_t want = 4096;
        for (;;) {
            std::string buf =
                pread_range(fd_.get(), pos, static_cast<size_t>(std::min<uint64_t>(want, end - pos)), what);
            auto s = buf.find('\x1e');
            if (s == std::string::npos) {
                if (pos + buf.size() >= limit || buf.size() < want) return false;
                pos += buf.size();
                continue;
            }
            if (pos + s >= limit) return false;
            auto nl = buf.find('\n', s);
            if (nl == std::string::npos) {
                if (buf.size() < want) fail(what + ": byte " + std::to_string(pos + s) + ": record not terminated");
                if (want >= (16u << 20)) fail(what + ": record at byte " + std::to_string(pos + s) + " too large");
                pos += s;
                want *= 4;
                continue;
            }
            std::string_view rec(buf.data() + s, nl - s);
            auto k = rec.rfind("\"recnum\":");
            if (k == std::string_view::npos) fail(what + ": record at byte " + std::to_string(pos + s) + ": no recnum");
            uint64_t v = 0;
            for (size_t i = k + 9; i < rec.size() && rec[i] >= '0' && rec[i] <= '9'; ++i) v = v * 10 + (rec[i] - '0');
            *r = {pos + s, pos + nl + 1, v};
            return true;
        }
    };
    uint64_t lo = 0, hi = end;  // records starting before lo have recnum < target; the one at hi (or end) >= it
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        Rec r{};
        if (!record_from(mid, hi, &r)) {
            // No record starts in [mid, hi): look at the one at lo.
            if (!record_from(lo, hi, &r)) return hi;
            if (r.recnum >= recnum) return r.start;
            lo = r.stop;
            continue;
        }
        if (r.recnum < recnum) lo = r.stop;
        else hi = r.start;
    }
    return lo;
}

}  // namespace trustme::attest
