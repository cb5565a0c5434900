#include "hooks/hooks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/error.hpp"
#include "base/fd.hpp"
#include "base/log.hpp"

extern char** environ;

namespace trustme::hooks {
namespace {

int64_t now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

void run(const oci::Hook& hook, const std::string& state_json, const char* kind, char* const* inherit) {
    std::string what = std::string(kind) + " hook " + hook.path;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) fail_errno(what + ": pipe");
    UniqueFd rd(p[0]), wr(p[1]);

    std::vector<char*> argv, envp;
    // config.md: args has the same semantics as IEEE Std 1003.1-2008 execv's argv; empty args → path.
    std::string path0 = hook.path;
    if (hook.args.empty()) argv.push_back(path0.data());
    for (auto& a : hook.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : hook.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, rd.get(), 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Hooks must not inherit the runtime's blocked signals.
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    // A hook without "env" gets the runtime's environment (PATH among it), as runc and crun do: Go's exec.Cmd
    // with a nil Env inherits os.Environ(). An explicit "env": [] stays empty.
    int rc = posix_spawn(&pid, hook.path.c_str(), &fa, &attr, argv.data(),
                         hook.has_env ? envp.data()
                         : inherit    ? inherit
                                      : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) fail(rc, what);
    rd.reset();

    // The state goes on stdin; a hook that does not read it must not block us (EPIPE is fine).
    struct sigaction ign {
    }, old{};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
    size_t off = 0;
    while (off < state_json.size()) {
        ssize_t n = ::write(wr.get(), state_json.data() + off, state_json.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        off += static_cast<size_t>(n);
    }
    wr.reset();
    sigaction(SIGPIPE, &old, nullptr);

    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    int64_t deadline = hook.timeout ? now_ms() + int64_t(*hook.timeout) * 1000 : -1;
    bool timed_out = false;
    if (hook.timeout && pidfd) {
        for (;;) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                timed_out = true;
                break;
            }
            struct pollfd pfd = {pidfd.get(), POLLIN, 0};
            int r = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, INT32_MAX)));
            if (r > 0) break;
            if (r < 0 && errno != EINTR) break;
        }
        if (timed_out) ::kill(pid, SIGKILL);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) fail(what + ": timed out after " + std::to_string(*hook.timeout) + "s");
    if (WIFSIGNALED(status)) fail(what + ": killed by signal " + std::to_string(WTERMSIG(status)));
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fail(what + ": exit status " + std::to_string(WEXITSTATUS(status)));
}

void run_all(const std::vector<oci::Hook>& list, const std::string& state_json, const char* kind,
             char* const* inherit) {
    for (auto& h : list) run(h, state_json, kind, inherit);
}

void run_all_warn(const std::vector<oci::Hook>& list, const std::string& state_json, const char* kind) {
    for (auto& h : list) {
        try {
            run(h, state_json, kind);
        } catch (const Error& e) {
            log::warn(e.what());
        }
    }
}

}  // namespace trustme::hooks
