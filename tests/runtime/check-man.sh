#!/bin/sh
# Every command and flag printed by --help must be documented in man/trustme-runtime*.8.
set -u
bin=$1 man=$2 fail=0
cmds=$("$bin" --help | awk '/^commands:/{f=1;next} /^$/{f=0} f{print $1}')
for c in $cmds; do
    page=$man/trustme-runtime-$c.8
    [ -f "$page" ] || { echo "missing man page $page"; fail=1; continue; }
    [ "$c" = volume ] && continue
    for flag in $("$bin" $c --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        grep -q -- "$(echo "$flag" | sed 's/-/\\\\-/g')" "$page" || grep -q -- "$flag" "$page" || { echo "$page: flag $flag of --help not documented"; fail=1; }
    done
done
for flag in $("$bin" --help | sed -n '/^global options:/,$p' | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -q -- "$(echo "$flag" | sed 's/-/\\\\-/g')" "$man/trustme-runtime.8" || grep -q -- "$flag" "$man/trustme-runtime.8" || { echo "trustme-runtime.8: global flag $flag not documented"; fail=1; }
done
[ $fail = 0 ] && echo "man pages match --help"
exit $fail
