#!/bin/bash
# Rootless `run` latency: trustme-runtime, runc and crun, N (default 15) interleaved runs each as an
# unprivileged user made for the run (removed after it), on one `spec --rootless` bundle.
#   bench/rootless.sh path/to/trustme-runtime
# crun 1.8.1 refuses a cgroup v1 hybrid host, rootless too: it runs in a private mount namespace without
# /sys/fs/cgroup/unified, made per command by a wrapper whose own cost (the same wrapper running /bin/true)
# is printed and subtracted. Run as root.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-15}
rt=$(readlink -f "${1:?usage: bench/rootless.sh TRUSTME_RUNTIME}")
U=tmbench$$
useradd -M -U -s /bin/sh "$U"; uid=$(id -u $U)
T=$(mktemp -d /tmp/rlb.XXXXXX); chmod 755 $T
trap 'userdel $U; rm -rf $T' EXIT
cp "$rt" $T/trustme-runtime
mkdir -p $T/xdg $T/b; chown $U:$U $T/xdg $T/b; chmod 700 $T/xdg
sh $SRC/tests/fixtures/make-rootfs.sh $T/b/rootfs >/dev/null 2>&1; chown -R $U:$U $T/b
as() { setpriv --reuid $uid --regid $uid --init-groups env -i XDG_RUNTIME_DIR=$T/xdg HOME=$T PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
as $T/trustme-runtime spec --rootless --bundle $T/b
python3 - $T/b/config.json <<'PY'
import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["process"]["terminal"]=False; c["process"]["args"]=["true"]; c["ociVersion"]="1.0.2-dev"; json.dump(c,open(p,"w"))
PY
declare -A cmd=([ours]="$T/trustme-runtime" [runc]="runc")
# crun refuses this hybrid host unless /sys/fs/cgroup/unified is gone: a private mount namespace without it,
# made per command (its cost, measured with /bin/true in the same wrapper, is subtracted).
cw() { unshare -m sh -c 'umount /sys/fs/cgroup/unified; exec "$@"' cw setpriv --reuid $uid --regid $uid --init-groups env -i XDG_RUNTIME_DIR=$T/xdg HOME=$T PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
for i in $(seq 1 $N); do
  for r in ours runc crun wrap; do
    s=$(date +%s%N)
    case $r in
      crun) cw crun --cgroup-manager=disabled run --bundle $T/b c$i-$r >/dev/null 2>$T/err.$r; rc=$? ;;
      wrap) cw true 2>$T/err.$r; rc=$? ;;
      *) as ${cmd[$r]} run --bundle $T/b c$i-$r >/dev/null 2>$T/err.$r; rc=$? ;;
    esac
    e=$(date +%s%N)
    [ $rc = 0 ] && echo "$r $(( (e-s)/1000 ))" >> $T/times || { echo "$r failed: $(head -c 200 $T/err.$r)"; }
  done
done
python3 - $T/times <<'PY'
import sys,statistics,collections
d=collections.defaultdict(list)
for l in open(sys.argv[1]): r,t=l.split(); d[r].append(int(t)/1000)
w=statistics.median(d["wrap"]) if d["wrap"] else 0
for r,v in d.items(): print(f"{r}: n={len(v)} median {statistics.median(v):.1f} ms min {min(v):.1f} ms" + (f" (minus the wrapper's {w:.1f} ms: {statistics.median(v)-w:.1f} ms)" if r=="crun" else ""))
PY
