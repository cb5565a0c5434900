#!/bin/bash
# Drop-in test: podman + conmon with RUNTIME.
#   tests/dropin/podman.sh [RUNTIME] [CGROUP_DRIVER]   (defaults: runc, cgroupfs; the driver may be systemd)
#   tests/dropin/podman.sh --rootless [RUNTIME]
# Without --rootless podman gets a private root, runroot, tmpdir and containers.conf. Run by a non-root user
# it tests rootless podman that way (subuid/subgid ranges needed; with the systemd driver, the user's systemd
# instance reachable on its D-Bus, as in a login session or with lingering enabled).
# --rootless: a user is made for the test (home under the private temp dir, subordinate ids from useradd)
# and removed after it, and podman runs as that user with its defaults. podman runs the runtime as root of
# that user's namespace, without --root and without a user namespace in the config: the runtime must notice
# (state under $XDG_RUNTIME_DIR, devices bound, not made). On a host without cgroup delegation (cgroup v1,
# or v2 without systemd) podman runs those containers without cgroups, so pause, stats and limits are not
# part of that scenario.
MADE_USER=0
if [ "${1:-}" = --rootless ]; then
    MADE_USER=1
    shift
fi
NAME=podman
. "$(dirname "$0")/lib.sh"
RT=$(resolve_runtime "${1:-runc}")
DRIVER=${2:-cgroupfs}
[ -x "$RT" ] || { echo "FAIL setup: runtime ${1:-runc} is not an executable"; rm -rf "$T"; exit 1; }
case $DRIVER in cgroupfs | systemd) ;; *) echo "FAIL setup: cgroup driver $DRIVER (cgroupfs or systemd)"; rm -rf "$T"; exit 1 ;; esac
ROOTLESS=$MADE_USER
[ "$(id -u)" = 0 ] || ROOTLESS=1
tools="podman conmon script"
[ "$MADE_USER" = 1 ] && tools="$tools newuidmap setpriv useradd"
for t in $tools; do
    command -v $t >/dev/null || { echo "SKIP: $t missing"; rm -rf "$T"; exit 77; }
done

P=()
IMG=localhost/busybox:dropin
RUNF=(run --network none)
U= uid= CGPARENT= PAUSE_PID_FILE= PAUSE_EXISTED=1
if [ "$MADE_USER" = 1 ]; then
    NAME="podman (a user made for the test, rootless)"
    L="rootless "  # in the name of every check
    U=tmrl$$
else
    NAME="podman ($DRIVER$([ "$ROOTLESS" = 1 ] && echo ', rootless'))"
    L=
    # cgroupfs as root: conmon and the containers go under a private cgroup parent (podman's default is
    # /libpod_parent); systemd: podman's default slice (machine.slice, or the user's), whose scopes systemd
    # removes
    CGPARENT=/$(basename "$T")
    [ "$DRIVER" = cgroupfs ] && [ "$ROOTLESS" = 0 ] && RUNF+=(--cgroup-parent "$CGPARENT")
fi

