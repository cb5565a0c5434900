// NOTIFY_SOCKET passed through as runc does, and --systemd-cgroup on a host without systemd (this
// machine's shape: the driver itself is tested in the systemd VM, tests/vm/systemd-lifecycle.sh).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>

#include "tests/common/bundle.hpp"

using namespace trustme::test;

namespace {

// A datagram socket the test owns, standing in for systemd's or podman's notify socket.
struct NotifySocket {
    std::string dir, path;
    int fd = -1;
    NotifySocket() {
        dir = make_temp_dir("notify");
        path = dir + "/notify.sock";
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
        if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) throw std::runtime_error("bind");
    }
    ~NotifySocket() {
        close(fd);
        remove_tree(dir);
    }
    // What has arrived so far (never waits: the runtime returns only after forwarding).
    std::string received() {
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    }
};

void add_sender(Bundle& b) {
    std::string helper = std::string(TRUSTME_BINARY_DIR) + "/bin/notify_send";
    ASSERT_EQ(run({"cp", helper, b.rootfs + "/notify_send"}).status, 0);
}

Result rt_env(const Bundle& b, const std::string& sock, std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "NOTIFY_SOCKET=" + sock, runtime_binary(), "--root", b.root};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

int pid_of(const Bundle& b, const std::string& id) {
    return nlohmann::json::parse(b.rt({"state", id}).out).at("pid").get<int>();
}

}  // namespace

TEST(Notify, ReadyReachesTheCallersSocketAtRun) {
    NotifySocket ns;
    Bundle b("notify-run");
    add_sender(b);
    // The program says READY=1 and stays: `run -d` returns once that has been forwarded.
    b.config["process"]["args"] = {"/bin/sh", "-c", "/notify_send READY=1 && exec sleep 100"};
    b.save();
    b.ids.push_back("n1");
    Result r = rt_env(b, ns.path, {"run", "-d", "--bundle", b.dir, "n1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(ns.received(), "READY=1\nMAINPID=" + std::to_string(pid_of(b, "n1")) + "\n");
    // delete removes the container's notify socket with its state.
    r = b.rt({"delete", "--force", "n1"});
    EXPECT_EQ(r.status, 0) << r.err;
    struct stat st;
    EXPECT_NE(stat((b.root + "/n1").c_str(), &st), 0);
}

TEST(Notify, CreateThenStartForwardsAndTheContainerSeesItsOwnSocket) {
    NotifySocket ns;
    Bundle b("notify-start");
    add_sender(b);
    b.config["process"]["args"] = {"/bin/sh", "-c",
                                   "/notify_send > /dev/shm/env; ls -l /run/notify >> /dev/shm/env; "
                                   "/notify_send 'STATUS=up\nREADY=1' && exec sleep 100"};
    b.save();
    b.ids.push_back("n2");
    Result r = rt_env(b, ns.path, {"create", "--bundle", b.dir, "n2"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(ns.received(), "");  // nothing before start
    r = rt_env(b, ns.path, {"start", "n2"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(ns.received(), "READY=1\nMAINPID=" + std::to_string(pid_of(b, "n2")) + "\n");
    // The container got a socket of its own, not the caller's path.
    std::string seen = b.rt({"exec", "n2", "cat", "/dev/shm/env"}).out;
    EXPECT_EQ(seen.substr(0, seen.find('\n')), "/run/notify/notify.sock");
    EXPECT_NE(seen.find("notify.sock"), seen.rfind("notify.sock")) << seen;  // listed in /run/notify
}

TEST(Notify, StartReturnsWhenTheProgramExitsWithoutNotifying) {
    NotifySocket ns;
    Bundle b("notify-none");
    b.config["process"]["args"] = {"/bin/true"};
    b.save();
    b.ids.push_back("n3");
    Result r = rt_env(b, ns.path, {"run", "-d", "--bundle", b.dir, "n3"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(ns.received(), "");
}

TEST(SystemdCgroup, NoSystemdIsOneClearLineAndLeavesNothing) {
    struct stat st;
    if (stat("/run/systemd/system", &st) == 0)
        GTEST_SKIP() << "systemd runs here (tests/vm/systemd-lifecycle.sh covers it)";
    Bundle b("nosystemd");
    b.save();
    Result r = b.rt({"--systemd-cgroup", "run", "--bundle", b.dir, "s1"});
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find("systemd is not running on this host"), std::string::npos) << r.err;
    EXPECT_NE(stat((b.root + "/s1").c_str(), &st), 0);
}
