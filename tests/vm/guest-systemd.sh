#!/.busybox/sh
# Systemd mode of the test VM (run-in-vm.sh --systemd), exec'd by guest-init.sh as PID 1 once the shares
# are mounted: systemd from the shared /usr becomes PID 1, as on the hosts users run (it mounts cgroup2
# unified, makes / shared, starts D-Bus), and a oneshot unit runs the command once basic.target is up,
# writes its exit status to the control share and powers off.
export PATH=/.busybox
units=/run/systemd/system
mkdir -p "$units"

# Units the tests do not need, masked for this boot only: slow under TCG, waiting for hardware the VM has
# not got, or starting the host's daemons (the engines are started by the tests themselves).
for u in timers.target apparmor.service systemd-timesyncd.service systemd-pstore.service systemd-firstboot.service \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-udev-trigger.service \
    systemd-udev-settle.service systemd-hwdb-update.service systemd-journal-catalog-update.service ldconfig.service \
    systemd-sysusers.service systemd-update-done.service systemd-modules-load.service systemd-binfmt.service \
    proc-sys-fs-binfmt_misc.automount sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
    sys-fs-fuse-connections.mount systemd-random-seed.service systemd-networkd.service systemd-resolved.service \
    docker.socket podman.socket systemd-logind.service getty.target; do
    ln -sf /dev/null "$units/$u"
done

cat > "$units/trustme-vm.target" <<'UNIT'
[Unit]
Description=trustme-runtime VM command
Requires=basic.target trustme-vm.service
After=basic.target trustme-vm.service
UNIT
cat > "$units/trustme-vm.service" <<'UNIT'
[Unit]
Description=trustme-runtime VM command
Requires=basic.target dbus.socket
After=basic.target dbus.socket
[Service]
Type=oneshot
ExecStart=/.busybox/sh /run/trustme-vm-command
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/console
UNIT
cat > /run/trustme-vm-command <<'CMD'
export HOME=/root TERM=dumb LANG=C.UTF-8 TRUSTME_VM_GUEST=1 TRUSTME_VM_SYSTEMD=1
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
/.busybox/stty -onlcr 2>/dev/null </dev/console
/usr/bin/bash /.ctl/cmd </dev/null >/dev/console 2>&1
rc=$?
echo "$rc" > /.ctl/rc.tmp && /.busybox/mv /.ctl/rc.tmp /.ctl/rc
/.busybox/sync
echo 0 > /proc/sys/kernel/printk
/.busybox/reboot -f
CMD

for init in /usr/lib/systemd/systemd /lib/systemd/systemd; do
    [ -x "$init" ] && exec "$init" --unit=trustme-vm.target --show-status=0 --log-level=warning
done
echo "vm-init: no systemd in the shared /usr (apt-get install systemd)" >/dev/console
echo 125 > /.ctl/rc
reboot -f
