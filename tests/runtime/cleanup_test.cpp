// Nothing the runtime mounts is ever visible on the host, and every failure of create/run/exec leaves
// nothing behind: no mount (the host's mountinfo), no cgroup directory, no state entry, no process.
// Each case runs on a bundle whose directory is a private mount and on one that is a shared mount (a
// systemd host makes `/` shared, and Docker's rootfs is a mount under it): a clone of a shared mount joins
// its peer group, so without care what the container mounts shows up on the host.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>

#include "tests/common/bundle.hpp"

using namespace trustme::test;

namespace {

// Mount points (mountinfo field 5) of the test's own mount namespace, the host's, under `prefix`.
std::vector<std::string> mounts_under(const std::string& prefix) {
    std::vector<std::string> out;
    std::istringstream in(read_text("/proc/self/mountinfo"));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string id, parent, dev, root, mp;
        f >> id >> parent >> dev >> root >> mp;
        if (mp.rfind(prefix, 0) == 0) out.push_back(mp);
    }
    return out;
}

// The propagation tag of the mount at `mp` as seen by the test ("shared:N master:M", "" if private).
std::string propagation_of(const std::string& mp) {
    std::istringstream in(read_text("/proc/self/mountinfo"));
    std::string line, tags;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string id, parent, dev, root, m, opts, t;
        f >> id >> parent >> dev >> root >> m >> opts;
        if (m != mp) continue;
        tags.clear();
        while (f >> t && t != "-") tags += (tags.empty() ? "" : " ") + t;
    }
    return tags;
}

// Processes (other than this one) whose command line names `s`: the runtime's own processes (create,
// the container's init before exec, exec's child) and hooks all carry the bundle's paths.
std::vector<pid_t> pids_naming(const std::string& s) {
    std::vector<pid_t> out;
    DIR* d = opendir("/proc");
    if (!d) return out;
    while (dirent* e = readdir(d)) {
        pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
        if (pid <= 0 || pid == getpid()) continue;
        std::string cmd = read_text("/proc/" + std::string(e->d_name) + "/cmdline");
        std::replace(cmd.begin(), cmd.end(), '\0', ' ');
        if (cmd.find(s) != std::string::npos) out.push_back(pid);
    }
    closedir(d);
    return out;
}

// Cgroup directories called `name` at the top of any hierarchy (v1 controllers, the hybrid unified one,
// or a v2 root).
std::vector<std::string> cgroups_named(const std::string& name) {
    std::vector<std::string> out;
    struct stat sb;
    if (stat(("/sys/fs/cgroup/" + name).c_str(), &sb) == 0) out.push_back("/sys/fs/cgroup/" + name);
    DIR* d = opendir("/sys/fs/cgroup");
    if (!d) return out;
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::string p = std::string("/sys/fs/cgroup/") + e->d_name + "/" + name;
        if (stat(p.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)) out.push_back(p);
    }
    closedir(d);
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (auto& x : v) s += x + "\n";
    return s;
}

class Cleanup : public ::testing::TestWithParam<bool> {
protected:
    void SetUp() override {
        b = std::make_unique<Bundle>(GetParam() ? "clean-shared" : "clean-private");
        cgroup = "trustme-test-" + b->dir.substr(b->dir.rfind('/') + 1);
        b->config["linux"]["cgroupsPath"] = "/" + cgroup;
        b->save();
        if (GetParam()) {
            ASSERT_EQ(mount(b->dir.c_str(), b->dir.c_str(), nullptr, MS_BIND, nullptr), 0) << strerror(errno);
            bound = true;
            ASSERT_EQ(mount(nullptr, b->dir.c_str(), nullptr, MS_SHARED, nullptr), 0) << strerror(errno);
            ASSERT_NE(propagation_of(b->dir).find("shared:"), std::string::npos);
        }
    }

