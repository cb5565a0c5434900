// CVE-2024-21626 ("Leaky Vessels", GHSA-xr7r-f8xq-vfvv), reproduced against trustme-runtime (busybox
// bundle, tests/common). runc's init held an fd of the host's /sys/fs/cgroup, without O_CLOEXEC, when it
// entered process.cwd: `process.cwd` "/proc/self/fd/7", `runc exec --cwd /proc/self/fd/7`, or an image
// whose working directory was a symlink to it, gave the container process a cwd on the host's filesystem,
// from which `..` walked to the host's root. runc 1.1.12 closed the fd and checks the cwd with getcwd.
//
// Every fd number the runtime could be holding is tried: 3..20, and those an init holds while it waits for
// `start` (read from /proc/<pid>/fd of a created container). Each attempt must fail with one line, or run
// with a cwd inside the container's root: a marker file next to the rootfs (the host directory right above
// the container's root) must stay out of reach of every `..` walk. Each runs twice: as root, and with
// `--rootless true`, where the init itself clones the rootfs from the verified directory, as an
// unprivileged runtime does, and so holds an fd of that directory on the host. That fd was this class's
// hole here: kept until the exec, it gave process.cwd "/proc/self/fd/N" the host's bundle directory and a
// `..` walk to the host's root (runtime/process/init.cpp now closes it and checks the cwd).
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <thread>

#include "tests/common/bundle.hpp"

using trustme::test::Bundle;
using trustme::test::read_text;
using trustme::test::Result;
using trustme::test::write_text;

