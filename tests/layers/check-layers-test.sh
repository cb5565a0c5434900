#!/bin/bash
# scripts/check-layers.py accepts the tree and refuses each kind of violation with its one line: an include
# that is not spelled from the top, an include from a layer above, a namespace that does not match its
# folder, a folder that is not in the map.
set -euo pipefail
src=${1:?source dir}
check="$src/scripts/check-layers.py"
python3 "$check" "$src"
echo "tree: OK"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$tmp" init -q
mkdir -p "$tmp/base" "$tmp/oci"
echo '#pragma once' >"$tmp/base/error.hpp"
echo '#pragma once' >"$tmp/oci/config.hpp"
expect() {  # expect FILE CONTENT MESSAGE
    mkdir -p "$(dirname "$tmp/$1")"
    printf '%s\n' "$2" >"$tmp/$1"
    git -C "$tmp" add -A
    local out rc=0
    out=$(python3 "$check" "$tmp") || rc=$?
    [ $rc = 1 ] || { echo "FAIL: $1: exit $rc, want 1: $out"; exit 1; }
    grep -qF -- "$3" <<<"$out" || { echo "FAIL: $1: got \"$out\", want \"$3\""; exit 1; }
    echo "refused: $out"
    git -C "$tmp" rm -qf "$1"
}
expect oci/a.cpp '#include "error.hpp"' 'oci/a.cpp:1: #include "error.hpp" is not a path from the top of the tree'
expect base/b.cpp '#include "oci/config.hpp"' 'base/b.cpp:1: base may not include oci ("oci/config.hpp")'
expect runtime/state/c.cpp $'#include "base/error.hpp"\nnamespace trustme::oci {\n}' \
    'runtime/state/c.cpp:2: namespace trustme::oci in runtime/state/ (want trustme::state or inside it)'
expect base/d.cpp $'namespace trustme::cgroups {\n}' 'base/d.cpp:1: namespace trustme::cgroups in base/'
expect hooks2/e.cpp '' 'folder hooks2 is not in the layer map'
mkdir -p "$tmp/runtime/state"
printf '#include "base/error.hpp"\nnamespace trustme::state::detail {\n}\n' >"$tmp/runtime/state/ok.cpp"
git -C "$tmp" add -A
python3 "$check" "$tmp"
echo "check-layers: every violation refused, the clean tree accepted"
