// The state root (--root) and what is read back from it: created with its parents, holding containers only,
// shared with runc, one id rule for every command, bounded JSON, distrusted records.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "tests/common/bundle.hpp"

using namespace trustme::test;

namespace {

std::vector<std::string> entries(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = opendir(dir.c_str())) {
        while (struct dirent* e = readdir(d))
            if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
        closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

bool exists(const std::string& p) {
    struct stat st;
    return lstat(p.c_str(), &st) == 0;
}

void expect_one_line_error(const Result& r, const std::string& want) {
    EXPECT_NE(r.status, 0);
    EXPECT_LT(r.status, 128) << "killed by a signal";
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << "got: " << r.err;
}

// A JSON array nested `depth` levels: stack exhaustion for any recursive walk over it.
std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// A child that sleeps, and its start time (/proc/<pid>/stat field 22), for a record that names it.
struct Sleeper {
    pid_t pid = -1;
    Sleeper() {
        pid = fork();
        if (pid == 0) {
            execl("/bin/sleep", "sleep", "60", nullptr);
            _exit(127);
        }
    }
    ~Sleeper() {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
    bool alive() const {
        int st;
        return waitpid(pid, &st, WNOHANG) == 0;
    }
    uint64_t start() const {
        std::string s = read_text("/proc/" + std::to_string(pid) + "/stat");
        size_t p = s.rfind(')') + 2;
        for (int field = 3; field < 22; ++field) p = s.find(' ', p) + 1;
        return std::stoull(s.substr(p));
    }
};

}  // namespace

TEST(StateRoot, CreatedWithItsParents) {
    // containerd hands a runtime root whose parent does not exist yet; runc makes it (0711).
    Bundle b("root-parents");
    const std::string root = b.dir + "/run/a/b";
    b.save();
    Result r = run({runtime_binary(), "--root", root, "create", "-b", b.dir, "rp"});
    ASSERT_EQ(r.status, 0) << r.err;
    for (const std::string& d : {b.dir + "/run", b.dir + "/run/a", root}) {
        struct stat st;
        ASSERT_EQ(stat(d.c_str(), &st), 0) << d;
        EXPECT_EQ(st.st_mode & 07777, 0711u) << d;
    }
    EXPECT_EQ(run({runtime_binary(), "--root", root, "delete", "--force", "rp"}).status, 0);
    EXPECT_EQ(entries(root), std::vector<std::string>{});
}

TEST(StateRoot, HoldsContainersOnlyCachesGoElsewhere) {
    // A seccomp profile is compiled once and cached: the cache lives in its own directory (0700), not in
    // --root, which runc reads as a list of containers.
    Bundle b("root-cache");
    b.config["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_ALLOW"},
                                    {"syscalls", {{{"names", {"acct"}}, {"action", "SCMP_ACT_ERRNO"}}}}};
    b.save();
    const std::string cache = b.dir + "/cache";
    b.ids.push_back("rc");
    Result r =
        run({"env", "TRUSTME_CACHE_DIR=" + cache, runtime_binary(), "--root", b.root, "create", "-b", b.dir, "rc"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(entries(b.root), std::vector<std::string>{"rc"});
    EXPECT_EQ(entries(b.root + "/rc"), (std::vector<std::string>{"exec.fifo", "exec.status", "state.json"}))
        << "state.creating.json must go once state.json is written";
    struct stat st;
    ASSERT_EQ(stat(cache.c_str(), &st), 0) << "no cache made";
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    EXPECT_EQ(entries(cache).size(), 1u);
}

// Docker gives runc and us the same --root: each runtime sees only its own containers there.
TEST(StateRoot, SharedWithRunc) {
    if (run({"runc", "--version"}).status != 0) GTEST_SKIP() << "runc not installed";
    Bundle b("root-runc");
    b.config["process"]["args"] = {"sleep", "60"};
    b.save();
    ASSERT_EQ(run({"runc", "--root", b.root, "run", "-d", "-b", b.dir, "theirs"}, "", 30).status, 0);
    b.ids.push_back("ours");
    ASSERT_EQ(b.rt({"create", "-b", b.dir, "ours"}).status, 0);

    Result r = b.rt({"list"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out.find("theirs"), std::string::npos) << "runc's container listed as ours:\n" << r.out;
    EXPECT_NE(r.out.find("ours "), std::string::npos) << r.out;
    EXPECT_EQ(b.rt({"list", "-q"}).out, "ours\n");
    r = b.rt({"list", "--format", "json"});
    EXPECT_EQ(nlohmann::json::parse(r.out).size(), 1u) << r.out;
    r = b.rt({"state", "theirs"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("container \"theirs\" does not exist"), std::string::npos) << r.err;
    EXPECT_NE(b.rt({"delete", "theirs"}).status, 0);
    EXPECT_EQ(b.rt({"delete", "--force", "theirs"}).status, 0);  // as for any id that is not ours
    EXPECT_NE(b.rt({"kill", "theirs", "KILL"}).status, 0);

    // runc still has its container, running, and lists it without tripping over anything of ours.
    r = run({"runc", "--root", b.root, "list", "--format", "json"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\"id\":\"theirs\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"status\":\"running\""), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find(".seccomp-cache"), std::string::npos) << r.err;
    r = run({"runc", "--root", b.root, "state", "theirs"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\"running\""), std::string::npos) << r.out;
    EXPECT_EQ(run({"runc", "--root", b.root, "delete", "--force", "theirs"}, "", 30).status, 0);
}

// runc's rule for every command that takes an id, checked before the id becomes a path.
TEST(StateId, OneRuleForEveryCommand) {
    Bundle b("id-rule");
    b.save();
    ASSERT_EQ(mkdir(b.root.c_str(), 0711), 0);
    // What `../victim` names from --root: a directory of the test's own, outside --root.
    const std::string victim = b.dir + "/victim";
    ASSERT_EQ(mkdir(victim.c_str(), 0700), 0);
    write_text(victim + "/keep", "mine\n");
    write_text(victim + "/state.json", "{\"id\": \"victim\"}");  // enough for a runtime that reads it
    const std::vector<std::vector<std::string>> commands = {
        {"create", "-b", b.dir},
        {"run", "-b", b.dir},
        {"start"},
        {"state"},
        {"kill"},
        {"delete"},
        {"delete", "--force"},
        {"pause"},
        {"resume"},
        {"ps"},
        {"events", "--stats"},
        {"update", "--pids-limit", "10"},
        {"exec"},
    };
    for (const char* id : {"../victim", "..", ".", "a/b", "", "x y", "ok\n"}) {
        for (auto cmd : commands) {
            cmd.push_back(id);
            if (cmd[0] == "exec") cmd.push_back("true");
            SCOPED_TRACE(cmd[0] + " \"" + id + "\"");
            Result r = b.rt(cmd);
            EXPECT_NE(r.status, 0);
            if (*id) {
                EXPECT_NE(r.err.find("invalid container id"), std::string::npos) << r.err;
            }
        }
    }
    EXPECT_EQ(read_text(victim + "/keep"), "mine\n");
    EXPECT_TRUE(exists(victim + "/state.json"));
    EXPECT_EQ(entries(b.root), std::vector<std::string>{});
}

TEST(StateId, ForgedStateOutsideRootIsNeverActedOn) {
    // ../evil/state.json, made to look like ours, with a poststop hook and a cgroup and pid of a process
    // the test owns: `delete --force ../evil` must refuse before reading it.
    Bundle b("id-forged");
    ASSERT_EQ(mkdir(b.root.c_str(), 0711), 0);
    const std::string evil = b.dir + "/evil";
    ASSERT_EQ(mkdir(evil.c_str(), 0700), 0);
    Sleeper victim;
    struct stat st;
    const bool v1 = stat("/sys/fs/cgroup/pids", &st) == 0;
    const std::string cg = (v1 ? "/sys/fs/cgroup/pids/" : "/sys/fs/cgroup/") + std::string("trustme-test-forged-") +
                           std::to_string(getpid());
    ASSERT_EQ(mkdir(cg.c_str(), 0755), 0) << cg;
    write_text(cg + "/cgroup.procs", std::to_string(victim.pid));
    nlohmann::json cgroup =
        v1 ? nlohmann::json{{"mode", "legacy"},
                            {"path", "/x"},
                            {"paths", {{"pids", cg}}},
                            {"mountpoints", {{"pids", "/sys/fs/cgroup/pids"}}}}
           : nlohmann::json{{"mode", "unified"}, {"path", "/x"}, {"root", "/sys/fs/cgroup"}, {"dir", cg}};
    const std::string ran = b.dir + "/hook-ran";
    nlohmann::json forged = {
        {"runtime", "trustme-runtime"},
        {"id", "../evil"},
        {"pid", victim.pid},
        {"pid_start", victim.start()},
        {"created_done", true},
        {"bundle", b.dir},
        {"rootfs", b.rootfs},
        {"cgroup", cgroup},
        {"config", {{"hooks", {{"poststop", {{{"path", "/bin/sh"}, {"args", {"sh", "-c", "touch " + ran}}}}}}}}}};
    write_text(evil + "/state.json", forged.dump());
    for (auto args : std::vector<std::vector<std::string>>{
             {"delete", "--force", "../evil"}, {"delete", "../evil"}, {"kill", "--all", "../evil", "KILL"}}) {
        Result r = b.rt(args);
        EXPECT_NE(r.status, 0) << args[0];
        EXPECT_NE(r.err.find("invalid container id \"../evil\""), std::string::npos) << r.err;
    }
    EXPECT_FALSE(exists(ran)) << "the forged poststop hook ran";
    EXPECT_TRUE(victim.alive()) << "a process named by the forged state was killed";
    EXPECT_TRUE(exists(cg)) << "the cgroup named by the forged state was removed";
    EXPECT_TRUE(exists(evil + "/state.json"));
    kill(victim.pid, SIGKILL);
    waitpid(victim.pid, nullptr, 0);
    victim.pid = -1;
    for (int i = 0; i < 100 && rmdir(cg.c_str()) != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(exists(cg));
}

TEST(StateJson, DeepConfigIsRefusedAndLeavesNothing) {
    Bundle b("json-deep");
    std::string text = b.config.dump();
    text.insert(text.rfind('}'), ",\"deep\":" + nested(1000000));
    write_text(b.dir + "/config.json", text);
    expect_one_line_error(b.rt({"create", "-b", b.dir, "jd"}),
                          b.dir + "/config.json: JSON nested deeper than 64 levels");
    EXPECT_FALSE(exists(b.root + "/jd")) << "state directory left behind";
}

TEST(StateJson, OversizedConfigIsRefusedAndLeavesNothing) {
    Bundle b("json-big");
    b.config["annotations"]["big"] = std::string(17u << 20, 'x');
    b.save();
    expect_one_line_error(b.rt({"create", "-b", b.dir, "jb"}), b.dir + "/config.json: larger than 16777216 bytes");
    EXPECT_FALSE(exists(b.root + "/jb")) << "state directory left behind";
}

TEST(StateJson, DeepProcessJsonAndResourcesAreRefused) {
    Bundle b("json-exec");
    b.save();
    b.ids.push_back("je");
    ASSERT_EQ(b.rt({"create", "-b", b.dir, "je"}).status, 0);
    const std::string process = b.dir + "/process.json";
    write_text(process, "{\"args\":[\"true\"],\"cwd\":\"/\",\"capabilities\":{\"bounding\":" + nested(1000000) + "}}");
    expect_one_line_error(b.rt({"exec", "--process", process, "je"}), process + ": JSON nested deeper than 64 levels");
    const std::string res = b.dir + "/resources.json";
    write_text(res, "{\"pids\":" + nested(500000) + "}");  // within the size cap
    expect_one_line_error(b.rt({"update", "--resources", res, "je"}),
                          "--resources " + res + ": JSON nested deeper than 16 levels");
    expect_one_line_error(b.rt({"update", "--resources", "-", "je"}, "{\"pids\":" + nested(500000) + "}"),
                          "--resources -: JSON nested deeper than 16 levels");
    EXPECT_EQ(b.rt({"state", "je"}).status, 0);
}

// Records that cannot be trusted: listed as broken (one never hides the others), removed by delete --force
// without running their hooks or signalling what they name.
TEST(StateJson, CorruptRecordsAreListedAndForceDeletable) {
    Bundle b("json-corrupt");
    b.save();
    b.ids.push_back("good");
    ASSERT_EQ(b.rt({"create", "-b", b.dir, "good"}).status, 0);
    Sleeper victim;
    const std::string ran = b.dir + "/hook-ran";
    nlohmann::json base = nlohmann::json::parse(read_text(b.root + "/good/state.json"));
    base["pid"] = victim.pid;
    base["pid_start"] = victim.start();
    base["config"]["hooks"] = {{"poststop", {{{"path", "/bin/sh"}, {"args", {"sh", "-c", "touch " + ran}}}}}};
    auto broken = [&](const std::string& id, const std::string& text) {
        ASSERT_EQ(mkdir((b.root + "/" + id).c_str(), 0700), 0);
        write_text(b.root + "/" + id + "/state.json", text);
    };
    auto with = [&](const std::string& id, auto change) {
        nlohmann::json j = base;
        j["id"] = id;
        change(j);
        return j.dump();
    };
    broken("malformed", "{\"runtime\": \"trustme-runtime\", \"id\": ");
    std::string deep = with("deep", [](nlohmann::json&) {});
    deep.insert(deep.rfind('}'), ",\"x\":" + nested(1000000));
    broken("deep", deep);
    broken("wrongtype", with("wrongtype", [](nlohmann::json& j) { j["pid"] = "1"; }));
    // Cgroup paths that leave their hierarchy lead to a directory of the test's own whose cgroup.procs names
    // only the victim, and a "hierarchy root" that does not exist: a runtime that trusted them would kill
    // the victim, and nothing else.
    const std::string fake = b.dir + "/fakecg";
    ASSERT_EQ(mkdir(fake.c_str(), 0700), 0);
    write_text(fake + "/cgroup.procs", std::to_string(victim.pid) + "\n");
    broken(
        "escape", with("escape", [&](nlohmann::json& j) {
            j["cgroup"] = {
                {"mode", "unified"}, {"path", "/"}, {"root", "/sys/fs/cgroup"}, {"dir", "/sys/fs/cgroup/../.." + fake}};
        }));
    broken("rootcg", with("rootcg", [](nlohmann::json& j) {
               const std::string top = "/sys/fs/cgroup/pids/trustme-test-no-such-hierarchy";
               j["cgroup"] = {
                   {"mode", "legacy"}, {"path", "/"}, {"paths", {{"pids", top}}}, {"mountpoints", {{"pids", top}}}};
           }));
    broken("otherid", with("good", [](nlohmann::json&) {}));
    broken("badhook", with("badhook", [](nlohmann::json& j) { j["config"]["hooks"]["poststop"][0]["path"] = 7; }));
    const std::vector<std::string> bad = {"badhook", "deep", "escape", "malformed", "otherid", "rootcg", "wrongtype"};

    Result r = b.rt({"list"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("good "), std::string::npos) << r.out;
    for (auto& id : bad) EXPECT_NE(r.out.find(id + " "), std::string::npos) << id << " hidden:\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1 + 1 + static_cast<long>(bad.size())) << r.out;
    r = b.rt({"list", "--format", "json"});
    ASSERT_EQ(r.status, 0) << r.err;
    for (auto& e : nlohmann::json::parse(r.out))
        EXPECT_EQ(e["status"], e["id"] == "good" ? "created" : "broken") << e.dump();
    for (auto& id : bad) {
        SCOPED_TRACE(id);
        r = b.rt({"state", id});
        EXPECT_NE(r.status, 0);
        EXPECT_LT(r.status, 128);
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_NE(r.err.find(b.root + "/" + id + "/state.json"), std::string::npos) << r.err;
        EXPECT_NE(b.rt({"delete", id}).status, 0) << "removed without --force";
        r = b.rt({"delete", "--force", id});
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_FALSE(exists(b.root + "/" + id));
    }
    EXPECT_FALSE(exists(ran)) << "a broken record's poststop hook ran";
    EXPECT_TRUE(victim.alive()) << "a process named by a broken record was killed";
    EXPECT_EQ(b.rt({"list", "-q"}).out, "good\n");
}
