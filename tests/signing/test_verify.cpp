// Signed bundles end to end: a generated PKI, a busybox rootfs (tests/fixtures/make-rootfs.sh), the real
// libtrustme-verify.so loaded with dlopen as the runtime loads it, and the trustme-sign binary.
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/files.hpp"
#include "signing/fsverity.hpp"
#include "signing/manifest.hpp"
#include "signing/pki.hpp"
#include "signing/verify.hpp"
#include "signing/verify_plugin.h"
#include "signing/verify_core.hpp"
#include "signing/warm.hpp"

using namespace trustme;
using namespace trustme::signing;

namespace {

const std::string kBin = TRUSTME_BINARY_DIR;
const std::string kSrc = TRUSTME_SOURCE_DIR;

int sh(const std::string& cmd) {
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void write(const std::string& path, const std::string& data) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << data;
    ASSERT_TRUE(f.good()) << path;
}

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// vfs_cap_data revision 2 (include/uapi/linux/capability.h): magic|effective, then {permitted, inheritable}
// for the low and high 32 capabilities.
std::string file_caps(uint32_t permitted_low) {
    uint32_t v[5] = {0x02000000u | 0x1u, permitted_low, 0, 0, 0};
    return std::string(reinterpret_cast<const char*>(v), sizeof v);
}

using VerifyFn = int (*)(const trustme_verify_request*, trustme_verify_result*);

struct Outcome {
    int rc = -1;
    trustme_verify_result res{};
    std::string error() const { return res.error; }
};

class Signing : public ::testing::Test {
protected:
    static inline std::string root_;  // per-suite temporary directory
    static inline std::string pki_, other_pki_, template_rootfs_;
    static inline void* plugin_ = nullptr;
    static inline VerifyFn verify_ = nullptr;

