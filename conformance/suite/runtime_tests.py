"""runtime.md: state, lifecycle, operations and their errors (runtime-spec v1.0.2)."""
import json
import os
import time

from .harness import test, Fail, Skip, expect, first_line

S = "runtime.md"
LOOP = "echo ready; while true; do sleep 0.1; done"


def _running(ctx, script=LOOP):
    b = ctx.bundle(["sh", "-c", script])
    c = ctx.create(b)
    c.start()
    c.wait_output("ready")
    return c


@test(S, "state fields of a created container",
      "State: ociVersion, id, status, pid (REQUIRED when status is created or running on Linux), "
      "bundle (absolute path to the container's bundle directory) are REQUIRED")
def state_fields(ctx):
    b = ctx.bundle(["sh", "-c", "true"])
    c = ctx.create(b)
    st = c.state()
    expect(st is not None, "state failed on a created container")
    for k in ("ociVersion", "id", "status", "pid", "bundle"):
        expect(k in st, f"state has no {k!r}: {sorted(st)}")
    expect(st["id"] == c.id, f"id {st['id']!r} != {c.id!r}")
    expect(isinstance(st["pid"], int) and st["pid"] > 0, f"pid {st['pid']!r}")
    expect(os.path.isabs(st["bundle"]) and os.path.samefile(st["bundle"], b.dir),
           f"bundle {st['bundle']!r} is not the absolute bundle path")


@test(S, "create -> status created",
      "Upon successful completion of this operation the status property of this container MUST be created.")
def created_status(ctx):
    c = ctx.create(ctx.bundle())
    expect(c.status() == "created", f"status {c.status()!r}")


@test(S, "create does not run the program",
      "create: all of the resources associated with the container MUST be created, however, the user-specified "
      "program MUST NOT be run at this time.")
def create_no_run(ctx):
    c = ctx.create(ctx.bundle(["sh", "-c", "echo ran; touch /ran"]))
    time.sleep(0.3)
    expect("ran" not in c.stdout(), "program printed before start")
    expect(not os.path.exists(os.path.join(c.bundle.rootfs, "ran")), "program ran before start")
    c.start()
    c.wait("stopped")
    expect("ran" in c.stdout(), "program did not run after start")


@test(S, "start -> status running",
      "start: This operation MUST run the user-specified program as specified by process. "
      "Upon successful completion of this operation the status property of this container MUST be running.")
def started_status(ctx):
    c = _running(ctx)
    expect(c.status() == "running", f"status {c.status()!r}")


@test(S, "exit of the process -> stopped",
      "When the container process exits... the status property of this container MUST be stopped (state: "
      "stopped: the container process has exited).")
def exit_stopped(ctx):
    c = ctx.create(ctx.bundle(["sh", "-c", "exit 3"]))
    c.start()
    c.wait("stopped")


@test(S, "config.json changes after create have no effect",
      "Any changes made to the config.json file after this operation will not have an effect on the container.")
def config_after_create(ctx):
    b = ctx.bundle(["sh", "-c", "echo original"])
    c = ctx.create(b)
    b.config["process"]["args"] = ["sh", "-c", "echo changed"]
    b.write()
    c.start()
    c.wait("stopped")
    expect("original" in c.stdout() and "changed" not in c.stdout(), f"stdout {c.stdout()!r}")


@test(S, "start on a running container is an error",
      "Attempting to start a container that is not created MUST have no effect on the container and MUST "
      "generate an error.")
def start_running(ctx):
    c = _running(ctx)
    rc, out, err = c.start(check=False)
    expect(rc != 0, "second start succeeded")
    expect(c.status() == "running", f"status after failed start {c.status()!r}")
    expect(c.stdout().count("ready") == 1, "program ran twice")


@test(S, "start on a stopped container is an error",
      "Attempting to start a container that is not created MUST have no effect on the container and MUST "
      "generate an error.")
def start_stopped(ctx):
    c = ctx.create(ctx.bundle(["sh", "-c", "echo once"]))
    c.start()
    c.wait("stopped")
    rc, _, _ = c.start(check=False)
    expect(rc != 0, "start of a stopped container succeeded")
    time.sleep(0.2)
    expect(c.stdout().count("once") == 1, "program ran again")
    expect(c.status() == "stopped", f"status {c.status()!r}")


@test(S, "duplicate id is an error",
      "If the ID provided is not unique across all containers within the scope of the runtime... the "
      "implementation MUST generate an error and a new container MUST NOT be created.")
def duplicate_id(ctx):
    c = _running(ctx)
    b2 = ctx.bundle(["sh", "-c", "echo second > /second; sleep 5"])
    b2.write()
    rc, out, err = ctx.rt.cmd("create", "--bundle", b2.dir, c.id)
    expect(rc != 0, "create with a duplicate id succeeded")
    st = c.state()
    expect(st and st["status"] == "running" and os.path.samefile(st["bundle"], c.bundle.dir),
           f"original container changed: {st}")
    expect(not os.path.exists(os.path.join(b2.rootfs, "second")), "second container ran")


@test(S, "invalid ids are errors",
      "If the ID provided ... is not valid in any other way, the implementation MUST generate an error and a "
      "new container MUST NOT be created.")
def invalid_id(ctx):
    b = ctx.bundle()
    b.write()
    for bad in ("../escape", "a/b", "..", ""):
        rc, out, err = ctx.rt.cmd("create", "--bundle", b.dir, bad)
        if rc == 0:
            ctx.rt.cmd("delete", "--force", bad)
            raise Fail(f"create accepted id {bad!r}")
    expect(not os.path.exists(os.path.join(ctx.rt.root, "..", "escape")), "state written outside --root")


