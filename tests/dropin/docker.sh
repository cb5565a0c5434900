#!/bin/bash
# Drop-in test: Docker (dockerd with private data root, exec root, pid file and socket; no bridge, no
# iptables) runs every scenario with RUNTIME (--add-runtime trustme=RUNTIME) and with runc, the reference.
#   tests/dropin/docker.sh [RUNTIME] [CGROUP_DRIVER]   (defaults: runc, cgroupfs; the driver may be systemd)
NAME=docker
. "$(dirname "$0")/lib.sh"
RT=$(resolve_runtime "${1:-runc}")
DRIVER=${2:-cgroupfs}
[ -x "$RT" ] || { echo "FAIL setup: runtime ${1:-runc} is not an executable"; rm -rf "$T"; exit 1; }
case $DRIVER in cgroupfs | systemd) ;; *) echo "FAIL setup: cgroup driver $DRIVER (cgroupfs or systemd)"; rm -rf "$T"; exit 1 ;; esac
# Debian's client matches Debian's daemon; another docker earlier in PATH may speak a newer API.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker || true)
for t in dockerd containerd containerd-shim-runc-v2 runc script "$DOCKER"; do
    command -v "$t" >/dev/null || { echo "SKIP: $t missing"; rm -rf "$T"; exit 77; }
done

# Every result is also kept per runtime, for the table printed at the end.
RESULTS=$T/results
ok() { printf 'PASS %s\n' "$1"; PASS=$((PASS + 1)); printf '%s\tPASS\n' "$1" >>"$RESULTS"; }
bad() {
    printf 'FAIL %s: %s\n' "$1" "$2"
    FAIL=$((FAIL + 1))
    FAILED="$FAILED
  - $1: $2"
    printf '%s\tFAIL\n' "$1" >>"$RESULTS"
}

SOCK=$T/docker.sock
PIDFILE=$T/dockerd.pid
DOCKERD_PID=""
# cgroupfs: containers under a private parent; systemd: Docker's default slice (scopes systemd removes)
CGNAME=$(basename "$T")
CGP=()
[ "$DRIVER" = cgroupfs ] && CGP=(--cgroup-parent "/$CGNAME")
export DOCKER_HOST=unix://$SOCK DOCKER_CONFIG=$T/client
D=("$DOCKER")