    static void SetUpTestSuite() {
        char t[] = "/tmp/trustme-signing-test.XXXXXX";
        ASSERT_NE(::mkdtemp(t), nullptr);
        root_ = t;
        pki_ = root_ + "/pki";
        other_pki_ = root_ + "/other-pki";
        pki_init(pki_, KeySpec{}, 3650, "test");
        pki_issue(pki_, "app", KeySpec{}, Validity{});
        pki_issue(pki_, "noeku", KeySpec{}, Validity{}, "none");
        pki_issue(pki_, "server", KeySpec{}, Validity{}, "serverAuth");
        Validity old;
        old.not_before = ::time(nullptr) - 3 * 86400;
        old.not_after = ::time(nullptr) - 86400;
        pki_issue(pki_, "expired", KeySpec{}, old);
        pki_issue(pki_, "revoked", KeySpec{}, Validity{});
        pki_revoke(pki_, "revoked");
        pki_init(other_pki_, KeySpec{}, 3650, "stranger");
        pki_issue(other_pki_, "app", KeySpec{}, Validity{});

        template_rootfs_ = root_ + "/template-rootfs";
        ASSERT_EQ(sh("sh " + kSrc + "/tests/fixtures/make-rootfs.sh " + template_rootfs_), 0);
        // What the busybox rootfs lacks: a hard-linked pair, file capabilities, a device, a fifo, odd names.
        write(template_rootfs_ + "/usr/bin/tool", "#!/bin/sh\necho tool\n");
        ASSERT_EQ(::chmod((template_rootfs_ + "/usr/bin/tool").c_str(), 0755), 0);
        ASSERT_EQ(::link((template_rootfs_ + "/usr/bin/tool").c_str(), (template_rootfs_ + "/usr/sbin/tool").c_str()),
                  0);
        write(template_rootfs_ + "/bin/capped", "not really ping\n");
        std::string caps = file_caps(1u << 13);  // CAP_NET_RAW
        ASSERT_EQ(
            ::setxattr((template_rootfs_ + "/bin/capped").c_str(), "security.capability", caps.data(), caps.size(), 0),
            0);
        ASSERT_EQ(::mknod((template_rootfs_ + "/dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
        ASSERT_EQ(::chmod((template_rootfs_ + "/dev/null").c_str(), 0666), 0);  // mknod obeys the umask
        ASSERT_EQ(::mkfifo((template_rootfs_ + "/run/fifo").c_str(), 0600), 0);
        write(template_rootfs_ + "/etc/name with space\nand newline%", "odd\n");
        ASSERT_EQ(::mkdir((template_rootfs_ + "/var/big").c_str(), 0755), 0);
        ASSERT_EQ(sh("head -c 3000000 /dev/urandom > " + template_rootfs_ + "/var/big/blob"), 0);

        std::string so = kBin + "/lib/trustme/libtrustme-verify.so";
        plugin_ = ::dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
        ASSERT_NE(plugin_, nullptr) << ::dlerror();
        verify_ = reinterpret_cast<VerifyFn>(::dlsym(plugin_, "trustme_verify_bundle"));
        ASSERT_NE(verify_, nullptr);
    }

    static void TearDownTestSuite() {
        // No dlclose, like the runtime: unloading would orphan the plugin's static libstdc++ emergency
        // exception pool (72 KiB), which LeakSanitizer then reports.
        if (!root_.empty()) sh("rm -rf '" + root_ + "'");
    }

    void SetUp() override {
        static int n = 0;
        dir_ = root_ + "/case" + std::to_string(++n);
        ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
        bundle_ = dir_ + "/bundle";
        rootfs_ = bundle_ + "/rootfs";
        ASSERT_EQ(::mkdir(bundle_.c_str(), 0700), 0);
        ASSERT_EQ(sh("cp -a " + template_rootfs_ + " " + rootfs_), 0);
        config_ = nlohmann::json::parse(R"({
          "ociVersion": "1.0.2", "root": {"path": "rootfs"},
          "process": {"args": ["sh"], "cwd": "/", "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]}},
          "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                                   {"type": "mount"}]}})");
        write_config();
        policy_ = dir_ + "/policy.json";
        write_policy(R"("signature": "required")");
    }

    void write_config() { write(bundle_ + "/config.json", config_.dump(2)); }

    void write_policy(const std::string& extra, const std::string& anchors = "", const std::string& crl = "") {
        write(policy_, "{\"trust_anchors\": [\"" + (anchors.empty() ? pki_ + "/root-ca.pem" : anchors) +
                           "\"], \"crls\": [\"" + (crl.empty() ? pki_ + "/crl.pem" : crl) +
                           "\"], \"verify_cache_dir\": \"" + dir_ + "/cache\", " + extra + "}");
    }

    void sign(const std::string& name = "app", bool embedded = false, const std::string& pki = "") {
        std::string p = pki.empty() ? pki_ : pki;
        UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        // As trustme-sign does: the embedded directory exists before the walk, so the manifest covers it.
        if (embedded) ::mkdir((rootfs_ + "/.trustme").c_str(), 0755);
        UniqueFd r(::open(rootfs_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        std::string manifest = build_manifest(b.get(), r.get(), !embedded);
        std::string where = embedded ? rootfs_ + "/.trustme/manifest" : bundle_ + "/trustme.manifest";
        write(where, manifest);
        write(where + ".p7s",
              cms_sign(manifest, p + "/" + name + ".key", p + "/" + name + ".pem", p + "/" + name + "-chain.pem"));
    }

    // Fds opened once and the exact config bytes, as the runtime passes them.
    template <class Fn>
    Outcome call(Fn fn) {
        Outcome o;
        UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        UniqueFd r(::open(rootfs_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        std::string cfg = slurp(bundle_ + "/config.json");
        trustme_verify_request req{TRUSTME_VERIFY_ABI, policy_.c_str(), bundle_.c_str(), b.get(), r.get(),
                                   cfg.data(),         cfg.size()};
        o.rc = fn(req, o.res);
        return o;
    }

    // Through the plugin, as the runtime calls it.
    Outcome verify() {
        return call([&](const trustme_verify_request& req, trustme_verify_result& res) { return verify_(&req, &res); });
    }

    // Through verify_bundle (the plugin's body) for its statistics: was the CMS verdict cached?
    Outcome verify_with(WalkStats& stats, bool use_cache = true) {
        VerifyOptions opt;
        opt.use_cache = use_cache;
        stats = {};
        return call([&](const trustme_verify_request& req, trustme_verify_result& res) {
            return verify_bundle(&req, &res, opt, &stats);
        });
    }

    // The runtime's in-process warm path (warm.hpp): rc 1 when it accepted from the caches, 0 when it
    // hands over to the plugin.
    Outcome warm() {
        return call([&](const trustme_verify_request& req, trustme_verify_result& res) {
            return verify_warm(req, trustme::signing::policy::load(policy_), res) ? 1 : 0;
        });
    }

    // Verify twice: the first verifies the CMS signature in full, the second takes the cached verdict.
    void expect_verdict_cached() {
        WalkStats s;
        Outcome o = verify_with(s);
        ASSERT_EQ(o.rc, 0) << o.error();
        o = verify_with(s);
        ASSERT_EQ(o.rc, 0) << o.error();
        ASSERT_TRUE(s.signature_cached);
    }

    // Four bytes of a file changed in place, its mtime (and size) restored: only ctime tells.
    static void rewrite_keeping_size_and_mtime(const std::string& p) {
        struct stat st {};
        ASSERT_EQ(::stat(p.c_str(), &st), 0);
        {
            UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CLOEXEC));
            ASSERT_TRUE(fd);
            ASSERT_EQ(::pwrite(fd.get(), "XXXX", 4, 100), 4);
        }
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
    }

    void expect_refused(const std::string& reason) {
        Outcome o = verify();
        EXPECT_NE(o.rc, 0);
        EXPECT_EQ(o.error(), reason);
        EXPECT_EQ(std::string(o.res.error).find('\n'), std::string::npos);
    }

    std::string dir_, bundle_, rootfs_, policy_;
    nlohmann::json config_;
};

}  // namespace

TEST_F(Signing, HonestBundleVerifies) {
    sign();
    Outcome o = verify();
    ASSERT_EQ(o.rc, 0) << o.error();
    EXPECT_STREQ(o.res.location, "bundle");
    EXPECT_STREQ(o.res.signer_subject, "CN=app,O=trustme");
    EXPECT_EQ(std::string(o.res.manifest_digest), sha256_hex(slurp(bundle_ + "/trustme.manifest")));
    EXPECT_EQ(std::string(o.res.config_digest), sha256_hex(slurp(bundle_ + "/config.json")));
    EXPECT_STREQ(o.res.error, "");
    EXPECT_STREQ(o.res.warning, "");
}

TEST_F(Signing, HonestEmbeddedVerifies) {
    sign("app", /*embedded=*/true);
    config_["process"]["args"] = {"echo", "an engine wrote this"};  // not signed: judged by constraints
    write_config();
    Outcome o = verify();
    ASSERT_EQ(o.rc, 0) << o.error();
    EXPECT_STREQ(o.res.location, "rootfs");
    EXPECT_EQ(std::string(o.res.manifest_digest), sha256_hex(slurp(rootfs_ + "/.trustme/manifest")));
}

TEST_F(Signing, ManifestCoversEveryKindOfEntry) {
    sign();
    std::string m = slurp(bundle_ + "/trustme.manifest");
    EXPECT_NE(m.find("\n/usr/sbin/tool f 0755 0 0 link=/usr/bin/tool\n"), std::string::npos) << m;
    EXPECT_NE(m.find("\n/dev/null c 0666 0 0 rdev=1:3\n"), std::string::npos);
    EXPECT_NE(m.find("\n/run/fifo p 0600 0 0\n"), std::string::npos);
    EXPECT_NE(m.find("\n/bin/sh l 0777 0 0 target=../bin/busybox\n"), std::string::npos);
    EXPECT_NE(m.find("\n/etc/name%20with%20space%0Aand%20newline%25 f 0644 0 0 size=4 sha256="), std::string::npos);
    EXPECT_NE(m.find(" xattr.security.capability=0100000200200000000000000000000000000000\n"), std::string::npos);
    EXPECT_NE(m.find("\n/tmp d 1777 0 0\n"), std::string::npos);
    // build_manifest (what trustme-attest measures) gives the very bytes that were signed.
    UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd r(::open(rootfs_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    EXPECT_EQ(build_manifest(b.get(), r.get(), true), m);
    EXPECT_NO_THROW(parse_manifest(m, "m"));
}

TEST_F(Signing, ChangedFileContentRefused) {
    sign();
    write(rootfs_ + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n");
    Outcome o = verify();
    EXPECT_NE(o.rc, 0);
    EXPECT_EQ(o.error().rfind(rootfs_ + "/etc/passwd: content changed (size ", 0), 0u) << o.error();
}

TEST_F(Signing, AddedFileRefused) {
    sign();
    write(rootfs_ + "/etc/evil", "x");
    expect_refused(rootfs_ + "/etc/evil: not in the manifest (added since signing)");
}

TEST_F(Signing, RemovedFileRefused) {
    sign();
    ASSERT_EQ(::unlink((rootfs_ + "/etc/group").c_str()), 0);
    expect_refused(rootfs_ + "/etc/group: missing (removed since signing)");
}

TEST_F(Signing, ChangedModeOwnerXattrRefused) {
    sign();
    ASSERT_EQ(::chmod((rootfs_ + "/bin/busybox").c_str(), 04755), 0);
    expect_refused(rootfs_ + "/bin/busybox: mode 4755, the manifest has 0755");
    ASSERT_EQ(::chmod((rootfs_ + "/bin/busybox").c_str(), 0755), 0);
    ASSERT_EQ(verify().rc, 0);

    ASSERT_EQ(::chown((rootfs_ + "/etc/passwd").c_str(), 1000, 1000), 0);
    expect_refused(rootfs_ + "/etc/passwd: owner 1000:1000, the manifest has 0:0");
    ASSERT_EQ(::chown((rootfs_ + "/etc/passwd").c_str(), 0, 0), 0);

    std::string caps = file_caps(1u << 21);  // CAP_SYS_ADMIN instead of CAP_NET_RAW
    ASSERT_EQ(::setxattr((rootfs_ + "/bin/capped").c_str(), "security.capability", caps.data(), caps.size(), 0), 0);
    expect_refused(rootfs_ + "/bin/capped: xattr security.capability differs from the manifest");
    ASSERT_EQ(::removexattr((rootfs_ + "/bin/capped").c_str(), "security.capability"), 0);
    expect_refused(rootfs_ + "/bin/capped: xattr security.capability from the manifest is missing");
    caps = file_caps(1u << 21);
    ASSERT_EQ(::setxattr((rootfs_ + "/bin/busybox").c_str(), "security.capability", caps.data(), caps.size(), 0), 0);
    Outcome o = verify();
    EXPECT_EQ(o.error(),
              rootfs_ + "/bin/busybox: xattr security.capability is not in the manifest (and 1 more difference)");
}

TEST_F(Signing, RetargetedSymlinkRefused) {
    sign();
    ASSERT_EQ(::unlink((rootfs_ + "/bin/sh").c_str()), 0);
    ASSERT_EQ(::symlink("/host/evil", (rootfs_ + "/bin/sh").c_str()), 0);
    expect_refused(rootfs_ + "/bin/sh: symlink target /host/evil, the manifest has ../bin/busybox");
}

TEST_F(Signing, FileReplacedBySymlinkRefused) {
    sign();
    ASSERT_EQ(::unlink((rootfs_ + "/etc/passwd").c_str()), 0);
    ASSERT_EQ(::symlink("/etc/shadow", (rootfs_ + "/etc/passwd").c_str()), 0);
    expect_refused(rootfs_ + "/etc/passwd: symlink, the manifest has a regular file");
}

TEST_F(Signing, SwappedHardLinkRefused) {
    sign();
    // Same content, same metadata, but no longer the same inode.
    ASSERT_EQ(::unlink((rootfs_ + "/usr/sbin/tool").c_str()), 0);
    ASSERT_EQ(sh("cp -p " + rootfs_ + "/usr/bin/tool " + rootfs_ + "/usr/sbin/tool"), 0);
    expect_refused(rootfs_ + "/usr/sbin/tool: separate file, the manifest has a hard link to /usr/bin/tool");
    // And a link where a separate file was signed.
    ASSERT_EQ(::unlink((rootfs_ + "/usr/sbin/tool").c_str()), 0);
    ASSERT_EQ(::link((rootfs_ + "/usr/bin/tool").c_str(), (rootfs_ + "/usr/sbin/tool").c_str()), 0);
    ASSERT_EQ(verify().rc, 0);
    ASSERT_EQ(::unlink((rootfs_ + "/etc/hostname").c_str()), 0);
    ASSERT_EQ(::link((rootfs_ + "/etc/group").c_str(), (rootfs_ + "/etc/hostname").c_str()), 0);
    Outcome o = verify();
    EXPECT_NE(o.rc, 0);
    EXPECT_EQ(o.error(), rootfs_ + "/etc/hostname: hard link to /etc/group, the manifest has a separate file");
}

TEST_F(Signing, ChangedConfigRefused) {
    sign();
    config_["process"]["args"] = {"sh", "-c", "evil"};
    write_config();
    expect_refused(bundle_ + "/config.json: changed since signing (SHA-256 differs from " + bundle_ +
                   "/trustme.manifest)");
}

TEST_F(Signing, UntrustedCaRefused) {
    sign("app", false, other_pki_);
    expect_refused(bundle_ +
                   "/trustme.manifest.p7s: certificate CN=app,O=trustme: not issued by a trust anchor of "
                   "the policy (unable to get local issuer certificate: CN=stranger signing CA,O=trustme)");
}

TEST_F(Signing, ExpiredCertificateRefused) {
    sign("expired");
    expect_refused(bundle_ + "/trustme.manifest.p7s: certificate CN=expired,O=trustme: certificate has expired");
}

TEST_F(Signing, RevokedCertificateRefused) {
    sign("revoked");
    expect_refused(bundle_ + "/trustme.manifest.p7s: certificate CN=revoked,O=trustme: certificate revoked");
}

TEST_F(Signing, MissingCodeSigningEkuRefused) {
    sign("noeku");
    expect_refused(bundle_ +
                   "/trustme.manifest.p7s: certificate CN=noeku,O=trustme: lacks the codeSigning extended key usage");
    sign("server");
    expect_refused(bundle_ +
                   "/trustme.manifest.p7s: certificate CN=server,O=trustme: lacks the codeSigning extended key usage");
}

TEST_F(Signing, TruncatedOrGarbageSignatureRefused) {
    sign();
    std::string sig = slurp(bundle_ + "/trustme.manifest.p7s");
    write(bundle_ + "/trustme.manifest.p7s", sig.substr(0, sig.size() / 2));
    expect_refused(bundle_ + "/trustme.manifest.p7s: not a CMS signature (truncated or garbage)");
    write(bundle_ + "/trustme.manifest.p7s", "this is not a signature");
    expect_refused(bundle_ + "/trustme.manifest.p7s: not a CMS signature (truncated or garbage)");
    write(bundle_ + "/trustme.manifest.p7s", "");
    expect_refused(bundle_ + "/trustme.manifest.p7s: empty signature");
    ASSERT_EQ(::unlink((bundle_ + "/trustme.manifest.p7s").c_str()), 0);
    expect_refused(bundle_ + "/trustme.manifest.p7s: missing (the manifest is not signed)");
}

TEST_F(Signing, ManifestChangedAfterSigningRefused) {
    sign();
    std::string m = slurp(bundle_ + "/trustme.manifest");
    write(bundle_ + "/trustme.manifest", m + "# more\n");
    Outcome o = verify();
    EXPECT_NE(o.rc, 0);
    EXPECT_EQ(o.error().rfind(bundle_ + "/trustme.manifest.p7s: signature does not match the manifest", 0), 0u)
        << o.error();
}

TEST_F(Signing, ManifestNamingPathOutsideRootfsRefused) {
    // A validly signed manifest that names ../: the parser refuses it before anything is walked.
    std::string body = "trustme-manifest v1\nconfig sha256=" + sha256_hex(slurp(bundle_ + "/config.json")) +
                       "\n/ d 0755 0 0\n/../etc/passwd f 0644 0 0 size=1 sha256=" + std::string(64, 'a') + "\n";
    std::string m = body + "digest sha256=" + sha256_hex(body) + "\n";
    write(bundle_ + "/trustme.manifest", m);
    write(bundle_ + "/trustme.manifest.p7s",
          cms_sign(m, pki_ + "/app.key", pki_ + "/app.pem", pki_ + "/app-chain.pem"));
    expect_refused(bundle_ + "/trustme.manifest line 4: path /../etc/passwd: leaves the rootfs (.. component)");
}

TEST_F(Signing, NotSignedRefused) {
    expect_refused(bundle_ + ": not signed (neither " + bundle_ + "/trustme.manifest nor " + rootfs_ +
                   "/.trustme/manifest exists)");
}

TEST_F(Signing, MalformedPolicyRefusedEvenInWarnMode) {
    sign();
    write(policy_, R"({"signature": "warn", "trust_anchors": ["x"], "verify_cach": false})");
    expect_refused(policy_ + ": verify_cach: unknown field");
    write(policy_, R"({"signature": "required", "trust_anchors": ["x"],)");
    Outcome o = verify();
    EXPECT_NE(o.rc, 0);
    EXPECT_EQ(o.error().rfind(policy_ + ": invalid JSON: ", 0), 0u) << o.error();
    write_policy(R"("signature": "required")", dir_ + "/no-such-ca.pem");
    expect_refused(policy_ + ": trust_anchors: " + dir_ + "/no-such-ca.pem: No such file or directory");
}

TEST_F(Signing, WarnModeRunsButSaysWhy) {
    sign();
    write(rootfs_ + "/etc/evil", "x");
    write_policy(R"("signature": "warn")");
    Outcome o = verify();
    EXPECT_EQ(o.rc, 0);
    EXPECT_EQ(std::string(o.res.warning), rootfs_ + "/etc/evil: not in the manifest (added since signing)");
    EXPECT_STREQ(o.res.location, "none");
    EXPECT_STREQ(o.res.error, "");
}

TEST_F(Signing, EmbeddedConfigJudgedByConstraints) {
    sign("app", /*embedded=*/true);
    config_["process"]["capabilities"]["bounding"].push_back("CAP_SYS_ADMIN");
    write_config();
    expect_refused(bundle_ +
                   "/config.json: process.capabilities.bounding[2]: CAP_SYS_ADMIN is not allowed "
                   "(policy constraints.allowed_capabilities)");
    write_policy(
        R"("signature": "required", "constraints": {"allowed_capabilities": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]})");
    EXPECT_EQ(verify().rc, 0) << verify().error();

    config_["linux"]["namespaces"].erase(1);  // --net=host
    write_config();
    expect_refused(bundle_ +
                   "/config.json: linux.namespaces: no new network namespace: it would be shared with "
                   "the host (policy constraints.allowed_host_namespaces)");
    config_["linux"]["namespaces"].push_back({{"type", "network"}});
    config_["linux"]["devices"] = {{{"path", "/dev/sda"}, {"type", "b"}, {"major", 8}, {"minor", 0}}};
    write_config();
    expect_refused(bundle_ +
                   "/config.json: linux.devices[0]: device /dev/sda (b 8:0) is privileged "
                   "(policy constraints.allow_privileged_devices)");
}

TEST_F(Signing, EmbeddedRootfsTamperingRefused) {
    sign("app", /*embedded=*/true);
    write(rootfs_ + "/.trustme/extra", "x");  // only manifest and manifest.p7s are outside the manifest
    expect_refused(rootfs_ + "/.trustme/extra: not in the manifest (added since signing)");
    ASSERT_EQ(::unlink((rootfs_ + "/.trustme/extra").c_str()), 0);
    write(rootfs_ + "/bin/busybox", "#!/bin/sh\n");
    Outcome o = verify();
    EXPECT_EQ(o.error().rfind(rootfs_ + "/bin/busybox: content changed", 0), 0u) << o.error();
}

TEST_F(Signing, PlantedFifoOrDirectoryRefused) {
    ASSERT_EQ(::mkfifo((bundle_ + "/trustme.manifest").c_str(), 0600), 0);
    expect_refused(bundle_ + "/trustme.manifest: not a regular file");  // and did not block
    ASSERT_EQ(::unlink((bundle_ + "/trustme.manifest").c_str()), 0);
    sign("app", /*embedded=*/true);
    ASSERT_EQ(::unlink((rootfs_ + "/.trustme/manifest.p7s").c_str()), 0);
    ASSERT_EQ(::mkdir((rootfs_ + "/.trustme/manifest.p7s").c_str(), 0755), 0);
    expect_refused(rootfs_ + "/.trustme/manifest.p7s: not a regular file");
}

TEST_F(Signing, EmbeddedManifestMayNotNameConfig) {
    sign("app", /*embedded=*/false);  // a bundle manifest (with config) copied to the embedded place
    ASSERT_EQ(::mkdir((rootfs_ + "/.trustme").c_str(), 0755), 0);
    ASSERT_EQ(::rename((bundle_ + "/trustme.manifest").c_str(), (rootfs_ + "/.trustme/manifest").c_str()), 0);
    ASSERT_EQ(::rename((bundle_ + "/trustme.manifest.p7s").c_str(), (rootfs_ + "/.trustme/manifest.p7s").c_str()), 0);
    expect_refused(rootfs_ +
                   "/.trustme/manifest: names a config.json, but an embedded manifest covers the rootfs only");
}

// The cache must not hide a change, including one that keeps size and mtime (utimensat can restore the
// mtime; the kernel still moves ctime, which is part of the key).
TEST_F(Signing, CacheCatchesChangeThatPreservesMtime) {
    sign();
    // Files younger than the racy margin are never cached; let the copied tree age past it (bounded wait).
    ::sleep(3);
    trustme_verify_result res{};
    UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd r(::open(rootfs_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::string cfg = slurp(bundle_ + "/config.json");
    trustme_verify_request req{TRUSTME_VERIFY_ABI, policy_.c_str(), bundle_.c_str(), b.get(), r.get(),
                               cfg.data(),         cfg.size()};
    WalkStats cold, warm, after;
    ASSERT_EQ(verify_bundle(&req, &res, VerifyOptions{}, &cold), 0) << res.error;
    // At most the second path of the hard-linked /usr/{bin,sbin}/tool: its inode was hashed moments ago.
    EXPECT_LE(cold.cache_hits, 1u);
    ASSERT_EQ(verify_bundle(&req, &res, VerifyOptions{}, &warm), 0) << res.error;
    EXPECT_EQ(warm.cache_hits, warm.files);  // every file came from the cache
    EXPECT_EQ(warm.bytes_hashed, 0u);
    EXPECT_GT(warm.links, 200u);
    EXPECT_EQ(warm.link_cache_hits, warm.links);  // and every symlink's target

    // A symlink retargeted (same length, so same size): a new inode, a new key.
    ASSERT_EQ(::unlink((rootfs_ + "/bin/sh").c_str()), 0);
    ASSERT_EQ(::symlink("../bin/busyboy", (rootfs_ + "/bin/sh").c_str()), 0);
    EXPECT_NE(verify_bundle(&req, &res, VerifyOptions{}, &after), 0);
    EXPECT_EQ(std::string(res.error),
              rootfs_ + "/bin/sh: symlink target ../bin/busyboy, the manifest has ../bin/busybox");
    EXPECT_EQ(after.link_cache_hits, warm.links - 1);
    ASSERT_EQ(::unlink((rootfs_ + "/bin/sh").c_str()), 0);
    ASSERT_EQ(::symlink("../bin/busybox", (rootfs_ + "/bin/sh").c_str()), 0);

    // A cached file's xattrs come from the cache too; changing them moves ctime, so the key misses.
    std::string caps = file_caps(1u << 21);
    ASSERT_EQ(::setxattr((rootfs_ + "/bin/capped").c_str(), "security.capability", caps.data(), caps.size(), 0), 0);
    EXPECT_NE(verify_bundle(&req, &res, VerifyOptions{}, &after), 0);
    EXPECT_EQ(std::string(res.error), rootfs_ + "/bin/capped: xattr security.capability differs from the manifest");
    caps = file_caps(1u << 13);
    ASSERT_EQ(::setxattr((rootfs_ + "/bin/capped").c_str(), "security.capability", caps.data(), caps.size(), 0), 0);
    ASSERT_EQ(verify_bundle(&req, &res, VerifyOptions{}, &after), 0) << res.error;
    EXPECT_EQ(after.cache_hits, warm.files - 1);

    // Same size, same mtime, different content.
    std::string p = rootfs_ + "/bin/busybox";
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    rewrite_keeping_size_and_mtime(p);
    struct stat st2 {};
    ASSERT_EQ(::stat(p.c_str(), &st2), 0);
    ASSERT_EQ(st2.st_size, st.st_size);
    ASSERT_EQ(st2.st_mtim.tv_sec, st.st_mtim.tv_sec);
    ASSERT_EQ(st2.st_mtim.tv_nsec, st.st_mtim.tv_nsec);

    EXPECT_NE(verify_bundle(&req, &res, VerifyOptions{}, &after), 0);
    EXPECT_EQ(std::string(res.error), rootfs_ + "/bin/busybox: content changed (SHA-256 differs from the manifest)");
    EXPECT_EQ(after.cache_hits, warm.files - 2);  // all but busybox and the re-capped file: from the cache

    // The same file swapped for another inode with forged size and mtime: new inode, new key.
    ASSERT_EQ(sh("cp -p " + p + " " + p + ".new && mv " + p + ".new " + p), 0);
    EXPECT_NE(verify_bundle(&req, &res, VerifyOptions{}, &after), 0);
    EXPECT_EQ(std::string(res.error), rootfs_ + "/bin/busybox: content changed (SHA-256 differs from the manifest)");
}

// The CMS verdict cache (signing/cms_cache.hpp): a warm start does no ASN.1/X.509 work, and every input of
// the verdict is in its key.
TEST_F(Signing, SignatureVerdictCachedForTheSameBytes) {
    sign();
    WalkStats s;
    Outcome o = verify_with(s);
    ASSERT_EQ(o.rc, 0) << o.error();
    EXPECT_FALSE(s.signature_cached);
    o = verify_with(s);
    ASSERT_EQ(o.rc, 0) << o.error();
    EXPECT_TRUE(s.signature_cached);
    EXPECT_STREQ(o.res.signer_subject, "CN=app,O=trustme");
    struct stat st {};
    ASSERT_EQ(::stat((dir_ + "/cache").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    ASSERT_EQ(::stat((dir_ + "/cache/cms-verdicts").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, ::geteuid());
    // --no-cache verifies in full.
    o = verify_with(s, /*use_cache=*/false);
    ASSERT_EQ(o.rc, 0) << o.error();
    EXPECT_FALSE(s.signature_cached);
    // Other signature bytes, other key: an untrusted signer is refused although a verdict is cached.
    sign("app", false, other_pki_);
    o = verify_with(s);
    EXPECT_NE(o.rc, 0);
    EXPECT_FALSE(s.signature_cached);
    EXPECT_NE(o.error().find("not issued by a trust anchor of the policy"), std::string::npos) << o.error();
    // Other manifest bytes (re-signed after a change): verified in full again.
    write(rootfs_ + "/etc/motd", "hello\n");
    sign();
    o = verify_with(s);
    ASSERT_EQ(o.rc, 0) << o.error();
    EXPECT_FALSE(s.signature_cached);
}

TEST_F(Signing, SignatureCacheRefusesAfterRevocation) {
    std::string p = dir_ + "/pki";
    ASSERT_EQ(sh("cp -a " + pki_ + " " + p), 0);
    pki_issue(p, "victim", KeySpec{}, Validity{});
    write_policy(R"("signature": "required")", p + "/root-ca.pem", p + "/crl.pem");
    sign("victim", false, p);
    expect_verdict_cached();
    // A new CRL: its bytes are in the key, so the next start verifies in full and refuses.
    pki_revoke(p, "victim");
    std::string why = bundle_ + "/trustme.manifest.p7s: certificate CN=victim,O=trustme: certificate revoked";
    expect_refused(why);
    expect_refused(why);  // and a refusal is never cached as anything else
}

TEST_F(Signing, SignatureCacheFollowsTheTrustAnchors) {
    std::string anchor = dir_ + "/anchor.pem";
    write(anchor, slurp(pki_ + "/root-ca.pem"));
    write_policy(R"("signature": "required")", anchor);
    sign();
    expect_verdict_cached();
    // Same path, other anchor: refused.
    write(anchor, slurp(other_pki_ + "/root-ca.pem"));
    Outcome o = verify();
    EXPECT_NE(o.rc, 0);
    EXPECT_NE(o.error().find("not issued by a trust anchor of the policy"), std::string::npos) << o.error();
    // Back to the right anchor, cached again; then a policy without CRLs is another key (no CRL check).
    write(anchor, slurp(pki_ + "/root-ca.pem"));
    expect_verdict_cached();
    write(policy_, "{\"trust_anchors\": [\"" + anchor + "\"], \"verify_cache_dir\": \"" + dir_ +
                       "/cache\", \"signature\": \"required\"}");
    WalkStats s;
    o = verify_with(s);
    ASSERT_EQ(o.rc, 0) << o.error();
    EXPECT_FALSE(s.signature_cached);
}

TEST_F(Signing, TamperedSignatureCacheMeansFullVerification) {
    sign();
    expect_verdict_cached();
    const std::string file = dir_ + "/cache/cms-verdicts";
    std::string good = slurp(file);
    ASSERT_NE(good.find("CN=app,O=trustme"), std::string::npos) << good;
    WalkStats s;
    auto expect_full = [&](const std::string& what) {
        Outcome o = verify_with(s);
        ASSERT_EQ(o.rc, 0) << what << ": " << o.error();
        EXPECT_FALSE(s.signature_cached) << what;
        EXPECT_STREQ(o.res.signer_subject, "CN=app,O=trustme") << what;
    };
    // A changed field (the signer, the end of validity): the line's checksum no longer matches.
    std::string edited = good;
    edited.replace(edited.find("CN=app,O=trustme"), 6, "CN=bob");
    write(file, edited);
    expect_full("edited signer");
    edited = good;
    size_t until = edited.find(' ', edited.find(' ', edited.find('\n') + 1) + 1) + 1;  // 3rd field of line 1
    edited.replace(until, 1, "9");
    write(file, edited);
    expect_full("edited validity");
    // Garbage, truncation, an empty file, a line of another format.
    for (const std::string& junk : {std::string("garbage\n"), good.substr(0, good.size() / 2), std::string(),
                                    "trustme-cms-verdicts v0\n" + good.substr(good.find('\n') + 1)}) {
        write(file, junk);
        expect_full("junk");
    }
    // Writable by others, or a symlink: not read at all.
    write(file, good);
    ASSERT_EQ(::chmod(file.c_str(), 0666), 0);
    expect_full("mode 0666");
    ASSERT_EQ(::unlink(file.c_str()), 0);
    write(dir_ + "/elsewhere", good);
    ASSERT_EQ(::symlink((dir_ + "/elsewhere").c_str(), file.c_str()), 0);
    expect_full("symlink");
    // Each full verification rewrote the file (atomically, replacing the symlink): cached again.
    expect_verdict_cached();
}

TEST_F(Signing, SignatureCacheExpiresWithTheCertificate) {
    Validity brief;
    brief.not_after = ::time(nullptr) + 10;  // room for two verifications on a loaded machine
    pki_issue(pki_, "brief", KeySpec{}, brief);
    sign("brief");
    expect_verdict_cached();
    while (::time(nullptr) <= *brief.not_after) ::sleep(1);
    expect_refused(bundle_ + "/trustme.manifest.p7s: certificate CN=brief,O=trustme: certificate has expired");
}

// The warm path only ever accepts, and only what the caches vouch for; the plugin decides the rest.
TEST_F(Signing, WarmPathAcceptsOnlyFromTheCaches) {
    sign();
    ::sleep(3);  // files younger than the racy margin are never cached
    EXPECT_EQ(warm().rc, 0) << "nothing is cached yet";
    Outcome full = verify();
    ASSERT_EQ(full.rc, 0) << full.error();
    Outcome w = warm();
    ASSERT_EQ(w.rc, 1);
    EXPECT_STREQ(w.res.location, full.res.location);
    EXPECT_STREQ(w.res.manifest_digest, full.res.manifest_digest);
    EXPECT_STREQ(w.res.config_digest, full.res.config_digest);
    EXPECT_STREQ(w.res.signer_subject, full.res.signer_subject);
    EXPECT_STREQ(w.res.error, "");

    // Changed content (same size and mtime): the warm path does not decide, the plugin refuses.
    std::string p = rootfs_ + "/bin/busybox";
    rewrite_keeping_size_and_mtime(p);
    EXPECT_EQ(warm().rc, 0);
    expect_refused(rootfs_ + "/bin/busybox: content changed (SHA-256 differs from the manifest)");
    EXPECT_EQ(warm().rc, 0);

    // A changed config.json: refused by the plugin, never accepted warm.
    ASSERT_EQ(sh("cp -a " + template_rootfs_ + "/bin/busybox " + p), 0);
    config_["process"]["args"] = {"sh", "-c", "evil"};
    write_config();
    EXPECT_EQ(warm().rc, 0);
    expect_refused(bundle_ + "/config.json: changed since signing (SHA-256 differs from " + bundle_ +
                   "/trustme.manifest)");
}

// The tree record (cache.hpp): a warm start that finds every entry's stamps unchanged walks nothing; any
// change to an entry, a directory's list of names or what is mounted where is a miss.
TEST_F(Signing, WarmPathTreeRecord) {
    sign();
    ::sleep(3);
    ASSERT_EQ(verify().rc, 0);  // the full verification records the tree
    trustme_verify_result res{};
    auto warm_stats = [&](WalkStats& st) {
        return call([&](const trustme_verify_request& req, trustme_verify_result& r) {
            VerifyCore core;  // as verify_warm: no CMS function
            try {
                return verify_run(req, r, trustme::signing::policy::load(policy_), core, &st) ? 1 : 0;
            } catch (const std::exception& e) {
                std::snprintf(r.error, sizeof r.error, "%s", e.what());
                return -1;
            }
        });
    };
    WalkStats st;
    ASSERT_EQ(warm_stats(st).rc, 1);
    EXPECT_TRUE(st.tree_cached);
    EXPECT_EQ(st.entries, 0u) << "nothing walked";

    // A file changed in place (same size and mtime): its ctime moved, the record misses, and the
    // cache-only walk misses too (the digest cache is keyed by ctime as well): the plugin decides.
    std::string p = rootfs_ + "/bin/busybox";
    rewrite_keeping_size_and_mtime(p);
    st = {};
    EXPECT_EQ(warm_stats(st).rc, 0);
    expect_refused(rootfs_ + "/bin/busybox: content changed (SHA-256 differs from the manifest)");
    ASSERT_EQ(sh("cp -a " + template_rootfs_ + "/bin/busybox " + p), 0);
    ::sleep(3);
    ASSERT_EQ(verify().rc, 0);
    st = {};
    ASSERT_EQ(warm_stats(st).rc, 1);
    ASSERT_TRUE(st.tree_cached);

    // A name added to a directory: the directory's ctime moved; the walk then finds the added file.
    write(rootfs_ + "/etc/added", "x");
    st = {};
    EXPECT_NE(warm_stats(st).rc, 1);
    expect_refused(rootfs_ + "/etc/added: not in the manifest (added since signing)");
    ASSERT_EQ(::unlink((rootfs_ + "/etc/added").c_str()), 0);
    ::sleep(3);
    ASSERT_EQ(verify().rc, 0);
    st = {};
    ASSERT_EQ(warm_stats(st).rc, 1);

    // Something mounted over an entry keeps every stamp of the directory but not the entry's mount id.
    // In a private mount namespace (mount ids differ there, so the tree is verified and recorded in it first).
    pid_t child = ::fork();
    if (child == 0) {
        if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(10);
        if (verify().rc != 0) _exit(11);
        WalkStats s1;
        if (warm_stats(s1).rc != 1 || !s1.tree_cached) _exit(12);
        if (::mount((rootfs_ + "/etc/group").c_str(), (rootfs_ + "/etc/passwd").c_str(), nullptr, MS_BIND, nullptr) !=
            0)
            _exit(13);
        WalkStats s2;
        Outcome o = warm_stats(s2);
        _exit(o.rc == 1 ? 1 : s2.tree_cached ? 2 : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: accepted, 2: tree record stood, 10-13: set-up step failed";

    // A damaged record is a miss (the line checksum), never an acceptance.
    // (Every record: the one made in the private mount namespace above is there too.)
    int damaged = 0;
    for (const auto& de : std::filesystem::directory_iterator(dir_ + "/cache")) {
        if (de.path().extension() != ".tree") continue;
        std::string text = slurp(de.path());
        size_t at = text.find(" /bin/busybox\n");
        ASSERT_NE(at, std::string::npos);
        text[at - 1] = text[at - 1] == '1' ? '2' : '1';  // the last digit of its ctime nanoseconds
        write(de.path(), text);
        ++damaged;
    }
    ASSERT_GE(damaged, 1);
    st = {};
    ASSERT_EQ(warm_stats(st).rc, 1);  // the digest cache still serves the walk
    EXPECT_FALSE(st.tree_cached);
    (void)res;
}

// A cached verdict stands only while the libcrypto that reached it is the same file (cms_cache.hpp).
TEST_F(Signing, WarmPathNeedsTheSameLibcrypto) {
    sign();
    ::sleep(3);
    ASSERT_EQ(verify().rc, 0);
    ASSERT_EQ(warm().rc, 1);
    // Make the entry name another "library", with a valid line checksum: the warm path accepts while that
    // file is unchanged, and lapses when it changes (as after a libcrypto upgrade).
    std::string lib = dir_ + "/libcrypto-stand-in.so";
    write(lib, "stand-in");
    std::string store = dir_ + "/cache/cms-verdicts";
    std::string text = slurp(store);
    size_t nl = text.find('\n');
    std::string line = text.substr(nl + 1, text.find('\n', nl + 1) - nl - 1);
    std::vector<std::string> f;
    for (size_t i = 0; i <= line.size();) {
        size_t j = line.find(' ', i);
        if (j == std::string::npos) j = line.size();
        f.push_back(line.substr(i, j - i));
        i = j + 1;
    }
    ASSERT_EQ(f.size(), 10u) << line;  // ... LIBRARY SIGNED_SHA256 CHECK
    EXPECT_EQ(*decode_field(f[7]), library_identity(libcrypto_path()));
    f[7] = encode_field(library_identity(lib));
    std::string rewritten;
    for (size_t i = 0; i < 9; ++i) rewritten += (i ? " " : "") + f[i];
    rewritten += " " + sha256_hex(rewritten);
    write(store, text.substr(0, nl + 1) + rewritten + "\n");
    EXPECT_EQ(warm().rc, 1);
    ASSERT_EQ(sh("printf x >> " + lib), 0);
    EXPECT_EQ(warm().rc, 0);
    // The plugin's libcrypto is not the one named: it verifies in full (and remembers its own verdict).
    WalkStats s;
    ASSERT_EQ(verify_with(s).rc, 0);
    EXPECT_FALSE(s.signature_cached);
    EXPECT_EQ(warm().rc, 1);
}

// End to end: a warm signed `create` maps neither libcrypto nor the verify plugin; a cold one does.
TEST_F(Signing, RuntimeWarmStartLoadsNoLibcrypto) {
    config_["process"]["user"] = {{"uid", 0}, {"gid", 0}};
    write_config();
    sign();
    ::sleep(3);
    const std::string root = dir_ + "/state", rt = kBin + "/bin/trustme-runtime";
    auto maps_of_create = [&](const std::string& id) {
        std::string pidfile = dir_ + "/" + id + ".pid";
        EXPECT_EQ(sh(rt + " --root " + root + " --policy " + policy_ + " create --pid-file " + pidfile + " -b " +
                     bundle_ + " " + id),
                  0);
        std::string maps = slurp("/proc/" + slurp(pidfile) + "/maps");  // the init, a clone of create
        EXPECT_EQ(sh(rt + " --root " + root + " delete --force " + id), 0);
        return maps;
    };
    std::string cold = maps_of_create("cold");
    EXPECT_NE(cold.find("libcrypto"), std::string::npos);
    EXPECT_NE(cold.find("libtrustme-verify.so"), std::string::npos);
    std::string warm = maps_of_create("warm");
    EXPECT_NE(warm.find("r-xp"), std::string::npos) << "no maps read";
    EXPECT_EQ(warm.find("libcrypto"), std::string::npos);
    EXPECT_EQ(warm.find("libtrustme-verify.so"), std::string::npos);
}

TEST_F(Signing, CacheOffInPolicyOrFlag) {
    sign();
    ::sleep(3);
    write_policy(R"("signature": "required", "verify_cache": false)");
    UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd r(::open(rootfs_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::string cfg = slurp(bundle_ + "/config.json");
    trustme_verify_request req{TRUSTME_VERIFY_ABI, policy_.c_str(), bundle_.c_str(), b.get(), r.get(),
                               cfg.data(),         cfg.size()};
    trustme_verify_result res{};
    WalkStats s;
    ASSERT_EQ(verify_bundle(&req, &res, VerifyOptions{}, &s), 0);
    ASSERT_EQ(verify_bundle(&req, &res, VerifyOptions{}, &s), 0);
    EXPECT_EQ(s.cache_hits, 0u);
    EXPECT_FALSE(path_exists(dir_ + "/cache"));
    write_policy(R"("signature": "required")");
    ASSERT_EQ(verify_bundle(&req, &res, VerifyOptions{}, &s), 0);
    VerifyOptions cold;
    cold.use_cache = false;
    ASSERT_EQ(verify_bundle(&req, &res, cold, &s), 0);
    EXPECT_EQ(s.cache_hits, 0u);
}

// Time of check / time of use: what is verified is the directory the fd refers to, whatever the path
// names later; the runtime mounts that fd.
TEST_F(Signing, VerificationBindsToTheFdNotThePath) {
    sign();
    UniqueFd r(::open(rootfs_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::string before = build_manifest(b.get(), r.get(), true);
    // Swap the rootfs path for an evil tree after the fds were opened.
    ASSERT_EQ(::rename(rootfs_.c_str(), (dir_ + "/verified-rootfs").c_str()), 0);
    ASSERT_EQ(sh("mkdir -p " + rootfs_ + "/bin && echo evil > " + rootfs_ + "/bin/busybox"), 0);
    std::string cfg = slurp(bundle_ + "/config.json");
    trustme_verify_request req{TRUSTME_VERIFY_ABI, policy_.c_str(), bundle_.c_str(), b.get(), r.get(),
                               cfg.data(),         cfg.size()};
    trustme_verify_result res{};
    EXPECT_EQ(verify_(&req, &res), 0) << res.error;  // the fd still names the verified tree
    EXPECT_EQ(build_manifest(b.get(), r.get(), true), before);
    // And through the path, the evil tree is refused.
    Outcome o = verify();
    EXPECT_NE(o.rc, 0);
}

TEST_F(Signing, AbiMismatchRefused) {
    trustme_verify_request req{};
    req.abi = TRUSTME_VERIFY_ABI + 1;
    trustme_verify_result res{};
    EXPECT_NE(verify_(&req, &res), 0);
    EXPECT_STREQ(res.error, "libtrustme-verify: ABI mismatch (runtime and plugin from different builds)");
}

TEST_F(Signing, PluginExportsOnlyTheAbi) {
    EXPECT_EQ(sh("test \"$(nm -D --defined-only " + kBin +
                 "/lib/trustme/libtrustme-verify.so | awk '{print $3}')\" = trustme_verify_bundle"),
              0);
}

// The CLI: same verdicts, one line on stderr, exit status; and a failed sign leaves nothing behind.
TEST_F(Signing, CliSignVerifyInspect) {
    std::string s = kBin + "/bin/trustme-sign";
    ASSERT_EQ(sh(s + " sign --dir " + pki_ + " --name app " + bundle_ + " > " + dir_ + "/out 2>&1"), 0)
        << slurp(dir_ + "/out");
    UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd r(::open(rootfs_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    EXPECT_EQ(slurp(bundle_ + "/trustme.manifest"), build_manifest(b.get(), r.get(), true));
    EXPECT_EQ(sh(s + " verify --policy " + policy_ + " --no-cache " + bundle_ + " > " + dir_ + "/out 2>&1"), 0)
        << slurp(dir_ + "/out");
    EXPECT_EQ(sh(s + " inspect " + bundle_ + " > " + dir_ + "/out 2>&1"), 0);
    EXPECT_NE(slurp(dir_ + "/out").find("CN=app,O=trustme"), std::string::npos);

    write(rootfs_ + "/etc/evil", "x");
    EXPECT_EQ(sh(s + " verify --policy " + policy_ + " " + bundle_ + " > /dev/null 2> " + dir_ + "/err"), 1);
    EXPECT_EQ(slurp(dir_ + "/err"),
              "trustme-sign: " + rootfs_ + "/etc/evil: not in the manifest (added since signing)\n");

    // Wrong key for the certificate: one line, and no manifest written.
    ASSERT_EQ(::unlink((bundle_ + "/trustme.manifest").c_str()), 0);
    ASSERT_EQ(::unlink((bundle_ + "/trustme.manifest.p7s").c_str()), 0);
    EXPECT_EQ(sh(s + " sign --key " + pki_ + "/noeku.key --cert " + pki_ + "/app.pem " + bundle_ + " > /dev/null 2> " +
                 dir_ + "/err"),
              1);
    EXPECT_EQ(slurp(dir_ + "/err"), "trustme-sign: " + pki_ + "/noeku.key: does not match " + pki_ + "/app.pem\n");
    EXPECT_FALSE(path_exists(bundle_ + "/trustme.manifest"));
    EXPECT_FALSE(path_exists(bundle_ + "/trustme.manifest.p7s"));
}

TEST_F(Signing, CliPkiWithRsa) {
    std::string s = kBin + "/bin/trustme-sign";
    std::string d = dir_ + "/rsa-pki";
    ASSERT_EQ(sh(s + " pki init --dir " + d + " --algo rsa3072 > /dev/null"), 0);
    ASSERT_EQ(sh(s + " pki issue --dir " + d + " --name signer --algo rsa3072 > /dev/null"), 0);
    ASSERT_EQ(sh(s + " sign --embedded --dir " + d + " --name signer " + bundle_ + " > /dev/null"), 0);
    write_policy(R"("signature": "required")", d + "/root-ca.pem");
    write(policy_,
          slurp(policy_).replace(slurp(policy_).find(pki_ + "/crl.pem"), (pki_ + "/crl.pem").size(), d + "/crl.pem"));
    Outcome o = verify();
    EXPECT_EQ(o.rc, 0) << o.error();
    EXPECT_STREQ(o.res.location, "rootfs");
    ASSERT_EQ(sh(s + " pki revoke --dir " + d + " --name signer > /dev/null"), 0);
    expect_refused(rootfs_ + "/.trustme/manifest.p7s: certificate CN=signer,O=trustme: certificate revoked");
    EXPECT_EQ(sh(s + " pki init --dir " + dir_ + "/weak --algo rsa2048 2> " + dir_ + "/err"), 1);
    EXPECT_EQ(slurp(dir_ + "/err"), "trustme-sign: --algo rsa2048: RSA needs 3072..16384 bits\n");
}

// ---- Bounded reads of the bundle: nothing in it can hang, follow a writer or be read unsigned. ----

namespace {

// `cmd` under a bound: its exit status, or 124 when `timeout` had to stop it (it hung).
int sh_bounded(const std::string& cmd, int seconds = 20) {
    return sh("timeout -k 2 " + std::to_string(seconds) + " " + cmd);
}

// Bytes this process has read with read(2) so far (/proc/self/io rchar).
uint64_t rchar() {
    std::string io = slurp("/proc/self/io");
    auto p = io.find("rchar: ");
    return p == std::string::npos ? 0 : std::stoull(io.substr(p + 7));
}

}  // namespace

// A config.json that is a fifo: one line naming it, from the runtime (create, run, verify) and from
// trustme-sign, never a hang (open without O_NONBLOCK waited for a writer, with every signal blocked).
TEST_F(Signing, FifoConfigIsOneLineNotAHang) {
    sign();
    ASSERT_EQ(::unlink((bundle_ + "/config.json").c_str()), 0);
    ASSERT_EQ(::mkfifo((bundle_ + "/config.json").c_str(), 0600), 0);
    const std::string rt = kBin + "/bin/trustme-runtime", root = dir_ + "/state", err = dir_ + "/err";
    const std::string line = bundle_ + "/config.json: not a regular file\n";
    for (const std::string& cmd : {"create -b " + bundle_ + " fifo1", "run -b " + bundle_ + " fifo2"}) {
        EXPECT_EQ(sh_bounded(rt + " --root " + root + " " + cmd + " < /dev/null > /dev/null 2> " + err), 1) << cmd;
        EXPECT_EQ(slurp(err), "trustme-runtime: " + line) << cmd;
    }
    EXPECT_EQ(sh_bounded(rt + " --policy " + policy_ + " verify " + bundle_ + " > /dev/null 2> " + err), 1);
    EXPECT_EQ(slurp(err), "trustme-runtime: " + line);
    EXPECT_EQ(
        sh_bounded(kBin + "/bin/trustme-sign verify --policy " + policy_ + " " + bundle_ + " > /dev/null 2> " + err),
        1);
    EXPECT_EQ(slurp(err), "trustme-sign: " + line);
    // A device under the name is refused the same way, unread.
    ASSERT_EQ(::unlink((bundle_ + "/config.json").c_str()), 0);
    ASSERT_EQ(::mknod((bundle_ + "/config.json").c_str(), S_IFCHR | 0600, makedev(1, 5)), 0);  // /dev/zero
    EXPECT_EQ(sh_bounded(rt + " --root " + root + " create -b " + bundle_ + " zero < /dev/null > /dev/null 2> " + err),
              1);
    EXPECT_EQ(slurp(err), "trustme-runtime: " + line);
    EXPECT_FALSE(path_exists(root + "/fifo1") || path_exists(root + "/fifo2") || path_exists(root + "/zero"));
}

// A file extended while it is hashed (here sparsely, 1 GiB every 10 ms: faster than anyone can hash) is
// refused after at most its statx size + 1 byte, while the writer is still at it; it used to be followed
// for as long as the writer kept going.
TEST_F(Signing, GrowingFileIsRefusedNotFollowed) {
    // 256 MiB (sparse): hashing it takes far longer than the writer needs to wake up and start.
    const std::string p = rootfs_ + "/var/grows";
    {
        UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        ASSERT_TRUE(fd);
        ASSERT_EQ(::ftruncate(fd.get(), off_t{256} << 20), 0);
    }
    sign();
    // The writer starts when the verifier opens the file to hash it (inotify IN_OPEN), so the size the
    // verifier's statx sees is still about the signed one.
    UniqueFd in(::inotify_init1(IN_CLOEXEC));
    ASSERT_TRUE(in);
    ASSERT_GE(::inotify_add_watch(in.get(), p.c_str(), IN_OPEN), 0);
    pid_t grower = ::fork();
    ASSERT_GE(grower, 0);
    if (grower == 0) {
        char ev[256];
        if (::read(in.get(), ev, sizeof ev) <= 0) ::_exit(1);
        int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
        off_t size = off_t{256} << 20;
        for (int i = 0; i < 15000 && fd >= 0; ++i) {  // 30 s at most: 128 GB/s of apparent growth
            size += off_t{256} << 20;
            if (::ftruncate(fd, size) < 0) break;
            ::usleep(2000);
        }
        ::_exit(0);
    }
    in.reset();
    Outcome o = verify();
    int status = 0;
    const bool writer_still_running = ::waitpid(grower, &status, WNOHANG) == 0;
    ::kill(grower, SIGKILL);
    ::waitpid(grower, &status, 0);
    EXPECT_TRUE(writer_still_running) << "verification followed the growing file until its writer stopped";
    EXPECT_NE(o.rc, 0);
    EXPECT_EQ(o.error(), rootfs_ + "/var/grows: changed while being hashed");
}

// The signature is judged before the manifest is read: a manifest with a signature that is not one is
// refused without reading it, and one larger than the cap is refused from its size (it used to be read
// whole, up to 1 GiB, and hashed twice before the signature was looked at).
TEST_F(Signing, UnsignedHugeManifestIsNotRead) {
    const std::string m = bundle_ + "/trustme.manifest";
    {
        UniqueFd fd(::open(m.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        ASSERT_TRUE(fd);
        ASSERT_EQ(::ftruncate(fd.get(), off_t{200} << 20), 0);  // 200 MiB, under the cap
    }
    write(m + ".p7s", "this is not a signature");
    const uint64_t before = rchar();
    expect_refused(m + ".p7s: not a CMS signature (truncated or garbage)");
    EXPECT_LT(rchar() - before, uint64_t{16} << 20) << "the unsigned manifest was read";

    // Over the cap: refused from fstat, even with a valid signature (of another manifest) beside it.
    sign();
    {
        UniqueFd fd(::open(m.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
        ASSERT_TRUE(fd);
        ASSERT_EQ(::ftruncate(fd.get(), (off_t{1} << 30) + 1), 0);
    }
    const uint64_t before2 = rchar();
    expect_refused(m + ": larger than 268435456 bytes");
    EXPECT_LT(rchar() - before2, uint64_t{16} << 20);
}

// SIGTERM reaches `run` while it verifies the bundle (here: hashing a 4 GiB sparse file that was added
// after signing); the forwarded signals used to be blocked from the start, so nothing could stop it.
TEST_F(Signing, RunCanBeTerminatedWhileVerifying) {
    config_["process"]["user"] = {{"uid", 0}, {"gid", 0}};
    write_config();
    sign();
    {
        UniqueFd fd(::open((rootfs_ + "/var/big/sparse").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        ASSERT_TRUE(fd);
        ASSERT_EQ(::ftruncate(fd.get(), off_t{4} << 30), 0);
    }
    write_policy(R"("signature": "required", "verify_cache": "off")");
    const std::string rt = kBin + "/bin/trustme-runtime";
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int null = ::open("/dev/null", O_RDWR);
        int err = ::open((dir_ + "/err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(null, 0), ::dup2(null, 1), ::dup2(err, 2);
        ::execl(rt.c_str(), rt.c_str(), "--root", (dir_ + "/state").c_str(), "--policy", policy_.c_str(), "run", "-b",
                bundle_.c_str(), "term", nullptr);
        ::_exit(127);
    }
    ::usleep(300000);  // well inside the hashing of 4 GiB
    ::kill(pid, SIGTERM);
    int status = 0;
    pid_t got = 0;
    for (int i = 0; i < 200 && (got = ::waitpid(pid, &status, WNOHANG)) == 0; ++i) ::usleep(50000);  // 10 s
    if (got == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
    }
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
        << "run went on verifying (or was stopped only by SIGKILL): status " << status << ": " << slurp(dir_ + "/err");
    EXPECT_FALSE(path_exists(dir_ + "/state/term"));
}

// The stamps' limit, shown: a store into a page of a MAP_SHARED mapping that is already dirty changes the
// content without moving mtime or ctime (on tmpfs the page is never written back, so never again). Mode
// "stamps" then accepts the changed file from the caches; mode "verity-only" never trusts stamps and
// refuses it; so does a verification without the cache.
TEST_F(Signing, MapSharedStoreAfterPrimingAndVerityOnly) {
    char t[] = "/dev/shm/trustme-mapshared.XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    const std::string shm = t;
    bundle_ = shm + "/bundle";
    rootfs_ = bundle_ + "/rootfs";
    ASSERT_EQ(sh("cp -a " + dir_ + "/bundle " + shm + "/"), 0);
    const std::string p = rootfs_ + "/etc/passwd";
    write(p, "root:x:0:0:root:/root:/bin/sh\n");
    sign();
    // One no-op store through a shared mapping: the page is dirty and writable, ctime moved once, now.
    UniqueFd fd(::open(p.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd);
    auto* map = static_cast<char*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0));
    ASSERT_NE(map, MAP_FAILED);
    *static_cast<volatile char*>(map) = *static_cast<volatile char*>(map);
    ::sleep(3);                 // past the racy margin
    ASSERT_EQ(verify().rc, 0);  // primes the digest cache and the tree record
    ASSERT_EQ(warm().rc, 1);
    // A verification in mode "verity-only" accepts the unchanged file by reading it; it must leave no
    // tree record that a later warm start could take for the file's content (fs-verity seals nothing here).
    write_policy(R"("signature": "required", "verify_cache": "verity-only")");
    ASSERT_EQ(verify().rc, 0);
    struct stat before {
    }, after{};
    ASSERT_EQ(::stat(p.c_str(), &before), 0);
    std::memcpy(map, "evil:x:0:0", 10);  // same size
    ASSERT_EQ(::msync(map, 4096, MS_SYNC), 0);
    ASSERT_EQ(::fsync(fd.get()), 0);
    ASSERT_EQ(::stat(p.c_str(), &after), 0);
    ASSERT_EQ(slurp(p).substr(0, 4), "evil");
    EXPECT_EQ(before.st_ctim.tv_nsec, after.st_ctim.tv_nsec);
    EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
    // "verity-only": stamps vouch for nothing; the file has no fs-verity here, so it is read, and refused.
    EXPECT_EQ(warm().rc, 0);
    expect_refused(p + ": content changed (SHA-256 differs from the manifest)");
    // "stamps": the limit docs/signing.md states. Both the warm path and the plugin accept from the caches.
    write_policy(R"("signature": "required")");
    EXPECT_EQ(warm().rc, 1) << "stamps moved after all: the kernel closed the window";
    EXPECT_EQ(verify().rc, 0);
    write_policy(R"("signature": "required", "verify_cache": "off")");
    expect_refused(p + ": content changed (SHA-256 differs from the manifest)");
    ::munmap(map, 4096);
    fd.reset();
    sh("rm -rf '" + shm + "'");
}

// ---- fs-verity in the manifest. This host's filesystems have no fs-verity (the VM test enables it). ----

// `sign --verity` where the filesystem has no fs-verity: one line, and nothing written or left behind.
TEST_F(Signing, SignVerityWithoutFilesystemSupportIsOneLine) {
    UniqueFd probe(::open(rootfs_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(probe);
    UniqueFd f(::openat(probe.get(), "bin/busybox", O_RDONLY | O_CLOEXEC));
    probe.reset();
    ASSERT_TRUE(f);
    int err = 0;
    if (measure_verity(f.get(), &err) || err == ENODATA) GTEST_SKIP() << "this filesystem has fs-verity";
    const std::string s = kBin + "/bin/trustme-sign", errf = dir_ + "/err";
    EXPECT_EQ(sh(s + " sign --verity --dir " + pki_ + " --name app " + bundle_ + " > /dev/null 2> " + errf), 1);
    std::string e = slurp(errf);
    EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 1) << e;
    EXPECT_NE(e.find(": fs-verity: not supported by this"), std::string::npos) << e;
    EXPECT_FALSE(path_exists(bundle_ + "/trustme.manifest"));
    EXPECT_FALSE(path_exists(bundle_ + "/trustme.manifest.p7s"));
}

// A manifest with fs-verity digests verifies where files have no fs-verity (their content is read and
// hashed, as without them); in mode "verity-only" the warm path then cannot vouch for them and hands over.
TEST_F(Signing, VerityManifestWithoutVerityFallsBackToHashing) {
    UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    UniqueFd r(::open(rootfs_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    const std::string manifest = build_manifest(b.get(), r.get(), true, /*fsverity=*/true);
    EXPECT_NE(manifest.find("/bin/busybox f 0755 0 0 size="), std::string::npos);
    EXPECT_NE(manifest.find(" fsverity="), std::string::npos);
    Manifest m = parse_manifest(manifest, "m");
    EXPECT_EQ(render(m), manifest);
    write(bundle_ + "/trustme.manifest", manifest);
    write(bundle_ + "/trustme.manifest.p7s",
          cms_sign(manifest, pki_ + "/app.key", pki_ + "/app.pem", pki_ + "/app-chain.pem"));
    ::sleep(3);
    for (const char* mode : {"stamps", "verity-only"}) {
        write_policy(std::string(R"("signature": "required", "verify_cache": ")") + mode + "\"");
        WalkStats st;
        Outcome o = verify_with(st);
        EXPECT_EQ(o.rc, 0) << mode << ": " << o.error();
        EXPECT_EQ(st.verity_files, 0u);
        EXPECT_GT(st.bytes_hashed, 0u) << mode;
    }
    EXPECT_EQ(warm().rc, 0) << "verity-only: no fs-verity on these files, nothing may vouch for them warm";
    write_policy(R"("signature": "required", "verify_cache": "stamps")");
    EXPECT_EQ(warm().rc, 1);
    rewrite_keeping_size_and_mtime(rootfs_ + "/bin/busybox");
    expect_refused(rootfs_ + "/bin/busybox: content changed (SHA-256 differs from the manifest)");
}
