#!/usr/bin/env python3
"""Extract the uncompressed ELF vmlinux from a bzImage: extract-vmlinux.py BZIMAGE OUT

Why: qemu boots an ELF kernel directly through its PVH entry point (CONFIG_PVH, the XEN_ELFNOTE_PHYS32_ENTRY
note) with -bios qboot.rom, which is faster than real-mode setup and avoids SeaBIOS, whose ACPI tables
were seen corrupted here when a TPM and an initramfs were attached together.

Same idea as the kernel's scripts/extract-vmlinux: look for the magic of each compressor in the file,
try to decompress from there, keep the first result that is an ELF file.
"""
import lzma
import os
import shutil
import subprocess
import sys
import zlib

ELF_MAGIC = b"\x7fELF"


def candidates(data, magic):
    pos = data.find(magic)
    while pos >= 0:
        yield pos
        pos = data.find(magic, pos + 1)


def try_xz(blob):
    # The compressed payload is followed by other data; the decompressor stops at the end of the stream.
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(blob)


def try_gzip(blob):
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)


def try_tool(argv):
    def run(blob):
        if shutil.which(argv[0]) is None:
            raise OSError(argv[0] + " not installed")
        # These tools complain about trailing garbage but still write the stream they decoded.
        return subprocess.run(argv, input=blob, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    return run


METHODS = [
    ("xz", b"\xfd7zXZ\x00", try_xz),
    ("gzip", b"\x1f\x8b\x08", try_gzip),
    ("zstd", b"\x28\xb5\x2f\xfd", try_tool(["zstd", "-dc"])),
    ("lz4", b"\x02\x21\x4c\x18", try_tool(["lz4", "-dc"])),
    ("bzip2", b"BZh", try_tool(["bzip2", "-dc"])),
]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: extract-vmlinux.py BZIMAGE OUT")
    src, out = sys.argv[1], sys.argv[2]
    try:
        with open(src, "rb") as f:
            data = f.read()
    except OSError as e:
        sys.exit(f"{src}: {e.strerror}")
    if data.startswith(ELF_MAGIC):
        result = data
    else:
        result = None
        for _name, magic, method in METHODS:
            for pos in candidates(data, magic):
                try:
                    out_data = method(data[pos:])
                except (lzma.LZMAError, zlib.error, OSError, EOFError):
                    continue
                if out_data.startswith(ELF_MAGIC):
                    result = out_data
                    break
            if result is not None:
                break
    if result is None:
        sys.exit(f"{src}: no compressed ELF kernel found")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(result)

    os.replace(tmp, out)


if __name__ == "__main__":
    main()
