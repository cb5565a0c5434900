"""runc's command line as engines use it (not the OCI spec: containerd's shim, conmon and CRI-O rely on it)."""
import json
import os
import subprocess
import time

from .harness import test, Fail, Skip, expect, first_line, empty_stdin

S = "runc CLI (engines)"


@test(S, "run: foreground exit status",
      "runc run exits with the container's exit status (shims and conmon read it).", level="SHOULD")
def run_exit(ctx):
    b = ctx.bundle(["sh", "-c", "echo hi; exit 42"])
    b.write()
    cid = ctx.new_id("run")
    out_path = os.path.join(b.dir, "run.out")
    with open(out_path, "wb") as o:
        rc, _, err = ctx.rt.cmd("run", "--bundle", b.dir, cid, stdout=o)
    ctx.rt.cmd("delete", "--force", cid)
    expect(rc == 42, f"run exit status {rc}: {first_line(err)}")
    expect(open(out_path).read() == "hi\n", "stdout not passed through")


@test(S, "run: killed by a signal -> 128+N",
      "runc run exits with 128+N when the container's process is killed by signal N.", level="SHOULD")
def run_signal(ctx):
    b = ctx.bundle(["sh", "-c", "echo ready; exec sleep 30"])
    b.write()
    cid = ctx.new_id("run")
    out_path = os.path.join(b.dir, "run.out")
    with open(out_path, "wb") as o:
        argv = ctx.rt.argv0 + ["--root", ctx.rt.root, "run", "--bundle", b.dir, cid]
        stdin = empty_stdin()
        p = subprocess.Popen(argv, stdin=stdin, stdout=o, stderr=subprocess.STDOUT)
        os.close(stdin)
        ctx.pids.append(p)
    try:
        deadline = time.monotonic() + 10
        while "ready" not in open(out_path).read():
            expect(time.monotonic() < deadline and p.poll() is None, "container never became ready")
            time.sleep(0.03)
        ctx.rt.cmd("kill", cid, "KILL")
        try:
            rc = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise Fail("run did not return after its container was killed")
        expect(rc == 137, f"run exit status {rc}")
    finally:
        try:
            ctx.rt.cmd("delete", "--force", cid)
        except Fail:
            pass  # keep the first failure as the reason


@test(S, "create --pid-file",
      "create --pid-file: the file holds the container's pid when create returns (shims read it).")
def pid_file(ctx):
    b = ctx.bundle(["true"])
    pf = os.path.join(b.dir, "pidfile")
    c = ctx.create(b, extra=("--pid-file", pf))
    expect(os.path.exists(pf), "pid file not written")
    expect(open(pf).read().strip() == str(c.state()["pid"]), "pid file differs from state pid")


@test(S, "delete --force of a running container",
      "runc delete --force kills and deletes a running container.")
def delete_force(ctx):
    b = ctx.bundle(["sh", "-c", "echo ready; sleep 30"])
    c = ctx.create(b)
    c.start()
    c.wait_output("ready")
    pid = c.pid
    c.delete(force=True)
    rc, _, _ = ctx.rt.cmd("state", c.id)
    expect(rc != 0, "container still exists")
    from .harness import pid_alive
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.03)
    expect(not pid_alive(pid), "process still alive after delete --force")


@test(S, "delete of a created container",
      "runc deletes a created (never started) container without --force (engines rely on it).")
def delete_created(ctx):
    c = ctx.create(ctx.bundle(["true"]))
    pid = c.pid
    c.delete()
    rc, _, _ = ctx.rt.cmd("state", c.id)
    expect(rc != 0, "container still exists")


@test(S, "kill signal forms: name, SIG-name, number",
      "runc kill accepts KILL, SIGKILL and 9.")
def kill_forms(ctx):
    for sig in ("SIGUSR1", "USR1", "10"):
        b = ctx.bundle(["sh", "-c", "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done"])
        c = ctx.create(b)
        c.start()
        c.wait_output("ready")
        c.kill(sig)
        c.wait_output("got-usr1")
        c.kill("KILL")
        c.wait("stopped")
        c.delete()


@test(S, "kill --all",
      "runc kill --all sends the signal to all processes of the container.")
def kill_all(ctx):
    b = ctx.bundle(["sh", "-c", "sleep 30 & echo ready; wait"])
    c = ctx.create(b)
    c.start()
    c.wait_output("ready")
    rc, _, err = ctx.rt.cmd("kill", "--all", c.id, "KILL")
    expect(rc == 0, f"kill --all failed: {first_line(err)}")
    c.wait("stopped")


