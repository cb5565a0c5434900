"""config.md: process, root, hostname, mounts, annotations (runtime-spec v1.0.2)."""
import os
import subprocess

from .harness import test, Fail, Skip, expect

S = "config.md"


def _proc(path, ctx_out, key):
    for line in ctx_out.splitlines():
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return None


@test(S, "process.args",
      "args (array of strings, REQUIRED) with similar semantics to IEEE Std 1003.1-2008 execvp's argv.")
def args(ctx):
    b = ctx.bundle(["/bin/echo", "a b", "c"])
    c = ctx.run(b)
    expect(c.stdout() == "a b c\n", f"stdout {c.stdout()!r}")


@test(S, "process.env",
      "env (array of strings, OPTIONAL) with the same semantics as IEEE Std 1003.1-2008's environ.")
def env(ctx):
    out = ctx.sh('echo "[$FOO] [$BAR]"',
                 lambda c, b: c["process"]["env"].extend(["FOO=one two", "BAR="]))
    expect("[one two] []" in out, f"output {out!r}")


@test(S, "process.cwd",
      "cwd (string, REQUIRED) is the working directory that will be set for the executable. This value MUST be "
      "an absolute path.")
def cwd(ctx):
    def m(c, b):
        os.makedirs(os.path.join(b.rootfs, "work", "dir"))
        c["process"]["cwd"] = "/work/dir"
    out = ctx.sh("pwd", m)
    expect(out.strip() == "/work/dir", f"pwd {out!r}")


@test(S, "process.user uid/gid/additionalGids",
      "uid (int, REQUIRED) specifies the user ID in the container namespace. gid (int, REQUIRED) specifies the "
      "group ID. additionalGids (array of ints, OPTIONAL) specifies additional group IDs.")
def user(ctx):
    def m(c, b):
        c["process"]["user"] = {"uid": 1234, "gid": 2345, "additionalGids": [3456, 4567]}
    out = ctx.sh("id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status", m)
    lines = out.split("\n")
    expect(lines[0] == "1234" and lines[1] == "2345", f"id {lines[:2]}")
    groups = _proc(None, out, "Groups:")
    expect(groups is not None and set(groups.split()) == {"3456", "4567"}, f"Groups: {groups!r}")
    uids = _proc(None, out, "Uid:").split()
    expect(set(uids) == {"1234"}, f"Uid: {uids}")


@test(S, "process.user.umask",
      "umask (int, OPTIONAL) specifies the umask of the user. If unspecified, the umask should not be changed "
      "from the calling process' umask.")
def umask(ctx):
    out = ctx.sh("umask", lambda c, b: c["process"]["user"].update({"umask": 0o27}))
    expect(out.strip() in ("0027", "027"), f"umask {out!r}")


@test(S, "process.rlimits",
      "rlimits: the runtime MUST ... set the soft and hard values of each entry with setrlimit; "
      "soft/hard (uint64, REQUIRED) is the value of the limit enforced.")
def rlimits(ctx):
    def m(c, b):
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 777},
                                   {"type": "RLIMIT_NPROC", "soft": 1000, "hard": 2000},
                                   {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}]
    out = ctx.sh("cat /proc/self/limits", m)
    want = {"Max open files": ("512", "777"), "Max processes": ("1000", "2000"),
            "Max core file size": ("0", "4096")}
    for line in out.splitlines():
        for k, v in want.items():
            if line.startswith(k):
                got = tuple(line[len(k):].split()[:2])
                expect(got == v, f"{k}: {got} != {v}")
    expect(any(l.startswith("Max open files") for l in out.splitlines()), f"no limits: {out[:100]!r}")


@test(S, "invalid rlimit type is an error",
      "rlimits.type: the runtime MUST generate an error for any values which cannot be mapped to a relevant "
      "kernel interface.")
