// What the container sees: asserted from inside (its /proc, mountinfo, ids) and from outside.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <thread>

#include "tests/common/bundle.hpp"

using namespace trustme::test;

TEST(Container, ProcessSettings) {
    Bundle b("proc");
    auto& p = b.config["process"];
    p["user"] = {{"uid", 1000}, {"gid", 1000}, {"additionalGids", {5, 6}}, {"umask", 077}};
    p["env"] = {"PATH=/bin:/usr/bin", "FOO=bar baz"};
    p["cwd"] = "/tmp";
    p["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 321}, {"hard", 654}}};
    p["oomScoreAdj"] = 500;
    b.config["hostname"] = "box1";
    Result r = b.run_sh("p1",
                        "echo id=$(id -u):$(id -g) groups=\"$(id -G)\" cwd=$(pwd) foo=$FOO host=$(hostname) "
                        "nofile=$(ulimit -n) hard=$(ulimit -Hn) umask=$(umask) oom=$(cat /proc/self/oom_score_adj) "
                        "nnp=$(grep NoNewPrivs /proc/self/status | tr -d '\\t')");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out,
              "id=1000:1000 groups=1000 5 6 cwd=/tmp foo=bar baz host=box1 nofile=321 hard=654 umask=0077 "
              "oom=500 nnp=NoNewPrivs:1\n");
}

TEST(Container, CapabilitiesFromConfig) {
    Bundle b("caps");
    nlohmann::json caps = {"CAP_CHOWN", "CAP_KILL"};
    b.config["process"]["capabilities"] = {{"bounding", caps}, {"effective", caps}, {"permitted", caps}};
    Result r = b.run_sh("cp", "grep -E '^Cap(Eff|Bnd|Prm)' /proc/self/status");
    ASSERT_EQ(r.status, 0) << r.err;
    // CAP_CHOWN = 0, CAP_KILL = 5 → 0x21
    EXPECT_EQ(r.out, "CapPrm:\t0000000000000021\nCapEff:\t0000000000000021\nCapBnd:\t0000000000000021\n");
}

TEST(Container, NamespacesAreNew) {
    Bundle b("ns");
    Result r = b.run_sh("ns1", "for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; echo pid=$$");
    ASSERT_EQ(r.status, 0) << r.err;
    for (const char* n : {"pid", "net", "ipc", "uts", "mnt", "cgroup"}) {
        char host[128] = {0};
        ASSERT_GT(readlink((std::string("/proc/self/ns/") + n).c_str(), host, sizeof host - 1), 0);
        EXPECT_EQ(r.out.find(host), std::string::npos) << n << " namespace shared with the host";
    }
    EXPECT_NE(r.out.find("pid=1\n"), std::string::npos) << r.out;
}

TEST(Container, JoinNamespaceByPath) {
    Bundle a("nsA");
    a.config["process"]["args"] = {"sleep", "100"};
    a.save();
    a.ids.push_back("nsa");
    ASSERT_EQ(a.rt({"run", "-d", "-b", a.dir, "nsa", "--pid-file", a.dir + "/pid"}).status, 0);
    std::string pid = read_text(a.dir + "/pid");
    char want[128] = {0};
    ASSERT_GT(readlink(("/proc/" + pid + "/ns/net").c_str(), want, sizeof want - 1), 0);
    Bundle b("nsB");
    for (auto& ns : b.config["linux"]["namespaces"])
        if (ns["type"] == "network") ns["path"] = "/proc/" + pid + "/ns/net";
    Result r = b.run_sh("nsb", "readlink /proc/self/ns/net");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::string(want) + "\n");
}

TEST(Container, MountsMaskedAndReadonlyPaths) {
    Bundle b("mounts");
    std::string host = b.dir + "/shared";
    mkdir(host.c_str(), 0755);
    write_text(host + "/file", "from host\n");
    b.config["mounts"].push_back(
        {{"destination", "/data"}, {"type", "bind"}, {"source", host}, {"options", {"rbind", "ro"}}});
    b.config["mounts"].push_back(
        {{"destination", "/scratch"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"size=1m", "mode=700"}}});
    Result r = b.run_sh(
        "m1",
        "cat /data/file; touch /data/x 2>/dev/null && echo data-writable; touch /x 2>/dev/null && echo root-writable; "
        "stat -c %a /scratch; cat /proc/kcore | head -c1 | wc -c; ls /sys/firmware | wc -l; "
        "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo procsys-writable; "
        "grep -c ' /proc/acpi ' /proc/self/mountinfo; ls -l /dev/null | cut -c1; for l in fd stdin ptmx; do readlink "
        "/dev/$l; done");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "from host\n700\n0\n0\n1\nc\n/proc/self/fd\n/proc/self/fd/0\npts/ptmx\n");
}