    void TearDown() override {
        if (!b) return;  // SetUp failed before the bundle existed
        for (auto& id : b->ids) b->rt({"delete", "--force", id}, "", 20);
        b->ids.clear();
        for (pid_t p : pids_naming(b->dir)) kill(p, SIGKILL);
        // What a failed test left on the host goes, deepest first, then the test's own bind.
        for (int round = 0; round < 3; ++round) {
            auto m = mounts_under(b->dir + "/");
            std::sort(m.rbegin(), m.rend());
            for (auto& x : m) umount2(x.c_str(), MNT_DETACH);
        }
        if (bound) umount2(b->dir.c_str(), MNT_DETACH);
        for (auto& c : cgroups_named(cgroup)) rmdir(c.c_str());
        b.reset();
    }

    // The last command failed, and nothing of container `id` is left.
    void expect_failed_cleanly(const Result& r, const std::string& id, const std::string& why) {
        EXPECT_NE(r.status, 0) << "expected a failure: " << why;
        EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
        expect_nothing_left(id);
    }

    void expect_nothing_left(const std::string& id) {
        EXPECT_EQ(join(mounts_under(b->dir + "/")), "") << "mounts left on the host";
        EXPECT_EQ(join(cgroups_named(cgroup)), "") << "cgroups left";
        EXPECT_EQ(b->rt({"list", "-q"}).out, "") << "state entries left";
        struct stat sb;
        EXPECT_NE(stat((b->root + "/" + id).c_str(), &sb), 0) << "state directory of " << id << " left";
        auto pids = pids_naming(b->dir);
        EXPECT_TRUE(pids.empty()) << pids.size() << " process(es) left, the first " << pids[0] << ": "
                                  << read_text("/proc/" + std::to_string(pids[0]) + "/cmdline");
    }

    // create, then run, of a bundle that fails with `why`: both fail and leave nothing.
    void expect_create_and_run_fail(const std::string& id, const std::string& why) {
        b->save();
        b->ids.push_back(id);
        expect_failed_cleanly(b->rt({"create", "-b", b->dir, id}), id, why);
        expect_failed_cleanly(b->rt({"run", "-b", b->dir, id}), id, why);
    }

    std::unique_ptr<Bundle> b;
    std::string cgroup;
    bool bound = false;
};

std::string param_name(const ::testing::TestParamInfo<bool>& p) { return p.param ? "shared" : "private"; }

