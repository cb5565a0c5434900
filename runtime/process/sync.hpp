// Parent ↔ container-init handshake over a SOCK_SEQPACKET socketpair: one message per packet, with an
// optional fd (SCM_RIGHTS). EOF means the other side died.
#pragma once
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "base/fd.hpp"

namespace trustme::process::sync {

enum class Msg : uint32_t {
    Go = 1,            // parent → child: maps written, cgroup joined; text = child's pid in the runtime's pid ns
    HooksRequest = 2,  // child → parent: mounts done; run prestart + createRuntime hooks now
    HooksDone = 3,     // parent → child
    Ready = 4,         // child → parent: set up, waiting for start
    Error = 5,         // child → parent: text = one-line reason, code = its errno (0 when none)
    SeccompFd = 6,     // child → parent: the seccomp notify listener fd
    ConsoleFd = 7,     // child → parent: the pty master
    Pid = 8,           // exec helper → parent: the process it made for us (text = pid, fd = its pidfd)
};

struct Packet {
    Msg type{};
    int code = 0;  // Msg::Error: the errno of the failure, 0 when none
    std::string text;
    UniqueFd fd;  // the fd that came with it, if any
};

void send(int sock, Msg type, std::string_view text = {}, int fd = -1, int code = 0);
// send for a child that must not throw (one cloned from a process with cleanup of its own to unwind):
// 0, or the errno of sendmsg.
int try_send(int sock, Msg type, std::string_view text = {}, int fd = -1, int code = 0) noexcept;
// Msg::Error with the exception's text and code (error_code), never throwing: the parent rethrows it as the
// same Error.
void send_error(int sock, const std::exception& e) noexcept;
// Returns false on EOF (peer gone).
bool recv(int sock, Packet& out);

// One sendmsg of `size` bytes with `fd` (when >= 0) as SCM_RIGHTS, EINTR retried, never SIGPIPE: 0 or the
// errno. The one place an fd is passed: the handshake above, the console socket (runc's utils.SendFd
// protocol: the pty name as data).
int send_with_fd(int sock, const void* data, size_t size, int fd) noexcept;

}  // namespace trustme::process::sync