namespace {

struct Mode {
    const char* name;
    std::vector<std::string> globals;  // before the command
};
const Mode kModes[] = {{"root", {}}, {"--rootless true", {"--rootless", "true"}}};

Result rt(const Bundle& b, const Mode& m, std::vector<std::string> args, int timeout_s = 60) {
    args.insert(args.begin(), m.globals.begin(), m.globals.end());
    return b.rt(args, "", timeout_s);
}

constexpr const char* kMarker = "leaky-vessels-marker";

// A file of the host's, next to the rootfs, that no container process may read.
std::string plant_marker(const Bundle& b) {
    const std::string secret = "host-only-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand());
    write_text(b.dir + "/" + kMarker, secret + "\n");
    return secret;
}

// Read the marker from the cwd and from every level up: as the file next to us and by the host path of the
// bundle (a cwd elsewhere on the host, as /sys/fs/cgroup was in runc, reaches it only from the host's
// root). Then walk up 16 levels and print where that ends next to what `/` is: inside the container's
// root every walk ends at `/`, whose `..` is itself.
std::string probe_script(const Bundle& b) {
    std::string up = ".";
    for (int i = 0; i < 16; ++i) up += "/..";
    return "p=.; for i in 0 1 2 3 4 5 6 7 8 9 10 11 12; do cat $p/" + std::string(kMarker) + " $p" + b.dir + "/" +
           kMarker + " 2>/dev/null; p=$p/..; done; echo \"walk $(stat -c %d:%i " + up + ") root $(stat -c %d:%i /)\"";
}

// Either a refusal of one line, or a run whose cwd is inside the root; never the marker.
void expect_contained(const Result& r, const std::string& secret) {
    EXPECT_EQ(r.out.find(secret), std::string::npos) << "the container read the host's marker:\n" << r.out;
    EXPECT_EQ(r.err.find(secret), std::string::npos) << r.err;
    if (r.status == 0) {
        char walk[64] = "", root[64] = "";
        EXPECT_EQ(std::sscanf(r.out.c_str() + std::min(r.out.rfind("walk "), r.out.size()), "walk %63s root %63s", walk,
                              root),
                  2)
            << r.out << r.err;
        EXPECT_STREQ(walk, root) << "`..` from the cwd leads out of the container's root:\n" << r.out;
    } else {
        EXPECT_EQ(r.err.rfind("trustme-runtime: ", 0), 0u) << r.err;
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;  // one line
    }
}

int pid_of(const Bundle& b, const std::string& id) {
    auto j = nlohmann::json::parse(b.rt({"state", id}).out, nullptr, false);
    return j.is_object() && j.contains("pid") ? j["pid"].get<int>() : -1;
}

// The fd numbers of a process, read by the host from /proc/<pid>/fd.
std::set<int> fds_of(int pid) {
    std::set<int> fds;
    DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
    if (!d) return fds;
    while (struct dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') fds.insert(std::atoi(e->d_name));
    ::closedir(d);
    return fds;
}

std::string show(const std::set<int>& fds) {
    std::string s;
    for (int fd : fds) s += (s.empty() ? "" : ",") + std::to_string(fd);
    return "{" + s + "}";
}

// 3..20 and every fd a created (not yet started) init of this bundle holds while it waits for `start`.
std::set<int> fd_numbers(Bundle& b, const Mode& m) {
    std::set<int> n;
    for (int fd = 3; fd <= 20; ++fd) n.insert(fd);
    b.config["process"]["args"] = {"/bin/true"};
    b.save();
    b.ids.push_back("lv-probe");
    Result c = rt(b, m, {"create", "--bundle", b.dir, "lv-probe"});
    EXPECT_EQ(c.status, 0) << c.err;
    std::set<int> held = fds_of(pid_of(b, "lv-probe"));
    EXPECT_FALSE(held.empty());
    for (int fd : held)
        if (fd > 2) n.insert(fd);
    b.rt({"delete", "--force", "lv-probe"});
    return n;
}

}  // namespace

// process.cwd "/proc/self/fd/N" for every fd the init may hold when it enters the cwd.
TEST(LeakyVessels, ProcessCwdThroughARuntimeFdStaysInTheRoot) {
    for (const Mode& m : kModes) {
        SCOPED_TRACE(m.name);
        Bundle b("lv-cwd");
        const std::string secret = plant_marker(b);
        const std::set<int> fds = fd_numbers(b, m);
        b.config["process"]["args"] = {"/bin/sh", "-c", probe_script(b)};
        b.ids.push_back("lv");
        for (int fd : fds) {
            SCOPED_TRACE("process.cwd /proc/self/fd/" + std::to_string(fd));
            b.config["process"]["cwd"] = "/proc/self/fd/" + std::to_string(fd);
            b.save();
            Result r = rt(b, m, {"run", "--bundle", b.dir, "lv"});
            expect_contained(r, secret);
            b.rt({"delete", "--force", "lv"});
        }
    }
}

// `exec --cwd /proc/self/fd/N` into a running container.
TEST(LeakyVessels, ExecCwdThroughARuntimeFdStaysInTheRoot) {
    for (const Mode& m : kModes) {
        SCOPED_TRACE(m.name);
        Bundle b("lv-exec");
        const std::string secret = plant_marker(b);
        const std::set<int> fds = fd_numbers(b, m);
        b.config["process"]["args"] = {"/bin/sleep", "120"};
        b.save();
        b.ids.push_back("lv");
        ASSERT_EQ(rt(b, m, {"run", "-d", "--bundle", b.dir, "lv"}).status, 0);
        for (int fd : fds) {
            SCOPED_TRACE("exec --cwd /proc/self/fd/" + std::to_string(fd));
            Result r = rt(
                b, m, {"exec", "--cwd", "/proc/self/fd/" + std::to_string(fd), "lv", "/bin/sh", "-c", probe_script(b)});
            expect_contained(r, secret);
        }
        EXPECT_EQ(b.rt({"delete", "--force", "lv"}).status, 0);
    }
}

// The image's /work is a symlink to /proc/self/fd/N: process.cwd "/work" at create, and `exec --cwd /work`.
TEST(LeakyVessels, ImageSymlinkToARuntimeFdStaysInTheRoot) {
    for (const Mode& m : kModes) {
        SCOPED_TRACE(m.name);
        Bundle b("lv-link");
        const std::string secret = plant_marker(b);
        const std::set<int> fds = fd_numbers(b, m);
        const std::string link = b.rootfs + "/work";
        b.ids.push_back("lv");
        b.ids.push_back("lv-run");
        b.config["process"]["cwd"] = "/work";
        for (int fd : fds) {
            SCOPED_TRACE("/work -> /proc/self/fd/" + std::to_string(fd) + ", process.cwd /work");
            ::unlink(link.c_str());
            ASSERT_EQ(::symlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link.c_str()), 0);
            b.config["process"]["args"] = {"/bin/sh", "-c", probe_script(b)};
            b.save();
            Result r = rt(b, m, {"run", "--bundle", b.dir, "lv"});
            expect_contained(r, secret);
            b.rt({"delete", "--force", "lv"});
        }
        // The same link met by `exec --cwd /work` in a container that started elsewhere.
        ::unlink(link.c_str());
        b.config["process"]["cwd"] = "/";
        b.config["process"]["args"] = {"/bin/sleep", "120"};
        b.save();
        ASSERT_EQ(rt(b, m, {"run", "-d", "--bundle", b.dir, "lv-run"}).status, 0);
        for (int fd : fds) {
            SCOPED_TRACE("/work -> /proc/self/fd/" + std::to_string(fd) + ", exec --cwd /work");
            ::unlink(link.c_str());
            ASSERT_EQ(::symlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link.c_str()), 0);
            Result r = rt(b, m, {"exec", "--cwd", "/work", "lv-run", "/bin/sh", "-c", probe_script(b)});
            expect_contained(r, secret);
        }
        EXPECT_EQ(b.rt({"delete", "--force", "lv-run"}).status, 0);
    }
}

