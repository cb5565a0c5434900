#!/bin/bash
# Command 2: the whole test suite (unit, integration, conformance, drop-in, VM), through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build ] || { echo "run scripts/setup.sh first" >&2; exit 1; }
cmake --build build -j"$(nproc)"
exec ctest --test-dir build --output-on-failure --timeout 1500 "$@"
