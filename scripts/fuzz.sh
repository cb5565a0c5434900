#!/bin/bash
# Build the libFuzzer targets of tests/fuzz with clang (libraries instrumented: coverage, ASan, UBSan)
# and run each for a bounded time from its seed corpus. docs/security.md, "Fuzzing and sanitizers".
#
#   scripts/fuzz.sh [--seconds N | --cpu-seconds N] [--seed N] [--build-dir DIR] [--out DIR] [--build-only | --no-build] [TARGET...]
#
# --seconds N     how long each target runs (default 60)
# --cpu-seconds N instead: each target runs until it has used N seconds of CPU (user + system, read from
#                 /proc every 5 s), however long that takes on a busy machine
# --seed N        libFuzzer's seed (default 0: a new one each run). With a fixed seed a run explores the
#                 same inputs in the same order on every machine; a slower machine stops earlier in that
#                 sequence, so whatever it finds, a faster one finds too. The test suite uses a fixed seed;
#                 exploring runs by hand use the default.
# --build-dir DIR where the fuzz build lives (default build/fuzz)
# --out DIR       where runs keep what they make (default: the build dir): the grown corpus in
#                 DIR/corpus/TARGET, crash inputs in DIR/artifacts/TARGET, libFuzzer's output in
#                 DIR/TARGET.log
# TARGET          config seccomp resources state manifest policy sealed eventlog (default: all)
# FUZZ_JOBS       build jobs (default: nproc)
# Exit status: 0 when no target found a crash, 1 otherwise; one summary line per target.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
seconds=60 cpu=0 seed=0 build="$src/build/fuzz" out="" do_build=1 do_run=1
all=(config seccomp resources state manifest policy sealed eventlog)
usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=${2:?}; shift 2 ;;
    --cpu-seconds) cpu=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --build-dir) build=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --build-only) do_run=0; shift ;;
    --no-build) do_build=0; shift ;;
    -h|--help) usage ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
[[ $seconds =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --seconds: not a number: $seconds" >&2; exit 2; }
[[ $cpu =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --cpu-seconds: not a number: $cpu" >&2; exit 2; }
[[ $seed =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --seed: not a number: $seed" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    [ -d "$src/tests/fuzz/corpus/$t" ] || { echo "fuzz.sh: unknown target $t (known: ${all[*]})" >&2; exit 2; }
done

if [ $do_build = 1 ]; then
    cc=$(command -v clang-14 || command -v clang || true)
    cxx=$(command -v clang++-14 || command -v clang++ || true)
    [ -n "$cc" ] && [ -n "$cxx" ] || { echo "fuzz.sh: clang not found (Debian: clang-14 libclang-rt-14-dev)" >&2; exit 1; }
    launcher=()
    if command -v ccache >/dev/null; then
        launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    fi
    cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DTRUSTME_FUZZ=ON -DTRUSTME_WERROR=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
    cmake --build "$build" -j"${FUZZ_JOBS:-$(nproc)}" --target fuzz-targets
fi
[ $do_run = 1 ] || exit 0
out=${out:-$build}

status=0
for t in "${targets[@]}"; do
    bin="$build/bin/fuzz_$t" log="$out/$t.log"
    [ -x "$bin" ] || { echo "fuzz.sh: $bin not built (run without --no-build)" >&2; exit 1; }
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    rc=0 start=$SECONDS used=""
    limit=$seconds
    [ "$cpu" = 0 ] || limit=$((cpu * 100))  # a bound in wall time as well: 1% of a CPU at least
    # The first directory receives what the run finds; the seeds in the tree are only read.
    "$bin" -seed="$seed" -max_total_time="$limit" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$t/" "$out/corpus/$t" "$src/tests/fuzz/corpus/$t" >"$log" 2>&1 &
    pid=$!
    if [ "$cpu" != 0 ]; then
        tck=$(getconf CLK_TCK)
        while kill -0 $pid 2>/dev/null; do
            read -r -a st <"/proc/$pid/stat" 2>/dev/null || break
            used=$(((st[13] + st[14]) / tck))  # utime + stime (proc(5); the name has no spaces)
            if [ "$used" -ge "$cpu" ]; then
                kill -INT $pid  # libFuzzer prints its final stats and exits 72 (-interrupted_exitcode)
                break
            fi
            sleep 5
        done
    fi
    wait $pid || rc=$?
    [ "$cpu" != 0 ] && [ "$rc" = 72 ] && [ "${used:-0}" -ge "$cpu" ] && rc=0
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    size=$(find "$out/corpus/$t" -type f | wc -l)
    took="${seconds}s"
    [ "$cpu" = 0 ] || took="${used:-?}s of CPU in $((SECONDS - start))s"
    if [ $rc = 0 ]; then
        echo "fuzz $t: $took, ${execs:-?} execs, corpus $size, no crash"
    else
        status=1
        echo "fuzz $t: CRASH (exit $rc) after ${execs:-?} execs; input in $out/artifacts/$t/, log $log:"
        grep -m1 -A40 -E '^==[0-9]+==ERROR|runtime error|uncaught exception|deadly signal|^terminate called' "$log" ||
            tail -40 "$log"
    fi
done
exit $status
