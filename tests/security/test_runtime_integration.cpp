// seccomp, capabilities and the process extras through `trustme-runtime run`, on a busybox bundle
// (tests/fixtures/make-rootfs.sh): the effect is observed from inside the container.
#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/fd.hpp"
#include "tests/security/child.hpp"

using nlohmann::json;
namespace fs = std::filesystem;
using trustme::UniqueFd;

namespace {

const std::string kRuntime = std::string(TRUSTME_BINARY_DIR) + "/bin/trustme-runtime";

struct RunResult {
    int status = -1;  // exit status of `trustme-runtime run`
    std::string output;
};

class RuntimeSecurity : public ::testing::Test {
protected:
    static inline fs::path base_, rootfs_;

    static void SetUpTestSuite() {
        if (access(kRuntime.c_str(), X_OK) != 0) return;
        char tmpl[] = "/tmp/trustme-secint-XXXXXX";
        base_ = mkdtemp(tmpl);
        rootfs_ = base_ / "rootfs";
        std::string cmd = std::string(TRUSTME_SOURCE_DIR) + "/tests/fixtures/make-rootfs.sh " + rootfs_.string();
        if (std::system(cmd.c_str()) != 0) rootfs_.clear();
    }
    static void TearDownTestSuite() {
        if (!base_.empty()) fs::remove_all(base_);
    }

    void SetUp() override {
        if (access(kRuntime.c_str(), X_OK) != 0) GTEST_SKIP() << kRuntime << " not built";
        ASSERT_FALSE(rootfs_.empty()) << "make-rootfs.sh failed";
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        id_ = std::string("sec-") + info->name();
        bundle_ = base_ / id_;
        state_ = base_ / "state";
        fs::create_directories(bundle_);
    }
    void TearDown() override {
        if (bundle_.empty()) return;
        runtime("delete --force " + id_ + " >/dev/null 2>&1");
        fs::remove_all(bundle_);
    }

    // The `spec` default with our rootfs, no terminal, a writable /tmp, and the given process args.
    json config(const std::string& script) {
        fs::remove(bundle_ / "config.json");
        RunResult r = runtime("spec --bundle " + bundle_.string() + " 2>&1");
        EXPECT_EQ(r.status, 0) << r.output;
        std::ifstream f(bundle_ / "config.json");
        json c = json::parse(f);
        c["root"] = {{"path", rootfs_.string()}, {"readonly", true}};
        c["process"]["terminal"] = false;
        c["process"]["args"] = {"/bin/sh", "-c", script};
        c["mounts"].push_back(
            {{"destination", "/tmp"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"nosuid", "nodev"}}});
        return c;
    }

    RunResult run(const json& cfg) {
        std::ofstream(bundle_ / "config.json") << cfg.dump(1);
        return runtime("run --bundle " + bundle_.string() + " " + id_ + " 2>&1");
    }

    RunResult runtime(const std::string& args) {
        std::string cmd = "timeout -k 5 60 " + kRuntime + " --root " + state_.string() + " " + args;
        RunResult r;
        FILE* p = popen(cmd.c_str(), "r");
        if (!p) return r;
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
        int st = pclose(p);
        r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        return r;
    }

    bool no_container_left() {
        RunResult r = runtime("list --format json 2>/dev/null");
        return r.output.find(id_) == std::string::npos;
    }

    std::string id_;
    fs::path bundle_, state_;
};

uint64_t bit(int cap) { return uint64_t{1} << cap; }

}  // namespace

TEST_F(RuntimeSecurity, SeccompErrnoSeenInside) {
    json c = config("mkdir /tmp/x; echo rc=$?");
    c["linux"]["seccomp"] = {
        {"defaultAction", "SCMP_ACT_ALLOW"},
        {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}},
        {"syscalls", {{{"names", {"mkdir", "mkdirat"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 13}}}}};
    RunResult r = run(c);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Permission denied"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("rc=1"), std::string::npos) << r.output;
}

TEST_F(RuntimeSecurity, SeccompKillEndsTheProcess) {
    json c = config("echo before; exec mkdir /tmp/x");
    c["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_ALLOW"},
                             {"syscalls", {{{"names", {"mkdir", "mkdirat"}}, {"action", "SCMP_ACT_KILL_PROCESS"}}}}};
    RunResult r = run(c);
    EXPECT_NE(r.output.find("before"), std::string::npos) << r.output;
    EXPECT_EQ(r.status, 128 + SIGSYS) << r.output;
}

