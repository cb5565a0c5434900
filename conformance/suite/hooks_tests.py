"""config.md#posix-platform-hooks and runtime.md lifecycle steps for hooks (runtime-spec v1.0.2)."""
import json
import os
import time

from .harness import test, Fail, Skip, expect, first_line

S = "config.md hooks"
ALL = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _hook(logdir, name, extra="", timeout=None):
    """A hook appending its name to logdir/order and saving its stdin in logdir/NAME.json. createContainer
    and startContainer run in the container namespace, where logdir is bind-mounted at /hooklog."""
    script = (f'if [ -d {logdir} ]; then d={logdir}; else d=/hooklog; fi; '
              f'cat > $d/{name}.json; echo {name} >> $d/order; {extra}')
    h = {"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["HOOKENV=" + name]}
    if timeout:
        h["timeout"] = timeout
    return h


def _hooked_bundle(ctx, args, names=ALL, overrides=None):
    logdir = os.path.join(ctx.scratch, "hooklog")
    os.makedirs(logdir, exist_ok=True)
    os.chmod(logdir, 0o777)
    b = ctx.bundle(args)
    b.config["mounts"].append({"destination": "/hooklog", "type": "bind", "source": logdir,
                               "options": ["rbind", "rw"]})
    hooks = {}
    for n in names:
        hooks[n] = [(overrides or {}).get(n) or _hook(logdir, n)]
    b.config["hooks"] = hooks
    return b, logdir


def _order(logdir):
    try:
        with open(os.path.join(logdir, "order")) as f:
            return [l.strip() for l in f if l.strip()]
    except FileNotFoundError:
        return []


def _state_in(logdir, name):
    try:
        with open(os.path.join(logdir, name + ".json")) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError) as e:
        raise Fail(f"{name} hook got no state JSON on stdin ({e})")


@test(S, "create runs prestart, createRuntime, createContainer",
      "runtime.md Lifecycle: create runs the prestart, then createRuntime, then createContainer hooks; start, "
      "not create, runs startContainer and poststart hooks.")
def hook_order_create(ctx):
    b, log = _hooked_bundle(ctx, ["sh", "-c", "echo ready; sleep 0.5"])
    c = ctx.create(b)
    got = _order(log)
    expect(got == ["prestart", "createRuntime", "createContainer"], f"after create: {got}")


@test(S, "start runs startContainer, then poststart",
      "runtime.md Lifecycle: startContainer hooks MUST be invoked by the runtime before the user-specified "
      "program; poststart hooks MUST be invoked after the user-specified process is executed but before the "
      "start operation returns.")
def hook_order_start(ctx):
    b, log = _hooked_bundle(ctx, ["sh", "-c", "echo ready; sleep 0.5"])
    c = ctx.create(b)
    n = len(_order(log))
    c.start()
    got = _order(log)[n:]
    expect(got == ["startContainer", "poststart"] or
           (got == ["startContainer"] and "poststart" in _order(log)), f"during start: {got}")
    expect("poststart" in got, f"poststart hook had not run when start returned: {got}")


@test(S, "delete runs poststop",
      "runtime.md Lifecycle: the poststop hooks MUST be invoked by the runtime after the container is deleted "
      "(during delete), and not before.")
def hook_order_delete(ctx):
    b, log = _hooked_bundle(ctx, ["sh", "-c", "echo ready"])
    c = ctx.create(b)
    c.start()
    c.wait("stopped")
    expect("poststop" not in _order(log), "poststop ran before delete")
    c.delete()
    got = _order(log)
    expect(got[-1:] == ["poststop"] and got.count("poststop") == 1, f"after delete: {got}")


@test(S, "hooks get the state on stdin",
      "Hooks: the state of the container MUST be passed to hooks over stdin so that they may do work "
      "appropriate to the current state of the container.")
def hook_state(ctx):
    b, log = _hooked_bundle(ctx, ["sh", "-c", "sleep 0.3"])
    c = ctx.create(b)
    c.start()
    c.wait("stopped")
    c.delete()
    for n in ALL:
        st = _state_in(log, n)
        expect(st.get("id") == c.id, f"{n}: id {st.get('id')!r}")
        expect(st.get("ociVersion"), f"{n}: no ociVersion")
        expect(st.get("bundle") and os.path.samefile(st["bundle"], b.dir), f"{n}: bundle {st.get('bundle')!r}")
        if n != "poststop":
            expect(isinstance(st.get("pid"), int) and st["pid"] > 0, f"{n}: pid {st.get('pid')!r}")


@test(S, "hook args and env are passed",
      "hooks: path (REQUIRED) ... args (OPTIONAL) with the same semantics as IEEE Std 1003.1-2008 execv's argv; "
      "env (OPTIONAL) with the same semantics as IEEE Std 1003.1-2008's environ.")
