// Every /proc access of the runtime and of the container's init goes through here.
//
// A mount over a procfs file (or a /proc that is not procfs at all) must not redirect what we read or
// write: a config or a container process that binds a host file onto /proc/sys/... or
// /proc/self/attr/exec would otherwise have the runtime write into that file as root (CVE-2025-52881;
// also CVE-2019-16884, an AppArmor label written to a fake procfs). So:
//  - the handle is opened once, in the runtime's own mount namespace before any namespace is joined or
//    the container exists, and checked to be the root of a procfs (fstatfs PROC_SUPER_MAGIC, inode 1);
//    if /proc is not that, a fresh instance (fsopen "proc") is made instead. The container init and the
//    `exec` child inherit it across clone, so the container's own /proc is never consulted;
//  - every path below it is resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_XDEV |
//    RESOLVE_NO_SYMLINKS): a symlink or a mount point on the way fails instead of redirecting;
//  - "self" and "thread-self", procfs's own symlinks, are replaced by what this instance says they are;
//  - so every file opened is on that verified procfs (RESOLVE_NO_XDEV forbids leaving its mount).
// Sysctls resolve to the namespaces of the calling task whatever procfs instance they are opened
// through (net, ipc and uts tables are looked up per task), so the init writes its container's values.
// Paths are relative to the procfs root: "sys/net/ipv4/ip_forward", "self/mountinfo", "1234/uid_map".
// Nothing here allocates (the binary's self-seal reads self/stat where it must not).
#pragma once
#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/fd.hpp"

namespace trustme::procfs {

// The verified procfs root (opened on first use). Fails once close() was called: from then on the
// process runs in the container's mount namespace, whose /proc is not ours to trust.
int root();
// Drop the handle. The container init and `exec` call this before the user's cwd is entered and before
// exec, so the program never holds or reaches a procfs of the runtime's pid namespace.
void close();

// Open a file or directory below the root; -1 with errno on failure (ELOOP: a symlink, EXDEV: a mount).
int open(std::string_view path, int flags);
// As open(), but the last component is a procfs magic link that is followed once (exe, ns/pid, fd/N);
// everything before it is resolved as in open().
int open_link(std::string_view path, int flags);
// readlink of the last component (a magic link such as self/exe); -1 with errno on failure.
ssize_t readlink(std::string_view path, char* buf, size_t size);
bool exists(std::string_view path);

// Throwing forms, errors name "/proc/<path>".
std::string read(std::string_view path);
// One write(2) of the whole value (sysctls and LSM attributes parse what one write brings).
void write(std::string_view path, std::string_view data);

// Whether this process is in the initial user namespace, the one whose uid_map is the identity over all
// ids ("0 0 4294967295", user_namespaces(7)). Root elsewhere (rootless podman runs us as root of the
// user's namespace) has no privilege over the host. true when the map cannot be read. Read once per
// process and inherited by clones: ask only in the user namespace the process started in (the init asks
// only when the config names no user namespace, so it is still the runtime's).
bool initial_user_ns();

}  // namespace trustme::procfs
