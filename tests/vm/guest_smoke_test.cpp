// Proves the test VM's environment (run inside it by the `vm.guest-tests` host test, label vm-guest):
// a TPM, cgroup v2 with every controller delegated, and dm-crypt activation through cryptsetup on a loop
// device. Outside the VM (TRUSTME_VM_GUEST unset) every test is skipped.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

bool in_vm() { return std::getenv("TRUSTME_VM_GUEST") != nullptr; }

#define REQUIRE_VM() \
    if (!in_vm()) GTEST_SKIP() << "runs inside the test VM only (tests/vm/run-in-vm.sh)"

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Runs argv (PATH lookup), returns the exit status; stdout+stderr go to the test's output.
int run(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid;
    if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return 127;
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/vm-smoke.XXXXXX";
        path_ = mkdtemp(tmpl);
    }
    ~TempDir() { run({"rm", "-rf", path_}); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

TEST(VmGuest, TpmResourceManagerPresent) {
    REQUIRE_VM();
    struct stat st {};
    ASSERT_EQ(stat("/dev/tpmrm0", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(slurp("/sys/class/tpm/tpm0/tpm_version_major"), "2\n");
}

TEST(VmGuest, CgroupV2WithAllControllersDelegated) {
    REQUIRE_VM();
    EXPECT_TRUE(slurp("/proc/self/mountinfo").find(" /sys/fs/cgroup rw") != std::string::npos);
    std::string available = slurp("/sys/fs/cgroup/cgroup.controllers");
    std::string enabled = slurp("/sys/fs/cgroup/cgroup.subtree_control");
    EXPECT_EQ(available, enabled);
    for (const char* c : {"cpu", "cpuset", "io", "memory", "pids", "hugetlb"})
        EXPECT_NE(enabled.find(c), std::string::npos) << c;
}

TEST(VmGuest, DmCryptOnLoopDevice) {
    REQUIRE_VM();
    TempDir dir;
    const std::string img = dir.path() + "/disk.img", key = dir.path() + "/key";
    { std::ofstream(key) << "smoke-test-passphrase"; }
    ASSERT_EQ(run({"truncate", "-s", "32M", img}), 0);
    // pbkdf2 with few iterations: argon2id at its default cost takes ~13 s under TCG.
    ASSERT_EQ(
        run({"cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--cipher", "aes-xts-plain64", "--key-size",
             "512", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", key, img}),
        0);
    const std::string name = "vm-smoke-" + std::to_string(getpid());
    ASSERT_EQ(run({"cryptsetup", "open", "--key-file", key, img, name}), 0);
    const std::string dev = "/dev/mapper/" + name;
    struct stat st {};
    EXPECT_EQ(stat(dev.c_str(), &st), 0);
    EXPECT_EQ(run({"sh", "-c", "printf plaintext-marker | dd of=" + dev + " conv=fsync status=none"}), 0);
    EXPECT_EQ(run({"sh", "-c", "head -c 16 " + dev + " | grep -q plaintext-marker"}), 0);
    EXPECT_EQ(run({"cryptsetup", "close", name}), 0);
    EXPECT_NE(stat(dev.c_str(), &st), 0);
    // The image itself holds ciphertext only.
    EXPECT_NE(run({"grep", "-q", "plaintext-marker", img}), 0);
    // cryptsetup detached its loop device on close.
    EXPECT_EQ(slurp("/proc/self/mountinfo").find(img), std::string::npos);
    EXPECT_NE(run({"sh", "-c", "losetup -a | grep -q " + img}), 0);
}

}  // namespace