TEST(Container, DevicesFromConfig) {
    Bundle b("dev");
    b.config["linux"]["devices"] = {{{"type", "c"},
                                     {"path", "/dev/fuse"},
                                     {"major", 10},
                                     {"minor", 229},
                                     {"fileMode", 0640},
                                     {"uid", 7},
                                     {"gid", 8}}};
    b.config["linux"]["resources"]["devices"].push_back(
        {{"allow", true}, {"type", "c"}, {"major", 10}, {"minor", 229}, {"access", "rwm"}});
    Result r = b.run_sh("d1", "stat -c '%t:%T %a %u:%g %F' /dev/fuse; head -c 0 /dev/zero && echo zero-ok");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "a:e5 640 7:8 character special file\nzero-ok\n");
}

TEST(Container, SysctlInsideNetNamespace) {
    Bundle b("sysctl");
    b.config["linux"]["sysctl"] = {{"net.ipv4.ip_forward", "1"}};
    Result r = b.run_sh("s1", "cat /proc/sys/net/ipv4/ip_forward");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "1\n");
}

TEST(Container, SymlinkInImageCannotRedirectMountToHost) {
    Bundle b("escape");
    std::string victim = b.dir + "/victim";
    mkdir(victim.c_str(), 0755);
    // /evil in the image points at a host directory: the mount must land inside the rootfs instead.
    ASSERT_EQ(symlink(victim.c_str(), (b.rootfs + "/evil").c_str()), 0);
    b.config["mounts"].push_back({{"destination", "/evil/sub"}, {"type", "tmpfs"}, {"source", "tmpfs"}});
    Result r = b.run_sh("x1", "grep -c ' /evil/sub\\| " + victim + "/sub ' /proc/self/mountinfo");
    ASSERT_EQ(r.status, 0) << r.err;
    struct stat st;
    EXPECT_NE(stat((victim + "/sub").c_str(), &st), 0) << "mount point was created on the host";
    EXPECT_EQ(stat((b.rootfs + victim + "/sub").c_str(), &st), 0) << "mount point not created inside the rootfs";
}

TEST(Container, NoRuntimeFdLeaksAndPreserveFds) {
    Bundle b("fds");
    b.config["process"]["args"] = {"sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"};
    b.save();
    b.ids.push_back("f1");
    Result r = b.rt({"run", "-b", b.dir, "f1"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "0 1 2 3 ");  // 3 is ls's own directory fd
    // --preserve-fds 1 passes fd 3 of the caller.
    std::vector<std::string> argv = {"/bin/sh", "-c",
                                     "exec 3<" + b.dir + "/config.json; exec " + runtime_binary() + " --root " +
                                         b.root + " run --preserve-fds 1 -b " + b.dir + " f2"};
    b.ids.push_back("f2");
    b.config["process"]["args"] = {"sh", "-c", "head -c 1 <&3"};
    b.save();
    r = run(argv);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "{");
}

