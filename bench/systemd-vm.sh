#!/bin/bash
# bench/run on a systemd host: bench/systemd-vm.sh [--build DIR] [--iterations N] [--timeout S] [-- BENCH_ARGS...]
#
# Boots the test VM with systemd as PID 1 (tests/vm/run-in-vm.sh --systemd: cgroup v2 unified, D-Bus) once
# and runs bench/run twice in it, back to back: every runtime with its systemd cgroup driver
# (--systemd-cgroup: a transient scope per container through D-Bus), then the same with the cgroupfs
# driver. Both tables go to stdout, with the host's load average before and after. The VM is qemu TCG
# (emulated, several times slower than the host): only ratios within one table mean anything.
# BENCH_ARGS go to both runs (default: --skip-exec --skip-concurrency --skip-trust).
# The busybox rootfs is made here on the host (one fork per applet takes minutes under TCG) and copied
# to the guest's tmpfs, so containers start from memory, not from the 9p share.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)

if [ "${1:-}" = --guest ]; then
    # In the VM: --guest ROOTFS BENCH_ARGS...
    rootfs=$2
    shift 2
    work=/var/tmp/trustme-bench
    mkdir -p "$work"
    cp -a "$rootfs" "$work/rootfs"
    echo "== systemd $(systemctl --version | head -n1 | cut -d' ' -f2), cgroup $(stat -fc %T /sys/fs/cgroup)"
    rc=0
    python3 "$here/run" --work "$work" --systemd-cgroup "$@" || rc=$?
    python3 "$here/run" --work "$work" "$@" || rc=$?
    exit $rc
fi

build=$src/build iterations=30 timeout=1800
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=${2:?--build needs a value}; shift 2 ;;
        --iterations) iterations=${2:?--iterations needs a value}; shift 2 ;;
        --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
        --) shift; break ;;
        *) echo "bench/systemd-vm.sh: unknown option $1 (bench/run's options follow --)" >&2; exit 2 ;;
    esac
done
build=$(cd "$build" && pwd)
[ $# -gt 0 ] || set -- --skip-exec --skip-concurrency --skip-trust
tmp=$(mktemp -d /tmp/trustme-bench-vm.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sh "$src/tests/fixtures/make-rootfs.sh" "$tmp/rootfs"
echo "== host load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
"$src/tests/vm/run-in-vm.sh" --systemd --share "$tmp" --timeout "$timeout" --build "$build" -- \
    "$here/systemd-vm.sh" --guest "$tmp/rootfs" --iterations "$iterations" \
    --trustme "$build/bin/trustme-runtime" --floor "$build/bin/trustme-floor" \
    --spawn "$build/bin/trustme-bench-spawn" "$@" || rc=$?
echo "== host load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