@test(S, "list shows the container",
      "runc list (table) and list --format json / -q list the containers of --root.")
def list_cmd(ctx):
    c = ctx.create(ctx.bundle(["true"]))
    rc, out, err = ctx.rt.cmd("list", "-q")
    expect(rc == 0 and c.id in out.split(), f"list -q: {out!r}")
    rc, out, err = ctx.rt.cmd("list", "--format", "json")
    expect(rc == 0, f"list --format json failed: {first_line(err)}")
    items = json.loads(out)
    expect(any(i.get("id") == c.id and i.get("status") == "created" for i in items), f"list json {out[:200]!r}")


@test(S, "state has created timestamp and rootfs",
      "runc state prints created (RFC 3339) and rootfs, which engines display.", level="SHOULD")
def state_extra(ctx):
    c = ctx.create(ctx.bundle(["true"]))
    st = c.state()
    expect("created" in st and "T" in st["created"], f"created {st.get('created')!r}")
    expect(st.get("rootfs") and os.path.isabs(st["rootfs"]), f"rootfs {st.get('rootfs')!r}")


@test(S, "spec writes a runnable config.json",
      "runc spec writes a default config.json into --bundle.")
def spec_cmd(ctx):
    b = ctx.bundle()
    os.remove(os.path.join(b.dir, "config.json")) if os.path.exists(os.path.join(b.dir, "config.json")) else None
    rc, out, err = ctx.rt.cmd("spec", "--bundle", b.dir)
    expect(rc == 0, f"spec failed: {first_line(err)}")
    cfg = json.load(open(os.path.join(b.dir, "config.json")))
    expect(cfg.get("ociVersion") and cfg.get("process") and cfg.get("root"), "config lacks fields")
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "echo spec-ok"]
    cfg.setdefault("linux", {})["cgroupsPath"] = b.config["linux"]["cgroupsPath"]
    b.config = cfg
    c = ctx.run(b)
    expect("spec-ok" in c.stdout(), f"stdout {c.stdout()!r} stderr {c.stderr()[-200:]!r}")


@test(S, "features prints JSON",
      "runtime-spec features.md: the runtime's features as JSON (runc features).", level="SHOULD")
def features(ctx):
    rc, out, err = ctx.rt.cmd("features")
    if rc != 0 and "No help topic" in (out + err):
        raise Fail("no features command")
    expect(rc == 0, f"features failed: {first_line(err or out)}")
    f = json.loads(out)
    expect("ociVersionMin" in f and "ociVersionMax" in f, f"keys {sorted(f)}")


@test(S, "--log-format json error lines",
      "runc writes errors as JSON lines ({level, msg, time}) to --log when --log-format json (shims read them).")
def log_json(ctx):
    log = os.path.join(ctx.scratch, "log.json")
    argv = ctx.rt.argv0 + ["--root", ctx.rt.root, "--log", log, "--log-format", "json", "state", "conf-nope"]
    p = subprocess.run(argv, capture_output=True, timeout=15)
    expect(p.returncode != 0, "state of an unknown id succeeded")
    lines = [l for l in open(log).read().splitlines() if l.strip()] if os.path.exists(log) else []
    expect(lines, "nothing logged")
    rec = json.loads(lines[-1])
    expect(rec.get("level") == "error" and rec.get("msg"), f"log line {lines[-1]!r}")


def _running(ctx, script="echo ready; while true; do sleep 0.1; done", mutate=None):
    b = ctx.bundle(["sh", "-c", script])
    if mutate:
        mutate(b.config, b)
    c = ctx.create(b)
    c.start()
    c.wait_output("ready")
    return c


@test(S, "create --console-socket: pty master over SCM_RIGHTS",
      "runc create --console-socket: with terminal true the pty master is sent over the unix socket "
      "(SCM_RIGHTS); containerd's shim and conmon rely on it.")
