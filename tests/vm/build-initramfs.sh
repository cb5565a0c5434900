#!/bin/bash
# Build the test VM's kernel and initramfs: build-initramfs.sh [--kver KVER] OUTDIR
#
# OUTDIR receives vmlinux (uncompressed, booted directly through its PVH entry), initramfs.cpio.gz and
# inputs.sha256 (the key of the cache: when it matches the inputs, nothing is rebuilt).
#
# The initramfs holds busybox-static, the kernel modules the tests need (each with its dependencies, in
# load order, as `modprobe --show-depends` lists them), the SELinux policy when one is installed, and
# guest-init.sh as /init. Everything else — the host's /usr (so every binary with every library it needs,
# including dlopen()ed ones such as libtss2-tcti-*, libgcc_s or our plugins), /etc and the build tree —
# is shared into the guest read-only by virtio-9p at run time (see run-in-vm.sh), so the image never
# falls out of step with what the tests run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

kver=
while [ $# -gt 0 ]; do
    case $1 in
        --kver) kver=${2:?--kver needs a value}; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "build-initramfs.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
out=${1:?usage: build-initramfs.sh [--kver KVER] OUTDIR}

if [ -z "$kver" ]; then
    # The newest kernel that has both an image and modules.
    for v in $(ls /lib/modules | sort -V -r); do
        if [ -f "/boot/vmlinuz-$v" ]; then kver=$v; break; fi
    done
fi
[ -n "$kver" ] || { echo "build-initramfs.sh: no kernel with /boot/vmlinuz-* and /lib/modules/* (apt-get install linux-image-amd64)" >&2; exit 1; }
kimage=/boot/vmlinuz-$kver
[ -f "$kimage" ] || { echo "build-initramfs.sh: $kimage: no such file" >&2; exit 1; }
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "build-initramfs.sh: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
command -v cpio >/dev/null || { echo "build-initramfs.sh: cpio missing (apt-get install cpio)" >&2; exit 1; }
command -v modprobe >/dev/null || { echo "build-initramfs.sh: modprobe missing (apt-get install kmod)" >&2; exit 1; }

# Modules the guest loads. Why each: dm-* and the ciphers for LUKS2 (aes-xts-plain64, and authenc for
# --integrity hmac-sha256), algif_* because libcryptsetup checks ciphers and decrypts keyslots through
# AF_ALG, loop for image files, ext4 for the volumes' file system, virtio + 9p for the shared trees,
# overlay to make those shares writable inside the guest only, virtio-rng so getrandom() never waits,
# dm-verity for signed rootfs images, tun for /dev/net/tun (char 10:200), which runc's default device rules
# allow: without it runc 1.1 warns "skipping device /dev/char/10:200 for systemd" on every create under the
# systemd driver, into the output the tests read.
modules="dm-mod dm-crypt dm-integrity xts ecb aesni_intel sha512_generic authenc algif_skcipher algif_hash
algif_aead loop ext4 virtio_pci virtio_rng 9p 9pnet_virtio overlay dm-verity tun"

policy=
if [ -f /etc/selinux/config ]; then
    type=$(sed -n 's/^SELINUXTYPE=//p' /etc/selinux/config)
    policy=$(ls "/etc/selinux/${type:-default}/policy/policy."* 2>/dev/null | sort -V | tail -n1 || true)
fi

modlist=$(for m in $modules; do
    modprobe -S "$kver" --show-depends "$m" 2>/dev/null || { echo "build-initramfs.sh: module $m not found for $kver" >&2; exit 1; }
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }')

key=$( {
    echo "kver=$kver modules=$modules policy=$policy"
    sha256sum "$0" "$here/guest-init.sh" "$here/guest-systemd.sh" "$here/extract-vmlinux.py" "$kimage" "$busybox" $modlist ${policy:+"$policy"}
} | sha256sum | cut -d' ' -f1)

mkdir -p "$out"
if [ -f "$out/inputs.sha256" ] && [ "$(cat "$out/inputs.sha256")" = "$key" ] &&
   [ -f "$out/vmlinux" ] && [ -f "$out/initramfs.cpio.gz" ]; then
    exit 0
fi
rm -f "$out/inputs.sha256"

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

python3 "$here/extract-vmlinux.py" "$kimage" "$work/vmlinux"

root=$work/root
mkdir -p "$root"/{.busybox,.modules,.layers,newroot,proc,sys,dev,run,tmp,etc,usr,mnt}
cp "$busybox" "$root/.busybox/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/.busybox/$applet"
done
# The host's usr-merged layout: /bin, /sbin, /lib, /lib64 come from the shared /usr.
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
for m in $modlist; do
    cp "$m" "$root/.modules/"
    basename "$m" >> "$root/.modules/order"
done
if [ -n "$policy" ]; then
    mkdir -p "$root/.selinux"
    cp "$policy" "$root/.selinux/policy"
fi
install -m 0755 "$here/guest-init.sh" "$root/init"
install -m 0755 "$here/guest-systemd.sh" "$root/.systemd-boot"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$work/initramfs.cpio.gz"

mv -f "$work/vmlinux" "$out/vmlinux"
mv -f "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
echo "$key" > "$out/inputs.sha256"
