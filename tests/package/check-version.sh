#!/bin/sh
# Every binary's --version, the runtime's features.json and the man pages as built carry the version of
# project() in the top-level CMakeLists.txt, which CMake passes in.   check-version.sh BUILD_DIR VERSION
set -u
build=$1 version=$2 fail=0
check() {  # what, expected, got
    if [ "$2" = "$3" ]; then echo "PASS $1: $3"; else echo "FAIL $1: \"$3\", expected \"$2\""; fail=1; fi
}
check "trustme-runtime --version" "trustme-runtime version $version" "$("$build/bin/trustme-runtime" --version | head -n1)"
check "trustme-runtime-full --version" "trustme-runtime version $version" \
    "$("$build/lib/trustme/trustme-runtime-full" --version | head -n1)"
check "trustme-sign --version" "trustme-sign $version" "$("$build/bin/trustme-sign" --version)"
check "trustme-attest --version" "trustme-attest $version" "$("$build/bin/trustme-attest" --version)"
check "features annotations.org.trustme.runtime.version" "$version" "$("$build/bin/trustme-runtime" features |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["annotations"]["org.trustme.runtime.version"])')"
for page in "$build"/man/*.[158]; do
    check "${page##*/}" "\"trustme-runtime $version\"" "$(head -n1 "$page" | grep -o '"trustme-runtime [^"]*"')"
done
exit $fail
