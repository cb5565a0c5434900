// Bad input: one line naming the file or JSON path and the cause, a non-zero exit, nothing left behind.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/common/bundle.hpp"

using namespace trustme::test;

namespace {

void expect_nothing_left(const Bundle& b, const std::string& id) {
    EXPECT_EQ(b.rt({"list", "-q"}).out, "") << "state directory left behind";
    struct stat st;
    for (const char* ctl : {"memory", "pids", "cpu", "devices", "freezer"})
        EXPECT_NE(stat(("/sys/fs/cgroup/" + std::string(ctl) + "/trustme-" + id).c_str(), &st), 0)
            << "cgroup left behind in " << ctl;
    EXPECT_EQ(read_text("/proc/self/mountinfo").find(b.dir), std::string::npos) << "mount left behind";
}

void expect_one_line_error(const Result& r, const std::string& want) {
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << "got: " << r.err;
}

}  // namespace

TEST(BadInput, MalformedJson) {
    Bundle b("bad-json");
    write_text(b.dir + "/config.json", "{\"ociVersion\": \"1.0.2\",");
    Result r = b.rt({"create", "-b", b.dir, "bj"});
    expect_one_line_error(r, b.dir + "/config.json: malformed JSON");
    expect_nothing_left(b, "bj");
}

TEST(BadInput, WrongTypeNamesJsonPath) {
    Bundle b("bad-type");
    b.config["process"]["env"] = "PATH=/bin";
    b.save();
    expect_one_line_error(b.rt({"create", "-b", b.dir, "bt"}), "config.json: process.env: must be an array");
    expect_nothing_left(b, "bt");
}

TEST(BadInput, UnsupportedVersion) {
    Bundle b("bad-version");
    b.config["ociVersion"] = "0.9";
    b.save();
    expect_one_line_error(b.rt({"run", "-b", b.dir, "bv"}), "ociVersion: unsupported version \"0.9\"");
    expect_nothing_left(b, "bv");
}

TEST(BadInput, MissingRootfs) {
    Bundle b("bad-rootfs");
    b.config["root"]["path"] = b.dir + "/nope";
    b.save();
    expect_one_line_error(b.rt({"create", "-b", b.dir, "br"}),
                          "root.path " + b.dir + "/nope: No such file or directory");
    expect_nothing_left(b, "br");
}

TEST(BadInput, MissingExecutable) {
    Bundle b("bad-exec");
    b.config["process"]["args"] = {"no-such-program"};
    b.save();
    expect_one_line_error(b.rt({"create", "-b", b.dir, "be"}),
                          "exec: \"no-such-program\": executable file not found in $PATH");
    expect_nothing_left(b, "be");
}

TEST(BadInput, MissingConfig) {
    Bundle b("bad-noconfig");
    unlink((b.dir + "/config.json").c_str());
    expect_one_line_error(b.rt({"create", "-b", b.dir, "bn"}), b.dir + "/config.json: No such file or directory");
    expect_nothing_left(b, "bn");
}

TEST(BadInput, CgroupValueTheKernelRejects) {
    Bundle b("bad-cgroup");
    b.config["linux"]["resources"]["cpu"] = {{"cpus", "999-1000"}};
    b.save();
    Result r = b.rt({"create", "-b", b.dir, "bc"});
    expect_one_line_error(r, "cpuset.cpus");
    expect_nothing_left(b, "bc");
}

TEST(BadInput, UnknownSignalAndMissingContainer) {
    Bundle b("bad-signal");
    b.config["process"]["args"] = {"sleep", "100"};
    b.save();
    b.ids.push_back("bs");
    ASSERT_EQ(b.rt({"run", "-d", "-b", b.dir, "bs"}).status, 0);
    expect_one_line_error(b.rt({"kill", "bs", "SIGFOO"}), "unknown signal \"SIGFOO\"");
    EXPECT_EQ(nlohmann::json::parse(b.rt({"state", "bs"}).out)["status"], "running");
    expect_one_line_error(b.rt({"exec", "nosuch", "true"}), "container \"nosuch\" does not exist");
    write_text(b.dir + "/bad.json", "{\"args\": 1, \"cwd\": \"/\", \"user\": {\"uid\": 0, \"gid\": 0}}");
    expect_one_line_error(b.rt({"exec", "--process", b.dir + "/bad.json", "bs"}),
                          "bad.json: process.args: must be an array");
    EXPECT_EQ(nlohmann::json::parse(b.rt({"state", "bs"}).out)["status"], "running");
    ASSERT_EQ(b.rt({"kill", "bs", "KILL"}).status, 0);
    for (int i = 0; i < 50 && nlohmann::json::parse(b.rt({"state", "bs"}).out)["status"] != "stopped"; ++i)
        usleep(50000);
    expect_one_line_error(b.rt({"exec", "bs", "true"}), "container \"bs\" is stopped, not running");
}
