// Process security settings applied in the container init between clone and exec: seccomp, capabilities,
// LSM labels (SELinux, AppArmor), personality, I/O priority and scheduler.
//
// Split of work: everything that parses, validates or compiles runs in the parent before clone
// (compile_seccomp, parse_capabilities, validate_process_extras); the apply_* / load_* functions run in
// the single-threaded child and only make the few syscalls they need.
//
// Order in the child (mirrors runc's standard_init_linux.go):
//   apply_personality, apply_io_priority, apply_scheduler   (any time before exec)
//   set_exec_label / apply_apparmor                         (take effect at the next execve)
//   apply_bounding(caps)                                    (while still privileged)
//   [no NNP] load_seccomp(prog)                             (needs CAP_SYS_ADMIN without no_new_privs)
//   prctl(PR_SET_KEEPCAPS,1); setresgid/setgroups/setresuid
//   apply_after_user_switch(caps)
//   [NNP] prctl(PR_SET_NO_NEW_PRIVS,1); load_seccomp(prog)   (as late as possible)
//   hand the listener fd (if != -1) to the parent, execve
// The child must pass the listener fd to the parent with syscalls other than write(2): compile_seccomp
// refuses SCMP_ACT_NOTIFY on "write" as runc does, any other syscall the hand-over uses must not be
// notified either (it would wait on a listener nobody holds yet).
#pragma once
#include <linux/filter.h>
#include <sys/capability.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace trustme::security {

// ---- seccomp (libseccomp) ----
struct SeccompProgram {
    std::vector<sock_filter> bpf;   // the complete classic-BPF program, ready for SECCOMP_SET_MODE_FILTER
    unsigned int flags = 0;         // SECCOMP_FILTER_FLAG_* (NEW_LISTENER set when uses_notify)
    bool uses_notify = false;       // some rule has SCMP_ACT_NOTIFY
    std::string listener_path;      // linux.seccomp.listenerPath
    std::string listener_metadata;  // linux.seccomp.listenerMetadata
    bool empty() const { return bpf.empty(); }
};

// Parse + validate linux.seccomp (errors name the JSON path:
// "linux.seccomp.syscalls[3].action: unknown action SCMP_ACT_FOO") and compile it to BPF. Runs in the
// parent. A null/absent json gives an empty program. Syscall names unknown on this kernel/arch are
// skipped with a debug log.
SeccompProgram compile_seccomp(const nlohmann::json& seccomp);

// compile_seccomp with a cache of compiled programs, for the start path: libseccomp needs 25-110 ms on
// this machine for a docker/podman default profile with its three x86 arches, about what crun's whole
// `run` costs; a cache hit reads one small file (~0.1 ms). cache_dir (e.g. "<--root>/seccomp-cache") is
// created 0700 if missing and its parent exists; it and its entries are used only when owned by the
// effective uid and not writable by group/others, else we compile without caching. At most 256 entries,
// then it starts over. Key: SHA-256 over the seccomp JSON, the libseccomp version, the kernel release and
// a format version. An empty cache_dir disables caching.
SeccompProgram compile_seccomp_cached(const nlohmann::json& seccomp, const std::string& cache_dir);

// In the child, as late as possible before exec. Returns the notify listener fd (O_CLOEXEC, set by the
// kernel) or -1. An empty program is a no-op returning -1.
int load_seccomp(const SeccompProgram&);

// runc's protocol: connect to listenerPath, send the container state JSON (with "fds":["seccompFd"]
// and "metadata": listenerMetadata) and the fd via SCM_RIGHTS. Called by the runtime parent after
// receiving the fd from the child. `state` is the OCI state object of the container.
void send_seccomp_listener(const SeccompProgram&, int notify_fd, const nlohmann::json& state);

// The seccomp part of features.json (runtime-spec features-linux.md "Seccomp"): enabled, actions,
// operators, archs (the OCI names this libseccomp supports), knownFlags, supportedFlags (probed on this
// kernel).
nlohmann::json seccomp_features();

// ---- capabilities (libcap) ----
struct Capabilities {
    std::vector<cap_value_t> bounding, effective, inheritable, permitted, ambient;
    bool present = false;  // process.capabilities was given; when false the apply functions are no-ops
};
// Unknown name → "process.capabilities.bounding[2]: unknown capability CAP_FOO". Names libcap knows but
// this kernel does not (above /proc/sys/kernel/cap_last_cap) are skipped with a debug log, as runc does.
Capabilities parse_capabilities(const nlohmann::json& caps);
namespace detail {
// The same, with the warnings for ignored names on or off (validate_process_extras checks quietly, so each
// warning is printed once).
Capabilities parse_capabilities(const nlohmann::json& caps, bool warn);
}  // namespace detail
// Every capability name known to libcap and this kernel ("CAP_CHOWN", ...): features.json linux.capabilities.
std::vector<std::string> known_capabilities();
void apply_bounding(const Capabilities&);           // before switching user (drops from the bounding set)
void apply_after_user_switch(const Capabilities&);  // effective/permitted/inheritable/ambient after setresuid
                                                    // (the caller sets prctl(PR_SET_KEEPCAPS,1) before setresuid)

// ---- LSM labels ----
bool selinux_enabled();                         // selinuxfs mounted (/sys/fs/selinux/enforce exists)
void set_exec_label(const std::string& label);  // process.selinuxLabel via /proc/thread-self/attr/exec;
                                                // ignored (debug log) when SELinux is not enabled
std::string mount_label_option(const std::string& mount_label);  // ",context=\"...\"" or "" when not enabled
bool apparmor_enabled();
void apply_apparmor(const std::string& profile);  // AppArmor exec profile; ignored (debug log) when absent

// ---- misc ----
void apply_personality(const nlohmann::json& personality);  // linux.personality
void apply_io_priority(const nlohmann::json& io_priority);  // process.ioPriority
void apply_scheduler(const nlohmann::json& scheduler);      // process.scheduler (sched_setattr)
// Parse-time validation of all of the above (capabilities, seccomp structure, personality, ioPriority,
// scheduler, label types), no side effects. `process` / `linux_` may be null.
void validate_process_extras(const nlohmann::json& process, const nlohmann::json& linux_);

}  // namespace trustme::security
