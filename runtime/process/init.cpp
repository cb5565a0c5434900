#include "runtime/process/init.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "runtime/process/rootfs.hpp"
#include "base/error.hpp"
#include "base/files.hpp"
#include "base/log.hpp"
#include "base/procfs.hpp"
#include "base/strings.hpp"
#include "runtime/process/sync.hpp"
#include "hooks/hooks.hpp"

extern char** environ;

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace trustme::process {
namespace {

// Right after clone the child holds copies of every fd of the runtime (the state directory's flock among
// them, which would block every later command on this container): keep only what the init needs.
void close_all_except(std::vector<int> keep) {
    std::sort(keep.begin(), keep.end());
    unsigned next = 3;
    for (int fd : keep) {
        if (fd < 3 || static_cast<unsigned>(fd) < next) continue;
        if (static_cast<unsigned>(fd) > next) ::syscall(SYS_close_range, next, static_cast<unsigned>(fd) - 1, 0);
        next = static_cast<unsigned>(fd) + 1;
    }
    ::syscall(SYS_close_range, next, ~0U, 0);
}

std::vector<int> init_fds(const InitConfig& ic) {
    // procfs::root() was opened by the parent before clone (and before joining any namespace by path).
    std::vector<int> keep = {ic.sync_fd,   ic.start_fd, ic.status_fd,   ic.rootfs_fd,
                             ic.userns_fd, log::fd(),   procfs::root(), ic.dev_null_fd};
    for (int fd = 3; fd < 3 + ic.preserve_fds; ++fd) keep.push_back(fd);
    for (auto& m : ic.extra_mounts) keep.push_back(m.detached_fd);
    for (auto& m : ic.cfg->mounts) keep.push_back(m.detached_fd);  // idmapped binds
    return keep;
}

std::string env_lookup(const std::vector<std::string>& env, const std::string& key) {
    for (auto& e : env)
        if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=')
            return e.substr(key.size() + 1);
    return {};
}

// /dev/console in the container is the pty (config-linux.md: "/dev/console is set up if terminal is
// enabled"). Only at create, and by fd: /dev is opened without following links, the target must be a
// regular file or a character device, and the pty is attached to that very inode with move_mount. A
// container process that swaps /dev/console for a symlink cannot have the pty mounted elsewhere
// (CVE-2025-52565, where the bind went by path and raced).
void bind_console(int slave) {
    struct open_how how {};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS;
    UniqueFd dev(static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, "/dev", &how, sizeof how)));
    if (!dev) {
        if (errno == ENOENT) return;
        fail_errno("/dev (for /dev/console)");
    }
    UniqueFd made(::openat(dev.get(), "console", O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!made && errno != EEXIST) fail_errno("create /dev/console");
    UniqueFd target(::openat(dev.get(), "console", O_PATH | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!target || ::fstat(target.get(), &st) < 0) fail_errno("/dev/console");
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) fail("/dev/console: not a file or character device");
    UniqueFd tree(::open_tree(slave, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    if (!tree) fail_errno("bind /dev/console: clone the pty");
    if (::move_mount(tree.get(), "", target.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        fail_errno("bind /dev/console");
}

// runc (libcontainer/init_linux.go setupUser, user.GetExecUserPath): when the environment has no HOME, the
// home directory of the process uid's entry in the container's /etc/passwd, "/" without one. The file is
// the image's: opened inside the root (no symlink out, no magic link), a regular file, bounded in size.
std::string passwd_home(uint32_t uid) {
    constexpr size_t kMaxPasswd = 4 << 20;
    UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct open_how how {};
    how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    UniqueFd f(root ? static_cast<int>(::syscall(SYS_openat2, root.get(), "etc/passwd", &how, sizeof how)) : -1);
    struct stat st;
    if (!f || ::fstat(f.get(), &st) < 0 || !S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) > kMaxPasswd)
        return "/";
    std::string text;
    try {
        text = read_all(f.get(), "/etc/passwd", kMaxPasswd);
    } catch (const Error&) {
        return "/";
    }
    // name:password:uid:gid:gecos:home:shell; the first entry with the uid wins (runc takes users[0]).
    const std::string want = std::to_string(uid);
    for (std::string_view line : split(text, '\n')) {
        std::string_view field[7];
        size_t n = 0, s = 0;
        for (size_t i = 0; i <= line.size() && n < 7; ++i)
            if (i == line.size() || line[i] == ':') {
                field[n++] = line.substr(s, i - s);
                s = i + 1;
            }
        if (n >= 6 && field[2] == want) return std::string(field[5]);
    }
    return "/";
}

// runc brings "lo" up in every network namespace it creates (specconv adds a "loopback" network). A new
// namespace's loopback always has ifindex 1 (LOOPBACK_IFINDEX, include/net/net_namespace.h): one
// RTM_NEWLINK setting IFF_UP, acknowledged.
void loopback_up() {
    UniqueFd s(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!s) fail_errno("loopback: netlink socket");
    struct {
        struct nlmsghdr nh;
        struct ifinfomsg ifi;
    } req{};
    req.nh.nlmsg_len = sizeof req;
    req.nh.nlmsg_type = RTM_NEWLINK;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.nh.nlmsg_seq = 1;
    req.ifi.ifi_family = AF_UNSPEC;
    req.ifi.ifi_index = 1;
    req.ifi.ifi_flags = IFF_UP;
    req.ifi.ifi_change = IFF_UP;
    if (::send(s.get(), &req, sizeof req, 0) < 0) fail_errno("loopback: netlink send");
    struct {
        struct nlmsghdr nh;
        struct nlmsgerr err;
    } ack{};
    ssize_t n;
    while ((n = ::recv(s.get(), &ack, sizeof ack, 0)) < 0 && errno == EINTR) {
    }
    if (n < 0) fail_errno("loopback: netlink receive");
    if (n < static_cast<ssize_t>(sizeof ack.nh) || ack.nh.nlmsg_type != NLMSG_ERROR) fail("loopback: no netlink ack");
    if (ack.err.error) fail(-ack.err.error, "bring loopback up");
}

// runc (fixStdioPermissions) gives the init's stdio to the process user, so a non-root program can reopen
// /dev/stdout. Only pipes and sockets (what an engine hands us) and our own pty: a host tty or file passed
// through stays as it is, and /dev/null is never touched.
void chown_stdio(const oci::Process& proc) {
    const uid_t uid = proc.user.uid;
    for (int fd = 0; fd < 3; ++fd) {
        struct stat st;
        if (::fstat(fd, &st) < 0 || st.st_uid == uid) continue;
        bool ours = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
                    (proc.terminal && S_ISCHR(st.st_mode) && major(st.st_rdev) >= 136 && major(st.st_rdev) <= 143);
        if (!ours) continue;
        // EINVAL: the gid is not mapped in the user namespace; EPERM: the owner is not; EROFS (runc ignores all three).
        if (::fchown(fd, uid, static_cast<gid_t>(-1)) < 0 && errno != EINVAL && errno != EPERM && errno != EROFS)
            fail_errno("chown stdio " + std::to_string(fd));
    }
}

void setup_console(InitConfig& ic) {
    // Open the pty inside the container's devpts instance (/dev/ptmx → pts/ptmx), so the slave's path
    // and ownership make sense inside the container; the master goes to the parent.
    UniqueFd master(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master) fail_errno("open /dev/ptmx (terminal: true needs a devpts mount at /dev/pts)");
    if (::unlockpt(master.get()) < 0) fail_errno("unlockpt");
    char name[128];
    if (::ptsname_r(master.get(), name, sizeof name) != 0) fail("ptsname failed");
    // The slave from the master itself (TIOCGPTPEER, Linux 4.13), not by its name: no lookup in a tree
    // that container processes may be changing (`exec -t` runs beside them).
    UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY));
    if (!slave) fail_errno(std::string("open ") + name);
    if (ic.proc->console_height || ic.proc->console_width) {
        struct winsize ws {};
        ws.ws_row = static_cast<unsigned short>(ic.proc->console_height);
        ws.ws_col = static_cast<unsigned short>(ic.proc->console_width);
        ::ioctl(master.get(), TIOCSWINSZ, &ws);
    }
    // `exec -t` mounts nothing: its process gets the pty as stdio and controlling terminal, and the
    // container's /dev/console stays the one create bound. Without a mount namespace nothing is mounted
    // (it would be the host's).
    if (!ic.is_exec && ic.cfg->linux_.find(CLONE_NEWNS)) bind_console(slave.get());
    sync::send(ic.sync_fd, sync::Msg::ConsoleFd, name, master.get());
    if (::setsid() < 0) fail_errno("setsid");
    if (::ioctl(slave.get(), TIOCSCTTY, 0) < 0) fail_errno("set controlling terminal");
    for (int fd = 0; fd < 3; ++fd)
        if (::dup2(slave.get(), fd) < 0) fail_errno("dup2 pty");
    if (slave.get() <= 2) (void)slave.release();  // it is one of the stdio fds now
}

void switch_user(const oci::User& u) {
    // Keep the permitted set across setresuid so apply_after_user_switch can set the configured caps.
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail_errno("prctl(PR_SET_KEEPCAPS)");
    std::vector<gid_t> groups(u.additional_gids.begin(), u.additional_gids.end());
    // setgroups is denied in a user namespace whose setgroups file says "deny"; only complain if we must set some.
    if (::setgroups(groups.size(), groups.data()) < 0 && !(errno == EPERM && groups.empty())) fail_errno("setgroups");
    if (::setresgid(u.gid, u.gid, u.gid) < 0) fail_errno("setresgid " + std::to_string(u.gid));
    if (::setresuid(u.uid, u.uid, u.uid) < 0) fail_errno("setresuid " + std::to_string(u.uid));
}

void write_time_offsets(const oci::Config& cfg) {
    std::string text;
    for (auto& [clock, off] : cfg.linux_.time_offsets)
        text += clock + " " + std::to_string(off.first) + " " + std::to_string(off.second) + "\n";
    if (!text.empty()) procfs::write("self/timens_offsets", text);
}

// runc (prepareRootfs) creates a missing process.cwd, inside the root and before it is made read-only.
void make_cwd(const std::string& cwd) {
    if (cwd == "/") return;
    UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (root) rootfs::open_in_root(root.get(), cwd, true, false);  // a failure shows at chdir
}

// CVE-2024-21626 (GHSA-xr7r-f8xq-vfvv): a cwd entered through an fd ("/proc/self/fd/N", or an image's
// symlink to it) may be a directory outside the container's root. getcwd(2) then prefixes "(unreachable)"
// to the path instead of returning an absolute one; runc 1.1.12 (verifyCwd) refuses the same, and so does
// any other failure to tell: this is the last check before the program runs in that directory.
void verify_cwd(const std::string& cwd) {
    char buf[PATH_MAX];
    long n = ::syscall(SYS_getcwd, buf, sizeof buf);
    if (n < 0) fail_errno("process.cwd " + cwd + ": cannot verify that it is inside the container's root");
    if (buf[0] != '/') fail("process.cwd " + cwd + ": outside the container's root");
}

// Everything from the session keyring to "ready", shared by the container init and `exec`.
void finalize_process(InitConfig& ic) {
    const oci::Config& cfg = *ic.cfg;
    const oci::Process& proc = *ic.proc;
    if (!ic.no_new_keyring) {
        // A fresh session keyring so containers do not share the host's (runc: JoinSessionKeyring).
        std::string name = "_ses." + ic.id;
        if (::syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.c_str()) < 0 && errno != ENOSYS)
            log::debug("join session keyring: " + std::string(std::strerror(errno)));
    }

    if (proc.terminal) setup_console(ic);
    else if (::setsid() < 0 && errno != EPERM) fail_errno("setsid");

    for (auto& rl : proc.rlimits) {
        struct rlimit r = {rl.soft, rl.hard};
        if (::setrlimit(rl.resource, &r) < 0) fail_errno("process.rlimits " + rl.type);
    }
    security::apply_personality(cfg.linux_.personality);
    security::apply_io_priority(proc.io_priority);
    security::apply_scheduler(proc.scheduler);
    if (!proc.selinux_label.empty()) security::set_exec_label(proc.selinux_label);
    if (!proc.apparmor_profile.empty()) security::apply_apparmor(proc.apparmor_profile);
    // The last procfs access: the program must neither inherit nor reach (process.cwd "/proc/self/fd/N",
    // the CVE-2024-21626 pattern) a procfs of the runtime's pid namespace.
    procfs::close();

    if (::chdir(proc.cwd.c_str()) < 0) fail_errno("process.cwd " + proc.cwd);
    verify_cwd(proc.cwd);
    ic.exec_path = resolve_executable(proc);
    if (env_lookup(proc.env, "HOME").empty()) ic.home_env = "HOME=" + passwd_home(proc.user.uid);
    chown_stdio(proc);

    security::apply_bounding(ic.caps);
    UniqueFd listener;
    bool have_seccomp = ic.seccomp && !ic.seccomp->empty();
    if (have_seccomp && !proc.no_new_privileges) listener.reset(security::load_seccomp(*ic.seccomp));
    switch_user(proc.user);
    security::apply_after_user_switch(ic.caps);
    if (proc.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail_errno("no_new_privs");
    if (have_seccomp && proc.no_new_privileges) listener.reset(security::load_seccomp(*ic.seccomp));
    if (listener) {
        sync::send(ic.sync_fd, sync::Msg::SeccompFd, {}, listener.get());
        listener.reset();
    }
    if (proc.user.umask) ::umask(*proc.user.umask);
    else ::umask(022);

    // No fd of the runtime's may reach the container: all but stdio and the preserved ones close at exec.
    ::syscall(SYS_close_range, 3 + ic.preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
    for (int fd = 3; fd < 3 + ic.preserve_fds; ++fd) {
        int fl = ::fcntl(fd, F_GETFD);
        if (fl >= 0) ::fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
    }

    ::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    sync::send(ic.sync_fd, sync::Msg::Ready);
}

// After `start`: tell it why the program will not run (it reads the status fifo until the exec closes it).
[[noreturn]] void fail_start(const InitConfig& ic, const std::string& msg, int code) {
    std::string m = "trustme-runtime: " + msg + "\n";
    (void)!::write(2, m.data(), m.size());
    if (ic.status_fd >= 0) (void)!::write(ic.status_fd, msg.data(), msg.size());
    ::_exit(code);
}

[[noreturn]] void exec_process(InitConfig& ic, const std::string& host_pid) {
    const oci::Config& cfg = *ic.cfg;
    const oci::Process& proc = *ic.proc;
    std::vector<char*> argv, envp;
    for (auto& a : proc.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : proc.env)
        if (ic.home_env.empty() || e != "HOME=") envp.push_back(const_cast<char*>(e.c_str()));
    if (!ic.home_env.empty()) envp.push_back(ic.home_env.data());
    envp.push_back(nullptr);

    if (!ic.is_exec && !cfg.hooks.start_container.empty()) {
        nlohmann::json s = {{"ociVersion", oci::kOciVersion},
                            {"id", ic.id},
                            {"status", "created"},
                            {"pid", std::atoi(host_pid.c_str())},
                            {"bundle", ic.bundle}};
        if (!cfg.annotations.empty()) s["annotations"] = cfg.annotations;
        try {
            // A startContainer hook without "env" runs with the process's environment, as in runc (its
            // init runs them after setting up the container's environment), never with the host's.
            hooks::run_all(cfg.hooks.start_container, s.dump(), "startContainer", envp.data());
        } catch (const Error& e) {
            // runtime.md: a failing startContainer hook is an error, the container is stopped (we exit).
            fail_start(ic, e.what(), 1);
        }
    }
    ::execve(ic.exec_path.c_str(), argv.data(), envp.data());
    fail_start(ic, "exec " + ic.exec_path + ": " + std::strerror(errno), 127);
}

// First thing in a child of clone: only the fds it needs, an empty signal mask (`run` blocks forwarded
// signals in the parent), death with the runtime while it is set up (cleared once ready: the create process
// then exits); then Go. Returns Go's text: the container init's pid in the runtime's pid namespace.
std::string await_go(const InitConfig& ic, std::vector<int> keep) {
    close_all_except(std::move(keep));
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    sync::Packet go;
    if (!sync::recv(ic.sync_fd, go) || go.type != sync::Msg::Go) ::_exit(1);
    return go.text;
}

void enter_user_namespace(const InitConfig& ic) {
    if (ic.userns_fd >= 0 && ::setns(ic.userns_fd, CLONE_NEWUSER) < 0) fail_errno("join user namespace");
    if (ic.cfg->linux_.find(CLONE_NEWUSER)) {
        // Become root of the new user namespace (mapped by the parent).
        if (::setresgid(0, 0, 0) < 0) fail_errno("setresgid 0 in user namespace");
        if (::setresuid(0, 0, 0) < 0) fail_errno("setresuid 0 in user namespace");
    }
}

// What rootfs:: needs; reads /proc/self/cgroup, so before the cgroup namespace is made.
rootfs::Plan rootfs_plan(const InitConfig& ic) {
    const oci::Config& cfg = *ic.cfg;
    rootfs::Plan plan;
    plan.cfg = &cfg;
    plan.bundle = ic.bundle;
    plan.rootfs_path = ic.rootfs_path;
    plan.rootfs_fd = ic.rootfs_fd;
    plan.rootfs_is_dir = ic.rootfs_is_dir;
    plan.no_pivot = ic.no_pivot;
    // In a user namespace, the config's own or one we were started in (rootless podman runs the runtime as
    // root of the user's namespace and asks for none): mknod is refused there either way (runc checks
    // userns.RunningInUserNS() for the same reason).
    plan.userns = cfg.linux_.find(CLONE_NEWUSER) != nullptr || !procfs::initial_user_ns();
    plan.extra_mounts = ic.extra_mounts;
    plan.dev_null_fd = ic.dev_null_fd;
    if (!cfg.linux_.mount_label.empty()) plan.mount_label_opt = security::mount_label_option(cfg.linux_.mount_label);
    plan.cgroups = rootfs::read_self_cgroups();
    return plan;
}

// The namespaces made after Go (cgroup: once the parent has put us in our cgroup; time: before exec),
// and the UTS names.
void enter_late_namespaces(const InitConfig& ic) {
    const oci::Config& cfg = *ic.cfg;
    if ((ic.new_ns_late & CLONE_NEWCGROUP) && ::unshare(CLONE_NEWCGROUP) < 0) fail_errno("unshare cgroup namespace");
    if (ic.new_ns_late & CLONE_NEWTIME) {
        // A new time namespace applies to children and, through execve, to us: set offsets before exec.
        if (::unshare(CLONE_NEWTIME) < 0) fail_errno("unshare time namespace");
        write_time_offsets(cfg);
    }
    if (!cfg.hostname.empty() && ::sethostname(cfg.hostname.data(), cfg.hostname.size()) < 0) fail_errno("sethostname");
    if (!cfg.domainname.empty() && ::setdomainname(cfg.domainname.data(), cfg.domainname.size()) < 0)
        fail_errno("setdomainname");
}

// prestart + createRuntime run in the runtime namespace (by the parent), createContainer here, in the
// container's namespaces before pivot_root (runtime.md lifecycle steps 4-6).
void run_create_hooks(const InitConfig& ic, const std::string& host_pid) {
    const oci::Config& cfg = *ic.cfg;
    // The round trip is skipped when there is nothing to run (the parent's copy of cfg is ours: clone).
    if (!cfg.hooks.prestart.empty() || !cfg.hooks.create_runtime.empty()) {
        sync::send(ic.sync_fd, sync::Msg::HooksRequest);
        sync::Packet done;
        if (!sync::recv(ic.sync_fd, done) || done.type != sync::Msg::HooksDone) ::_exit(1);
    }
    if (!cfg.hooks.create_container.empty()) {
        nlohmann::json s = {{"ociVersion", oci::kOciVersion},
                            {"id", ic.id},
                            {"status", "creating"},
                            {"pid", std::atoi(host_pid.c_str())},
                            {"bundle", ic.bundle}};
        if (!cfg.annotations.empty()) s["annotations"] = cfg.annotations;
        hooks::run_all(cfg.hooks.create_container, s.dump(), "createContainer");
    }
}

// Block until `start` writes to the exec fifo (runtime.md: the user program runs only at start).
void await_start(InitConfig& ic) {
    UniqueFd start(std::exchange(ic.start_fd, -1));
    char byte;
    ssize_t n;
    while ((n = ::read(start.get(), &byte, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) ::_exit(1);
}

[[noreturn]] void run(InitConfig& ic) {
    const std::string host_pid = await_go(ic, init_fds(ic));
    const oci::Config& cfg = *ic.cfg;
    enter_user_namespace(ic);
    if (ic.new_netns) loopback_up();
    rootfs::Plan plan = rootfs_plan(ic);
    enter_late_namespaces(ic);

    const bool mntns = cfg.linux_.find(CLONE_NEWNS) != nullptr;
    UniqueFd own_null;
    if (mntns && plan.dev_null_fd < 0 && !cfg.linux_.masked_paths.empty()) {
        // Rootless: the parent may not clone the null device; clone it here, from our copy of the host's
        // mount namespace, before anything of the container's is mounted in it.
        own_null = rootfs::clone_dev_null();
        plan.dev_null_fd = own_null.get();
    }
    UniqueFd root;
    if (mntns) root = rootfs::prepare(plan);
    run_create_hooks(ic, host_pid);
    if (mntns) {
        rootfs::enter(root.get(), ic.no_pivot);
        root.reset();
        make_cwd(cfg.process->cwd);
        rootfs::finish(plan);
    } else {
        // Without a mount namespace nothing is mounted (create refuses mounts that would land on the
        // host): devices into the image's /dev as runc does, then chroot into the verified directory.
        if (!plan.userns) rootfs::setup_devices(plan, ic.rootfs_fd);
        if (::fchdir(ic.rootfs_fd) < 0 || ::chroot(".") < 0 || ::chdir("/") < 0)
            fail_errno("chroot into " + ic.rootfs_path);
        make_cwd(cfg.process->cwd);
    }
    // The root is entered: the fd of the verified directory (rootless: the host's directory itself, not a
    // clone of it) must not outlive it, or process.cwd "/proc/self/fd/N" reaches the host (CVE-2024-21626).
    UniqueFd(std::exchange(ic.rootfs_fd, -1)).reset();
    finalize_process(ic);
    await_start(ic);
    exec_process(ic, host_pid);
}

[[noreturn]] void run_exec(InitConfig& ic, int container_pidfd, int ns_flags) {
    // Until its exec (which makes it dumpable again), no process of the container may open this one's
    // fds through /proc/<pid>/fd: they include the runtime's procfs handle and the container's pidfd.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    UniqueFd container(container_pidfd);  // this child's copy: closed once the namespaces are joined
    auto keep = init_fds(ic);
    keep.push_back(container.get());
    const std::string init_pid = await_go(ic, std::move(keep));
    // setns(pidfd, flags) joins all of the container's namespaces at once (Linux 5.8); the pid namespace
    // was entered by the parent (pid_for_children) before clone, so we already are inside it.
    if (ns_flags && ::setns(container.get(), ns_flags) < 0) fail_errno("join the container's namespaces");
    if (!ic.cfg->linux_.find(CLONE_NEWNS)) {
        // No mount namespace to join: its root is the init's chroot (runc would leave us on the host's root).
        UniqueFd r(::open(("/proc/" + init_pid + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!r || ::fchdir(r.get()) < 0 || ::chroot(".") < 0) fail_errno("enter the container's root");
    }
    container.reset();
    if (ic.cfg->linux_.find(CLONE_NEWUSER)) {
        if (::setresgid(0, 0, 0) < 0 || ::setresuid(0, 0, 0) < 0) fail_errno("become root in user namespace");
    }
    ic.no_new_keyring = true;
    finalize_process(ic);
    exec_process(ic, init_pid);
}

}  // namespace

std::string resolve_executable(const oci::Process& proc) {
    const std::string& arg0 = proc.args[0];
    auto is_exec = [&](const std::string& p) {
        struct stat st;
        if (::stat(p.c_str(), &st) < 0) return false;
        return S_ISREG(st.st_mode) && (st.st_mode & 0111);
    };
    if (arg0.find('/') != std::string::npos) {
        std::string p = arg0[0] == '/' ? arg0 : proc.cwd + "/" + arg0;
        if (!is_exec(p)) fail("exec: \"" + arg0 + "\": no such file or not executable");
        return p;
    }
    std::string path = env_lookup(proc.env, "PATH");
    if (path.empty()) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    size_t s = 0;
    while (s <= path.size()) {
        size_t e = path.find(':', s);
        if (e == std::string::npos) e = path.size();
        std::string dir = path.substr(s, e - s);
        if (dir.empty()) dir = ".";
        std::string cand = (dir[0] == '/' ? dir : proc.cwd + "/" + dir) + "/" + arg0;
        if (is_exec(cand)) return cand;
        s = e + 1;
    }
    fail("exec: \"" + arg0 + "\": executable file not found in $PATH");
}

namespace {

// The one way out of a child of clone: its work, and on any exception its reason to the parent.
template <class Work>
[[noreturn]] void run_child(int sync_fd, Work&& work) noexcept {
    try {
        work();
    } catch (const std::exception& e) {
        sync::send_error(sync_fd, e);
    } catch (...) {
        sync::try_send(sync_fd, sync::Msg::Error, "unknown error");
    }
    ::_exit(1);
}

}  // namespace

pid_t clone_with_pidfd(uint64_t flags, int* pidfd) {
    struct clone_args args {};
    args.flags = flags | CLONE_PIDFD;
    args.pidfd = reinterpret_cast<uint64_t>(pidfd);
    // With CLONE_PARENT the child signals our parent as we would, and clone3 refuses an exit signal
    // (EINVAL: kernel/fork.c clone3_args_valid).
    args.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
    return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
}

[[noreturn]] void exec_init_from_inside(InitConfig& ic, int container_pidfd, int ns_flags) noexcept {
    run_child(ic.sync_fd, [&] {
        UniqueFd container(container_pidfd);  // this child's copy
        if (::setns(container.get(), ns_flags | CLONE_NEWPID) < 0) fail_errno("join the container's namespaces");
        container.reset();
        int pidfd = -1;
        pid_t pid = clone_with_pidfd(CLONE_PARENT, &pidfd);
        if (pid == 0) exec_init(ic, -1, 0);  // already inside: nothing more to join
        if (pid < 0) fail_errno("clone3 in the container's namespaces");
        sync::send(ic.sync_fd, sync::Msg::Pid, std::to_string(pid), pidfd);
        ::_exit(0);
    });
}

[[noreturn]] void exec_init(InitConfig& ic, int container_pidfd, int ns_flags) noexcept {
    run_child(ic.sync_fd, [&] { run_exec(ic, container_pidfd, ns_flags); });
}

[[noreturn]] void container_init(InitConfig& ic) noexcept {
    run_child(ic.sync_fd, [&] { run(ic); });
}

}  // namespace trustme::process
