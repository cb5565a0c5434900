// End to end in the test VM (label vm-guest): trustme-runtime mounts a TPM-sealed volume into a container
// from the bundle's org.trustme.volume.* annotations, and tears it down at delete, also after a crash.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "tpm/tpm.hpp"
#include "tests/volume/helpers.hpp"
#include "runtime/volume/loop.hpp"
#include "runtime/volume/luks.hpp"
#include "runtime/volume/volumes.hpp"

using namespace voltest;
namespace vol = trustme::volume;

namespace {

const std::string kRuntime = std::string(TRUSTME_BINARY_DIR) + "/bin/trustme-runtime";

// A rootfs with busybox and only the applets these tests use. Not tests/fixtures/make-rootfs.sh: its
// hundreds of `ln` processes take minutes under TCG, where every process start is slow.
void make_rootfs(const std::string& dir) {
    namespace fs = std::filesystem;
    for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "etc", "data"}) fs::create_directories(dir + "/" + d);
    fs::copy_file("/bin/busybox", dir + "/bin/busybox");
    for (const char* a : {"sh", "cat", "grep", "echo", "sleep", "true", "ls"})
        fs::create_symlink("busybox", dir + "/bin/" + a);
    spit(dir + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    spit(dir + "/etc/group", "root:x:0:\n");
}

bool exists(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}

class VolumeRuntime : public ::testing::Test {
protected:
    TempDir dir;
    std::string img = dir / "data.img";
    std::string root = dir / "state";
    std::string bundle = dir / "bundle";

    void SetUp() override {
        if (!std::getenv("TRUSTME_VM_GUEST")) GTEST_SKIP() << "runs inside the test VM only (tests/vm/run-in-vm.sh)";
        if (!exists(kRuntime)) GTEST_SKIP() << kRuntime << " not built";
        make_rootfs(bundle + "/rootfs");
        Result s = run({kRuntime, "spec", "-b", bundle});
        ASSERT_EQ(s.status, 0) << s.err;
        Result c = run({kRuntime, "volume", "create", img, "--size", "24M", "--pcrs", "7", "--tcti",
                        "device:/dev/tpmrm0", "--pbkdf-iterations", "1000"});
        ASSERT_EQ(c.status, 0) << c.err;
    }

    void TearDown() override {
        for (auto& id : ids_) run({kRuntime, "--root", root, "delete", "--force", id});
    }

    void configure(const std::vector<std::string>& args, const std::string& destination = "/data",
                   const nlohmann::json& hooks = nullptr) {
        auto cfg = nlohmann::json::parse(slurp(bundle + "/config.json"));
        cfg["process"]["terminal"] = false;
        cfg["process"]["args"] = args;
        cfg["annotations"] = {{"org.trustme.volume.data.source", img},
                              {"org.trustme.volume.data.destination", destination}};
        if (!hooks.is_null()) cfg["hooks"] = hooks;
        spit(bundle + "/config.json", cfg.dump(2));
    }

    Result runtime(std::vector<std::string> args) {
        args.insert(args.begin(), {kRuntime, "--root", root});
        return run(args);
    }

    Result run_container(const std::string& id) {
        ids_.push_back(id);
        return runtime({"run", "-b", bundle, id});
    }

    void expect_nothing_left(const std::string& id) {
        EXPECT_FALSE(vol::mapping_exists(vol::mapping_name(id, "data")));
        EXPECT_FALSE(exists("/dev/mapper/" + vol::mapping_name(id, "data")));
        struct stat st {};
        ASSERT_EQ(::stat(img.c_str(), &st), 0);
        EXPECT_TRUE(vol::loops_backed_by({st.st_dev, st.st_ino}).empty());
        EXPECT_FALSE(exists(root + "/" + id));
    }

    std::vector<std::string> ids_;
};

