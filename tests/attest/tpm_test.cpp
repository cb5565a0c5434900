// The TPM layer against a real swtpm on a private socket.
#include <gtest/gtest.h>
#include <openssl/sha.h>

#include "tpm/tpm.hpp"
#include "tests/attest/swtpm_fixture.hpp"

using trustme::tpm::Cause;
using trustme::tpm::SealedObject;
using trustme::tpm::Tpm;
using trustme::tpm::TpmError;

namespace {

std::vector<uint8_t> digest_of(const std::string& s) {
    std::vector<uint8_t> d(32);
    SHA256(reinterpret_cast<const uint8_t*>(s.data()), s.size(), d.data());
    return d;
}

Cause cause_of(const std::function<void()>& f, std::string* msg = nullptr) {
    try {
        f();
    } catch (const TpmError& e) {
        if (msg) *msg = e.what();
        return e.cause();
    }
    ADD_FAILURE() << "no TpmError thrown";
    return Cause::Other;
}

}  // namespace

TEST(Tpm, ExtendFollowsTheHashChain) {
    trustme::testing::Swtpm sw;
    Tpm t(sw.tcti());
    EXPECT_EQ(t.pcr_read(11), std::vector<uint8_t>(32, 0));
    auto d = digest_of("event");
    t.pcr_extend(11, d);
    std::vector<uint8_t> cat(32, 0);
    cat.insert(cat.end(), d.begin(), d.end());
    std::vector<uint8_t> expect(32);
    SHA256(cat.data(), cat.size(), expect.data());
    EXPECT_EQ(t.pcr_read(11), expect);
}

TEST(Tpm, SealUnsealRoundTripAcrossConnectionsAndJson) {
    trustme::testing::Swtpm sw;
    std::vector<uint8_t> secret = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    std::string json;
    {
        Tpm t(sw.tcti());
        json = t.seal(secret, {7, 11}).to_json();
    }
    Tpm t(sw.tcti());  // a new connection re-creates the SRK from its template
    auto obj = SealedObject::from_json(json);
    EXPECT_EQ(obj.pcrs, (std::vector<uint32_t>{7, 11}));
    EXPECT_EQ(t.unseal(obj).bytes, secret);
}

TEST(Tpm, SurvivesATpmReset) {
    trustme::testing::Swtpm sw;
    std::vector<uint8_t> secret(64, 0x5a);
    std::string json;
    {
        Tpm t(sw.tcti());
        json = t.seal(secret, {11}).to_json();
    }
    sw.restart();
    Tpm t(sw.tcti());
    EXPECT_EQ(t.unseal(SealedObject::from_json(json)).bytes, secret);
}

TEST(Tpm, UnsealRefusedWhenAPcrChanged) {
    trustme::testing::Swtpm sw;
    Tpm t(sw.tcti());
    auto obj = t.seal({42}, {11});
    t.pcr_extend(11, digest_of("something else ran"));
    std::string msg;
    EXPECT_EQ(cause_of([&] { t.unseal(obj); }, &msg), Cause::PcrMismatch);
    EXPECT_NE(msg.find("PCR"), std::string::npos) << msg;
    EXPECT_NE(msg.find(sw.tcti()), std::string::npos) << msg;
}

TEST(Tpm, AuthValueIsRequiredAndChecked) {
    trustme::testing::Swtpm sw;
    Tpm t(sw.tcti());
    auto obj = t.seal({9, 9, 9}, {11}, "correct horse");
    EXPECT_TRUE(obj.has_auth);
    EXPECT_EQ(t.unseal(obj, "correct horse").bytes, (std::vector<uint8_t>{9, 9, 9}));
    std::string msg;
    EXPECT_EQ(cause_of([&] { t.unseal(obj, "wrong"); }, &msg), Cause::BadAuth);
    EXPECT_NE(msg.find("wrong auth"), std::string::npos) << msg;
    EXPECT_EQ(cause_of([&] { t.unseal(obj); }), Cause::BadAuth);
    // Auth only, no PCRs.
    auto obj2 = t.seal({1}, {}, "pin");
    EXPECT_EQ(t.unseal(obj2, "pin").bytes, std::vector<uint8_t>{1});
}

TEST(Tpm, RepeatedWrongAuthEndsInLockout) {
    trustme::testing::Swtpm sw;
    Tpm t(sw.tcti());
    auto obj = t.seal({7}, {}, "secret");
    Cause last = Cause::Other;
    // swtpm's default dictionary-attack threshold is small; bounded attempts.
    for (int i = 0; i < 40 && last != Cause::Lockout; ++i) last = cause_of([&] { t.unseal(obj, "guess"); });
    EXPECT_EQ(last, Cause::Lockout);
    std::string msg;
    EXPECT_EQ(cause_of([&] { t.unseal(obj, "secret"); }, &msg), Cause::Lockout);
    EXPECT_NE(msg.find("lockout"), std::string::npos) << msg;
}

TEST(Tpm, NoTpmAndWrongTctiAreClearErrors) {
    std::string msg;
    EXPECT_EQ(cause_of([&] { Tpm t("swtpm:path=/nonexistent/sock"); }, &msg), Cause::NoTpm);
    EXPECT_NE(msg.find("TPM (swtpm:path=/nonexistent/sock)"), std::string::npos) << msg;
    EXPECT_EQ(cause_of([&] { Tpm t("nosuchtcti:foo"); }, &msg), Cause::NoTpm);
    EXPECT_NE(msg.find("nosuchtcti"), std::string::npos) << msg;
}

TEST(Tpm, SealedObjectJsonErrorsNameTheField) {
    auto msg_of = [](const std::string& text) {
        try {
            SealedObject::from_json(text);
        } catch (const trustme::Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(msg_of("{").find("not JSON"), std::string::npos);
    EXPECT_NE(msg_of(R"({"version":1,"type":"trustme-tpm2-sealed","pcrs":[99],"auth":false,"public":"","private":""})")
                  .find("pcrs"),
              std::string::npos);
    EXPECT_NE(msg_of(R"({"version":1,"type":"trustme-tpm2-sealed","pcrs":[1],"auth":false,"public":"zz","private":""})")
                  .find("public"),
              std::string::npos);
}

TEST(Tpm, SecretLimitsAreChecked) {
    trustme::testing::Swtpm sw;
    Tpm t(sw.tcti());
    EXPECT_THROW(t.seal(std::vector<uint8_t>(129, 1), {11}), trustme::Error);
    EXPECT_THROW(t.seal({1}, {}), trustme::Error);  // nothing would protect it
    EXPECT_THROW(t.seal({1}, {24}), trustme::Error);
    EXPECT_EQ(t.random(100).size(), 100u);
}
