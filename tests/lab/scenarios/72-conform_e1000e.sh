# conform_e1000e: the whole npa-conform suite with the e1000e plug-in on
# LAB_E1000E0 (reset_method=bus: QEMU ignores the 'pm' reset the kernel would
# pick, lab NOTES).
need LAB_E1000E0 LAB_E1000E0_IF LAB_PEER_IF
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
conform_run "$LAB_E1000E0" "$LAB_E1000E0_IF" npa_plugin_e1000e.so bus
