# conform_virtio_net: the whole npa-conform suite (docs/conformance.md) with
# the virtio_net plug-in on LAB_VIRTIO1, traffic against the peer namespace.
need LAB_VIRTIO1 LAB_VIRTIO1_IF LAB_PEER_IF
conform_run "$LAB_VIRTIO1" "$LAB_VIRTIO1_IF" npa_plugin_virtio_net.so ""
