#!/bin/bash
# Drop-in test: rootless podman (its default configuration for an unprivileged user) with RUNTIME.
#   tests/dropin/podman-rootless.sh [RUNTIME]   (default: runc)
# A user is made for the test (home under the private temp dir, subordinate ids from useradd) and removed
# after it. podman runs the runtime as root of that user's namespace, without --root and without a user
# namespace in the config: the runtime must notice (state under $XDG_RUNTIME_DIR, devices bound, not made).
# On a host without cgroup delegation (cgroup v1, or v2 without systemd) podman runs the containers without
# cgroups, so pause, stats and limits are not part of this test.
NAME=podman-rootless
. "$(dirname "$0")/lib.sh"
RT=$(resolve_runtime "${1:-runc}")
[ -x "$RT" ] || { echo "FAIL setup: runtime ${1:-runc} is not an executable"; rm -rf "$T"; exit 1; }
for t in podman conmon newuidmap script setpriv useradd; do
    command -v $t >/dev/null || { echo "SKIP: $t missing"; rm -rf "$T"; exit 77; }
done

U=tmrl$$
uid=
cleanup() {
    set +e
    if [ -n "$uid" ]; then
        timeout -k 5 60 "$T/as" podman rm -af -t 0 >/dev/null 2>&1
        # Whatever the user still runs (podman's pause process, conmon, containers): by PID.
        for p in $(pgrep -u "$uid"); do kill_pid "$p"; done
    fi
    for p in $(pids_with_arg "$T/"); do kill_pid "$p"; done
    umount_under
    id "$U" >/dev/null 2>&1 && userdel "$U" >/dev/null 2>&1
    rm -rf --one-file-system "$T"
}
trap cleanup EXIT

useradd -M -d "$T/home" -U -s /bin/sh "$U" || { echo "FAIL setup: useradd"; exit 1; }
uid=$(id -u "$U")
grep -q "^$U:" /etc/subuid || { echo "SKIP: useradd gave $U no subordinate ids"; exit 77; }
mkdir -p "$T/home" "$T/xdg" "$T/bin"
cp "$RT" "$T/bin/"
RTU=$T/bin/$(basename "$RT")
chown -R "$U:$U" "$T/home" "$T/xdg"
chmod 700 "$T/xdg"

# $T/as CMD...: CMD as the user, with a login-like environment and nothing else (a script, so that
# timeout and script(1) can run it).
cat >"$T/as" <<EOF
#!/bin/sh
exec setpriv --reuid $uid --regid $uid --init-groups env -i HOME=$T/home USER=$U LOGNAME=$U \\
    XDG_RUNTIME_DIR=$T/xdg PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "\$@"
EOF
chmod 755 "$T/as"
P=("$T/as" podman --runtime "$RTU")
IMG=localhost/busybox:dropin

sh "$SRC_DIR/tests/fixtures/make-rootfs.sh" "$T/rootfs" >/dev/null
tar -C "$T/rootfs" --numeric-owner --owner=0 --group=0 -cf "$T/rootfs.tar" .
chmod 644 "$T/rootfs.tar"
b 180 "${P[@]}" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/sh"]' "$T/rootfs.tar" "$IMG"
[ "$RC" -eq 0 ] || { bad "podman import (rootless)" "$(short "$OUT")"; summary; exit 1; }
ok "podman import (rootless)"

RUNF=(run --network none)
b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" echo hello-from-rootless-podman
expect_out "rootless podman run: echo" hello-from-rootless-podman

b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" sh -c 'exit 7'
expect_rc "rootless podman run: exit code propagated" 7

# Root in the container is the user outside: the user namespace maps 0 to the user's own uid.
b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" sh -c 'id -u; cat /proc/self/uid_map'
if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | head -1 | grep -qx 0 && printf '%s' "$OUT" | grep -Eq "^ *0 +$uid +1$"; then
    ok "rootless podman run: root inside is the user outside"
else
    bad "rootless podman run: root inside is the user outside" "rc=$RC $(short "$OUT")"
fi

b 60 "${P[@]}" "${RUNF[@]}" --rm --user 1000:1000 "$IMG" sh -c 'id -u; touch /tmp/x && stat -c %u /tmp/x'
if [ "$RC" -eq 0 ] && [ "$(printf '%s' "$OUT" | tr '\n' ' ')" = "1000 1000" ]; then ok "rootless podman run --user 1000 (a subordinate id)"
else bad "rootless podman run --user 1000 (a subordinate id)" "rc=$RC $(short "$OUT")"; fi