TEST_F(VolumeRuntime, TheContainerSeesPlaintextThatPersistsAndTheImageHoldsCiphertext) {
    configure({"sh", "-c", "echo plaintext-marker-0815 > /data/note && cat /data/note && grep ' /data ' /proc/mounts"});
    Result r = run_container("writer");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.rfind("plaintext-marker-0815\n/dev/mapper/trustme-writer-data /data ext4 rw,", 0), 0u) << r.out;
    // Options as the kernel lists them; with SELinux enabled (the VM boots with it) "seclabel" sits among them.
    std::string opts = r.out.substr(r.out.find(" ext4 ") + 6);
    opts = "," + opts.substr(0, opts.find(' ')) + ",";
    EXPECT_NE(opts.find(",nosuid,"), std::string::npos) << r.out;
    EXPECT_NE(opts.find(",nodev,"), std::string::npos) << r.out;
    // `run` deletes the container when its process exits, as runc does: the volume is closed with it.
    expect_nothing_left("writer");

    configure({"cat", "/data/note"});
    Result again = run_container("reader");
    ASSERT_EQ(again.status, 0) << again.err;
    EXPECT_EQ(again.out, "plaintext-marker-0815\n");
    expect_nothing_left("reader");
    EXPECT_EQ(slurp(img).find("plaintext-marker-0815"), std::string::npos);
}

TEST_F(VolumeRuntime, ASecondContainerIsRefusedTheVolumeInUse) {
    configure({"sleep", "100"});
    ids_.push_back("holder");
    Result c = runtime({"create", "-b", bundle, "holder"});
    ASSERT_EQ(c.status, 0) << c.err;
    configure({"true"});
    Result r = run_container("intruder");
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("volume data: " + img + " is already in use by container holder"), std::string::npos) << r.err;
    EXPECT_FALSE(exists(root + "/intruder"));
    ASSERT_EQ(runtime({"delete", "--force", "holder"}).status, 0);
    expect_nothing_left("holder");
}

TEST_F(VolumeRuntime, AChangedPcrRefusesToStartAndLeavesNothing) {
    std::filesystem::remove(img);
    Result c = run({kRuntime, "volume", "create", img, "--size", "24M", "--pcrs", "23", "--tcti", "device:/dev/tpmrm0",
                    "--pbkdf-iterations", "1000"});
    ASSERT_EQ(c.status, 0) << c.err;
    {
        trustme::tpm::Tpm t("device:/dev/tpmrm0");
        t.pcr_extend(23, std::vector<uint8_t>(32, 0x17));
    }
    configure({"true"});
    Result r = run_container("measured");
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("PCR"), std::string::npos) << r.err;
    expect_nothing_left("measured");
}

TEST_F(VolumeRuntime, ADestinationOutsideTheRootfsIsRefused) {
    configure({"true"}, "/../../etc");
    Result r = run_container("escape");
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(
        r.err.find("annotations.org.trustme.volume.data.destination: \"/../../etc\" leaves the container's rootfs"),
        std::string::npos)
        << r.err;
    expect_nothing_left("escape");
}

TEST_F(VolumeRuntime, DeleteForceAfterTheRuntimeWasKilledMidCreate) {
    // A createRuntime hook (run after the volume is opened) tells us where it is and waits: we kill the
    // runtime there, as a crash would.
    std::string hook = dir / "hook.sh", pidfile = dir / "hook.pid";
    spit(hook, "#!/bin/sh\necho $$ > " + pidfile + ".tmp && mv " + pidfile + ".tmp " + pidfile + "\nexec sleep 300\n");
    ::chmod(hook.c_str(), 0755);
    configure({"true"}, "/data", {{"createRuntime", {{{"path", hook}}}}});

    std::vector<std::string> argv = {kRuntime, "--root", root, "create", "-b", bundle, "crashed"};
    ids_.push_back("crashed");
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    pid_t pid;
    ASSERT_EQ(posix_spawn(&pid, a[0], nullptr, nullptr, a.data(), environ), 0);
    bool reached = false, exited = false;
    int status = 0;
    for (int i = 0; i < 600 && !reached && !exited; ++i) {  // bounded: 60 s
        reached = exists(pidfile);
        exited = !reached && ::waitpid(pid, &status, WNOHANG) == pid;
        if (!reached && !exited) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_FALSE(exited) << "create ended before its createRuntime hook ran (status " << status << ")";
    if (!reached) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        FAIL() << "the createRuntime hook never ran";
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid_t hook_pid = std::stoi(slurp(pidfile));
    ::kill(hook_pid, SIGKILL);
    EXPECT_TRUE(vol::mapping_exists("trustme-crashed-data"));

    Result d = runtime({"delete", "--force", "crashed"});
    EXPECT_EQ(d.status, 0) << d.err;
    expect_nothing_left("crashed");
}

}  // namespace
