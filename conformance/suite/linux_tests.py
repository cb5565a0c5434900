"""config-linux.md (runtime-spec v1.0.2)."""
import os
import subprocess
import time

from .harness import test, Fail, Skip, expect, first_line

S = "config-linux.md"


def _status_field(out, key):
    for line in out.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _host_ns(kind):
    return os.readlink(f"/proc/self/ns/{kind}")


@test(S, "new namespaces are created",
      "namespaces: If a namespace type is specified without a path, the runtime MUST create a new container "
      "namespace of that type.")
def new_namespaces(ctx):
    kinds = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt", "cgroup": "cgroup"}

    def m(c, b):
        c["linux"]["namespaces"] = [{"type": t} for t in kinds]
    out = ctx.sh("for n in pid net ipc uts mnt cgroup; do echo $n $(readlink /proc/self/ns/$n); done; echo pid=$$",
                 m)
    got = dict(l.split(" ", 1) for l in out.splitlines() if " " in l and not l.startswith("pid="))
    for t, k in kinds.items():
        expect(k in got, f"no {k} in output {out!r}")
        expect(got[k] != _host_ns(k), f"{t} namespace is the host's")
    expect("pid=1" in out, "the process is not pid 1 in its new pid namespace")


@test(S, "namespace not listed is inherited",
      "If a namespace type is not specified in the namespaces array, the container MUST inherit the runtime "
      "namespace of that type.")
def inherited_namespace(ctx):
    def m(c, b):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "ipc"]
    out = ctx.sh("readlink /proc/self/ns/ipc", m)
    expect(out.strip() == _host_ns("ipc"), f"ipc ns {out.strip()} != host {_host_ns('ipc')}")


@test(S, "namespaces joined by path",
      "path (string, OPTIONAL) namespace file. If a path is specified, the runtime MUST place the container "
      "process in the namespace at that path.")
def joined_namespaces(ctx):
    p = ctx.spawn(["unshare", "--uts", "--net", "--ipc", "sh", "-c", "hostname joined-ns; exec sleep 60"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{p.pid}/ns/uts") != _host_ns("uts") and \
               open(f"/proc/{p.pid}/comm").read().strip() == "sleep":
                break
        except OSError:
            pass
        time.sleep(0.02)
    want = {k: os.readlink(f"/proc/{p.pid}/ns/{k}") for k in ("uts", "net", "ipc")}

    def m(c, b):
        c["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"},
                                    {"type": "uts", "path": f"/proc/{p.pid}/ns/uts"},
                                    {"type": "network", "path": f"/proc/{p.pid}/ns/net"},
                                    {"type": "ipc", "path": f"/proc/{p.pid}/ns/ipc"}]
        c.pop("hostname", None)
    out = ctx.sh("hostname; for n in uts net ipc; do echo $n $(readlink /proc/self/ns/$n); done", m)
    lines = out.splitlines()
    expect(lines and lines[0] == "joined-ns", f"hostname {lines[:1]}")
    got = dict(l.split(" ", 1) for l in lines[1:] if " " in l)
    for k, v in want.items():
        expect(got.get(k) == v, f"{k}: {got.get(k)} != {v}")


@test(S, "network namespace has only lo",
      "network: a new network namespace; the runtime MUST create it (no interfaces but loopback).", level="SHOULD")
def netns_lo(ctx):
    out = ctx.sh("ls /sys/class/net")
    expect(out.split() == ["lo"], f"interfaces {out.split()}")


@test(S, "user namespace with uid/gid mappings",
      "uidMappings/gidMappings: describe the user namespace uid/gid mappings from the host to the container "
      "(containerID, hostID, size).")
def user_ns(ctx):
    def m(c, b):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        subprocess.run(["chown", "-R", "-h", "100000:200000", b.rootfs], check=True)
    out = ctx.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u", m)
    rows = [l.split() for l in out.splitlines()]
    expect(["0", "100000", "65536"] in rows, f"uid_map {out!r}")
    expect(["0", "200000", "65536"] in rows, f"gid_map {out!r}")
    expect(rows[-1] == ["0"], f"uid in container {rows[-1]}")


@test(S, "default devices",
      "the runtime MUST supply these devices: /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom, "
      "/dev/tty, /dev/console (if terminal), /dev/ptmx (bind to /dev/pts/ptmx).")
def default_devices(ctx):
    out = ctx.sh("for d in null zero full random urandom tty; do stat -c '%n %F %t:%T' /dev/$d; done")
    want = {"/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7", "/dev/random": "1:8",
            "/dev/urandom": "1:9", "/dev/tty": "5:0"}
    got = {}
    for l in out.splitlines():
        parts = l.split()
        if len(parts) >= 2 and parts[0] in want:
            got[parts[0]] = (" ".join(parts[1:-1]), parts[-1])
    for d, mm in want.items():
        expect(d in got, f"{d} missing: {out!r}")
        expect(got[d][0] == "character special file", f"{d} is {got[d][0]}")
        maj, mnr = got[d][1].split(":")
        expect(f"{int(maj, 16)}:{int(mnr, 16)}" == mm, f"{d} is {got[d][1]} (hex)")


@test(S, "dev symlinks",
      "runtime.md/config-linux.md 'Dev symbolic links': /dev/fd -> /proc/self/fd, /dev/stdin -> "
      "/proc/self/fd/0, /dev/stdout -> /proc/self/fd/1, /dev/stderr -> /proc/self/fd/2 MUST be set up.")
def dev_symlinks(ctx):
    out = ctx.sh("for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done")
    got = dict(l.split(" ", 1) if " " in l else (l, "") for l in out.splitlines())
    want = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
            "stderr": "/proc/self/fd/2"}
    for k, v in want.items():
        expect(got.get(k) == v, f"/dev/{k} -> {got.get(k)!r}")
    expect(got.get("ptmx") in ("pts/ptmx", "/dev/pts/ptmx"), f"/dev/ptmx -> {got.get('ptmx')!r}")


