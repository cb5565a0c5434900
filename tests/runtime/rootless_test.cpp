// Rootless: the runtime run by an unprivileged user (made for these tests and removed after them), with the
// state under its $XDG_RUNTIME_DIR, a user namespace mapping its own ids (directly) or its subordinate
// ranges (through newuidmap/newgidmap), no cgroup since none was delegated to it, and a trust policy of its
// own ($XDG_CONFIG_HOME/trustme/policy.json) that may not ask for what needs root of the host.
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/common/bundle.hpp"

using namespace trustme::test;

namespace {

struct TestUser {
    std::string name = "trustme-rl" + std::to_string(::getpid() % 100000);
    uid_t uid = 0;
    gid_t gid = 0;  // its own group (newuidmap insists the caller's gid is the user's)
    uint32_t sub_start = 0, sub_count = 0;
};

TestUser* user = nullptr;

class Rootless : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        user = new TestUser;
        // A free uid above the usual ranges; useradd gives the user a subordinate range of its own.
        for (uid_t u = 47000; u < 47100 && !user->uid; ++u)
            if (!::getpwuid(u)) user->uid = u;
        Result r = run({"useradd", "-M", "-U", "-s", "/usr/sbin/nologin", "-u", std::to_string(user->uid), user->name});
        ASSERT_EQ(r.status, 0) << r.err;
        if (struct passwd* pw = ::getpwnam(user->name.c_str())) user->gid = pw->pw_gid;
        std::ifstream sub("/etc/subuid");
        for (std::string line; std::getline(sub, line);)
            if (line.rfind(user->name + ":", 0) == 0)
                std::sscanf(line.c_str() + user->name.size() + 1, "%u:%u", &user->sub_start, &user->sub_count);
    }
    static void TearDownTestSuite() {
        if (user) run({"userdel", user->name});  // also its group and its /etc/subuid and /etc/subgid lines
        delete user;
        user = nullptr;
    }

    void SetUp() override {
        ASSERT_NE(user->uid, 0u);
        dir = make_temp_dir("rootless");
        ::chmod(dir.c_str(), 0755);
        // The binary is copied where the user can reach it (the build tree may be under a private home).
        ASSERT_EQ(run({"cp", runtime_binary(), dir + "/trustme-runtime"}).status, 0);
        binary = dir + "/trustme-runtime";
        bundle = dir + "/bundle";
        xdg = dir + "/xdg";
        ASSERT_EQ(run({"mkdir", "-p", bundle, xdg}).status, 0);
        ASSERT_EQ(run({"cp", "-a", rootfs_template(), bundle + "/rootfs"}).status, 0);
        ASSERT_EQ(run({"chown", "-R", std::to_string(user->uid) + ":" + std::to_string(user->gid), bundle, xdg}).status,
                  0);
        ::chmod(xdg.c_str(), 0700);
        Result r = as_user({"spec", "--rootless", "--bundle", bundle});
        ASSERT_EQ(r.status, 0) << r.err;
        config = nlohmann::json::parse(read_text(bundle + "/config.json"));
        config["process"]["terminal"] = false;
    }
    void TearDown() override {
        for (auto& id : ids) as_user({"delete", "--force", id});
        remove_tree(dir);
    }

    Result as_user(const std::vector<std::string>& args, int timeout_s = 60) {
        std::vector<std::string> argv = {"setpriv",
                                         "--reuid",
                                         std::to_string(user->uid),
                                         "--regid",
                                         std::to_string(user->gid),
                                         "--clear-groups",
                                         "env",
                                         "-i",
                                         "XDG_RUNTIME_DIR=" + xdg,
                                         "XDG_CONFIG_HOME=" + dir + "/config",
                                         "XDG_CACHE_HOME=" + dir + "/cache",
                                         "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                         binary};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, "", timeout_s);
    }
    void save(const std::vector<std::string>& args) {
        config["process"]["args"] = args;
        write_text(bundle + "/config.json", config.dump(2));
    }

    std::string dir, bundle, xdg;
    std::string binary;  // the runtime the user runs (set up in SetUp)
    nlohmann::json config;
    std::vector<std::string> ids;
};

