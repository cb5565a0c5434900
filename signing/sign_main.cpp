// trustme-sign(1): PKI, signing and verification of bundles.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "base/version.hpp"
#include "signing/fsverity.hpp"
#include "signing/image.hpp"
#include "signing/manifest.hpp"
#include "signing/pki.hpp"
#include "signing/verify.hpp"

using namespace trustme;
using namespace trustme::signing;

namespace {

constexpr const char* kUsage = R"(Usage: trustme-sign COMMAND [OPTIONS]

Sign OCI bundles and verify them exactly as trustme-runtime does.

Commands:
  pki init   --dir DIR [--algo ec|rsa3072|rsa4096] [--days N] [--cn PREFIX]
             create DIR/root-ca.{pem,key}, DIR/signing-ca.{pem,key} and an empty DIR/crl.pem
  pki issue  --dir DIR --name NAME [--algo A] [--days N] [--not-before T] [--not-after T]
             [--purpose sign|client|server | --eku EKU]
             issue DIR/NAME.{pem,key} (codeSigning) and DIR/NAME-chain.pem from the signing CA
  pki revoke --dir DIR --name NAME
             add DIR/NAME.pem to DIR/crl.pem
  sign       (--dir DIR --name NAME | --key KEY --cert CERT [--chain CHAIN]) [--embedded] [--verity | --image] BUNDLE
             write BUNDLE/trustme.manifest and .p7s (covers config.json and the rootfs), or with
             --embedded ROOTFS/.trustme/manifest and .p7s (covers the rootfs only); with --verity
             the manifest also carries each file's fs-verity digest and fs-verity is enabled on them;
             with --image the rootfs becomes BUNDLE/rootfs.img, a read-only ext4 image with a
             dm-verity hash tree whose root hash the manifest carries
  verify     [--policy FILE] [--no-cache] [--quiet] BUNDLE
             verify BUNDLE with the runtime's own code path (libtrustme-verify)
  inspect    BUNDLE | MANIFEST | SIGNATURE.p7s
             show location, digests and signer certificates without verifying
  manifest   [--embedded] BUNDLE
             print the manifest `sign` would write, without signing

Options:
  --algo A         ec (ECDSA P-256, default), rsa3072, rsa4096
  --days N         validity in days (CAs: 3650, signers: 365)
  --not-before T, --not-after T
                   explicit validity, T = YYYY-MM-DD[THH:MM:SSZ] or @UNIXTIME
  --purpose P      what an issued certificate is for: sign (codeSigning, the default), client
                   (clientAuth: a verifier of trustme-attest serve over TLS), server (serverAuth: serve)
  --eku EKU        extended key usage of an issued certificate (default codeSigning; "none" omits it)
  --policy FILE    policy (default: $TRUSTME_POLICY, then /etc/trustme/policy.json;
                   not root: $XDG_CONFIG_HOME/trustme/policy.json)
  --verity         sign: record fs-verity digests and enable fs-verity on the rootfs's regular files
                   (irreversible: they become read-only; the filesystem must support it)
  --image          sign: build BUNDLE/rootfs.img from the rootfs (mke2fs -d) with a dm-verity hash
                   tree; the runtime then mounts it through dm-verity instead of the directory
  --no-cache       do not use the digest cache (cold measurement)
  --quiet          verify: print nothing on success
  -h, --help       this text
  -v, --version    version

See trustme-sign(1), trustme-manifest(5), trustme-policy(5).
)";

struct Args {
    std::vector<std::string> pos;
    std::map<std::string, std::string> opt;
    bool has(const std::string& k) const { return opt.count(k) > 0; }
    std::string get(const std::string& k, const std::string& d = "") const {
        auto it = opt.find(k);
        return it == opt.end() ? d : it->second;
    }
    std::string need(const std::string& k) const {
        if (!has(k)) fail("missing --" + k);
        return get(k);
    }
};

