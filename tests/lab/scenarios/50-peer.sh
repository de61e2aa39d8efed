# peer: the wiring sanity check. Each DUT NIC, while still on its kernel driver,
# exchanges IPv4 frames (ARP + ICMP) with the kernel-driven NIC in the peer
# namespace through QEMU hub 0. One DUT at a time owns 10.77.0.1.
need LAB_PEER_IF LAB_VIRTIO0_IF LAB_VIRTIO1_IF LAB_E1000E0_IF LAB_E1000E1_IF
ok=""
for r in VIRTIO0 VIRTIO1 E1000E0 E1000E1; do
  eval ifc=\$LAB_${r}_IF
  ip link set "$ifc" up
  ip addr add 10.77.0.1/24 dev "$ifc"
  # e1000e reports link a little after "up": retry, bounded (6 x 1 s).
  n=0
  until ping -c 1 -W 1 10.77.0.254 >/tmp/ping.out 2>&1 || [ $n -ge 5 ]; do n=$((n + 1)); done
  if ping -c 1 -W 1 10.77.0.254 >>/tmp/ping.out 2>&1 &&
     peer ping -c 2 -W 2 10.77.0.1 >>/tmp/ping.out 2>&1; then
    ok="$ok $r"
  else
    cat /tmp/ping.out
    ip addr del 10.77.0.1/24 dev "$ifc"
    fail "$r ($ifc) could not exchange ICMP with the peer namespace"
  fi
  ip addr del 10.77.0.1/24 dev "$ifc"
  ip link set "$ifc" down
done
detail "ICMP both ways with the peer namespace via:$ok"
