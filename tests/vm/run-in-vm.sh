#!/bin/bash
# Run a command inside the test VM: run-in-vm.sh [OPTIONS] -- COMMAND [ARG...]
#
# Boots the Debian kernel (TCG, no KVM) with a busybox initramfs (build-initramfs.sh) and a software TPM
# (swtpm, as /dev/tpm0 and /dev/tpmrm0), shares the host's /usr and /etc and the source and build trees
# by virtio-9p at the same absolute paths (read-only on the host side; writable in the guest through an
# overlay that is thrown away), runs COMMAND with bash in the current directory, prints its output and
# exits with its exit status.
#
# Options:
#   --timeout S     kill the VM after S seconds (default 600); exit status 124
#   --build DIR     build directory (default: SOURCE/build); the VM's kernel and initramfs are cached
#                   in DIR/vm, keyed on their inputs
#   --share DIR     share one more host directory at its own path (repeatable)
#   --env K=V       set an environment variable for COMMAND (repeatable)
#   --selinux       boot with security=selinux and load the installed policy (permissive)
#   --systemd       boot the shared /usr's systemd as PID 1 (cgroup v2, / shared, D-Bus) and run
#                   COMMAND as a unit once basic.target is up
#   --memory MB     guest memory (default 1024)
#   --smp N         guest CPUs (default 2)
#
# Exit status: COMMAND's, or 124 on timeout, 125 when the VM itself failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

timeout=600 build= selinux=0 systemd=0 memory=1024 smp=2
shares=() envs=()
while [ $# -gt 0 ]; do
    case $1 in
        --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
        --build) build=${2:?--build needs a value}; shift 2 ;;
        --share) shares+=("${2:?--share needs a value}"); shift 2 ;;
        --env) envs+=("${2:?--env needs a value}"); shift 2 ;;
        --selinux) selinux=1; shift ;;
        --systemd) systemd=1; shift ;;
        --memory) memory=${2:?--memory needs a value}; shift 2 ;;
        --smp) smp=${2:?--smp needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) echo "run-in-vm.sh: unknown option $1 (the command follows --)" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "run-in-vm.sh: no command given (run-in-vm.sh [OPTIONS] -- COMMAND...)" >&2; exit 2; }
[[ $timeout =~ ^[0-9]+$ ]] && [ "$timeout" -gt 0 ] || { echo "run-in-vm.sh: --timeout: not a positive number of seconds: $timeout" >&2; exit 2; }
build=${build:-$src/build}
[ -d "$build" ] || { echo "run-in-vm.sh: --build $build: no such directory" >&2; exit 2; }
build=$(cd "$build" && pwd)

for tool in qemu-system-x86_64 swtpm; do
    command -v "$tool" >/dev/null || { echo "run-in-vm.sh: $tool not installed (see .ci/packages.txt)" >&2; exit 125; }
done
bios=/usr/share/qemu/qboot.rom
[ -f "$bios" ] || { echo "run-in-vm.sh: $bios missing (apt-get install qemu-system-x86)" >&2; exit 125; }

"$here/build-initramfs.sh" "$build/vm" || { echo "run-in-vm.sh: building the VM image failed" >&2; exit 125; }

