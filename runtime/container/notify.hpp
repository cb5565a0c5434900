// NOTIFY_SOCKET as runc passes it through (runc notify_socket.go): the container gets its own socket, the
// runtime forwards the container's READY=1 (with MAINPID=<init pid>) to the caller's socket, so a
// systemd unit or `podman run --sdnotify=container` learns when the program inside is ready.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "oci/config.hpp"
#include "base/fd.hpp"
#include "runtime/state/state.hpp"

namespace trustme::container::notify {

// create/run with NOTIFY_SOCKET set: <state>/notify is bind-mounted read-only at /run/notify and the
// process gets NOTIFY_SOCKET=/run/notify/notify.sock.
void setup_spec(oci::Config& cfg, const state::ContainerDir& dir);
// start/run, before the init is released: binds <state>/notify/notify.sock when create set it up and
// NOTIFY_SOCKET is set; an empty fd otherwise.
UniqueFd bind(const state::ContainerDir& dir);
// delete: the socket and its directory (the state directory's removal takes files only).
void remove(const state::ContainerDir& dir) noexcept;
// After start: wait for the container's READY=1, or for its init to exit, and forward it to NOTIFY_SOCKET.
void forward(int sock, pid_t pid, uint64_t pid_start);

}  // namespace trustme::container::notify