namespace {

// Wait until the process has exec'd busybox sleep (its comm changes in execve) and sleeps in it: `exec -d`
// returns once the process is ready, before its execve.
bool wait_for_sleep(int pid) {
    const std::string stat = "/proc/" + std::to_string(pid) + "/stat";
    for (int i = 0; i < 200; ++i) {
        std::string s = read_text(stat);
        auto close = s.rfind(')');
        if (s.find("(sleep)") != std::string::npos && close != std::string::npos && s.compare(close, 4, ") S ") == 0)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

std::set<int> stdio_and(int first, int count) {
    std::set<int> s = {0, 1, 2};
    for (int fd = first; fd < first + count; ++fd) s.insert(fd);
    return s;
}

}  // namespace

// After execve the container process holds 0, 1, 2 and the fds that --preserve-fds and LISTEN_FDS pass,
// nothing else: not an fd of the runtime's, and not one the runtime itself inherited without being asked
// to pass it (each case opens one fd more than it passes). Read by the host from /proc/<pid>/fd.
TEST(LeakyVessels, ContainerProcessHoldsOnlyStdioAndPassedFds) {
    struct Case {
        int listen, preserve;
    } cases[] = {{0, 0}, {0, 2}, {2, 1}};
    for (const Mode& m : kModes) {
        SCOPED_TRACE(m.name);
        Bundle b("lv-fds");
        const std::string file = b.dir + "/passed";
        write_text(file, "passed\n");
        b.config["process"]["args"] = {"/bin/sleep", "120"};
        b.save();
        std::string globals;
        for (auto& g : m.globals) globals += " " + g;
        const std::string runtime = trustme::test::runtime_binary() + " --root " + b.root + globals;
        for (const Case& c : cases) {
            const int passed = c.listen + c.preserve;
            SCOPED_TRACE("LISTEN_FDS=" + std::to_string(c.listen) + " --preserve-fds " + std::to_string(c.preserve));
            std::string open;  // fds 3..3+passed, one more than is passed
            for (int fd = 3; fd <= 3 + passed; ++fd) open += " " + std::to_string(fd) + "<" + file;
            std::string env = c.listen ? "export LISTEN_PID=$$ LISTEN_FDS=" + std::to_string(c.listen) + "; " : "";
            b.ids.push_back("lv-fds");
            Result r = trustme::test::run({"/bin/sh", "-c",
                                           "exec" + open + "; " + env + "exec " + runtime + " run -d --preserve-fds " +
                                               std::to_string(c.preserve) + " --bundle " + b.dir + " lv-fds"});
            ASSERT_EQ(r.status, 0) << r.err;
            int pid = pid_of(b, "lv-fds");
            ASSERT_TRUE(wait_for_sleep(pid));
            EXPECT_EQ(show(fds_of(pid)), show(stdio_and(3, passed))) << "the container's init";

            // exec takes --preserve-fds (LISTEN_FDS is for run and create only, as in runc).
            open.clear();
            for (int fd = 3; fd <= 3 + c.preserve; ++fd) open += " " + std::to_string(fd) + "<" + file;
            const std::string pid_file = b.dir + "/exec.pid";
            r = trustme::test::run({"/bin/sh", "-c",
                                    "exec" + open + "; exec " + runtime + " exec -d --pid-file " + pid_file +
                                        " --preserve-fds " + std::to_string(c.preserve) + " lv-fds /bin/sleep 120"});
            ASSERT_EQ(r.status, 0) << r.err;
            int epid = std::atoi(read_text(pid_file).c_str());
            ASSERT_TRUE(wait_for_sleep(epid));
            EXPECT_EQ(show(fds_of(epid)), show(stdio_and(3, c.preserve))) << "the exec'd process";
            EXPECT_EQ(b.rt({"delete", "--force", "lv-fds"}).status, 0);
        }
    }
}

// A directory outside the root given to the process on purpose (a host directory passed as fd 3 with
// --preserve-fds 1) is still not a cwd: after the chdir the runtime asks the kernel where the cwd is
// (getcwd), as runc 1.1.12 does, and refuses a directory outside the container's root in one line.
TEST(LeakyVessels, CwdOutsideTheRootIsRefused) {
    for (const Mode& m : kModes) {
        SCOPED_TRACE(m.name);
        Bundle b("lv-outside");
        const std::string secret = plant_marker(b);
        std::string globals;
        for (auto& g : m.globals) globals += " " + g;
        const std::string runtime = trustme::test::runtime_binary() + " --root " + b.root + globals;
        b.ids.push_back("lv");
        b.config["process"]["cwd"] = "/proc/self/fd/3";
        b.config["process"]["args"] = {"/bin/sh", "-c", probe_script(b)};
        b.save();
        Result r = trustme::test::run(
            {"/bin/sh", "-c",
             "exec 3<" + b.dir + "; exec " + runtime + " run --preserve-fds 1 --bundle " + b.dir + " lv"});
        expect_contained(r, secret);
        EXPECT_NE(r.status, 0);
        EXPECT_NE(r.err.find("process.cwd /proc/self/fd/3: outside the container's root"), std::string::npos) << r.err;
        b.rt({"delete", "--force", "lv"});

        b.config["process"]["cwd"] = "/";
        b.config["process"]["args"] = {"/bin/sleep", "120"};
        b.save();
        ASSERT_EQ(rt(b, m, {"run", "-d", "--bundle", b.dir, "lv"}).status, 0);
        r = trustme::test::run({"/bin/sh", "-c",
                                "exec 3<" + b.dir + "; exec " + runtime +
                                    " exec --preserve-fds 1 --cwd /proc/self/fd/3 lv /bin/sh -c '" + probe_script(b) +
                                    "'"});
        expect_contained(r, secret);
        EXPECT_NE(r.status, 0);
        EXPECT_NE(r.err.find("exec: process.cwd /proc/self/fd/3: outside the container's root"), std::string::npos)
            << r.err;
        EXPECT_EQ(b.rt({"delete", "--force", "lv"}).status, 0);
    }
}
