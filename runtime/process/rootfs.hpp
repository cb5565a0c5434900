// The container's filesystem view, built in its new mount namespace: the verified rootfs tree, config
// mounts, devices, pivot_root, masked and read-only paths.
//
// Every path inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT) from the rootfs fd, so a symlink
// in the image cannot redirect a mount to the host (CVE-2021-30465, runc's "mount destination symlink
// exchange"); mounts are attached with move_mount to the resolved fd, never to a path string.
#pragma once
#include <string>
#include <vector>

#include "oci/config.hpp"
#include "base/fd.hpp"

namespace trustme::process::rootfs {

struct CgroupPath {
    std::string controllers;  // "memory", "name=systemd", "" for v2
    std::string path;         // path within the hierarchy (from /proc/self/cgroup, before unsharing cgroupns)
};

struct Plan {
    const oci::Config* cfg = nullptr;
    std::string bundle;          // absolute bundle directory (relative bind sources are resolved from it)
    std::string rootfs_path;     // absolute path of the rootfs (where the verified tree gets attached)
    int rootfs_fd = -1;          // detached clone (open_tree) of the directory that was verified
    bool rootfs_is_dir = false;  // rootfs_fd is the verified directory itself: the init clones it (rootless)
    bool no_pivot = false;
    bool userns = false;          // in a user namespace (new or inherited): devices are bind-mounted, not mknod'ed
    std::string mount_label_opt;  // ",context=..." or ""
    std::vector<oci::Mount> extra_mounts;  // volumes, appended after config mounts
    std::vector<CgroupPath> cgroups;
    int dev_null_fd = -1;  // clone_dev_null(), made by the parent: what maskedPaths files are masked with
};

// Reads /proc/self/cgroup (call before unsharing the cgroup namespace).
std::vector<CgroupPath> read_self_cgroups();

// A detached clone (open_tree) of the directory `dir` (named `path` in errors) and everything under it,
// made in the caller's mount namespace, with no propagation back to the mounts it was cloned from.
UniqueFd clone_tree(int dir, const std::string& path, const std::string& rootfs_propagation);

// Attaches the verified tree, performs all mounts and creates devices. Returns an fd of the new root mount.
UniqueFd prepare(const Plan& plan);
// pivot_root (or MS_MOVE + chroot with no_pivot) into the tree; cwd becomes "/".
void enter(int root_fd, bool no_pivot);
// After entering: sysctls, masked paths, read-only paths, root.readonly, rootfs propagation.
void finish(const Plan& plan);

// The mount flags of config entry `m` (ro, nosuid, ... on the top mount; rro, rnosuid, ... on all) applied to
// the mount `fd` (a detached clone); errors name `what`.
void set_mount_attrs(int fd, const oci::Mount& m, const std::string& what);

// In the parent, before any namespace is joined: a detached mount of the runtime's own /dev/null,
// checked to be the null device (char 1:3).
UniqueFd clone_dev_null();

// The default devices, /dev links and linux.devices in the tree under root_fd (what prepare() does after
// the mounts; without a mount namespace, the only setup there is).
void setup_devices(const Plan& plan, int root_fd);

// Resolve `path` inside root_fd (O_PATH), optionally creating missing directories (and, if `file`, an
// empty file as the last component).
UniqueFd open_in_root(int root_fd, const std::string& path, bool create, bool file);

}  // namespace trustme::process::rootfs