@test(S, "linux.devices",
      "devices (array of objects, OPTIONAL) lists devices that MUST be available in the container: type, path, "
      "major, minor, fileMode, uid, gid.")
def devices(ctx):
    def m(c, b):
        c["linux"]["devices"] = [{"path": "/dev/confnull", "type": "c", "major": 1, "minor": 3,
                                  "fileMode": 0o640, "uid": 12, "gid": 34}]
        # root needs CAP_DAC_OVERRIDE to write a node owned by uid 12
        for k in ("bounding", "effective", "permitted"):
            c["process"]["capabilities"][k].append("CAP_DAC_OVERRIDE")
        c["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 3,
                                                   "access": "rwm"})
    out = ctx.sh("stat -c '%F %t:%T %a %u %g' /dev/confnull; echo x > /dev/confnull && echo writable", m)
    expect("character special file 1:3 640 12 34" in out, f"stat {out!r}")
    expect("writable" in out, "device not usable")


@test(S, "device cgroup denies unlisted devices",
      "resources.devices: allowed device list; a deny-all entry MUST make other device nodes unusable.",
      level="SHOULD")
def device_cgroup(ctx):
    def m(c, b):
        c["linux"]["devices"] = [{"path": "/dev/confmem", "type": "c", "major": 1, "minor": 1,
                                  "fileMode": 0o600}]
    out = ctx.sh("head -c1 /dev/confmem >/dev/null 2>&1 && echo readable; echo done", m)
    expect("done" in out, f"output {out!r}")
    expect("readable" not in out, "/dev/mem readable although the device cgroup denies it")


@test(S, "maskedPaths",
      "maskedPaths (array of strings, OPTIONAL) will mask over the provided paths inside the container so that "
      "they cannot be read.")
def masked_paths(ctx):
    def m(c, b):
        c["linux"]["maskedPaths"] = ["/proc/keys", "/masked-file", "/masked-dir"]
        os.makedirs(os.path.join(b.rootfs, "masked-dir"))
        for p in ("masked-dir/secret", "masked-file"):
            with open(os.path.join(b.rootfs, p), "w") as f:
                f.write("secret\n")
    out = ctx.sh("echo keys=$(wc -c < /proc/keys); echo file=$(cat /masked-file); "
                 "echo dir=$(ls -A /masked-dir | wc -l); echo dirfile=$(cat /masked-dir/secret 2>/dev/null)", m)
    got = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    expect(got.get("keys") == "0", f"/proc/keys readable: {got.get('keys')!r}")
    expect(got.get("file") == "", f"masked file readable: {got.get('file')!r}")
    expect(got.get("dir") == "0", f"masked dir not empty: {got.get('dir')!r}")
    expect(got.get("dirfile") == "", "file in a masked dir readable")


@test(S, "readonlyPaths",
      "readonlyPaths (array of strings, OPTIONAL) will set the provided paths as readonly inside the container.")