Args parse_args(int argc, char** argv, int from, const std::vector<std::string>& with_value,
                const std::vector<std::string>& flags) {
    Args a;
    for (int i = from; i < argc; ++i) {
        std::string s = argv[i];
        if (s.starts_with("--") && s.size() > 2) {
            std::string k = s.substr(2), v;
            bool inline_v = false;
            if (auto eq = k.find('='); eq != std::string::npos) {
                v = k.substr(eq + 1);
                k = k.substr(0, eq);
                inline_v = true;
            }
            if (std::find(with_value.begin(), with_value.end(), k) != with_value.end()) {
                if (!inline_v) {
                    if (i + 1 >= argc) fail("--" + k + ": missing value");
                    v = argv[++i];
                }
                a.opt[k] = v;
            } else if (std::find(flags.begin(), flags.end(), k) != flags.end() && !inline_v) {
                a.opt[k] = "1";
            } else {
                fail("unknown option --" + k + " (see --help)");
            }
        } else {
            a.pos.push_back(s);
        }
    }
    return a;
}

time_t parse_time(const std::string& opt, const std::string& s) {
    if (!s.empty() && s[0] == '@') {
        char* end = nullptr;
        long long v = std::strtoll(s.c_str() + 1, &end, 10);
        if (end && *end == '\0' && end != s.c_str() + 1) return static_cast<time_t>(v);
    } else {
        struct tm tm {};
        const char* e = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!e || *e) {
            tm = {};
            e = strptime(s.c_str(), "%Y-%m-%d", &tm);
        }
        if (e && !*e) return timegm(&tm);
    }
    fail("--" + opt + " " + s + ": expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or @UNIXTIME");
}

int parse_days(const std::string& s) {
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (!end || *end || v < 1 || v > 36500) fail("--days " + s + ": expected 1..36500");
    return static_cast<int>(v);
}

std::string one_positional(const Args& a, const char* what) {
    if (a.pos.size() != 1) fail(std::string("expected one ") + what + " (see --help)");
    return a.pos[0];
}

struct Bundle {
    std::string path;
    UniqueFd fd, rootfs;
    std::string config;
    std::string rootfs_path;
};

