#!/bin/bash
# What the systemd VM runs (ctest vm.systemd): systemd-guest.sh BUILD_DIR [ROOTFS [RUNTIME]]
# The systemd cgroup driver's lifecycle (systemd-lifecycle.sh); with ROOTFS (made by
# tests/fixtures/make-rootfs.sh on the host: assembling it in the guest takes minutes under TCG), also the
# conformance suite with --systemd-cgroup against runc, crun and this runtime, gated as on the host (this
# runtime, or RUNTIME, must pass every test runc passes).
set -u
build=${1:?usage: systemd-guest.sh BUILD_DIR [ROOTFS]}
rootfs=${2:-}
rt=${3:-$build/bin/trustme-runtime}
here=$(cd "$(dirname "$0")" && pwd)
rc=0
echo "== systemd $(systemctl --version | head -n1 | cut -d' ' -f2), cgroup $(stat -fc %T /sys/fs/cgroup), / $(findmnt -no PROPAGATION /)"
"$here/systemd-lifecycle.sh" "$build" || rc=1
[ -n "$rootfs" ] || exit $rc
runtimes=(--runtime trustme-runtime="$rt")
crun=$(command -v crun) && runtimes=(--runtime crun="$crun" "${runtimes[@]}")
runc=$(command -v runc) && runtimes=(--runtime runc="$runc" "${runtimes[@]}")
python3 "$here/../../conformance/run" --systemd-cgroup --rootfs "$rootfs" "${runtimes[@]}" \
    ${runc:+--gate trustme-runtime --reference runc} || rc=1
exit $rc
