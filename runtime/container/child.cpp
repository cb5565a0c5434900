#include "runtime/container/child.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "base/error.hpp"

namespace trustme::container {

SetupPeer::SetupPeer(ChildWords words) : words_(words) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) fail_errno("socketpair");
    ours_.reset(pair[0]);
    child_.reset(pair[1]);
}

void SetupPeer::tell(process::sync::Msg type, std::string_view text) const {
    // The child may be killed at any step: the error says so.
    if (process::sync::try_send(ours_.get(), type, text) != 0) fail(words_.gone);
}

void SetupPeer::fail_on(const process::sync::Packet* packet) const {
    if (!packet) fail(words_.gone);
    if (packet->type == process::sync::Msg::Error) throw Error(words_.prefix + packet->text, packet->code);
    fail(words_.unexpected);
}

process::sync::Packet SetupPeer::expect(process::sync::Msg type) const {
    process::sync::Packet packet;
    if (!process::sync::recv(ours_.get(), packet)) fail_on(nullptr);
    if (packet.type != type) fail_on(&packet);
    return packet;
}

void SetupPeer::serve(const SetupHandlers& handlers) const {
    for (;;) {
        process::sync::Packet packet;
        if (!process::sync::recv(ours_.get(), packet)) fail_on(nullptr);
        switch (packet.type) {
            case process::sync::Msg::Ready: return;
            case process::sync::Msg::HooksRequest:
                if (!handlers.hooks) break;
                handlers.hooks();
                tell(process::sync::Msg::HooksDone);
                continue;
            case process::sync::Msg::ConsoleFd:
                if (!handlers.console) break;
                handlers.console(std::move(packet.fd), packet.text);
                continue;
            case process::sync::Msg::SeccompFd:
                if (!handlers.seccomp) break;
                handlers.seccomp(std::move(packet.fd));
                continue;
            default: break;
        }
        fail_on(&packet);
    }
}

void send_console_fd(const std::string& socket_path, int master, const std::string& name) {
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!sock) fail_errno("console socket");
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof addr.sun_path) fail("--console-socket: path too long");
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size());
    if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
        fail_errno("connect to console socket " + socket_path);
    // runc's protocol (utils.SendFd): the pty name as data, the master as SCM_RIGHTS.
    if (int err = process::sync::send_with_fd(sock.get(), name.data(), name.size(), master))
        fail(err, "send pty to console socket");
}

}  // namespace trustme::container
