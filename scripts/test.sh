#!/bin/bash
# Command 2: the whole test suite through ctest — unit and integration tests, the conformance suite against
# runc/crun/trustme-runtime, the containerd and podman drop-in tests, and the qemu VM run (vm.guest-tests
# boots the VM once and runs every test labelled vm-guest inside it: dm-crypt volumes, cgroup v2, SELinux),
# the fuzz targets (label fuzz) and the integration, security and drop-in tests under ASan+UBSan (label sanitize).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build ] || { echo "run scripts/setup.sh first" >&2; exit 1; }
cmake --build build -j"$(nproc)" >/dev/null
exec ctest --test-dir build --output-on-failure --timeout 1500 -LE vm-guest "$@"