cleanup() {
    set +e
    [ ${#P[@]} -gt 0 ] && timeout -k 5 60 "${P[@]}" rm -af -t 0 >/dev/null 2>&1
    if [ "$MADE_USER" = 1 ]; then
        # Whatever the user still runs (podman's pause process, conmon, containers): by PID.
        [ -n "$uid" ] && for p in $(pgrep -u "$uid"); do kill_pid "$p"; done
    elif [ "$ROOTLESS" = 1 ]; then
        # the layers hold files of the subordinate ids, which only the user namespace may remove
        timeout -k 5 60 "${P[@]}" unshare rm -rf "$T/storage" "$T/runroot" >/dev/null 2>&1
    fi
    # conmon and any container process left behind name our private dirs on their command line
    for p in $(pids_with_arg "$T/"); do kill_pid "$p"; done
    [ "$PAUSE_EXISTED" = 0 ] && [ -f "$PAUSE_PID_FILE" ] && kill_pid "$(cat "$PAUSE_PID_FILE")"
    umount_under
    rm_cgroup_tree "${CGPARENT#/}"
    [ -n "$U" ] && id "$U" >/dev/null 2>&1 && userdel "$U" >/dev/null 2>&1
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT

# --rootless: the user, and P running podman as it with a login-like environment and nothing else.
setup_made_user() {
    useradd -M -d "$T/home" -U -s /bin/sh "$U" || { echo "FAIL setup: useradd"; exit 1; }
    uid=$(id -u "$U")
    grep -q "^$U:" /etc/subuid || { echo "SKIP: useradd gave $U no subordinate ids"; exit 77; }
    mkdir -p "$T/home" "$T/xdg" "$T/bin"
    cp "$RT" "$T/bin/"
    chown -R "$U:$U" "$T/home" "$T/xdg"
    chmod 700 "$T/xdg"
    # $T/as CMD...: a script, so that timeout and script(1) can run it
    cat >"$T/as" <<EOF
#!/bin/sh
exec setpriv --reuid $uid --regid $uid --init-groups env -i HOME=$T/home USER=$U LOGNAME=$U \\
    XDG_RUNTIME_DIR=$T/xdg PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "\$@"
EOF
    chmod 755 "$T/as"
    P=("$T/as" podman --runtime "$T/bin/$(basename "$RT")")
}

# Otherwise: podman's configuration, storage and runtime directory all private to the test.
setup_private_podman() {
    # Root's bounding set lacks CAP_SYS_RESOURCE, so podman's default ulimits (nofile and nproc above this
    # host's hard limits) cannot be set: cap them at the hard limits in a private containers.conf.
    # Lowering a limit never needs a capability; raising a hard limit does (values equal to this shell's hard
    # limits still failed with EPERM in the container's init, so stay well below them).
    local nofile=1024 nproc=4096
    cat >"$T/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
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
}

if [ "$MADE_USER" = 1 ]; then setup_made_user; else setup_private_podman; fi

make_rootfs "$T/rootfs"
tar -C "$T/rootfs" --numeric-owner --owner=0 --group=0 -cf "$T/rootfs.tar" .
chmod 644 "$T/rootfs.tar"
b 180 "${P[@]}" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/sh"]' "$T/rootfs.tar" "$IMG"
[ "$RC" -eq 0 ] || { bad "${L}podman import" "$(short "$OUT")"; summary; exit 1; }
ok "${L}podman import"

b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" echo hello-from-podman
expect_out "${L}podman run: echo" hello-from-podman

b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" sh -c 'exit 7'
expect_rc "${L}podman run: exit code propagated" 7

if [ "$MADE_USER" = 1 ]; then
    # Root in the container is the user outside: the user namespace maps 0 to the user's own uid.
    b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" sh -c 'id -u; cat /proc/self/uid_map'
    if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | head -1 | grep -qx 0 && printf '%s' "$OUT" | grep -Eq "^ *0 +$uid +1$"; then
        ok "${L}podman run: root inside is the user outside"
    else
        bad "${L}podman run: root inside is the user outside" "rc=$RC $(short "$OUT")"
    fi

    b 60 "${P[@]}" "${RUNF[@]}" --rm --user 1000:1000 "$IMG" sh -c 'id -u; touch /tmp/x && stat -c %u /tmp/x'
    if [ "$RC" -eq 0 ] && [ "$(printf '%s' "$OUT" | tr '\n' ' ')" = "1000 1000" ]; then ok "${L}podman run --user 1000 (a subordinate id)"
    else bad "${L}podman run --user 1000 (a subordinate id)" "rc=$RC $(short "$OUT")"; fi

    b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" sh -c 'for d in null zero urandom tty; do [ -c /dev/$d ] || exit 1; done; echo x >/dev/null && head -c 4 /dev/zero | wc -c'
    expect_out "${L}podman run: /dev nodes usable" 4
fi

b 60 script -qec "$(printf '%q ' "${P[@]}") ${RUNF[*]} --rm -t $IMG sh -c '[ -t 0 ] && echo stdin-is-tty; tty'" /dev/null
expect_out "${L}podman run -t: tty" stdin-is-tty

if [ "$MADE_USER" = 1 ]; then
    b 60 "${P[@]}" "${RUNF[@]}" --rm --read-only "$IMG" sh -c 'touch /x 2>/dev/null && echo writable || echo read-only'
    expect_out "${L}podman run --read-only" read-only

    b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" sh -c 'grep "^Seccomp:" /proc/self/status; grep "^CapEff:" /proc/self/status'
    if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -q 'Seccomp:[[:space:]]*2' && ! printf '%s' "$OUT" | grep -q 'CapEff:[[:space:]]*000001ffffffffff'; then
        ok "${L}podman run: default seccomp profile and capability set"
    else
        bad "${L}podman run: default seccomp profile and capability set" "rc=$RC $(short "$OUT")"
    fi
else
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
fi

b 60 "${P[@]}" "${RUNF[@]}" -d --name long "$IMG" sh -c 'trap "exit 143" TERM; echo started; while :; do sleep 0.2; done'
expect_rc "${L}podman run -d" 0

status() { timeout -k 5 30 "${P[@]}" inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }
wait_status() {
    local i
    for i in $(seq 1 100); do [ "$(status "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
if wait_status long running; then ok "${L}container running"; else bad "${L}container running" "status $(status long)"; fi

if [ "$MADE_USER" = 1 ]; then
    # The runtime keeps its state where the user owns it ($XDG_RUNTIME_DIR/<runtime>/<id>, as runc does for
    # root of a user namespace), never under the system's state root.
    cid=$(timeout -k 5 30 "${P[@]}" inspect -f '{{.Id}}' long 2>/dev/null)
    found=
    for d in "$T/xdg/trustme-runtime/$cid" "$T/xdg/runc/$cid" "$T/xdg/crun/$cid"; do [ -d "$d" ] && found=$d; done
    if [ -n "$cid" ] && [ -n "$found" ] && [ ! -e "/run/trustme-runtime/$cid" ] && [ ! -e "/run/runc/$cid" ]; then
        ok "${L}runtime state under the user's XDG_RUNTIME_DIR (${found#$T/})"
    else
        bad "${L}runtime state under the user's XDG_RUNTIME_DIR" "id '$cid' found '$found'"
    fi
fi

b 60 "${P[@]}" exec long sh -c 'echo exec-ok'
expect_out "${L}podman exec" exec-ok
b 60 "${P[@]}" exec long sh -c 'exit 3'
expect_rc "${L}podman exec: exit code" 3
b 60 script -qec "$(printf '%q ' "${P[@]}") exec -t long sh -c '[ -t 0 ] && echo exec-tty'" /dev/null
expect_out "${L}podman exec -t" exec-tty

if [ "$MADE_USER" = 1 ]; then
    b 60 "${P[@]}" logs long
    expect_out "${L}podman logs" started
fi

# podman top reads /proc of every process in the container and gives up when one exits meanwhile ("read
# /proc/N/cmdline: no such process": the loop's short-lived sleeps; seen under TCG): three tries
for _ in 1 2 3; do
    b 60 "${P[@]}" top long
    [ "$RC" -eq 0 ] && break
done
if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -q sleep; then ok "${L}podman top"; else bad "${L}podman top" "rc=$RC $(short "$OUT")"; fi

if [ "$MADE_USER" = 0 ]; then
    b 60 "${P[@]}" pause long
    if [ "$RC" -eq 0 ] && wait_status long paused; then ok "podman pause"; else bad "podman pause" "rc=$RC status $(status long) $(short "$OUT")"; fi
    b 60 "${P[@]}" unpause long
    if [ "$RC" -eq 0 ] && wait_status long running; then ok "podman unpause"; else bad "podman unpause" "rc=$RC status $(status long) $(short "$OUT")"; fi

    b 60 "${P[@]}" stats --no-stream --format '{{.Name}} {{.MemUsage}} {{.PIDs}}' long
    if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -q '^long '; then ok "podman stats --no-stream"; else bad "podman stats --no-stream" "rc=$RC $(short "$OUT")"; fi
fi

b 60 "${P[@]}" stop -t 10 long
code=$(timeout -k 5 30 "${P[@]}" inspect -f '{{.State.ExitCode}}' long 2>/dev/null)
if [ "$RC" -eq 0 ] && [ "$(status long)" = exited ] && [ "$code" = 143 ]; then ok "${L}podman stop (SIGTERM, exit 143)"
else bad "${L}podman stop (SIGTERM, exit 143)" "rc=$RC status $(status long) exit $code $(short "$OUT")"; fi

b 60 "${P[@]}" start long
if [ "$RC" -eq 0 ] && wait_status long running; then ok "${L}podman start (restart a stopped container)"; else bad "${L}podman start (restart a stopped container)" "rc=$RC status $(status long) $(short "$OUT")"; fi
b 60 "${P[@]}" kill long
if [ "$RC" -eq 0 ] && wait_status long exited; then ok "${L}podman kill"; else bad "${L}podman kill" "rc=$RC status $(status long) $(short "$OUT")"; fi

b 60 "${P[@]}" rm long
expect_rc "${L}podman rm" 0

summary
[ "$FAIL" -eq 0 ]