namespace {

// CVE-2019-5736: while the container init runs our binary, /proc/<pid>/exe must not be writable.
// `create` the container (through `wrap` when given: it runs in a forked child before exec), then check the
// init's exe and return its environment.
std::string check_exe_sealed(Bundle& b, const std::string& id, void (*wrap)() = nullptr) {
    b.config["process"]["args"] = {"true"};
    b.save();
    b.ids.push_back(id);
    std::vector<std::string> args = {runtime_binary(), "--root",       b.root, "create", "-b", b.dir,
                                     "--pid-file",     b.dir + "/pid", id};
    pid_t child = fork();
    if (child == 0) {
        if (wrap) wrap();
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    int status = -1;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "create failed: " << status;
    std::string proc = "/proc/" + read_text(b.dir + "/pid");
    std::string environ_text = read_text(proc + "/environ");
    // The attack: hold the exe open (O_PATH) while the runtime runs, reopen it for writing once it is gone.
    int held = open((proc + "/exe").c_str(), O_PATH | O_CLOEXEC);
    EXPECT_GE(held, 0);
    struct statvfs sv;
    EXPECT_EQ(fstatvfs(held, &sv), 0);
    EXPECT_TRUE(sv.f_flag & ST_RDONLY) << "the runtime binary is not on a read-only mount";
    // It is the installed file itself, not a copy.
    struct stat a, c;
    EXPECT_EQ(fstat(held, &a), 0);
    EXPECT_EQ(stat(runtime_binary().c_str(), &c), 0);
    EXPECT_EQ(a.st_ino, c.st_ino);
    EXPECT_EQ(b.rt({"delete", "--force", id}).status, 0);
    int fd = open(("/proc/self/fd/" + std::to_string(held)).c_str(), O_WRONLY | O_CLOEXEC);
    int err = errno;
    if (fd >= 0) close(fd);
    close(held);
    EXPECT_LT(fd, 0);
    EXPECT_EQ(err, EROFS);
    return environ_text;
}

// A seccomp filter that fails prctl(PR_SET_MM, ...) with EPERM, as a kernel without
// CONFIG_CHECKPOINT_RESTORE or a caller without CAP_SYS_ADMIN/CAP_CHECKPOINT_RESTORE would.
void refuse_pr_set_mm() {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_prctl, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_SET_MM, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) _exit(126);
}

// A seccomp filter that fails the listed system calls with EPERM, as a container host's seccomp profile
// (or a caller without CAP_SYS_ADMIN over its mount namespace) refuses the mount API.
template <int... Nr>
void refuse_syscalls() {
    constexpr int n = sizeof...(Nr);
    struct sock_filter f[4 + 2 * n];
    int i = 0;
    f[i++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int nr : {Nr...}) {
        f[i++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1);
        f[i++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    }
    f[i++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {static_cast<unsigned short>(i), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(126);
}

// Execute the runtime from a mount that is not in its own mount namespace: the binary is opened, the child
// unshares its mount namespace, then executes the opened file. The kernel then refuses the clone of that
// mount (open_tree(OPEN_TREE_CLONE): EINVAL, fs/namespace.c __do_loopback, check_mnt), as it would for a
// runtime started from a file of another mount namespace; everything else the runtime does works there.
int g_exec_fd = -1;
void exe_from_other_mount_ns() {
    g_exec_fd = open(runtime_binary().c_str(), O_PATH | O_CLOEXEC);
    if (g_exec_fd < 0 || unshare(CLONE_NEWNS) != 0) _exit(126);
}

// `create` through `wrap`; returns its exit status and stderr (the pid file names the init when it worked).
Result create_wrapped(Bundle& b, const std::string& id, void (*wrap)(), bool debug = true) {
    b.config["process"]["args"] = {"true"};
    b.save();
    b.ids.push_back(id);
    std::string err_file = b.dir + "/create.err";
    std::vector<std::string> args = {runtime_binary(), "--root",       b.root, "create", "-b", b.dir,
                                     "--pid-file",     b.dir + "/pid", id};
    if (debug) args.insert(args.begin() + 3, "--debug");
    pid_t child = fork();
    if (child == 0) {
        int fd = open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, 2) < 0) _exit(125);
        wrap();
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (g_exec_fd >= 0) syscall(SYS_execveat, g_exec_fd, "", argv.data(), environ, AT_EMPTY_PATH);
        else execv(argv[0], argv.data());
        _exit(127);
    }
    int status = -1;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    Result r;
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.err = read_text(err_file);
    return r;
}

}  // namespace

TEST(Container, RuntimeBinarySealFallsBackToSealedCopy) {
    // No read-only mount of the binary can be made (the kernel refuses to clone its mount): the runtime
    // re-executes from a sealed memfd copy of itself, so the init's exe still cannot be written.
    Bundle b("cve-copy");
    Result r = create_wrapped(b, "cvecopy", exe_from_other_mount_ns);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("(open_tree: Invalid argument), re-executing from a sealed copy"), std::string::npos) << r.err;
    std::string proc = "/proc/" + read_text(b.dir + "/pid");
    EXPECT_NE(read_text(proc + "/environ").find("_TRUSTME_SEALED_COPY=1"), std::string::npos)
        << "no re-exec from the copy";
    int fd = open((proc + "/exe").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    int seals = fcntl(fd, F_GET_SEALS);
    close(fd);
    ASSERT_GE(seals, 0) << "the init's exe is not a sealed memfd: " << strerror(errno);
    EXPECT_EQ(seals & (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE),
              F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    // The attack: reopen the exe for writing.
    fd = open((proc + "/exe").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        EXPECT_LT(write(fd, "x", 1), 0) << "wrote into the runtime binary";
        EXPECT_EQ(errno, EPERM);
        close(fd);
    }
    EXPECT_EQ(b.rt({"delete", "--force", "cvecopy"}).status, 0);
}

TEST(Container, RuntimeBinarySealFailsClosed) {
    // Neither the read-only mount nor the sealed copy can be made: the container does not start.
    Bundle b("cve-closed");
    Result r = create_wrapped(b, "cveclosed", refuse_syscalls<__NR_open_tree, __NR_memfd_create>, false);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("cannot seal the runtime binary (CVE-2019-5736), not starting: open_tree: "
                         "Operation not permitted; sealed copy: memfd_create: Operation not permitted"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(b.rt({"list", "-q"}).out, "");
    struct stat st;
    EXPECT_NE(stat((b.root + "/cveclosed").c_str(), &st), 0) << "state left behind";
}

TEST(Container, RuntimeBinarySealedCopyWorksUnprivileged) {
    // In a user namespace of its own the runtime has no CAP_SYS_ADMIN over the host's mount namespace, so
    // open_tree is refused by the kernel itself: the sealed copy needs no privilege.
    std::string root = make_temp_dir("cve-userns");
    Result r = run({"unshare", "--user", "--map-root-user", runtime_binary(), "--debug", "--root", root, "exec",
                    "nosuch", "true"});
    remove_tree(root);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("open_tree: Operation not permitted), re-executing from a sealed copy"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("running from a sealed copy of the runtime binary"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("container \"nosuch\" does not exist"), std::string::npos) << r.err;
}

TEST(Container, RuntimeBinaryIsSealedAgainstOverwrite) {
    Bundle b("cve");
    std::string env = check_exe_sealed(b, "cve");
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer builds seal by re-executing (selfexe.cpp, reseat_exe); sealed as checked above";
#endif
    // Sealed in place: the exe was moved onto the read-only mount without re-executing (the re-exec marks
    // its environment with _TRUSTME_EXE_DIR).
    EXPECT_EQ(env.find("_TRUSTME_EXE_DIR="), std::string::npos) << "re-executed instead of sealing in place";
}

TEST(Container, RuntimeBinarySealFallsBackToReexec) {
    // Where PR_SET_MM is refused, the runtime re-executes through the sealed mount: just as safe.
    Bundle b("cve-fallback");
    std::string env = check_exe_sealed(b, "cvefb", refuse_pr_set_mm);
    EXPECT_NE(env.find("_TRUSTME_EXE_DIR="), std::string::npos) << "the fallback re-exec did not happen";
}

TEST(Container, TerminalThroughConsoleSocket) {
    Bundle b("tty");
    std::string sock = b.dir + "/console.sock";
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
    ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(ls, 1), 0);
    b.config["process"]["terminal"] = true;
    b.config["process"]["args"] = {"sh", "-c", "tty; echo on-tty"};
    b.save();
    b.ids.push_back("t1");
    int master = -1;
    std::string name;
    std::thread acceptor([&] {
        int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
        char buf[256];
        struct iovec iov = {buf, sizeof buf};
        alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
        struct msghdr msg {};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf;
        msg.msg_controllen = sizeof cbuf;
        ssize_t n = recvmsg(c, &msg, 0);
        if (n > 0) name.assign(buf, n);
        if (auto* cm = CMSG_FIRSTHDR(&msg)) std::memcpy(&master, CMSG_DATA(cm), sizeof(int));
        close(c);
    });
    Result r = b.rt({"create", "-b", b.dir, "--console-socket", sock, "t1"});
    acceptor.join();
    close(ls);
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_GE(master, 0);
    EXPECT_EQ(name.rfind("/dev/pts/", 0), 0u) << name;
    ASSERT_EQ(b.rt({"start", "t1"}).status, 0);
    std::string out;
    char buf[512];
    for (int i = 0; i < 50; ++i) {
        ssize_t n = read(master, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, n);
        if (out.find("on-tty") != std::string::npos) break;
    }
    close(master);
    EXPECT_NE(out.find("/dev/pts/0"), std::string::npos) << out;
    EXPECT_NE(out.find("on-tty"), std::string::npos) << out;
}

TEST(Container, UserNamespaceWithMappedRootfs) {
    Bundle b("userns");
    // The mapped root (host uid 100000) must be able to reach the rootfs, as with runc.
    chmod(b.dir.c_str(), 0755);
    run({"chown", "-R", "100000:100000", b.rootfs});
    b.config["linux"]["namespaces"].push_back({{"type", "user"}});
    b.config["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
    b.config["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
    Result r = b.run_sh("u1", "cat /proc/self/uid_map | tr -s ' '; id -u; stat -c %u /bin/busybox");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, " 0 100000 65536\n0\n0\n");
}

// The init joins its cgroups three ways (cgroups.hpp): born in the v2 one (clone3 CLONE_INTO_CGROUP), moving
// itself into the v1 hierarchies, or, with a user namespace, moved by the parent. Whichever way, the program
// runs in the container's cgroup in every hierarchy of the host, the hybrid "0::" tree included.
TEST(Container, ProgramRunsInItsCgroupInEveryHierarchy) {
    for (bool userns : {false, true}) {
        SCOPED_TRACE(userns ? "user namespace" : "no user namespace");
        Bundle b(userns ? "cgin-u" : "cgin");
        auto& ns = b.config["linux"]["namespaces"];
        for (auto it = ns.begin(); it != ns.end();) it = (*it)["type"] == "cgroup" ? ns.erase(it) : std::next(it);
        if (userns) {
            chmod(b.dir.c_str(), 0755);
            run({"chown", "-R", "100000:100000", b.rootfs});
            ns.push_back({{"type", "user"}});
            b.config["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
            b.config["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
        }
        const std::string id = userns ? "cgin-u" : "cgin";
        Result r = b.run_sh(id, "cat /proc/self/cgroup");
        ASSERT_EQ(r.status, 0) << r.err;
        std::string host = read_text("/proc/self/cgroup");
        size_t lines = 0;
        for (size_t pos = 0; pos < r.out.size();) {
            size_t end = r.out.find('\n', pos);
            std::string line = r.out.substr(pos, end - pos);
            pos = end == std::string::npos ? r.out.size() : end + 1;
            if (line.empty()) continue;
            ++lines;
            const std::string want = "/trustme-" + id;
            EXPECT_TRUE(line.size() > want.size() && line.compare(line.size() - want.size(), want.size(), want) == 0)
                << "not in the container's cgroup: " << line;
        }
        // One line per hierarchy, as for the host.
        EXPECT_EQ(lines, static_cast<size_t>(std::count(host.begin(), host.end(), '\n'))) << r.out;
    }
}

TEST(Container, ExecJoinsTheContainer) {
    Bundle b("exec");
    b.config["process"]["args"] = {"sleep", "100"};
    b.config["process"]["env"] = {"PATH=/bin", "FROM=config"};
    b.save();
    b.ids.push_back("x1");
    ASSERT_EQ(b.rt({"run", "-d", "-b", b.dir, "x1", "--pid-file", b.dir + "/pid"}).status, 0);
    std::string pid = read_text(b.dir + "/pid");
    char mnt[128] = {0};
    ASSERT_GT(readlink(("/proc/" + pid + "/ns/mnt").c_str(), mnt, sizeof mnt - 1), 0);
    Result r =
        b.rt({"exec", "-e", "EXTRA=1", "x1", "sh", "-c", "echo $FROM $EXTRA $$; readlink /proc/self/ns/mnt; exit 4"});
    EXPECT_EQ(r.status, 4) << r.err;
    EXPECT_EQ(r.out, std::string("config 1 ") + r.out.substr(9, r.out.find('\n') - 9) + "\n" + mnt + "\n");
    // The process was in the container's pid namespace (not pid 1, a small number).
    EXPECT_LT(std::stoi(r.out.substr(9)), 100);
    // process.json form
    write_text(b.dir + "/p.json",
               R"J({"args":["sh","-c","echo via-process-json $(id -u)"],"cwd":"/","user":{"uid":7,"gid":7}})J");
    r = b.rt({"exec", "--process", b.dir + "/p.json", "x1"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "via-process-json 7\n");
    // ps lists init and nothing else now
    r = b.rt({"ps", "--format", "json", "x1"});
    EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json::array({std::stoi(pid)}));
}

TEST(Container, PauseResumeAndUpdate) {
    Bundle b("pause");
    b.config["process"]["args"] = {"sleep", "100"};
    b.save();
    b.ids.push_back("pr");
    ASSERT_EQ(b.rt({"run", "-d", "-b", b.dir, "pr"}).status, 0);
    ASSERT_EQ(b.rt({"pause", "pr"}).status, 0);
    EXPECT_EQ(nlohmann::json::parse(b.rt({"state", "pr"}).out)["status"], "paused");
    ASSERT_EQ(b.rt({"resume", "pr"}).status, 0);
    EXPECT_EQ(nlohmann::json::parse(b.rt({"state", "pr"}).out)["status"], "running");
    ASSERT_EQ(b.rt({"update", "--pids-limit", "42", "pr"}).status, 0);
    auto stats = nlohmann::json::parse(b.rt({"events", "--stats", "pr"}).out);
    EXPECT_EQ(stats["type"], "stats");
    EXPECT_EQ(stats["data"]["pids"]["limit"], 42);
    Result r = b.rt({"update", "--resources", "-", "pr"}, "{not json");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("--resources -: malformed JSON"), std::string::npos) << r.err;
    EXPECT_EQ(nlohmann::json::parse(b.rt({"state", "pr"}).out)["status"], "running");
}

TEST(Container, TimeNamespaceOffsets) {
    Bundle b("timens");
    b.config["linux"]["namespaces"].push_back({{"type", "time"}});
    // runtime-spec config-linux.md: linux.timeOffsets, secs/nanosecs per clock, written to
    // /proc/self/timens_offsets before the first process enters the namespace.
    b.config["linux"]["timeOffsets"] = {{"boottime", {{"secs", 86400 * 3}, {"nanosecs", 0}}},
                                        {"monotonic", {{"secs", 86400}, {"nanosecs", 5}}}};
    double host_before = std::stod(read_text("/proc/uptime"));
    Result r = b.run_sh(
        "tns", "readlink /proc/self/ns/time; tr -s ' ' < /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime");
    ASSERT_EQ(r.status, 0) << r.err;
    char host_ns[128] = {0};
    ASSERT_GT(readlink("/proc/self/ns/time", host_ns, sizeof host_ns - 1), 0);
    EXPECT_EQ(r.out.find(host_ns), std::string::npos) << "time namespace shared with the host: " << r.out;
    EXPECT_NE(r.out.find("monotonic 86400 5\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("boottime 259200 0\n"), std::string::npos) << r.out;
    // /proc/uptime reads CLOCK_BOOTTIME, shifted by the boottime offset inside the namespace.
    double inside = std::stod(r.out.substr(r.out.find_last_of('\n', r.out.size() - 2) + 1));
    EXPECT_GE(inside, host_before + 259200);
    EXPECT_LT(inside, host_before + 259200 + 120);
}

TEST(Container, ForegroundTerminalIsProxied) {
    // `run` with process.terminal and no --console-socket: the runtime keeps the pty master and copies
    // between it and its own stdio (stdin here is a pipe, not a terminal: raw mode is skipped).
    Bundle b("fgtty");
    b.config["process"]["terminal"] = true;
    b.config["process"]["args"] = {"sh", "-c", "tty; read line; echo got:$line; exit 3"};
    b.save();
    b.ids.push_back("fg");
    Result r = b.rt({"run", "-b", b.dir, "fg"}, "hello\n", 30);
    EXPECT_EQ(r.status, 3) << r.err;
    EXPECT_NE(r.out.find("/dev/pts/0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("got:hello"), std::string::npos) << r.out;
}

namespace {
// A bundle whose container runs in a user namespace mapping 0..65535 to host 100000..165535.
void enter_userns(Bundle& b) {
    chmod(b.dir.c_str(), 0755);
    run({"chown", "-R", "100000:100000", b.rootfs});
    b.config["linux"]["namespaces"].push_back({{"type", "user"}});
    b.config["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
    b.config["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
}
nlohmann::json idmapped_bind(const std::string& src, const std::string& dst, const std::vector<std::string>& opts,
                             uint32_t from, uint32_t to, uint32_t size) {
    nlohmann::json map = {{{"containerID", from}, {"hostID", to}, {"size", size}}};
    return {{"destination", dst}, {"type", "bind"},     {"source", src},
            {"options", opts},    {"uidMappings", map}, {"gidMappings", map}};
}
}  // namespace

// runtime-spec 1.2 idmapped mounts: the mount's mapping takes an on-disk id to a host id, which the
// container's user namespace then shows as its own (crun and runc 1.2 map in the same direction).
TEST(Container, IdmappedBindMountShowsDiskOwnerMapped) {
    Bundle b("idmap");
    enter_userns(b);
    const std::string src = b.dir + "/shared";
    ASSERT_EQ(mkdir(src.c_str(), 0777), 0);
    write_text(src + "/f", "x");
    ASSERT_EQ(chown((src + "/f").c_str(), 1000, 1000), 0);
    ASSERT_EQ(chown(src.c_str(), 1000, 1000), 0);
    b.config["mounts"].push_back(idmapped_bind(src, "/mnt/m", {"bind"}, 1000, 100000, 1));
    Result r =
        b.run_sh("idm1", "stat -c %u:%g /mnt/m/f; touch /mnt/m/new && echo made; grep ' /mnt/m ' /proc/self/mountinfo");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.substr(0, r.out.find("made\n") + 5), "0:0\nmade\n") << r.out;
    EXPECT_NE(r.out.find("idmapped"), std::string::npos) << r.out;
    struct stat st {};
    ASSERT_EQ(stat((src + "/new").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1000u);  // container root (host 100000) writes as on-disk 1000 through the mount
    EXPECT_EQ(st.st_gid, 1000u);
    auto features = nlohmann::json::parse(run({runtime_binary(), "features"}).out);
    EXPECT_EQ(features["linux"]["mountExtensions"]["idmap"]["enabled"], true);
}

// "idmap" without mappings takes the container's own; "ridmap" on an rbind maps the submounts too, "idmap"
// only the top mount.
TEST(Container, IdmapOptionsAndRecursion) {
    Bundle b("idmapr");
    enter_userns(b);
    const std::string src = b.dir + "/tree", sub = src + "/sub";
    ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(sub.c_str(), 0755), 0);
    // A submount of the test's own (a private tmpfs), removed with the bundle.
    ASSERT_EQ(run({"mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", sub}).status, 0);
    struct Unmount {
        std::string p;
        ~Unmount() { run({"umount", "-l", p}); }
    } unmount{sub};
    write_text(src + "/top", "x");
    write_text(sub + "/inner", "x");
    nlohmann::json top = {{"destination", "/r"}, {"type", "bind"}, {"source", src}, {"options", {"rbind", "ridmap"}}};
    nlohmann::json one = {{"destination", "/i"}, {"type", "bind"}, {"source", src}, {"options", {"rbind", "idmap"}}};
    b.config["mounts"].push_back(top);
    b.config["mounts"].push_back(one);
    Result r = b.run_sh("idm2", "stat -c %u /r/top /r/sub/inner /i/top /i/sub/inner");
    ASSERT_EQ(r.status, 0) << r.err;
    // On-disk 0 maps to host 100000 = container 0; the unmapped submount of /i shows the overflow id.
    EXPECT_EQ(r.out, "0\n0\n0\n65534\n");
}

TEST(Container, IdmapRefusedWithOneLine) {
    Bundle b("idmapbad");
    b.config["mounts"].push_back(
        {{"destination", "/x"}, {"type", "tmpfs"}, {"source", "tmpfs"}, {"options", {"idmap"}}});
    b.save();
    Result r = b.rt({"create", "-b", b.dir, "idm3"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("mounts[" + std::to_string(b.config["mounts"].size() - 1) +
                         "].options: idmapped mounts are supported for bind mounts only"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    b.config["mounts"].back() = {
        {"destination", "/x"}, {"type", "bind"}, {"source", b.dir}, {"options", {"bind", "idmap"}}};
    b.save();
    r = b.rt({"create", "-b", b.dir, "idm3"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find(".uidMappings: \"idmap\" without mappings needs the container's linux.uidMappings"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(b.rt({"list", "-q"}).out, "");
}
