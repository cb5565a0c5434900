"""What engines and images rely on without the spec saying so: runc 1.1's behaviour, held in place."""
import json
import os
import select
import subprocess
import time

from .harness import test, Fail, Skip, expect, first_line, empty_stdin

S = "runc behaviour (images, engines)"

PASSWD_USER = "app:x:1000:1000:app:/home/app:/bin/sh\n"


def _add_user(b):
    with open(os.path.join(b.rootfs, "etc", "passwd"), "a") as f:
        f.write(PASSWD_USER)


def _no_home(c):
    c["process"]["env"] = [e for e in c["process"]["env"] if not e.startswith("HOME=")]


def _read_until_eof(fd, timeout=15.0):
    """Everything written to the pipe `fd` until every writer closed it, bounded in time."""
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail(f"no end of output in {timeout:.0f}s; got {out[-200:]!r}")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return out.decode(errors="replace")
        out += chunk


def _create_piped(ctx, b, env=None, wrap=None, fds=()):
    """create with the container's stdout and stderr on a pipe of ours (as a shim gives them); returns the
    container and the pipe's read end. `wrap` is a shell snippet run before exec'ing the runtime."""
    from .harness import Container
    c = Container(ctx, ctx.new_id(), b)
    b.config["linux"].setdefault("cgroupsPath", f"/trustme-conformance-{os.getpid()}/{c.id}")
    c.cgroup = b.config["linux"]["cgroupsPath"]
    b.write()
    ctx.containers.append(c)
    r, w = os.pipe()
    argv = ctx.rt.argv0 + ["--root", ctx.rt.root, "create", "--bundle", b.dir, c.id]
    if wrap:
        argv = ["sh", "-c", wrap + ' exec "$@"', "sh"] + argv
    stdin = empty_stdin()
    p = subprocess.Popen(argv, stdin=stdin, stdout=w, stderr=w, env=env, pass_fds=fds,
                         start_new_session=True)
    os.close(stdin)
    os.close(w)
    try:
        rc = p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        os.close(r)
        raise Fail("create did not finish in 15s")
    if rc != 0:
        os.set_blocking(r, False)
        try:
            err = os.read(r, 4096).decode(errors="replace")
        except BlockingIOError:
            err = ""
        os.close(r)
        raise Fail(f"create failed: {first_line(err)}")
    c.state()
    return c, r


@test(S, "HOME from the container's /etc/passwd",
      "runc sets HOME from the container's /etc/passwd entry of process.user.uid when process.env has none "
      "(\"/\" without an entry); images rely on it (git, pip, ssh).")
def home_from_passwd(ctx):
    def m(uid):
        def f(c, b):
            _no_home(c)
            _add_user(b)
            c["process"]["user"] = {"uid": uid, "gid": uid}
        return f
    for uid, want in ((0, "/root"), (1000, "/home/app"), (4242, "/")):
        out = ctx.sh('echo "home=$HOME"', m(uid))
        expect(f"home={want}\n" in out, f"uid {uid}: {out.strip()!r}, want HOME={want}")
    out = ctx.sh('echo "home=$HOME"', lambda c, b: c["process"]["env"].append("HOME=/explicit"))
    expect("home=/explicit\n" in out, f"explicit HOME replaced: {out.strip()!r}")


@test(S, "exec: HOME from the container's /etc/passwd",
      "runc exec sets HOME from the container's /etc/passwd for the exec'd user when its env has none.")
def exec_home(ctx):
    b = ctx.bundle(["sh", "-c", "echo ready; while true; do sleep 0.1; done"])
    _no_home(b.config)
    _add_user(b)
    c = ctx.create(b)
    c.start()
    c.wait_output("ready")
    rc, out, err = ctx.rt.cmd("exec", "--user", "1000:1000", c.id, "sh", "-c", 'echo "home=$HOME"')
    expect(rc == 0, f"exec failed: {first_line(err)}")
    expect(out.strip() == "home=/home/app", f"exec as 1000: {out.strip()!r}")


@test(S, "missing process.cwd is created",
      "runc creates a missing process.cwd (mkdir -p inside the root, before root.readonly applies): a "
      "Kubernetes workingDir the image lacks.")