def rlimit_bad(ctx):
    b = ctx.bundle(["true"])
    b.config["process"]["rlimits"] = [{"type": "RLIMIT_NO_SUCH_THING", "soft": 1, "hard": 1}]
    c = ctx.create(b, check=False)
    expect(c.create_rc != 0, "create accepted an unknown rlimit type")


@test(S, "terminal false: stdio passthrough",
      "terminal (bool, OPTIONAL) specifies whether a terminal is attached to the process, defaults to false "
      "(the process gets the runtime's stdio).")
def stdio(ctx):
    b = ctx.bundle(["sh", "-c", "read line; echo \"out:$line\"; echo err:x >&2; [ -t 0 ] || echo notty"])
    b.write()
    inp = os.path.join(b.dir, "stdin")
    with open(inp, "w") as f:
        f.write("hello\n")
    c = None
    with open(inp) as fin:
        from .harness import Container
        c = Container(ctx, ctx.new_id(), b)
        ctx.containers.append(c)
        with open(c.out_path, "ab") as o, open(c.err_path, "ab") as e:
            rc, _, _ = ctx.rt.cmd("create", "--bundle", b.dir, c.id, stdin=fin, stdout=o, stderr=e)
    expect(rc == 0, f"create failed: {c.stderr()[-200:]}")
    c.state()
    c.start()
    c.wait("stopped")
    expect("out:hello" in c.stdout(), f"stdout {c.stdout()!r}")
    expect("notty" in c.stdout(), "stdin is a tty")
    expect("err:x" in c.stderr() and "err:x" not in c.stdout(), f"stderr {c.stderr()!r}")


@test(S, "root.path relative to the bundle",
      "root.path (string, REQUIRED) ... either an absolute path or a relative path to the bundle.")
def root_path(ctx):
    def m(c, b):
        with open(os.path.join(b.rootfs, "marker"), "w") as f:
            f.write("in-rootfs\n")
    out = ctx.sh("cat /marker", m)
    expect("in-rootfs" in out, f"output {out!r}")


@test(S, "root.path absolute",
      "root.path: the value may be an absolute path.")
def root_path_abs(ctx):
    def m(c, b):
        with open(os.path.join(b.rootfs, "marker"), "w") as f:
            f.write("abs-rootfs\n")
        c["root"]["path"] = b.rootfs
    out = ctx.sh("cat /marker", m)
    expect("abs-rootfs" in out, f"output {out!r}")


@test(S, "root.readonly",
      "readonly (bool, OPTIONAL) If true then the root filesystem MUST be read-only inside the container.")
def root_readonly(ctx):
    out = ctx.sh("touch /newfile 2>&1 && echo wrote; awk '$2==\"/\"{print $4}' /proc/mounts",
                 lambda c, b: c["root"].update({"readonly": True}))
    expect("wrote" not in out, "wrote to a read-only root")
    expect("ro" in out.split("\n")[-2].split(",") if out.strip() else False, f"mount options {out!r}")


@test(S, "hostname",
      "hostname (string, OPTIONAL) specifies the container's hostname as seen by processes running inside "
      "the container.")
def hostname(ctx):
    out = ctx.sh("hostname", lambda c, b: c.update({"hostname": "conf-host"}))
    expect(out.strip() == "conf-host", f"hostname {out!r}")


@test(S, "domainname",
      "domainname (string, OPTIONAL) specifies the container's domainname as seen by processes running inside "
      "the container (runtime-spec 1.1).", level="SHOULD")
def domainname(ctx):
    out = ctx.sh("cat /proc/sys/kernel/domainname", lambda c, b: c.update({"domainname": "conf.example"}))
    if out.strip() == "(none)":
        raise Fail("domainname ignored (a runtime-spec 1.1 field)")
    expect(out.strip() == "conf.example", f"domainname {out!r}")


@test(S, "mounts in order, destination created",
      "mounts: The runtime MUST mount entries in the listed order. destination: Destination of mount point: "
      "path inside container.")
