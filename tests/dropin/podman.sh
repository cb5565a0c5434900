#!/bin/bash
# Drop-in test: podman + conmon (private root, runroot, tmpdir, containers.conf) with RUNTIME.
#   tests/dropin/podman.sh [RUNTIME] [CGROUP_DRIVER]   (defaults: runc, cgroupfs; the driver may be systemd)
# Run by a non-root user it tests rootless podman (subuid/subgid ranges needed; with the systemd driver, the
# user's systemd instance reachable on its D-Bus, as in a login session or with lingering enabled).
NAME=podman
. "$(dirname "$0")/lib.sh"
RT=$(resolve_runtime "${1:-runc}")
DRIVER=${2:-cgroupfs}
[ -x "$RT" ] || { echo "FAIL setup: runtime ${1:-runc} is not an executable"; rm -rf "$T"; exit 1; }
case $DRIVER in cgroupfs | systemd) ;; *) echo "FAIL setup: cgroup driver $DRIVER (cgroupfs or systemd)"; rm -rf "$T"; exit 1 ;; esac
ROOTLESS=0
[ "$(id -u)" = 0 ] || ROOTLESS=1
NAME="podman ($DRIVER$([ "$ROOTLESS" = 1 ] && echo ', rootless'))"
for t in podman conmon script; do
    command -v $t >/dev/null || { echo "SKIP: $t missing"; rm -rf "$T"; exit 77; }
done

