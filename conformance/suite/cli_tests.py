"""runc's command line as engines use it (not the OCI spec: containerd's shim, conmon and CRI-O rely on it)."""
import json
import os
import subprocess
import time

from .harness import test, Fail, Skip, expect, first_line

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
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=subprocess.STDOUT)
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
        ctx.rt.cmd("delete", "--force", cid)


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
