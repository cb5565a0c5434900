// Volumes with real dm-crypt: run inside the test VM (label vm-guest; tests/vm/run-in-vm.sh), with the
// VM's TPM (/dev/tpmrm0, a fresh swtpm per boot). Skipped elsewhere.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "tpm/tpm.hpp"
#include "tests/volume/helpers.hpp"
#include "runtime/volume/loop.hpp"
#include "runtime/volume/luks.hpp"
#include "runtime/volume/volumes.hpp"

using namespace voltest;
namespace vol = trustme::volume;

namespace {

const std::string kTcti = "device:/dev/tpmrm0";

bool exists(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}

vol::FileId file_id(const std::string& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return {st.st_dev, st.st_ino};
}

class VolumeGuest : public ::testing::Test {
protected:
    TempDir dir;
    std::string img = dir / "data.img";

    void SetUp() override {
        if (!std::getenv("TRUSTME_VM_GUEST")) GTEST_SKIP() << "runs inside the test VM only (tests/vm/run-in-vm.sh)";
        ASSERT_TRUE(vol::dm_available());
    }

    void TearDown() override {
        // Whatever a failed assertion left: close every container this test used.
        for (auto& id : ids_) run({kTool, kPlugin, "close", id, state(id)});
    }

    Result create(std::vector<std::string> extra = {}) {
        std::vector<std::string> a = {"create", img, "--size", "24M", "--tcti", kTcti, "--pbkdf-iterations", "1000"};
        a.insert(a.end(), extra.begin(), extra.end());
        return volume(a);
    }

    std::string state(const std::string& id) {
        std::string s = dir / ("state-" + id);
        std::filesystem::create_directories(s);
        return s;
    }

    Result open(const std::string& id, const std::string& options = "") {
        ids_.push_back(id);
        nlohmann::json ann = {{"org.trustme.volume.data.source", img},
                              {"org.trustme.volume.data.destination", "/data"}};
        if (!options.empty()) ann["org.trustme.volume.data.options"] = options;
        return run({kTool, kPlugin, "open", id, state(id), ann.dump()});
    }

    Result close(const std::string& id) { return run({kTool, kPlugin, "close", id, state(id)}); }

    // Nothing of the container's volume is left: no mapping, no loop device on the image, no record.
    void expect_nothing_left(const std::string& id) {
        EXPECT_FALSE(exists("/dev/mapper/" + vol::mapping_name(id, "data")));
        EXPECT_FALSE(vol::mapping_exists(vol::mapping_name(id, "data")));
        EXPECT_TRUE(vol::loops_backed_by(file_id(img)).empty());
        EXPECT_FALSE(exists(state(id) + "/volumes.json"));
    }

    // Mount the opened device, run `fn` on the mount point, unmount.
    template <class F>
    void with_mount(const std::string& device, bool readonly, F fn) {
        std::string mnt = dir / "mnt";
        std::filesystem::create_directories(mnt);
        ASSERT_EQ(::mount(device.c_str(), mnt.c_str(), "ext4", readonly ? MS_RDONLY : 0, nullptr), 0)
            << device << ": " << strerror(errno);
        fn(mnt);
        ASSERT_EQ(::umount(mnt.c_str()), 0) << strerror(errno);
    }

private:
    std::vector<std::string> ids_;
};

TEST_F(VolumeGuest, DataPersistsAcrossOpensAndTheImageHoldsOnlyCiphertext) {
    Result c = create();
    ASSERT_EQ(c.status, 0) << c.err;
    // create's own temporary mapping and loop device are gone.
    EXPECT_TRUE(vol::loops_backed_by(file_id(img)).empty());

    Result o = open("c1");
    ASSERT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "data /dev/mapper/trustme-c1-data ext4 /data 0\n");
    with_mount("/dev/mapper/trustme-c1-data", false,
               [](const std::string& m) { spit(m + "/secret.txt", "plaintext-marker-4711\n"); });
    ASSERT_EQ(close("c1").status, 0);
    expect_nothing_left("c1");

    Result o2 = open("c2");
    ASSERT_EQ(o2.status, 0) << o2.err;
    with_mount("/dev/mapper/trustme-c2-data", false,
               [](const std::string& m) { EXPECT_EQ(slurp(m + "/secret.txt"), "plaintext-marker-4711\n"); });
    ASSERT_EQ(close("c2").status, 0);
    expect_nothing_left("c2");
    EXPECT_EQ(slurp(img).find("plaintext-marker-4711"), std::string::npos);
    // Idempotent.
    EXPECT_EQ(close("c2").status, 0);
}

