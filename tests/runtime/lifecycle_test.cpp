// runtime.md lifecycle through the built binary: create → created → start → running → stopped → delete.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "tests/common/bundle.hpp"

using namespace trustme::test;

namespace {
std::string status(const Bundle& b, const std::string& id) {
    Result r = b.rt({"state", id});
    if (r.status != 0) return "error: " + r.err;
    return nlohmann::json::parse(r.out).at("status").get<std::string>();
}

bool wait_status(const Bundle& b, const std::string& id, const std::string& want) {
    for (int i = 0; i < 100; ++i) {
        if (status(b, id) == want) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}
}  // namespace

TEST(Lifecycle, CreateStartStateKillDelete) {
    Bundle b("life");
    b.config["process"]["args"] = {"sleep", "100"};
    b.save();
    b.ids.push_back("c1");
    std::string pidfile = b.dir + "/pid";
    Result r = b.rt({"create", "--bundle", b.dir, "--pid-file", pidfile, "c1"});
    ASSERT_EQ(r.status, 0) << r.err;
    // The pid file exists when create returns (shims rely on it).
    int pid = std::stoi(read_text(pidfile));
    EXPECT_GT(pid, 0);
    auto st = nlohmann::json::parse(b.rt({"state", "c1"}).out);
    EXPECT_EQ(st["status"], "created");
    EXPECT_EQ(st["pid"], pid);
    EXPECT_EQ(st["bundle"], b.dir);
    EXPECT_EQ(st["id"], "c1");
    EXPECT_TRUE(st.contains("ociVersion") && st.contains("created") && st.contains("rootfs") && st.contains("owner"));
    EXPECT_EQ(st["owner"], "root");  // stored as the uid, named from /etc/passwd
    // The user program has not run yet: the init is still our binary.
    std::string comm = read_text("/proc/" + std::to_string(pid) + "/comm");
    EXPECT_EQ(comm.find("sleep"), std::string::npos) << comm;

    r = b.rt({"start", "c1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(status(b, "c1"), "running");
    r = b.rt({"start", "c1"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("running, not created"), std::string::npos) << r.err;
    r = b.rt({"delete", "c1"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("use --force"), std::string::npos) << r.err;

    r = b.rt({"kill", "c1", "KILL"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(wait_status(b, "c1", "stopped"));
    r = b.rt({"kill", "c1", "TERM"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("not running"), std::string::npos);
    r = b.rt({"delete", "c1"});
    ASSERT_EQ(r.status, 0) << r.err;
    r = b.rt({"state", "c1"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
    struct stat sb;
    EXPECT_NE(stat((b.root + "/c1").c_str(), &sb), 0);
}

TEST(Lifecycle, DuplicateAndInvalidIds) {
    Bundle b("ids");
    b.config["process"]["args"] = {"sleep", "100"};
    b.save();
    b.ids.push_back("dup");
    ASSERT_EQ(b.rt({"create", "-b", b.dir, "dup"}).status, 0);
    Result r = b.rt({"create", "-b", b.dir, "dup"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
    r = b.rt({"create", "-b", b.dir, "../evil"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("invalid container id"), std::string::npos) << r.err;
    r = b.rt({"start", "nosuch"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("does not exist"), std::string::npos);
    // runc deletes a created container without --force.
    EXPECT_EQ(b.rt({"delete", "dup"}).status, 0);
}

TEST(Lifecycle, RunPropagatesExitCodeAndSignals) {
    Bundle b("exit");
    Result r = b.run_sh("e1", "echo out; echo err >&2; exit 7");
    EXPECT_EQ(r.status, 7);
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "err\n");
    // Killed from outside while `run` waits in the foreground: 128 + signal.
    b.config["process"]["args"] = {"sleep", "100"};
    b.save();
    b.ids.push_back("e2");
    Result fg;
    std::thread t([&] { fg = b.rt({"run", "-b", b.dir, "e2"}); });
    for (int i = 0; i < 200 && status(b, "e2") != "running"; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
    EXPECT_EQ(b.rt({"kill", "e2", "KILL"}).status, 0);
    t.join();
    EXPECT_EQ(fg.status, 128 + 9) << fg.err;
    // run removes the container after it exits (no --keep).
    EXPECT_NE(b.rt({"state", "e1"}).status, 0);
}

TEST(Lifecycle, StdinPassthrough) {
    Bundle b("stdin");
    b.config["process"]["args"] = {"cat"};
    b.save();
    b.ids.push_back("in");
    Result r = b.rt({"run", "-b", b.dir, "in"}, "hello through stdin\n");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "hello through stdin\n");
}

TEST(Lifecycle, ListFormats) {
    Bundle b("list");
    b.config["process"]["args"] = {"sleep", "100"};
    b.save();
    b.ids.push_back("l1");
    ASSERT_EQ(b.rt({"run", "-d", "-b", b.dir, "l1"}).status, 0);
    Result r = b.rt({"list", "--format", "json"});
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j.size(), 1u);
    EXPECT_EQ(j[0]["id"], "l1");
    EXPECT_EQ(j[0]["status"], "running");
    EXPECT_EQ(b.rt({"list", "-q"}).out, "l1\n");
    EXPECT_NE(b.rt({"list"}).out.find("l1"), std::string::npos);
    EXPECT_EQ(b.rt({"delete", "--force", "l1"}).status, 0);
}

TEST(Lifecycle, HooksRunInOrderWithStateOnStdin) {
    Bundle b("hooks");
    std::string log = b.dir + "/hooks.log";
    auto hook = [&](const std::string& name) {
        // Each hook appends its name and the status it was given on stdin.
        return nlohmann::json{
            {"path", "/bin/sh"},
            {"args",
             {"sh", "-c", "read s; echo " + name + " $(echo \"$s\" | grep -o '\"status\":\"[a-z]*\"') >> " + log}}};
    };
    b.config["hooks"] = {{"prestart", {hook("prestart")}},
                         {"createRuntime", {hook("createRuntime")}},
                         {"createContainer", {hook("createContainer")}},
                         {"startContainer", {hook("startContainer")}},
                         {"poststart", {hook("poststart")}},
                         {"poststop", {hook("poststop")}}};
    // startContainer runs inside the container: /bin/sh exists there too, but the log path does not;
    // give it a path that exists in both (the bundle dir is bind-mounted at the same place).
    b.config["mounts"].push_back({{"destination", b.dir}, {"type", "bind"}, {"source", b.dir}, {"options", {"rbind"}}});
    b.config["root"]["readonly"] = false;
    b.save();
    b.ids.push_back("h1");
    Result r = b.rt({"run", "-b", b.dir, "h1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(read_text(log),
              "prestart \"status\":\"creating\"\n"
              "createRuntime \"status\":\"creating\"\n"
              "createContainer \"status\":\"creating\"\n"
              "startContainer \"status\":\"created\"\n"
              "poststart \"status\":\"running\"\n"
              "poststop \"status\":\"stopped\"\n");
}

TEST(Lifecycle, FailingCreateRuntimeHookAbortsAndLeavesNothing) {
    Bundle b("hookfail");
    b.config["hooks"] = {{"createRuntime", {{{"path", "/bin/false"}}}}};
    b.save();
    Result r = b.rt({"create", "-b", b.dir, "hf"});
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.err, "trustme-runtime: createRuntime hook /bin/false: exit status 1\n");
    EXPECT_EQ(b.rt({"list", "-q"}).out, "");
    struct stat sb;
    EXPECT_NE(stat("/sys/fs/cgroup/memory/trustme-hf", &sb), 0);
}

// A create killed half-way (here while its createRuntime hook runs: the cgroups exist, the record is the
// creating one, state.creating.json) must still be found and removed, cgroups and all, by delete --force.
TEST(Lifecycle, KilledCreateIsRemovedByDeleteForce) {
    Bundle b("killed");
    const std::string marker = b.dir + "/hook-pid";
    b.config["linux"]["cgroupsPath"] = "/trustme-test-killed-create";
    b.config["hooks"] = {
        {"createRuntime",
         {{{"path", "/bin/sh"},
           {"args",
            {"sh", "-c", "echo $$ > " + marker + ".tmp && mv " + marker + ".tmp " + marker + " && exec sleep 60"}}}}}};
    b.save();
    b.ids.push_back("kc");
    std::vector<std::string> args = {runtime_binary(), "--root", b.root, "create", "-b", b.dir, "kc"};
    pid_t create = fork();
    if (create == 0) {
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    ASSERT_GT(create, 0);
    struct stat sb;
    for (int i = 0; i < 200 && stat(marker.c_str(), &sb) != 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_EQ(stat(marker.c_str(), &sb), 0) << "the createRuntime hook did not start";
    kill(create, SIGKILL);  // by pid: the create process, then its hook
    waitpid(create, nullptr, 0);
    kill(std::stoi(read_text(marker)), SIGKILL);
    const std::string cg = "/sys/fs/cgroup/pids/trustme-test-killed-create";
    const bool v1 = stat("/sys/fs/cgroup/pids", &sb) == 0;
    if (v1) {
        EXPECT_EQ(stat(cg.c_str(), &sb), 0) << "the killed create made no cgroup: nothing tested";
    }
    EXPECT_EQ(b.rt({"list", "-q"}).out, "kc\n");
    Result r = b.rt({"delete", "--force", "kc"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(b.rt({"list", "-q"}).out, "");
    if (v1) {
        EXPECT_NE(stat(cg.c_str(), &sb), 0) << cg << " left behind";
    }
    EXPECT_NE(stat("/sys/fs/cgroup/unified/trustme-test-killed-create", &sb), 0);
}

TEST(Lifecycle, FailingStartContainerHookFailsStart) {
    // runtime.md: "If any startContainer hook fails, the runtime MUST generate an error, stop the container,
    // and continue the lifecycle at step 12" (runc 1.1 and crun 1.8 return success from start here).
    Bundle b("startfail");
    std::string marker = b.dir + "/ran";
    b.config["hooks"] = {{"startContainer", {{{"path", "/bin/false"}}}}};
    b.config["mounts"].push_back({{"destination", b.dir}, {"type", "bind"}, {"source", b.dir}, {"options", {"rbind"}}});
    b.config["process"]["args"] = {"sh", "-c", "touch " + marker};
    b.save();
    b.ids.push_back("sf");
    ASSERT_EQ(b.rt({"create", "-b", b.dir, "sf"}).status, 0);
    Result r = b.rt({"start", "sf"});
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.err,
              "trustme-runtime: container \"sf\" did not start: startContainer hook /bin/false: exit status 1\n");
    EXPECT_EQ(nlohmann::json::parse(b.rt({"state", "sf"}).out)["status"], "stopped");
    struct stat sb;
    EXPECT_NE(stat(marker.c_str(), &sb), 0) << "the program ran although its startContainer hook failed";
    // The same through run: an error, and nothing left behind.
    Result run = b.rt({"run", "-b", b.dir, "sf2"});
    EXPECT_NE(run.status, 0);
    EXPECT_NE(run.err.find("did not start: startContainer hook /bin/false: exit status 1"), std::string::npos)
        << run.err;
    EXPECT_EQ(b.rt({"list", "-q"}).out, "sf\n");
}

TEST(Lifecycle, HookTimeoutIsHonoured) {
    Bundle b("hooktimeout");
    b.config["hooks"] = {{"prestart", {{{"path", "/bin/sleep"}, {"args", {"sleep", "30"}}, {"timeout", 1}}}}};
    b.save();
    auto t0 = std::chrono::steady_clock::now();
    Result r = b.rt({"create", "-b", b.dir, "ht"});
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("prestart hook /bin/sleep: timed out after 1s"), std::string::npos) << r.err;
    EXPECT_LT(secs, 20);  // bounded, not a timing assertion on speed
    EXPECT_EQ(b.rt({"list", "-q"}).out, "");
}

TEST(Lifecycle, FailingPoststartOnlyWarns) {
    Bundle b("poststart");
    b.config["hooks"] = {{"poststart", {{{"path", "/bin/false"}}}}};
    b.save();
    b.ids.push_back("pw");
    Result r = b.rt({"run", "-b", b.dir, "pw"});
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.err.find("warning: poststart hook /bin/false: exit status 1"), std::string::npos) << r.err;
}

TEST(Lifecycle, JsonLogLinesForEngines) {
    Bundle b("jsonlog");
    std::string log = b.dir + "/log.json";
    std::vector<std::string> argv = {runtime_binary(), "--root", b.root,  "--log", log,
                                     "--log-format",   "json",   "start", "nosuch"};
    Result r = run(argv);
    EXPECT_NE(r.status, 0);
    auto line = read_text(log);
    auto j = nlohmann::json::parse(line.substr(0, line.find('\n')));
    EXPECT_EQ(j["level"], "error");
    EXPECT_EQ(j["msg"], "container \"nosuch\" does not exist");
    EXPECT_TRUE(j.contains("time"));
}

// spec --rootless maps the caller's own uid and gid (as runc spec --rootless), whoever calls it.
TEST(Lifecycle, SpecRootlessMapsTheCaller) {
    std::string dir = make_temp_dir("specrl");
    chmod(dir.c_str(), 0777);
    Result r = run({"setpriv", "--reuid", "4321", "--regid", "4322", "--clear-groups", runtime_binary(), "spec",
                    "--rootless", "--bundle", dir});
    ASSERT_EQ(r.status, 0) << r.err;
    auto cfg = nlohmann::json::parse(read_text(dir + "/config.json"));
    EXPECT_EQ(cfg["linux"]["uidMappings"], nlohmann::json::parse(R"([{"containerID":0,"hostID":4321,"size":1}])"));
    EXPECT_EQ(cfg["linux"]["gidMappings"], nlohmann::json::parse(R"([{"containerID":0,"hostID":4322,"size":1}])"));
    remove_tree(dir);
}
