"""The price of trustme-runtime's trust features, for bench/run.

- `run` of the same bundle: plain, signed with verification cold (policy "verify_cache": false, every start
  hashes the whole rootfs) and warm (cache primed), and with the attestation hook (swtpm on a private
  socket), interleaved per iteration like the lifecycle phase;
- verification throughput of a generated rootfs (many small files + some large) against sha256sum of the
  same files and `openssl speed -evp sha256`, with `trustme-sign verify` cold (--no-cache) and warm.

Every piece that is not available (tool not built, swtpm missing, a step failing) becomes a row saying so
and why; nothing here makes the benchmark fail.
"""
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time

from_run = None  # bench/run's module, set by TrustBench


def first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:160].replace("|", "/")
    return (text or "")[:160]



PLAIN = "trustme-runtime plain"
WARM = "trustme-runtime signed, warm (verify cache)"

class Unavailable(Exception):
    pass


def sh(argv, timeout=1800, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise Unavailable("`%s` failed: %s" % (" ".join(os.path.basename(a) if i == 0 else a
                                                        for i, a in enumerate(argv[:4])),
                                               first_line(r.stderr or r.stdout)))
    return r.stdout


class Swtpm:
    """swtpm on a private unix socket in the bench's work dir; stopped by PID."""

    def __init__(self, work):
        if not shutil.which("swtpm"):
            raise Unavailable("swtpm not installed")
        self.dir = os.path.join(work, "swtpm")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, "tpm.sock")
        self.errlog = open(os.path.join(self.dir, "swtpm.log"), "w")  # a pipe would fill up and stall swtpm
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + self.dir,
             "--server", "type=unixio,path=" + self.sock, "--ctrl", "type=unixio,path=" + self.sock + ".ctrl",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=self.errlog,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Unavailable("swtpm did not start")
            time.sleep(0.05)
        self.tcti = "swtpm:path=" + self.sock

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errlog.close()