TEST_P(Cleanup, RunLeavesNothing) {
    b->config["process"]["args"] = {"sh", "-c", "grep -c . /proc/self/mountinfo >/dev/null && echo ran"};
    b->save();
    b->ids = {"ok1", "ok2"};
    Result r = b->rt({"run", "-b", b->dir, "ok1"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "ran\n");
    expect_nothing_left("ok1");
    r = b->rt({"run", "--no-pivot", "-b", b->dir, "ok2"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "ran\n");
    expect_nothing_left("ok2");
}

// While the container runs, none of its mounts (nor one it makes itself, with CAP_SYS_ADMIN, on its root
// or in a bind mount whose source sits on the shared mount) is visible on the host; after delete, nothing.
TEST_P(Cleanup, RunningContainerMountsStayInside) {
    mkdir((b->dir + "/data").c_str(), 0755);
    b->config["mounts"].push_back(
        {{"destination", "/data"}, {"type", "bind"}, {"source", b->dir + "/data"}, {"options", {"rbind"}}});
    b->config["mounts"].push_back({{"destination", "/data/sub"}, {"type", "tmpfs"}, {"source", "tmpfs"}});
    for (auto set : {"bounding", "effective", "permitted"})
        b->config["process"]["capabilities"][set].push_back("CAP_SYS_ADMIN");
    const std::string ready = b->dir + "/data/ready";
    b->config["root"]["readonly"] = false;
    b->config["process"]["args"] = {
        "sh", "-c",
        "mkdir -p /mnt && mount -t tmpfs t /mnt && mount -t tmpfs t /data/sub && touch /data/ready && "
        "exec sleep 60"};
    b->save();
    b->ids.push_back("run1");
    Result r = b->rt({"run", "-d", "-b", b->dir, "run1"});
    ASSERT_EQ(r.status, 0) << r.err;
    struct stat sb;
    for (int i = 0; i < 200 && stat(ready.c_str(), &sb) != 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    ASSERT_EQ(stat(ready.c_str(), &sb), 0) << "the container did not mount its tmpfs";
    EXPECT_EQ(join(mounts_under(b->dir + "/")), "") << "the running container's mounts show on the host";
    EXPECT_EQ(b->rt({"delete", "--force", "run1"}).status, 0);
    expect_nothing_left("run1");
}

// linux.rootfsPropagation is honoured inside; whatever it is, nothing reaches the host.
TEST_P(Cleanup, RootfsPropagationHonoured) {
    const bool shared = GetParam();
    struct Case {
        const char* value;
        bool is_shared, is_slave;  // the container's root: "shared:N", "master:N"
    } cases[] = {{"", false, shared},        {"rslave", false, shared}, {"private", false, false},
                 {"rprivate", false, false}, {"shared", true, shared},  {"rshared", true, shared}};
    int n = 0;
    for (auto& c : cases) {
        SCOPED_TRACE(std::string("rootfsPropagation \"") + c.value + "\"");
        if (*c.value) b->config["linux"]["rootfsPropagation"] = c.value;
        else b->config["linux"].erase("rootfsPropagation");
        b->config["root"]["readonly"] = false;
        for (auto set : {"bounding", "effective", "permitted"})
            b->config["process"]["capabilities"][set] = {"CAP_SYS_ADMIN"};
        // the root's optional fields (mountinfo fields 7 up to the "-")
        b->config["process"]["args"] = {"sh", "-c",
                                        "mkdir -p /mnt && mount -t tmpfs t /mnt && awk '$5 == \"/\" { for (i = 7; $i "
                                        "!= \"-\"; i++) print $i }' /proc/self/mountinfo"};
        b->save();
        const std::string id = "prop" + std::to_string(n++);
        b->ids.push_back(id);
        Result r = b->rt({"run", "-b", b->dir, id});
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(r.out.find("shared:") != std::string::npos, c.is_shared) << r.out;
        EXPECT_EQ(r.out.find("master:") != std::string::npos, c.is_slave) << r.out;
        expect_nothing_left(id);
    }
}

TEST_P(Cleanup, BadMountFails) {
    b->config["mounts"].push_back({{"destination", "/mnt"}, {"type", "trustme-no-such-fs"}, {"source", "none"}});
    expect_create_and_run_fail("badmount", "mount trustme-no-such-fs");
}

TEST_P(Cleanup, MissingBindSourceFails) {
    b->config["mounts"].push_back(
        {{"destination", "/mnt"}, {"type", "bind"}, {"source", b->dir + "/missing"}, {"options", {"rbind"}}});
    expect_create_and_run_fail("badbind", "source " + b->dir + "/missing");
}

TEST_P(Cleanup, MissingDeviceFails) {
    // A bind mount of a device node the host does not have, after all the other mounts were made.
    b->config["mounts"].push_back({{"destination", "/dev/missing"},
                                   {"type", "bind"},
                                   {"source", "/dev/trustme-no-such-device"},
                                   {"options", {"bind"}}});
    expect_create_and_run_fail("baddev", "source /dev/trustme-no-such-device");
}

TEST_P(Cleanup, DeviceThatCannotBeMadeFails) {
    // linux.devices last of the rootfs set-up: every mount is in place when mknod fails (ENOTDIR).
    b->config["linux"]["devices"] = {{{"path", "/bin/sh/dev"}, {"type", "c"}, {"major", 1}, {"minor", 3}}};
    expect_create_and_run_fail("mknod", "device /bin/sh/dev");
}

TEST_P(Cleanup, FailingHooks) {
    struct Kind {
        const char* name;
        nlohmann::json hook;
        const char* why;
    } kinds[] = {
        {"exit", {{"path", "/bin/false"}}, "exit status 1"},
        {"missing", {{"path", "/nonexistent/hook"}}, "/nonexistent/hook"},
        {"timeout", {{"path", "/bin/sleep"}, {"args", {"sleep", "30"}}, {"timeout", 1}}, "hook /bin/sleep"},
    };
    int n = 0;
    for (const char* when : {"prestart", "createRuntime", "createContainer"}) {
        for (auto& k : kinds) {
            SCOPED_TRACE(std::string(when) + " hook: " + k.name);
            b->config["hooks"] = {{when, {k.hook}}};
            expect_create_and_run_fail("hook" + std::to_string(n++), std::string(when) + " hook");
        }
    }
    // startContainer runs after create succeeded: run fails and removes everything; create + start
    // leaves a stopped container that delete removes.
    for (auto& k : kinds) {
        SCOPED_TRACE(std::string("startContainer hook: ") + k.name);
        b->config["hooks"] = {{"startContainer", {k.hook}}};
        b->save();
        const std::string id = "start" + std::to_string(n++);
        b->ids.push_back(id);
        expect_failed_cleanly(b->rt({"run", "-b", b->dir, id}), id, "startContainer hook");
        ASSERT_EQ(b->rt({"create", "-b", b->dir, id}).status, 0);
        Result r = b->rt({"start", id});
        EXPECT_NE(r.status, 0);
        EXPECT_NE(r.err.find("startContainer hook"), std::string::npos) << r.err;
        EXPECT_EQ(b->rt({"delete", id}).status, 0);
        expect_nothing_left(id);
    }
}

TEST_P(Cleanup, KilledInitFails) {
    // A createRuntime hook kills the container's init (its pid is in the state on the hook's stdin).
    b->config["hooks"] = {
        {"createRuntime",
         {{{"path", "/bin/sh"}, {"args", {"sh", "-c", "kill -9 $(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/')"}}}}}};
    expect_create_and_run_fail("killed", "container init exited during setup");
}

TEST_P(Cleanup, FailingExecveFails) {
    // A missing program is found at create (as runc does); one that exists but cannot be executed
    // (ENOEXEC) only by the init's execve, after start.
    b->config["process"]["args"] = {"/nonexistent/program"};
    expect_create_and_run_fail("missing", "/nonexistent/program");
    write_text(b->rootfs + "/badprog", std::string("\x01\x02garbage", 9));
    chmod((b->rootfs + "/badprog").c_str(), 0755);
    b->config["process"]["args"] = {"/badprog"};
    b->save();
    b->ids = {"noexec"};
    expect_failed_cleanly(b->rt({"run", "-b", b->dir, "noexec"}), "noexec", "/badprog");
    ASSERT_EQ(b->rt({"create", "-b", b->dir, "noexec"}).status, 0);
    Result r = b->rt({"start", "noexec"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("/badprog"), std::string::npos) << r.err;
    EXPECT_EQ(b->rt({"delete", "noexec"}).status, 0);
    expect_nothing_left("noexec");
}

TEST_P(Cleanup, FailingExecIntoRunningContainer) {
    b->config["process"]["args"] = {"sleep", "60"};
    b->save();
    b->ids = {"target"};
    ASSERT_EQ(b->rt({"run", "-d", "-b", b->dir, "target"}).status, 0);
    const nlohmann::json bad[] = {
        {{"args", {"/nonexistent/program"}}, {"cwd", "/"}},
        {{"args", {"true"}}, {"cwd", "/nonexistent/dir"}},
        {{"args", {"true"}}, {"cwd", "/"}, {"capabilities", {{"bounding", {"CAP_NO_SUCH_THING"}}}}},
    };
    for (auto& p : bad) {
        SCOPED_TRACE(p.dump());
        write_text(b->dir + "/process.json", p.dump());
        Result r = b->rt({"exec", "-p", b->dir + "/process.json", "target"});
        EXPECT_NE(r.status, 0);
        EXPECT_EQ(join(mounts_under(b->dir + "/")), "") << "mounts on the host";
        auto pids = pids_naming(b->dir);
        EXPECT_TRUE(pids.empty()) << "exec left a process";
        EXPECT_EQ(nlohmann::json::parse(b->rt({"state", "target"}).out)["status"], "running");
    }
    EXPECT_EQ(b->rt({"delete", "--force", "target"}).status, 0);
    expect_nothing_left("target");
}

INSTANTIATE_TEST_SUITE_P(Bundle, Cleanup, ::testing::Bool(), param_name);

}  // namespace
