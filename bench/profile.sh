#!/bin/sh
# Where a runtime's start time goes: strace (syscall summary, slowest calls, process tree), perf stat,
# ld.so statistics and callgrind for one default-spec `run` and its create/start/delete split.
#
#   bench/profile.sh RUNTIME [OUTDIR]      e.g. bench/profile.sh build/bin/trustme-runtime /tmp/prof-trustme
#
# RUNTIME is any runc-compatible binary (trustme-runtime, runc; crun needs the private mount namespace
# described in docs/benchmark.md). Uses the bundle bench/run builds in /var/tmp/trustme-bench (run it once
# first) and a private --root. Prints a short report; the raw traces stay in OUTDIR.
set -eu
rt=$(readlink -f "${1:?usage: profile.sh RUNTIME [OUTDIR]}")
out=${2:-/tmp/trustme-profile}
bundle=/var/tmp/trustme-bench/bundle-true
[ -f "$bundle/config.json" ] || { echo "profile.sh: run bench/run once first (it builds $bundle)" >&2; exit 1; }
mkdir -p "$out"
root=$(mktemp -d "$out/root.XXXXXX")
id=prof$$
T="timeout -k 5 60"  # every runtime command is bounded: a hanging runtime must not hang the profile
pidfile=$out/pid
# Kill the container process by PID (a runtime that hangs on its own lock cannot be trusted to), then delete.
killc() { [ -s "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null; rm -f "$pidfile"; $T "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; }
cleanup() { killc; rm -rf "$root"; }
trap cleanup EXIT INT TERM

echo "== $rt"
ls -l "$rt" | awk '{print "binary size:", $5}'
echo "shared libraries: $(ldd "$rt" 2>/dev/null | grep -c '=>')"; ldd "$rt" 2>/dev/null | awk '{print "  " $1}'

echo; echo "== ld.so start-up (LD_DEBUG=statistics, --version)"
LD_DEBUG=statistics "$rt" --version 2>&1 >/dev/null | grep -E 'total startup time|time needed for relocation|number of relocations:' | sed 's/^ *[0-9]*: */  /' || true

echo; echo "== strace -f -c -w: one run (wall time per syscall, all processes)"
$T strace -f -c -w -o "$out/strace-c.txt" "$rt" --root "$root" run --bundle "$bundle" "$id" </dev/null >/dev/null 2>&1 || echo "  (run failed)"
head -25 "$out/strace-c.txt"

echo; echo "== strace -f -tt -T: processes, execs, waits"
$T strace -f -tt -T -s 80 -o "$out/strace-tt.txt" "$rt" --root "$root" run --bundle "$bundle" "$id" </dev/null >/dev/null 2>&1 || true
echo "  execve: $(grep -c 'execve(' "$out/strace-tt.txt")  clone/fork: $(grep -cE ' (clone|clone3|fork|vfork)\(' "$out/strace-tt.txt")  processes: $(cut -d' ' -f1 "$out/strace-tt.txt" | sort -u | wc -l)"
grep -E 'execve\(' "$out/strace-tt.txt" | sed 's/^/  /' | cut -c1-160
echo "  sleeps/polls: $(grep -cE '(nanosleep|clock_nanosleep|poll|ppoll|epoll_wait|epoll_pwait|select|pselect6)\(' "$out/strace-tt.txt")"
echo "  memfd_create/sendfile/copy_file_range (binary copies): $(grep -cE '(memfd_create|sendfile|copy_file_range)\(' "$out/strace-tt.txt")"
echo "  mmap/mprotect/openat: $(grep -c ' mmap(' "$out/strace-tt.txt")/$(grep -c ' mprotect(' "$out/strace-tt.txt")/$(grep -c ' openat(' "$out/strace-tt.txt")"
echo "  slowest 12 calls (strace inflates each call; look at which, not how long):"
sed -n 's/.*<\([0-9.]*\)>$/\1 &/p' "$out/strace-tt.txt" | sort -rn | head -12 | cut -d' ' -f2- | cut -c1-150 | sed 's/^/    /'
first=$(head -1 "$out/strace-tt.txt" | awk '{print $2}'); last=$(tail -1 "$out/strace-tt.txt" | awk '{print $2}')
echo "  traced span: $first .. $last"

if perf stat -e task-clock true >/dev/null 2>&1; then
    echo; echo "== perf stat -r 20 (software counters: this VM exposes no hardware counters)"
    for cmd in run; do
        $T perf stat -r 20 -e task-clock,context-switches,cpu-migrations,page-faults -- \
            sh -c "'$rt' --root '$root' run --bundle '$bundle' '$id' </dev/null >/dev/null 2>&1" 2>&1 | grep -E 'task-clock|context|migrations|faults|elapsed' | sed 's/^ */  /'
    done
    echo "  (includes one sh; subtract ~1 exec)"
fi

if command -v valgrind >/dev/null; then
    echo; echo "== callgrind: the create parent (no children traced), top inclusive functions"
    $T valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.create" "$rt" --root "$root" create --pid-file "$pidfile" --bundle "$bundle" "$id" </dev/null >/dev/null 2>"$out/callgrind.log" || echo "  (create under valgrind failed: $(tail -1 "$out/callgrind.log"))"
    killc
    callgrind_annotate --inclusive=yes "$out/callgrind.create" 2>/dev/null | grep -E '^ *[0-9,]+ ' | head -25 | cut -c1-150 | sed 's/^/  /'
    grep -E 'Collected' "$out/callgrind.log" | sed 's/^==[0-9]*== /  /'
    echo; echo "== callgrind: delete"
    $T "$rt" --root "$root" create --pid-file "$pidfile" --bundle "$bundle" "$id" </dev/null >/dev/null 2>&1 || true
    [ -s "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null
    $T valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.delete" "$rt" --root "$root" delete --force "$id" >/dev/null 2>"$out/callgrind-delete.log" || true
    callgrind_annotate --inclusive=yes "$out/callgrind.delete" 2>/dev/null | grep -E '^ *[0-9,]+ ' | head -12 | cut -c1-150 | sed 's/^/  /'
fi
