#!/bin/bash
# The main job: a busybox bundle is signed with our PKI, verified and run; a tampered copy is refused; with a
# TPM (swtpm on a private socket) the start is measured into a PCR and proven by a verified quote.
# Uses the installed binaries (or TRUSTME_BIN=DIR). Everything lives in one temporary directory.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TRUSTME_BIN:-/usr/local/bin}
RT="$BIN/trustme-runtime"
work=$(mktemp -d /tmp/trustme-demo.XXXXXX)
swtpm_pid=""
cleanup() {
    "$RT" --root "$work/state" delete --force demo-signed >/dev/null 2>&1 || true
    "$RT" --root "$work/state" delete --force demo-measured >/dev/null 2>&1 || true
    [ -n "$swtpm_pid" ] && kill "$swtpm_pid" 2>/dev/null && wait "$swtpm_pid" 2>/dev/null
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }

say "1. a bundle: busybox-static rootfs + default config"
"$here/tests/fixtures/make-rootfs.sh" "$work/bundle/rootfs"
"$RT" spec --bundle "$work/bundle"
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo hello from a signed bundle: $(hostname), $(id -u):$(id -g)"]
json.dump(c, open(p, "w"), indent=2)
PY

say "2. the PKI: root CA, signing CA, a codeSigning signer; the bundle is signed"
"$BIN/trustme-sign" pki init --dir "$work/pki"
"$BIN/trustme-sign" pki issue --dir "$work/pki" --name demo
"$BIN/trustme-sign" sign --dir "$work/pki" --name demo "$work/bundle"
cat > "$work/policy.json" <<JSON
{"signature": "required", "trust_anchors": ["pki/root-ca.pem"], "crls": ["pki/crl.pem"],
 "verify_cache_dir": "$work/cache"}
JSON

say "3. verified and run"
"$RT" --policy "$work/policy.json" verify "$work/bundle"
"$RT" --root "$work/state" --policy "$work/policy.json" run --bundle "$work/bundle" demo-signed

say "4. one changed byte in the rootfs: refused, nothing left behind"
cp -a "$work/bundle/rootfs/etc/passwd" "$work/passwd.orig"
echo "mallory:x:0:0::/:/bin/sh" >> "$work/bundle/rootfs/etc/passwd"
if "$RT" --root "$work/state" --policy "$work/policy.json" run --bundle "$work/bundle" demo-signed; then
    echo "demo: a tampered bundle ran" >&2
    exit 1
fi
cp -a "$work/passwd.orig" "$work/bundle/rootfs/etc/passwd"
echo "(refused as expected; state directory: $(ls "$work/state" | wc -l) containers)"

say "5. measured start: swtpm on a private socket, attestation hook, quote, verification"
mkdir -p "$work/tpm"
swtpm socket --tpm2 --tpmstate dir="$work/tpm" --server type=unixio,path="$work/tpm/sock" \
    --ctrl type=unixio,path="$work/tpm/ctrl" --flags not-need-init,startup-clear &
swtpm_pid=$!
for _ in $(seq 100); do [ -S "$work/tpm/sock" ] && break; sleep 0.05; done
tcti="swtpm:path=$work/tpm/sock"
cat > "$work/policy-attest.json" <<JSON
{"signature": "required", "trust_anchors": ["pki/root-ca.pem"], "crls": ["pki/crl.pem"], "verify_cache_dir": "$work/cache",
 "attestation": true, "tcti": "$tcti", "pcr": 11, "event_log": "$work/measurements.cel.json"}
JSON
"$RT" --root "$work/state" --policy "$work/policy-attest.json" run --bundle "$work/bundle" demo-measured
A=("$BIN/trustme-attest" --policy "$work/policy-attest.json")
"${A[@]}" ak create --out "$work/ak.pub.pem"
manifest=$(sha256sum "$work/bundle/trustme.manifest" | cut -d' ' -f1)
echo "{\"manifests\": [\"$manifest\"]}" > "$work/allow.json"
nonce=$(openssl rand -hex 32)
"${A[@]}" quote --nonce "$nonce" > "$work/quote.json"
"${A[@]}" verify --ak "$work/ak.pub.pem" --allow "$work/allow.json" --nonce "$nonce" "$work/quote.json"

say "6. TPM-sealed LUKS2 volumes"
if grep -qw device-mapper /proc/misc 2>/dev/null; then  # a /dev/mapper/control node alone proves nothing
    echo "device-mapper present: see trustme-runtime-volume(8) for volume create / enroll and the annotations"
else
    echo "this kernel has no device-mapper: volumes are demonstrated in the test VM (tests/vm, docs/volumes.md)"
fi
say "demo complete"
