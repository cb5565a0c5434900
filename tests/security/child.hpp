// Run a function in a forked child and report how it ended; the child's security state (filters,
// capabilities, personality) never leaks into the test process.
#pragma once
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace trustme::testing {

struct ChildResult {
    bool exited = false;
    int code = -1;   // exit status when exited
    int signal = 0;  // terminating signal otherwise
};

// Waits at most `limit`, then kills the child by its PID.
inline ChildResult wait_child(pid_t pid, std::chrono::seconds limit = std::chrono::seconds(20)) {
    ChildResult r;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0) return r;
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (WIFEXITED(status)) {
        r.exited = true;
        r.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        r.signal = WTERMSIG(status);
    }
    return r;
}

// fn returns the exit code; an exception exits with 100 after writing what() to stderr.
inline pid_t spawn(const std::function<int()>& fn) {
    pid_t pid = fork();
    if (pid == 0) {
        int code;
        try {
            code = fn();
        } catch (const std::exception& e) {
            fprintf(stderr, "child: %s\n", e.what());
            code = 100;
        }
        // exit_group directly, not _exit: before a call to a noreturn function ASan runs
        // __asan_handle_no_return, whose sigaltstack() the allow-list filters under test deny.
        for (;;) syscall(SYS_exit_group, code);
    }
    return pid;
}

inline ChildResult run_child(const std::function<int()>& fn) { return wait_child(spawn(fn)); }

// "CapEff:\t000001fffeffffff" → the hex value of that line in /proc/<pid or self>/status.
inline unsigned long long status_hex(const std::string& status, const std::string& key) {
    auto pos = status.find(key + ":");
    if (pos == std::string::npos) return ~0ULL;
    return std::stoull(status.substr(pos + key.size() + 1), nullptr, 16);
}

inline std::string read_file(const std::string& path) {
    std::ifstream f(path);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace trustme::testing
