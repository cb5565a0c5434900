// Volume code that needs no device-mapper, tested on the host: formatting, the TPM token (sealed with
// a private swtpm), recovery keys, enrolment, inspect, the bad-input errors, and the clear refusal of
// everything that would activate a mapping when the kernel has no device-mapper.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "tpm/tpm.hpp"
#include "tests/volume/helpers.hpp"
#include "runtime/volume/luks.hpp"
#include "runtime/volume/token.hpp"
#include "runtime/volume/volumes.hpp"
#include "tests/attest/swtpm_fixture.hpp"

using namespace voltest;
namespace vol = trustme::volume;

namespace {

bool exists(const std::string& p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}

class VolumeHost : public ::testing::Test {
protected:
    trustme::testing::Swtpm tpm;
    TempDir dir;
    bool had_mapper_dir = exists("/dev/mapper"), had_control = exists("/dev/mapper/control");

    // libcryptsetup's LUKS2 format asks libdevmapper for the driver version, and libdevmapper creates
    // /dev/mapper/control when it is missing (dm_task_create). On a kernel without device-mapper that node
    // has no driver behind it and would stay on the host: the test takes back what it made.
    void TearDown() override {
        if (vol::dm_available()) return;
        if (!had_control) ::unlink("/dev/mapper/control");
        if (!had_mapper_dir) ::rmdir("/dev/mapper");
    }
    std::string tcti() const { return tpm.tcti(); }

    // A sealed volume without a file system (needs no device-mapper).
    Result create(const std::string& img, std::vector<std::string> extra = {}) {
        std::vector<std::string> a = {
            "create", img, "--size", "20M", "--mkfs", "none", "--tcti", tcti(), "--pbkdf-iterations", "1000"};
        a.insert(a.end(), extra.begin(), extra.end());
        return volume(a);
    }
};

TEST_F(VolumeHost, CreateSealsTheVolumeKeyInATokenWithoutAnyKeyslot) {
    std::string img = dir / "v.img";
    Result r = create(img, {"--pcrs", "7,11"});
    ASSERT_EQ(r.status, 0) << r.err;
    Result i = volume({"inspect", img});
    ASSERT_EQ(i.status, 0) << i.err;
    EXPECT_NE(i.out.find("cipher: aes-xts-plain64"), std::string::npos) << i.out;
    EXPECT_NE(i.out.find("volume key: 512 bits"), std::string::npos) << i.out;
    EXPECT_NE(i.out.find("keyslots: none"), std::string::npos) << i.out;
    EXPECT_NE(i.out.find("token 0: trustme-tpm2, sealed to PCRs 7,11 (sha256)"), std::string::npos) << i.out;

    vol::CryptDevice cd = vol::CryptDevice::load(img);
    vol::SecretBytes key = vol::unseal_volume_key(cd, tcti());
    EXPECT_EQ(key.bytes.size(), 64u);
    EXPECT_TRUE(vol::key_matches(cd, key));
    // The image is a file of the requested size; the key never appears in it in clear.
    EXPECT_EQ(std::filesystem::file_size(img), 20u << 20);
    std::string data = slurp(img);
    EXPECT_EQ(data.find(std::string(key.bytes.begin(), key.bytes.end())), std::string::npos);
}

TEST_F(VolumeHost, TheSystemCryptsetupToolReadsTheVolume) {
    std::string img = dir / "v.img";
    ASSERT_EQ(create(img).status, 0);
    Result d = run({"cryptsetup", "luksDump", img});
    ASSERT_EQ(d.status, 0) << d.err;
    EXPECT_NE(d.out.find("trustme-tpm2"), std::string::npos) << d.out;
}

TEST_F(VolumeHost, RecoveryKeyAddsAPassphraseKeyslot) {
    std::string img = dir / "v.img", key = dir / "recovery";
    spit(key, "correct horse battery staple\n");
    ASSERT_EQ(create(img, {"--recovery-key", key}).status, 0);
    Result i = volume({"inspect", img});
    EXPECT_NE(i.out.find("keyslots: 0\n"), std::string::npos) << i.out;
    spit(dir / "pass", "correct horse battery staple");
    EXPECT_EQ(run({"cryptsetup", "open", "--test-passphrase", "--key-file", dir / "pass", img}).status, 0);
    spit(dir / "bad", "wrong");
    EXPECT_NE(run({"cryptsetup", "open", "--test-passphrase", "--key-file", dir / "bad", img}).status, 0);
}

TEST_F(VolumeHost, EnrollAddsATpmTokenToAPassphraseVolume) {
    std::string img = dir / "v.img", pass = dir / "pass";
    spit(pass, "recovery-passphrase");
    ASSERT_EQ(run({"truncate", "-s", "20M", img}).status, 0);
    ASSERT_EQ(run({"cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
                   "--pbkdf-force-iterations", "1000", "--key-file", pass, img})
                  .status,
              0);
    {
        vol::CryptDevice cd = vol::CryptDevice::load(img);
        EXPECT_THROW(vol::unseal_volume_key(cd, tcti()), trustme::Error);
    }
    Result r = volume({"enroll", img, "--recovery-key", pass, "--tcti", tcti(), "--pcrs", "7"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "token 0: trustme-tpm2 added\n");
    vol::CryptDevice cd = vol::CryptDevice::load(img);
    vol::SecretBytes key = vol::unseal_volume_key(cd, tcti());
    EXPECT_TRUE(vol::key_matches(cd, key));
}

TEST_F(VolumeHost, EnrollWithAWrongPassphraseAddsNothing) {
    std::string img = dir / "v.img", pass = dir / "pass", bad = dir / "bad";
    spit(pass, "recovery-passphrase");
    spit(bad, "not-the-passphrase");
    ASSERT_EQ(create(img, {"--recovery-key", pass}).status, 0);
    Result r = volume({"enroll", img, "--recovery-key", bad, "--tcti", tcti()});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "trustme-runtime volume enroll: " + img + ": the recovery key opens no keyslot\n");
    vol::CryptDevice cd = vol::CryptDevice::load(img);
    EXPECT_EQ(vol::tpm_tokens(cd).size(), 1u);
}

TEST_F(VolumeHost, MissingImageIsOneLine) {
    Result r = volume({"inspect", dir / "nope.img"});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "trustme-runtime volume inspect: " + (dir / "nope.img") + ": No such file or directory\n");
}

