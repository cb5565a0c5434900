#!/usr/bin/env python3
"""Signed start against rootfs size: `trustme-runtime run` of the same bundle unsigned, signed and warm
(verify cache primed), signed and cold (no cache: every start reads and hashes the rootfs), at several
rootfs sizes (the busybox rootfs plus generated small files), and plain SHA-256 over the same files.

    bench/verify-scale.py [--build DIR] [--work DIR] [--sizes 300,10000,50000] [--iterations N]
                          [--cold-iterations N] [--mode stamps|verity-only] [--verity|--image] [--starts-only]
                          [--out FILE]

--mode picks the policy's verify_cache for the signed runs; --verity signs with `trustme-sign sign
--verity` (the filesystem of --work must have fs-verity: the test VM's ext4 made with -O verity); --image
with `sign --image` (starts need device-mapper: the test VM). --starts-only measures the starts alone: no
walk to count files and bytes, no page-cache warming, no `sha256sum` or `trustme-sign verify` (for a large
image bundle in the VM, where walking the directory over 9p would take longer than all its starts).
Warm and unsigned runs are alternated in pairs (the order flips every pair), so both see the same machine.
Prints one Markdown table; --out also writes it to FILE. Nothing is left behind but --work.
"""
import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit("verify-scale: `%s` failed: %s" % (" ".join(argv[:4]), (r.stderr or r.stdout).strip()))
    return r.stdout


def count_entries(root):
    n = 1
    for _, dirs, files in os.walk(root):
        n += len(dirs) + len(files)
    return n