def mounts_order(ctx):
    def m(c, b):
        c["mounts"] += [{"destination": "/data/a", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
                        {"destination": "/data/a/b", "type": "tmpfs", "source": "tmpfs", "options": ["size=2m"]}]
    out = ctx.sh("grep ' /data/a' /proc/self/mountinfo | awk '{print $5}'", m)
    expect(out.split() == ["/data/a", "/data/a/b"], f"mountinfo {out!r}")


@test(S, "tmpfs mount with options",
      "options (array of strings, OPTIONAL) Mount options of the filesystem to be used (ro, nosuid, nodev, "
      "noexec and filesystem data such as size, mode).")
def mount_options(ctx):
    def m(c, b):
        c["mounts"].append({"destination": "/opts", "type": "tmpfs", "source": "tmpfs",
                            "options": ["ro", "nosuid", "nodev", "noexec", "size=1m", "mode=750"]})
    out = ctx.sh("awk '$2==\"/opts\"{print $4}' /proc/mounts; stat -c %a /opts", m)
    lines = out.split()
    expect(len(lines) >= 2, f"output {out!r}")
    opts = set(lines[0].split(","))
    for o in ("ro", "nosuid", "nodev", "noexec", "size=1024k"):
        expect(o in opts, f"{o} missing in {lines[0]}")
    expect(lines[1] == "750", f"mode {lines[1]}")


@test(S, "bind mount of a host directory (rw and ro)",
      "mounts: source: a path on the host for bind mounts; options rbind/bind and ro MUST be honoured.")
def bind_mounts(ctx):
    host = os.path.join(ctx.scratch, "hostshare")
    os.makedirs(host)
    with open(os.path.join(host, "hello"), "w") as f:
        f.write("from-host\n")

    def m(c, b):
        c["mounts"] += [{"destination": "/rw", "type": "bind", "source": host, "options": ["rbind", "rw"]},
                        {"destination": "/ro", "type": "bind", "source": host, "options": ["bind", "ro"]}]
    out = ctx.sh("cat /rw/hello; echo written > /rw/new; touch /ro/x 2>/dev/null && echo ro-writable; true", m)
    expect("from-host" in out, f"output {out!r}")
    expect("ro-writable" not in out, "ro bind mount is writable")
    expect(os.path.exists(os.path.join(host, "new")), "write through the rw bind mount not seen on the host")


@test(S, "mounts do not leak to the host",
      "Linux mount namespace: mounts made for the container MUST NOT be visible on the host (mount namespace "
      "isolation).")
def mounts_isolated(ctx):
    b = ctx.bundle(["sh", "-c", "echo ready; sleep 10"])
    b.config["mounts"].append({"destination": "/leakcheck", "type": "tmpfs", "source": "tmpfs"})
    c = ctx.create(b)
    c.start()
    c.wait_output("ready")
    with open("/proc/self/mountinfo") as f:
        mi = f.read()
    expect(b.rootfs not in mi, "container mounts visible in the host mount namespace")


@test(S, "annotations in state",
      "annotations (object, OPTIONAL) contains arbitrary metadata; state: annotations (map, OPTIONAL) contains "
      "the list of annotations associated with the container.", level="SHOULD")
def annotations(ctx):
    b = ctx.bundle(["true"])
    b.config["annotations"] = {"org.example.key": "value"}
    c = ctx.create(b)
    st = c.state()
    expect((st.get("annotations") or {}).get("org.example.key") == "value", f"annotations {st.get('annotations')}")


@test(S, "unsupported ociVersion / malformed config is an error",
      "runtime.md: If the runtime is unable to create the environment specified in the config.json, it MUST "
      "generate an error.")
def malformed(ctx):
    b = ctx.bundle(["true"])
    b.write()
    with open(os.path.join(b.dir, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.2", "process": ')
    cid = ctx.new_id("m")
    rc, _, _ = ctx.rt.cmd("create", "--bundle", b.dir, cid)
    if rc == 0:
        ctx.rt.cmd("delete", "--force", cid)
    expect(rc != 0, "create accepted truncated JSON")