TEST_F(RuntimeSecurity, SeccompMaskedEqualOnAnArgument) {
    // chmod to a mode with the setuid bit is refused, other modes pass: fchmodat(dirfd, path, mode).
    json c = config("touch /tmp/f; chmod 4755 /tmp/f; echo suid=$?; chmod 755 /tmp/f; echo plain=$?");
    c["linux"]["seccomp"] = {
        {"defaultAction", "SCMP_ACT_ALLOW"},
        {"syscalls",
         {{{"names", {"fchmodat"}},
           {"action", "SCMP_ACT_ERRNO"},
           {"errnoRet", 1},
           {"args", {{{"index", 2}, {"value", 04000}, {"valueTwo", 04000}, {"op", "SCMP_CMP_MASKED_EQ"}}}}},
          {{"names", {"chmod"}},
           {"action", "SCMP_ACT_ERRNO"},
           {"errnoRet", 1},
           {"args", {{{"index", 1}, {"value", 04000}, {"valueTwo", 04000}, {"op", "SCMP_CMP_MASKED_EQ"}}}}}}}};
    RunResult r = run(c);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("suid=1"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("plain=0"), std::string::npos) << r.output;
}

TEST_F(RuntimeSecurity, SeccompNotifyAgentAnswers) {
    fs::path sock = base_ / (id_ + ".sock");
    UniqueFd listener(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, sock.c_str());
    ASSERT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(listen(listener.get(), 1), 0);

    // The agent answers mkdir with ENOSPC; it fails the test (through the flags) if anything is off.
    std::atomic<bool> got_state{false}, answered{false};
    std::string metadata;
    std::thread agent([&] {
        pollfd pl{listener.get(), POLLIN, 0};
        if (poll(&pl, 1, 30000) != 1) return;
        UniqueFd conn(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        char buf[65536];
        iovec iov{buf, sizeof(buf)};
        alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        ssize_t n = recvmsg(conn.get(), &mh, MSG_CMSG_CLOEXEC);
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        if (n <= 0 || !c || c->cmsg_type != SCM_RIGHTS) return;
        int fd;
        std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
        UniqueFd nfd(fd);
        json msg = json::parse(std::string(buf, static_cast<size_t>(n)), nullptr, false);
        if (msg.is_object() && msg["fds"] == json::array({"seccompFd"})) {
            got_state = true;
            metadata = msg.value("metadata", "");
        }
        for (;;) {  // answer until the container is gone (poll reports POLLHUP then)
            pollfd pn{nfd.get(), POLLIN, 0};
            if (poll(&pn, 1, 30000) != 1 || !(pn.revents & POLLIN)) return;
            seccomp_notif req{};
            if (ioctl(nfd.get(), SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) return;
            seccomp_notif_resp resp{};
            resp.id = req.id;
            resp.error = -ENOSPC;
            if (ioctl(nfd.get(), SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0) answered = true;
        }
    });

    json c = config("mkdir /tmp/x; echo rc=$?");
    c["linux"]["seccomp"] = {{"defaultAction", "SCMP_ACT_ALLOW"},
                             {"listenerPath", sock.string()},
                             {"listenerMetadata", "agent-meta"},
                             {"syscalls", {{{"names", {"mkdir", "mkdirat"}}, {"action", "SCMP_ACT_NOTIFY"}}}}};
    RunResult r = run(c);
    shutdown(listener.get(), SHUT_RDWR);
    agent.join();
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(got_state);
    EXPECT_EQ(metadata, "agent-meta");
    EXPECT_TRUE(answered);
    EXPECT_NE(r.output.find("No space left on device"), std::string::npos) << r.output;
}

TEST_F(RuntimeSecurity, CapabilitiesSeenInside) {
    json c = config("grep Cap /proc/self/status");
    c["process"]["capabilities"] = {{"bounding", {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"}},
                                    {"effective", {"CAP_CHOWN", "CAP_KILL"}},
                                    {"permitted", {"CAP_CHOWN", "CAP_KILL"}},
                                    {"inheritable", {"CAP_KILL"}},
                                    {"ambient", {"CAP_KILL"}}};
    c["process"]["user"] = {{"uid", 1000}, {"gid", 1000}};
    RunResult r = run(c);
    ASSERT_EQ(r.status, 0) << r.output;
    using trustme::testing::status_hex;
    // uid 1000 after execve: only what ambient carries stays permitted/effective.
    EXPECT_EQ(status_hex(r.output, "CapBnd"), bit(0) | bit(5) | bit(10)) << r.output;
    EXPECT_EQ(status_hex(r.output, "CapEff"), bit(5)) << r.output;
    EXPECT_EQ(status_hex(r.output, "CapPrm"), bit(5)) << r.output;
    EXPECT_EQ(status_hex(r.output, "CapInh"), bit(5)) << r.output;
    EXPECT_EQ(status_hex(r.output, "CapAmb"), bit(5)) << r.output;
}

TEST_F(RuntimeSecurity, UnknownCapabilityIsAOneLineWarning) {
    // runtime-spec 1.1 config.md: MUST be logged as a warning; runtimes SHOULD NOT fail (runc and crun agree).
    json c = config("true");
    c["process"]["capabilities"]["bounding"] = {"CAP_KILL", "CAP_CHOWN", "CAP_FOO"};
    RunResult r = run(c);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("warning: process.capabilities.bounding[2]: unknown capability CAP_FOO, ignored"),
              std::string::npos)
        << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_TRUE(no_container_left());
}

TEST_F(RuntimeSecurity, BadSeccompInputIsAOneLineError) {
    struct Case {
        json seccomp;
        std::string message;
    };
    const Case cases[] = {
        {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"syscalls", {{{"names", {"read"}}, {"action", "SCMP_ACT_FOO"}}}}},
         "linux.seccomp.syscalls[0].action: unknown action SCMP_ACT_FOO"},
        {{{"defaultAction", "SCMP_ACT_ALLOW"},
          {"syscalls",
           {{{"names", {"read"}},
             {"action", "SCMP_ACT_ERRNO"},
             {"args", {{{"index", 0}, {"value", 1}, {"op", "SCMP_CMP_XX"}}}}}}}},
         "linux.seccomp.syscalls[0].args[0].op: unknown operator SCMP_CMP_XX"},
        {{{"defaultAction", "SCMP_ACT_ALLOW"}, {"architectures", {"SCMP_ARCH_Z80"}}},
         "linux.seccomp.architectures[0]: unknown architecture SCMP_ARCH_Z80"},
    };
    for (const auto& k : cases) {
        json c = config("true");
        c["linux"]["seccomp"] = k.seccomp;
        RunResult r = run(c);
        EXPECT_NE(r.status, 0);
        EXPECT_NE(r.output.find(k.message), std::string::npos) << r.output;
        EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
        EXPECT_TRUE(no_container_left());
    }
}

TEST_F(RuntimeSecurity, PersonalitySchedulerIoPriority) {
    // /proc/self/stat: field 19 nice, 41 policy; ionice-like value from ioprio_get is not in procfs, so
    // the I/O priority is read by busybox's ionice when present.
    json c = config("uname -m; cat /proc/self/stat; ionice -p $$ 2>&1 || true");
    c["linux"]["personality"] = {{"domain", "LINUX32"}};
    c["process"]["scheduler"] = {{"policy", "SCHED_BATCH"}, {"nice", 4}};
    c["process"]["ioPriority"] = {{"class", "IOPRIO_CLASS_BE"}, {"priority", 6}};
    RunResult r = run(c);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("i686"), std::string::npos) << r.output;
    // stat: "pid (comm) state ..." — split after the closing parenthesis.
    auto close = r.output.find(") ");
    ASSERT_NE(close, std::string::npos) << r.output;
    std::istringstream fields(r.output.substr(close + 2));
    std::vector<std::string> f;
    for (std::string s; fields >> s && f.size() < 40;) f.push_back(s);
    ASSERT_GE(f.size(), 39u) << r.output;
    EXPECT_EQ(f[19 - 3], "4") << r.output;  // nice
    EXPECT_EQ(f[41 - 3], "3") << r.output;  // policy SCHED_BATCH
    if (r.output.find("best-effort") != std::string::npos || r.output.find("prio") != std::string::npos) {
        EXPECT_NE(r.output.find("prio 6"), std::string::npos) << r.output;
    }
}
