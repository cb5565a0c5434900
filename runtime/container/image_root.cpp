#include "runtime/container/image_root.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <utility>
#include <vector>

#include "runtime/container/plugins.hpp"
#include "base/error.hpp"
#include "runtime/volume/volume_plugin.h"

namespace trustme::container {
namespace {

UniqueFd fs_mount(const char* fstype, const std::string& what, const char* source, bool ro, unsigned attrs,
                  const std::vector<std::pair<const char*, std::string>>& options = {}) {
    UniqueFd fs(::fsopen(fstype, FSOPEN_CLOEXEC));
    if (!fs) fail_errno(what + ": fsopen " + fstype);
    if (source && ::fsconfig(fs.get(), FSCONFIG_SET_STRING, "source", source, 0) < 0) fail_errno(what + ": source");
    if (ro && ::fsconfig(fs.get(), FSCONFIG_SET_FLAG, "ro", nullptr, 0) < 0) fail_errno(what + ": ro");
    for (const auto& [k, v] : options)
        if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, k, v.c_str(), 0) < 0) fail_errno(what + ": " + k + "=" + v);
    if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) fail_errno(what + ": mount");
    UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, attrs));
    if (!mnt) fail_errno(what + ": fsmount");
    return mnt;
}

// Writable: an overlay whose upper layer is a tmpfs of this container alone; the image stays as signed,
// and what the container writes is gone with it. Overlayfs takes private clones of its layers, which
// kernels before 6.15 make only of mounts in the caller's mount namespace (clone_private_mount:
// check_mnt), not of detached ones. So a child in a private mount namespace attaches the image and a
// tmpfs over `scratch` there (the host never sees them), makes the overlay, and hands back its detached
// mount; the layers live on in the overlay after the child is gone.
UniqueFd writable_overlay(int lower, const std::string& scratch, const std::string& what) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) fail_errno(what + ": socketpair");
    UniqueFd mine(sp[0]), theirs(sp[1]);
    const std::string low = scratch + "/.l", up = scratch + "/.l/u";  // .l on the tmpfs, then the image on .l/l
    const std::string low_l = low + "/l", upper = up + "/upper", work = up + "/work";
    pid_t pid = ::fork();
    if (pid < 0) fail_errno(what + ": fork");
    if (pid == 0) {
        // Only system calls from here on (the strings above are built already).
        int err = 0;
        auto step = [&](bool ok) {
            if (!ok && !err) err = errno ? errno : EINVAL;
            return ok;
        };
        int tfs = -1, tmnt = -1, ofs = -1, omnt = -1;
        step(::unshare(CLONE_NEWNS) == 0) && step(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0) &&
            step((tfs = ::fsopen("tmpfs", FSOPEN_CLOEXEC)) >= 0) &&
            step(::fsconfig(tfs, FSCONFIG_SET_STRING, "mode", "0700", 0) == 0) &&
            step(::fsconfig(tfs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0) &&
            step((tmnt = ::fsmount(tfs, FSMOUNT_CLOEXEC, 0)) >= 0) &&
            step(::mkdirat(tmnt, "l", 0755) == 0) && step(::mkdirat(tmnt, "u", 0755) == 0) &&
            step(::mkdirat(tmnt, "u/upper", 0755) == 0) && step(::mkdirat(tmnt, "u/work", 0700) == 0) &&
            step(::mkdir(low.c_str(), 0700) == 0 || errno == EEXIST) &&
            step(::move_mount(tmnt, "", AT_FDCWD, low.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0) &&
            step(::move_mount(lower, "", AT_FDCWD, low_l.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0) &&
            step((ofs = ::fsopen("overlay", FSOPEN_CLOEXEC)) >= 0) &&
            step(::fsconfig(ofs, FSCONFIG_SET_STRING, "source", "overlay", 0) == 0) &&
            step(::fsconfig(ofs, FSCONFIG_SET_STRING, "lowerdir", low_l.c_str(), 0) == 0) &&
            step(::fsconfig(ofs, FSCONFIG_SET_STRING, "upperdir", upper.c_str(), 0) == 0) &&
            step(::fsconfig(ofs, FSCONFIG_SET_STRING, "workdir", work.c_str(), 0) == 0) &&
            step(::fsconfig(ofs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0) &&
            step((omnt = ::fsmount(ofs, FSMOUNT_CLOEXEC, 0)) >= 0);
        char data[sizeof(int)] = {};
        std::memcpy(data, &err, sizeof err);
        struct iovec iov{data, sizeof data};
        alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
        struct msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (!err) {
            msg.msg_control = ctl;
            msg.msg_controllen = sizeof ctl;
            struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            std::memcpy(CMSG_DATA(c), &omnt, sizeof omnt);
        }
        ::sendmsg(theirs.get(), &msg, MSG_NOSIGNAL);
        ::_exit(0);
    }
    theirs.reset();
    int err = 0;
    char data[sizeof(int)] = {};
    struct iovec iov{data, sizeof data};
    alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
    struct msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    ssize_t n = ::recvmsg(mine.get(), &msg, MSG_CMSG_CLOEXEC);
    int saved = errno;
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    ::rmdir(low.c_str());  // only the private namespace had anything mounted on it
    if (n != static_cast<ssize_t>(sizeof data)) fail(n < 0 ? saved : EPROTO, what + ": overlay");
    std::memcpy(&err, data, sizeof err);
    if (err) fail(err, what + ": overlay");
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) fail(what + ": overlay: no mount came back");
    int fd = -1;
    std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return UniqueFd(fd);
}

}  // namespace

UniqueFd open_image_root(const ImageRoot& r) {
    const signing::Image& im = *r.image;
    const std::string path = r.bundle + "/" + im.file;
    UniqueFd img(::openat(r.bundle_fd, im.file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!img) fail_errno(path);
    auto open_fn = reinterpret_cast<decltype(&trustme_verity_root_open)>(
        plugins::volume_symbol("trustme_verity_root_open"));
    trustme_verity_root req{TRUSTME_VOLUME_ABI, r.id.c_str(), r.state_dir.c_str(), img.get(), path.c_str(),
                            im.root.c_str(), im.salt.c_str(), im.data_blocks, im.hash_offset, im.block};
    char dev[256] = {0};
    trustme_volume_error err{};
    plugins::volume_check(open_fn(&req, dev, sizeof dev, &err), err, path + ": dm-verity failed");
    const std::string what = "rootfs image " + path + " (" + dev + ")";
    UniqueFd lower = fs_mount(im.fstype.c_str(), what, dev, true, MOUNT_ATTR_RDONLY);
    if (r.readonly) return lower;
    return writable_overlay(lower.get(), r.state_dir, what);
}

}  // namespace trustme::container
