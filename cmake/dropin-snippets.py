#!/usr/bin/env python3
"""Writes the engine configuration snippets of docs/dropin.md (each marked <!-- snippet:NAME --> before a
fenced block, the blocks tests/dropin/check-snippets.py validates) as files NAME.<fence language> into OUTDIR,
with the runtime's path as installed: /usr/local/bin in the document becomes BINDIR.
usage: dropin-snippets.py docs/dropin.md OUTDIR BINDIR"""
import os
import re
import sys

doc, outdir, bindir = sys.argv[1:4]
os.makedirs(outdir, exist_ok=True)
found = re.findall(r"<!-- snippet:(\w+) -->\s*```(\w+)\n(.*?)```", open(doc).read(), re.S)
if not found:
    sys.exit(f"{doc}: no snippets")
for name, lang, text in found:
    with open(os.path.join(outdir, f"{name}.{lang}"), "w") as f:
        f.write(text.replace("/usr/local/bin/", bindir.rstrip("/") + "/"))
