#include "attest/net.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>

#include <algorithm>
#include <cstring>

#include "base/error.hpp"

namespace trustme::attest::net {
namespace {

// Pending connections the kernel queues for us (capped by net.core.somaxconn).
constexpr int kBacklog = 1024;

bool is_unix(const std::string& addr, std::string* path) {
    if (addr.rfind("unix:", 0) == 0) {
        *path = addr.substr(5);
        return true;
    }
    if (!addr.empty() && addr[0] == '/') {
        *path = addr;
        return true;
    }
    return false;
}

sockaddr_un unix_addr(const std::string& path, const std::string& addr) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(sa.sun_path)) fail(addr + ": unix socket path empty or too long");
    memcpy(sa.sun_path, path.data(), path.size());
    return sa;
}

struct AddrInfo {
    addrinfo* ai = nullptr;
    ~AddrInfo() {
        if (ai) freeaddrinfo(ai);
    }
};

void resolve(const std::string& addr, bool passive, AddrInfo& out) {
    auto colon = addr.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == addr.size())
        fail(addr + ": expected HOST:PORT, unix:/path or /path");
    std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &out.ai);
    if (rc != 0) fail(addr + ": " + gai_strerror(rc));
}

}  // namespace

void set_timeouts(int fd, int seconds) {
    timeval tv{seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

UniqueFd listen_on(const std::string& addr) {
    std::string path;
    if (is_unix(addr, &path)) {
        sockaddr_un sa = unix_addr(path, addr);
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) fail_errno(addr + ": socket");
        struct stat st {};
        // Replace a stale socket left by a killed server, never any other kind of file.
        if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) fail_errno(addr + ": bind");
        if (::listen(fd.get(), kBacklog) < 0) fail_errno(addr + ": listen");
        return fd;
    }
    AddrInfo ai;
    resolve(addr, true, ai);
    int err = 0;
    for (addrinfo* p = ai.ai; p; p = p->ai_next) {
        UniqueFd fd(::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol));
        if (!fd) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd.get(), p->ai_addr, p->ai_addrlen) == 0 && ::listen(fd.get(), kBacklog) == 0) return fd;
        err = errno;
    }
    fail(err ? err : EADDRNOTAVAIL, addr + ": listen");
}

UniqueFd connect_to(const std::string& addr) {
    std::string path;
    if (is_unix(addr, &path)) {
        sockaddr_un sa = unix_addr(path, addr);
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) fail_errno(addr + ": socket");
        if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) fail_errno(addr + ": connect");
        set_timeouts(fd.get(), 30);
        return fd;
    }
    AddrInfo ai;
    resolve(addr, false, ai);
    int err = 0;
    for (addrinfo* p = ai.ai; p; p = p->ai_next) {
        UniqueFd fd(::socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol));
        if (!fd) {
            err = errno;
            continue;
        }
        set_timeouts(fd.get(), 30);
        if (::connect(fd.get(), p->ai_addr, p->ai_addrlen) == 0) return fd;
        err = errno;
    }
    fail(err ? err : ECONNREFUSED, addr + ": connect");
}

Channel::Channel(const std::string& addr, const tls::Context* tls) : addr_(addr), fd_(connect_to(addr)) {
    if (!tls) return;
    ssl_ = tls->wrap(fd_.get());
    int r = SSL_connect(ssl_.get());
    if (r != 1) fail(addr_ + ": TLS handshake: " + tls::Context::failure(ssl_.get(), r));
}

void Channel::fail_io(const char* what, int ret) {
    int e = SSL_get_error(ssl_.get(), ret);
    // A TLS 1.3 server judges the client's certificate after the client's side of the handshake is done:
    // its refusal arrives as an alert, or as a reset of the connection, at the next read or write.
    if (e == SSL_ERROR_SYSCALL && (errno == ECONNRESET || errno == EPIPE))
        fail(addr_ +
             ": TLS: the server closed the connection after the handshake (it did not accept this "
             "client's certificate, see its log)");
    if (e == SSL_ERROR_SYSCALL && errno) fail_errno(addr_ + ": " + what);
    fail(addr_ + ": TLS: " + tls::Context::failure(ssl_.get(), ret));
}

size_t Channel::read(char* buf, size_t n) {
    for (;;) {
        if (ssl_) {
            ERR_clear_error();
            errno = 0;
            int r = SSL_read(ssl_.get(), buf, static_cast<int>(std::min<size_t>(n, INT32_MAX)));
            if (r > 0) return static_cast<size_t>(r);
            if (SSL_get_error(ssl_.get(), r) == SSL_ERROR_ZERO_RETURN) return 0;
            fail_io("read", r);
        }
        ssize_t r = ::read(fd_.get(), buf, n);
        if (r >= 0) return static_cast<size_t>(r);
        if (errno != EINTR) fail_errno(addr_ + ": read");
    }
}

void Channel::write_all(std::string_view data) {
    while (!data.empty()) {
        if (ssl_) {
            ERR_clear_error();
            errno = 0;
            int r = SSL_write(ssl_.get(), data.data(), static_cast<int>(std::min<size_t>(data.size(), INT32_MAX)));
            if (r <= 0) fail_io("write", r);
            data.remove_prefix(static_cast<size_t>(r));
            continue;
        }
        ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_errno(addr_ + ": write");
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
}

std::string read_line(Channel& ch, size_t max, const std::string& what) {
    Reader r(ch, what);
    std::string out;
    if (!r.line(&out, max)) fail(what + ": connection closed without a message");
    return out;
}

bool Reader::line(std::string* out, size_t max) {
    size_t scanned = pos_;
    for (;;) {
        auto nl = buf_.find('\n', scanned);
        if (nl != std::string::npos) {
            if (nl - pos_ > max) fail(what_ + ": message larger than " + std::to_string(max) + " bytes");
            out->assign(buf_, pos_, nl - pos_);
            pos_ = nl + 1;
            return true;
        }
        if (buf_.size() - pos_ > max) fail(what_ + ": message larger than " + std::to_string(max) + " bytes");
        // Drop what was consumed before reading more, so the buffer holds at most one line.
        buf_.erase(0, pos_);
        pos_ = 0;
        scanned = buf_.size();
        char chunk[65536];
        size_t n = ch_.read(chunk, sizeof chunk);
        if (n == 0) {
            if (buf_.empty()) return false;
            fail(what_ + ": connection closed inside a message");
        }
        buf_.append(chunk, n);
    }
}

bool is_local(const std::string& addr) {
    std::string path;
    if (is_unix(addr, &path)) return true;
    AddrInfo ai;
    resolve(addr, true, ai);
    for (addrinfo* p = ai.ai; p; p = p->ai_next) {
        if (p->ai_family == AF_INET) {
            auto* sa = reinterpret_cast<sockaddr_in*>(p->ai_addr);
            if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127) return false;
        } else if (p->ai_family == AF_INET6) {
            auto* sa = reinterpret_cast<sockaddr_in6*>(p->ai_addr);
            if (!IN6_IS_ADDR_LOOPBACK(&sa->sin6_addr)) return false;
        } else {
            return false;
        }
    }
    return true;
}

std::string peer_key(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
        char buf[INET6_ADDRSTRLEN] = {};
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
            return std::string("ip:") + buf;
        }
        if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
            return std::string("ip:") + buf;
        }
    }
    ucred cr{};
    socklen_t cl = sizeof cr;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) return "uid:" + std::to_string(cr.uid);
    return "unknown";
}

}  // namespace trustme::attest::net