class TrustBench:
    def __init__(self, bench):
        self.b = bench
        self.opt = bench.opt
        self.work = os.path.join(bench.work, "trust")
        os.makedirs(self.work, exist_ok=True)
        self.notes = []
        self.sign = bench.tool("trustme-sign")
        self.attest = bench.tool("trustme-attest")
        self.rt = next((r for r in bench.runtimes if r.name == "trustme-runtime"), None)
        self.swtpm = None
        self.done = []  # sections finished so far, kept if a later one fails

    # --- fixtures -------------------------------------------------------------------------------
    def pki(self):
        """A root CA, a signing CA and a signer (trustme-sign pki init/issue), made once per work dir."""
        if not self.sign:
            raise Unavailable("trustme-sign not built")
        d = os.path.join(self.work, "pki")
        if not os.path.exists(os.path.join(d, "bench.pem")):
            shutil.rmtree(d, ignore_errors=True)
            # pki init: root-ca.{pem,key}, signing-ca.{pem,key}, crl.pem; issue: bench.{pem,key}, bench-chain.pem
            sh([self.sign, "pki", "init", "--dir", d])
            sh([self.sign, "pki", "issue", "--dir", d, "--name", "bench"])
        return d

    def policy(self, name, **fields):
        p = {"signature": "required", "trust_anchors": [os.path.join(self.pki(), "root-ca.pem")]}
        p.update(fields)
        path = os.path.join(self.work, name + ".json")
        with open(path, "w") as f:
            json.dump(p, f, indent=2)
        return path

    def sign_bundle(self, bundle):
        sh([self.sign, "sign", "--dir", self.pki(), "--name", "bench", bundle])

    def copy_bundle(self, src, name):
        dst = os.path.join(self.work, name)
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)
        return dst

    # --- `run` with each feature ------------------------------------------------------------------
    def hooked_bundle(self):
        """The plain bundle plus an explicit createRuntime hook `trustme-attest hook measure` (swtpm)."""
        if not self.attest:
            raise Unavailable("trustme-attest not built")
        if not self.swtpm:
            self.swtpm = Swtpm(self.work)
        self.event_log = os.path.join(self.work, "measurements.cel.json")
        for name in os.listdir(self.work):  # the per-boot files and checkpoints (trustme-eventlog(5))
            if name.startswith("measurements.cel.json."):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.work, name))
        hooked = self.copy_bundle(self.b.bundle, "bundle-attest")
        cfg_path = os.path.join(hooked, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        # An explicit hook works the same under every runtime, so runc can show the hook's own price.
        cfg.setdefault("hooks", {})["createRuntime"] = [{
            "path": self.attest, "args": ["trustme-attest", "--tcti", self.swtpm.tcti, "--log", self.event_log,
                                          "hook", "measure"]}]
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)
        return hooked

    def variants(self):
        """[(label, runtime, argv prefix for run, bundle, reason-if-unavailable)]"""
        out = []
        rt = self.rt if self.rt and self.rt.available else None
        why_rt = "trustme-runtime not available" if not rt else ""
        runc = next((r for r in self.b.runtimes if r.name == "runc" and r.available), None)

        def add(label, runtime, make):
            if runtime is None:
                out.append((label, None, None, None, why_rt if "trustme" in label else "runc not available"))
                return
            try:
                argv, bundle = make()
                out.append((label, runtime, argv, bundle, ""))
            except Unavailable as e:
                out.append((label, runtime, None, None, str(e)))
            except Exception as e:  # timeouts and the like: a row, not a crash
                out.append((label, runtime, None, None, "%s: %s" % (type(e).__name__, e)))

        state = {}

        def signed():
            if "signed" not in state:
                state["signed"] = self.copy_bundle(self.b.bundle, "bundle-signed")
                self.sign_bundle(state["signed"])
                # The verify caches remember only files whose ctime is 2 s older than the verification (the
                # racy margin, docs/signing.md): let the fresh copy age, so the warm variant's probe primes.
                time.sleep(2.5)
            return state["signed"]

        add(PLAIN, rt, lambda: (rt.argv, self.b.bundle))
        add("trustme-runtime signed, cold (no verify cache)", rt,
            lambda: (rt.argv + ["--policy", self.policy("policy-cold", verify_cache=False)], signed()))
        add(WARM, rt,
            lambda: (rt.argv + ["--policy", self.policy("policy-warm", verify_cache=True)], signed()))
        add("trustme-runtime + attestation hook in config (swtpm)", rt, lambda: (rt.argv, self.hooked_bundle()))

        def policy_attest():
            self.hooked_bundle()  # starts swtpm, sets the log
            pol = self.policy("policy-attest", verify_cache=True, attestation=True, tcti=self.swtpm.tcti,
                              event_log=self.event_log)
            return rt.argv + ["--policy", pol], signed()
        add("trustme-runtime signed, warm + attestation by policy (swtpm)", rt, policy_attest)
        add("runc plain", runc, lambda: (runc.argv, self.b.bundle))
        add("runc + attestation hook in config (swtpm)", runc, lambda: (runc.argv, self.hooked_bundle()))
        return out

    def run_variants(self):
        variants = self.variants()
        live = []
        for idx, (label, rt, argv, bundle, why) in enumerate(variants):
            if argv is None:
                continue
            cid = "t%s-probe%d" % (self.b.stamp, idx)
            r = rt.worker.run_once(argv=argv + ["run", "--bundle", bundle, cid])
            if not r["ok"]:
                rt.worker.cleanup(rt=rt.argv)
                variants[idx] = (label, rt, None, None, "`run` fails: " + first_line(r["err"]))
                continue
            live.append([label, rt, argv, bundle, []])
        n = self.opt.trust_iterations
        self.b.log("trust features: %d iterations x %d variants" % (n, len(live)))
        for i in range(n):
            k = i % max(1, len(live))
            for v in live[k:] + live[:k]:
                label, rt, argv, bundle, samples = v
                cid = "t%s-%d" % (self.b.stamp, i)
                r = rt.worker.run_once(argv=argv + ["run", "--bundle", bundle, cid])
                if r["ok"]:
                    samples.append(r["ns"])
                else:
                    rt.worker.cleanup(rt=rt.argv)
                rt.worker.reap_strays()
        # The warm signed start alone: plain and warm signed alternated in pairs, nothing else in between.
        # In the mix above, cold verifications, swtpm-backed hooks and runc also run, and their
        # after-effects (deferred kernel work, evicted caches) land on whichever variant follows.
        pair = [v for v in live if v[0] in (PLAIN, WARM)]
        pair_rows = []
        if len(pair) == 2:
            got = {PLAIN: [], WARM: []}
            self.b.log("trust features: %d plain/warm signed pairs" % (2 * n))
            for i in range(2 * n):
                for label, rt, argv, bundle, _ in (pair if i % 2 == 0 else pair[::-1]):
                    r = rt.worker.run_once(argv=argv + ["run", "--bundle", bundle, "t%s-p%d" % (self.b.stamp, i)])
                    if r["ok"]:
                        got[label].append(r["ns"])
                    else:
                        rt.worker.cleanup(rt=rt.argv)
                    rt.worker.reap_strays()
            if got[PLAIN] and got[WARM]:
                base = statistics.median(got[PLAIN])
                for label in (PLAIN, WARM):
                    s = got[label]
                    med = statistics.median(s)
                    over = "—" if label == PLAIN else "%+.0f%% (%+.1f ms)" % (100 * (med - base) / base, (med - base) / 1e6)
                    pair_rows.append([label, len(s), "%.2f" % (min(s) / 1e6), "%.2f" % (med / 1e6),
                                      "%.2f" % (from_run.pct(s, 95) / 1e6), over])
                self.b.trust_pair_overhead = (statistics.median(got[WARM]) - base) / base
        by_label = {v[0]: v for v in live}
        rows = []
        for label, rt, argv, bundle, why in variants:
            v = by_label.get(label)
            if not v or not v[4]:
                rows.append([label, "not available: " + (why or "no successful run"), "", "", "", ""])
                continue
            s = v[4]
            med = statistics.median(s)
            plain = by_label.get(label.split(" ")[0] + " plain")
            base = statistics.median(plain[4]) if plain and plain[4] and plain is not v else None
            over = "%+.0f%% (%+.1f ms)" % (100 * (med - base) / base, (med - base) / 1e6) if base else "—"
            if base:
                self.b.trust_overheads[label] = (med - base) / base
            rows.append([label, len(s), "%.2f" % (min(s) / 1e6), "%.2f" % (med / 1e6),
                         "%.2f" % (from_run.pct(s, 95) / 1e6), over])
        header = ["variant", "n", "min", "median", "p95", "overhead vs the same runtime plain (median)"]
        out = "### Price of trust features: `run`, ms\n\n" + from_run.table(header, rows)
        if pair_rows:
            out += ("\n#### The warm signed start alone: plain and warm signed alternated in pairs, ms\n\n" +
                    from_run.table(header, pair_rows))
        return out

    # --- verification throughput -----------------------------------------------------------------
    def generate_rootfs(self, mib):
        """mib MiB: a quarter in small files (0.5-32 KiB, in nested directories), the rest in 64 MiB files."""
        root = os.path.join(self.work, "big-%dM" % mib, "rootfs")
        marker = os.path.join(os.path.dirname(root), ".complete")
        if os.path.exists(marker):
            return root
        shutil.rmtree(os.path.dirname(root), ignore_errors=True)
        rng = random.Random(8)
        total = mib << 20
        small_budget = total // 4
        written = 0
        i = 0
        while written < small_budget:
            d = os.path.join(root, "usr", "lib", "d%03d" % (i // 200))
            if i % 200 == 0:
                os.makedirs(d, exist_ok=True)
            size = rng.randint(512, 32 << 10)
            with open(os.path.join(d, "f%05d" % i), "wb") as f:
                f.write(os.urandom(size))
            written += size
            i += 1
        big = os.path.join(root, "opt", "large")
        os.makedirs(big, exist_ok=True)
        j = 0
        chunk = 64 << 20
        while written < total:
            size = min(chunk, total - written)
            with open(os.path.join(big, "blob%02d" % j), "wb") as f:
                left = size
                while left:
                    n = min(left, 8 << 20)
                    f.write(os.urandom(n))
                    left -= n
            written += size
            j += 1
        with open(os.path.join(os.path.dirname(root), "config.json"), "w") as f:
            f.write(open(os.path.join(self.b.bundle, "config.json")).read())
        open(marker, "w").close()
        self.files = i + j
        return root

    def timed_shell(self, cmd):
        r = self.b.local.run_once(argv=["sh", "-c", cmd], timeout=1800)  # hashing 1 GiB on a busy machine
        if not r["ok"]:
            raise Unavailable(first_line(r["err"]))
        return r["ns"]

    def throughput(self):
        mib = self.opt.verify_mib
        self.b.log("verify throughput: generating a %d MiB rootfs (reused between runs)" % mib)
        root = self.generate_rootfs(mib)
        bundle = os.path.dirname(root)
        nbytes = 0
        nfiles = 0
        for dp, _, fs in os.walk(root):
            for f in fs:
                nbytes += os.lstat(os.path.join(dp, f)).st_size
                nfiles += 1
        reps = 1 if self.opt.quick else 3

        def mbps(ns_list):
            ns = statistics.median(ns_list)
            return "%.0f" % (nbytes / 1e6 / (ns / 1e9)), "%.0f" % (ns / 1e6)

        rows = []
        # Warm the page cache for everyone alike; "cold" below means without the verify cache, not an
        # empty page cache (dropping caches would change the host for everyone else).
        with contextlib.suppress(Unavailable):
            self.timed_shell("find '%s' -type f -print0 | xargs -0 cat > /dev/null" % root)
        for label, cmd in (
                ("sha256sum, 1 process", "find '%s' -type f -print0 | xargs -0 sha256sum > /dev/null" % root),
                ("sha256sum, %d in parallel" % os.cpu_count(),
                 "find '%s' -type f -print0 | xargs -0 -P %d -n 1024 sha256sum > /dev/null" % (root, os.cpu_count()))):
            try:
                rows.append([label, *mbps([self.timed_shell(cmd) for _ in range(reps)])])
            except Unavailable as e:
                rows.append([label, "not available: " + str(e), ""])
        if not self.sign:
            rows.append(["trustme-sign verify", "not available: trustme-sign not built", ""])
        else:
            try:
                self.b.log("verify throughput: signing the generated rootfs")
                self.sign_bundle(bundle)
                pol = self.policy("policy-throughput", verify_cache=True)
                base = [self.sign, "verify", "--policy", pol]
                for label, argv in (("trustme-sign verify --no-cache (cold)", base + ["--no-cache", bundle]),
                                    ("trustme-sign verify (warm cache)", base + [bundle])):
                    samples = []
                    if "warm" in label:
                        self.b.local.run_once(argv=argv, timeout=1800)  # prime the cache
                    for _ in range(reps):
                        r = self.b.local.run_once(argv=argv, timeout=1800)
                        if not r["ok"]:
                            raise Unavailable("%s: %s" % (label, first_line(r["err"])))
                        samples.append(r["ns"])
                    rows.append([label, *mbps(samples)])
            except Unavailable as e:
                rows.append(["trustme-sign verify", "not available: " + str(e), ""])
        try:
            out = subprocess.run(["openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "2"],
                                 capture_output=True, text=True, timeout=60).stdout
            m = re.search(r"^sha256\s+([\d.]+)k", out, re.M)
            rows.append(["openssl speed -evp sha256 (16 KiB blocks, 1 core)",
                         "%.0f" % (float(m.group(1)) * 1000 / 1e6), "—"])
        except Exception as e:
            rows.append(["openssl speed -evp sha256", "not available: %s" % e, ""])
        return ("### Verification throughput: %d files, %.0f MiB (page cache warm), MB/s\n\n" % (
            nfiles, nbytes / (1 << 20)) + from_run.table(["what", "MB/s", "median ms"], rows))

    def run(self):
        global from_run
        import __main__ as from_run_module
        from_run = from_run_module
        sections = self.done
        try:
            sections.append(self.run_variants())
        finally:
            if self.swtpm:
                self.swtpm.stop()
        sections.append(self.throughput())
        return sections
