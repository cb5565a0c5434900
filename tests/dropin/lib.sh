# Shared helpers of the drop-in tests (sourced). Everything lives under a private temp dir $T; daemons are
# stopped by the PIDs we started; mounts under $T are undone before $T is removed.
set -u
DROPIN_DIR=$(cd "$(dirname "$0")" && pwd)
SRC_DIR=$(cd "$DROPIN_DIR/../.." && pwd)
PASS=0
FAIL=0
FAILED=""
T=$(mktemp -d /tmp/trustme-dropin-XXXXXX)
chmod 755 "$T"

log() { printf '%s\n' "$*" >&2; }
ok() { printf 'PASS %s\n' "$1"; PASS=$((PASS + 1)); }
bad() {
    printf 'FAIL %s: %s\n' "$1" "$2"
    FAIL=$((FAIL + 1))
    FAILED="$FAILED
  - $1: $2"
}

# b SECONDS CMD...: run a command bounded in time; sets OUT (stdout+stderr, CR stripped) and RC.
# DROPIN_TIME_SCALE multiplies every bound (the VM under TCG runs each command several times slower).
b() {
    local secs=$(($1 * ${DROPIN_TIME_SCALE:-1}))
    shift
    local f=$T/.out
    timeout -k 5 "$secs" "$@" </dev/null >"$f" 2>&1
    RC=$?
    OUT=$(tr -d '\r' <"$f")
}

short() { printf '%s' "$1" | tr '\n' ' ' | cut -c1-400; }

# expect_out NAME SUBSTRING: the last command succeeded and printed SUBSTRING
expect_out() {
    if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | grep -qF -- "$2"; then ok "$1"; else bad "$1" "rc=$RC out: $(short "$OUT")"; fi
}
# expect_rc NAME RC
expect_rc() {
    if [ "$RC" -eq "$2" ]; then ok "$1"; else bad "$1" "rc=$RC (want $2) out: $(short "$OUT")"; fi
}

umount_under() {
    local m
    for _ in 1 2 3; do
        m=$(awk -v p="$T/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r)
        [ -z "$m" ] && return 0
        for x in $m; do umount -l "$x" 2>/dev/null; done
    done
}

# kill_pid PID: TERM, wait up to 10 s, then KILL
kill_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}

# pids_with_arg STRING: PIDs whose command line contains STRING (our private socket/root path)
pids_with_arg() {
    local d
    for d in /proc/[0-9]*; do
        [ -r "$d/cmdline" ] || continue
        if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF -- "$1"; then
            echo "${d#/proc/}"
        fi
    done
}

summary() {
    echo
    echo "$NAME with runtime $RT: $PASS passed, $FAIL failed"
    if [ "$FAIL" -ne 0 ]; then
        printf 'failed:%s\n' "$FAILED"
    fi
}

# resolve_runtime NAME|PATH: absolute path of the runtime under test (a bare name is looked up in PATH)
resolve_runtime() {
    local r=$1
    case $r in */*) ;; *) r=$(command -v "$r" || echo "$r") ;; esac
    readlink -f "$r"
}

# make_rootfs DIR: the busybox-static rootfs of tests/fixtures/make-rootfs.sh, or a copy of DROPIN_ROOTFS
# when that names one made beforehand (the VM: one fork per applet over 9p takes minutes under TCG)
make_rootfs() {
    if [ -n "${DROPIN_ROOTFS:-}" ]; then
        cp -a "$DROPIN_ROOTFS" "$1"
    else
        sh "$SRC_DIR/tests/fixtures/make-rootfs.sh" "$1" >/dev/null
    fi
}

# rm_cgroup_tree NAME: removes /sys/fs/cgroup/*/NAME bottom-up (only empty cgroups can be removed)
rm_cgroup_tree() {
    local d
    [ -n "$1" ] || return 0
    for d in $(find /sys/fs/cgroup/*/"$1" -depth -type d 2>/dev/null); do rmdir "$d" 2>/dev/null; done
}
