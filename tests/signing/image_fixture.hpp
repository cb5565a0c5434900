// Shared by the dm-verity image tests (host: test_image.cpp; VM: test_vm_image.cpp): a busybox bundle
// signed with `trustme-sign sign --image`, a policy, and the runtime, all in a private directory.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/volume/helpers.hpp"  // tests/volume: run(), slurp(), spit(), TempDir
#include "runtime/volume/loop.hpp"
#include "runtime/volume/luks.hpp"
#include "runtime/volume/volumes.hpp"
#include "signing/manifest.hpp"

namespace imagetest {
using namespace voltest;
namespace vol = trustme::volume;

inline const std::string kBin = std::string(TRUSTME_BINARY_DIR) + "/bin/";

inline bool exists(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}

class ImageBundle : public ::testing::Test {
protected:
    TempDir dir;
    std::string bundle = dir / "bundle", rootfs = bundle + "/rootfs", image = bundle + "/rootfs.img";
    std::string state = dir / "state", policy = dir / "policy.json", pki = dir / "pki";

    // busybox and the few applets the tests use (tests/fixtures/make-rootfs.sh spawns hundreds of
    // processes: minutes under TCG), a file with a known pattern, then signed with --image.
    void make_signed(bool readonly = true) {
        namespace fs = std::filesystem;
        for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "etc", "data"})
            fs::create_directories(rootfs + "/" + d);
        fs::copy_file("/bin/busybox", rootfs + "/bin/busybox");
        for (const char* a : {"sh", "cat", "echo", "true", "grep"}) fs::create_symlink("busybox", rootfs + "/bin/" + a);
        spit(rootfs + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
        std::string pattern;
        for (int i = 0; pattern.size() < 3 * 4096; ++i) pattern += "signed-block-content-" + std::to_string(i) + "\n";
        spit(rootfs + "/data/pattern", pattern);
        ASSERT_EQ(run({kBin + "trustme-runtime", "spec", "-b", bundle}).status, 0);
        auto cfg = nlohmann::json::parse(slurp(bundle + "/config.json"));
        cfg["process"]["terminal"] = false;
        cfg["process"]["args"] = {"cat", "/data/pattern"};
        cfg["root"]["readonly"] = readonly;
        spit(bundle + "/config.json", cfg.dump(2));
        ASSERT_EQ(run({kBin + "trustme-sign", "pki", "init", "--dir", pki}).status, 0);
        ASSERT_EQ(run({kBin + "trustme-sign", "pki", "issue", "--dir", pki, "--name", "app"}).status, 0);
        sign();
        spit(policy, R"({"signature": "required", "trust_anchors": [")" + pki +
                         R"(/root-ca.pem"], "verify_cache_dir": ")" + dir.path() + "/cache\"}");
    }

    trustme::signing::Image signed_image() {
        return *trustme::signing::parse_manifest(slurp(bundle + "/trustme.manifest"), "manifest").image;
    }

    void sign() {
        Result s = run({kBin + "trustme-sign", "sign", "--image", "--dir", pki, "--name", "app", bundle});
        ASSERT_EQ(s.status, 0) << s.err;
    }

    // config.json is signed: a new process means signing again (a new image too).
    void set_args(const std::vector<std::string>& args) {
        auto cfg = nlohmann::json::parse(slurp(bundle + "/config.json"));
        cfg["process"]["args"] = args;
        spit(bundle + "/config.json", cfg.dump(2));
        sign();
    }

    Result runtime(std::vector<std::string> args) {
        args.insert(args.begin(), {kBin + "trustme-runtime", "--root", state, "--policy", policy});
        return run(args);
    }

    // No container state, no dm-verity mapping, no loop device on the image.
    void expect_nothing_left(const std::string& id) {
        EXPECT_FALSE(exists(state + "/" + id));
        EXPECT_FALSE(vol::mapping_exists(vol::mapping_name(id, "rootfs.verity")));
        struct stat st {};
        ASSERT_EQ(::stat(image.c_str(), &st), 0);
        EXPECT_TRUE(vol::loops_backed_by({st.st_dev, st.st_ino}).empty());
    }
};

}  // namespace imagetest