def readonly_paths(ctx):
    def m(c, b):
        c["linux"]["readonlyPaths"] = ["/proc/sys", "/rodir"]
        os.makedirs(os.path.join(b.rootfs, "rodir"))
    out = ctx.sh("echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable; "
                 "touch /rodir/x 2>/dev/null && echo dir-writable; echo done", m)
    expect("done" in out, f"output {out!r}")
    expect("sys-writable" not in out, "/proc/sys writable")
    expect("dir-writable" not in out, "readonly dir writable")


@test(S, "sysctl",
      "sysctl (object, OPTIONAL) allows kernel parameters to be modified at runtime for the container.")
def sysctl(ctx):
    def m(c, b):
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
        c["linux"]["readonlyPaths"] = []
    out = ctx.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni", m)
    expect(out.split() == ["1", "1234"], f"sysctl values {out.split()}")


@test(S, "capabilities",
      "capabilities (object, OPTIONAL) is an object containing arrays that specifies the sets of capabilities "
      "for the process (effective, bounding, inheritable, permitted, ambient).")
def capabilities(ctx):
    def m(c, b):
        c["process"]["capabilities"] = {"bounding": ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"],
                                        "effective": ["CAP_KILL", "CAP_CHOWN"],
                                        "permitted": ["CAP_KILL", "CAP_CHOWN"],
                                        "inheritable": ["CAP_KILL"], "ambient": []}
    out = ctx.sh("grep ^Cap /proc/self/status", m)
    kill, net_raw, chown = 1 << 5, 1 << 13, 1 << 0
    want = {"CapBnd": kill | net_raw | chown, "CapEff": kill | chown, "CapPrm": kill | chown,
            "CapInh": kill, "CapAmb": 0}
    for k, v in want.items():
        got = _status_field(out, k)
        expect(got is not None and int(got, 16) == v, f"{k} {got} != {v:016x}")


@test(S, "unknown capability: warning, not an error",
      "runtime-spec 1.1 capabilities: Any value which cannot be mapped to a relevant kernel interface, or cannot "
      "be granted otherwise MUST be logged as a warning by the runtime. Runtimes SHOULD NOT fail if the container "
      "configuration requests capabilities that cannot be granted.", level="SHOULD")
def capability_unknown(ctx):
    def m(c, b):
        c["process"]["capabilities"]["bounding"].append("CAP_NO_SUCH_CAP")
        c["process"]["capabilities"]["effective"].append("CAP_NO_SUCH_CAP")
    out = ctx.sh("echo ran", m)
    expect("ran" in out, f"output {out!r}")


@test(S, "noNewPrivileges",
      "noNewPrivileges (bool, OPTIONAL) setting noNewPrivileges to true prevents the process from gaining "
      "additional privileges.")
def no_new_privs(ctx):
    out = ctx.sh("grep ^NoNewPrivs /proc/self/status")
    expect(_status_field(out, "NoNewPrivs") == "1", f"{out!r}")
    out = ctx.sh("grep ^NoNewPrivs /proc/self/status",
                 lambda c, b: c["process"].update({"noNewPrivileges": False}))
    expect(_status_field(out, "NoNewPrivs") == "0", f"with false: {out!r}")


@test(S, "oomScoreAdj",
      "oomScoreAdj (int, OPTIONAL) adjusts the oom-killer score in [pid]/oom_score_adj for the process's "
      "[pid] in a proc pseudo-filesystem.")
def oom_score_adj(ctx):
    out = ctx.sh("cat /proc/self/oom_score_adj", lambda c, b: c["process"].update({"oomScoreAdj": 123}))
    expect(out.strip() == "123", f"oom_score_adj {out!r}")


@test(S, "seccomp errno action",
      "seccomp: SCMP_ACT_ERRNO with errnoRet: the syscall fails with that errno; defaultAction applies to "
      "everything else.")
def seccomp_errno(ctx):
    def m(c, b):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                               "errnoRet": 13}]}
    out = ctx.sh("mkdir /tmp/blocked 2>&1; [ -d /tmp/blocked ] && echo created; echo done", m)
    expect("done" in out, f"output {out!r}")
    expect("created" not in out, "mkdir was not blocked")
    expect("Permission denied" in out, f"mkdir did not fail with EACCES: {out!r}")


@test(S, "seccomp default errno is EPERM",
      "errnoRet (uint, OPTIONAL): when not specified its default value is EPERM.")
