"""Harness of the runtime-agnostic conformance suite.

A runtime is any binary with runc's command line (create/start/state/kill/delete, --root, --bundle).
Every test gets fresh bundles (a copy of a busybox-static rootfs), a private --root per runtime, and a
deadline; every container it creates is deleted and every process it leaves is killed by PID.
"""
import copy
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36
CMD_TIMEOUT = 15.0      # seconds for one runtime command
WAIT_TIMEOUT = 15.0     # seconds for a container to reach a state



def empty_stdin():
    """A pipe's read end with no writer (EOF at once, as /dev/null gives) for a runtime's stdin. Never the
    host's /dev/null: a runtime that fchowns its stdio to the container's user (crun 1.8.1 does) would chown
    the host's /dev/null. The caller closes it once the process is started."""
    r, w = os.pipe()
    os.close(w)
    return r

class Fail(Exception):
    """The runtime does not do what the spec sentence requires."""


class Skip(Exception):
    """The test cannot be judged on this host or with this runtime."""


class Result:
    def __init__(self, status, reason=""):
        self.status = status  # "pass" | "fail" | "skip"
        self.reason = reason


TESTS = []


def test(section, name, cite, level="MUST"):
    """Registers a test: section (runtime.md, config.md, config-linux.md, runc-cli), a short name, the spec
    sentence it checks, and whether the sentence says MUST or SHOULD."""
    def deco(fn):
        TESTS.append(dict(section=section, name=name, cite=cite, level=level, fn=fn))
        return fn
    return deco


def set_subreaper():
    """Containers are re-parented to us (as they are to a shim), so we can reap them and see exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_all():
    """Reaps every exited orphan. Only called between commands (no subprocess of ours is running)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    state = data.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def cgroup_parent():
    return f"/trustme-conformance-{os.getpid()}"


# conformance/run --systemd-cgroup: every runtime runs with its systemd cgroup driver.
SYSTEMD = False


def cgroups_path(name):
    """A container's cgroupsPath: below our parent, or a transient unit "slice:prefix:name" (systemd driver)."""
    if SYSTEMD:
        return f"system.slice:trustme-conformance:{os.getpid()}-{name}"
    return f"{cgroup_parent()}/{name}"


def cgroup_pids(path):
    if not path:
        return []
    try:
        with open(f"/sys/fs/cgroup/pids{path}/cgroup.procs") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def remove_cgroup_parent():
    """Removes our cgroup parent bottom-up in every hierarchy (only empty cgroups go), and those of earlier
    runs whose runner died (named after a pid that no longer runs this suite)."""
    def ours_or_dead(name):
        tag = name[len("trustme-conformance-"):]
        if tag == str(os.getpid()):
            return True
        if not tag.isdigit():
            return False
        try:
            with open(f"/proc/{tag}/cmdline", "rb") as f:
                return b"conformance" not in f.read()
        except OSError:
            return True
    for attempt in range(3):
        left = False
        for h in os.listdir("/sys/fs/cgroup"):
            hdir = f"/sys/fs/cgroup/{h}"
            try:
                tops = [n for n in os.listdir(hdir) if n.startswith("trustme-conformance-") and ours_or_dead(n)]
            except OSError:
                continue
            for top in tops:
                for dirpath, _, _ in sorted(os.walk(os.path.join(hdir, top)), key=lambda e: -e[0].count("/")):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        left = True
        if not left:
            return
        time.sleep(0.3)


