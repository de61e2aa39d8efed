# e1000e_vf: the e1000e vendor plug-in on a real (QEMU) 82574L through VFIO.
# Binds LAB_E1000E1 to vfio-pci (reset_method=bus first: QEMU ignores the 'pm'
# reset the kernel would pick), gives the peer namespace a neighbour entry for
# the DUT's 10.77.0.1, and runs npa-lab-e1000e: the function opened with the
# VFIO host library (hypervisor/vf/vfio.h), the plug-in loaded by the shell's
# loader over the shell's services (shell/vf/vf_services.h), TX to the peer
# (checksum offload checked by the peer's kernel), RX in MSI-X interrupt mode,
# stats, stop, VFIO reset read back, recovery, then both queue pairs with RSS
# (the peer's TCP SYNs each on the queue npa's Toeplitz hash names). Needs /lab/bin/npa-lab-e1000e and
# /lab/plugins/npa_plugin_e1000e.so in the guest (built by the
# npa-lab-e1000e and npa_plugin_e1000e targets).
need LAB_E1000E1 LAB_E1000E1_MAC LAB_PEER_IF LAB_PEER_MAC
BIN=/lab/bin/npa-lab-e1000e
PLUGIN=/lab/plugins/npa_plugin_e1000e.so
[ -x "$BIN" ] && [ -f "$PLUGIN" ] || fail "$BIN or $PLUGIN missing from the guest"
BDF=$LAB_E1000E1
D=/sys/bus/pci/devices/$BDF
ip link set "$LAB_E1000E1_IF" down 2>/dev/null
echo bus >$D/reset_method || fail "cannot set reset_method=bus on $BDF"
echo vfio-pci >$D/driver_override
[ -e $D/driver ] && echo $BDF >$D/driver/unbind
echo $BDF >/sys/bus/pci/drivers_probe
[ "$(drv $BDF)" = vfio-pci ] || fail "$BDF did not bind to vfio-pci (driver: $(drv $BDF))"
peer ip neigh replace 10.77.0.1 lladdr "$LAB_E1000E1_MAC" dev "$LAB_PEER_IF" ||
  fail "cannot add the peer's neighbour entry"

"$BIN" --bdf "$BDF" --plugin "$PLUGIN" --peer-mac "$LAB_PEER_MAC" --netns peer >/tmp/e1000e_vf.out 2>&1
rc=$?
cat /tmp/e1000e_vf.out

# Hand the function back to its kernel driver for whatever runs next.
peer ip neigh del 10.77.0.1 dev "$LAB_PEER_IF" 2>/dev/null
echo >$D/driver_override
[ -e $D/driver ] && echo $BDF >$D/driver/unbind
echo $BDF >/sys/bus/pci/drivers_probe

[ $rc = 0 ] || fail "$(grep 'E1000E_LAB: FAIL' /tmp/e1000e_vf.out | head -1 | sed 's/^E1000E_LAB: FAIL //')"
oks=$(grep -c 'E1000E_LAB: ok' /tmp/e1000e_vf.out)
rxl=$(grep -m1 'rx: MSI-X eventfd fired' /tmp/e1000e_vf.out | sed 's/.*fired/irq fired/')
rst=$(grep -m1 'VFIO_DEVICE_RESET in' /tmp/e1000e_vf.out | sed 's/.*RESET in \([0-9]*\) ms.*/\1/')
detail "$oks checks: TX to peer (csum offload), RX via MSI-X ($rxl), stop reclaims all, VFIO reset in ${rst} ms read back, recovery"