Bundle open_bundle(const std::string& path) {
    Bundle b;
    b.path = path;
    while (b.path.size() > 1 && b.path.back() == '/') b.path.pop_back();
    b.fd = UniqueFd(::open(b.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!b.fd) fail_errno(b.path);
    b.config = read_file_at(b.fd.get(), "config.json", b.path + "/config.json");
    auto cfg = nlohmann::json::parse(b.config, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) fail(b.path + "/config.json: invalid JSON");
    std::string root = "rootfs";
    if (cfg.contains("root")) {
        if (!cfg["root"].is_object() || !cfg["root"].contains("path") || !cfg["root"]["path"].is_string())
            fail(b.path + "/config.json: root.path: must be a string");
        root = cfg["root"]["path"].get<std::string>();
    }
    b.rootfs_path = root[0] == '/' ? root : b.path + "/" + root;
    b.rootfs = UniqueFd(::openat(b.fd.get(), root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!b.rootfs) fail_errno(b.rootfs_path);
    return b;
}

int cmd_pki(int argc, char** argv) {
    if (argc < 3) fail("pki: expected init, issue or revoke");
    std::string sub = argv[2];
    Args a = parse_args(argc, argv, 3,
                        {"dir", "name", "algo", "days", "cn", "not-before", "not-after", "eku", "purpose"}, {});
    if (!a.pos.empty()) fail("pki " + sub + ": unexpected argument " + a.pos[0]);
    std::string dir = a.need("dir");
    KeySpec k = parse_key_spec(a.get("algo", "ec"));
    if (sub == "init") {
        pki_init(dir, k, a.has("days") ? parse_days(a.get("days")) : 3650, a.get("cn", "trustme"));
        std::cout << "created " << dir << "/root-ca.pem, " << dir << "/signing-ca.pem, " << dir << "/crl.pem\n";
    } else if (sub == "issue") {
        Validity v;
        if (a.has("days")) v.days = parse_days(a.get("days"));
        if (a.has("not-before")) v.not_before = parse_time("not-before", a.get("not-before"));
        if (a.has("not-after")) v.not_after = parse_time("not-after", a.get("not-after"));
        std::string name = a.need("name");
        std::string eku = a.get("eku", "codeSigning");
        if (a.has("purpose")) {
            // TLS identities for trustme-attest serve and its verifiers (RFC 5280 4.2.1.12).
            static const std::map<std::string, std::string> kPurpose = {
                {"sign", "codeSigning"}, {"client", "clientAuth"}, {"server", "serverAuth"}};
            auto it = kPurpose.find(a.get("purpose"));
            if (it == kPurpose.end()) fail("--purpose " + a.get("purpose") + ": expected sign, client or server");
            if (a.has("eku")) fail("--purpose and --eku: give one of them");
            eku = it->second;
        }
        pki_issue(dir, name, k, v, eku);
        std::cout << "issued " << dir << "/" << name << ".pem (key " << dir << "/" << name << ".key)\n";
    } else if (sub == "revoke") {
        std::string name = a.need("name");
        pki_revoke(dir, name);
        std::cout << "revoked " << dir << "/" << name << ".pem in " << dir << "/crl.pem\n";
    } else {
        fail("pki " + sub + ": expected init, issue or revoke");
    }
    return 0;
}

// FS_IOC_ENABLE_VERITY on every regular file of the manifest, then the kernel's digest must be the one
// computed while signing (a cross-check of our Merkle tree code against the kernel's).
void enable_verity_all(const Bundle& b, const Manifest& m) {
    for (const Entry& e : m.entries) {
        if (e.type != 'f' || !e.link.empty()) continue;
        const std::string what = b.rootfs_path + e.path;
        struct open_how how {};
        how.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, b.rootfs.get(), e.path.c_str() + 1, &how, sizeof how)));
        if (!fd) fail_errno(what);
        struct stat st {};
        if (::fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode)) fail(what + ": not a regular file");
        enable_verity(fd.get(), what);
        int err = 0;
        auto d = measure_verity(fd.get(), &err);
        if (!d) fail(err, what + ": fs-verity: FS_IOC_MEASURE_VERITY");
        if (*d != e.fsverity) fail(what + ": fs-verity digest " + *d + " differs from the manifest's " + e.fsverity);
    }
}

