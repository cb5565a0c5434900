// trustme-floor: the kernel's own cost of a default-spec `run`, with no runtime bookkeeping.
//
//   trustme-floor [--cgroupns] [--trace] ROOTFS [ARG...]      (ARG defaults to /bin/true)
//
// It does, once, what `runc run` does for the bundle that `runc spec` (runc 1.1.5) writes: new pid,
// network, ipc, uts and mount namespaces (plus cgroup with --cgroupns, which runc 1.1's default spec
// leaves out), one cgroup per v1 hierarchy (and the unified tree in hybrid mode) with the default device
// rules, the default mounts (/proc, /dev tmpfs, /dev/pts, /dev/shm, /dev/mqueue, /sys ro, /sys/fs/cgroup ro
// as a tmpfs of per-hierarchy binds), the default device nodes and /dev symlinks, loopback up, hostname,
// pivot_root, the masked and read-only paths, rlimit, capability bounding set, no_new_privs — then exec,
// wait, and remove the cgroups. No config parsing, no state directory, no handshake beyond one pipe.
// The benchmark (bench/run) times this as a process beside the runtimes: the gap to a runtime is what
// that runtime spends on itself.
//
// Deliberately not "a runtime": no error recovery beyond cleanup, no configurability. Linked statically
// so process start-up (ld.so, relocations) does not count as kernel cost.
#include <fcntl.h>
#include <net/if.h>
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
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

#include <climits>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/owned.hpp"

namespace {

// --trace: print the time of each phase to stderr (CLOCK_MONOTONIC, µs since start), to see where the
// kernel's share goes. Off in the benchmark.
bool g_trace = false;
long long g_t0 = 0;

long long now_us() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

void mark(const char* phase) {
    if (!g_trace) return;
    long long t = now_us();
    std::fprintf(stderr, "floor %6lld us  %s\n", t - g_t0, phase);
}

using trustme::check;
using trustme::fail;
using trustme::fail_errno;

// Hierarchies found under /sys/fs/cgroup: {directory name, is cgroup2}.
struct Hierarchy {
    std::string name;
    bool unified;
};

std::vector<Hierarchy> cgroup_hierarchies() {
    std::vector<Hierarchy> out;
    FILE* f = std::fopen("/proc/self/mountinfo", "re");
    if (!f) fail_errno("open /proc/self/mountinfo");
    char* line = nullptr;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        // "... MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPER"
        char mnt[512], fstype[64];
        if (std::sscanf(line, "%*s %*s %*s %*s %511s", mnt) != 1) continue;
        const char* dash = std::strstr(line, " - ");
        if (!dash || std::sscanf(dash + 3, "%63s", fstype) != 1) continue;
        std::string m(mnt);
        const std::string prefix = "/sys/fs/cgroup/";
        if (m.rfind(prefix, 0) != 0) continue;
        std::string name = m.substr(prefix.size());
        if (name.empty() || name.find('/') != std::string::npos) continue;
        if (std::strcmp(fstype, "cgroup") == 0) out.push_back({name, false});
        else if (std::strcmp(fstype, "cgroup2") == 0) out.push_back({name, true});
    }
    std::free(line);
    std::fclose(f);
    return out;
}

void write_file(const std::string& path, const std::string& value) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail_errno("open " + path);
    ssize_t n = write(fd, value.data(), value.size());
    int err = errno;
    close(fd);
    if (n != static_cast<ssize_t>(value.size())) fail(err, "write " + path);
}

std::string read_file(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_errno("open " + path);
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0) fail_errno("read " + path);
    return std::string(buf, static_cast<size_t>(n));
}

// The cgroups one `run` creates, joins and removes; RAII so a failure still removes them.
class Cgroups {
public:
    explicit Cgroups(const std::string& leaf) {
        for (auto& h : cgroup_hierarchies()) {
            std::string dir = "/sys/fs/cgroup/" + h.name + "/" + leaf;
            if (mkdir(dir.c_str(), 0755) < 0) fail_errno("mkdir " + dir);
            dirs_.push_back(dir);
            if (h.name == "cpuset") {
                // A new cpuset cgroup is empty and refuses tasks until cpus and mems are copied in.
                for (const char* f : {"cpuset.cpus", "cpuset.mems"})
                    write_file(dir + "/" + f, read_file("/sys/fs/cgroup/cpuset/" + std::string(f)));
            }
            if (h.name == "devices") {
                // runc's default device rules: deny all, allow the default nodes (libcontainer/specconv).
                write_file(dir + "/devices.deny", "a");
                for (const char* rule : {"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                                         "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm"})
                    write_file(dir + "/devices.allow", rule);
            }
        }
    }
    void join(pid_t pid) {
        for (auto& d : dirs_) write_file(d + "/cgroup.procs", std::to_string(pid));
    }
    const std::vector<std::string>& dirs() const { return dirs_; }
    ~Cgroups() {
        for (auto& d : dirs_) rmdir(d.c_str());
    }

private:
    std::vector<std::string> dirs_;
};

// --- the child: everything between clone and exec; on failure it reports and exits 127 ---

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "trustme-floor: %s: %s\n", what, std::strerror(errno));
    _exit(127);
}

