#!/usr/bin/env python3
"""Write man/trustme-runtime.8 and man/trustme-runtime-<command>.8 from the binary's --help, plus the notes
below, so the pages stay in step with --help (tests/runtime/check-man.sh checks it).
usage: man/gen-runtime-pages.py build/bin/trustme-runtime"""
import re, subprocess, sys, os

binary = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
DATE = "2026-11"

NOTES = {
 "create": "Sets up namespaces, cgroups, mounts, devices, the user, capabilities, seccomp and the LSM labels, runs the "
           "prestart and createRuntime hooks (runtime namespace) and createContainer hooks (container namespace), and leaves "
           "the container process blocked before it executes the user program; the pid file is written before create returns. "
           "When a trust policy requires it, the bundle's signature and manifest are verified first, before anything is "
           "mounted or cloned, and the verified directory (by file descriptor) is what gets mounted. Bundles with "
           "org.trustme.volume.* annotations get their TPM-sealed LUKS2 volumes opened and mounted (trustme-runtime-volume(8)). "
           "On any error nothing is left behind: no state directory, cgroup, mount or process. As runc does, the process "
           "gets HOME from the container's /etc/passwd when its environment has none, a missing process.cwd is created, "
           "and with LISTEN_PID naming the runtime and LISTEN_FDS=N (systemd socket activation) fds 3..3+N-1 are passed "
           "into the container ahead of --preserve-fds, with LISTEN_FDS=N and LISTEN_PID=1 in its environment.",
 "start": "Releases the process of a created container (through the exec fifo in the state directory), waits until it "
          "has executed the program (a failing startContainer hook or execve makes start fail, and the container is "
          "stopped), then runs the poststart hooks; a failing poststart hook is logged as a warning.",
 "run": "create followed by start. In the foreground the command forwards signals to the container, passes stdio through "
        "(or proxies a pseudo-terminal when process.terminal is true and no --console-socket is given), exits with the "
        "container's exit status (128+N for a signal) and deletes the container unless --keep is given.",
 "state": "Prints runc's state JSON: ociVersion, id, pid, status (creating, created, running, paused, stopped), bundle, "
          "rootfs, created, owner and annotations.",
 "kill": "Sends a signal, given as a name (TERM, SIGTERM) or a number, to the container's process through a pidfd (never a "
         "reused pid). With --all the signal goes to every process of the container's cgroup. A stopped container is an error.",
 "delete": "Removes a stopped or created container: kills what is left, removes the cgroup, closes volumes, runs the "
           "poststop hooks (failures are warnings) and removes the state directory. A running or paused container needs "
           "--force. delete --force also cleans up after a runtime that crashed half way through create, and removes a "
           "broken entry (see list) without running its hooks or signalling anything it names. An id that is not ours "
           "(another runtime's container in a shared --root) is left alone: an error, or success with --force.",
 "list": "Lists the containers under the state directory. Entries that are not this runtime's (runc's containers when "
         "an engine gives both runtimes the same --root) are skipped. An entry of ours whose state cannot be trusted "
         "(malformed, too large or too deeply nested JSON, wrong types, cgroup paths outside their hierarchy) is listed "
         "with status broken; delete --force removes it.",
 "exec": "Starts a new process in a running container: it joins all of the container's namespaces (setns on a pidfd) and "
         "its cgroup and gets the container's seccomp filter, capabilities, no_new_privs and labels unless overridden. "
         "Options come before the container id; everything after the id is the command.",
 "ps": "Lists the processes of the container's cgroup; with --format table the host's ps is run with the given options "
       "(default -ef) and its lines for those processes are printed.",
 "events": "Prints the container's resource statistics (cpu, memory, pids, blkio/io, hugetlb) as JSON lines, every "
           "--interval, or once with --stats.",
 "pause": "Freezes every process of the container (cgroup freezer).",
 "resume": "Thaws a paused container.",
 "update": "Writes new resource limits to the container's cgroup: a linux.resources object from --resources, or single "
           "values from the flags (runc 1.1's set: with --resources the other flags are ignored; memory sizes take a "
           "k, m, g, t or p suffix in binary multiples, -1 means unlimited). The new values are validated first; a bad "
           "value leaves the container untouched.",
 "spec": "Writes a default config.json, the same defaults as runc spec.",
 "features": "Prints the runtime-spec features.json of this runtime.",
 "verify": "Verifies a bundle against the trust policy exactly as create does (libtrustme-verify) and reports the "
           "manifest location, its digest, the config digest and the signer.",
}

