#include "runtime/process/sync.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "base/error.hpp"

namespace trustme::process::sync {
namespace {
struct Header {
    uint32_t type;
    int32_t code;  // Msg::Error: errno
};
constexpr size_t kMax = 4096;
}  // namespace

int send_with_fd(int sock, const void* data, size_t size, int fd) noexcept {
    struct iovec iov = {const_cast<void*>(data), size};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0) {
        msg.msg_control = cbuf;
        msg.msg_controllen = sizeof cbuf;
        struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    while (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
        if (errno != EINTR) return errno;
    return 0;
}

int try_send(int sock, Msg type, std::string_view text, int fd, int code) noexcept {
    char buf[kMax];
    Header h{static_cast<uint32_t>(type), code};
    size_t n = std::min(text.size(), kMax - sizeof h);
    std::memcpy(buf, &h, sizeof h);
    if (n) std::memcpy(buf + sizeof h, text.data(), n);  // an empty view may have a null data(): UB for memcpy
    return send_with_fd(sock, buf, sizeof h + n, fd);
}

void send(int sock, Msg type, std::string_view text, int fd, int code) {
    if (int err = try_send(sock, type, text, fd, code)) fail(err, "sync: send");
}

void send_error(int sock, const std::exception& e) noexcept { try_send(sock, Msg::Error, e.what(), -1, error_code(e)); }

bool recv(int sock, Packet& out) {
    char buf[kMax];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t n;
    while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0) {
        if (errno == EINTR) continue;
        if (errno == ECONNRESET) return false;
        fail_errno("sync: receive");
    }
    out.fd.reset();
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
            out.fd.reset(fd);
        }
    if (n == 0) return false;
    if (static_cast<size_t>(n) < sizeof(Header)) fail("sync: short message");
    Header h;
    std::memcpy(&h, buf, sizeof h);
    out.type = static_cast<Msg>(h.type);
    out.code = h.code;
    out.text.assign(buf + sizeof h, static_cast<size_t>(n) - sizeof h);
    return true;
}

}  // namespace trustme::process::sync
