#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sched.h>

#include "oci/config.hpp"
#include "oci/spec.hpp"
#include "base/error.hpp"

using trustme::Error;
using namespace trustme::oci;

namespace {
std::string base() { return default_spec(false).dump(); }

std::string error_of(const std::string& text) {
    try {
        parse_config(text, "config.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

std::string with(const std::function<void(nlohmann::json&)>& f) {
    auto j = default_spec(false);
    f(j);
    return j.dump();
}
}  // namespace

TEST(OciConfig, DefaultSpecParses) {
    Config c = parse_config(base());
    EXPECT_EQ(c.root_path, "rootfs");
    EXPECT_TRUE(c.root_readonly);
    ASSERT_TRUE(c.process);
    EXPECT_EQ(c.process->args, std::vector<std::string>{"sh"});
    EXPECT_TRUE(c.linux_.find(CLONE_NEWPID));
    EXPECT_EQ(c.mounts.size(), 7u);
    EXPECT_EQ(c.process->rlimits.at(0).soft, 1024u);
}

TEST(OciConfig, MalformedJsonNamesFileAndPosition) {
    auto e = error_of("{\"ociVersion\": ");
    EXPECT_NE(e.find("config.json: malformed JSON"), std::string::npos) << e;
    EXPECT_NE(e.find("line 1"), std::string::npos) << e;
}

// nlohmann reports a number beyond double's range as out_of_range (406), not parse_error: it escaped
// parse_config as a foreign exception (found by tests/fuzz fuzz_config).
TEST(OciConfig, NumberOverflowIsMalformedJson) {
    EXPECT_EQ(error_of(R"({"ociVersion": "1.0.2", "process": {"user": {"uid": 1e555}}})"),
              "config.json: malformed JSON: number overflow parsing '1e555'");
}

TEST(OciConfig, WrongTypesNameTheJsonPath) {
    EXPECT_EQ(error_of(with([](auto& j) { j["process"]["args"] = "sh"; })),
              "config.json: process.args: must be an array");
    EXPECT_EQ(error_of(with([](auto& j) { j["process"]["args"] = nlohmann::json::array(); })),
              "config.json: process.args: must be a non-empty array of strings");
    EXPECT_EQ(error_of(with([](auto& j) { j["process"]["user"]["uid"] = -1; })),
              "config.json: process.user.uid: must be a non-negative integer");
    EXPECT_EQ(error_of(with([](auto& j) { j["mounts"][2]["destination"] = "dev/pts"; })),
              "config.json: mounts[2].destination: must be an absolute path");
    EXPECT_EQ(error_of(with([](auto& j) { j["linux"]["namespaces"][0]["type"] = "bogus"; })),
              "config.json: linux.namespaces[0].type: unknown namespace type \"bogus\"");
    EXPECT_EQ(error_of(with([](auto& j) { j["process"]["rlimits"][0]["type"] = "RLIMIT_FOO"; })),
              "config.json: process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\"");
    EXPECT_EQ(error_of(with([](auto& j) {
                  j["linux"]["devices"] = {{{"type", "x"}, {"path", "/dev/x"}, {"major", 1}, {"minor", 1}}};
              })),
              "config.json: linux.devices[0].type: invalid device type \"x\" (want c, b, u or p)");
}

TEST(OciConfig, UnsupportedVersionAndMissingFields) {
    EXPECT_EQ(error_of(with([](auto& j) { j["ociVersion"] = "2.0.0"; })),
              "config.json: ociVersion: unsupported version \"2.0.0\" (this runtime implements 1.x)");
    EXPECT_EQ(error_of(with([](auto& j) { j.erase("root"); })), "config.json: root: required");
    EXPECT_EQ(error_of(with([](auto& j) { j["process"].erase("cwd"); })), "config.json: process.cwd: required");
    EXPECT_EQ(error_of(with([](auto& j) { j["linux"]["intelRdt"] = nlohmann::json::object(); })),
              "config.json: linux.intelRdt: Intel RDT is not supported by trustme-runtime");
}

TEST(OciConfig, MountOptionsBecomeFlagsAndData) {
    Config c = parse_config(base());
    const Mount& pts = c.mounts[2];
    EXPECT_EQ(pts.flags & (MS_NOSUID | MS_NOEXEC), static_cast<unsigned long>(MS_NOSUID | MS_NOEXEC));
    EXPECT_EQ(pts.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    Mount m;
    m.destination = "/x";
    m.type = "bind";
    m.options = {"rbind", "ro", "rprivate", "rnoexec"};
    m = parse_mount_options(m, "t");
    EXPECT_TRUE(m.bind);
    EXPECT_TRUE(m.flags & MS_REC);
    EXPECT_TRUE(m.flags & MS_RDONLY);
    EXPECT_EQ(m.propagation, static_cast<unsigned long>(MS_PRIVATE | MS_REC));
    EXPECT_TRUE(m.rec_attr_set != 0);
}

TEST(OciConfig, ContainerIds) {
    EXPECT_TRUE(valid_id("abc-1.2_x+y"));
    EXPECT_FALSE(valid_id(""));
    EXPECT_FALSE(valid_id(".."));
    EXPECT_FALSE(valid_id("a/b"));
    EXPECT_FALSE(valid_id("a b"));
    // runc's rule: "." alone is not an id, dots elsewhere are; "," is not allowed (runc 1.0's regexp let it in).
    EXPECT_FALSE(valid_id("."));
    EXPECT_TRUE(valid_id(".a"));
    EXPECT_TRUE(valid_id("..."));
    EXPECT_FALSE(valid_id("a,b"));
    EXPECT_FALSE(valid_id("a\nb"));
    EXPECT_FALSE(valid_id(std::string(256, 'a')));
}

TEST(OciConfig, JsonDepthIsBoundedBeforeParsing) {
    auto deep = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
    EXPECT_NO_THROW(parse_json(deep(64), "f.json"));
    try {
        parse_json(deep(65), "f.json");
        FAIL() << "65 levels accepted";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "f.json: JSON nested deeper than 64 levels");
    }
    // Brackets inside strings (escaped quotes too) are not nesting.
    EXPECT_NO_THROW(parse_json(
        "{\"a\": \"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}", "f.json"));
    EXPECT_THROW(parse_json("[1e555]", "f.json"), Error);  // out_of_range inside nlohmann: one error of ours
    EXPECT_THROW(parse_json("{", "f.json"), Error);
}
