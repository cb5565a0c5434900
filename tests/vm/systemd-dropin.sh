#!/bin/bash
# What the systemd VM runs for ctest vm.systemd-dropin: systemd-dropin.sh RUNTIME ROOTFS
# The engines on their systemd-driver defaults with RUNTIME, through the drop-in scripts of tests/dropin:
# podman as root (cgroup_manager systemd), containerd with the runc shim v2's SystemdCgroup option, Docker
# with native.cgroupdriver=systemd (each scenario with runc as the reference too); then rootless podman as an
# unprivileged user with subuid/subgid ranges, run in that user's systemd instance (lingering enabled, cgroup
# v2 subtree delegated by user@.service), once with crun and once with RUNTIME: RUNTIME must pass every
# scenario crun passes. ROOTFS is made by tests/fixtures/make-rootfs.sh on the host (minutes under TCG here).
# Prints each script's results; exits 1 if any failed.
set -u
rt=${1:?usage: systemd-dropin.sh RUNTIME ROOTFS}
rootfs=${2:?usage: systemd-dropin.sh RUNTIME ROOTFS}
here=$(cd "$(dirname "$0")" && pwd)
dropin=$here/../dropin
[ "$(cat /proc/1/comm)" = systemd ] || { echo "systemd-dropin.sh: PID 1 is not systemd (run it with run-in-vm.sh --systemd)"; exit 2; }
# every command of the drop-in scripts runs several times slower under TCG
export DROPIN_ROOTFS=$rootfs DROPIN_TIME_SCALE=4
rc=0
summary=()
run() { # run LABEL CMD...: one drop-in script, its verdict kept for the summary
    local label=$1 r=0
    shift
    echo "== $label"
    "$@" || r=$?
    summary+=("$(printf '%-44s %s' "$label" "$([ $r = 0 ] && echo pass || echo "FAIL (exit $r)")")")
    [ $r = 0 ] || rc=1
}

run "podman, root, systemd driver" bash "$dropin/podman.sh" "$rt" systemd
run "containerd, runc shim v2, SystemdCgroup" bash "$dropin/containerd.sh" "$rt" systemd
run "docker, native.cgroupdriver=systemd" bash "$dropin/docker.sh" "$rt" systemd

# Rootless podman. The user and its ranges live in the guest's /etc overlay, thrown away at power-off.
user=trustme-rl
uid=1500
useradd -m -u $uid -s /bin/bash $user
# useradd gives a range when SUB_UID_COUNT is set; make sure there is one either way
grep -q "^$user:" /etc/subuid || usermod --add-subuids 200000-265535 $user
grep -q "^$user:" /etc/subgid || usermod --add-subgids 200000-265535 $user
# logind is masked for the VM's boot: bring it up for lingering, which starts user@UID.service
rm -f /run/systemd/system/systemd-logind.service
systemctl daemon-reload && systemctl start systemd-logind && loginctl enable-linger $user
for _ in $(seq 120); do [ "$(systemctl is-active user@$uid.service)" = active ] && break; sleep 1; done
echo "== rootless: user@$uid.service $(systemctl is-active user@$uid.service), delegated:" \
    "$(cat /sys/fs/cgroup/user.slice/user-$uid.slice/user@$uid.service/cgroup.controllers 2>&1)"
# as the user, in its systemd instance (a transient service of the user's app.slice)
as_user() {
    systemd-run --user -M $user@ --wait --pipe --quiet -E DROPIN_ROOTFS="$rootfs" \
        -E DROPIN_TIME_SCALE="$DROPIN_TIME_SCALE" -- "$@"
}
crun=$(command -v crun || true)
if [ -z "$crun" ]; then
    summary+=("rootless podman: crun missing, not run")
    rc=1
else
    echo "== podman, rootless, systemd driver, crun (the reference)"
    as_user bash "$dropin/podman.sh" "$crun" systemd | tee /tmp/rootless-crun.log
    echo "== podman, rootless, systemd driver, $rt"
    as_user bash "$dropin/podman.sh" "$rt" systemd | tee /tmp/rootless-rt.log
    # every scenario crun passes, RUNTIME passes too
    missing=$(comm -23 <(sed -n 's/^PASS //p' /tmp/rootless-crun.log | sort) \
                       <(sed -n 's/^PASS //p' /tmp/rootless-rt.log | sort))
    ncrun=$(grep -c '^PASS ' /tmp/rootless-crun.log)
    nrt=$(grep -c '^PASS ' /tmp/rootless-rt.log)
    if [ -z "$missing" ] && [ "$ncrun" -gt 0 ]; then verdict=pass; else verdict=FAIL; rc=1; fi
    summary+=("$(printf '%-44s %s' "podman, rootless, systemd driver" "$verdict ($nrt passed; crun $ncrun)")")
    [ -z "$missing" ] || summary+=("  passed with crun only: $(echo $missing)")
fi
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $rc