def roff(text):
    return text.replace("\\", "\\\\").replace("-", "\\-")

# Global options whose --help line needs more words on the page (roff text, appended after a .br).
GLOBAL_NOTES = {
 "--root": "Rootless without $XDG_RUNTIME_DIR: /run/user/<uid>/trustme\\-runtime.",
 "--systemd-cgroup": """As runc: linux.cgroupsPath is "slice:prefix:name" (empty: ":runc:<id>"; an empty slice is
system.slice); the container runs in the transient scope <prefix>\\-<name>.scope, started through systemd's
D\\-Bus API with Delegate=yes and the resources as unit properties (MemoryMax, CPUWeight, CPUQuotaPerSecUSec,
AllowedCPUs, TasksMax, IOWeight, DevicePolicy/DeviceAllow, ...; BlockIO*/CPUShares/MemoryLimit on cgroup v1),
then written to the cgroup files as with cgroupfs. Annotations org.systemd.property.<Name> add unit
properties (GVariant text values; <x>Sec in seconds). update sets the unit's properties, delete stops the
unit. Rootless (cgroup v2 only), the unit goes to the caller's own systemd instance on its user bus
($DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus), below that instance's cgroup, and the default slice is
user.slice, as with runc. The D\\-Bus client (libtrustme\\-systemd.so, sd\\-bus) is loaded only with this flag.""",
 "--rootless": """A rootless container runs in a new user namespace: a mapping of the caller's own uid and gid is
written directly, other ranges through newuidmap/newgidmap (the uidmap package, /etc/subuid and
/etc/subgid); the rootfs is cloned by the container init; devices are bind\\-mounted; without a cgroup that
the caller may create, the container has none (linux.resources limits are then refused by name; pause,
resume and update say why). trustme\\-runtime spec \\-\\-rootless writes such a config for the caller.""",
}

def options(help_text, notes={}):
    out = []
    for line in help_text.splitlines():
        m = re.match(r"^   (--\S+(?:, -\S)?(?: \S+)?)\s{2,}(.*)$", line)
        if m:
            flag = m.group(1).split()[0].rstrip(",")
            extra = "\n.br\n" + notes[flag] if flag in notes else ""
            out.append(".TP\n.B " + roff(m.group(1)) + "\n" + roff(m.group(2)) + extra)
    return "\n".join(out)

main_help = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
cmds = re.findall(r"^   (\w+)\s+(.*)$", main_help.split("commands:")[1].split("global options:")[0], re.M)
for name, summary in cmds:
    if name == "volume":
        continue
    h = subprocess.run([binary, name, "--help"], capture_output=True, text=True).stdout
    usage = re.search(r"^usage: (.*)$", h, re.M).group(1)
    page = f""".TH TRUSTME-RUNTIME-{name.upper()} 8 "{DATE}" "trustme-runtime @PROJECT_VERSION@" "System Administration"
.SH NAME
trustme\\-runtime\\-{name} \\- {roff(summary)}
.SH SYNOPSIS
.B {roff(usage)}
.SH DESCRIPTION
{roff(NOTES.get(name, summary))}
.SH OPTIONS
{options(h)}
.SH EXIT STATUS
0 on success; 1 on an error, reported as one line on standard error (or in the --log file, in runc's JSON format
with --log-format json); 2 for a usage error.{" run in the foreground exits with the container's status." if name == "run" else ""}
.SH SEE ALSO
.BR trustme\\-runtime (8)
"""
    open(os.path.join(here, f"trustme-runtime-{name}.8"), "w").write(page)

