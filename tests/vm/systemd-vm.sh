#!/bin/bash
# ctest vm.systemd: systemd-vm.sh BUILD_DIR
# Makes the conformance suite's rootfs here on the host (minutes under TCG in the guest), then boots the VM
# with systemd as PID 1 and runs systemd-guest.sh there with it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: systemd-vm.sh BUILD_DIR}
tmp=$(mktemp -d /tmp/trustme-systemd-vm.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sh "$here/../fixtures/make-rootfs.sh" "$tmp/rootfs"
rc=0
"$here/run-in-vm.sh" --systemd --share "$tmp" --timeout 1400 --build "$build" -- \
    "$here/systemd-guest.sh" "$build" "$tmp/rootfs" || rc=$?
exit $rc