TEST_F(Rootless, RunsAsRootOfItsOwnUserNamespace) {
    save({"sh", "-c", "id -u; cat /proc/self/uid_map; exit 3"});
    ids.push_back("rl-run");
    Result r = as_user({"run", "--bundle", bundle, "rl-run"});
    EXPECT_EQ(r.status, 3) << r.err;
    std::istringstream out(r.out);
    std::string uid, inside, outside, count;
    out >> uid >> inside >> outside >> count;
    EXPECT_EQ(uid, "0");
    EXPECT_EQ(inside + " " + outside + " " + count, "0 " + std::to_string(user->uid) + " 1") << r.out;
    EXPECT_EQ(r.err.find("error"), std::string::npos) << r.err;
    // State lives under the user's $XDG_RUNTIME_DIR.
    struct stat st {};
    EXPECT_EQ(::stat((xdg + "/trustme-runtime").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, user->uid);
}

TEST_F(Rootless, LifecycleCreateStartExecKillDelete) {
    save({"sleep", "100"});
    ids.push_back("rl-life");
    ASSERT_EQ(as_user({"create", "--bundle", bundle, "rl-life"}).status, 0);
    Result st = as_user({"state", "rl-life"});
    ASSERT_EQ(st.status, 0) << st.err;
    EXPECT_EQ(nlohmann::json::parse(st.out)["status"], "created");
    ASSERT_EQ(as_user({"start", "rl-life"}).status, 0);
    Result ex = as_user({"exec", "rl-life", "sh", "-c", "echo pid1=$(cat /proc/1/comm) uid=$(id -u); exit 5"});
    EXPECT_EQ(ex.status, 5) << ex.err;
    EXPECT_EQ(ex.out, "pid1=sleep uid=0\n");
    // No cgroup was delegated: pause says so in one line.
    Result p = as_user({"pause", "rl-life"});
    EXPECT_NE(p.status, 0);
    EXPECT_NE(p.err.find("pause: this container has no cgroup"), std::string::npos) << p.err;
    ASSERT_EQ(as_user({"kill", "rl-life", "KILL"}).status, 0);
    for (int i = 0; i < 100; ++i) {
        if (nlohmann::json::parse(as_user({"state", "rl-life"}).out)["status"] == "stopped") break;
        ::usleep(50000);
    }
    EXPECT_EQ(nlohmann::json::parse(as_user({"state", "rl-life"}).out)["status"], "stopped");
    ASSERT_EQ(as_user({"delete", "rl-life"}).status, 0);
    EXPECT_EQ(as_user({"list", "-q"}).out, "");
}

TEST_F(Rootless, SubordinateRangesGoThroughNewuidmap) {
    ASSERT_GE(user->sub_count, 65536u);
    auto maps = [&](uint32_t own) {
        return nlohmann::json{{{"containerID", 0}, {"hostID", own}, {"size", 1}},
                              {{"containerID", 1}, {"hostID", user->sub_start}, {"size", 65536}}};
    };
    config["linux"]["uidMappings"] = maps(user->uid);
    config["linux"]["gidMappings"] = maps(user->gid);  // useradd gives subgids the same range as subuids
    config["root"]["readonly"] = false;
    for (auto set : {"bounding", "effective", "permitted"})
        config["process"]["capabilities"][set].push_back("CAP_CHOWN");
    save({"sh", "-c", "cat /proc/self/uid_map | wc -l; chown 1000:1000 /tmp && stat -c %u:%g /tmp"});
    ids.push_back("rl-sub");
    Result r = as_user({"run", "--bundle", bundle, "rl-sub"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "2\n1000:1000\n");
    struct stat st {};
    ASSERT_EQ(::stat((bundle + "/rootfs/tmp").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, user->sub_start + 999);  // container 1000 is subordinate id start+999 on disk
}

TEST_F(Rootless, WhatNeedsPrivilegeIsRefusedByName) {
    // A range the user was not given: newuidmap's refusal, in one line, and nothing left.
    nlohmann::json maps = {{{"containerID", 0}, {"hostID", user->uid}, {"size", 1}},
                           {{"containerID", 1}, {"hostID", 7000000}, {"size", 10}}};
    config["linux"]["uidMappings"] = maps;
    save({"true"});
    Result r = as_user({"run", "--bundle", bundle, "rl-bad"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("linux.uidMappings: newuidmap refused the mapping"), std::string::npos) << r.err;
    EXPECT_EQ(as_user({"list", "-q"}).out, "");
    // A limit with no cgroup to hold it.
    config["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", user->uid}, {"size", 1}}};
    config["linux"]["resources"] = {{"memory", {{"limit", 100000000}}}};
    save({"true"});
    r = as_user({"run", "--bundle", bundle, "rl-mem"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("linux.resources.memory.limit: needs a cgroup"), std::string::npos) << r.err;
    EXPECT_EQ(as_user({"list", "-q"}).out, "");
}

// The user's own policy binds the user's containers: signatures required by
// $XDG_CONFIG_HOME/trustme/policy.json are checked (the verification cache goes to $XDG_CACHE_HOME, the
// system's is not the user's to write), and a policy asking for what needs root of the host is refused.
TEST_F(Rootless, UsersOwnPolicyIsEnforced) {
    // Runtime, its plugins and the signing tool where the user can reach them (bin/ and lib/trustme/).
    const std::string build = runtime_binary().substr(0, runtime_binary().rfind("/bin/"));
    ASSERT_EQ(run({"mkdir", "-p", dir + "/bin", dir + "/lib", dir + "/config/trustme", dir + "/cache"}).status, 0);
    ASSERT_EQ(run({"cp", runtime_binary(), build + "/bin/trustme-sign", dir + "/bin/"}).status, 0);
    ASSERT_EQ(run({"cp", "-a", build + "/lib/trustme", dir + "/lib/"}).status, 0);
    binary = dir + "/bin/trustme-runtime";
    const std::string pki = dir + "/pki";
    ASSERT_EQ(run({dir + "/bin/trustme-sign", "pki", "init", "--dir", pki}).status, 0);
    ASSERT_EQ(run({dir + "/bin/trustme-sign", "pki", "issue", "--dir", pki, "--name", "release"}).status, 0);
    const std::string owner = std::to_string(user->uid) + ":" + std::to_string(user->gid);
    ASSERT_EQ(run({"chown", "-R", owner, pki, dir + "/config", dir + "/cache"}).status, 0);
    auto policy = [&](nlohmann::json p) {
        p["trust_anchors"] = {pki + "/root-ca.pem"};
        write_text(dir + "/config/trustme/policy.json", p.dump());
        ASSERT_EQ(::chown((dir + "/config/trustme/policy.json").c_str(), user->uid, user->gid), 0);
    };
    policy(nlohmann::json::object());
    save({"sh", "-c", "echo signed-and-run"});

    // Unsigned: refused by the user's policy, nothing left.
    Result r = as_user({"run", "--bundle", bundle, "rl-unsigned"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("manifest"), std::string::npos) << r.err;
    EXPECT_EQ(as_user({"list", "-q"}).out, "");

    // Signed by the user with a key of that PKI: runs, and the cache is the user's.
    std::vector<std::string> sign = {"setpriv",
                                     "--reuid",
                                     std::to_string(user->uid),
                                     "--regid",
                                     std::to_string(user->gid),
                                     "--clear-groups",
                                     dir + "/bin/trustme-sign",
                                     "sign",
                                     "--dir",
                                     pki,
                                     "--name",
                                     "release",
                                     bundle};
    Result s = run(sign);
    ASSERT_EQ(s.status, 0) << s.err;
    ids.push_back("rl-signed");
    r = as_user({"run", "--bundle", bundle, "rl-signed"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "signed-and-run\n");
    struct stat st {};
    ASSERT_EQ(::stat((dir + "/cache/trustme/verify-cache").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, user->uid);

    // Measuring into the system TPM needs root of the host: refused in one line, nothing made.
    policy({{"attestation", true}});
    r = as_user({"run", "--bundle", bundle, "rl-measured"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("attestation: measuring into the TPM needs root of the host"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(as_user({"list", "-q"}).out, "");
}

// TPM-sealed volumes need device-mapper and loop devices: a rootless create says so by name.
TEST_F(Rootless, TpmVolumesAreRefusedByName) {
    const std::string build = runtime_binary().substr(0, runtime_binary().rfind("/bin/"));
    ASSERT_EQ(run({"mkdir", "-p", dir + "/bin", dir + "/lib"}).status, 0);
    ASSERT_EQ(run({"cp", runtime_binary(), dir + "/bin/"}).status, 0);
    ASSERT_EQ(run({"cp", "-a", build + "/lib/trustme", dir + "/lib/"}).status, 0);
    binary = dir + "/bin/trustme-runtime";
    config["annotations"]["org.trustme.volume.data.source"] = "/var/lib/trustme/volumes/data.img";
    config["annotations"]["org.trustme.volume.data.destination"] = "/data";
    save({"true"});
    Result r = as_user({"run", "--bundle", bundle, "rl-vol"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("annotations org.trustme.volume.*: TPM-sealed volumes need root of the host"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(as_user({"list", "-q"}).out, "");
}

}  // namespace
