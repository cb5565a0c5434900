#!/bin/sh
# ctest smoke test for bench/run: a handful of iterations, then check that the table has a row for every
# runtime (a row may say "not available" and why). No timing is checked. Usage: smoke.sh BENCH_RUN ARGS...
set -u
out=$(timeout -k 10 570 "$@") || { echo "bench/run failed (rc $?)" >&2; echo "$out"; exit 1; }
echo "$out"
for r in trustme-runtime crun runc floor; do
    echo "$out" | grep -q "^| $r |" || { echo "smoke: no row for $r" >&2; exit 1; }
done
for s in '### `run`' '### Split' '### `exec' 'concurrently' '### Price of trust features' '### Verification throughput'; do
    echo "$out" | grep -qF "$s" || { echo "smoke: no section '$s'" >&2; exit 1; }
done
