#!/bin/bash
# The systemd cgroup driver on a systemd host: run inside `run-in-vm.sh --systemd` (systemd as PID 1,
# cgroup v2). systemd-lifecycle.sh BUILD_DIR
#
# create/start/exec/update/pause/resume/kill/delete and delete --force with --systemd-cgroup, checking
# what systemd says about the unit (systemctl show) and what the cgroup files hold; annotations; the unit
# gone after delete. Prints one line per check; exits 1 if any failed.
set -u
build=${1:?usage: systemd-lifecycle.sh BUILD_DIR}
rt=$build/bin/trustme-runtime
[ "$(cat /proc/1/comm)" = systemd ] || { echo "systemd-lifecycle.sh: PID 1 is not systemd (run it with run-in-vm.sh --systemd)"; exit 2; }

work=$(mktemp -d /tmp/sd-life.XXXXXX)
root=$work/state
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { # check NAME WANT GOT
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want '$2', got '$3'"; fi
}
R() { "$rt" --systemd-cgroup --root "$root" "$@"; }
prop() { systemctl show -P "$2" "$1" 2>/dev/null; }
cleanup() {
    for id in c1 c2 c3 c4 c5 c6; do R delete --force "$id" >/dev/null 2>&1; done
    rm -rf "$work"
}
trap cleanup EXIT

# A minimal busybox rootfs (a full one costs minutes of process starts under TCG).
mkdir -p "$work/b/rootfs/bin" "$work/b/rootfs/proc" "$work/b/rootfs/sys" "$work/b/rootfs/dev" "$work/b/rootfs/tmp"
cp /bin/busybox "$work/b/rootfs/bin/busybox"
for a in sh sleep cat echo true; do ln -s busybox "$work/b/rootfs/bin/$a"; done
"$rt" spec --bundle "$work/b"
bundle() { # bundle CGROUPSPATH [ANNOTATIONS-JSON]
    python3 - "$work/b/config.json" "$1" "${2:-{\}}" <<'PY'
import json, sys
p, cg, ann = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "1000"]
c["linux"]["cgroupsPath"] = cg
c["linux"]["resources"] = {"memory": {"limit": 67108864}, "pids": {"limit": 50}, "cpu": {"quota": 20000, "period": 100000}}
c["annotations"] = ann
json.dump(c, open(p, "w"))
PY
}

set_args() { # set_args JSON-ARRAY: the container's process.args
    python3 -c "import json, sys; p = sys.argv[1]; c = json.load(open(p)); c['process']['args'] = json.loads(sys.argv[2]); json.dump(c, open(p, 'w'))" \
        "$work/b/config.json" "$1"
}
stopped() { for _ in $(seq 100); do R state "$1" | grep -q '"stopped"' && return; sleep 0.2; done; }
freed() { # freed ID: trustme-ID.scope neither active nor failed, and freed by systemd
    check "unit $1 gone" inactive "$(systemctl is-active "trustme-$1.scope")"
    [ -e "/run/systemd/transient/trustme-$1.scope" ] && bad "$1's transient unit left" || ok "$1's transient unit freed"
}

