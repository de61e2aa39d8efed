# virtio_net: the virtio_net plug-in on a QEMU virtio-net-pci (modern,
# iommu_platform=on) through VFIO: frames to and from the peer namespace
# checked byte for byte, RX in MSI-X interrupt mode, and VFIO_DEVICE_RESET
# (FLR) under a running plug-in confirmed by reading virtio device_status back
# (DRIVER_OK -> 0), then a clean re-probe. Runs npa-conform's data-path cases
# on LAB_VIRTIO0. Needs /lab/bin/npa-conform and
# /lab/plugins/npa_plugin_virtio_net.so in the guest.
need LAB_VIRTIO0 LAB_VIRTIO0_IF LAB_PEER_IF
# conform_run BDF IFNAME PLUGIN.so RESET_METHOD [npa-conform args...]: bind to
# vfio-pci, run npa-conform against the peer namespace, hand the function back
# (the same helper in every conform_*/virtio_* scenario: run_lab.sh copies
# only lib.sh and the scenarios it runs).
conform_run() {
  local bdf="$1" ifc="$2" so="/lab/plugins/$3" rm="$4"
  shift 4
  local bin=/lab/bin/npa-conform d=/sys/bus/pci/devices/$bdf
  [ -x "$bin" ] && [ -f "$so" ] || fail "$bin or $so missing from the guest"
  ip link set "$ifc" down 2>/dev/null
  [ -n "$rm" ] && { echo "$rm" >$d/reset_method || fail "cannot set reset_method=$rm"; }
  echo vfio-pci >$d/driver_override
  [ -e $d/driver ] && echo $bdf >$d/driver/unbind
  echo $bdf >/sys/bus/pci/drivers_probe
  [ "$(drv $bdf)" = vfio-pci ] || fail "$bdf did not bind to vfio-pci (driver: $(drv $bdf))"
  local broken=""
  [ -d /lab/plugins/broken ] && broken="--broken-dir /lab/plugins/broken"
  # Streamed (tee), so a run killed at the scenario time limit still shows
  # how far it got.
  { "$bin" --peer-netns peer --peer-if "$LAB_PEER_IF" $broken "$@" "$so" "$bdf" 2>&1
    echo $? >/tmp/conform.rc; } | tee /tmp/conform.out
  local rc
  rc=$(cat /tmp/conform.rc)
  # On failure, the peer NIC's own counters: did frames reach its driver?
  [ $rc = 0 ] || ip -n peer -s -s link show "$LAB_PEER_IF"
  echo >$d/driver_override
  [ -e $d/driver ] && echo $bdf >$d/driver/unbind
  echo $bdf >/sys/bus/pci/drivers_probe
  local sum
  sum=$(tail -1 /tmp/conform.out)
  [ $rc = 0 ] || fail "$(grep -m1 '^CONFORM .* FAIL' /tmp/conform.out || echo "npa-conform exit $rc") ($sum)"
  detail "$(grep -c '^CONFORM .* PASS' /tmp/conform.out) cases passed: $sum"
}
conform_run "$LAB_VIRTIO0" "$LAB_VIRTIO0_IF" npa_plugin_virtio_net.so "" \
  --case tx_to_peer --case rx_from_peer --case burst_one --case rx_interrupt --case host_reset
