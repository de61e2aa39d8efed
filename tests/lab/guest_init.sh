#!/bin/busybox sh
# tests/lab/guest_init.sh — /init of the lab guest (run_lab.sh packs it).
# Loads the modules, names the functions by MAC, puts the peer NIC into the
# "peer" network namespace, runs each scenario in /lab/run.list under a time
# limit and prints "LABRESULT <name> PASS|FAIL <secs> <detail>", then powers off.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /var
/bin/busybox --install -s /bin
export PATH=/lab/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lab/lib  # the build's own libraries (run_lab.sh)
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
ln -s /run /var/run
say() { echo "LABINIT $*"; }
# Debian's static busybox prefers its applets to PATH; iproute2's ip (netns) by path.
ip() { /lab/bin/ip "$@"; }
up() { cut -d' ' -f1 /proc/uptime; }
say "kernel $(uname -r), init at $(up)s"
for m in $(cat /lab/modules.order); do
  out=$(insmod /lab/mods/$m.ko 2>&1) || say "insmod $m failed: $out"
done

# Roles by the MACs run_lab.sh gave the NICs; BDFs from the netdev's device link.
ENV=/lab/env
: >$ENV
for n in /sys/class/net/*; do
  [ -e $n/device ] || continue
  # virtio netdevs hang off the virtio bus device (virtioN); its parent is PCI.
  dev=$(readlink -f $n/device)
  case ${dev##*/} in virtio*) dev=${dev%/*} ;; esac
  bdf=${dev##*/}
  case $(cat $n/address) in
    52:54:00:4c:00:01) r=VIRTIO0 ;;
    52:54:00:4c:00:02) r=VIRTIO1 ;;
    52:54:00:4c:00:03) r=E1000E0 ;;
    52:54:00:4c:00:04) r=E1000E1 ;;
    52:54:00:4c:00:fe) r=PEER ;;
    52:54:00:4c:01:01) r=HA_VIRTIO ;;
    52:54:00:4c:01:fe) r=HA_TWIN ;;
    52:54:00:4c:02:01) r=HB_E1000E ;;
    52:54:00:4c:02:fe) r=HB_TWIN ;;
    *) continue ;;
  esac
  echo "LAB_$r=$bdf" >>$ENV
  echo "LAB_${r}_IF=${n##*/}" >>$ENV
  echo "LAB_${r}_MAC=$(cat $n/address)" >>$ENV
done
for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/vendor):$(cat $d/device)" = "0x1b36:0x0010" ] && echo "LAB_NVME_PF=${d##*/}" >>$ENV
done
. $ENV
say "roles: $(tr '\n' ' ' <$ENV)"

# Traffic peer: the kernel-driven NIC in its own namespace, 10.77.0.254/24.
if [ -n "$LAB_PEER_IF" ]; then
  out=$( { ip netns add peer && ip link set "$LAB_PEER_IF" netns peer &&
    ip -n peer addr add 10.77.0.254/24 dev "$LAB_PEER_IF" &&
    ip -n peer link set "$LAB_PEER_IF" up && ip -n peer link set lo up; } 2>&1) ||
    say "peer namespace setup failed: $out"
fi
# The two-host lab's top-of-rack switch: a learning bridge whose ports are
# the twins of host A's and host B's functions (each alone with its twin on
# a QEMU hub); the scenarios add both hosts' uplinks and their peer
# (twohost_up in scenarios/lib.sh). STP off: ports forward at once.
if [ -n "$LAB_HA_TWIN" ] && [ -n "$LAB_HB_TWIN" ]; then
  out=$( { ip link add tor type bridge stp_state 0 && ip link set tor up &&
    ip link set "$LAB_HA_TWIN_IF" master tor && ip link set "$LAB_HA_TWIN_IF" up &&
    ip link set "$LAB_HB_TWIN_IF" master tor && ip link set "$LAB_HB_TWIN_IF" up; } 2>&1) ||
    say "bridge tor setup failed: $out"
fi
# Start the DUT links now: e1000e's autonegotiation takes seconds, which then
# overlap with the first scenarios instead of stalling the peer check.
for v in $LAB_VIRTIO0_IF $LAB_VIRTIO1_IF $LAB_E1000E0_IF $LAB_E1000E1_IF; do ip link set "$v" up; done
say "ready at $(up)s"

T=$(cat /lab/scenario_timeout)
for s in $(cat /lab/run.list); do
  t0=$(up)
  # A scenario may ask for a longer limit with a "# lab-timeout: SECONDS" line
  # (the two-host scenarios run several programs on one TCG vCPU).
  T=$(cat /lab/scenario_timeout)
  st=$(sed -n 's/^# lab-timeout: *\([0-9][0-9]*\).*/\1/p' /lab/scenarios/$s.sh | head -1)
  [ -n "$st" ] && [ "$st" -gt "$T" ] && T=$st
  # Each scenario in its own session (= process group). busybox timeout would
  # kill only the scenario's sh: a hung npa-conform under it kept its VFIO
  # device and spun on the one vCPU through the following scenarios. The
  # watchdog KILLs the whole group at the limit (rc 137), and whatever a
  # scenario leaves behind goes with the group afterwards.
  setsid sh -c ". /lab/env; . /lab/scenarios/lib.sh; . /lab/scenarios/$s.sh" >/tmp/$s.log 2>&1 &
  pid=$!
  ( end=$(($(cut -d. -f1 /proc/uptime) + T))
    while kill -0 $pid 2>/dev/null && [ $(cut -d. -f1 /proc/uptime) -lt $end ]; do sleep 1; done
    kill -KILL -$pid 2>/dev/null ) &
  wd=$!
  wait $pid
  rc=$?
  kill $wd 2>/dev/null
  wait $wd 2>/dev/null
  kill -KILL -$pid 2>/dev/null
  t1=$(up)
  secs=$(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f", b-a}')
  sed "s/^/LABLOG $s: /" /tmp/$s.log
  detail=$(sed -n 's/^DETAIL: //p' /tmp/$s.log | tail -1)
  if [ $rc = 0 ]; then v=PASS; else
    v=FAIL
    [ $rc = 137 ] && detail="timed out after ${T}s; $detail"
    fl=$(sed -n 's/^FAIL: //p' /tmp/$s.log | tail -1)
    [ -n "$fl" ] && detail="$fl"
    [ -z "$detail" ] && detail="exit $rc: $(tail -1 /tmp/$s.log)"
  fi
  echo "LABRESULT $s $v $secs $detail"
done
say "done at $(up)s"
sync
poweroff -f
