#!/bin/busybox sh
# tests/vm/vm_init.sh — /init of the QEMU VM that run_vm_test.sh boots on
# npa-agent's vhost-user socket. Loads virtio_net (Linux's own driver, not
# npa's shell), configures the NIC with the MAC run_vm_test.sh gave it, pings
# the peer, checks that ARP resolved it, runs the UDP stream (npa-vm-udp)
# against the peer and powers off. Every result is one "VMTEST ..." line on
# the serial console, which run_vm_test.sh parses.
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "VMTEST $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
. /vm/env
say "kernel $(uname -r), init at $(up)s"
for m in $(cat /vm/modules.order); do
  out=$(insmod /vm/mods/$m.ko 2>&1) || say "insmod $m failed: $out"
done

# The NIC under test by its MAC (virtio_net names it eth0, but do not rely on it).
IF=
for n in /sys/class/net/*; do
  [ "$(cat $n/address 2>/dev/null)" = "$VM_MAC" ] && IF=${n##*/}
done
if [ -z "$IF" ]; then
  say "FAIL no interface with MAC $VM_MAC: $(ls /sys/class/net | tr '\n' ' ')"
  poweroff -f
fi
ip link set lo up
ip addr add "$VM_IP/24" dev "$IF"
ip link set "$IF" up
# Carrier: virtio_net reports link up at once without VIRTIO_NET_F_STATUS;
# bounded wait anyway (10 s).
i=0
while [ "$(cat /sys/class/net/$IF/carrier 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
drv=$(basename "$(readlink /sys/class/net/$IF/device/driver)")
say "net-up $IF driver=$drv queues_rx=$(ls -d /sys/class/net/$IF/queues/rx-* | wc -l) queues_tx=$(ls -d /sys/class/net/$IF/queues/tx-* | wc -l) at $(up)s"

# ARP and ping: the first echo request resolves the peer through the agent's
# switch and TAP uplink.
if out=$(ping -c 3 -W 3 "$PEER_IP" 2>&1); then
  say "ping ok $(echo "$out" | grep -E 'packets transmitted' | tr -s ' ')"
else
  say "ping FAIL $(echo "$out" | tail -2 | tr '\n' ' ')"
fi
mac=$(awk -v ip="$PEER_IP" '$1 == ip && $3 == "0x2" {print $4}' /proc/net/arp)
say "arp $PEER_IP ${mac:-unresolved}"

# Reconnect (run_vm_test.sh --reconnect): the host restarts npa-agent now;
# QEMU (-chardev ...,reconnect=1) drops the link when the socket closes and
# raises it again once it has set the new agent's rings up. Both edges are
# waited for (bounded), then ping must work again before the stream runs.
if [ "${RECONNECT:-0}" = 1 ]; then
  say "reconnect-wait at $(up)s"
  carrier() { cat /sys/class/net/$IF/carrier 2>/dev/null; }
  i=0; while [ "$(carrier)" = 1 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
  down=$(up)
  i=0; while [ "$(carrier)" != 1 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
  say "reconnect link down at ${down}s, up at $(up)s, carrier $(carrier)"
  # The first echo may go before the new agent's switch learned the peer.
  ok=0
  for i in 1 2 3 4 5; do ping -c 1 -W 2 "$PEER_IP" >/dev/null 2>&1 && { ok=1; break; }; done
  if [ $ok = 1 ]; then say "reconnect ping ok after $i"; else say "reconnect ping FAIL"; fi
fi

# The stream: the peer runs the same program (a SYNC handshake first, so
# nothing is sent before the far socket is bound).
/vm/npa-vm-udp --bind "$VM_IP:$VM_PORT" --peer "$PEER_IP:$PEER_PORT" --count "$COUNT" \
  --rate "$RATE" --timeout "$UDP_TIMEOUT" --name vm
say "udp-rc $?"
say "stats $(for s in rx_packets tx_packets rx_dropped tx_dropped rx_errors tx_errors; do
  printf '%s=%s ' $s "$(cat /sys/class/net/$IF/statistics/$s)"; done)"
say "done at $(up)s"
sync
poweroff -f
