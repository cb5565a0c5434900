#!/usr/bin/env python3
"""Attestation at scale: the figures of docs/attestation.md ("Cost").

1. start: the measure hook's wall time (`trustme-attest hook measure`, one container start) on a log that
   already holds 0, 10 000 and 100 000 records of this boot (goal: flat, within 1 ms);
2. incremental: `verify --remote --state` for 100 new records on a 100 000-record history (goal: < 50 ms),
   and the verification from record 0 of the whole history (streamed);
3. serve: 50 concurrent verifiers while 10 clients hold connections idle or send a byte a second
   (goal: no legitimate request fails), without and with mutual TLS.

Everything runs against swtpm on private sockets in a temporary directory (stopped by PID) and loopback.
Usage: bench/attest.py [--build DIR] [--only start|incremental|serve] [--starts N] [--sizes 0,10000,100000]
                       [--history N] [--new N] [--rounds N] [--verifiers N] [--bad-clients N]
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


class Swtpm:
    def __init__(self, work, name):
        self.dir = os.path.join(work, name)
        os.makedirs(os.path.join(self.dir, "state"))
        self.sock = os.path.join(self.dir, "sock")
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + os.path.join(self.dir, "state"),
             "--server", "type=unixio,path=" + self.sock, "--ctrl", "type=unixio,path=" + self.sock + ".ctrl",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            if os.path.exists(self.sock):
                break
            time.sleep(0.01)
        self.tcti = "swtpm:path=" + self.sock

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(argv, stdin=None, check=True):
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        sys.exit("%s failed (%d): %s" % (" ".join(argv[:4]), r.returncode, r.stderr.strip()))
    return r


def cpu_children():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def timed(argv, stdin=None, check=True, cpu=None):
    """Wall time of one command; with `cpu` (a list), its CPU time (user + system) is appended to it."""
    c = cpu_children()
    t = time.perf_counter()
    r = run(argv, stdin, check)
    wall = time.perf_counter() - t
    if cpu is not None:
        cpu.append(cpu_children() - c)
    return wall, r


def task_cpu(pid):
    """CPU time (s) of every thread of process `pid` so far (/proc/PID/task/*/schedstat: ns on CPU)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def ms(xs):
    return "median %.2f ms, min %.2f, max %.2f (n=%d)" % (
        statistics.median(xs) * 1e3, min(xs) * 1e3, max(xs) * 1e3, len(xs))


class Host:
    """One attesting host: swtpm, a log, a tiny bundle, trustme-attest."""

    def __init__(self, b, work, name):
        self.b = b
        self.tpm = Swtpm(work, name + "-tpm")
        self.log = os.path.join(work, name, "measurements.cel.json")
        os.makedirs(os.path.dirname(self.log))
        self.bundle = os.path.join(work, name, "bundle")
        os.makedirs(os.path.join(self.bundle, "rootfs"))
        with open(os.path.join(self.bundle, "rootfs", "hello"), "w") as f:
            f.write("hello\n")
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump({"ociVersion": "1.0.2", "root": {"path": "rootfs"}}, f)
        self.base = [b.attest, "--tcti", self.tpm.tcti, "--log", self.log]
        self.n = 0

    def fill(self, count):
        run([self.b.fill, "--tcti", self.tpm.tcti, "--log", self.log, "--count", str(count)])

    def hook(self, cpu=None):
        self.n += 1
        state = json.dumps({"ociVersion": "1.0.2", "id": "c%d" % self.n, "status": "creating", "pid": 1,
                            "bundle": self.bundle})
        return timed(self.base + ["hook", "measure"], state, cpu=cpu)[0]

    def stop(self):
        self.tpm.stop()


def bench_start(b, work, sizes, starts):
    print("## 1. start cost (hook measure) by history length")
    hosts = []
    try:
        for size in sizes:
            h = Host(b, work, "start-%d" % size)
            hosts.append(h)
            t = time.perf_counter()
            h.fill(size)
            fill = time.perf_counter() - t
            first = h.hook()  # no checkpoint yet: reads the log once and writes one
            print("records %7d: history made in %.1f s; first start after it (reads the whole log, writes the "
                  "checkpoint): %.1f ms" % (size, fill, first * 1e3))
        # Interleaved, so that the load of a shared machine falls on every size alike.
        wall = {h: [] for h in hosts}
        cpu = {h: [] for h in hosts}
        for _ in range(starts):
            for h in hosts:
                wall[h].append(h.hook(cpu[h]))
        rows = []
        for size, h in zip(sizes, hosts):
            rows.append((size, statistics.median(wall[h]), statistics.median(cpu[h])))
            print("records %7d: wall %s; CPU (user+sys) median %.2f ms" % (
                size, ms(wall[h]), statistics.median(cpu[h]) * 1e3))
    finally:
        for h in hosts:
            h.stop()
    spread = (max(r[1] for r in rows) - min(r[1] for r in rows)) * 1e3
    cspread = (max(r[2] for r in rows) - min(r[2] for r in rows)) * 1e3
    print("spread of the medians: wall %.2f ms, CPU %.2f ms (goal: within 1 ms)" % (spread, cspread))
    return spread


def bench_incremental(b, work, history, new, rounds):
    print("## 2. quote + verify of %d new records on a %d-record history" % (new, history))
    h = Host(b, work, "incr-%d" % history)
    sock = os.path.join(work, "incr-%d.sock" % history)
    server = subprocess.Popen(h.base + ["serve", "--listen", "unix:" + sock], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        server.stdout.readline()
        h.fill(history)
        h.hook()
        ak = os.path.join(work, "incr-ak-%d.pem" % history)
        run(h.base + ["ak", "create", "--out", ak])
        allow = os.path.join(work, "incr-allow-%d.json" % history)
        with open(allow, "w") as f:
            json.dump({"manifests": ["a" * 64], "signers": []}, f)
        state = os.path.join(work, "incr-%d.state" % history)
        verify = [b.attest, "verify", "--pcr", "11", "--ak", ak, "--allow", allow, "--remote", "unix:" + sock,
                  "--state", state]
        # From record 0: the whole history, streamed (records of the tiny bundle are denied: exit 1).
        full, r = timed(verify, check=False)
        lines = r.stdout.count("\n")
        print("from record 0 (%d records, streamed): %.0f ms, %d report lines, last: %s" % (
            history + 1, full * 1e3, lines, r.stdout.strip().splitlines()[-1][:60]))
        # Allow everything from now on; a fresh state over the history, then the increments.
        with open(allow, "w") as f:
            m = json.loads(run(h.base + ["log", "show"]).stdout)[-1]["content"]["manifest_sha256"]
            json.dump({"manifests": ["a" * 64, m]}, f)
        os.unlink(state)
        run(verify)
        xs, cpu, cpu_all = [], [], []
        for _ in range(rounds):
            for _ in range(new):
                h.hook()
            others = task_cpu(server.pid) + task_cpu(h.tpm.proc.pid)
            c = []
            t, r = timed(verify, cpu=c)
            xs.append(t)
            cpu.append(c[0])
            cpu_all.append(c[0] + task_cpu(server.pid) + task_cpu(h.tpm.proc.pid) - others)
            assert r.stdout.count("allowed") == new, r.stdout[-300:]
        print("history %d, incremental, %d new records: wall %s (goal: < 50 ms; the whole command: process start, "
              "loading the tool module, the TPM quote, the check)" % (history, new, ms(xs)))
        print("  CPU: verify process median %.2f ms; verify + serve + swtpm median %.2f ms" % (
            statistics.median(cpu) * 1e3, statistics.median(cpu_all) * 1e3))
        # The fixed parts of that, on the same machine at the same time.
        start = [timed([b.attest, "--version"])[0] for _ in range(10)]
        module = [timed([b.attest, "log", "show", "--boot", "none"], check=False)[0] for _ in range(10)]
        quote = [timed(h.base + ["quote", "--nonce", "ab" * 32, "--from", str(10 ** 9)])[0] for _ in range(10)]
        kept = h.log + ".ak-context"
        fresh = []
        for _ in range(10):
            if os.path.exists(kept):
                os.unlink(kept)
            fresh.append(timed(h.base + ["quote", "--nonce", "ab" * 32, "--from", str(10 ** 9)])[0])
        print("  for comparison: process start (--version) %s; with the tool module loaded (log show of no boot) "
              "%s; quote with no records, AK kept %s; the same, AK re-created each time %s" % (
                  ms(start), ms(module), ms(quote), ms(fresh)))
        return statistics.median(xs)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        h.stop()


def make_pki(b, work):
    """A PKI with an attester (server) and a verifier (client) identity; the options of each side."""
    pki = os.path.join(work, "pki")
    run([b.sign, "pki", "init", "--dir", pki])
    side = {}
    for name, purpose in (("attester", "server"), ("verifier", "client")):
        run([b.sign, "pki", "issue", "--dir", pki, "--name", name, "--purpose", purpose])
        full = os.path.join(pki, name + "-full.pem")
        with open(full, "w") as f:
            for part in (name + ".pem", name + "-chain.pem"):
                with open(os.path.join(pki, part)) as g:
                    f.write(g.read())
        side[name] = ["--tls-cert", full, "--tls-key", os.path.join(pki, name + ".key"),
                      "--tls-ca", os.path.join(pki, "root-ca.pem")]
    side["attester"] += ["--tls-allow", "cn:verifier"]
    return side["attester"], side["verifier"]


def bench_serve(b, work, verifiers, bad, tls):
    print("## 3. serve%s: %d concurrent verifiers, %d idle or slow clients" % (
        " with mutual TLS" if tls else "", verifiers, bad))
    h = Host(b, work, "serve-tls" if tls else "serve")
    server_tls, client_tls = make_pki(b, work) if tls else ([], [])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = "127.0.0.1:%d" % port
    server = subprocess.Popen(h.base + ["serve", "--listen", addr] + server_tls, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    stop = threading.Event()
    held = []
    try:
        server.stdout.readline()
        for _ in range(100):
            h.hook()
        ak = os.path.join(work, "serve-ak-%d.pem" % tls)
        run(h.base + ["ak", "create", "--out", ak])
        m = json.loads(run(h.base + ["log", "show"]).stdout)[-1]["content"]["manifest_sha256"]
        allow = os.path.join(work, "serve-allow-%d.json" % tls)
        with open(allow, "w") as f:
            json.dump({"manifests": [m]}, f)
        # The bad clients: half connect and say nothing, half send a byte a second.
        req = b'{"op":"quote","nonce":"' + b"ab" * 32 + b'"}\n'
        if tls:  # over TLS, a slow client trickles its ClientHello
            import ssl
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).wrap_bio(inc, out, server_hostname="attester")
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            req = out.read()

        def slow(sock):
            for i in range(len(req)):
                if stop.is_set():
                    return
                try:
                    sock.send(req[i:i + 1])
                except OSError:
                    return
                time.sleep(1)
        threads = []
        for i in range(bad):
            c = socket.create_connection(("127.0.0.1", port))
            held.append(c)
            if i % 2:
                threads.append(threading.Thread(target=slow, args=(c,), daemon=True))
                threads[-1].start()
        time.sleep(0.5)
        results = []

        def one(i):
            t, r = timed([b.attest, "verify", "--pcr", "11", "--ak", ak, "--allow", allow, "--remote", addr] +
                         client_tls, check=False)
            results.append((r.returncode, t, r.stderr.strip()))
        t0 = time.perf_counter()
        ts = [threading.Thread(target=one, args=(i,)) for i in range(verifiers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.perf_counter() - t0
        failed = [r for r in results if r[0] != 0]
        lat = [r[1] for r in results]
        print("%d/%d verified, %d failed%s; wall %.2f s; per verifier %s" % (
            len(results) - len(failed), len(results), len(failed),
            (" (first: %s)" % failed[0][2][:120]) if failed else "", wall, ms(lat)))
        return len(failed)
    finally:
        stop.set()
        for c in held:
            c.close()
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        h.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--build", default=os.path.join(os.path.dirname(here), "build"))
    ap.add_argument("--starts", type=int, default=30)
    ap.add_argument("--sizes", default="0,10000,100000")
    ap.add_argument("--history", type=int, default=100000)
    ap.add_argument("--new", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=10, help="incremental verifications to time")
    ap.add_argument("--verifiers", type=int, default=50)
    ap.add_argument("--bad-clients", type=int, default=10)
    ap.add_argument("--only", choices=["start", "incremental", "serve"])
    a = ap.parse_args()

    class B:
        attest = os.path.join(a.build, "bin", "trustme-attest")
        fill = os.path.join(a.build, "bench", "trustme-bench-attest-fill")
        sign = os.path.join(a.build, "bin", "trustme-sign")
    if not os.path.exists(B.fill):
        B.fill = os.path.join(a.build, "bin", "trustme-bench-attest-fill")
    for p in (B.attest, B.fill):
        if not os.access(p, os.X_OK):
            sys.exit("%s: not built (cmake --build %s --target trustme-attest trustme-bench-attest-fill)" % (p, a.build))
    if not shutil.which("swtpm"):
        sys.exit("swtpm: not installed")
    work = tempfile.mkdtemp(prefix="trustme-bench-attest-")
    try:
        if a.only in (None, "start"):
            bench_start(B, work, [int(x) for x in a.sizes.split(",")], a.starts)
        if a.only in (None, "incremental"):
            # The same on no history: what history adds is the difference.
            bench_incremental(B, work, 0, a.new, a.rounds)
            bench_incremental(B, work, a.history, a.new, a.rounds)
        if a.only in (None, "serve"):
            bench_serve(B, work, a.verifiers, a.bad_clients, False)
            bench_serve(B, work, a.verifiers, a.bad_clients, True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
