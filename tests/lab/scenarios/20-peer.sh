# peer: the wiring. Each DUT NIC, while still on its kernel driver, exchanges
# IPv4 frames (ARP + ICMP) with the kernel-driven NIC in the peer namespace
# through QEMU hub 0 (one DUT at a time owns 10.77.0.1). Then a raw frame sent
# from user space through a VFIO-bound e1000e and virtio-net reaches the peer.
need LAB_PEER_IF LAB_VIRTIO0_IF LAB_VIRTIO1_IF LAB_E1000E0_IF LAB_E1000E1_IF
ok=""
for r in VIRTIO0 VIRTIO1 E1000E0 E1000E1; do
  eval b=\$LAB_$r
  ifc=$(ifname_of $b)
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
vf=""
for r in E1000E1 VIRTIO1; do
  eval b=\$LAB_$r
  m="npa-lab-$r-$$"
  # The window covers the whole "tx" below (bind, MAP_DMA, send, restore):
  # under host load that took 8.6 s once (MAP_DMA alone 2.9 s), past the 8 s
  # this used to allow. The sniffer returns as soon as the frame is there.
  peer /lab/bin/npa-lab-vf-probe sniff "$LAB_PEER_IF" "$m" 30000 >/tmp/sniff.out 2>&1 &
  sp=$!
  n=0
  until grep -q READY /tmp/sniff.out || [ $n -ge 50 ]; do sleep 0.1; n=$((n + 1)); done
  run_probe tx $b "$m"
  wait $sp || { cat /tmp/sniff.out; fail "peer did not see the frame sent through VFIO by $r"; }
  cat /tmp/sniff.out
  vf="$vf $r"
done
detail "ICMP both ways with the peer namespace via:$ok; raw frames via VFIO seen by the peer from:$vf"