TEST_F(VolumeGuest, AVolumeInUseIsRefusedToASecondContainer) {
    ASSERT_EQ(create().status, 0);
    ASSERT_EQ(open("first").status, 0);
    Result r = open("second");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "volume data: " + img + " is already in use by container first\n");
    EXPECT_FALSE(exists(state("second") + "/volumes.json"));
    EXPECT_TRUE(vol::mapping_exists("trustme-first-data"));
    ASSERT_EQ(close("first").status, 0);
    Result again = open("second");
    EXPECT_EQ(again.status, 0) << again.err;
    ASSERT_EQ(close("second").status, 0);
    expect_nothing_left("second");
}

TEST_F(VolumeGuest, CloseUndoesARuntimeThatDiedAfterActivation) {
    ASSERT_EQ(create().status, 0);
    // The tool opens and exits without closing: what a runtime killed right after the activation leaves.
    ASSERT_EQ(open("crashed").status, 0);
    EXPECT_TRUE(vol::mapping_exists("trustme-crashed-data"));
    EXPECT_EQ(vol::loops_backed_by(file_id(img)).size(), 1u);
    ASSERT_EQ(close("crashed").status, 0);
    expect_nothing_left("crashed");
}

TEST_F(VolumeGuest, CloseUndoesARuntimeThatDiedBetweenAttachAndActivation) {
    ASSERT_EQ(create().status, 0);
    // A loop device without autoclear and a record naming it and a mapping that was never made.
    Result l = run({"losetup", "--find", "--show", img});
    ASSERT_EQ(l.status, 0) << l.err;
    std::string loop = l.out.substr(0, l.out.find('\n'));
    auto id = file_id(img);
    nlohmann::json rec = {{"container_id", "half"},
                          {"volumes",
                           {{{"name", "data"},
                             {"source", img},
                             {"dev", static_cast<uint64_t>(id.dev)},
                             {"ino", static_cast<uint64_t>(id.ino)},
                             {"block", false},
                             {"loop", loop},
                             {"dm", vol::mapping_name("half", "data")}}}}};
    spit(state("half") + "/volumes.json", rec.dump());
    ASSERT_EQ(vol::loops_backed_by(id).size(), 1u);
    Result c = close("half");
    ASSERT_EQ(c.status, 0) << c.err;
    expect_nothing_left("half");
}

TEST_F(VolumeGuest, AChangedPcrRefusesToUnsealAndLeavesNothing) {
    // PCR 16 (debug) so that the other tests' PCR 7 stays as it is for the rest of this boot.
    ASSERT_EQ(create({"--pcrs", "16"}).status, 0);
    {
        trustme::tpm::Tpm t(kTcti);
        t.pcr_extend(16, std::vector<uint8_t>(32, 0x5a));
    }
    Result r = open("pcr");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("volume data: ", 0) == 0 || r.err.rfind(img + ": token 0: ", 0) == 0, true) << r.err;
    EXPECT_NE(r.err.find("PCR"), std::string::npos) << r.err;
    expect_nothing_left("pcr");
}

TEST_F(VolumeGuest, ReadOnlyOption) {
    ASSERT_EQ(create().status, 0);
    Result o = open("ro", "ro");
    ASSERT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "data /dev/mapper/trustme-ro-data ext4 /data 1\n");
    std::string dev = "/dev/mapper/trustme-ro-data";
    Result w = run({"dd", "if=/dev/zero", "of=" + dev, "bs=4096", "count=1", "status=none"});
    EXPECT_NE(w.status, 0);
    with_mount(dev, true, [](const std::string& m) { EXPECT_TRUE(exists(m + "/lost+found")); });
    ASSERT_EQ(close("ro").status, 0);
    expect_nothing_left("ro");
}

TEST_F(VolumeGuest, IntegrityProtectedVolume) {
    Result c = create({"--integrity", "--size", "40M"});
    ASSERT_EQ(c.status, 0) << c.err;
    Result i = volume({"inspect", img});
    EXPECT_NE(i.out.find("integrity: hmac(sha256)"), std::string::npos) << i.out;
    EXPECT_NE(i.out.find("volume key: 768 bits"), std::string::npos) << i.out;
    ASSERT_EQ(open("integ").status, 0);
    with_mount("/dev/mapper/trustme-integ-data", false, [](const std::string& m) {
        spit(m + "/f", "authenticated");
        EXPECT_EQ(slurp(m + "/f"), "authenticated");
    });
    ASSERT_EQ(close("integ").status, 0);
    expect_nothing_left("integ");
}

}  // namespace
