#include "base/procfs.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "base/error.hpp"
#include "base/files.hpp"

namespace trustme::procfs {
namespace {

// The root directory of every procfs instance has this inode number (include/linux/proc_ns.h,
// PROC_ROOT_INO); no other procfs inode does.
constexpr ino_t kProcRootIno = 1;

UniqueFd g_root;        // opened on first use
bool g_closed = false;  // closed for good

bool on_procfs(int fd) {
    struct statfs sf;
    return ::fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

bool is_proc_root(int fd) {
    struct stat st;
    return on_procfs(fd) && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_ino == kProcRootIno;
}

int open_root() {
    // The mount at /proc of the runtime's own mount namespace: cheap (~5 us; a fresh instance costs
    // 0.2-0.4 ms per command with its teardown) and out of the container's reach. What lies below it is
    // trusted only as far as openat2 without crossing a mount gets.
    UniqueFd fd(::open("/proc", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd && is_proc_root(fd.get())) return fd.release();
    fd.reset();
    // No real procfs at /proc (a minimal chroot, something mounted over it): make our own instance.
    UniqueFd fs(::fsopen("proc", FSOPEN_CLOEXEC));
    if (!fs) return -1;
    UniqueFd mnt;
    if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0)
        mnt.reset(::fsmount(fs.get(), FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
    int e = errno;
    fs.reset();
    if (mnt && !is_proc_root(mnt.get())) {
        mnt.reset();
        e = EXDEV;
    }
    errno = e;
    return mnt.release();
}

// Copies `path` into buf (NUL-terminated) with a leading "self" or "thread-self" replaced by the target
// this procfs instance gives for it ("1234", "1234/task/1235"). false with errno on failure.
bool expand(int root, std::string_view path, char* buf, size_t size) {
    std::string_view first = path.substr(0, path.find('/'));
    std::string_view rest = path.substr(first.size());
    size_t n = 0;
    if (first == "self" || first == "thread-self") {
        char name[16];
        std::memcpy(name, first.data(), first.size());
        name[first.size()] = 0;
        ssize_t k = ::readlinkat(root, name, buf, size - 1);
        if (k <= 0) return false;
        // Only digits and "/task/": anything else is not procfs speaking.
        for (ssize_t i = 0; i < k; ++i)
            if (!(buf[i] >= '0' && buf[i] <= '9') && !std::strchr("/task", buf[i])) {
                errno = EXDEV;
                return false;
            }
        n = static_cast<size_t>(k);
    } else {
        rest = path;
    }
    if (n + rest.size() + 1 > size) {
        errno = ENAMETOOLONG;
        return false;
    }
    std::memcpy(buf + n, rest.data(), rest.size());
    buf[n + rest.size()] = 0;
    return true;
}

int open_beneath(int root, const char* path, int flags) {
    struct open_how how {};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    for (int tries = 0;; ++tries) {
        int fd = static_cast<int>(::syscall(SYS_openat2, root, path, &how, sizeof how));
        if (fd >= 0 || errno != EAGAIN || tries > 16) return fd;  // EAGAIN: a rename raced the lookup
    }
}

std::string shown(std::string_view path) {
    std::string s = "/proc/";
    s += path;
    return s;
}

}  // namespace

int root() {
    if (g_closed) {
        errno = EBADF;
        return -1;
    }
    if (!g_root) g_root.reset(open_root());
    return g_root.get();
}

void close() {
    g_root.reset();
    g_closed = true;
}

int open(std::string_view path, int flags) {
    int r = root();
    if (r < 0) return -1;
    char buf[PATH_MAX];
    if (!expand(r, path, buf, sizeof buf)) return -1;
    // No fstatfs of the result: the root was checked to be a procfs root, and RESOLVE_NO_XDEV keeps the
    // whole lookup on that mount (openat2(2): "Disallow traversal of mount points during path resolution
    // (including all bind mounts)"), so what it opens is on that procfs.
    return open_beneath(r, buf, flags);
}

namespace {
// The directory holding the last component of `path`, and that component as a C string in `name`.
int open_parent(std::string_view path, char (&name)[NAME_MAX + 1]) {
    size_t slash = path.rfind('/');
    std::string_view last = slash == std::string_view::npos ? path : path.substr(slash + 1);
    if (last.empty() || last.size() >= NAME_MAX) {
        errno = EINVAL;
        return -1;
    }
    std::memcpy(name, last.data(), last.size());
    name[last.size()] = 0;
    if (slash == std::string_view::npos) {
        int r = root();
        return r < 0 ? -1 : ::fcntl(r, F_DUPFD_CLOEXEC, 3);
    }
    return open(path.substr(0, slash), O_PATH | O_DIRECTORY);
}
}  // namespace

int open_link(std::string_view path, int flags) {
    char name[NAME_MAX + 1];
    UniqueFd dir(open_parent(path, name));
    if (!dir) return -1;
    return ::openat(dir.get(), name, flags | O_CLOEXEC);
}

ssize_t readlink(std::string_view path, char* buf, size_t size) {
    char name[NAME_MAX + 1];
    UniqueFd dir(open_parent(path, name));
    if (!dir) return -1;
    return ::readlinkat(dir.get(), name, buf, size);
}

bool exists(std::string_view path) {
    UniqueFd fd(open(path, O_PATH));
    return static_cast<bool>(fd);
}

std::string read(std::string_view path) {
    UniqueFd fd(open(path, O_RDONLY));
    if (!fd) fail_errno(shown(path));
    return read_all(fd.get(), shown(path));
}

void write(std::string_view path, std::string_view data) {
    UniqueFd fd(open(path, O_WRONLY));
    if (!fd) fail_errno("open " + shown(path));
    ssize_t n;
    do n = ::write(fd.get(), data.data(), data.size());
    while (n < 0 && errno == EINTR);
    if (n < 0) fail_errno("write \"" + std::string(data) + "\" to " + shown(path));
    if (static_cast<size_t>(n) != data.size()) fail("short write of \"" + std::string(data) + "\" to " + shown(path));
}

bool initial_user_ns() {
    static int known = -1;  // read once per process; a clone inherits the answer with the memory
    if (known >= 0) return known == 1;
    try {
        const std::string map = read("self/uid_map");
        unsigned long inside = 1, outside = 1, count = 0;
        known = std::sscanf(map.c_str(), "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 &&
                outside == 0 && count == 4294967295UL;
    } catch (const Error&) {
        known = 1;
    }
    return known == 1;
}

}  // namespace trustme::procfs
