#include "runtime/container/notify.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "base/error.hpp"
#include "base/strings.hpp"

namespace trustme::container::notify {
namespace {

constexpr const char* kInContainer = "/run/notify/notify.sock";

const char* host_socket() {
    const char* s = std::getenv("NOTIFY_SOCKET");
    return s && *s ? s : nullptr;
}

// "@name" is an abstract socket (sd_notify(3)).
socklen_t address(const std::string& path, sockaddr_un& sa, const std::string& what) {
    sa = {};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) fail(what + " " + path + ": path too long for a unix socket");
    std::memcpy(sa.sun_path, path.data(), path.size());
    if (path[0] == '@') sa.sun_path[0] = 0;
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
}

}  // namespace

void setup_spec(oci::Config& cfg, const state::ContainerDir& dir) {
    if (!host_socket() || !cfg.process) return;
    if (::mkdirat(dir.fd(), "notify", 0755) < 0 && errno != EEXIST)
        fail_errno("NOTIFY_SOCKET: mkdir " + dir.path() + "/notify");
    oci::Mount m;
    m.destination = "/run/notify";
    m.type = "bind";
    m.source = dir.path() + "/notify";
    m.options = {"bind", "nosuid", "noexec", "nodev", "ro"};
    cfg.mounts.push_back(oci::parse_mount_options(std::move(m), "NOTIFY_SOCKET"));
    cfg.process->env.push_back(std::string("NOTIFY_SOCKET=") + kInContainer);
}

UniqueFd bind(const state::ContainerDir& dir) {
    if (!host_socket()) return UniqueFd();
    struct stat st;
    if (::fstatat(dir.fd(), "notify", &st, 0) < 0) return UniqueFd();  // create ran without NOTIFY_SOCKET
    std::string path = dir.path() + "/notify/notify.sock";
    UniqueFd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) fail_errno("NOTIFY_SOCKET: socket");
    sockaddr_un sa;
    socklen_t len = address(path, sa, "NOTIFY_SOCKET:");
    ::unlink(path.c_str());
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), len) < 0) fail_errno("NOTIFY_SOCKET: bind " + path);
    // Any user the container runs as may notify (runc makes it 0777 too).
    if (::chmod(path.c_str(), 0777) < 0) fail_errno("NOTIFY_SOCKET: chmod " + path);
    return s;
}

void remove(const state::ContainerDir& dir) noexcept {
    ::unlinkat(dir.fd(), "notify/notify.sock", 0);
    ::unlinkat(dir.fd(), "notify", AT_REMOVEDIR);
}

void forward(int sock, pid_t pid, uint64_t pid_start) {
    const char* host = host_socket();
    if (sock < 0 || !host) return;
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd || state::proc_info(pid).start != pid_start) return;  // the init is gone already
    std::string ready;
    for (;;) {
        pollfd p[2] = {{sock, POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            fail_errno("NOTIFY_SOCKET: poll");
        }
        if (p[0].revents & POLLIN) {
            char buf[4096];
            ssize_t n = ::recv(sock, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                // One datagram per sd_notify() call; its READY= line is what is forwarded.
                for (auto& line : split(std::string_view(buf, static_cast<size_t>(n)), '\n'))
                    if (line.rfind("READY=", 0) == 0) ready = line;
                if (!ready.empty()) break;
            }
            continue;
        }
        if (p[1].revents) return;  // the init exited without notifying
    }
    UniqueFd out(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!out) fail_errno("NOTIFY_SOCKET: socket");
    sockaddr_un sa;
    socklen_t len = address(host, sa, "NOTIFY_SOCKET");
    std::string msg = ready + "\nMAINPID=" + std::to_string(pid) + "\n";
    if (::sendto(out.get(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&sa), len) < 0)
        fail_errno(std::string("NOTIFY_SOCKET: send to ") + host);
}

}  // namespace trustme::container::notify