int cmd_sign(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, {"dir", "name", "key", "cert", "chain"}, {"embedded", "verity", "image"});
    std::string key, cert, chain;
    if (a.has("key") || a.has("cert")) {
        if (a.has("dir") || a.has("name")) fail("use either --dir/--name or --key/--cert/--chain");
        key = a.need("key");
        cert = a.need("cert");
        chain = a.get("chain");
    } else {
        std::string dir = a.need("dir"), name = a.need("name");
        key = dir + "/" + name + ".key";
        cert = dir + "/" + name + ".pem";
        chain = dir + "/" + name + "-chain.pem";
        if (!path_exists(chain)) chain.clear();
    }
    Bundle b = open_bundle(one_positional(a, "BUNDLE"));
    bool embedded = a.has("embedded");
    UniqueFd target;
    std::string mname, where;
    if (embedded) {
        if (::mkdirat(b.rootfs.get(), kEmbeddedDir, 0755) < 0 && errno != EEXIST)
            fail_errno(b.rootfs_path + "/" + kEmbeddedDir);
        target = UniqueFd(::openat(b.rootfs.get(), kEmbeddedDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!target) fail_errno(b.rootfs_path + "/" + kEmbeddedDir);
        mname = kEmbeddedManifest;
        where = b.rootfs_path + "/" + kEmbeddedDir + "/" + mname;
    } else {
        target = UniqueFd(::fcntl(b.fd.get(), F_DUPFD_CLOEXEC, 0));
        mname = kBundleManifest;
        where = b.path + "/" + mname;
    }
    // Everything is computed before anything is written: a failure leaves the bundle as it was.
    const bool verity = a.has("verity");
    if (a.has("image") && (embedded || verity))
        fail("--image: signs the bundle location only, without --embedded or --verity");
    std::optional<PendingImage> image;
    std::string manifest;
    if (a.has("image")) {
        image.emplace(build_image(b.fd.get(), b.path, b.rootfs_path, kRootfsImage));
        Manifest m;
        m.config_sha256 = sha256_hex(b.config);
        m.image = image->image();
        manifest = render(m);
    } else {
        manifest = build_manifest(b.fd.get(), b.rootfs.get(), !embedded, verity);
    }
    std::string sig = cms_sign(manifest, key, cert, chain);
    if (image) image->commit(b.path + "/" + kRootfsImage);
    // fs-verity last before writing: it cannot be undone (and the first file tells whether the
    // filesystem has it at all).
    if (verity) enable_verity_all(b, parse_manifest(manifest, where));
    std::string signame = mname + kSignatureSuffix;
    write_file_atomic(target.get(), mname, manifest, 0644);
    try {
        write_file_atomic(target.get(), signame, sig, 0644);
    } catch (...) {
        ::unlinkat(target.get(), mname.c_str(), 0);
        throw;
    }
    size_t entries = 0;
    for (char c : manifest) entries += c == '\n';
    if (image)
        std::cout << "signed " << b.path << ": " << b.path << "/" << kRootfsImage << " (" << image->image().size
                  << " bytes, dm-verity root " << image->image().root << "), " << where << " (sha256 "
                  << sha256_hex(manifest) << ") + " << signame << "\n";
    else
        std::cout << "signed " << b.path << ": " << where << " (" << entries - 2 - (embedded ? 0 : 1)
                  << " entries, sha256 " << sha256_hex(manifest) << ") + " << signame << "\n";
    if (embedded && path_exists(b.path + "/" + kBundleManifest))
        std::cerr << "trustme-sign: note: " << b.path << "/" << kBundleManifest
                  << " exists and takes precedence over the embedded manifest\n";
    return 0;
}

int cmd_verify(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, {"policy"}, {"no-cache", "quiet"});
    Bundle b = open_bundle(one_positional(a, "BUNDLE"));
    std::string policy = a.get("policy");
    trustme_verify_request req{};
    req.abi = TRUSTME_VERIFY_ABI;
    req.policy_path = policy.c_str();
    req.bundle_path = b.path.c_str();
    req.bundle_fd = b.fd.get();
    req.rootfs_fd = b.rootfs.get();
    req.config_json = b.config.data();
    req.config_len = b.config.size();
    trustme_verify_result res{};
    WalkStats st;
    VerifyOptions opt;
    opt.use_cache = !a.has("no-cache");
    auto t0 = std::chrono::steady_clock::now();
    int rc = verify_bundle(&req, &res, opt, &st);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rc != 0) {
        std::cerr << "trustme-sign: " << res.error << "\n";
        return 1;
    }
    if (res.warning[0]) std::cerr << "trustme-sign: warning: " << res.warning << "\n";
    if (a.has("quiet")) return 0;
    if (std::string(res.location) == "none") {
        std::cout << b.path << ": not verified (" << (res.warning[0] ? "policy mode warn" : "signature off in policy")
                  << ")\n";
        return 0;
    }
    char line[512];
    snprintf(line, sizeof line,
             "%llu entries, %llu files (%llu from cache, %llu by fs-verity), %llu symlinks (%llu from cache), "
             "%.1f MB hashed in %.3f s (%.1f MB/s)",
             static_cast<unsigned long long>(st.entries), static_cast<unsigned long long>(st.files),
             static_cast<unsigned long long>(st.cache_hits), static_cast<unsigned long long>(st.verity_files),
             static_cast<unsigned long long>(st.links), static_cast<unsigned long long>(st.link_cache_hits),
             static_cast<double>(st.bytes_hashed) / 1e6, secs,
             secs > 0 ? static_cast<double>(st.bytes_hashed) / 1e6 / secs : 0.0);
    std::cout << "verified " << b.path << "\n"
              << "  location:  " << res.location << "\n"
              << "  signer:    " << res.signer_subject << "\n"
              << "  manifest:  sha256 " << res.manifest_digest << "\n"
              << "  config:    sha256 " << res.config_digest
              << (std::string(res.location) == "rootfs" ? " (judged by policy constraints)" : " (signed)") << "\n"
              << "  rootfs:    " << line << "\n"
              << "  signature: " << (st.signature_cached ? "verdict from cache" : "verified") << "\n";
    return 0;
}

