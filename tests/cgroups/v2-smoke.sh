#!/bin/sh
# Smoke-run the cgroup v2 tests on a v1/hybrid host without changing its set-up: in a private mount
# namespace, a fresh sub-directory of the host's cgroup2 tree is bind-mounted over /sys/fs/cgroup, so
# detect() sees cgroup2 and every cgroup the tests make lives below that sub-directory. Only the
# cgroup core (procs, freeze, kill, the eBPF device filter) and whatever controllers that tree offers
# are exercised; controller-specific cases skip. The full run is in the VM (ctest -L vm-guest).
# usage: v2-smoke.sh path/to/test_cgroups_v2 [gtest args...]
set -eu
bin=$(readlink -f "$1"); shift
v2=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
[ -n "$v2" ] || { echo "no cgroup2 mount on this host" >&2; exit 77; }
if [ "$v2" = /sys/fs/cgroup ]; then exec "$bin" "$@"; fi  # a real v2 host: run directly
sub="$v2/trustme-smoke-$$"
mkdir "$sub"
rc=0
unshare --mount --propagation private sh -c 'mount --bind "$1" /sys/fs/cgroup && shift && exec "$@"' sh "$sub" "$bin" "$@" || rc=$?
rmdir "$sub"/* 2>/dev/null || true
rmdir "$sub"
exit $rc
