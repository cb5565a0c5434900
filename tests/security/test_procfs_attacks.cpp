// The runc CVE classes around procfs, masked paths and the console, reproduced against trustme-runtime
// (busybox bundle, tests/common). Every host file an attack aims at is a file of the test's own; the
// runtime runs under `unshare --mount --net --ipc --uts`, so even a runtime that let a sysctl through
// would change only those throw-away namespaces, never the host's.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "tests/common/bundle.hpp"

using trustme::test::Bundle;
using trustme::test::read_text;
using trustme::test::Result;
using trustme::test::write_text;

namespace {

// trustme-runtime --root <root> ARGS..., in namespaces of its own (see the file comment).
Result rt_unshared(const Bundle& b, const std::vector<std::string>& args, int timeout_s = 60) {
    std::vector<std::string> argv = {"unshare", "--mount", "--propagation",
                                     "private", "--net",   "--ipc",
                                     "--uts",   "--",      trustme::test::runtime_binary(),
                                     "--root",  b.root};
    argv.insert(argv.end(), args.begin(), args.end());
    return trustme::test::run(argv, "", timeout_s);
}

Result run_unshared(Bundle& b, const std::string& id, const std::string& script) {
    b.config["process"]["args"] = {"/bin/sh", "-c", script};
    b.save();
    b.ids.push_back(id);
    return rt_unshared(b, {"run", "--bundle", b.dir, id});
}

void drop_namespace(nlohmann::json& cfg, const std::string& type) {
    auto& ns = cfg["linux"]["namespaces"];
    for (auto it = ns.begin(); it != ns.end();) it = (*it)["type"] == type ? ns.erase(it) : it + 1;
}

std::string host_value(const char* path) { return read_text(path); }

}  // namespace

// CVE-2025-31133: the image's /dev/null is a symlink to a host file the container can see read-only (in
// the original, /proc/sys/kernel/core_pattern). Masking "with /dev/null" by path bound that file,
// read-write, onto the masked path. The runtime masks with its own null device instead.
TEST(ProcfsAttacks, MaskedPathIgnoresSymlinkedDevNull) {
    Bundle b("mask-null");
    const std::string victim = b.dir + "/host-file";
    write_text(victim, "host-secret\n");
    // No /dev tmpfs: the image's /dev is what the container gets, and its null is a symlink.
    auto& mounts = b.config["mounts"];
    for (auto it = mounts.begin(); it != mounts.end();) it = (*it)["destination"] == "/dev" ? mounts.erase(it) : it + 1;
    mounts.push_back(
        {{"destination", "/host-file"}, {"type", "bind"}, {"source", victim}, {"options", {"bind", "ro"}}});
    ASSERT_EQ(symlink("/host-file", (b.rootfs + "/dev/null").c_str()), 0);
    write_text(b.rootfs + "/masked", "image content\n");
    b.config["linux"]["maskedPaths"].push_back("/masked");
    Result r = run_unshared(b, "mask-null",
                            "echo pwned > /masked; echo pwned > /proc/timer_list; echo \"[$(cat /masked)]\"; "
                            "stat -c %t:%T /masked");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(read_text(victim), "host-secret\n");
    EXPECT_NE(r.out.find("[]\n1:3\n"), std::string::npos) << r.out;  // the null device, empty
}

// Masking does not follow a symlink planted at the masked path: a link is refused, naming the entry.
TEST(ProcfsAttacks, MaskedPathThatIsASymlinkIsRefused) {
    Bundle b("mask-link");
    const std::string victim = b.dir + "/host-file";
    write_text(victim, "host-secret\n");
    b.config["mounts"].push_back(
        {{"destination", "/host-file"}, {"type", "bind"}, {"source", victim}, {"options", {"bind", "ro"}}});
    ASSERT_EQ(symlink("/host-file", (b.rootfs + "/masked").c_str()), 0);
    b.config["linux"]["maskedPaths"].push_back("/masked");
    Result r = run_unshared(b, "mask-link", "cat /masked");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("linux.maskedPaths["), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("/masked: is or passes through a symbolic link"), std::string::npos) << r.err;
    EXPECT_EQ(read_text(victim), "host-secret\n");
}

