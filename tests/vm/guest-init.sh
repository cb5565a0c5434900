#!/.busybox/sh
# /init of the test VM (see run-in-vm.sh and docs/vm.md). Runs as PID 1 in the initramfs:
# loads the modules, mounts the host's trees shared by 9p at their own paths (read-only on the host
# side, made writable inside the guest by an overlay on tmpfs, so the guest never changes the host),
# sets up proc/sys/dev/cgroup2/tmp, runs the command from the control share, writes its exit status
# there and powers off.
export PATH=/.busybox
ctl=/.ctl

# pivot_root(2) refuses to move the initramfs' rootfs away (EINVAL), so container runtimes could not
# pivot_root in this VM (runc works around it with --no-pivot, DOCKER_RAMDISK). Stage 1 copies the
# initramfs onto a tmpfs and makes that the root with switch_root; stage 2 is the rest of this script.
if [ "$1" != stage2 ]; then
    mount -t tmpfs -o mode=0755 tmpfs /newroot || { echo "vm-init: cannot mount tmpfs" >/dev/console; exec sh; }
    for f in /.busybox /.modules /.layers /.selinux /init /.systemd-boot /bin /sbin /lib /lib64 /proc /sys /dev /run /tmp /etc /usr /mnt; do
        [ -e "$f" ] || [ -L "$f" ] && cp -a "$f" /newroot/
    done
    exec switch_root /newroot /init stage2
fi

die() {
    echo "vm-init: $*" >/dev/console
    [ -d "$ctl" ] && echo 125 > "$ctl/rc.tmp" && mv "$ctl/rc.tmp" "$ctl/rc"
    sync
    reboot -f
    sleep 100000
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp

while read -r m; do
    insmod "/.modules/$m" 2>/dev/console || die "insmod $m failed"
done < /.modules/order

ninep="trans=virtio,version=9p2000.L,msize=524288,cache=loose"
mkdir -p "$ctl"
mount -t 9p -o "$ninep" trustmectl "$ctl" || die "cannot mount the control share"

# Writable layers of the shares live here; tmpfs upper dirs are what overlayfs needs.
mount -t tmpfs -o mode=0755 tmpfs /.layers
i=0
while read -r tag path; do
    [ -n "$tag" ] || continue
    mkdir -p "/.layers/lower$i" "/.layers/upper$i" "/.layers/work$i" "$path" || die "mkdir $path"
    mount -t 9p -o "ro,$ninep" "$tag" "/.layers/lower$i" || die "cannot mount share $tag at $path"
    mount -t overlay -o "lowerdir=/.layers/lower$i,upperdir=/.layers/upper$i,workdir=/.layers/work$i" overlay "$path" ||
        die "cannot mount overlay at $path"
    i=$((i + 1))
done < "$ctl/shares"

mkdir -p /var/tmp /var/lib /var/log /root /sys/fs/cgroup
ln -sfn /run /var/run
chmod 1777 /var/tmp
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
# run-in-vm.sh --systemd: systemd becomes PID 1 here and runs the command (guest-systemd.sh).
[ -f "$ctl/systemd" ] && exec /.busybox/sh /.systemd-boot
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || die "cannot mount cgroup2"
# Every controller in the root's subtree_control, so tests may use any of them in child cgroups.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/console || die "cannot enable cgroup controller $c"
done

if [ -e /sys/fs/selinux ] || grep -q selinuxfs /proc/filesystems; then
    if [ -f "$ctl/selinux" ]; then
        mount -t selinuxfs selinuxfs /sys/fs/selinux || die "cannot mount selinuxfs"
        [ -f /.selinux/policy ] || die "no SELinux policy in the initramfs (apt-get install selinux-policy-default)"
        # selinuxfs takes the policy in ONE write(2); a short first write is rejected, so read it whole.
        /usr/bin/dd if=/.selinux/policy of=/sys/fs/selinux/load bs=64M iflag=fullblock status=none ||
            die "loading the SELinux policy failed"
    fi
fi

hostname trustme-vm
ip link set lo up 2>/dev/null
# The console is a serial tty: keep "\n" as is, so the host sees the command's output unchanged.
stty -onlcr 2>/dev/null </dev/console

export HOME=/root TERM=dumb LANG=C.UTF-8 TRUSTME_VM_GUEST=1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
/usr/bin/bash "$ctl/cmd" </dev/null >/dev/console 2>&1
rc=$?
echo "$rc" > "$ctl/rc.tmp" && mv "$ctl/rc.tmp" "$ctl/rc"
sync
umount "$ctl" 2>/dev/null
# Not even "reboot: Restarting system" on the console: the output is the command's.
echo 0 > /proc/sys/kernel/printk
reboot -f
sleep 100000