@test(S, "create without a usable bundle is an error",
      "If the runtime is unable to create the environment specified in the config.json, it MUST generate an "
      "error. Generating an error MUST leave the state of the environment as if the operation were never "
      "attempted.")
def create_bad_bundle(ctx):
    b = ctx.bundle()
    b.config["root"]["path"] = "no-such-rootfs"
    b.write()
    cid = ctx.new_id("bad")
    rc, out, err = ctx.rt.cmd("create", "--bundle", b.dir, cid)
    if rc == 0:
        ctx.rt.cmd("delete", "--force", cid)
        raise Fail("create with a missing rootfs succeeded")
    rc, out, err = ctx.rt.cmd("state", cid)
    expect(rc != 0, "a container was left behind after the failed create")


@test(S, "create with a missing executable is an error",
      "If the runtime is unable to create the environment specified in the config.json, it MUST generate an "
      "error (process.args[0] not found).", level="SHOULD")
def create_missing_exe(ctx):
    b = ctx.bundle(["/no/such/program"])
    c = ctx.create(b, check=False)
    if c.create_rc == 0:
        # runc reports a missing executable at create; a runtime MAY defer it to start
        rc, _, _ = c.start(check=False)
        expect(rc != 0, "start of a missing executable succeeded")


@test(S, "state of an unknown id is an error",
      "Attempting to query a container that does not exist MUST generate an error.")
def state_unknown(ctx):
    rc, out, err = ctx.rt.cmd("state", "conf-no-such-container")
    expect(rc != 0, "state of an unknown id succeeded")


@test(S, "start/kill/delete of an unknown id are errors",
      "Attempting to start/kill/delete a container that does not exist MUST generate an error.")
def ops_unknown(ctx):
    for args in (("start", "conf-nope"), ("kill", "conf-nope", "KILL"), ("delete", "conf-nope")):
        rc, out, err = ctx.rt.cmd(*args)
        expect(rc != 0, f"{args[0]} of an unknown id succeeded")


@test(S, "operations without an id are errors",
      "This operation MUST generate an error if it is not provided the ID of a container.")
def ops_no_id(ctx):
    for args in (("state",), ("start",), ("kill",), ("delete",)):
        rc, out, err = ctx.rt.cmd(*args)
        expect(rc != 0, f"{args[0]} without an id succeeded")


@test(S, "kill sends the signal to the container process",
      "kill: This operation MUST send the specified signal to the container process.")
def kill_signal(ctx):
    c = _running(ctx, "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done")
    c.kill("TERM")
    c.wait_output("got-term")
    c.wait("stopped")


@test(S, "kill of a created container",
      "Attempting to send a signal to a container that is neither created nor running MUST ... generate an "
      "error (so a created container MUST accept it); after it the process is stopped.")
def kill_created(ctx):
    c = ctx.create(ctx.bundle(["sh", "-c", "echo ran"]))
    c.kill("KILL")
    c.wait("stopped")
    expect("ran" not in c.stdout(), "program ran after kill of a created container")


@test(S, "kill of a stopped container is an error",
      "Attempting to send a signal to a container that is neither created nor running MUST have no effect on "
      "the container and MUST generate an error.")
def kill_stopped(ctx):
    c = ctx.create(ctx.bundle(["sh", "-c", "true"]))
    c.start()
    c.wait("stopped")
    rc, _, _ = c.kill("KILL", check=False)
    expect(rc != 0, "kill of a stopped container succeeded")
    expect(c.status() == "stopped", f"status {c.status()!r}")


@test(S, "delete of a running container is an error",
      "Attempting to delete a container that is not stopped MUST have no effect on the container and MUST "
      "generate an error.")
def delete_running(ctx):
    c = _running(ctx)
    rc, _, _ = c.delete(check=False)
    expect(rc != 0, "delete of a running container succeeded")
    expect(c.status() == "running", f"status after refused delete {c.status()!r}")


@test(S, "delete removes the container",
      "Deleting a container MUST delete the resources that were created during the create step. Once a "
      "container is deleted its ID MAY be used by a subsequent container.")
def delete_stopped(ctx):
    b = ctx.bundle(["sh", "-c", "true"])
    c = ctx.create(b)
    c.start()
    c.wait("stopped")
    c.delete()
    rc, _, _ = ctx.rt.cmd("state", c.id)
    expect(rc != 0, "state still answers after delete")
    c2 = ctx.create(ctx.bundle(["sh", "-c", "true"]), cid=c.id)
    expect(c2.status() == "created", "id could not be reused after delete")


@test(S, "delete leaves resources it did not create",
      "Note that resources associated with the container, but not created by this container, MUST NOT be "
      "deleted.")
def delete_keeps_foreign(ctx):
    host = os.path.join(ctx.scratch, "hostdir")
    os.makedirs(host)
    with open(os.path.join(host, "keep"), "w") as f:
        f.write("x")
    b = ctx.bundle(["sh", "-c", "ls /mnt/keep"])
    b.config["mounts"].append({"destination": "/mnt", "type": "bind", "source": host, "options": ["rbind"]})
    c = ctx.run(b)
    c.delete()
    expect(os.path.exists(os.path.join(host, "keep")), "bind-mounted host file deleted")
    expect(os.path.isdir(b.rootfs) and os.path.exists(os.path.join(b.rootfs, "bin", "busybox")),
           "rootfs deleted")
