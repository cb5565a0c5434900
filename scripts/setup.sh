#!/bin/bash
# Command 1: install every apt dependency, build, install to /usr/local, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
grep -v '^#' .ci/packages.txt | xargs apt-get install -y -qq >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
cmake --install build >/dev/null
scripts/demo.sh
