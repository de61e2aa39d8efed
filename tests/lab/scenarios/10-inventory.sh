# inventory: libpci + sysfs inventory (hypervisor/vf/pci_inventory) sees the
# two virtio-net and two e1000e functions with the right ids, class, driver and
# an IOMMU group that matches the sysfs link.
need LAB_VIRTIO0 LAB_VIRTIO1 LAB_E1000E0 LAB_E1000E1
run_probe inventory \
  --expect "$LAB_VIRTIO0=1af4:1041:020000:virtio-pci" --expect "$LAB_VIRTIO1=1af4:1041:020000:virtio-pci" \
  --expect "$LAB_E1000E0=8086:10d3:020000:e1000e" --expect "$LAB_E1000E1=8086:10d3:020000:e1000e"
for b in $LAB_VIRTIO0 $LAB_VIRTIO1 $LAB_E1000E0 $LAB_E1000E1; do
  g=$(basename "$(readlink /sys/bus/pci/devices/$b/iommu_group)")
  grep -q "\"bdf\":\"$b\",[^}]*\"iommu_group\":$g," /tmp/probe.out || fail "$b: JSON iommu_group != sysfs group $g"
done
detail "$(grep -c '^OK 0000' /tmp/probe.out) DUT functions match (ids, class, driver, IOMMU group); $(sed -n 's/^OK inventory: \([0-9]*\) functions.*/\1/p' /tmp/probe.out) functions total"
