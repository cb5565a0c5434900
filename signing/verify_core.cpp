// The body of a bundle verification, shared by the full verification (verify.hpp: the plugin and
// trustme-sign, with OpenSSL) and the runtime's in-process warm path (warm.hpp, without libcrypto).
#include "signing/verify_core.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <optional>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "signing/cache.hpp"
#include "signing/constraints.hpp"
#include "signing/policy.hpp"
#include "signing/sha256.hpp"

namespace trustme::signing {
namespace {

// Open a file of the bundle relative to a directory fd, without following a symlink in the last
// component; ENOENT gives an empty UniqueFd, anything else throws.
// O_NONBLOCK|O_NOCTTY: a fifo or tty planted under the expected name must not block or adopt us; the
// type check then refuses it.
UniqueFd open_opt(int dirfd, const char* name, const std::string& display, int extra = 0) {
    int fd = ::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | extra);
    if (fd < 0) {
        if (errno == ENOENT) return UniqueFd();
        fail_errno(display);
    }
    UniqueFd owned(fd);
    struct stat st {};
    if (::fstat(fd, &st) < 0) fail_errno(display);
    bool want_dir = extra & O_DIRECTORY;
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        fail(display + (want_dir ? ": not a directory" : ": not a regular file"));
    return owned;
}

// Caps on what is read before anything is known to be signed. A signature is a certificate chain and a
// few hundred bytes; a manifest is ~100-200 bytes an entry, so 256 MiB holds more than a million entries.
// A larger file is refused from its fstat size, unread.
constexpr size_t kMaxSignature = size_t{1} << 20;
constexpr size_t kMaxManifest = size_t{256} << 20;

std::string rootfs_display(const std::string& bundle, std::string_view config) {
    auto cfg = nlohmann::json::parse(config, nullptr, /*allow_exceptions=*/false);
    std::string root = "rootfs";
    if (cfg.is_object() && cfg.contains("root") && cfg["root"].is_object() && cfg["root"].contains("path") &&
        cfg["root"]["path"].is_string())
        root = cfg["root"]["path"].get<std::string>();
    if (!root.empty() && root[0] == '/') return root;
    return bundle + "/" + root;
}

// The manifest is opened here and read only once its signature has been judged (read_manifest).
struct Found {
    std::string location;  // "bundle" or "rootfs"
    UniqueFd manifest_fd;
    std::string signature;
    std::string manifest_name, signature_name;
};

std::string read_manifest(const Found& f) {
    return trustme::read_all(f.manifest_fd.get(), f.manifest_name, kMaxManifest);
}

template <typename RootfsName>
Found locate(const trustme_verify_request& req, const std::string& bundle, const RootfsName& rootfs) {
    Found f;
    auto take = [&](int dirfd, UniqueFd m, const char* mname, const std::string& display, const char* location) {
        f.location = location;
        f.manifest_name = display;
        f.signature_name = display + kSignatureSuffix;
        std::string sig = std::string(mname) + kSignatureSuffix;
        UniqueFd s = open_opt(dirfd, sig.c_str(), f.signature_name);
        if (!s) fail(f.signature_name + ": missing (the manifest is not signed)");
        f.signature = trustme::read_all(s.get(), f.signature_name, kMaxSignature);
        struct stat st {};
        if (::fstat(m.get(), &st) < 0) fail_errno(display);
        if (static_cast<uint64_t>(st.st_size) > kMaxManifest)
            fail(display + ": larger than " + std::to_string(kMaxManifest) + " bytes");
        f.manifest_fd = std::move(m);
    };
    const std::string bm = bundle + "/" + kBundleManifest;
    if (UniqueFd m = open_opt(req.bundle_fd, kBundleManifest, bm)) {
        take(req.bundle_fd, std::move(m), kBundleManifest, bm, "bundle");
        return f;
    }
    const std::string dir = rootfs() + "/" + kEmbeddedDir;
    if (UniqueFd d = open_opt(req.rootfs_fd, kEmbeddedDir, dir, O_DIRECTORY)) {
        const std::string em = dir + "/" + kEmbeddedManifest;
        if (UniqueFd m = open_opt(d.get(), kEmbeddedManifest, em)) {
            take(d.get(), std::move(m), kEmbeddedManifest, em, "rootfs");
            return f;
        }
    }
    fail(bundle + ": not signed (neither " + bm + " nor " + dir + "/" + kEmbeddedManifest + " exists)");
}

}  // namespace

