#!/bin/bash
# Functions longer than N lines (default 80), and with more than P parameters (default 6), in the C++
# files under the given directories (default runtime/), one per line: "lines  file:line  name", longest
# first; then the parameter counts. Lambdas are counted inside the function that holds them.
# Needs universal-ctags (its "end:" field gives where a function ends).
#   scripts/function-sizes.sh [--lines N] [--params P] [DIR...]
set -euo pipefail
lines=80 params=6
while [[ $# -gt 0 ]]; do
    case "$1" in
        --lines) lines=$2; shift 2 ;;
        --params) params=$2; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) break ;;
    esac
done
[[ $# -gt 0 ]] || set -- runtime
command -v ctags >/dev/null || { echo "function-sizes: needs ctags (apt-get install universal-ctags)" >&2; exit 2; }
tags=$(find "$@" \( -name '*.cpp' -o -name '*.hpp' -o -name '*.c' -o -name '*.h' \) -print0 | sort -z |
    xargs -0 ctags -o - --languages=C++ --map-C++=+.c --map-C++=+.h --kinds-C++=f --fields=+neS --extras=-F)
echo "functions over $lines lines:"
awk -F'\t' -v max="$lines" '
    $1 !~ /^__anon/ {
        start = ""; end = ""
        for (i = 4; i <= NF; i++) {
            if ($i ~ /^line:/) start = substr($i, 6)
            else if ($i ~ /^end:/) end = substr($i, 5)
        }
        if (start == "" || end == "") next
        n = end - start + 1
        if (n > max) printf "%5d  %s:%s  %s\n", n, $2, start, $1
    }' <<<"$tags" | sort -rn
echo "functions with more than $params parameters:"
awk -F'\t' -v max="$params" '
    $1 !~ /^__anon/ {
        sig = ""; start = ""
        for (i = 4; i <= NF; i++) {
            if ($i ~ /^signature:/) sig = substr($i, 11)
            else if ($i ~ /^line:/) start = substr($i, 6)
        }
        if (sig == "" || sig == "()" || sig ~ /^\(void\)/) next
        # Count top-level commas: template arguments and nested parentheses do not separate parameters.
        depth = 0; count = 1
        for (j = 2; j < length(sig); j++) {
            ch = substr(sig, j, 1)
            if (ch == "(" || ch == "<" || ch == "{" || ch == "[") depth++
            else if (ch == ")" || ch == ">" || ch == "}" || ch == "]") depth--
            else if (ch == "," && depth == 0) count++
        }
        if (count > max) printf "%5d  %s:%s  %s\n", count, $2, start, $1
    }' <<<"$tags" | sort -rn | uniq