# 1. default cgroupsPath: runc's ":runc:<id>" in system.slice
bundle ""
R create --bundle "$work/b" c1 || bad "create c1"
unit=runc-c1.scope
check "unit active after create" active "$(systemctl is-active $unit)"
check "Delegate" yes "$(prop $unit Delegate)"
check "MemoryMax property" 67108864 "$(prop $unit MemoryMax)"
check "TasksMax property" 50 "$(prop $unit TasksMax)"
check "CPUQuotaPerSecUSec" 200ms "$(prop $unit CPUQuotaPerSecUSec)"
cg=/sys/fs/cgroup/system.slice/$unit
# What delete's shortcut relies on: a live transient unit is a file in systemd's transient directory.
[ -f /run/systemd/transient/$unit ] && ok "transient unit file while the unit lives" || bad "no /run/systemd/transient/$unit"
pid=$(R state c1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
grep -qx "$pid" "$cg/cgroup.procs" && ok "init in the scope's cgroup" || bad "init $pid not in $cg/cgroup.procs"
check "memory.max file" 67108864 "$(cat $cg/memory.max)"
check "pids.max file" 50 "$(cat $cg/pids.max)"
R start c1 || bad "start c1"
check "exec sees its limit" 67108864 "$(R exec c1 cat /sys/fs/cgroup/memory.max)"
R update --memory 100663296 --pids-limit 60 c1 || bad "update c1"
check "MemoryMax after update" 100663296 "$(prop $unit MemoryMax)"
check "memory.max after update" 100663296 "$(cat $cg/memory.max)"
check "TasksMax after update" 60 "$(prop $unit TasksMax)"
# --resources - (how containerd's shim, hence Docker, updates): standard input reaches the runtime that
# talks to systemd (the static binary hands the command to its dynamically linked twin)
echo '{"memory": {"limit": 83886080}, "pids": {"limit": 70}}' | R update --resources - c1 || bad "update --resources - c1"
check "MemoryMax after update --resources -" 83886080 "$(prop $unit MemoryMax)"
check "pids.max after update --resources -" 70 "$(cat $cg/pids.max)"
R pause c1 && check "paused" 1 "$(cat $cg/cgroup.freeze)" || bad "pause"
R resume c1 && check "resumed" 0 "$(cat $cg/cgroup.freeze)" || bad "resume"
R kill c1 KILL || bad "kill c1"
for _ in $(seq 50); do R state c1 | grep -q '"stopped"' && break; sleep 0.2; done
R delete c1 || bad "delete c1"
check "unit gone after delete" inactive "$(systemctl is-active $unit)"
[ -d "$cg" ] && bad "$cg left behind" || ok "scope cgroup removed"

# 2. slice:prefix:name, an org.systemd.property annotation, delete --force of a running container
bundle "machine.slice:trustme:c2" '{"org.systemd.property.TimeoutStopSec": "7", "org.systemd.property.CollectMode": "'"'"'inactive-or-failed'"'"'"}'
R run -d --bundle "$work/b" c2 || bad "run -d c2"
unit=trustme-c2.scope
check "unit in machine.slice" machine.slice "$(prop $unit Slice)"
check "TimeoutStopUSec from annotation" 7s "$(prop $unit TimeoutStopUSec)"
check "CollectMode from annotation" inactive-or-failed "$(prop $unit CollectMode)"
R delete --force c2 || bad "delete --force c2"
check "unit gone after delete --force" inactive "$(systemctl is-active $unit)"
[ -d /sys/fs/cgroup/machine.slice/$unit ] && bad "machine.slice/$unit left behind" || ok "scope cgroup removed (force)"

# 3. a foreground run exits with its status, the unit goes with it
bundle "system.slice:trustme:c3"
set_args '["sh", "-c", "exit 3"]'
R run --bundle "$work/b" c3
check "foreground run exit status" 3 "$?"
check "unit gone after run" inactive "$(systemctl is-active trustme-c3.scope)"

# 3b. a container whose processes all exited on their own: once systemd has freed the unit (its transient
# file gone), delete makes no D-Bus call, so it loads neither libsystemd nor the twin
bundle "system.slice:trustme:c4"
set_args '["true"]'
R create --bundle "$work/b" c4 && R start c4 || bad "create/start c4"
for _ in $(seq 150); do [ -e /run/systemd/transient/trustme-c4.scope ] || break; sleep 0.2; done
[ -e /run/systemd/transient/trustme-c4.scope ] && bad "systemd kept trustme-c4.scope (transient file) 30 s after its exit"
out=$(R --debug delete c4 2>&1) || bad "delete c4: $out"
echo "$out" | grep -q "trustme-c4.scope is gone already" && ok "delete after systemd freed the unit: no D-Bus call" ||
    bad "delete c4 did not take the shortcut: $out"
[ -e "$root/c4" ] && bad "c4's state left" || ok "c4's state removed"
freed c4

# 3c. delete right after the exit, as engines do: correct whether systemd has freed the unit yet or not
bundle "system.slice:trustme:c5"
set_args '["true"]'
R create --bundle "$work/b" c5 && R start c5 || bad "create/start c5"
stopped c5
out=$(R --debug delete c5 2>&1) || bad "delete c5: $out"
echo "$out" | grep -q "is gone already" && echo "info delete c5 right after its exit: systemd had freed the unit" ||
    echo "info delete c5 right after its exit: stopped over D-Bus"
freed c5

# 3d. a scope that failed (systemd stopped it at its RuntimeMaxSec: result "timeout") is never freed by
# systemd: delete must not take the shortcut but stop and reset it over D-Bus, leaving no failed unit
bundle "system.slice:trustme:c6" '{"org.systemd.property.RuntimeMaxSec": "1", "org.systemd.property.TimeoutStopSec": "1"}'
R create --bundle "$work/b" c6 && R start c6 || bad "create/start c6"
for _ in $(seq 100); do [ "$(systemctl is-active trustme-c6.scope)" = failed ] && break; sleep 0.2; done
check "c6 failed at its RuntimeMaxSec" failed "$(systemctl is-active trustme-c6.scope)"
stopped c6
out=$(R --debug delete c6 2>&1) || bad "delete c6: $out"
echo "$out" | grep -q "stopping unit trustme-c6.scope over D-Bus" && ok "failed unit: delete stops it over D-Bus" ||
    bad "failed unit: delete took the shortcut: $out"
freed c6

# 4. bad cgroupsPath: one line, nothing left
bundle "/not/a/slice"
out=$(R create --bundle "$work/b" c3 2>&1)
[ $? -ne 0 ] && [ "$(echo "$out" | wc -l)" = 1 ] && ok "bad cgroupsPath: $out" || bad "bad cgroupsPath: $out"
[ -z "$(ls "$root")" ] && ok "no state left" || bad "state left: $(ls "$root")"
# / is shared here (systemd makes it so): nothing a container mounted may show on the host.
grep -q "$work/b/rootfs/" /proc/self/mountinfo && bad "container mounts visible on the host" || ok "no mount left on the host"

echo "systemd-lifecycle: $fails failed"
[ "$fails" = 0 ]
