#!/usr/bin/env python3
"""Enforce the layer map of docs/DEVELOPING.md ("Layers") on every C/C++ file of the tree:

- every quoted #include is spelled from the top of the tree (the one include root) and names a file
  that exists there (or a header the build generates, GENERATED below);
- a folder includes only from itself and the folders below it in LAYERS;
- a file declares only namespaces that match its folder: trustme::<folder> or one inside it
  (base/, the bottom layer, is trustme itself).

Run by the build (target check-layers) and by hand: scripts/check-layers.py [ROOT]. One line per
violation, exit status 1 if there is any.
"""
import os
import re
import subprocess
import sys

# folder -> the folders it may include from (besides itself). Order: bottom first.
LAYERS = {
    "base": [],
    "oci": ["base"],
    "hooks": ["base", "oci"],
    "tpm": ["base"],
    "signing": ["base"],
    "attest": ["base", "tpm", "signing"],
    "runtime/security": ["base"],
    "runtime/cgroups": ["base"],
    "runtime/state": ["base", "oci"],
    "runtime/process": ["base", "oci", "hooks", "runtime/security"],
    "runtime/volume": ["base", "tpm", "signing"],
    "runtime/container": ["base", "oci", "hooks", "signing", "runtime/security", "runtime/cgroups",
                          "runtime/state", "runtime/process", "runtime/volume"],
    "runtime/cli": ["base", "oci", "hooks", "signing", "runtime/security", "runtime/cgroups", "runtime/state",
                    "runtime/process", "runtime/volume", "runtime/container"],
}
# Folders above every layer: they may include anything, and their namespaces are their own.
TOP = ("tests", "bench", "conformance")
# Headers the build writes (configure_file), spelled like sources.
GENERATED = {"base/version.hpp"}
# Namespace of each folder; sub-namespaces of it are allowed.
NAMESPACE = {"base": "trustme"}
FOLDER_NAMESPACES = {layer.split("/")[-1] for layer in LAYERS if layer != "base"}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
NS = re.compile(r'^\s*namespace\s+([A-Za-z_][\w:]*)\s*\{', re.M)


def folder_of(path):
    parts = path.split("/")
    if parts[0] == "runtime" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    files = subprocess.run(["git", "-C", root, "ls-files", "-co", "--exclude-standard"], capture_output=True,
                           text=True, check=True).stdout.split()
    sources = [f for f in files if f.endswith((".cpp", ".hpp", ".h", ".c")) and os.path.exists(os.path.join(root, f))]
    known = set(files)
    bad = []
    for f in sources:
        layer = folder_of(f)
        if layer.startswith(TOP):
            allowed = None
        elif layer in LAYERS:
            allowed = set(LAYERS[layer]) | {layer}
        else:
            bad.append(f"{f}: folder {layer} is not in the layer map (scripts/check-layers.py, LAYERS)")
            continue
        with open(os.path.join(root, f), encoding="utf-8") as fh:
            text = fh.read()
        for n, m in enumerate(INCLUDE.finditer(text)):
            inc = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            if inc not in known and inc not in GENERATED:
                bad.append(f'{f}:{line}: #include "{inc}" is not a path from the top of the tree')
                continue
            if allowed is not None and inc not in GENERATED and folder_of(inc) not in allowed:
                bad.append(f'{f}:{line}: {layer} may not include {folder_of(inc)} ("{inc}")')
        if allowed is None:
            continue
        want = NAMESPACE.get(layer, "trustme::" + layer.split("/")[-1])
        for m in NS.finditer(text):
            ns = m.group(1)
            if not ns.startswith("trustme"):
                continue  # nested inside a checked one (or a file-local helper namespace)
            if layer == "base":
                # the root namespace, or a sub-namespace that is not another folder's
                ok = ns == "trustme" or ns.split("::")[1] not in FOLDER_NAMESPACES
            else:
                ok = ns == want or ns.startswith(want + "::")
            if not ok:
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{f}:{line}: namespace {ns} in {layer}/ (want {want} or inside it)")
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