def make_bundle(work, entries):
    """The busybox rootfs plus small files (256 B - 8 KiB, 200 per directory) up to `entries` entries."""
    bundle = os.path.join(work, "bundle-%d" % entries)
    if os.path.exists(os.path.join(bundle, ".complete")):
        return bundle
    shutil.rmtree(bundle, ignore_errors=True)
    base = os.path.join(work, "busybox-rootfs")
    if not os.path.exists(os.path.join(base, "bin", "busybox")):
        sh(["sh", os.path.join(SOURCE, "tests", "fixtures", "make-rootfs.sh"), base])
    rootfs = os.path.join(bundle, "rootfs")
    shutil.copytree(base, rootfs, symlinks=True)
    have = count_entries(rootfs)
    rng = random.Random(19)
    i = 0
    if have < entries:
        os.makedirs(os.path.join(rootfs, "usr", "share", "gen"))
        have += 2
    while have < entries:
        d = os.path.join(rootfs, "usr", "share", "gen", "d%04d" % (i // 200))
        if i % 200 == 0:
            os.mkdir(d)
            have += 1
        with open(os.path.join(d, "f%07d" % i), "wb") as f:
            f.write(rng.randbytes(rng.randint(256, 8192)))
        have += 1
        i += 1
    sh(["runc", "spec", "--bundle", bundle])
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    cfg["process"].get("capabilities", {}).pop("ambient", None)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    open(os.path.join(bundle, ".complete"), "w").close()
    return bundle


class Bench:
    def __init__(self, a):
        self.a = a
        self.bin = os.path.join(os.path.abspath(a.build), "bin")
        self.work = os.path.abspath(a.work)
        os.makedirs(self.work, exist_ok=True)
        self.root = os.path.join(self.work, "state")
        self.pki = os.path.join(self.work, "pki")
        if not os.path.exists(os.path.join(self.pki, "bench.pem")):
            shutil.rmtree(self.pki, ignore_errors=True)
            sh([self.tool("trustme-sign"), "pki", "init", "--dir", self.pki])
            sh([self.tool("trustme-sign"), "pki", "issue", "--dir", self.pki, "--name", "bench"])
        self.seq = 0

    def tool(self, name):
        return os.path.join(self.bin, name)

    def policy(self, name, **fields):
        p = {"trust_anchors": [os.path.join(self.pki, "root-ca.pem")],
             "verify_cache_dir": os.path.join(self.work, "cache")}
        p.update(fields)
        path = os.path.join(self.work, name + ".json")
        with open(path, "w") as f:
            json.dump(p, f)
        return path

    def run(self, policy, bundle):
        """One `run` of the bundle; ns, or raises with the runtime's message."""
        self.seq += 1
        cid = "vs%d-%d" % (os.getpid(), self.seq)
        rt = [self.tool("trustme-runtime"), "--root", self.root, "--policy", policy]
        u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter_ns()
        r = subprocess.run(rt + ["run", "--bundle", bundle, cid], capture_output=True, text=True, timeout=900)
        ns = time.perf_counter_ns() - t0
        u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode != 0:
            subprocess.run(rt + ["delete", "--force", cid], capture_output=True)
            raise SystemExit("verify-scale: run %s: %s" % (bundle, r.stderr.strip()))
        # CPU time (user + system) of the runtime and the container: what the start costs, less the wait
        # for CPUs that a loaded machine adds to the wall clock.
        return ns, (u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime) * 1e9

    def timed(self, argv):
        t0 = time.perf_counter_ns()
        sh(argv, timeout=3600)
        return time.perf_counter_ns() - t0

    def size(self, entries):
        a = self.a
        bundle = make_bundle(self.work, entries)
        rootfs = os.path.join(bundle, "rootfs")
        nfiles = nbytes = 0
        for dp, _, fs in ([] if a.starts_only else os.walk(rootfs)):
            for f in fs:
                st = os.lstat(os.path.join(dp, f))
                if not os.path.islink(os.path.join(dp, f)):
                    nfiles += 1
                    nbytes += st.st_size
        if not os.path.exists(os.path.join(bundle, "trustme.manifest")):
            sh([self.tool("trustme-sign"), "sign", "--dir", self.pki, "--name", "bench"] +
               (["--verity"] if a.verity else []) + (["--image"] if a.image else []) + [bundle])
            time.sleep(2.5)  # the racy margin: the caches remember only entries older than 2 s
        if a.prepare_only:
            return None
        plain = self.policy("plain", signature="off")
        warm = self.policy("warm", signature="required", verify_cache=a.mode)
        cold = self.policy("cold", signature="required", verify_cache="off")
        # Page cache warm for everyone alike; "cold" is without the verify cache, not without the page cache.
        if not a.starts_only:
            self.timed(["sh", "-c", "find '%s' -type f -print0 | xargs -0 cat > /dev/null" % rootfs])
        self.run(warm, bundle)  # primes the verdict, digest and tree caches
        self.run(warm, bundle)
        samples = {"plain": [], "warm": []}
        for i in range(a.iterations):
            for k in (("plain", "warm") if i % 2 == 0 else ("warm", "plain")):
                samples[k].append(self.run(plain if k == "plain" else warm, bundle))
        samples["cold"] = [self.run(cold, bundle) for _ in range(a.cold_iterations)]
        med = {k: statistics.median(ns for ns, _ in v) for k, v in samples.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in samples.items()}

        def over(m, k):
            return "%+.0f%% (%+.1f ms)" % (100 * (m[k] - m["plain"]) / m["plain"], (m[k] - m["plain"]) / 1e6)
        starts = ["%.1f / %.1f" % (med["plain"] / 1e6, cpu["plain"] / 1e6),
                  "%.1f / %.1f" % (med["warm"] / 1e6, cpu["warm"] / 1e6), over(med, "warm"), over(cpu, "warm"),
                  "%.0f / %.0f" % (med["cold"] / 1e6, cpu["cold"] / 1e6), over(med, "cold")]
        if a.starts_only:
            return ["%d (generated)" % entries, "-", "-"] + starts + ["-", "-"]
        sha = [self.timed(["sh", "-c", "find '%s' -type f -print0 | xargs -0 sha256sum > /dev/null" % rootfs])
               for _ in range(max(1, a.cold_iterations))]
        verify_cold = [self.timed([self.tool("trustme-sign"), "verify", "--quiet", "--policy", cold, bundle])
                       for _ in range(max(1, a.cold_iterations))]
        sha_ns, vc_ns = statistics.median(sha), statistics.median(verify_cold)
        return [str(count_entries(rootfs)), str(nfiles), "%.0f" % (nbytes / 1e6)] + starts + [
                "%.0f (%.0f MB/s)" % (vc_ns / 1e6, nbytes / 1e6 / (vc_ns / 1e9)),
                "%.0f (%.0f MB/s)" % (sha_ns / 1e6, nbytes / 1e6 / (sha_ns / 1e9))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"))
    ap.add_argument("--work", default="/var/tmp/trustme-verify-scale")
    ap.add_argument("--sizes", default="300,10000,50000")
    ap.add_argument("--iterations", type=int, default=10, help="plain/warm pairs per size")
    ap.add_argument("--cold-iterations", type=int, default=3)
    ap.add_argument("--mode", default="stamps", choices=["stamps", "verity-only"])
    ap.add_argument("--verity", action="store_true", help="sign with --verity (needs fs-verity)")
    ap.add_argument("--image", action="store_true", help="sign with --image (a dm-verity image; starts need device-mapper)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="make and sign the bundles, measure nothing (e.g. on the host, before running in the VM)")
    ap.add_argument("--starts-only", action="store_true",
                    help="measure the starts alone (no file count, page-cache warming, sha256sum, verify)")
    ap.add_argument("--out")
    a = ap.parse_args()
    b = Bench(a)
    header = ["entries", "files", "MB", "unsigned ms wall / CPU", "signed warm ms wall / CPU", "warm vs unsigned, wall",
              "warm vs unsigned, CPU", "signed cold ms wall / CPU", "cold vs unsigned, wall", "trustme-sign verify --no-cache ms", "sha256sum ms"]
    rows = []
    for s in a.sizes.split(","):
        row = b.size(int(s))
        if row:
            rows.append(row)
            print("  ".join(row), file=sys.stderr, flush=True)
    if a.prepare_only:
        return
    out = ("`run` medians (%d pairs unsigned/warm, %d cold), verify_cache \"%s\"%s, %s\n\n" %
           (a.iterations, a.cold_iterations, a.mode,
            ", signed --verity" if a.verity else ", signed --image (unsigned: the directory)" if a.image else "",
            time.strftime("%Y-%m-%d", time.gmtime())))
    out += "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    out += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    print(out)
    if a.out:
        with open(a.out, "a") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
