#!/bin/bash
# Drop-in test: containerd (private root, state, socket; CRI off) runs RUNTIME through the runc shim v2.
#   tests/dropin/containerd.sh [RUNTIME] [CGROUP_DRIVER]   (defaults: runc, cgroupfs; the driver may be
#   systemd: the shim's SystemdCgroup option, set by `ctr run --runc-systemd-cgroup`)
NAME=containerd
. "$(dirname "$0")/lib.sh"
RT=$(resolve_runtime "${1:-runc}")
DRIVER=${2:-cgroupfs}
[ -x "$RT" ] || { echo "FAIL setup: runtime ${1:-runc} is not an executable"; rm -rf "$T"; exit 1; }
case $DRIVER in cgroupfs | systemd) ;; *) echo "FAIL setup: cgroup driver $DRIVER (cgroupfs or systemd)"; rm -rf "$T"; exit 1 ;; esac
NAME="containerd ($DRIVER)"
for t in containerd ctr containerd-shim-runc-v2 script; do
    command -v $t >/dev/null || { echo "SKIP: $t missing"; rm -rf "$T"; exit 77; }
done

CTRD_PID=""
cleanup() {
    set +e
    if [ -n "$CTRD_PID" ]; then
        for c in $(timeout -k 2 10 ctr -a "$SOCK" -n dropin containers ls -q 2>/dev/null); do
            timeout -k 2 10 ctr -a "$SOCK" -n dropin task kill -s SIGKILL "$c" >/dev/null 2>&1
            timeout -k 2 10 ctr -a "$SOCK" -n dropin task delete -f "$c" >/dev/null 2>&1
            timeout -k 2 10 ctr -a "$SOCK" -n dropin containers delete "$c" >/dev/null 2>&1
        done
        kill_pid "$CTRD_PID"
    fi
    # shims of our daemon (their command line names our private socket) and their containers' runtime state
    for p in $(pids_with_arg "$SOCK"); do kill_pid "$p"; done
    umount_under
    rm_cgroup_tree "$CGPARENT"
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT

SOCK=$T/containerd.sock
CGPARENT=$(basename "$T")
RTROOT=$T/runc-root
IMG=docker.io/library/busybox:dropin
mkdir -p "$T/root" "$T/state" "$RTROOT"
cat >"$T/config.toml" <<TOML
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$T/debug.sock"
[metrics]
  address = ""
TOML

containerd --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CTRD_PID=$!
for i in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { bad setup "containerd did not come up: $(tail -3 "$T/containerd.log")"; summary; exit 1; }

C=(ctr -a "$SOCK" -n dropin)
RUNO=(run --snapshotter native --runc-binary "$RT" --runc-root "$RTROOT")
# ctr's default cgroup is /<namespace>/<id>: keep ours under a private parent instead; with systemd, a
# scope of ours in system.slice (slice:prefix:name, as runc takes it), which systemd removes when it ends
if [ "$DRIVER" = systemd ]; then
    RUNO+=(--runc-systemd-cgroup)
    cg() { echo "--cgroup=system.slice:$CGPARENT:$1"; }
else
    cg() { echo "--cgroup=/$CGPARENT/$1"; }
fi
RUN=("${C[@]}" "${RUNO[@]}")

# image: busybox-static rootfs -> OCI archive -> ctr images import (offline)
make_rootfs "$T/rootfs"
python3 "$DROPIN_DIR/make-oci-image.py" "$T/rootfs" "$T/image.tar" "$IMG"
b 60 "${C[@]}" images import --snapshotter native "$T/image.tar"
[ "$RC" -eq 0 ] || { bad "image import" "$(short "$OUT")"; summary; exit 1; }
ok "image import"

b 30 "${RUN[@]}" --rm "$(cg echo1)" "$IMG" echo1 echo hello-from-containerd
expect_out "ctr run: echo" hello-from-containerd

b 30 "${RUN[@]}" --rm "$(cg exit7)" "$IMG" exit7 sh -c 'exit 7'
expect_rc "ctr run: exit code propagated" 7

# -t needs a terminal on ctr's side: script(1) provides one
b 30 script -qec "${C[*]} ${RUNO[*]} $(cg tty1) --rm -t $IMG tty1 sh -c 'tty; [ -t 0 ] && echo stdin-is-tty'" /dev/null
expect_out "ctr run -t: tty" stdin-is-tty
printf '%s' "$OUT" | grep -q '/dev/pts/\|/dev/console' || bad "ctr run -t: tty name" "$(short "$OUT")"

b 30 "${RUN[@]}" -d "$(cg long)" "$IMG" long sh -c 'trap "exit 143" TERM; echo started; while :; do sleep 0.2; done'
expect_rc "ctr run -d" 0

task_status() { "${C[@]}" task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
wait_status() {
    local i
    for i in $(seq 1 100); do [ "$(task_status "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
if wait_status long RUNNING; then ok "task RUNNING"; else bad "task RUNNING" "status $(task_status long)"; fi

b 30 "${C[@]}" task exec --exec-id e1 long sh -c 'echo exec-ok; id -u'
expect_out "ctr task exec" exec-ok
b 30 "${C[@]}" task exec --exec-id e2 long sh -c 'exit 3'
expect_rc "ctr task exec: exit code" 3
b 30 script -qec "ctr -a $SOCK -n dropin task exec -t --exec-id e3 long sh -c '[ -t 0 ] && echo exec-tty'" /dev/null
expect_out "ctr task exec -t" exec-tty

b 30 "${C[@]}" task ps long
if [ "$RC" -eq 0 ] && [ "$(printf '%s\n' "$OUT" | wc -l)" -ge 2 ]; then ok "ctr task ps"; else bad "ctr task ps" "rc=$RC $(short "$OUT")"; fi

b 30 "${C[@]}" task pause long
if [ "$RC" -eq 0 ] && wait_status long PAUSED; then ok "ctr task pause"; else bad "ctr task pause" "rc=$RC status $(task_status long) $(short "$OUT")"; fi
b 30 "${C[@]}" task resume long
if [ "$RC" -eq 0 ] && wait_status long RUNNING; then ok "ctr task resume"; else bad "ctr task resume" "rc=$RC status $(task_status long) $(short "$OUT")"; fi

b 30 "${C[@]}" task metrics long
if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -qi 'memory'; then ok "ctr task metrics"; else bad "ctr task metrics" "rc=$RC $(short "$OUT")"; fi

b 30 "${C[@]}" task kill -s SIGTERM long
if [ "$RC" -eq 0 ] && wait_status long STOPPED; then ok "ctr task kill"; else bad "ctr task kill" "rc=$RC status $(task_status long) $(short "$OUT")"; fi
b 30 "${C[@]}" task delete long
expect_rc "ctr task delete" 0
b 30 "${C[@]}" containers delete long
expect_rc "ctr containers delete" 0

# the runtime's own state dir is empty again
left=$(ls -A "$RTROOT/dropin" 2>/dev/null)
if [ -z "$left" ]; then ok "runtime state cleaned"; else bad "runtime state cleaned" "left: $left"; fi

summary
[ "$FAIL" -eq 0 ]