def hook_env(ctx):
    log = os.path.join(ctx.scratch, "hookenv")
    os.makedirs(log)
    b = ctx.bundle(["true"])
    b.config["hooks"] = {"createRuntime": [{"path": "/bin/sh",
                                            "args": ["sh", "-c", f'echo "$0 $HOOKV" > {log}/out', "arg0x"],
                                            "env": ["HOOKV=hookvalue"]}]}
    ctx.create(b)
    with open(os.path.join(log, "out")) as f:
        got = f.read().strip()
    expect(got == "arg0x hookvalue", f"hook saw {got!r}")


def _failing_create(ctx, which):
    b, log = _hooked_bundle(ctx, ["sh", "-c", "echo ran > /hooklog/ran"], names=(which,),
                            overrides={which: {"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}})
    c = ctx.create(b, check=False)
    if c.create_rc == 0:
        c.start(check=False)
        time.sleep(0.3)
        raise Fail(f"create succeeded although the {which} hook failed")
    st = c.state()
    expect(st is None or st.get("status") == "stopped", f"container left {st and st.get('status')}")
    expect(not os.path.exists(os.path.join(log, "ran")), "program ran")


@test(S, "failing prestart hook aborts create",
      "If any prestart hook fails, the runtime MUST generate an error, stop the container, and continue the "
      "lifecycle at step 12.")
def prestart_fails(ctx):
    _failing_create(ctx, "prestart")


@test(S, "failing createRuntime hook aborts create",
      "If any createRuntime hook fails, the runtime MUST generate an error, stop the container, and continue "
      "the lifecycle at step 12.")
def create_runtime_fails(ctx):
    _failing_create(ctx, "createRuntime")


@test(S, "failing createContainer hook aborts create",
      "If any createContainer hook fails, the runtime MUST generate an error, stop the container, and continue "
      "the lifecycle at step 12.")
def create_container_fails(ctx):
    _failing_create(ctx, "createContainer")


@test(S, "failing startContainer hook: error, program not run",
      "If any startContainer hook fails, the runtime MUST generate an error, stop the container, and continue "
      "the lifecycle at step 12.")
def start_container_fails(ctx):
    b, log = _hooked_bundle(ctx, ["sh", "-c", "echo ran > /hooklog/ran"], names=("startContainer",),
                            overrides={"startContainer": {"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}})
    c = ctx.create(b)
    rc, _, _ = c.start(check=False)
    time.sleep(0.3)
    expect(rc != 0, "start succeeded although the startContainer hook failed")
    expect(not os.path.exists(os.path.join(log, "ran")), "program ran")
    st = c.state()
    expect(st is None or st.get("status") == "stopped", f"container left {st and st.get('status')}")


@test(S, "failing poststart hook only warns",
      "If any poststart hook fails, the runtime MUST log a warning, but the remaining hooks and lifecycle "
      "continue as if the hook had succeeded.")
def poststart_fails(ctx):
    b, log = _hooked_bundle(ctx, ["sh", "-c", "sleep 1; echo ran > /hooklog/ran"], names=("poststart",),
                            overrides={"poststart": {"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}})
    c = ctx.create(b)
    c.start(check=False)
    c.wait("stopped")
    expect(os.path.exists(os.path.join(log, "ran")), "the program was stopped after the poststart failure")


@test(S, "failing poststop hook only warns",
      "If any poststop hook fails, the runtime MUST log a warning, but the remaining hooks and lifecycle "
      "continue as if the hook had succeeded.")
def poststop_fails(ctx):
    b, log = _hooked_bundle(ctx, ["true"], names=("poststop",),
                            overrides={"poststop": {"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}})
    c = ctx.create(b)
    c.start()
    c.wait("stopped")
    rc, _, err = c.delete(check=False)
    rc2, _, _ = ctx.rt.cmd("state", c.id)
    expect(rc2 != 0, "container still exists after delete")
    expect(rc == 0, f"delete reported an error for a failing poststop hook: {first_line(err)}")


@test(S, "hook timeout aborts",
      "timeout (int, OPTIONAL) is the number of seconds before aborting the hook.")
def hook_timeout(ctx):
    b, log = _hooked_bundle(ctx, ["true"], names=("createRuntime",),
                            overrides={"createRuntime": {"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 20"],
                                                         "timeout": 1}})
    # the hook sleeps 20s, longer than a command may take here (15s): a runtime that ignores the timeout fails
    c = ctx.create(b, check=False)
    expect(c.create_rc != 0, "create succeeded although the hook ran past its timeout")
