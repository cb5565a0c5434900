// The container init: the child between clone and exec. Single-threaded (the parent is), so it may
// allocate; everything it needs was parsed and compiled by the parent before clone.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "oci/config.hpp"
#include "runtime/security/security.hpp"

namespace trustme::process {

struct InitConfig {
    const oci::Config* cfg = nullptr;
    const oci::Process* proc = nullptr;
    std::string id;
    std::string bundle;
    std::string rootfs_path;
    int rootfs_fd = -1;
    bool rootfs_is_dir = false;  // rootfs_fd is the verified directory, not a clone of it (rootless)
    int sync_fd = -1;            // our end of the socketpair
    int start_fd = -1;           // exec fifo, opened O_RDWR: a read blocks until `start` writes
    int status_fd = -1;          // exec status fifo, O_RDWR|O_CLOEXEC: closed by the exec, or carries the error
    bool no_pivot = false;
    bool no_new_keyring = false;
    int preserve_fds = 0;
    int userns_fd = -1;    // user namespace to join (linux.namespaces user with path), or -1
    int dev_null_fd = -1;  // rootfs::clone_dev_null(), when there are maskedPaths
    int new_ns_late = 0;   // namespaces to unshare in the child after Go (cgroup, time)
    const security::SeccompProgram* seccomp = nullptr;
    security::Capabilities caps;
    std::vector<oci::Mount> extra_mounts;
    bool is_exec = false;    // `exec`: no startContainer hooks, no start wait
    bool new_netns = false;  // the clone made a network namespace: bring its loopback up
    std::string exec_path;   // resolved executable (absolute inside the container)
    std::string home_env;    // "HOME=..." from the container's /etc/passwd when process.env has no HOME
};

// The entries below are what a child of clone runs: they never return and never throw (an exception must
// not unwind into the cleanup of the parent it was cloned from); every error goes to the parent over
// ic.sync_fd (Msg::Error) and the child _exit()s.

// Execs the user program once `start` releases it.
[[noreturn]] void container_init(InitConfig& ic) noexcept;

// The `exec` child: joins the namespaces of the container behind container_pidfd (ns_flags), then sets up
// the process exactly as the init does and execs it without waiting for a start.
[[noreturn]] void exec_init(InitConfig& ic, int container_pidfd, int ns_flags) noexcept;

// exec_init for a container whose pid namespace we may not enter from outside (rootless: it belongs to the
// container's user namespace): this first child joins all of the container's namespaces, makes the real
// exec child with CLONE_PARENT (so the runtime still waits for it), reports it (Msg::Pid) and exits.
[[noreturn]] void exec_init_from_inside(InitConfig& ic, int container_pidfd, int ns_flags) noexcept;

// clone3 with CLONE_PIDFD (the pidfd stored in *pidfd) and SIGCHLD as the exit signal (none with
// CLONE_PARENT): the child's pid, 0 in the child, -1 with errno.
pid_t clone_with_pidfd(uint64_t flags, int* pidfd);

// PATH lookup of args[0] inside the container (after pivot_root). Throws a one-line error
// ("exec: \"foo\": executable file not found in $PATH"), as runc does at create.
std::string resolve_executable(const oci::Process& proc);

}  // namespace trustme::process