def cwd_created(ctx):
    def m(c, b):
        c["process"]["cwd"] = "/work/dir/deep"
        c["root"]["readonly"] = True
    out = ctx.sh("pwd; touch /x 2>/dev/null && echo writable", m)
    expect(out.splitlines()[:1] == ["/work/dir/deep"], f"pwd {out.strip()!r}")
    expect("writable" not in out, "root.readonly no longer applies")


@test(S, "default devices without a /dev mount",
      "config-linux.md Default Devices: the runtime MUST supply null, zero, full, random, urandom, tty and "
      "the /dev/fd, stdin, stdout, stderr, ptmx links; runc does whenever /dev is not a bind mount.")
def devices_without_dev_mount(ctx):
    def m(c, b):
        c["mounts"] = [x for x in c["mounts"] if x["destination"] not in ("/dev", "/dev/shm", "/dev/mqueue")]
    out = ctx.sh("for d in null zero full random urandom tty; do test -c /dev/$d && echo dev-$d; done; "
                 "for l in fd stdin stdout stderr ptmx; do echo link-$l=$(readlink /dev/$l); done; "
                 "exec 3<>/dev/ptmx && echo ptmx-opens", m)
    for d in ("null", "zero", "full", "random", "urandom", "tty"):
        expect(f"dev-{d}\n" in out, f"/dev/{d} missing: {out.strip()!r}")
    for l, t in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                 ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):
        expect(f"link-{l}={t}\n" in out, f"/dev/{l} is not a link to {t}: {out.strip()!r}")
    expect("ptmx-opens" in out, f"/dev/ptmx does not open (terminal: true would fail): {out.strip()!r}")


@test(S, "loopback up in a new network namespace",
      "runc brings lo up in every network namespace it creates (podman --network=none, plain bundles reach "
      "127.0.0.1).")
def loopback_up(ctx):
    out = ctx.sh("cat /sys/class/net/lo/flags")
    try:
        flags = int(out.strip(), 16)
    except ValueError:
        raise Fail(f"lo flags {out.strip()!r}")
    expect(flags & 1, f"lo is down (flags {out.strip()})")


@test(S, "hook without env inherits the runtime's environment",
      "runc runs a hook without \"env\" with the runtime's own environment (PATH among it; GPU hooks rely on "
      "it); \"env\": [] stays empty.")
def hook_env_inherited(ctx):
    logdir = os.path.join(ctx.scratch, "hookenv")
    os.makedirs(logdir)
    b = ctx.bundle(["true"])
    b.config["hooks"] = {
        "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f'echo "mark=$CONFORMANCE_MARK" > {logdir}/none']}],
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f'echo "mark=$CONFORMANCE_MARK" > {logdir}/empty'],
                           "env": []}],
    }
    os.environ["CONFORMANCE_MARK"] = "inherited"
    try:
        ctx.create(b)
    finally:
        del os.environ["CONFORMANCE_MARK"]
    got = open(os.path.join(logdir, "none")).read().strip()
    expect(got == "mark=inherited", f"hook without env: {got!r}")
    got = open(os.path.join(logdir, "empty")).read().strip()
    expect(got == "mark=", f"hook with env []: {got!r}")


@test(S, "stdio pipes owned by the process user",
      "runc fchowns the init's stdio to process.user.uid (not /dev/null), so a non-root program can reopen "
      "/dev/stdout (nginx logs there).")