bool verify_run(const trustme_verify_request& req, trustme_verify_result& res,
                const trustme::signing::policy::Policy& pol, const VerifyCore& opt, WalkStats* stats) {
    const std::string bundle = req.bundle_path && *req.bundle_path ? req.bundle_path : "bundle";
    std::string_view config(req.config_json ? req.config_json : "", req.config_json ? req.config_len : 0);
    // The rootfs path only names things in messages: parsing config.json for it waits until one is needed.
    std::optional<std::string> rootfs_name;
    auto rootfs = [&]() -> const std::string& {
        if (!rootfs_name) rootfs_name = rootfs_display(bundle, config);
        return *rootfs_name;
    };
    const std::string config_sha256 = sha256_hex(config);
    put(res.config_digest, config_sha256);

    Found f = locate(req, bundle, rootfs);
    put(res.location, f.location);

    // One store for both caches; none at all when the policy or the caller says no.
    UniqueFd store;
    using trustme::signing::policy::VerifyCache;
    if (pol.verify_cache != VerifyCache::Off && opt.use_cache) store = open_cache_store(pol.verify_cache_dir, nullptr);
    // Stamps stand for content only in mode "stamps": the digest cache and the tree record key on them, and
    // a store into an already-dirty MAP_SHARED page changes content without moving mtime or ctime.
    const bool trust_stamps = store && pol.verify_cache == VerifyCache::Stamps;
    // Mode "verity-only" keeps a tree record too, but one that stands only while fs-verity seals every
    // regular file it lists (cache.hpp, tree_unchanged need_verity): stamps then speak for metadata only.
    const bool verity_record = store && pol.verify_cache == VerifyCache::VerityOnly;

    // Signature first: nothing of an unsigned manifest is worth reading, hashing, parsing or walking for.
    // The signature names the SHA-256 of the manifest it covers; a verdict reached earlier for exactly
    // these signature bytes and trust material, and still within its validity, stands (cms_cache.hpp).
    TrustMaterial trust = read_trust_material(pol);
    std::string verdict_key;
    std::optional<Verdict> verdict;
    if (store) {
        verdict_key = cms_verdict_key(f.signature, trust);
        verdict = cached_verdict(store.get(), verdict_key, ::time(nullptr), opt.cms ? opt.library : nullptr);
    }
    const bool signature_cached = verdict.has_value();
    if (!verdict) {
        if (!opt.cms) return false;
        verdict = opt.cms(f.signature, f.signature_name, pol, trust);
        if (store && opt.library) remember_verdict(store.get(), verdict_key, *verdict, *opt.library);
    }
    // Read once (bounded: the fstat size plus one byte, at most kMaxManifest) and hashed once.
    const std::string manifest = read_manifest(f);
    const std::string manifest_sha256 = sha256_hex(manifest);
    if (manifest_sha256 != verdict->signed_sha256)
        fail(f.signature_name + ": signature does not match the manifest (" + f.manifest_name +
             " changed since signing)");
    put(res.manifest_digest, manifest_sha256);
    put(res.signer_subject, verdict->signer.subject);

    // The tree record (cache.hpp): the warm path accepts a tree that a verification of exactly this
    // manifest, signature and config accepted before, if not one of its entries has changed since. The
    // full verification always walks.
    const std::string tree_key =
        store ? sha256_hex(std::string(verity_record ? "tree v1 verity-only " : "tree v1 ") + verdict_key + ' ' +
                           manifest_sha256 + ' ' + config_sha256 + ' ' + f.location)
              : std::string();
    // Under the embedded location the config came from an engine, unsigned: the policy's constraints
    // judge it, on every start (they may have changed since a tree was recorded).
    auto judge_unsigned_config = [&] {
        auto cfg = nlohmann::json::parse(config, nullptr, /*allow_exceptions=*/false);
        if (cfg.is_discarded()) fail(bundle + "/config.json: invalid JSON");
        trustme::signing::policy::judge_config(pol.constraints, cfg, bundle + "/config.json");
    };
    if ((trust_stamps || verity_record) && !opt.cms &&
        tree_unchanged(store.get(), req.rootfs_fd, tree_key, verity_record)) {
        if (f.location != "bundle") judge_unsigned_config();
        if (stats) stats->signature_cached = signature_cached, stats->tree_cached = true;
        return true;
    }

    Manifest signed_m = parse_manifest(manifest, f.manifest_name);
    if (f.location == "bundle") {
        if (!signed_m.config_sha256) fail(f.manifest_name + ": does not cover config.json (a bundle manifest must)");
        if (*signed_m.config_sha256 != config_sha256)
            fail(bundle + "/config.json: changed since signing (SHA-256 differs from " + f.manifest_name + ")");
    } else {
        if (signed_m.config_sha256)
            fail(f.manifest_name + ": names a config.json, but an embedded manifest covers the rootfs only");
        judge_unsigned_config();
    }

    if (signed_m.image) {
        // The rootfs is the image: nothing to walk, the kernel checks every block read against the signed
        // root hash (dm-verity). Here only that the file is there, a regular file of the signed size.
        const Image& im = *signed_m.image;
        const std::string what = bundle + "/" + im.file;
        UniqueFd img = open_opt(req.bundle_fd, im.file.c_str(), what);
        if (!img) fail(what + ": missing (the manifest names it as the rootfs image)");
        struct stat st {};
        if (::fstat(img.get(), &st) < 0) fail_errno(what);
        if (static_cast<uint64_t>(st.st_size) != im.size)
            fail(what + ": " + std::to_string(st.st_size) + " bytes, the manifest says " + std::to_string(im.size));
        std::string line = render_image(im);
        line.pop_back();
        if (line.size() >= sizeof res.image)
            fail(f.manifest_name + ": image line longer than " + std::to_string(sizeof res.image - 1) + " bytes");
        put(res.image, line);
        if (stats) stats->signature_cached = signature_cached;
        return true;
    }

    std::unique_ptr<HashCache> cache;
    if (trust_stamps) cache = HashCache::open(store.get(), req.rootfs_fd, nullptr);
    WalkOptions wo;
    wo.exclude_embedded = f.location == "rootfs";
    wo.cache = cache.get();
    wo.cache_only = !opt.cms;
    wo.signed_entries = &signed_m.entries;
    // Warm without the digest cache: only fs-verity can vouch for content ("verity-only").
    if (wo.cache_only && !cache && pol.verify_cache != VerifyCache::VerityOnly) return false;
    std::optional<std::vector<Entry>> actual;
    const time_t walk_start = ::time(nullptr);
    try {
        actual = walk_rootfs(req.rootfs_fd, wo, stats);
    } catch (const Error& e) {
        // Walk errors name "rootfs/PATH"; give the real rootfs path.
        std::string m = e.what();
        if (auto p = m.find("rootfs/"); p != std::string::npos) m.replace(p, 6, rootfs());
        throw Error(m, e.code());
    }
    if (!actual) return false;
    if (stats) stats->signature_cached = signature_cached;
    if (cache) cache->save();
    if (auto d = compare_entries(signed_m.entries, *actual); !d.empty()) fail(rootfs() + (d[0] == '/' ? "" : "/") + d);
    if (trust_stamps || verity_record)
        remember_tree(store.get(), req.rootfs_fd, tree_key, *actual, walk_start, verity_record);
    return true;
}

}  // namespace trustme::signing
