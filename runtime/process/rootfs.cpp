#include "runtime/process/rootfs.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "base/error.hpp"
#include "base/files.hpp"
#include "base/log.hpp"
#include "base/procfs.hpp"
#include "base/strings.hpp"
#include "runtime/process/checks.hpp"
#include "base/owned.hpp"

namespace trustme::process::rootfs {
namespace {

// mount(2) onto the directory that `dir` names: made the cwd, it is the target ".", so no
// /proc/self/fd/N path (and no procfs at all) is involved in finding it. "." is not followed into a mount
// on top of it: the new mount stacks on exactly this directory.
int mount_on(int dir, const char* source, const char* type, unsigned long flags, const char* data) {
    UniqueFd home(::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));  // the cwd hooks and later steps see
    if (::fchdir(dir) < 0) return -1;
    int rc = ::mount(source, ".", type, flags, data);
    const int err = errno;
    if (home && ::fchdir(home.get()) < 0) {
        // cannot fail for an open directory fd; and the mount's own result is what the caller needs
    }
    errno = err;
    return rc;
}

int openat2_in_root(int root, const std::string& path, int flags) {
    struct open_how how {};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    std::string rel = path;
    while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
    if (rel.empty()) rel = ".";
    for (;;) {
        int fd = static_cast<int>(::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how));
        if (fd >= 0 || errno != EAGAIN) return fd;  // EAGAIN: a concurrent rename raced; retry
    }
}

std::pair<std::string, std::string> split(const std::string& path) {
    auto pos = path.find_last_of('/');
    if (pos == std::string::npos) return {"/", path};
    return {pos == 0 ? "/" : path.substr(0, pos), path.substr(pos + 1)};
}

void set_attr(int fd, uint64_t set, uint64_t clr, uint64_t propagation, bool recursive, const std::string& what) {
    if (!set && !clr && !propagation) return;
    struct mount_attr a {};
    a.attr_set = set;
    a.attr_clr = clr;
    // Atime modes are one field: setting one means clearing the field first (mount_setattr(2)).
    if (set & MOUNT_ATTR__ATIME) a.attr_clr |= MOUNT_ATTR__ATIME;
    a.propagation = propagation;
    if (::mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0) fail_errno(what);
}

// MS_* flags of a mount entry → MOUNT_ATTR_* for mount_setattr.
uint64_t attr_from_flags(unsigned long f) {
    uint64_t a = 0;
    if (f & MS_RDONLY) a |= MOUNT_ATTR_RDONLY;
    if (f & MS_NOSUID) a |= MOUNT_ATTR_NOSUID;
    if (f & MS_NODEV) a |= MOUNT_ATTR_NODEV;
    if (f & MS_NOEXEC) a |= MOUNT_ATTR_NOEXEC;
    if (f & MS_NOATIME) a |= MOUNT_ATTR_NOATIME;
    else if (f & MS_STRICTATIME) a |= MOUNT_ATTR_STRICTATIME;
    else if (f & MS_RELATIME) a |= MOUNT_ATTR_RELATIME;
    if (f & MS_NODIRATIME) a |= MOUNT_ATTR_NODIRATIME;
    return a;
}

uint64_t propagation_of(unsigned long p) { return p & ~static_cast<unsigned long>(MS_REC); }

struct MountInfo {
    std::string mountpoint, fstype, superopts;
};

std::vector<MountInfo> cgroup_mounts() {
    std::vector<MountInfo> out;
    for (const std::string& entry : trustme::split(procfs::read("self/mountinfo"), '\n')) {
        std::string_view line(entry);
        auto sep = line.find(" - ");
        if (sep == std::string_view::npos) continue;
        std::string_view tail = line.substr(sep + 3);
        auto sp1 = tail.find(' ');
        std::string_view fstype = tail.substr(0, sp1);
        if (fstype != "cgroup" && fstype != "cgroup2") continue;
        auto sp2 = tail.find(' ', sp1 + 1);
        std::string_view superopts = sp2 == std::string_view::npos ? "" : tail.substr(sp2 + 1);
        // fields: id parent maj:min root mountpoint ...
        std::string_view head = line.substr(0, sep);
        size_t f = 0, start = 0;
        std::string_view mp;
        for (size_t i = 0; i <= head.size(); ++i) {
            if (i == head.size() || head[i] == ' ') {
                if (f == 4) {
                    mp = head.substr(start, i - start);
                    break;
                }
                ++f;
                start = i + 1;
            }
        }
        out.push_back({std::string(mp), std::string(fstype), std::string(superopts)});
    }
    return out;
}

