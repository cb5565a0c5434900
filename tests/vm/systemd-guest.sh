#!/bin/bash
# What the systemd VM runs (ctest vm.systemd): systemd-guest.sh BUILD_DIR
# The systemd cgroup driver's lifecycle (systemd-lifecycle.sh), then the conformance suite with
# --systemd-cgroup against runc and this runtime, gated as on the host: we must pass what runc passes.
set -u
build=${1:?usage: systemd-guest.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
rc=0
echo "== systemd $(systemctl --version | head -n1 | cut -d' ' -f2), cgroup $(stat -fc %T /sys/fs/cgroup), / $(findmnt -no PROPAGATION /)"
"$here/systemd-lifecycle.sh" "$build" || rc=1
runtimes=(--runtime trustme-runtime="$build/bin/trustme-runtime")
runc=$(command -v runc) && runtimes=(--runtime runc="$runc" "${runtimes[@]}")
python3 "$here/../../conformance/run" --systemd-cgroup "${runtimes[@]}" \
    ${runc:+--gate trustme-runtime --reference runc} || rc=1
exit $rc