cmdlist = "\n".join(f".TP\n.BR trustme\\-runtime\\-{n} (8)\n{roff(s)}" for n, s in cmds)
page = f""".TH TRUSTME-RUNTIME 8 "{DATE}" "trustme-runtime @PROJECT_VERSION@" "System Administration"
.SH NAME
trustme\\-runtime \\- an OCI container runtime with signed bundles, TPM\\-sealed volumes and attestation
.SH SYNOPSIS
.B trustme\\-runtime
[global options] command [command options] [arguments...]
.SH DESCRIPTION
A low\\-level OCI runtime with runc's command line: containerd's runc shim v2 (BinaryName) and conmon
(podman, CRI\\-O) drive it as they drive runc. Before a container is created, the bundle is verified against
the trust policy (trustme\\-policy(5)): a CMS signature over a manifest that pins config.json and every rootfs
entry (trustme\\-manifest(5)). Encrypted volumes are unlocked with keys sealed in the TPM
(trustme\\-runtime\\-volume(8)), and starts are measured into a TPM PCR by an OCI hook (trustme\\-attest(8)).
.PP
The runtime binary is protected against CVE\\-2019\\-5736: create, run and exec re\\-execute it through a detached
read\\-only bind mount of itself, so /proc/<pid>/exe of a container process can never be opened for writing.
Where no mount can be made (an unprivileged user namespace, a seccomp profile without the mount API) it re\\-executes
from a sealed memfd copy of itself instead; if neither works, the container does not start.
.PP
Every command that takes a container id checks it first against runc's rule: letters, digits, _ + \\- . only,
and not . or .. . JSON input is bounded: config.json and process.json at most 16 MiB and 64 levels deep,
update \\-\\-resources 1 MiB and 16 levels, state.json 32 MiB.
.SH COMMANDS
{cmdlist}
.SH GLOBAL OPTIONS
{options(main_help.split("global options:")[1], GLOBAL_NOTES)}
.SH ENVIRONMENT
.TP
.B TRUSTME_POLICY
the trust policy file when \\-\\-policy is not given.
.TP
.B NOTIFY_SOCKET
as runc: when set for create (or run), the container gets its own notify socket (<state>/notify bound
read\\-only at /run/notify, NOTIFY_SOCKET=/run/notify/notify.sock in its environment); start (or run)
waits until the program sends READY=1, or exits, and forwards READY=1 and MAINPID=<init pid> to this socket.
.TP
.B TRUSTME_CACHE_DIR
directory of the compiled seccomp program cache (default /run/trustme\\-runtime\\-cache); empty disables it.
.SH FILES
.TP
.I /run/trustme\\-runtime/<id>/
state.json and exec.fifo of each container (\\-\\-root, made with its parents, mode 0711, when missing). The state
root holds container directories only.
.TP
.I /run/trustme\\-runtime\\-cache/
compiled seccomp programs (created mode 0700; used only while owned by the runtime's user and not writable by others).
.TP
.I /etc/trustme/policy.json
default trust policy; when it does not exist, signatures are off. Rootless (an unprivileged user, or root of a
user namespace): \\fI$XDG_CONFIG_HOME/trustme/policy.json\\fR (else \\fI~/.config/trustme/policy.json\\fR) instead; a
policy with attestation, or a bundle with TPM volumes, is refused there in one line (both need root of the host).
.TP
.I ../lib/trustme/
(relative to the directory of the binary: /usr/lib/trustme/ from the Debian package, /usr/local/lib/trustme/
from a source install) plugins loaded only when needed: libtrustme\\-verify.so (OpenSSL), libtrustme\\-volume.so (libcryptsetup, tpm2\\-tss),
libtrustme\\-systemd.so (libsystemd, with \\-\\-systemd\\-cgroup).
trustme\\-runtime\\-full: the same runtime linked dynamically; the static trustme\\-runtime hands it the commands that load a plugin.
.SH SEE ALSO
.BR trustme\\-sign (1),
.BR trustme\\-attest (8),
.BR trustme\\-policy (5),
.BR trustme\\-manifest (5),
.BR trustme\\-eventlog (5),
.BR trustme\\-runtime\\-volume (8)
"""
open(os.path.join(here, "trustme-runtime.8"), "w").write(page)