def stdio_owner(ctx):
    b = ctx.bundle(["sh", "-c", "stat -L -c owner=%u /proc/self/fd/1; echo reopened > /dev/stdout"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    c, r = _create_piped(ctx, b)
    try:
        c.start()
        out = _read_until_eof(r)
    finally:
        os.close(r)
    expect("owner=1000" in out, f"stdout pipe not owned by 1000: {out.strip()!r}")
    expect("reopened" in out, f"reopening /dev/stdout failed: {out.strip()!r}")


@test(S, "socket activation: LISTEN_FDS passed on",
      "runc create with LISTEN_PID (its pid) and LISTEN_FDS=N passes fds 3..3+N-1 into the container and "
      "sets LISTEN_FDS=N and LISTEN_PID=1 there (podman socket activation).")
def listen_fds(ctx):
    lr, lw = os.pipe()
    os.write(lw, b"from-the-socket\n")
    os.close(lw)
    fd = os.dup2(lr, 9)  # the wrapper's shell moves it to 3
    os.close(lr)
    b = ctx.bundle(["sh", "-c", 'echo "lf=$LISTEN_FDS lp=$LISTEN_PID"; read x <&3; echo "got=$x"'])
    try:
        c, r = _create_piped(ctx, b, wrap="export LISTEN_PID=$$ LISTEN_FDS=1; exec 3<&9 9<&-;", fds=(fd,))
    finally:
        os.close(fd)
    try:
        c.start()
        out = _read_until_eof(r)
    finally:
        os.close(r)
    expect("lf=1 lp=1" in out, f"environment: {out.strip()!r}")
    expect("got=from-the-socket" in out, f"fd 3 not passed on: {out.strip()!r}")


def _umount_under(path):
    for _ in range(10):
        with open("/proc/self/mountinfo") as f:
            mps = [l.split()[4] for l in f if l.split()[4].startswith(path + "/")]
        if not mps:
            return
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


@test(S, "no mount namespace: chroot into root.path",
      "runc and crun accept linux.namespaces without \"mount\" and chroot into root.path.")
def no_mount_namespace(ctx):
    b = ctx.bundle(["sh", "-c", "cat /marker; ls /proc/self/fd >/dev/null && echo proc-ok"])
    with open(os.path.join(b.rootfs, "marker"), "w") as f:
        f.write("inside-the-rootfs\n")
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"] if n["type"] != "mount"]
    b.config["mounts"] = []
    b.config["linux"]["maskedPaths"] = []
    b.config["linux"]["readonlyPaths"] = []
    # The container shares the runtime's mount namespace: a private one made for the command, where runc's
    # own mounts (it still bind-mounts the rootfs) and the /proc runc needs stay, never on the host.
    old = ctx.rt.argv0
    ctx.rt.argv0 = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    f'mount -t proc proc {b.rootfs}/proc && exec "$@"', "sh"] + old
    try:
        c = ctx.create(b)
    finally:
        ctx.rt.argv0 = old
        ctx.cleanups.append(lambda: _umount_under(b.dir))
    c.start()
    c.wait("stopped")
    out = c.stdout() + c.stderr()
    expect("inside-the-rootfs" in out, f"not chrooted into root.path: {out.strip()!r}")
    expect("proc-ok" in out, f"{out.strip()!r}")


@test(S, "hook state: creating before the init is ready",
      "runc 1.1 passes status \"creating\" to prestart, createRuntime and createContainer hooks (runtime.md: "
      "creating until the create operation finishes).")
def hook_state_creating(ctx):
    logdir = os.path.join(ctx.scratch, "hookstate")
    os.makedirs(logdir)
    os.chmod(logdir, 0o777)
    b = ctx.bundle(["true"])
    b.config["mounts"].append({"destination": logdir, "type": "bind", "source": logdir, "options": ["rbind", "rw"]})
    b.config["hooks"] = {k: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {logdir}/{k}.json"]}]
                         for k in ("prestart", "createRuntime", "createContainer")}
    ctx.create(b)
    for k in ("prestart", "createRuntime", "createContainer"):
        try:
            st = json.load(open(os.path.join(logdir, k + ".json")))
        except (OSError, ValueError) as e:
            raise Fail(f"{k}: no state ({e})")
        expect(st.get("status") == "creating", f"{k}: status {st.get('status')!r}")


def _cg_file(c, ctrl, name):
    return open(f"/sys/fs/cgroup/{ctrl}{c.bundle.config['linux']['cgroupsPath']}/{name}").read().strip()


@test(S, "update: runc 1.1's flags",
      "runc update --cpu-share, --cpu-quota, --cpu-period, --memory (with units), --memory-reservation, "
      "--memory-swap, --pids-limit, --cpuset-cpus change the cgroup; --kernel-memory is accepted and ignored.")
def update_flags(ctx):
    if not os.path.isdir("/sys/fs/cgroup/cpu") or not os.path.isdir("/sys/fs/cgroup/memory"):
        raise Skip("needs cgroup v1 cpu and memory hierarchies")
    b = ctx.bundle(["sh", "-c", "echo ready; while true; do sleep 0.1; done"])
    c = ctx.create(b)
    c.start()
    c.wait_output("ready")
    rc, _, err = ctx.rt.cmd("update", "--cpu-share", "512", "--cpu-quota", "20000", "--cpu-period", "100000",
                            "--memory", "64m", "--memory-reservation", "32M", "--memory-swap", "128MiB",
                            "--pids-limit", "50", "--cpuset-cpus", "0", "--kernel-memory", "1g", c.id)
    expect(rc == 0, f"update failed: {first_line(err)}")
    want = {("cpu", "cpu.shares"): "512", ("cpu", "cpu.cfs_quota_us"): "20000",
            ("cpu", "cpu.cfs_period_us"): "100000", ("memory", "memory.limit_in_bytes"): str(64 << 20),
            ("memory", "memory.soft_limit_in_bytes"): str(32 << 20), ("pids", "pids.max"): "50",
            ("cpuset", "cpuset.cpus"): "0"}
    if os.path.exists(f"/sys/fs/cgroup/memory{b.config['linux']['cgroupsPath']}/memory.memsw.limit_in_bytes"):
        want[("memory", "memory.memsw.limit_in_bytes")] = str(128 << 20)
    for (ctrl, name), v in want.items():
        got = _cg_file(c, ctrl, name)
        expect(got == v, f"{name} {got}, want {v}")
    rc, _, _ = ctx.rt.cmd("update", "--cpu-sharez", "2", c.id)
    expect(rc != 0, "an unknown update flag was accepted")


@test(S, "--log that cannot be opened fails",
      "runc exits 1 when its --log file cannot be opened (the engine would lose the error lines).")
def log_unopenable(ctx):
    bad = os.path.join(ctx.scratch, "no-such-dir", "log.json")
    rc, out, err = ctx.rt.cmd("--log", bad, "--log-format", "json", "list")
    expect(rc == 1, f"exit status {rc}")
    expect(bad in err, f"error does not name the file: {first_line(err)}")


@test(S, "root.path that is a symlink is refused",
      "runc refuses a root.path with a symlink in it: \"invalid rootfs: not an absolute path, or a symlink\".")
def rootfs_symlink(ctx):
    b = ctx.bundle(["true"])
    os.rename(b.rootfs, b.rootfs + ".real")
    os.symlink("rootfs.real", b.rootfs)
    c = ctx.create(b, check=False)
    expect(c.create_rc != 0, "create accepted a symlinked root.path")
    expect("symlink" in c.stderr(), f"error does not say why: {first_line(c.stderr())}")
    rc, _, _ = ctx.rt.cmd("state", c.id)
    expect(rc != 0, "the refused container exists")


@test(S, "process.scheduler without a real-time budget",
      "runtime-spec 1.1 process.scheduler: SCHED_FIFO in a cgroup v1 cgroup with cpu.rt_runtime_us 0 either "
      "runs with the policy or fails naming realtimeRuntime, never with a bare EPERM.", level="SHOULD")
def scheduler_rt_budget(ctx):
    if not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        raise Skip("no cgroup v1 real-time group scheduling on this host")
    b = ctx.bundle(["sh", "-c", "grep '^policy' /proc/self/sched"])
    b.config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 1}
    c = ctx.create(b, check=False)
    if c.create_rc != 0:
        expect("realtimeRuntime" in c.stderr(), f"create failed without naming realtimeRuntime: "
                                                f"{first_line(c.stderr())}")
        return
    c.start()
    c.wait("stopped")
    out = c.stdout()
    expect(out.split()[-1:] == ["1"], f"runs, but not SCHED_FIFO: {out.strip()!r}")


@test(S, "read-only /dev mount gets its devices",
      "runc mounts a /dev that the config makes read-only writable first, makes the devices and links, then "
      "remounts it read-only.")
def dev_readonly(ctx):
    def m(c, b):
        for x in c["mounts"]:
            if x["destination"] == "/dev":
                x["options"].append("ro")
    out = ctx.sh("test -c /dev/null && echo null-ok; readlink /dev/stdout; touch /dev/x 2>/dev/null || echo dev-ro", m)
    expect("null-ok" in out, f"/dev/null missing: {out.strip()!r}")
    expect("/proc/self/fd/1" in out, f"/dev/stdout link missing: {out.strip()!r}")
    expect("dev-ro" in out, f"/dev is writable: {out.strip()!r}")