b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" sh -c 'for d in null zero urandom tty; do [ -c /dev/$d ] || exit 1; done; echo x >/dev/null && head -c 4 /dev/zero | wc -c'
expect_out "rootless podman run: /dev nodes usable" 4

b 60 script -qec "$(printf '%q ' "${P[@]}") ${RUNF[*]} --rm -t $IMG sh -c '[ -t 0 ] && echo stdin-is-tty'" /dev/null
expect_out "rootless podman run -t: tty" stdin-is-tty

b 60 "${P[@]}" "${RUNF[@]}" --rm --read-only "$IMG" sh -c 'touch /x 2>/dev/null && echo writable || echo read-only'
expect_out "rootless podman run --read-only" read-only

b 60 "${P[@]}" "${RUNF[@]}" --rm "$IMG" sh -c 'grep "^Seccomp:" /proc/self/status; grep "^CapEff:" /proc/self/status'
if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -q 'Seccomp:[[:space:]]*2' && ! printf '%s' "$OUT" | grep -q 'CapEff:[[:space:]]*000001ffffffffff'; then
    ok "rootless podman run: default seccomp profile and capability set"
else
    bad "rootless podman run: default seccomp profile and capability set" "rc=$RC $(short "$OUT")"
fi

b 60 "${P[@]}" "${RUNF[@]}" -d --name long "$IMG" sh -c 'trap "exit 143" TERM; echo started; while :; do sleep 0.2; done'
expect_rc "rootless podman run -d" 0

status() { timeout -k 5 30 "${P[@]}" inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }
wait_status() {
    local i
    for i in $(seq 1 100); do [ "$(status "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
if wait_status long running; then ok "rootless container running"; else bad "rootless container running" "status $(status long)"; fi

# The runtime keeps its state where the user owns it ($XDG_RUNTIME_DIR/<runtime>/<id>, as runc does for
# root of a user namespace), never under the system's state root.
cid=$(timeout -k 5 30 "${P[@]}" inspect -f '{{.Id}}' long 2>/dev/null)
found=
for d in "$T/xdg/trustme-runtime/$cid" "$T/xdg/runc/$cid" "$T/xdg/crun/$cid"; do [ -d "$d" ] && found=$d; done
if [ -n "$cid" ] && [ -n "$found" ] && [ ! -e "/run/trustme-runtime/$cid" ] && [ ! -e "/run/runc/$cid" ]; then
    ok "rootless runtime state under the user's XDG_RUNTIME_DIR (${found#$T/})"
else
    bad "rootless runtime state under the user's XDG_RUNTIME_DIR" "id '$cid' found '$found'"
fi

b 60 "${P[@]}" exec long sh -c 'echo exec-ok'
expect_out "rootless podman exec" exec-ok
b 60 "${P[@]}" exec long sh -c 'exit 3'
expect_rc "rootless podman exec: exit code" 3
b 60 script -qec "$(printf '%q ' "${P[@]}") exec -t long sh -c '[ -t 0 ] && echo exec-tty'" /dev/null
expect_out "rootless podman exec -t" exec-tty

b 60 "${P[@]}" logs long
expect_out "rootless podman logs" started

b 60 "${P[@]}" top long
if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -q sleep; then ok "rootless podman top"; else bad "rootless podman top" "rc=$RC $(short "$OUT")"; fi

b 60 "${P[@]}" stop -t 10 long
code=$(timeout -k 5 30 "${P[@]}" inspect -f '{{.State.ExitCode}}' long 2>/dev/null)
if [ "$RC" -eq 0 ] && [ "$(status long)" = exited ] && [ "$code" = 143 ]; then ok "rootless podman stop (SIGTERM, exit 143)"
else bad "rootless podman stop (SIGTERM, exit 143)" "rc=$RC status $(status long) exit $code $(short "$OUT")"; fi

b 60 "${P[@]}" start long
if [ "$RC" -eq 0 ] && wait_status long running; then ok "rootless podman start (restart)"; else bad "rootless podman start (restart)" "rc=$RC status $(status long) $(short "$OUT")"; fi
b 60 "${P[@]}" kill long
if [ "$RC" -eq 0 ] && wait_status long exited; then ok "rootless podman kill"; else bad "rootless podman kill" "rc=$RC status $(status long) $(short "$OUT")"; fi

b 60 "${P[@]}" rm long
expect_rc "rootless podman rm" 0

summary
[ "$FAIL" -eq 0 ]
