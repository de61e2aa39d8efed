# reset: VFIO_DEVICE_RESET clears programmed state, read back from the device:
# e1000e with reset_method=bus (its default "pm" is a no-op in QEMU), virtio FLR.
need LAB_E1000E0 LAB_VIRTIO0
run_probe reset $LAB_E1000E0
e=$(sed -n "s/^OK VFIO_DEVICE_RESET in \([0-9.]*\) ms (reset_method '\([a-z_ ]*\)').*/\1 ms (\2)/p" /tmp/probe.out)
run_probe reset $LAB_VIRTIO0
v=$(sed -n "s/^OK VFIO_DEVICE_RESET in \([0-9.]*\) ms (reset_method '\([a-z_ ]*\)').*/\1 ms (\2)/p" /tmp/probe.out)
detail "e1000e reset $e, virtio-net reset $v; state cleared on both"