def console_socket(ctx):
    import array
    import socket
    path = os.path.join(ctx.scratch, "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(15)
    ctx.cleanups.append(srv.close)
    b = ctx.bundle(["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; tty; sleep 1"])
    b.config["process"]["terminal"] = True
    c = ctx.create(b, extra=("--console-socket", path))
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        raise Fail("nothing connected to the console socket")
    conn.settimeout(5)
    msg, fds, _, _ = socket.recv_fds(conn, 4096, 4)
    conn.close()
    expect(len(fds) == 1, f"received {len(fds)} fds")
    master = fds[0]
    ctx.cleanups.append(lambda: os.close(master))
    c.start()
    buf = b""
    deadline = time.monotonic() + 10
    import select
    while time.monotonic() < deadline and b"/dev/" not in buf:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    text = buf.decode(errors="replace")
    expect("on-a-tty" in text, f"pty output {text!r}")
    expect("/dev/pts/" in text or "/dev/console" in text, f"tty name {text!r}")


@test(S, "create --preserve-fds",
      "runc create --preserve-fds N passes fds 3..3+N-1 to the container process.")
def preserve_fds(ctx):
    b = ctx.bundle(["sh", "-c", "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    data = os.path.join(ctx.scratch, "fd3")
    with open(data, "w") as f:
        f.write("via-fd3\n")
    b.write()
    from .harness import Container
    c = Container(ctx, ctx.new_id(), b)
    ctx.containers.append(c)
    b.config["linux"]["cgroupsPath"] = b.config["linux"].get("cgroupsPath")
    fd = os.open(data, os.O_RDONLY)
    try:
        if fd != 3:
            os.dup2(fd, 3, inheritable=True)
            os.close(fd)
        os.set_inheritable(3, True)
        argv = ctx.rt.argv0 + ["--root", ctx.rt.root, "create", "--bundle", b.dir, "--preserve-fds", "1", c.id]
        with open(c.out_path, "ab") as o, open(c.err_path, "ab") as e:
            stdin = empty_stdin()
            try:
                p = subprocess.run(argv, stdin=stdin, stdout=o, stderr=e, pass_fds=(3,), timeout=15)
            finally:
                os.close(stdin)
    finally:
        os.close(3)
    expect(p.returncode == 0, f"create failed: {first_line(c.stderr())}")
    c.state()
    c.start()
    c.wait("stopped")
    expect("via-fd3" in c.stdout(), f"stdout {c.stdout()!r}")
    fds = c.stdout().split("\n")[-1].split()
    expect(set(fds) <= {"0", "1", "2", "3", "255"} or len(fds) <= 5, f"fds in the container: {fds}")


@test(S, "exec: runs in the container's namespaces",
      "runc exec runs a process inside the container, joining its namespaces, cgroup, capabilities.")
def exec_inline(ctx):
    c = _running(ctx, mutate=lambda cfg, b: cfg.update({"hostname": "exec-host"}))
    rc, out, err = ctx.rt.cmd("exec", c.id, "sh", "-c",
                                "hostname; readlink /proc/self/ns/pid; readlink /proc/1/ns/pid")
    expect(rc == 0, f"exec failed: {first_line(err)}")
    lines = out.split()
    expect(lines[:1] == ["exec-host"], f"hostname {lines[:1]}")
    expect(len(lines) == 3 and lines[1] == lines[2], f"pid namespaces {lines[1:]}")


@test(S, "exec: exit status",
      "runc exec exits with the process' exit status.")
def exec_status(ctx):
    c = _running(ctx)
    rc, out, err = ctx.rt.cmd("exec", c.id, "sh", "-c", "exit 5")
    expect(rc == 5, f"exec exit status {rc}: {first_line(err)}")


@test(S, "exec --process process.json",
      "runc exec --process FILE takes a runtime-spec process object (what containerd's shim and conmon use).")
def exec_process_json(ctx):
    c = _running(ctx)
    pj = os.path.join(ctx.scratch, "process.json")
    with open(pj, "w") as f:
        json.dump({"terminal": False, "user": {"uid": 1000, "gid": 1000}, "args": ["sh", "-c", "id -u; pwd; echo $X"],
                   "env": ["PATH=/bin:/usr/bin", "X=from-json"], "cwd": "/tmp"}, f)
    rc, out, err = ctx.rt.cmd("exec", "--process", pj, c.id)
    expect(rc == 0, f"exec failed: {first_line(err)}")
    expect(out.split() == ["1000", "/tmp", "from-json"], f"output {out!r}")


@test(S, "exec -d --pid-file",
      "runc exec --detach --pid-file: returns at once, the pid file holds the exec'd process' pid.")
def exec_detach(ctx):
    c = _running(ctx)
    pf = os.path.join(ctx.scratch, "exec.pid")
    errf = os.path.join(ctx.scratch, "exec.err")
    # the detached process inherits exec's stdio: files, not pipes, or we would wait for it
    with open(errf, "wb") as e:
        rc, _, _ = ctx.rt.cmd("exec", "-d", "--pid-file", pf, c.id, "sleep", "30",
                              stdout=subprocess.DEVNULL, stderr=e)
    expect(rc == 0, f"exec -d failed: {first_line(open(errf).read())}")
    pid = int(open(pf).read().strip())
    from .harness import pid_alive
    expect(pid_alive(pid), "exec'd process not alive")
    comm = open(f"/proc/{pid}/comm").read().strip()
    expect(comm == "sleep", f"pid file names {comm!r}")


@test(S, "exec into a stopped container is an error",
      "runc exec into a stopped container fails and leaves the container untouched.")
def exec_stopped(ctx):
    c = ctx.create(ctx.bundle(["true"]))
    c.start()
    c.wait("stopped")
    rc, out, err = ctx.rt.cmd("exec", c.id, "true")
    expect(rc != 0, "exec into a stopped container succeeded")
    expect(c.status() == "stopped", f"status {c.status()!r}")


@test(S, "pause and resume",
      "runc pause freezes every process of the container (state paused); resume thaws them.")
def pause_resume(ctx):
    c = _running(ctx, "i=0; echo ready; while true; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.05; done")
    rc, _, err = ctx.rt.cmd("pause", c.id)
    expect(rc == 0, f"pause failed: {first_line(err)}")
    expect(c.status() == "paused", f"status {c.status()!r}")
    tick = os.path.join(c.bundle.rootfs, "tmp", "tick")
    a = open(tick).read()
    time.sleep(0.5)
    expect(open(tick).read() == a, "the container kept running while paused")
    rc, _, err = ctx.rt.cmd("resume", c.id)
    expect(rc == 0, f"resume failed: {first_line(err)}")
    expect(c.status() == "running", f"status {c.status()!r}")
    deadline = time.monotonic() + 5
    while open(tick).read() == a and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(open(tick).read() != a, "the container did not run again after resume")


@test(S, "ps --format json",
      "runc ps --format json lists the container's host pids.")
def ps_json(ctx):
    c = _running(ctx, "sleep 30 & echo ready; wait")
    rc, out, err = ctx.rt.cmd("ps", "--format", "json", c.id)
    expect(rc == 0, f"ps failed: {first_line(err)}")
    pids = json.loads(out)
    expect(c.pid in pids and len(pids) >= 2, f"ps pids {pids}, init {c.pid}")


@test(S, "events --stats",
      "runc events --stats prints one JSON stats event (containerd's shim reads it for metrics).")
def events_stats(ctx):
    c = _running(ctx)
    rc, out, err = ctx.rt.cmd("events", "--stats", c.id)
    expect(rc == 0, f"events --stats failed: {first_line(err)}")
    ev = json.loads(out.strip().splitlines()[0])
    expect(ev.get("type") == "stats" and ev.get("id") == c.id, f"event {out[:120]!r}")
    data = ev.get("data", {})
    expect("memory" in data and "pids" in data, f"stats keys {sorted(data)}")


@test(S, "update --pids-limit / --resources",
      "runc update changes the container's cgroup limits while it runs.")
def update(ctx):
    c = _running(ctx)
    rc, _, err = ctx.rt.cmd("update", "--pids-limit", "77", c.id)
    expect(rc == 0, f"update --pids-limit failed: {first_line(err)}")
    got = _cgroup_file(c.state()["pid"], "pids", "pids.max", "pids.max")
    expect(got == "77", f"pids.max {got}")
    res = os.path.join(ctx.scratch, "res.json")
    with open(res, "w") as f:
        json.dump({"memory": {"limit": 96 * 1024 * 1024}}, f)
    rc, _, err = ctx.rt.cmd("update", "--resources", res, c.id)
    expect(rc == 0, f"update --resources failed: {first_line(err)}")
    got = int(_cgroup_file(c.state()["pid"], "memory", "memory.limit_in_bytes", "memory.max"))
    expect(got == 96 * 1024 * 1024, f"memory limit {got}")


def _cgroup_file(pid, controller, v1_file, v2_file):
    """A file of the cgroup the process is in, found from /proc/PID/cgroup: cgroup v1 (the controller's
    hierarchy) or v2, whatever driver (a cgroupsPath or a systemd unit) placed it there."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, ctrls, path in lines:
        if controller in ctrls.split(","):
            with open(f"/sys/fs/cgroup/{controller}{path}/{v1_file}") as f:
                return f.read().strip()
    for hid, ctrls, path in lines:
        if hid == "0" and ctrls == "":
            with open(f"/sys/fs/cgroup{path}/{v2_file}") as f:
                return f.read().strip()
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


@test(S, "kill with an unknown signal is an error",
      "runc kill with an unknown signal name fails and the container keeps running.")
def kill_bad_signal(ctx):
    c = _running(ctx)
    rc, _, _ = ctx.rt.cmd("kill", c.id, "SIGNOPE")
    expect(rc != 0, "kill accepted an unknown signal")
    expect(c.status() == "running", f"status {c.status()!r}")
