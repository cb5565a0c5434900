// fs-verity end to end, inside the test VM (label vm-guest; Debian's kernel has CONFIG_FS_VERITY=y, the
// host's ext4 has no verity): an ext4 made with `mkfs.ext4 -O verity` in a file, loop-mounted; a bundle
// signed there with `trustme-sign sign --verity`; verification in mode "verity-only" measures instead of
// reading; a stored-to file is impossible; a block corrupted under the filesystem fails the read (EIO).
// Outside the VM (TRUSTME_VM_GUEST unset) every test is skipped.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "base/fd.hpp"
#include "signing/fsverity.hpp"
#include "signing/manifest.hpp"
#include "signing/policy.hpp"
#include "signing/verify.hpp"
#include "signing/verify_core.hpp"
#include "signing/warm.hpp"

using namespace trustme;
using namespace trustme::signing;

namespace {

const std::string kBin = TRUSTME_BINARY_DIR;

int sh(const std::string& cmd) {
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void write(const std::string& path, const std::string& data) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << data;
}

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

class VerityVm : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::getenv("TRUSTME_VM_GUEST")) GTEST_SKIP() << "runs inside the test VM only (tests/vm/run-in-vm.sh)";
        char t[] = "/tmp/trustme-verity-vm.XXXXXX";
        ASSERT_NE(::mkdtemp(t), nullptr);
        dir_ = t;
        img_ = dir_ + "/fs.img";
        mnt_ = dir_ + "/mnt";
        ASSERT_EQ(sh("truncate -s 64M " + img_ + " && mkfs.ext4 -q -b 4096 -O verity " + img_ + " && mkdir " + mnt_ +
                     " && mount -o loop " + img_ + " " + mnt_),
                  0);
        mounted_ = true;
        bundle_ = mnt_ + "/bundle";
        rootfs_ = bundle_ + "/rootfs";
        ASSERT_EQ(sh("mkdir -p " + rootfs_ + "/bin " + rootfs_ + "/etc " + rootfs_ + "/var"), 0);
        write(rootfs_ + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
        std::string big(3 * 128 * 4096 + 777, '\0');
        for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4096);
        write(rootfs_ + "/var/big", big);
        write(rootfs_ + "/bin/tool", "#!/bin/sh\necho tool\n");
        ASSERT_EQ(::link((rootfs_ + "/bin/tool").c_str(), (rootfs_ + "/bin/tool2").c_str()), 0);
        ASSERT_EQ(::symlink("tool", (rootfs_ + "/bin/sh").c_str()), 0);
        write(rootfs_ + "/empty", "");
        write(bundle_ + "/config.json", R"({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/"}, "linux": {"namespaces": [{"type": "mount"}]}})");
        pki_ = dir_ + "/pki";
        sign_ = kBin + "/bin/trustme-sign";
        ASSERT_EQ(sh(sign_ + " pki init --dir " + pki_ + " > /dev/null && " + sign_ + " pki issue --dir " + pki_ +
                     " --name app > /dev/null"),
                  0);
        policy_ = dir_ + "/policy.json";
        write(policy_, R"({"trust_anchors": [")" + pki_ + R"(/root-ca.pem"], "verify_cache": "verity-only",
                          "verify_cache_dir": ")" +
                           dir_ + R"(/cache"})");
    }

    void TearDown() override {
        if (mounted_) sh("umount -d " + mnt_);
        if (!dir_.empty()) sh("rm -rf " + dir_);
    }

    // Through verify_bundle (the plugin's body) for its statistics.
    int verify(WalkStats& st, std::string* error = nullptr) {
        UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        UniqueFd r(::open(rootfs_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        std::string cfg = slurp(bundle_ + "/config.json");
        trustme_verify_request req{TRUSTME_VERIFY_ABI, policy_.c_str(), bundle_.c_str(), b.get(), r.get(),
                                   cfg.data(),         cfg.size()};
        trustme_verify_result res{};
        int rc = verify_bundle(&req, &res, VerifyOptions{}, &st);
        if (error) *error = res.error;
        return rc;
    }

    bool warm() {
        UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        UniqueFd r(::open(rootfs_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        std::string cfg = slurp(bundle_ + "/config.json");
        trustme_verify_request req{TRUSTME_VERIFY_ABI, policy_.c_str(), bundle_.c_str(), b.get(), r.get(),
                                   cfg.data(),         cfg.size()};
        trustme_verify_result res{};
        return verify_warm(req, trustme::signing::policy::load(policy_), res);
    }

    // The warm path's body (verify_warm without its catch-all), for its statistics: true when it
    // accepted, false when the caches could not decide; a refusal fails the test.
    bool warm_run(WalkStats& st) {
        UniqueFd b(::open(bundle_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        UniqueFd r(::open(rootfs_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        std::string cfg = slurp(bundle_ + "/config.json");
        trustme_verify_request req{TRUSTME_VERIFY_ABI, policy_.c_str(), bundle_.c_str(), b.get(), r.get(),
                                   cfg.data(),         cfg.size()};
        trustme_verify_result res{};
        st = WalkStats{};
        return verify_run(req, res, trustme::signing::policy::load(policy_), VerifyCore{}, &st);
    }

    std::string dir_, img_, mnt_, bundle_, rootfs_, pki_, sign_, policy_;
    bool mounted_ = false;
};

}  // namespace

TEST_F(VerityVm, SignEnablesVerityAndWarmStartMeasures) {
    ASSERT_EQ(sh(sign_ + " sign --verity --dir " + pki_ + " --name app " + bundle_ + " > /dev/null"), 0);
    // The kernel's digests are the manifest's (sign cross-checks too), and the cross-check with
    // fsverity-utils: `fsverity measure` prints what FS_IOC_MEASURE_VERITY says.
    Manifest m = parse_manifest(slurp(bundle_ + "/trustme.manifest"), "manifest");
    size_t files = 0;
    for (const Entry& e : m.entries) {
        if (e.type != 'f' || !e.link.empty()) continue;
        ++files;
        ASSERT_EQ(e.fsverity.size(), 64u) << e.path;
        UniqueFd fd(::open((rootfs_ + e.path).c_str(), O_RDONLY | O_CLOEXEC));
        ASSERT_TRUE(fd);
        int err = 0;
        auto d = measure_verity(fd.get(), &err);
        ASSERT_TRUE(d) << e.path << ": " << err;
        EXPECT_EQ(*d, e.fsverity) << e.path;
    }
    EXPECT_EQ(files, 4u);  // passwd, big, tool (tool2 is its link), empty

    WalkStats st;
    std::string error;
    ASSERT_EQ(verify(st, &error), 0) << error;
    EXPECT_EQ(st.verity_files, 5u);  // every path of a regular file, the hard link included
    EXPECT_EQ(st.bytes_hashed, 0u);
    EXPECT_TRUE(warm()) << "verity-only: fs-verity vouches for every file, the warm path accepts";

    // The MAP_SHARED trick (and any other write) needs a writable open: fs-verity files have none.
    EXPECT_LT(::open((rootfs_ + "/etc/passwd").c_str(), O_RDWR | O_CLOEXEC), 0);
    EXPECT_EQ(errno, EPERM);

    // A file replaced by one without fs-verity (same name, other content): read, hashed, refused.
    ASSERT_EQ(::unlink((rootfs_ + "/etc/passwd").c_str()), 0);
    write(rootfs_ + "/etc/passwd", "evil:x:0:0:root:/root:/bin/sh\n");
    EXPECT_FALSE(warm());
    EXPECT_NE(verify(st, &error), 0);
    EXPECT_EQ(error, rootfs_ + "/etc/passwd: content changed (SHA-256 differs from the manifest)");
}

TEST_F(VerityVm, CorruptedBlockUnderTheFilesystemFailsTheRead) {
    ASSERT_EQ(sh(sign_ + " sign --verity --dir " + pki_ + " --name app " + bundle_ + " > /dev/null"), 0);
    const std::string f = rootfs_ + "/var/big";
    uint64_t physical = 0;
    {
        UniqueFd fd(::open(f.c_str(), O_RDONLY | O_CLOEXEC));
        ASSERT_TRUE(fd);
        alignas(struct fiemap) unsigned char buf[sizeof(struct fiemap) + sizeof(struct fiemap_extent)] = {};
        auto* fm = reinterpret_cast<struct fiemap*>(buf);
        fm->fm_length = ~0ull;
        fm->fm_flags = FIEMAP_FLAG_SYNC;
        fm->fm_extent_count = 1;
        ASSERT_EQ(::ioctl(fd.get(), FS_IOC_FIEMAP, fm), 0);
        ASSERT_EQ(fm->fm_mapped_extents, 1u);
        ASSERT_GE(fm->fm_extents[0].fe_length, 8192u);
        physical = fm->fm_extents[0].fe_physical;
    }
    // Write one byte of the file's second block in the image, bypassing the filesystem, then drop the
    // clean cached pages so the next read comes from the "disk".
    {
        UniqueFd img(::open(img_.c_str(), O_WRONLY | O_CLOEXEC));
        ASSERT_TRUE(img);
        ASSERT_EQ(::pwrite(img.get(), "X", 1, static_cast<off_t>(physical + 4096 + 10)), 1);
        ASSERT_EQ(::fsync(img.get()), 0);
    }
    ASSERT_EQ(sh("sync; echo 3 > /proc/sys/vm/drop_caches"), 0);
    UniqueFd fd(::open(f.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    char buf[4096];
    EXPECT_EQ(::pread(fd.get(), buf, sizeof buf, 0), 4096) << "the first block is intact";
    errno = 0;
    EXPECT_LT(::pread(fd.get(), buf, sizeof buf, 4096), 0) << "the corrupted block was returned";
    EXPECT_EQ(errno, EIO);
}

// Mode "verity-only" keeps a tree record too: a warm start is one statx per entry (no open, no measure,
// no manifest parsing), and only while every regular file it lists has fs-verity. A tree where one file
// was read and hashed instead (no fs-verity on it) gets no record: its stamps could hide a store into a
// MAP_SHARED page, so the warm path cannot decide and the full verification reads it again.
TEST_F(VerityVm, VerityOnlyWarmStartChecksTheTreeRecord) {
    struct statx sx {};
    if (::statx(AT_FDCWD, rootfs_.c_str(), 0, STATX_BASIC_STATS | 0x4000U /* STATX_MNT_ID_UNIQUE */, &sx) != 0 ||
        !(sx.stx_mask & 0x4000U))
        GTEST_SKIP() << "tree records need unique mount ids (Linux 6.8); this kernel has none";
    ASSERT_EQ(sh(sign_ + " sign --verity --dir " + pki_ + " --name app " + bundle_ + " > /dev/null"), 0);
    ::sleep(3);  // the racy margin: no record of entries changed within 2 s of the walk
    WalkStats st;
    std::string error;
    ASSERT_EQ(verify(st, &error), 0) << error;
    ASSERT_TRUE(warm_run(st));
    EXPECT_TRUE(st.tree_cached) << "verity-only: the warm path walked instead of checking the record";
    EXPECT_EQ(st.verity_files, 0u);

    // A mode change moves the file's ctime: the record no longer stands, and the walk refuses the tree.
    ASSERT_EQ(::chmod((rootfs_ + "/bin/tool").c_str(), 0700), 0);
    EXPECT_FALSE(warm());
    ASSERT_EQ(::chmod((rootfs_ + "/bin/tool").c_str(), 0644), 0);

    // The same bytes in a file without fs-verity: accepted (read and hashed), but never from a record.
    const std::string passwd = slurp(rootfs_ + "/etc/passwd");
    ASSERT_EQ(::unlink((rootfs_ + "/etc/passwd").c_str()), 0);
    write(rootfs_ + "/etc/passwd", passwd);
    ::sleep(3);
    ASSERT_EQ(verify(st, &error), 0) << error;
    EXPECT_EQ(st.bytes_hashed, passwd.size());
    EXPECT_FALSE(warm_run(st)) << "a tree with a file fs-verity does not seal was accepted from its stamps";
    EXPECT_FALSE(st.tree_cached);
}