TEST_F(VolumeHost, NotALuks2VolumeIsOneLine) {
    std::string img = dir / "plain.img";
    ASSERT_EQ(run({"dd", "if=/dev/urandom", "of=" + img, "bs=1M", "count=2", "status=none"}).status, 0);
    Result r = volume({"inspect", img});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "trustme-runtime volume inspect: " + img + ": not a LUKS2 volume\n");
}

TEST_F(VolumeHost, CreateRefusesAnExistingFileAndLeavesItAlone) {
    std::string img = dir / "v.img";
    spit(img, "precious");
    Result r = create(img);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "trustme-runtime volume create: " + img + ": already exists\n");
    EXPECT_EQ(slurp(img), "precious");
}

TEST_F(VolumeHost, CreateWithoutATpmLeavesNothing) {
    std::string img = dir / "v.img";
    Result r =
        volume({"create", img, "--size", "20M", "--mkfs", "none", "--tcti", "swtpm:path=" + (dir / "no-such-socket")});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("TPM"), std::string::npos) << r.err;
    EXPECT_FALSE(exists(img));
}

TEST_F(VolumeHost, BadSizesAndPcrsAreRefused) {
    std::string img = dir / "v.img";
    Result r = volume({"create", img, "--size", "1M", "--mkfs", "none", "--tcti", tcti()});
    EXPECT_EQ(r.err, "trustme-runtime volume create: --size: at least 17M (the LUKS2 header takes 16M)\n");
    r = volume({"create", img, "--size", "20M", "--pcrs", "7,x", "--mkfs", "none", "--tcti", tcti()});
    EXPECT_EQ(r.err, "trustme-runtime volume create: --pcrs: not a PCR index: \"x\" (expected e.g. 7,11)\n");
    r = volume({"create", img, "--size", "20M", "--pcrs", "24", "--mkfs", "none", "--tcti", tcti()});
    EXPECT_EQ(r.err, "trustme-runtime volume create: --pcrs: PCR 24 out of range 0..23\n");
    r = volume({"create", img, "--bogus"});
    EXPECT_EQ(r.status, 2);
    EXPECT_FALSE(exists(img));
}

TEST_F(VolumeHost, SealingToTheAttestationPcrIsRefused) {
    // With attestation on, every measured start extends the policy's PCR: a key sealed to it would stop
    // unsealing after the next start. Refused before anything is made.
    std::string img = dir / "v.img", pol = dir / "policy.json";
    spit(pol, R"({"signature": "off", "attestation": true, "pcr": 11})");
    Result r =
        volume({"create", img, "--size", "20M", "--pcrs", "7,11", "--mkfs", "none", "--tcti", tcti(), "--policy", pol});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("--pcrs: PCR 11 is extended at every measured container start"), std::string::npos) << r.err;
    EXPECT_FALSE(exists(img));
    // The same PCR set is fine when the policy does not measure into it.
    spit(pol, R"({"signature": "off", "attestation": true, "pcr": 12})");
    r = create(img, {"--pcrs", "7,11", "--policy", pol});
    EXPECT_EQ(r.status, 0) << r.err;
}