bool has_token(const std::string& csv, const std::string& tok) {
    size_t s = 0;
    while (s <= csv.size()) {
        size_t e = csv.find(',', s);
        if (e == std::string::npos) e = csv.size();
        if (csv.compare(s, e - s, tok) == 0) return true;
        s = e + 1;
    }
    return false;
}

// A destination that resolved onto a procfs (an image symlink such as /myproc -> /proc) is held to the
// same rule as one named inside /proc (process::checks::proc_mounts): a mount there could redirect procfs writes.
void refuse_proc_target(int fd, const std::string& destination, const std::string& what) {
    struct statfs sf;
    if (::fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC &&
        !process::checks::proc_destination_allowed(destination))
        fail(what + ": the destination resolves inside /proc (refused: it could redirect the runtime's procfs writes)");
}

void attach_tree(int tree, int dest, const std::string& what) {
    if (::move_mount(tree, "", dest, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) fail_errno(what);
}

// How bind_into binds: the whole tree under the source or its top mount only, and the mount flags.
struct BindFlags {
    bool recursive = false;                           // rbind
    uint64_t set = 0, clear = 0;                      // MOUNT_ATTR_* of the top mount
    uint64_t recursive_set = 0, recursive_clear = 0;  // MOUNT_ATTR_* of every mount in the tree
    uint64_t propagation = 0;                         // MS_SHARED, MS_SLAVE, ... once attached
};

// A clone of `source` (a path in our mount namespace) attached at `dest` inside root.
void bind_into(int root, const std::string& source, const std::string& dest, const BindFlags& flags,
               const std::string& what) {
    struct stat st;
    if (::stat(source.c_str(), &st) < 0) fail_errno(what + ": source " + source);
    UniqueFd tree(::open_tree(AT_FDCWD, source.c_str(),
                              OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (flags.recursive ? AT_RECURSIVE : 0)));
    if (!tree) fail_errno(what + ": bind " + source);
    set_attr(tree.get(), flags.set, flags.clear, 0, false, what + ": set mount flags");
    set_attr(tree.get(), flags.recursive_set, flags.recursive_clear, 0, true, what + ": set recursive mount flags");
    UniqueFd target = open_in_root(root, dest, true, !S_ISDIR(st.st_mode));
    if (!target) fail_errno(what + ": destination");
    refuse_proc_target(target.get(), dest, what);
    attach_tree(tree.get(), target.get(), what + ": attach");
    if (flags.propagation) set_attr(tree.get(), 0, 0, flags.propagation, flags.recursive, what + ": propagation");
}

void mount_cgroups(const Plan& plan, int root, const oci::Mount& m, const std::string& what) {
    // A tmpfs holding one bind mount per hierarchy of the container's own cgroup (v1), or the container's
    // cgroup directory itself (v2): the container sees its cgroup, never its siblings'.
    bool unified_only = true;
    for (auto& c : plan.cgroups)
        if (!c.controllers.empty()) unified_only = false;
    uint64_t set = attr_from_flags(m.flags);
    auto mounts = cgroup_mounts();
    if (unified_only) {
        for (auto& mi : mounts)
            if (mi.fstype == "cgroup2") {
                std::string path = plan.cgroups.empty() ? "/" : plan.cgroups[0].path;
                bind_into(root, mi.mountpoint + path, m.destination, {.set = set}, what);
                return;
            }
        fail(what + ": no cgroup2 hierarchy mounted");
    }
    UniqueFd dest = open_in_root(root, m.destination, true, false);
    if (!dest) fail_errno(what + ": destination");
    refuse_proc_target(dest.get(), m.destination, what);
    if (mount_on(dest.get(), "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0)
        fail_errno(what + ": tmpfs");
    // The tmpfs just mounted (dest still names the directory under it): ours alone, empty, so its
    // hierarchy directories are made and opened relative to it, without a lookup from the root each.
    UniqueFd tmp = open_in_root(root, m.destination, false, false);
    if (!tmp) fail_errno(what + ": tmpfs");
    for (auto& c : plan.cgroups) {
        if (c.controllers.empty()) continue;  // the hybrid "unified" tree: runc does not show it either
        std::string want = c.controllers;
        if (want.rfind("name=", 0) == 0) want = want;  // matched as a token in superopts
        for (auto& mi : mounts) {
            if (mi.fstype != "cgroup") continue;
            bool all = true;
            size_t s = 0;
            while (s <= want.size()) {
                size_t e = want.find(',', s);
                if (e == std::string::npos) e = want.size();
                if (!has_token(mi.superopts, want.substr(s, e - s))) all = false;
                s = e + 1;
            }
            if (!all) continue;
            std::string name = mi.mountpoint.substr(mi.mountpoint.find_last_of('/') + 1);
            const std::string sub = what + " (" + name + ")", source = mi.mountpoint + c.path;
            UniqueFd tree(::open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
            if (!tree) fail_errno(sub + ": bind " + source);
            set_attr(tree.get(), set | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, 0, 0, false,
                     sub + ": set mount flags");
            if (::mkdirat(tmp.get(), name.c_str(), 0755) < 0 && errno != EEXIST) fail_errno(sub + ": destination");
            UniqueFd target(::openat(tmp.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!target) fail_errno(sub + ": destination");
            attach_tree(tree.get(), target.get(), sub + ": attach");
            break;
        }
    }
    if (m.flags & MS_RDONLY) {
        // Remount the tmpfs read-only last, once the bind targets exist.
        if (mount_on(tmp.get(), nullptr, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "mode=755") < 0)
            fail_errno(what + ": remount read-only");
    }
}

void mount_one(const Plan& plan, int root, const oci::Mount& m, const std::string& what) {
    if (m.detached_fd >= 0) {
        struct stat st;
        if (::fstat(m.detached_fd, &st) < 0) fail_errno(what);
        UniqueFd dest = open_in_root(root, m.destination, true, !S_ISDIR(st.st_mode));
        if (!dest) fail_errno(what + ": destination");
        refuse_proc_target(dest.get(), m.destination, what);
        attach_tree(m.detached_fd, dest.get(), what + ": attach");
        return;
    }
    if (m.type == "cgroup" || m.type == "cgroup2") {
        mount_cgroups(plan, root, m, what);
        return;
    }
    if (m.bind) {
        std::string src = m.source;
        if (!src.empty() && src[0] != '/') src = plan.bundle + "/" + src;
        bind_into(root, src, m.destination,
                  {.recursive = (m.flags & MS_REC) != 0,
                   .set = attr_from_flags(m.flags),
                   .recursive_set = m.rec_attr_set,
                   .recursive_clear = m.rec_attr_clr,
                   .propagation = propagation_of(m.propagation)},
                  what);
        return;
    }
    UniqueFd dest = open_in_root(root, m.destination, true, false);
    if (!dest) fail_errno(what + ": destination");
    refuse_proc_target(dest.get(), m.destination, what);
    std::string data = m.data;
    if (!plan.mount_label_opt.empty() && (m.type == "tmpfs" || m.type == "mqueue" || m.type == "devpts"))
        data += (data.empty() ? plan.mount_label_opt.substr(1) : plan.mount_label_opt);
    unsigned long flags = m.flags & ~(MS_REMOUNT | MS_BIND | MS_REC);
    if (m.destination == "/dev") flags &= ~MS_RDONLY;  // read-only once the devices exist (setup_dev), as runc
    if (mount_on(dest.get(), m.source.empty() ? m.type.c_str() : m.source.c_str(), m.type.c_str(), flags,
                 data.empty() ? nullptr : data.c_str()) < 0)
        fail_errno(what + ": mount " + m.type + (data.empty() ? "" : " (" + data + ")"));
    if (m.propagation || m.rec_attr_set || m.rec_attr_clr) {
        UniqueFd top = open_in_root(root, m.destination, false, false);
        set_attr(top.get(), m.rec_attr_set, m.rec_attr_clr, 0, true, what + ": recursive flags");
        set_attr(top.get(), 0, 0, propagation_of(m.propagation), (m.propagation & MS_REC) != 0, what + ": propagation");
    }
}

struct DefaultDev {
    const char* path;
    unsigned major, minor;
};
// runtime-spec config-linux.md "Default Devices": the runtime MUST supply these.
constexpr DefaultDev kDefaultDevices[] = {{"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
                                          {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};

// The default devices that linux.devices does not name itself (it may give them another mode or owner).
std::vector<oci::Device> default_devices(const oci::Config& cfg) {
    std::vector<oci::Device> out;
    for (auto& d : kDefaultDevices) {
        bool overridden = false;
        for (auto& u : cfg.linux_.devices) overridden |= u.path == d.path;
        if (!overridden) out.push_back({.type = 'c', .path = d.path, .major = d.major, .minor = d.minor});
    }
    return out;
}

// The device node `node` named `base` in the directory `dirfd`, replacing whatever non-directory is there;
// chowned to its uid and gid with set_owner. umask_clear: the caller set the umask to 0, so mknod's mode is
// already exact.
void make_device_at(int dirfd, const std::string& base, const oci::Device& node, bool set_owner, bool umask_clear) {
    const std::string what = "device " + node.path;
    const mode_t kind = node.type == 'b' ? S_IFBLK : node.type == 'p' ? S_IFIFO : S_IFCHR;  // 'c' and 'u'
    const mode_t mode = node.file_mode & 07777;
    const dev_t dev = makedev(static_cast<unsigned>(node.major), static_cast<unsigned>(node.minor));
    int rc = ::mknodat(dirfd, base.c_str(), kind | mode, dev);
    if (rc < 0 && errno == EEXIST) {
        ::unlinkat(dirfd, base.c_str(), 0);
        rc = ::mknodat(dirfd, base.c_str(), kind | mode, dev);
    }
    if (rc < 0) fail_errno(what + ": mknod");
    // mknod applies the umask; the spec's fileMode is exact.
    if (!umask_clear && ::fchmodat(dirfd, base.c_str(), mode, 0) < 0) fail_errno(what + ": chmod");
    if (set_owner && ::fchownat(dirfd, base.c_str(), node.uid, node.gid, AT_SYMLINK_NOFOLLOW) < 0)
        fail_errno(what + ": chown");
}

void make_device(const Plan& plan, int root, const oci::Device& node, bool set_owner) {
    const std::string what = "device " + node.path;
    if (plan.userns) {
        // mknod is not allowed in a user namespace: bind the host's device node instead (as runc).
        bind_into(root, node.path, node.path, {}, what);
        return;
    }
    auto [dir, base] = split(node.path);
    UniqueFd parent = open_in_root(root, dir, true, false);
    if (!parent) fail_errno(what + ": parent directory");
    UniqueFd pdir(::openat(parent.get(), ".", O_DIRECTORY | O_CLOEXEC));
    if (!pdir) fail_errno(what);
    make_device_at(pdir.get(), base, node, set_owner, false);
}

bool dev_is_bind(const oci::Config& cfg) {
    for (auto& m : cfg.mounts)
        if (m.destination == "/dev" && m.bind) return true;
    return false;
}

void setup_dev(const Plan& plan, int root) {
    const oci::Config& cfg = *plan.cfg;
    // runc (needsSetupDev): the default devices whenever /dev is not a bind mount, whether /dev is a tmpfs
    // of the config's or the image's own directory.
    if (!dev_is_bind(cfg)) {
        UniqueFd dev = open_in_root(root, "/dev", true, false);
        UniqueFd devdir(dev ? ::openat(dev.get(), ".", O_DIRECTORY | O_CLOEXEC) : -1);
        if (!plan.userns && devdir) {
            // All in /dev, opened once, with the umask cleared for the duration (mode 0666 exactly).
            ScopedUmask no_umask(0);
            for (auto& d : default_devices(cfg)) make_device_at(devdir.get(), d.path.substr(5), d, false, true);
        } else {
            for (auto& d : default_devices(cfg)) make_device(plan, root, d, false);
        }
        if (devdir) {
            // config-linux.md "Default Devices" symlinks; /dev/core as runc does when /proc/kcore exists.
            struct {
                const char* target;
                const char* name;
            } links[] = {{"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
                         {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},         {"/proc/kcore", "core"}};
            for (auto& l : links) {
                if (std::strcmp(l.name, "core") == 0 && !procfs::exists("kcore")) continue;
                // runc (setupPtmx) replaces whatever the image has at /dev/ptmx by the link to pts/ptmx.
                if (std::strcmp(l.name, "ptmx") == 0) ::unlinkat(devdir.get(), "ptmx", 0);
                if (::symlinkat(l.target, devdir.get(), l.name) < 0 && errno != EEXIST)
                    fail_errno(std::string("symlink /dev/") + l.name);
            }
        }
    }
    for (auto& d : cfg.linux_.devices) make_device(plan, root, d, true);
    for (auto& m : cfg.mounts)
        if (m.destination == "/dev" && !m.bind && (m.flags & MS_RDONLY)) {
            UniqueFd dev = open_in_root(root, "/dev", false, false);
            if (!dev) fail_errno("/dev: read-only");
            set_attr(dev.get(), MOUNT_ATTR_RDONLY, 0, 0, false, "/dev: read-only");
        }
}

}  // namespace

namespace {
UniqueFd open_in_root_depth(int root, const std::string& path, bool create, bool file, int depth) {
    int fd = openat2_in_root(root, path, O_PATH);
    if (fd >= 0 || errno != ENOENT || !create) return UniqueFd(fd);
    if (depth > 40) {
        errno = ELOOP;
        return UniqueFd(-1);
    }
    auto [dir, base] = split(path);
    UniqueFd parent = open_in_root_depth(root, dir, true, false, depth + 1);
    if (!parent) return parent;
    // mkdirat/openat on an O_PATH directory fd are fine as dirfd arguments.
    if (file) {
        UniqueFd f(::openat(parent.get(), base.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644));
        if (!f && errno != EEXIST) return UniqueFd(-1);
    } else if (::mkdirat(parent.get(), base.c_str(), 0755) < 0 && errno != EEXIST) {
        return UniqueFd(-1);
    }
    fd = openat2_in_root(root, path, O_PATH);
    if (fd >= 0 || errno != ENOENT) return UniqueFd(fd);
    // A dangling symlink in the image: create its target, resolved inside the root like the kernel would
    // with RESOLVE_IN_ROOT (runc's MkdirAllInRoot does the same).
    char target[PATH_MAX];
    ssize_t n = ::readlinkat(parent.get(), base.c_str(), target, sizeof target - 1);
    if (n <= 0) return UniqueFd(-1);
    target[n] = 0;
    std::string t = target[0] == '/' ? std::string(target) : dir + "/" + target;
    UniqueFd made = open_in_root_depth(root, t, true, file, depth + 1);
    if (!made) return made;
    return UniqueFd(openat2_in_root(root, path, O_PATH));
}
}  // namespace

void set_mount_attrs(int fd, const oci::Mount& m, const std::string& what) {
    set_attr(fd, attr_from_flags(m.flags), 0, 0, false, what + ": set mount flags");
    set_attr(fd, m.rec_attr_set, m.rec_attr_clr, 0, true, what + ": set recursive mount flags");
}

UniqueFd open_in_root(int root, const std::string& path, bool create, bool file) {
    return open_in_root_depth(root, path, create, file, 0);
}

void setup_devices(const Plan& plan, int root) { setup_dev(plan, root); }

std::vector<CgroupPath> read_self_cgroups() {
    std::vector<CgroupPath> out;
    for (const std::string& line : trustme::split(procfs::read("self/cgroup"), '\n')) {
        auto a = line.find(':');
        auto b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        out.push_back({line.substr(a + 1, b - a - 1), line.substr(b + 1)});
    }
    return out;
}

UniqueFd clone_tree(int dir, const std::string& path, const std::string& rootfs_propagation) {
    UniqueFd tree(::open_tree(dir, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH));
    if (!tree) fail_errno("rootfs " + path + ": clone mount");
    // A clone of a shared mount joins the source's peer group (fs/namespace.c clone_mnt() without
    // CL_PRIVATE; mount_namespaces(7) "MS_SHARED"): what the container mounts under its root (proc, dev,
    // sys, cgroups) would show on the host, and pivot_root(2) refuses a shared new root (EINVAL). Before it
    // is attached anywhere, the whole clone becomes a slave of what it was cloned from (runc's default
    // "rslave": host mounts still reach the container, nothing goes back; a private mount stays private),
    // or private when linux.rootfsPropagation says so. The other values are applied after pivot_root.
    struct mount_attr a {};
    a.propagation = rootfs_propagation == "private" || rootfs_propagation == "rprivate" ? MS_PRIVATE : MS_SLAVE;
    if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
        fail_errno("rootfs " + path + ": make the clone a slave");
    return tree;
}

UniqueFd prepare(const Plan& plan) {
    const oci::Config& cfg = *plan.cfg;
    // Nothing we mount may propagate back to the host: make the whole copy a slave (runc's default), or
    // what linux.rootfsPropagation asks for.
    unsigned long prop = MS_SLAVE | MS_REC;
    if (cfg.linux_.rootfs_propagation == "private" || cfg.linux_.rootfs_propagation == "rprivate")
        prop = MS_PRIVATE | MS_REC;
    if (::mount(nullptr, "/", nullptr, prop, nullptr) < 0) fail_errno("make / a slave mount");

    // Attach the detached clone of exactly the verified directory (made by the parent from the verified fd,
    // because open_tree(OPEN_TREE_CLONE) only clones mounts of the caller's own mount namespace).
    UniqueFd tree;
    if (plan.rootfs_is_dir) {
        // Rootless: the parent could not clone in the host's mount namespace. Clone the path here, in our
        // own, and accept it only if it is the very directory that was verified.
        tree.reset(::open_tree(AT_FDCWD, plan.rootfs_path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
        if (!tree) fail_errno("rootfs " + plan.rootfs_path + ": clone mount");
        struct stat a, b;
        if (::fstat(tree.get(), &a) < 0 || ::fstat(plan.rootfs_fd, &b) < 0) fail_errno("rootfs " + plan.rootfs_path);
        if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
            fail("rootfs " + plan.rootfs_path + ": replaced after it was verified");
    } else {
        tree.reset(::fcntl(plan.rootfs_fd, F_DUPFD_CLOEXEC, 3));
        if (!tree) fail_errno("rootfs " + plan.rootfs_path);
    }
    if (::move_mount(tree.get(), "", AT_FDCWD, plan.rootfs_path.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
        fail_errno("rootfs " + plan.rootfs_path + ": attach");
    // The tree fd now names the mount's root: resolve everything from it.
    int root = tree.get();

    // A verified image is never written to: without a /dev of the config's own, the default devices go on
    // a tmpfs over the image's /dev (runc's default /dev mount) rather than into it, where they would make
    // the next verification fail. runc makes them in the image.
    bool dev_mounted = false;
    for (auto& m : cfg.mounts) dev_mounted |= m.destination == "/dev";
    if (!dev_mounted && cfg.annotations.count("org.trustme.verified.manifest")) {
        oci::Mount dev;
        dev.destination = "/dev";
        dev.type = dev.source = "tmpfs";
        dev.flags = MS_NOSUID | MS_STRICTATIME;
        dev.data = "mode=755,size=65536k";
        mount_one(plan, root, dev, "/dev (a tmpfs: the verified image is not written to)");
    }

    size_t i = 0;
    for (auto& m : cfg.mounts) {
        mount_one(plan, root, m, "mounts[" + std::to_string(i) + "] " + m.destination);
        ++i;
    }
    for (auto& m : plan.extra_mounts) mount_one(plan, root, m, "volume " + m.destination);
    setup_dev(plan, root);
    return tree;
}

void enter(int root, bool no_pivot) {
    if (::fchdir(root) < 0) fail_errno("chdir to rootfs");
    if (no_pivot) {
        if (::mount(".", "/", nullptr, MS_MOVE, nullptr) < 0) fail_errno("move rootfs to /");
        if (::chroot(".") < 0) fail_errno("chroot");
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one; detach it (runc's trick, which needs
        // no directory for put_old inside the rootfs).
        if (::syscall(SYS_pivot_root, ".", ".") < 0) fail_errno("pivot_root");
        if (::mount(nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr) < 0) fail_errno("make old root a slave");
        if (::umount2(".", MNT_DETACH) < 0) fail_errno("detach old root");
    }
    if (::chdir("/") < 0) fail_errno("chdir /");
}

namespace {

// A path inside the container (after pivot_root), opened without following any symlink: masking or
// protecting what a symlink points at would act on a file of the image's choosing.
UniqueFd open_nofollow(const std::string& path) {
    struct open_how how {};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS;
    for (int tries = 0;; ++tries) {
        int fd = static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how));
        if (fd >= 0 || errno != EAGAIN || tries > 16) return UniqueFd(fd);
    }
}

[[noreturn]] void fail_target(int err, const std::string& what) {
    if (err == ELOOP) fail(what + ": is or passes through a symbolic link");
    fail(err, what);
}

// Files are masked with the null device the runtime cloned from its own /dev/null (clone_dev_null), never
// with the image's /dev/null, which may be a symlink to a host file such as
// /proc/sys/kernel/core_pattern (CVE-2025-31133); directories with an empty read-only tmpfs. Both are
// attached by fd onto the target that was opened and checked.
void mask_paths(const Plan& plan) {
    const auto& paths = plan.cfg->linux_.masked_paths;
    int null_src = plan.dev_null_fd;  // the first target gets the clone itself, later ones a copy of it
    bool null_attached = false;
    for (size_t i = 0; i < paths.size(); ++i) {
        const std::string what = "linux.maskedPaths[" + std::to_string(i) + "] " + paths[i];
        UniqueFd target = open_nofollow(paths[i]);
        if (!target) {
            if (errno == ENOENT) continue;  // runc: a missing masked path is not an error
            fail_target(errno, what);
        }
        struct stat st;
        if (::fstat(target.get(), &st) < 0) fail_errno(what);
        UniqueFd mnt;
        if (S_ISDIR(st.st_mode)) {
            UniqueFd fs(::fsopen("tmpfs", FSOPEN_CLOEXEC));
            if (!fs || ::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) fail_errno(what + ": tmpfs");
            mnt.reset(::fsmount(fs.get(), FSMOUNT_CLOEXEC,
                                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
            if (!mnt) fail_errno(what + ": tmpfs");
        } else {
            if (null_src < 0) fail(what + ": no null device to mask it with");
            if (null_attached) {
                mnt.reset(::open_tree(null_src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
                if (!mnt) fail_errno(what + ": clone /dev/null");
            }
        }
        int src = mnt ? mnt.get() : null_src;
        if (::move_mount(src, "", target.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            fail_errno(what);
        if (src == null_src) null_attached = true;  // now in our namespace: clonable
    }
}

// A recursive read-only bind of the target onto itself, by fd.
void protect_paths(const Plan& plan) {
    const auto& paths = plan.cfg->linux_.readonly_paths;
    for (size_t i = 0; i < paths.size(); ++i) {
        const std::string what = "linux.readonlyPaths[" + std::to_string(i) + "] " + paths[i];
        UniqueFd target = open_nofollow(paths[i]);
        if (!target) {
            if (errno == ENOENT) continue;
            fail_target(errno, what);
        }
        UniqueFd t(::open_tree(target.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH));
        if (!t) fail_errno(what);
        set_attr(t.get(), MOUNT_ATTR_RDONLY, 0, 0, true, what);
        if (::move_mount(t.get(), "", target.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            fail_errno(what);
    }
}

}  // namespace

UniqueFd clone_dev_null() {
    const char* what = "/dev/null (to mask linux.maskedPaths with)";
    UniqueFd fd(::open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!fd || ::fstat(fd.get(), &st) < 0) fail_errno(what);
    if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
        fail(std::string(what) + ": not the null device (char 1:3)");
    UniqueFd tree(::open_tree(fd.get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
    if (!tree) fail_errno(what);
    set_attr(tree.get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0, 0, false, what);
    return tree;
}

void finish(const Plan& plan) {
    const oci::Config& cfg = *plan.cfg;
    // sysctls before readonlyPaths: the default spec makes /proc/sys read-only. Written through the
    // runtime's procfs handle, not the container's /proc, where a mount could redirect them.
    for (auto& [k, v] : cfg.linux_.sysctl) {
        try {
            procfs::write(process::checks::sysctl_path(k), v);
        } catch (const Error& e) {
            throw Error("linux.sysctl \"" + k + "\": " + e.what(), e.code());
        }
    }
    mask_paths(plan);
    protect_paths(plan);
    if (cfg.root_readonly) {
        if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) < 0) {
            // Keep flags the mount already had (nosuid/nodev...): locked flags make a plain remount fail in a userns.
            struct mount_attr a {};
            a.attr_set = MOUNT_ATTR_RDONLY;
            if (::mount_setattr(AT_FDCWD, "/", 0, &a, sizeof a) < 0) fail_errno("root.readonly");
        }
    }
    if (!cfg.linux_.rootfs_propagation.empty()) {
        static const std::pair<const char*, unsigned long> kProp[] = {
            {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
            {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
            {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
            {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC}};
        for (auto& [n, f] : kProp)
            if (cfg.linux_.rootfs_propagation == n && ::mount(nullptr, "/", nullptr, f, nullptr) < 0)
                fail_errno("linux.rootfsPropagation " + cfg.linux_.rootfs_propagation);
    }
}

}  // namespace trustme::process::rootfs
