#!/bin/bash
# Build the runtime with AddressSanitizer and UndefinedBehaviorSanitizer (only what the integration,
# security and drop-in tests drive: target sanitize-targets) and run those tests against it.
# docs/security.md, "Fuzzing and sanitizers".
#
#   scripts/sanitize.sh [--build-dir DIR] [--build-only | --no-build] [CTEST_ARG...]
#
# --build-dir DIR where the sanitizer build lives (default build/asan)
# CTEST_ARG       passed to ctest instead of the default selection, -L "integration|security|dropin" -LE vm-guest
# SANITIZE_JOBS   build jobs (default: nproc)
# Exit status: ctest's. A sanitizer report aborts the process that made it (abort_on_error, halt_on_error),
# so the test that drove it fails and prints the report.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build="$src/build/asan" do_build=1 do_run=1
usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) build=${2:?}; shift 2 ;;
    --build-only) do_run=0; shift ;;
    --no-build) do_build=0; shift ;;
    -h|--help) usage ;;
    *) break ;;
    esac
done

if [ $do_build = 1 ]; then
    launcher=()
    if command -v ccache >/dev/null; then
        launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    fi
    # Warnings are the ordinary build's business (-Werror there); this build looks for what runs wrong.
    # -O1 -g1 (line tables for the reports): half the compile time of -O2 -g, the build's largest cost.
    cmake -S "$src" -B "$build" -DTRUSTME_SANITIZE=address,undefined -DTRUSTME_WERROR=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" "${launcher[@]}" >/dev/null
    cmake --build "$build" -j"${SANITIZE_JOBS:-$(nproc)}" --target sanitize-targets
fi
[ $do_run = 1 ] || exit 0

# Leaks are not looked for: the runtime exits (or execs) right after it allocates, by design.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
[ $# -gt 0 ] || set -- -L "integration|security|dropin" -LE vm-guest
exec ctest --test-dir "$build" --output-on-failure --timeout 900 "$@"