# Root's bounding set lacks CAP_SYS_RESOURCE, so podman's default ulimits (nofile and nproc above this
# host's hard limits) cannot be set: cap them at the hard limits in a private containers.conf.
# Lowering a limit never needs a capability; raising a hard limit does (values equal to this shell's hard
# limits still failed with EPERM in the container's init, so stay well below them).
NOFILE=1024
NPROC=4096
cat >"$T/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
netns = "none"
[engine]
cgroup_manager = "$DRIVER"
events_logger = "file"
events_logfile_path = "$T/events.log"
CONF
cat >"$T/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$T/storage"
runroot = "$T/runroot"
CONF
export CONTAINERS_CONF=$T/containers.conf
export CONTAINERS_STORAGE_CONF=$T/storage.conf
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
: >"$T/registries.conf"
# podman's runtime directory: a private one, except rootless with the user's own (its systemd instance's
# bus is there; podman hands XDG_RUNTIME_DIR, not DBUS_SESSION_BUS_ADDRESS, on to conmon and the runtime)
if [ "$ROOTLESS" = 0 ] || [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    export XDG_RUNTIME_DIR=$T/xdg
    mkdir -p "$XDG_RUNTIME_DIR"
    chmod 700 "$XDG_RUNTIME_DIR"
fi
# rootless: the process that keeps podman's user namespace open, stopped at the end if we started it
PAUSE_PID_FILE=$XDG_RUNTIME_DIR/libpod/tmp/pause.pid
PAUSE_EXISTED=0
[ -f "$PAUSE_PID_FILE" ] && PAUSE_EXISTED=1

P=(podman --root "$T/storage" --runroot "$T/runroot" --tmpdir "$T/tmp" --storage-driver vfs
   --runtime "$RT" --cgroup-manager "$DRIVER" --events-backend file)
IMG=localhost/busybox:dropin
# cgroupfs as root: conmon and the containers go under a private cgroup parent (podman's default is
# /libpod_parent); systemd: podman's default slice (machine.slice, or the user's), whose scopes systemd removes
CGPARENT=/$(basename "$T")
RUNF=(run --network none)
[ "$DRIVER" = cgroupfs ] && [ "$ROOTLESS" = 0 ] && RUNF+=(--cgroup-parent "$CGPARENT")

cleanup() {
    set +e
    timeout -k 5 60 "${P[@]}" rm -af -t 0 >/dev/null 2>&1
    # rootless: the layers hold files of the subordinate ids, which only the user namespace may remove
    [ "$ROOTLESS" = 1 ] && timeout -k 5 60 "${P[@]}" unshare rm -rf "$T/storage" "$T/runroot" >/dev/null 2>&1
    # conmon and any container process left behind name our private dirs on their command line
    for p in $(pids_with_arg "$T/"); do kill_pid "$p"; done
    [ "$PAUSE_EXISTED" = 0 ] && [ -f "$PAUSE_PID_FILE" ] && kill_pid "$(cat "$PAUSE_PID_FILE")"
    umount_under
    rm_cgroup_tree "${CGPARENT#/}"
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT

make_rootfs "$T/rootfs"
tar -C "$T/rootfs" --numeric-owner --owner=0 --group=0 -cf "$T/rootfs.tar" .
b 120 "${P[@]}" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/sh"]' "$T/rootfs.tar" "$IMG"
[ "$RC" -eq 0 ] || { bad "podman import" "$(short "$OUT")"; summary; exit 1; }
ok "podman import"

b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" echo hello-from-podman
expect_out "podman run: echo" hello-from-podman

b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" sh -c 'exit 7'
expect_rc "podman run: exit code propagated" 7

b 60 script -qec "${P[*]} ${RUNF[*]} --rm -t $IMG sh -c '[ -t 0 ] && echo stdin-is-tty; tty'" /dev/null
expect_out "podman run -t: tty" stdin-is-tty

b 60 "${P[@]}" "${RUNF[@]}" --rm --cap-add SYS_ADMIN "$IMG" sh -c 'grep "^Seccomp:" /proc/self/status; swapoff /nonexistent'
if printf '%s' "$OUT" | grep -q 'Seccomp:[[:space:]]*2' && printf '%s' "$OUT" | grep -q 'Operation not permitted'; then
    ok "default seccomp profile applied (swapoff denied with EPERM)"
else
    bad "default seccomp profile applied (swapoff denied with EPERM)" "rc=$RC $(short "$OUT")"
fi
b 60 "${P[@]}" "${RUNF[@]}" --rm --cap-add SYS_ADMIN --security-opt seccomp=unconfined "$IMG" sh -c 'grep "^Seccomp:" /proc/self/status; swapoff /nonexistent'
# (rootless, swapoff fails with EPERM anyway: CAP_SYS_ADMIN is checked in the initial user namespace)
if printf '%s' "$OUT" | grep -q 'Seccomp:[[:space:]]*0' && { [ "$ROOTLESS" = 1 ] || ! printf '%s' "$OUT" | grep -q 'Operation not permitted'; }; then
    ok "seccomp=unconfined: no filter"
else
    bad "seccomp=unconfined: no filter" "rc=$RC $(short "$OUT")"
fi

b 60 "${P[@]}" "${RUNF[@]}" -d --name long "$IMG" sh -c 'trap "exit 143" TERM; echo started; while :; do sleep 0.2; done'
expect_rc "podman run -d" 0

status() { timeout -k 5 30 "${P[@]}" inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }
wait_status() {
    local i
    for i in $(seq 1 100); do [ "$(status "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
if wait_status long running; then ok "container running"; else bad "container running" "status $(status long)"; fi

b 60 "${P[@]}" exec long sh -c 'echo exec-ok'
expect_out "podman exec" exec-ok
b 60 "${P[@]}" exec long sh -c 'exit 3'
expect_rc "podman exec: exit code" 3
b 60 script -qec "${P[*]} exec -t long sh -c '[ -t 0 ] && echo exec-tty'" /dev/null
expect_out "podman exec -t" exec-tty

# podman top reads /proc of every process in the container and gives up when one exits meanwhile ("read
# /proc/N/cmdline: no such process": the loop's short-lived sleeps; seen under TCG): three tries
for _ in 1 2 3; do
    b 60 "${P[@]}" top long
    [ "$RC" -eq 0 ] && break
done
if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -q sleep; then ok "podman top"; else bad "podman top" "rc=$RC $(short "$OUT")"; fi

b 60 "${P[@]}" pause long
if [ "$RC" -eq 0 ] && wait_status long paused; then ok "podman pause"; else bad "podman pause" "rc=$RC status $(status long) $(short "$OUT")"; fi
b 60 "${P[@]}" unpause long
if [ "$RC" -eq 0 ] && wait_status long running; then ok "podman unpause"; else bad "podman unpause" "rc=$RC status $(status long) $(short "$OUT")"; fi

b 60 "${P[@]}" stats --no-stream --format '{{.Name}} {{.MemUsage}} {{.PIDs}}' long
if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -q '^long '; then ok "podman stats --no-stream"; else bad "podman stats --no-stream" "rc=$RC $(short "$OUT")"; fi

b 60 "${P[@]}" stop -t 10 long
code=$(timeout -k 5 30 "${P[@]}" inspect -f '{{.State.ExitCode}}' long 2>/dev/null)
if [ "$RC" -eq 0 ] && [ "$(status long)" = exited ] && [ "$code" = 143 ]; then ok "podman stop (SIGTERM, exit 143)"
else bad "podman stop (SIGTERM, exit 143)" "rc=$RC status $(status long) exit $code $(short "$OUT")"; fi

b 60 "${P[@]}" start long
if [ "$RC" -eq 0 ] && wait_status long running; then ok "podman start (restart a stopped container)"; else bad "podman start (restart a stopped container)" "rc=$RC status $(status long) $(short "$OUT")"; fi
b 60 "${P[@]}" kill long
if [ "$RC" -eq 0 ] && wait_status long exited; then ok "podman kill"; else bad "podman kill" "rc=$RC status $(status long) $(short "$OUT")"; fi

b 60 "${P[@]}" rm long
expect_rc "podman rm" 0

summary
[ "$FAIL" -eq 0 ]