def seccomp_default_errno(ctx):
    def m(c, b):
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    out = ctx.sh("mkdir /tmp/blocked 2>&1; echo done", m)
    expect("Operation not permitted" in out, f"mkdir did not fail with EPERM: {out!r}")


def _cgroup_container(ctx, resources, sub):
    cgpath = f"/trustme-conformance-{os.getpid()}/limits/{ctx.new_id()}"
    b = ctx.bundle(["sh", "-c", "echo ready; sleep 30"])
    b.config["linux"]["cgroupsPath"] = cgpath
    b.config["linux"]["resources"].update(resources)
    c = ctx.create(b)
    c.start()
    c.wait_output("ready")
    base = f"/sys/fs/cgroup/{sub}{cgpath}"
    if not os.path.isdir(base):
        raise Fail(f"cgroup {base} not created")
    return c, base


@test(S, "cgroupsPath and memory limit",
      "cgroupsPath: the runtime MUST place the container process in the cgroup at that path; memory.limit "
      "(int64, OPTIONAL) sets limit of memory usage in bytes.")
def cgroup_memory(ctx):
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        raise Skip("no cgroup v1 memory controller")
    c, base = _cgroup_container(ctx, {"memory": {"limit": 64 * 1024 * 1024}}, "memory")
    with open(base + "/memory.limit_in_bytes") as f:
        expect(int(f.read()) == 64 * 1024 * 1024, "memory.limit_in_bytes not set")
    with open(base + "/cgroup.procs") as f:
        expect(str(c.pid) in f.read().split(), "container pid not in the cgroup")


@test(S, "pids limit",
      "pids.limit (int64, REQUIRED) specifies the maximum number of tasks in the cgroup.")
def cgroup_pids(ctx):
    if not os.path.isdir("/sys/fs/cgroup/pids"):
        raise Skip("no cgroup v1 pids controller")
    c, base = _cgroup_container(ctx, {"pids": {"limit": 42}}, "pids")
    with open(base + "/pids.max") as f:
        expect(f.read().strip() == "42", "pids.max not 42")


@test(S, "cpu shares and quota",
      "cpu.shares/quota/period (OPTIONAL) set the cpu cgroup's values.", level="SHOULD")
def cgroup_cpu(ctx):
    if not os.path.isdir("/sys/fs/cgroup/cpu"):
        raise Skip("no cgroup v1 cpu controller")
    c, base = _cgroup_container(ctx, {"cpu": {"shares": 512, "quota": 50000, "period": 100000}}, "cpu")
    vals = [open(base + f"/cpu.{k}").read().strip() for k in ("shares", "cfs_quota_us", "cfs_period_us")]
    expect(vals == ["512", "50000", "100000"], f"cpu values {vals}")


@test(S, "cgroup removed at delete",
      "runtime.md delete: Deleting a container MUST delete the resources that were created during the create "
      "step.")
def cgroup_removed(ctx):
    if not os.path.isdir("/sys/fs/cgroup/pids"):
        raise Skip("no cgroup v1 pids controller")
    c, base = _cgroup_container(ctx, {"pids": {"limit": 42}}, "pids")
    c.kill("KILL")
    c.wait("stopped")
    c.delete()
    expect(not os.path.isdir(base), f"{base} left after delete")


@test(S, "rootfsPropagation private",
      "rootfsPropagation (string, OPTIONAL) sets the rootfs's mount propagation. Its value is either slave, "
      "private, shared or unbindable.")
def rootfs_propagation_private(ctx):
    out = ctx.sh("awk '$5==\"/\"' /proc/self/mountinfo",
                 lambda c, b: c["linux"].update({"rootfsPropagation": "private"}))
    expect(out.strip() and "shared:" not in out and "master:" not in out, f"/ mountinfo {out!r}")


@test(S, "rootfsPropagation shared",
      "rootfsPropagation (string, OPTIONAL) sets the rootfs's mount propagation: shared.")
def rootfs_propagation_shared(ctx):
    out = ctx.sh("awk '$5==\"/\"' /proc/self/mountinfo",
                 lambda c, b: c["linux"].update({"rootfsPropagation": "shared"}))
    expect("shared:" in out, f"/ mountinfo {out!r}")


@test(S, "root is the rootfs (pivot_root)",
      "root.path: specifies the path to the root filesystem for the container; the host's root MUST NOT be "
      "reachable.")
def pivot(ctx):
    out = ctx.sh("ls / ; cat /proc/1/mountinfo | wc -l")
    expect("bin" in out.split() and "work" not in out.split() and "usr" in out.split(), f"ls / {out!r}")
