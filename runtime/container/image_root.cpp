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
#include "runtime/process/sync.hpp"
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

// The child of writable_overlay, in its own mount namespace: only system calls (every string it needs is
// built by the parent), nothing that throws; it reports to `sock` (Msg::Ready with the overlay's detached
// mount, or Msg::Error with the errno as its code) and exits.
struct OverlayDirs {
    std::string tmpfs;  // where the child attaches its tmpfs: scratch/.l
    std::string image;  // where it attaches the image, on that tmpfs: .l/l
    std::string upper, work;
};

[[noreturn]] void overlay_child(int sock, int lower, const OverlayDirs& dirs) noexcept {
    int err = 0;
    auto step = [&](bool ok) {
        if (!ok && !err) err = errno ? errno : EINVAL;
        return ok;
    };
    int tmpfs_ctx = -1, tmpfs_mnt = -1, overlay_ctx = -1, overlay_mnt = -1;
    step(::unshare(CLONE_NEWNS) == 0) && step(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0) &&
        step((tmpfs_ctx = ::fsopen("tmpfs", FSOPEN_CLOEXEC)) >= 0) &&
        step(::fsconfig(tmpfs_ctx, FSCONFIG_SET_STRING, "mode", "0700", 0) == 0) &&
        step(::fsconfig(tmpfs_ctx, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0) &&
        step((tmpfs_mnt = ::fsmount(tmpfs_ctx, FSMOUNT_CLOEXEC, 0)) >= 0) &&
        step(::mkdirat(tmpfs_mnt, "l", 0755) == 0) && step(::mkdirat(tmpfs_mnt, "u", 0755) == 0) &&
        step(::mkdirat(tmpfs_mnt, "u/upper", 0755) == 0) && step(::mkdirat(tmpfs_mnt, "u/work", 0700) == 0) &&
        step(::mkdir(dirs.tmpfs.c_str(), 0700) == 0 || errno == EEXIST) &&
        step(::move_mount(tmpfs_mnt, "", AT_FDCWD, dirs.tmpfs.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0) &&
        step(::move_mount(lower, "", AT_FDCWD, dirs.image.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0) &&
        step((overlay_ctx = ::fsopen("overlay", FSOPEN_CLOEXEC)) >= 0) &&
        step(::fsconfig(overlay_ctx, FSCONFIG_SET_STRING, "source", "overlay", 0) == 0) &&
        step(::fsconfig(overlay_ctx, FSCONFIG_SET_STRING, "lowerdir", dirs.image.c_str(), 0) == 0) &&
        step(::fsconfig(overlay_ctx, FSCONFIG_SET_STRING, "upperdir", dirs.upper.c_str(), 0) == 0) &&
        step(::fsconfig(overlay_ctx, FSCONFIG_SET_STRING, "workdir", dirs.work.c_str(), 0) == 0) &&
        step(::fsconfig(overlay_ctx, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0) &&
        step((overlay_mnt = ::fsmount(overlay_ctx, FSMOUNT_CLOEXEC, 0)) >= 0);
    if (err) process::sync::try_send(sock, process::sync::Msg::Error, {}, -1, err);
    else process::sync::try_send(sock, process::sync::Msg::Ready, {}, overlay_mnt);
    ::_exit(0);
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
    const OverlayDirs dirs{scratch + "/.l", scratch + "/.l/l", scratch + "/.l/u/upper", scratch + "/.l/u/work"};
    pid_t pid = ::fork();
    if (pid < 0) fail_errno(what + ": fork");
    if (pid == 0) overlay_child(theirs.get(), lower, dirs);
    theirs.reset();
    struct Reap {
        pid_t pid;
        const std::string& tmpfs;
        ~Reap() {
            while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
            }
            ::rmdir(tmpfs.c_str());  // only the private namespace had anything mounted on it
        }
    } reap{pid, dirs.tmpfs};
    process::sync::Packet reply;
    if (!process::sync::recv(mine.get(), reply)) fail(EPROTO, what + ": overlay");
    if (reply.type == process::sync::Msg::Error) fail(reply.code ? reply.code : EPROTO, what + ": overlay");
    if (reply.type != process::sync::Msg::Ready || !reply.fd) fail(what + ": overlay: no mount came back");
    return std::move(reply.fd);
}

}  // namespace

UniqueFd open_image_root(const ImageRoot& r) {
    const signing::Image& im = *r.image;
    const std::string path = r.bundle + "/" + im.file;
    UniqueFd img(::openat(r.bundle_fd, im.file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!img) fail_errno(path);
    auto open_fn =
        reinterpret_cast<decltype(&trustme_verity_root_open)>(plugins::volume_symbol("trustme_verity_root_open"));
    trustme_verity_root req{TRUSTME_VOLUME_ABI, r.id.c_str(),    r.state_dir.c_str(), img.get(),      path.c_str(),
                            im.root.c_str(),    im.salt.c_str(), im.data_blocks,      im.hash_offset, im.block};
    char dev[256] = {0};
    trustme_volume_error err{};
    plugins::volume_check(open_fn(&req, dev, sizeof dev, &err), err, path + ": dm-verity failed");
    const std::string what = "rootfs image " + path + " (" + dev + ")";
    UniqueFd lower = fs_mount(im.fstype.c_str(), what, dev, true, MOUNT_ATTR_RDONLY);
    if (r.readonly) return lower;
    return writable_overlay(lower.get(), r.state_dir, what);
}

}  // namespace trustme::container
