# virtio_net: the virtio_net plug-in on a QEMU virtio-net-pci (modern,
# iommu_platform=on) through VFIO: frames to and from the peer namespace
# checked byte for byte, RX in MSI-X interrupt mode, and VFIO_DEVICE_RESET
# (FLR) under a running plug-in confirmed by reading virtio device_status back
# (DRIVER_OK -> 0), then a clean re-probe. Runs npa-conform's data-path cases
# on LAB_VIRTIO0. Needs /lab/bin/npa-conform and
# /lab/plugins/npa_plugin_virtio_net.so in the guest.
need LAB_VIRTIO0 LAB_VIRTIO0_IF LAB_PEER_IF
conform_run "$LAB_VIRTIO0" "$LAB_VIRTIO0_IF" npa_plugin_virtio_net.so "" \
  --case tx_to_peer --case rx_from_peer --case burst_one --case rx_interrupt --case host_reset