tmp= qemu_pid= swtpm_pid= tail_pid=
cleanup() {
    # Only our own processes, by PID.
    for p in $qemu_pid $swtpm_pid; do kill -KILL "$p" 2>/dev/null || true; done
    for p in $qemu_pid $swtpm_pid; do wait "$p" 2>/dev/null || true; done
    [ -n "$tail_pid" ] && { kill "$tail_pid" 2>/dev/null || true; wait "$tail_pid" 2>/dev/null || true; }
    [ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tmp=$(mktemp -d /tmp/trustme-vm.XXXXXX)
ctl=$tmp/ctl
mkdir -p "$ctl" "$tmp/tpm"

# The command, quoted for bash, run in the current directory with the requested environment.
{
    echo "cd $(printf '%q' "$PWD") || exit 125"
    for e in "${envs[@]}"; do echo "export $(printf '%q' "$e")"; done
    printf 'exec'; printf ' %q' "$@"; echo
} > "$ctl/cmd"
[ "$selinux" = 1 ] && : > "$ctl/selinux"
[ "$systemd" = 1 ] && : > "$ctl/systemd"

# Shares: the host's /usr and /etc, the source tree, the build tree and extra ones; a directory inside
# another share is not shared twice.
all=(/usr /etc "$src" "$build")
for s in "${shares[@]}"; do
    [ -d "$s" ] || { echo "run-in-vm.sh: --share $s: no such directory" >&2; exit 2; }
    all+=("$(cd "$s" && pwd)")
done
share_args=()
n=0
: > "$ctl/shares"
for s in "${all[@]}"; do
    covered=0
    for t in "${all[@]}"; do
        [ "$s" != "$t" ] && [[ $s == "$t"/* ]] && covered=1
    done
    awk -v p="$s" '$2 == p { f = 1 } END { exit !f }' "$ctl/shares" && covered=1
    [ "$covered" = 1 ] && continue
    [[ $s == *,* || $s == *" "* ]] && { echo "run-in-vm.sh: cannot share $s (comma or space in the path)" >&2; exit 2; }
    share_args+=(-fsdev "local,id=fs$n,path=$s,security_model=none,readonly=on,multidevs=remap"
                 -device "virtio-9p-pci,fsdev=fs$n,mount_tag=s$n")
    echo "s$n $s" >> "$ctl/shares"
    n=$((n + 1))
done

swtpm socket --tpm2 --tpmstate "dir=$tmp/tpm" --ctrl "type=unixio,path=$tmp/swtpm.sock" \
    --flags not-need-init --terminate >"$tmp/swtpm.log" 2>&1 &
swtpm_pid=$!
for _ in $(seq 100); do
    [ -S "$tmp/swtpm.sock" ] && break
    kill -0 "$swtpm_pid" 2>/dev/null || break
    sleep 0.1
done
[ -S "$tmp/swtpm.sock" ] || { echo "run-in-vm.sh: swtpm did not start: $(cat "$tmp/swtpm.log")" >&2; exit 125; }

append="console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"
[ "$selinux" = 1 ] && append="$append security=selinux selinux=1"

: > "$tmp/console"
qemu-system-x86_64 \
    -machine q35,accel=tcg -cpu max -smp "$smp" -m "$memory" \
    -bios "$bios" -kernel "$build/vm/vmlinux" -initrd "$build/vm/initramfs.cpio.gz" -append "$append" \
    -nodefaults -no-user-config -display none -no-reboot \
    -chardev "file,id=con0,path=$tmp/console" -serial chardev:con0 \
    -chardev "socket,id=chrtpm,path=$tmp/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
    -device tpm-tis,tpmdev=tpm0 \
    -device virtio-rng-pci \
    -fsdev "local,id=fsctl,path=$ctl,security_model=none" -device virtio-9p-pci,fsdev=fsctl,mount_tag=trustmectl \
    "${share_args[@]}" </dev/null >"$tmp/qemu.log" 2>&1 &
qemu_pid=$!

tail -n +1 -f --pid="$qemu_pid" "$tmp/console" &
tail_pid=$!

deadline=$((SECONDS + timeout))
timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        timed_out=1
        kill -KILL "$qemu_pid" 2>/dev/null || true
        break
    fi
    sleep 0.5
done
wait "$qemu_pid" 2>/dev/null && qrc=0 || qrc=$?
qemu_pid=
wait "$tail_pid" 2>/dev/null || true
tail_pid=

if [ "$timed_out" = 1 ]; then
    echo "run-in-vm.sh: timed out after ${timeout}s; VM stopped" >&2
    exit 124
fi
if [ ! -f "$ctl/rc" ]; then
    echo "run-in-vm.sh: the VM stopped without a result (qemu exit status $qrc)" >&2
    sed 's/^/qemu: /' "$tmp/qemu.log" >&2
    exit 125
fi
exit "$(cat "$ctl/rc")"