# dockerd makes its plugin socket directory /run/docker/plugins unconditionally: removed if it was not there
RUN_DOCKER_EXISTED=0
[ -e /run/docker ] && RUN_DOCKER_EXISTED=1
cleanup() {
    set +e
    if [ -n "$DOCKERD_PID" ]; then
        ids=$(timeout -k 2 20 "${D[@]}" ps -aq 2>/dev/null)
        [ -n "$ids" ] && timeout -k 2 60 "${D[@]}" rm -f $ids >/dev/null 2>&1
        kill_pid "$DOCKERD_PID"
    fi
    # its containerd and shims (their command lines name our private directories)
    for p in $(pids_with_arg "$T/"); do kill_pid "$p"; done
    umount_under  # dockerd's data root, which it bind-mounts onto itself to make it shared, included
    rm_cgroup_tree "$CGNAME"
    [ "$RUN_DOCKER_EXISTED" = 1 ] || { rmdir /run/docker/plugins /run/docker; } 2>/dev/null
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT

mkdir -p "$T/data" "$T/exec" "$T/client"
# the daemon's identity key (/etc/docker/key.json by default) stays in $T too
printf '{"deprecated-key-path": "%s"}\n' "$T/key.json" >"$T/daemon.json"
dockerd --config-file "$T/daemon.json" --data-root "$T/data" --exec-root "$T/exec" --pidfile "$PIDFILE" \
    -H "unix://$SOCK" --bridge=none --iptables=false --ip6tables=false --storage-driver vfs \
    --exec-opt "native.cgroupdriver=$DRIVER" --add-runtime "trustme=$RT" >"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for i in $(seq 1 300); do
    timeout -k 2 5 "${D[@]}" version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.1
done
timeout -k 2 5 "${D[@]}" version >/dev/null 2>&1 || { bad setup "dockerd did not come up: $(tail -3 "$T/dockerd.log")"; summary; exit 1; }

IMG=busybox:dropin
make_rootfs "$T/rootfs"
tar -C "$T/rootfs" --numeric-owner --owner=0 --group=0 -cf "$T/rootfs.tar" .
b 120 "${D[@]}" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/sh"]' "$T/rootfs.tar" "$IMG"
[ "$RC" -eq 0 ] || { bad "docker import" "$(short "$OUT")"; summary; exit 1; }
ok "docker import"

status() { timeout -k 5 30 "${D[@]}" inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }
exit_code() { timeout -k 5 30 "${D[@]}" inspect -f '{{.State.ExitCode}}' "$1" 2>/dev/null; }
wait_status() {
    local i
    for i in $(seq 1 100); do [ "$(status "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
# check NAME: the last command succeeded and its output matches the extended regex $2
check() {
    if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -qE -- "$2"; then ok "$1"; else bad "$1" "rc=$RC out: $(short "$OUT")"; fi
}
# the container's own cgroup file, v1 (cgroup mount per controller) or v2
cgfile() { echo "cat /sys/fs/cgroup/$1/$2 2>/dev/null || cat /sys/fs/cgroup/$3"; }

# scenarios LABEL RUNTIME_NAME: everything once with `docker run --runtime RUNTIME_NAME`
scenarios() {
    local L=$1 R=$2 c=dropin-$2
    local RUN=("${D[@]}" run --runtime "$R" --network none "${CGP[@]}")
    local RUNS="${D[*]} run --runtime $R --network none ${CGP[*]}"

    b 60 "${RUN[@]}" --rm "$IMG" echo hello-from-docker
    expect_out "$L: run" hello-from-docker
    b 60 "${RUN[@]}" --rm "$IMG" sh -c 'exit 7'
    expect_rc "$L: exit code" 7
    b 60 script -qec "$RUNS --rm -t $IMG sh -c '[ -t 1 ] && echo stdout-is-tty; tty'" /dev/null
    check "$L: run -t" 'stdout-is-tty'
    b 60 "${RUN[@]}" --rm --cap-add SYS_ADMIN "$IMG" sh -c 'grep "^Seccomp:" /proc/self/status; swapoff /nonexistent'
    if printf '%s' "$OUT" | grep -q 'Seccomp:[[:space:]]*2' && printf '%s' "$OUT" | grep -q 'Operation not permitted'; then
        ok "$L: default seccomp"
    else bad "$L: default seccomp" "rc=$RC $(short "$OUT")"; fi
    b 60 "${RUN[@]}" --rm --cap-add SYS_ADMIN --security-opt seccomp=unconfined "$IMG" sh -c 'grep "^Seccomp:" /proc/self/status; swapoff /nonexistent'
    if printf '%s' "$OUT" | grep -q 'Seccomp:[[:space:]]*0' && ! printf '%s' "$OUT" | grep -q 'Operation not permitted'; then
        ok "$L: seccomp=unconfined"
    else bad "$L: seccomp=unconfined" "rc=$RC $(short "$OUT")"; fi
    b 60 "${RUN[@]}" --rm "$IMG" sh -c 'ls /sys/class/net | tr "\n" " "'
    check "$L: --network none" '^lo $'
    b 60 "${RUN[@]}" --rm --memory 32m "$IMG" sh -c "$(cgfile memory memory.limit_in_bytes memory.max)"
    check "$L: --memory" '^33554432$'
    b 60 "${RUN[@]}" --rm --pids-limit 50 "$IMG" sh -c "$(cgfile pids pids.max pids.max)"
    check "$L: --pids-limit" '^50$'
    b 60 "${RUN[@]}" --rm --cap-drop ALL "$IMG" grep CapEff /proc/self/status
    check "$L: --cap-drop ALL" 'CapEff:[[:space:]]*0000000000000000'
    b 60 "${RUN[@]}" --rm --read-only "$IMG" sh -c 'touch /x 2>&1; echo rc=$?'
    check "$L: --read-only" 'Read-only file system'
    b 60 "${RUN[@]}" --rm --user 1000:1000 "$IMG" sh -c 'echo $(id -u):$(id -g)'
    check "$L: --user" '^1000:1000$'

    b 60 "${RUN[@]}" -d --name "$c" "$IMG" sh -c 'trap "exit 143" TERM; echo started; while :; do sleep 0.2; done'
    expect_rc "$L: run -d" 0
    if wait_status "$c" running; then ok "$L: running"; else bad "$L: running" "status $(status "$c")"; fi
    b 60 "${D[@]}" exec "$c" sh -c 'echo exec-ok'
    expect_out "$L: exec" exec-ok
    b 60 "${D[@]}" exec "$c" sh -c 'exit 3'
    expect_rc "$L: exec exit status" 3
    b 60 script -qec "${D[*]} exec -t $c sh -c '[ -t 1 ] && echo exec-tty'" /dev/null
    check "$L: exec -t" exec-tty
    b 60 "${D[@]}" top "$c"
    check "$L: top" sleep
    b 60 "${D[@]}" stats --no-stream --format '{{.Name}} {{.MemUsage}} {{.PIDs}}' "$c"
    check "$L: stats" "^$c "
    b 60 "${D[@]}" pause "$c"
    if [ "$RC" -eq 0 ] && wait_status "$c" paused; then ok "$L: pause"; else bad "$L: pause" "rc=$RC status $(status "$c") $(short "$OUT")"; fi
    b 60 "${D[@]}" unpause "$c"
    if [ "$RC" -eq 0 ] && wait_status "$c" running; then ok "$L: unpause"; else bad "$L: unpause" "rc=$RC status $(status "$c") $(short "$OUT")"; fi
    b 60 "${D[@]}" update --memory 64m --memory-swap 128m "$c"
    [ "$RC" -eq 0 ] && b 60 "${D[@]}" exec "$c" sh -c "$(cgfile memory memory.limit_in_bytes memory.max)"
    check "$L: update --memory" '^67108864$'
    b 60 "${D[@]}" stop -t 10 "$c"
    if [ "$RC" -eq 0 ] && [ "$(status "$c")" = exited ] && [ "$(exit_code "$c")" = 143 ]; then ok "$L: stop (exit 143)"
    else bad "$L: stop (exit 143)" "rc=$RC status $(status "$c") exit $(exit_code "$c") $(short "$OUT")"; fi
    b 60 "${D[@]}" start "$c"
    if [ "$RC" -eq 0 ] && wait_status "$c" running; then ok "$L: start again"; else bad "$L: start again" "rc=$RC status $(status "$c") $(short "$OUT")"; fi
    b 60 "${D[@]}" kill "$c"
    if [ "$RC" -eq 0 ] && wait_status "$c" exited && [ "$(exit_code "$c")" = 137 ]; then ok "$L: kill (exit 137)"
    else bad "$L: kill (exit 137)" "rc=$RC status $(status "$c") exit $(exit_code "$c") $(short "$OUT")"; fi
    b 60 "${D[@]}" rm "$c"
    expect_rc "$L: rm" 0
}

scenarios runc runc
scenarios trustme trustme

# Docker hands every runc-compatible runtime the same --root: no container of ours may be left in it.
left=$(ls "$T/exec/runtime-runc/moby" 2>/dev/null)
if [ -z "$left" ]; then ok "runtime state cleaned"; else bad "runtime state cleaned" "left: $(short "$left")"; fi

echo
printf '%-24s %-8s %-8s\n' scenario runc trustme
awk -F'\t' '{ split($1, a, ": "); if (a[2] == "") next; if (!(a[2] in seen)) { seen[a[2]] = 1; order[++n] = a[2] }
             r[a[1], a[2]] = $2 }
           END { for (i = 1; i <= n; i++) printf "%-24s %-8s %-8s\n", order[i], r["runc", order[i]], r["trustme", order[i]] }' "$RESULTS"
summary
[ "$FAIL" -eq 0 ]