TEST_F(VolumeHost, NoTokenIsNamed) {
    std::string img = dir / "v.img", pass = dir / "pass";
    spit(pass, "pw");
    ASSERT_EQ(run({"truncate", "-s", "20M", img}).status, 0);
    ASSERT_EQ(run({"cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2",
                   "--pbkdf-force-iterations", "1000", "--key-file", pass, img})
                  .status,
              0);
    vol::CryptDevice cd = vol::CryptDevice::load(img);
    try {
        vol::unseal_volume_key(cd, tcti());
        FAIL() << "unsealed without a token";
    } catch (const trustme::Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  img + ": no trustme-tpm2 token (add one with `trustme-runtime volume enroll`)");
    }
}

TEST_F(VolumeHost, ATokenOfAnotherVolumeIsAWrongKey) {
    std::string a = dir / "a.img", b = dir / "b.img";
    ASSERT_EQ(create(a).status, 0);
    ASSERT_EQ(create(b).status, 0);
    std::string token_a;
    {
        vol::CryptDevice cd = vol::CryptDevice::load(a);
        token_a = vol::tokens(cd).at(0).json;
    }
    // b's header now carries only a's sealed key.
    ASSERT_EQ(run({"cryptsetup", "token", "remove", "--token-id", "0", b}).status, 0);
    vol::CryptDevice cd = vol::CryptDevice::load(b);
    vol::add_token(cd, token_a);
    try {
        vol::unseal_volume_key(cd, tcti());
        FAIL() << "opened b with a's key";
    } catch (const trustme::Error& e) {
        EXPECT_EQ(std::string(e.what()), b + ": the key sealed in token 0 does not open this volume");
    }
}

TEST_F(VolumeHost, AChangedPcrRefusesToUnseal) {
    std::string img = dir / "v.img";
    ASSERT_EQ(create(img, {"--pcrs", "16"}).status, 0);
    {
        trustme::tpm::Tpm t(tcti());
        t.pcr_extend(16, std::vector<uint8_t>(32, 0xab));
    }
    vol::CryptDevice cd = vol::CryptDevice::load(img);
    try {
        vol::unseal_volume_key(cd, tcti());
        FAIL() << "unsealed after the PCR changed";
    } catch (const trustme::Error& e) {
        std::string m = e.what();
        EXPECT_EQ(m.rfind(img + ": token 0: ", 0), 0u) << m;
        EXPECT_NE(m.find("PCR"), std::string::npos) << m;
    }
}

TEST_F(VolumeHost, AnAbsentTpmIsNamed) {
    std::string img = dir / "v.img";
    ASSERT_EQ(create(img).status, 0);
    vol::CryptDevice cd = vol::CryptDevice::load(img);
    try {
        vol::unseal_volume_key(cd, "swtpm:path=" + (dir / "no-such-socket"));
        FAIL();
    } catch (const trustme::Error& e) {
        std::string m = e.what();
        EXPECT_EQ(m.rfind(img + ": TPM (", 0), 0u) << m;
    }
}

TEST(VolumeAnnotations, ParsesAndValidates) {
    nlohmann::json a = {{"org.trustme.volume.data.source", "/srv/data.img"},
                        {"org.trustme.volume.data.destination", "/var//lib/./data/"},
                        {"org.trustme.volume.data.options", "ro,fstype=ext4"},
                        {"org.other", "x"}};
    auto specs = vol::parse_volume_annotations(a);
    ASSERT_EQ(specs.size(), 1u);
    EXPECT_EQ(specs[0].name, "data");
    EXPECT_EQ(specs[0].source, "/srv/data.img");
    EXPECT_EQ(specs[0].destination, "/var/lib/data");
    EXPECT_TRUE(specs[0].readonly);
    EXPECT_EQ(specs[0].fstype, "ext4");
}

std::string annotation_error(const nlohmann::json& a) {
    try {
        vol::parse_volume_annotations(a);
    } catch (const trustme::Error& e) {
        return e.what();
    }
    return "";
}

