// Internal pieces shared by the lifecycle commands.
#pragma once
#include <signal.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/container/container.hpp"
#include "oci/config.hpp"
#include "base/fd.hpp"
#include "runtime/cgroups/cgroups.hpp"
#include "runtime/security/security.hpp"
#include "runtime/state/state.hpp"

namespace trustme::container {

// Everything `create` made, undone by abort() (kill init, cgroup, volumes, state dir) while armed: the
// destructor aborts, so a command that throws leaves nothing behind. Not copied or moved: one owner.
struct Created {
    Created() = default;
    Created(const Created&) = delete;
    Created& operator=(const Created&) = delete;
    ~Created();
    void abort() noexcept;

    bool armed = false;
    bool foreground = false;                   // `run` without --detach: the pty master may stay with us
    const sigset_t* block_at_clone = nullptr;  // `run`: signals to forward, blocked right before the clone
    std::string bundle, rootfs;
    std::unique_ptr<oci::Config> cfg;
    security::Capabilities caps;
    security::SeccompProgram seccomp;
    UniqueFd rootfs_fd;    // the verified directory
    UniqueFd rootfs_tree;  // detached mount clone of it, attached by the child
    std::unique_ptr<state::ContainerDir> dir;
    state::Record rec;
    std::unique_ptr<cgroups::Manager> cg;
    pid_t pid = 0;
    UniqueFd pidfd;
    UniqueFd console;                     // pty master kept for a foreground run
    std::vector<UniqueFd> volume_mounts;  // detached mounts (volumes, idmapped binds), attached by the child
};

// Fills `c` step by step (arming it once there is something to undo); what was made is undone when it
// throws and `c` goes out of scope.
void do_create(const Globals& g, const CreateOpts& o, Created& c);
// Writes the exec fifo; returns the read end of the exec status fifo for await_exec.
UniqueFd release_init(const state::ContainerDir& dir, const std::string& id);
// Blocks until the init has exec'ed the program; throws with the init's reason when it did not.
void await_exec(UniqueFd status, const std::string& id);
void run_poststart(const state::Record& r, const std::string& status);
// Kill what is left, remove cgroup and volumes, run poststop hooks, remove the state directory.
void destroy(state::ContainerDir& dir, state::Record& rec);
void close_volumes(const std::string& id, const std::string& state_dir);
bool is_frozen(const state::Record& r);
void write_pid_file_at(const std::string& path, pid_t pid);
// What a foreground `run` or `exec` passes on to the container's process (taken through a signalfd).
sigset_t forwarded_signals();
// A foreground process: copies between the terminal and the pty master (if any), passes signals from
// sigfd on, and returns its exit code (128 + signal when killed).
int wait_foreground(pid_t pid, int pidfd, int master, int sigfd);

}  // namespace trustme::container