void print_signers(const std::string& sig, const std::string& name) {
    for (const auto& s : cms_signers(sig, name))
        std::cout << "  certificate: " << s.subject << "\n    issuer: " << s.issuer << "\n    serial: " << s.serial
                  << "\n    not after: " << s.not_after << "\n";
}

void print_manifest_summary(const std::string& text, const std::string& name) {
    Manifest m = parse_manifest(text, name);
    std::cout << "  manifest: " << name << " (sha256 " << sha256_hex(text) << ")\n"
              << "  entries: " << m.entries.size() << "\n"
              << "  config.json: " << (m.config_sha256 ? "sha256 " + *m.config_sha256 : std::string("not covered"))
              << "\n";
}

int cmd_inspect(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, {}, {});
    std::string p = one_positional(a, "BUNDLE, MANIFEST or SIGNATURE");
    struct stat st {};
    if (::stat(p.c_str(), &st) < 0) fail_errno(p);
    if (!S_ISDIR(st.st_mode)) {
        std::string data = read_file_at(AT_FDCWD, p);  // a fifo or device: one line, no hang
        std::cout << p << ":\n";
        if (p.ends_with(kSignatureSuffix)) print_signers(data, p);
        else print_manifest_summary(data, p);
        return 0;
    }
    Bundle b = open_bundle(p);
    std::cout << b.path << ":\n";
    bool any = false;
    for (auto [m, location] : {std::pair{b.path + "/" + kBundleManifest, "bundle"},
                               std::pair{b.rootfs_path + "/" + kEmbeddedDir + "/" + kEmbeddedManifest, "rootfs"}}) {
        if (!path_exists(m)) continue;
        any = true;
        std::cout << " location " << location
                  << (location == std::string("bundle") || !path_exists(b.path + "/" + kBundleManifest)
                          ? ""
                          : " (shadowed by the bundle location)")
                  << ":\n";
        print_manifest_summary(read_file_at(AT_FDCWD, m), m);
        std::string sig = m + kSignatureSuffix;
        if (path_exists(sig)) print_signers(read_file_at(AT_FDCWD, sig), sig);
        else std::cout << "  signature: " << sig << " missing\n";
    }
    if (!any) std::cout << "  not signed\n";
    std::cout << "  config.json now: sha256 " << sha256_hex(b.config) << "\n";
    return 0;
}

int cmd_manifest(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, {}, {"embedded"});
    Bundle b = open_bundle(one_positional(a, "BUNDLE"));
    std::cout << build_manifest(b.fd.get(), b.rootfs.get(), !a.has("embedded"));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    if (argc < 2) {
        std::cerr << kUsage;
        return 2;
    }
    std::string cmd = argv[1];
    try {
        if (cmd == "-h" || cmd == "--help" || cmd == "help") {
            std::cout << kUsage;
            return 0;
        }
        if (cmd == "-v" || cmd == "--version") {
            std::cout << "trustme-sign " << kVersion << "\n";
            return 0;
        }
        for (int i = 2; i < argc; ++i)
            if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
                std::cout << kUsage;
                return 0;
            }
        if (cmd == "pki") return cmd_pki(argc, argv);
        if (cmd == "sign") return cmd_sign(argc, argv);
        if (cmd == "verify") return cmd_verify(argc, argv);
        if (cmd == "inspect") return cmd_inspect(argc, argv);
        if (cmd == "manifest") return cmd_manifest(argc, argv);
        fail("unknown command " + cmd + " (see --help)");
    } catch (const std::exception& e) {
        std::cerr << "trustme-sign: " << e.what() << "\n";
        return 1;
    }
}