void must(int rc, const char* what) {
    if (rc < 0) die(what);
}

struct ChildArgs {
    const char* rootfs;
    char** argv;
    int sync_fd;  // read end: the parent writes one byte once the child is in its cgroups
    bool cgroupns;
    std::vector<Hierarchy> hierarchies;
    std::string cgroup_leaf;
};

void mount_default_fs(const ChildArgs& a) {
    // runc: rootfsPropagation defaults to rslave for /, then bind the rootfs onto itself.
    must(mount(nullptr, "/", nullptr, MS_SLAVE | MS_REC, nullptr), "make / rslave");
    must(mount(a.rootfs, a.rootfs, nullptr, MS_BIND | MS_REC, nullptr), "bind rootfs");
    must(chdir(a.rootfs), "chdir rootfs");

    must(mount("proc", "proc", "proc", 0, nullptr), "mount /proc");
    must(mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"), "mount /dev");
    mkdir("dev/pts", 0755);
    must(mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"),
         "mount /dev/pts");
    mkdir("dev/shm", 0755);
    must(mount("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k"), "mount /dev/shm");
    mkdir("dev/mqueue", 0755);
    must(mount("mqueue", "dev/mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, nullptr), "mount /dev/mqueue");
    must(mount("sysfs", "sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, nullptr), "mount /sys");

    // cgroup v1 in runc: a tmpfs at /sys/fs/cgroup holding one bind of the container's own cgroup per
    // hierarchy (cgroup namespace: a fresh mount of the hierarchy instead), then the tmpfs made read-only.
    must(mount("tmpfs", "sys/fs/cgroup", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=755"),
         "mount /sys/fs/cgroup");
    for (auto& h : a.hierarchies) {
        if (h.unified && !a.cgroupns) continue;  // runc 1.1 joins the hybrid unified tree but does not mount it
        std::string dst = "sys/fs/cgroup/" + h.name;
        mkdir(dst.c_str(), 0755);
        if (a.cgroupns) {
            std::string opts = h.unified ? "" : (h.name == "systemd" ? "none,name=systemd" : h.name);
            must(mount("cgroup", dst.c_str(), h.unified ? "cgroup2" : "cgroup",
                       MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, opts.empty() ? nullptr : opts.c_str()),
                 "mount cgroup");
        } else {
            std::string src = "/sys/fs/cgroup/" + h.name + "/" + a.cgroup_leaf;
            must(mount(src.c_str(), dst.c_str(), nullptr, MS_BIND, nullptr), "bind cgroup");
            must(mount(nullptr, dst.c_str(), nullptr,
                       MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV, nullptr),
                 "remount cgroup ro");
        }
    }
    must(
        mount(nullptr, "sys/fs/cgroup", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=755"),
        "remount /sys/fs/cgroup ro");

    // Default devices (runc creates them with mknod outside a user namespace) and symlinks.
    // runc clears the umask around mknod so the nodes get exactly 0666.
    {
        trustme::ScopedUmask no_umask(0);
        struct Dev {
            const char* path;
            unsigned maj, min;
        };
        for (Dev d : {Dev{"dev/null", 1, 3},
                      {"dev/zero", 1, 5},
                      {"dev/full", 1, 7},
                      {"dev/random", 1, 8},
                      {"dev/urandom", 1, 9},
                      {"dev/tty", 5, 0}}) {
            must(mknod(d.path, S_IFCHR | 0666, makedev(d.maj, d.min)), d.path);
            must(chown(d.path, 0, 0), "chown device");
        }
    }
    for (auto [target, link] : {std::pair{"/proc/self/fd", "dev/fd"},
                                {"/proc/self/fd/0", "dev/stdin"},
                                {"/proc/self/fd/1", "dev/stdout"},
                                {"/proc/self/fd/2", "dev/stderr"},
                                {"pts/ptmx", "dev/ptmx"},
                                {"/proc/kcore", "dev/core"}})
        must(symlink(target, link), link);
}

void pivot_into_rootfs() {
    // runc's pivot_root(".", ".") + detach of the old root: no temporary directory needed.
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0) die("open /");
    int newroot = open(".", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (newroot < 0) die("open rootfs");
    must(static_cast<int>(syscall(SYS_pivot_root, ".", ".")), "pivot_root");
    must(fchdir(oldroot), "fchdir oldroot");
    must(mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr), "make oldroot rslave");
    must(umount2(".", MNT_DETACH), "detach oldroot");
    must(fchdir(newroot), "fchdir newroot");
    must(chdir("/"), "chdir /");
    close(oldroot);
    close(newroot);
}

void mask_and_protect() {
    for (const char* p :
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}) {
        struct stat st;
        if (stat(p, &st) < 0) continue;  // runc skips paths that do not exist
        if (S_ISDIR(st.st_mode)) must(mount("tmpfs", p, "tmpfs", MS_RDONLY, nullptr), "mask dir");
        else must(mount("/dev/null", p, nullptr, MS_BIND, nullptr), "mask file");
    }
    for (const char* p : {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}) {
        if (mount(p, p, nullptr, MS_BIND | MS_REC, nullptr) < 0) {
            if (errno == ENOENT) continue;
            die("bind readonly path");
        }
        must(mount(p, p, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, nullptr), "remount readonly path");
    }
}

void process_settings() {
    // Loopback up: runc configures "loopback" for a new network namespace.
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    struct ifreq ifr {};
    std::strcpy(ifr.ifr_name, "lo");
    must(ioctl(s, SIOCGIFFLAGS, &ifr), "SIOCGIFFLAGS lo");
    ifr.ifr_flags |= IFF_UP;
    must(ioctl(s, SIOCSIFFLAGS, &ifr), "SIOCSIFFLAGS lo");
    close(s);
    must(sethostname("runc", 4), "sethostname");
    struct rlimit rl {
        1024, 1024
    };
    must(setrlimit(RLIMIT_NOFILE, &rl), "setrlimit");
    // Default capabilities: AUDIT_WRITE, KILL, NET_BIND_SERVICE in every set; drop the rest of the bounding set.
    const unsigned long keep = (1UL << CAP_AUDIT_WRITE) | (1UL << CAP_KILL) | (1UL << CAP_NET_BIND_SERVICE);
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
        if (!(keep & (1UL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            die("PR_CAPBSET_DROP");
    must(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
    struct __user_cap_header_struct hdr {
        _LINUX_CAPABILITY_VERSION_3, 0
    };
    struct __user_cap_data_struct data[2]{};
    // No inheritable and so no ambient set: what runc and crun leave for `runc spec`'s config (they drop
    // the ambient list silently because inheritable is empty; checked with /proc/self/status).
    data[0].effective = data[0].permitted = static_cast<__u32>(keep);
    must(static_cast<int>(syscall(SYS_capset, &hdr, data)), "capset");
}

int child_main(void* arg) {
    auto& a = *static_cast<ChildArgs*>(arg);
    char b;
    if (read(a.sync_fd, &b, 1) != 1) die("sync read");  // wait until the parent put us in the cgroups
    close(a.sync_fd);
    mark("child: in cgroups");
    if (a.cgroupns) must(unshare(CLONE_NEWCGROUP), "unshare cgroupns");
    mount_default_fs(a);
    mark("child: mounts, devices");
    pivot_into_rootfs();
    mark("child: pivot_root");
    mask_and_protect();
    mark("child: masked + read-only paths");
    process_settings();
    mark("child: lo, hostname, rlimit, caps; exec");
    char* envp[] = {const_cast<char*>("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                    const_cast<char*>("TERM=xterm"), const_cast<char*>("HOME=/root"), nullptr};
    execve(a.argv[0], a.argv, envp);
    die("exec");
}

}  // namespace

int main(int argc, char** argv) {
    g_t0 = now_us();
    int i = 1;
    bool cgroupns = false;
    for (; i < argc && argv[i][0] == '-'; ++i) {
        if (std::strcmp(argv[i], "--cgroupns") == 0) cgroupns = true;
        else if (std::strcmp(argv[i], "--trace") == 0) g_trace = true;
        else break;
    }
    if (i >= argc) {
        std::fprintf(stderr, "usage: trustme-floor [--cgroupns] [--trace] ROOTFS [ARG...]\n");
        return 2;
    }
    try {
        char rootfs[PATH_MAX];
        if (!realpath(argv[i], rootfs)) trustme::fail_errno(std::string("rootfs ") + argv[i]);
        static char true_path[] = "/bin/true";
        static char* default_args[] = {true_path, nullptr};

        ChildArgs a;
        a.rootfs = rootfs;
        a.argv = i + 1 < argc ? argv + i + 1 : default_args;
        a.cgroupns = cgroupns;
        a.hierarchies = cgroup_hierarchies();
        a.cgroup_leaf = "trustme-floor-" + std::to_string(getpid());

        mark("start");
        Cgroups cg(a.cgroup_leaf);
        mark("cgroups created");
        int sync[2];
        check(pipe2(sync, O_CLOEXEC), "pipe2");
        a.sync_fd = sync[0];

        // clone() with a private stack; the child's stack only has to hold the setup above.
        static char stack[256 * 1024] alignas(16);
        pid_t pid = clone(child_main, stack + sizeof stack,
                          CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS | SIGCHLD, &a);
        check(pid, "clone");
        mark("cloned (pid, net, ipc, uts, mount ns)");
        close(sync[0]);
        try {
            cg.join(pid);
        } catch (...) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
            throw;
        }
        mark("joined cgroups");
        check(write(sync[1], "x", 1), "sync write");
        close(sync[1]);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR) trustme::fail_errno("waitpid");
        mark("reaped (namespaces torn down)");
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "trustme-floor: %s\n", e.what());
        return 1;
    }
}