def default_config(args):
    """A config close to `runc spec`, with terminal false and a writable root, so tests can write."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                             for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


class Runtime:
    def __init__(self, name, path, workdir):
        self.name = name
        self.path = path
        self.workdir = workdir
        self.root = os.path.join(workdir, "root")
        os.makedirs(self.root, exist_ok=True)
        self.argv0 = [path]

    def cmd(self, *args, stdin=None, stdout=None, stderr=None, timeout=CMD_TIMEOUT):
        """Runs `runtime --root R args...`; returns (rc, out, err) with out/err text when captured."""
        argv = self.argv0 + (["--systemd-cgroup"] if SYSTEMD else []) + ["--root", self.root] + [str(a) for a in args]
        cap_out = stdout is None
        cap_err = stderr is None
        own_stdin = stdin is None
        if own_stdin:
            stdin = empty_stdin()
        try:
            p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE if cap_out else stdout,
                                 stderr=subprocess.PIPE if cap_err else stderr, start_new_session=True)
        finally:
            if own_stdin:
                os.close(stdin)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.communicate()
            raise Fail(f"`{' '.join(str(a) for a in args[:2])}` did not finish in {timeout:.0f}s")
        return p.returncode, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


class Container:
    def __init__(self, ctx, cid, bundle):
        self.ctx = ctx
        self.id = cid
        self.bundle = bundle
        self.pid = None
        self.out_path = os.path.join(bundle.dir, "stdout")
        self.err_path = os.path.join(bundle.dir, "stderr")

    def state(self):
        rc, out, err = self.ctx.rt.cmd("state", self.id)
        if rc != 0:
            return None
        try:
            st = json.loads(out)
        except ValueError:
            raise Fail(f"state output is not JSON: {out[:80]!r}")
        if st.get("pid"):
            self.pid = st["pid"]
        return st

    def status(self):
        st = self.state()
        return st.get("status") if st else None

    def start(self, check=True):
        rc, out, err = self.ctx.rt.cmd("start", self.id)
        if check and rc != 0:
            raise Fail(f"start failed: {first_line(err or out)}")
        return rc, out, err

    def kill(self, sig="KILL", check=True):
        rc, out, err = self.ctx.rt.cmd("kill", self.id, sig)
        if check and rc != 0:
            raise Fail(f"kill {sig} failed: {first_line(err or out)}")
        return rc, out, err

    def delete(self, force=False, check=True):
        args = ["delete"] + (["--force"] if force else []) + [self.id]
        rc, out, err = self.ctx.rt.cmd(*args)
        if check and rc != 0:
            raise Fail(f"delete failed: {first_line(err or out)}")
        return rc, out, err

    def wait(self, status="stopped", timeout=WAIT_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.pid:
                try:
                    os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            last = self.status()
            if last == status:
                return
            time.sleep(0.03)
        raise Fail(f"container did not become {status} (last status {last})")

    def wait_output(self, text, timeout=WAIT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stdout():
                return
            time.sleep(0.03)
        raise Fail(f"container never printed {text!r}; stdout {self.stdout()[-120:]!r} "
                   f"stderr {self.stderr()[-160:]!r}")

    def stdout(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()


class Bundle:
    def __init__(self, ctx, path, config):
        self.ctx = ctx
        self.dir = path
        self.config = config
        self.rootfs = os.path.join(path, "rootfs")

    def write(self):
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(self.config, f, indent=1)


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:200]
    return "(no message)"


class Context:
    """What one test sees: one runtime, a scratch dir, and every container it made (cleaned up after)."""

    def __init__(self, rt, base_rootfs, scratch, serial):
        self.rt = rt
        self.base_rootfs = base_rootfs
        self.scratch = scratch
        self.serial = serial
        self.containers = []
        self.pids = []       # helper processes to kill at the end
        self.nbundles = 0
        self.cleanups = []

    def new_id(self, suffix=""):
        return f"conf-{os.getpid()}-{self.serial}-{len(self.containers)}{suffix}"

    def bundle(self, args=("sh", "-c", "true")):
        self.nbundles += 1
        d = os.path.join(self.scratch, f"bundle{self.nbundles}")
        os.makedirs(d)
        subprocess.run(["cp", "-a", self.base_rootfs, os.path.join(d, "rootfs")], check=True)
        cfg = default_config(args)
        cfg["linux"]["cgroupsPath"] = cgroups_path(f"t{self.serial}-b{self.nbundles}")
        return Bundle(self, d, cfg)

    def create(self, bundle, cid=None, check=True, extra=()):
        """create with the container's stdio sent to files in the bundle (terminal false: passthrough)."""
        c = Container(self, cid or self.new_id(), bundle)
        # every container's cgroup lives under our own parent, removed at the end (cgroup_parent())
        bundle.config.setdefault("linux", {}).setdefault("cgroupsPath", cgroups_path(c.id))
        c.cgroup = bundle.config["linux"]["cgroupsPath"]
        if not c.cgroup.startswith("/"):
            c.cgroup = None
        bundle.write()
        self.containers.append(c)
        with open(c.out_path, "ab") as out, open(c.err_path, "ab") as err:
            rc, _, _ = self.rt.cmd("create", "--bundle", bundle.dir, *extra, c.id, stdout=out, stderr=err)
        c.create_rc = rc
        if check and rc != 0:
            raise Fail(f"create failed: {first_line(c.stderr())}")
        if rc == 0:
            c.state()
        return c

    def run(self, bundle, timeout=WAIT_TIMEOUT):
        """create + start + wait for stopped; returns the container (output in c.stdout())."""
        c = self.create(bundle)
        c.start()
        c.wait("stopped", timeout)
        return c

    def sh(self, script, mutate=None, timeout=WAIT_TIMEOUT):
        """Runs `sh -c script` in a container made from the default config changed by mutate(config, bundle);
        returns its stdout + stderr."""
        b = self.bundle(["sh", "-c", script])
        if mutate:
            mutate(b.config, b)
        c = self.run(b, timeout)
        return c.stdout() + c.stderr()

    def spawn(self, argv):
        """A helper process on the host, killed by PID at the end of the test."""
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pids.append(p)
        return p

    def cleanup(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception:
                pass
        for c in self.containers:
            try:
                if c.status() is not None:
                    c.kill("KILL", check=False)
                    # a delete can fail while the container's last processes are still dying, or are
                    # zombies re-parented to us (exec -d): reap, retry
                    for _ in range(5):
                        time.sleep(0.05)
                        reap_all()
                        c.delete(force=True, check=False)
                        if c.status() is None:
                            break
                        time.sleep(0.2)
            except Fail:
                pass
            if c.pid and pid_alive(c.pid):
                try:
                    os.kill(c.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for c in self.containers:
            # a runtime killed half-way through create may leave a process in the container's cgroup
            for pid in cgroup_pids(getattr(c, "cgroup", None)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.pids:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        reap_all()


def run_test(rt, t, base_rootfs, serial, deadline_s=60):
    scratch = tempfile.mkdtemp(prefix=f"t{serial}-", dir=rt.workdir)
    os.chmod(scratch, 0o755)  # user-namespaced containers must reach their rootfs
    ctx = Context(rt, base_rootfs, scratch, serial)

    def on_alarm(signum, frame):
        raise Fail(f"test exceeded its {deadline_s}s deadline")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(deadline_s)
    try:
        t["fn"](ctx)
        res = Result("pass")
    except Fail as e:
        res = Result("fail", str(e))
    except Skip as e:
        res = Result("skip", str(e))
    except Exception as e:  # a bug in the test or an unexpected runtime answer
        res = Result("fail", f"{type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
    signal.alarm(90)  # the clean-up is bounded too
    try:
        ctx.cleanup()
    except Fail:
        print(f"conformance: {rt.name}: clean-up after {t['name']!r} did not finish", file=sys.stderr)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    shutil.rmtree(scratch, ignore_errors=True)
    return res


def expect(cond, reason):
    if not cond:
        raise Fail(reason)


def deepcopy(x):
    return copy.deepcopy(x)