// CVE-2025-52881: a mount over a /proc/sys file redirects the sysctl write into the mounted file. A mount
// destination inside /proc is refused (the one line names mounts[i].destination), nothing is written.
TEST(ProcfsAttacks, BindOntoProcSysIsRefused) {
    Bundle b("proc-bind");
    const std::string victim = b.dir + "/host-file";
    write_text(victim, "0\n");
    b.config["mounts"].push_back({{"destination", "/proc/sys/net/ipv4/ip_forward"},
                                  {"type", "bind"},
                                  {"source", victim},
                                  {"options", {"bind"}}});
    b.config["linux"]["sysctl"] = {{"net.ipv4.ip_forward", "1"}};
    Result r = run_unshared(b, "proc-bind", "true");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("mounts[" + std::to_string(b.config["mounts"].size() - 1) +
                         "].destination /proc/sys/net/ipv4/ip_forward"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(read_text(victim), "0\n");
    EXPECT_EQ(b.rt({"list", "-q"}).out, "");
}

// The same mount through a symlink in the image (/myproc -> /proc): the destination string is outside
// /proc, what it resolves to is not. Refused when the mount is made, naming the entry.
TEST(ProcfsAttacks, BindIntoProcThroughImageSymlinkIsRefused) {
    Bundle b("proc-link");
    const std::string victim = b.dir + "/host-file";
    write_text(victim, "0\n");
    ASSERT_EQ(symlink("/proc", (b.rootfs + "/myproc").c_str()), 0);
    b.config["mounts"].push_back({{"destination", "/myproc/sys/net/ipv4/ip_forward"},
                                  {"type", "bind"},
                                  {"source", victim},
                                  {"options", {"bind"}}});
    b.config["linux"]["sysctl"] = {{"net.ipv4.ip_forward", "1"}};
    Result r = run_unshared(b, "proc-link", "true");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("mounts[" + std::to_string(b.config["mounts"].size() - 1) +
                         "] /myproc/sys/net/ipv4/ip_forward: the destination resolves inside /proc"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(read_text(victim), "0\n");
    EXPECT_EQ(b.rt({"list", "-q"}).out, "");
}

// The same redirection made where the config rule cannot see it (a createContainer hook mounts over the
// container's /proc/sys file before the sysctls are written): the write goes through the runtime's own
// procfs handle and reaches the container's network namespace, not the mounted file.
TEST(ProcfsAttacks, SysctlWriteIgnoresMountsOverProc) {
    Bundle b("proc-hook");
    const std::string victim = b.dir + "/host-file";
    write_text(victim, "0\n");
    b.config["hooks"]["createContainer"] = {
        {{"path", "/bin/sh"},
         {"args", {"sh", "-c", "mount --bind " + victim + " " + b.rootfs + "/proc/sys/net/ipv4/ip_forward"}}}};
    b.config["linux"]["sysctl"] = {{"net.ipv4.ip_forward", "1"}};
    b.config["linux"]["readonlyPaths"] = nlohmann::json::array();
    // ip_forward itself shows the mounted file; conf/all/forwarding is the value it sets.
    Result r = run_unshared(b, "proc-hook", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/forwarding");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(read_text(victim), "0\n");
    EXPECT_EQ(r.out, "0\n1\n");  // the container's own namespace got the value
}

// Sysctls outside the container's namespaces are refused, naming the key (runc's validate sysctl()).
TEST(ProcfsAttacks, SysctlsOutsideTheContainersNamespacesAreRefused) {
    const std::string queues = host_value("/proc/sys/fs/mqueue/queues_max");
    const std::string domain = host_value("/proc/sys/kernel/domainname");
    const std::string forward = host_value("/proc/sys/net/ipv4/ip_forward");
    struct Case {
        const char* ns;  // the namespace the config lacks
        const char* key;
        const char* value;
    } cases[] = {{"ipc", "fs.mqueue.queues_max", "300"},
                 {"ipc", "kernel.shmmni", "1000"},
                 {"uts", "kernel.domainname", "evil"},
                 {"network", "net.ipv4.ip_forward", "1"},
                 {"", "kernel.trustme_no_such_key", "1"}};
    for (auto& c : cases) {
        SCOPED_TRACE(c.key);
        Bundle b("sysctl");
        if (*c.ns) drop_namespace(b.config, c.ns);
        b.config.erase("hostname");  // the spec default sets one, which needs a uts namespace too
        b.config["linux"]["sysctl"] = {{c.key, c.value}};
        Result r = run_unshared(b, "sysctl", "true");
        EXPECT_NE(r.status, 0);
        EXPECT_NE(r.err.find(std::string("linux.sysctl \"") + c.key + "\""), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;  // one line
        EXPECT_EQ(b.rt({"list", "-q"}).out, "");
    }
    EXPECT_EQ(host_value("/proc/sys/fs/mqueue/queues_max"), queues);
    EXPECT_EQ(host_value("/proc/sys/kernel/domainname"), domain);
    EXPECT_EQ(host_value("/proc/sys/net/ipv4/ip_forward"), forward);
}

// With the namespaces present, the same keys are set, in the container only.
TEST(ProcfsAttacks, SysctlsInTheContainersNamespacesAreSet) {
    const std::string queues = host_value("/proc/sys/fs/mqueue/queues_max");
    Bundle b("sysctl-ok");
    b.config["linux"]["sysctl"] = {
        {"fs.mqueue.queues_max", "300"}, {"kernel.domainname", "inside"}, {"net/ipv4/ip_forward", "1"}};
    Result r = run_unshared(
        b, "sysctl-ok", "cat /proc/sys/fs/mqueue/queues_max /proc/sys/kernel/domainname /proc/sys/net/ipv4/ip_forward");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "300\ninside\n1\n");
    EXPECT_EQ(host_value("/proc/sys/fs/mqueue/queues_max"), queues);
}

namespace {

// Accepts console-socket connections and keeps each received pty master until it is destroyed.
class ConsoleSink {
public:
    explicit ConsoleSink(const std::string& path) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un addr {};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
        ok_ = bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(fd_, 8) == 0;
        th_ = std::thread([this] {
            for (;;) {
                int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c < 0) return;
                char buf[256];
                struct iovec iov = {buf, sizeof buf};
                alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
                struct msghdr msg {};
                msg.msg_iov = &iov;
                msg.msg_iovlen = 1;
                msg.msg_control = cbuf;
                msg.msg_controllen = sizeof cbuf;
                if (recvmsg(c, &msg, MSG_CMSG_CLOEXEC) > 0)
                    if (auto* cm = CMSG_FIRSTHDR(&msg)) {
                        int m;
                        std::memcpy(&m, CMSG_DATA(cm), sizeof m);
                        masters_.push_back(m);  // kept open: closing it hangs up the process's terminal
                    }
                close(c);
            }
        });
    }
    ~ConsoleSink() {
        shutdown(fd_, SHUT_RDWR);
        th_.join();
        close(fd_);
        for (int m : masters_) close(m);
    }
    bool ok() const { return ok_; }

private:
    int fd_ = -1;
    bool ok_ = false;
    std::vector<int> masters_;
    std::thread th_;
};

std::string mountinfo_of(const Bundle& b, const std::string& id) {
    Result s = b.rt({"state", id});
    auto j = nlohmann::json::parse(s.out, nullptr, false);
    if (!j.is_object() || !j.contains("pid")) return "no state: " + s.out + s.err;
    // mount ids only: the lines of a mount do not change, new mounts add lines.
    return read_text("/proc/" + std::to_string(j["pid"].get<int>()) + "/mountinfo");
}

}  // namespace

// CVE-2025-52565 class: `exec -t` used to bind its pty over the running container's /dev/console, one more
// mount per call, by path, where a container process racing a symlink swap got it mounted on a path of its
// choosing. Now `exec -t` mounts nothing.
TEST(ProcfsAttacks, ExecTtyMountsNothingEvenWhileRacedBySymlinkSwaps) {
    Bundle b("exec-tty");
    ConsoleSink sink(b.dir + "/console.sock");
    ASSERT_TRUE(sink.ok());
    // The racer swaps /dev/console between a file and a symlink to /dev/victim, for a bounded time.
    b.config["process"]["args"] = {
        "/bin/sh", "-c",
        "touch /dev/victim; i=0; while [ $i -lt 4000 ]; do touch /dev/c.f; mv -f /dev/c.f /dev/console; "
        "ln -s /dev/victim /dev/c.l; mv -f /dev/c.l /dev/console; i=$((i+1)); done; sleep 60"};
    b.save();
    b.ids.push_back("exec-tty");
    ASSERT_EQ(b.rt({"run", "-d", "--bundle", b.dir, "exec-tty"}).status, 0);
    const std::string before = mountinfo_of(b, "exec-tty");
    for (int i = 0; i < 8; ++i) {
        Result r = b.rt({"exec", "-t", "-d", "--console-socket", b.dir + "/console.sock", "exec-tty", "true"});
        EXPECT_EQ(r.status, 0) << r.err;
    }
    const std::string after = mountinfo_of(b, "exec-tty");
    EXPECT_EQ(after, before);
    EXPECT_EQ(after.find("/dev/victim"), std::string::npos) << after;
    EXPECT_EQ(b.rt({"delete", "--force", "exec-tty"}).status, 0);
}
