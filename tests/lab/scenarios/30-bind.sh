# bind: driver_override binding to vfio-pci and back, for each DUT function:
# bound -> /dev/vfio/<group> usable (container, group, device, dup'ed fd) ->
# restored to its kernel driver.
need LAB_VIRTIO0 LAB_VIRTIO1 LAB_E1000E0 LAB_E1000E1
for b in $LAB_VIRTIO0 $LAB_VIRTIO1 $LAB_E1000E0 $LAB_E1000E1; do
  before=$(drv $b)
  run_probe bind-cycle $b
  after=$(drv $b)
  [ "$after" = "$before" ] || fail "$b: driver '$after' after release, was '$before'"
  [ "$(cat /sys/bus/pci/devices/$b/driver_override)" = "(null)" ] || fail "$b: driver_override left set"
done
detail "4 functions: kernel driver -> vfio-pci (VFIO device opened, fd dup'ed) -> kernel driver"
