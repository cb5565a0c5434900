#!/bin/bash
# The systemd VM's ctest entries: systemd-vm.sh BUILD_DIR MODE [RUNTIME]
#   MODE conformance (vm.systemd): systemd-guest.sh, the systemd driver's lifecycle and the conformance
#                    suite with --systemd-cgroup against runc, crun and RUNTIME
#   MODE dropin (vm.systemd-dropin): systemd-dropin.sh, the engines on their systemd-driver defaults and
#                    rootless podman with RUNTIME
# RUNTIME defaults to BUILD_DIR/bin/trustme-runtime.
# Makes the busybox rootfs here on the host (one fork per applet over 9p takes minutes under TCG), shares
# it with the VM and boots it once with systemd as PID 1.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: systemd-vm.sh BUILD_DIR conformance|dropin [RUNTIME]}
mode=${2:?usage: systemd-vm.sh BUILD_DIR conformance|dropin [RUNTIME]}
rt=${3:-$build/bin/trustme-runtime}
case $mode in conformance | dropin) ;; *) echo "systemd-vm.sh: mode $mode: conformance or dropin" >&2; exit 2 ;; esac
tmp=$(mktemp -d /tmp/trustme-systemd-vm.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# the rootless user of the dropin mode reads the rootfs too
chmod 755 "$tmp"
sh "$here/../fixtures/make-rootfs.sh" "$tmp/rootfs"
if [ "$mode" = conformance ]; then
    guest=("$here/systemd-guest.sh" "$build" "$tmp/rootfs" "$rt")
else
    guest=("$here/systemd-dropin.sh" "$rt" "$tmp/rootfs")
fi
rc=0
# 2 GiB: dockerd, containerd and podman with their shims and monitors
"$here/run-in-vm.sh" --systemd --memory 2048 --share "$tmp" --timeout 3400 --build "$build" -- \
    "${guest[@]}" || rc=$?
exit $rc