TEST(VolumeAnnotations, BadInputNamesTheAnnotation) {
    EXPECT_EQ(annotation_error(
                  {{"org.trustme.volume.d.source", "/x.img"}, {"org.trustme.volume.d.destination", "/a/../../etc"}}),
              "annotations.org.trustme.volume.d.destination: \"/a/../../etc\" leaves the container's rootfs (\"..\")");
    EXPECT_EQ(
        annotation_error({{"org.trustme.volume.d.source", "/x.img"}, {"org.trustme.volume.d.destination", "data"}}),
        "annotations.org.trustme.volume.d.destination: must be an absolute path inside the container");
    EXPECT_EQ(annotation_error({{"org.trustme.volume.d.source", "/x.img"}, {"org.trustme.volume.d.destination", "/"}}),
              "annotations.org.trustme.volume.d.destination: cannot mount a volume over the container's root");
    EXPECT_EQ(annotation_error({{"org.trustme.volume.d.destination", "/data"}}),
              "annotations.org.trustme.volume.d.source: missing");
    EXPECT_EQ(annotation_error({{"org.trustme.volume.d.source", "x.img"}}),
              "annotations.org.trustme.volume.d.source: must be an absolute path to a LUKS2 image or block device");
    EXPECT_EQ(annotation_error({{"org.trustme.volume.d.sauce", "/x"}}),
              "annotations.org.trustme.volume.d.sauce: unknown key \"sauce\" (source, destination, options)");
    EXPECT_EQ(annotation_error({{"org.trustme.volume.d.options", "rw,exec"}}),
              "annotations.org.trustme.volume.d.options: unknown option \"exec\" (ro, rw, fstype=TYPE)");
    EXPECT_EQ(annotation_error({{"org.trustme.volume.a/b.source", "/x"}}),
              "annotations.org.trustme.volume.a/b.source: volume name \"a/b\" must be 1-32 of [A-Za-z0-9_-]");
}

// Without device-mapper (this host), what would activate a mapping fails with one clear line and
// leaves nothing behind.
class NoDeviceMapper : public VolumeHost {
protected:
    void SetUp() override {
        VolumeHost::SetUp();
        if (vol::dm_available()) GTEST_SKIP() << "this kernel has device-mapper (the VM tests cover it)";
    }
};

TEST_F(NoDeviceMapper, CreateWithAFileSystemIsRefusedBeforeAnythingIsMade) {
    std::string img = dir / "v.img";
    Result r = volume({"create", img, "--size", "20M", "--tcti", tcti()});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "trustme-runtime volume create: device-mapper is not available in this kernel\n");
    EXPECT_FALSE(exists(img));
    r = volume({"create", img, "--size", "40M", "--integrity", "--mkfs", "none", "--tcti", tcti()});
    EXPECT_EQ(r.err, "trustme-runtime volume create: device-mapper is not available in this kernel\n");
    EXPECT_FALSE(exists(img));
}

TEST_F(NoDeviceMapper, OpeningAContainersVolumesIsRefusedAndRecordsNothing) {
    std::string img = dir / "v.img", state = dir / "state";
    ASSERT_EQ(create(img).status, 0);
    std::filesystem::create_directory(state);
    nlohmann::json ann = {{"org.trustme.volume.data.source", img}, {"org.trustme.volume.data.destination", "/data"}};
    Result r = run({kTool, kPlugin, "open", "c1", state, ann.dump()});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "device-mapper is not available in this kernel\n");
    EXPECT_TRUE(std::filesystem::is_empty(state));
    // Close is idempotent: nothing recorded, nothing to do.
    EXPECT_EQ(run({kTool, kPlugin, "close", "c1", state}).status, 0);
    EXPECT_EQ(run({kTool, kPlugin, "close", "c1", dir / "gone"}).status, 0);
}

TEST(VolumePlugin, ExportsOnlyTheAbi) {
    Result r = run({"nm", "-D", "--defined-only", kPlugin});
    ASSERT_EQ(r.status, 0) << r.err;
    std::istringstream in(r.out);
    std::string line;
    std::vector<std::string> names;
    while (std::getline(in, line)) names.push_back(line.substr(line.rfind(' ') + 1));
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"trustme_verity_root_open", "trustme_volume_abi", "trustme_volume_main",
                                               "trustme_volumes_close", "trustme_volumes_open"}));
}

TEST(VolumePlugin, HelpListsEveryCommandAndOption) {
    Result r = volume({"--help"});
    EXPECT_EQ(r.status, 0);
    for (const char* w : {"create", "enroll", "inspect", "--size", "--integrity", "--recovery-key", "--pcrs", "--tcti",
                          "--mkfs", "--policy", "--pbkdf-iterations"})
        EXPECT_NE(r.out.find(w), std::string::npos) << w;
}

}  // namespace
