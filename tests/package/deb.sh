#!/bin/bash
# The Debian package as a user gets it: `cpack -G DEB` over the build directory, the .deb unpacked into a
# scratch root (dpkg -x), and there: the binaries, every file the build puts in lib/trustme (plugins, the
# runtime's dynamically linked twin) where the binaries look for them, their libraries resolvable, the man
# pages, the documentation and examples; then scripts/demo.sh runs with the binaries of that root.
# usage: deb.sh BUILD_DIR VERSION (as root; 77 = skipped)
set -euo pipefail
build=$1 version=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: the demo runs containers as root"; exit 77; }
tmp=$(mktemp -d /tmp/trustme-deb.XXXXXX)
trap 'rm -rf --one-file-system "$tmp"' EXIT
fails=0
pass() { echo "PASS $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

if ! cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/out" >"$tmp/cpack.log" 2>&1; then
    cat "$tmp/cpack.log"; echo "FAIL cpack"; exit 1
fi
deb=$tmp/out/trustme-runtime_${version}_amd64.deb
[ -f "$deb" ] || { echo "FAIL no ${deb##*/} (cpack made: $(ls "$tmp/out"))"; exit 1; }
pass "${deb##*/}: $(du -k "$deb" | cut -f1) KiB; Depends: $(dpkg-deb -f "$deb" Depends)"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] && pass "Version: $version" || bad "Version: $(dpkg-deb -f "$deb" Version)"

# lintian (Debian 12's): errors fail; the tags left are listed in docs/DEVELOPING.md ("Release").
if command -v lintian >/dev/null; then
    if lintian --fail-on error "$deb" >"$tmp/lintian.log" 2>&1; then
        pass "lintian: no errors ($(grep -c '^[WI]:' "$tmp/lintian.log" || true) warnings and notes)"
    else
        bad "lintian: $(grep '^E:' "$tmp/lintian.log" | head -5)"
    fi
fi

root=$tmp/root
dpkg -x "$deb" "$root"
for b in trustme-runtime trustme-sign trustme-attest; do
    [ -x "$root/usr/bin/$b" ] && pass "usr/bin/$b" || bad "usr/bin/$b missing"
done
# The build tree mirrors the install tree (top-level CMakeLists.txt): what the binaries find in
# build/lib/trustme they must find in usr/lib/trustme.
for f in "$build"/lib/trustme/*; do
    [ -f "$root/usr/lib/trustme/${f##*/}" ] && pass "usr/lib/trustme/${f##*/}" || bad "usr/lib/trustme/${f##*/} missing"
done
for f in "$root"/usr/bin/* "$root"/usr/lib/trustme/*; do
    file -b "$f" | grep -q 'dynamically linked' || continue
    missing=$(ldd "$f" | grep 'not found' || true)
    [ -z "$missing" ] || bad "${f#"$root"/}: $missing"
done
pages=$(find "$root/usr/share/man" -name '*.gz' | wc -l)
[ "$pages" = "$(ls "$src"/man/*.[158] | wc -l)" ] && pass "$pages man pages" || bad "$pages man pages in the package"
zcat "$root/usr/share/man/man8/trustme-runtime.8.gz" | head -n1 | grep -q "\"trustme-runtime $version\"" &&
    pass "trustme-runtime(8) of version $version" || bad "trustme-runtime(8): $(zcat "$root/usr/share/man/man8/trustme-runtime.8.gz" | head -n1)"
doc=$root/usr/share/doc/trustme-runtime
for f in copyright changelog.gz README.md examples/policy.json examples/containerd.toml examples/docker.json; do
    [ -f "$doc/$f" ] && pass "usr/share/doc/trustme-runtime/$f" || bad "usr/share/doc/trustme-runtime/$f missing"
done
if grep -rl /usr/local "$doc/examples"; then bad "examples name /usr/local"; else pass "examples name /usr/bin/trustme-runtime"; fi
# The example policy is one the runtime accepts (trustme-policy(5); strict: an unknown field is an error):
# the policy is read first, so verify gets as far as the missing bundle.
out=$("$root/usr/bin/trustme-runtime" --policy "$doc/examples/policy.json" verify "$tmp/no-bundle" 2>&1 || true)
case $out in *"no-bundle: No such file"*) pass "examples/policy.json parses" ;; *) bad "examples/policy.json: $out" ;; esac

echo "== scripts/demo.sh with TRUSTME_BIN=<scratch root>/usr/bin"
if TRUSTME_BIN=$root/usr/bin "$src/scripts/demo.sh"; then pass "demo from the package"; else bad "demo from the package"; fi
[ $fails = 0 ] && echo "package ${deb##*/}: all checks passed"
exit $(( fails > 0 ))
