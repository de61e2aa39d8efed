# vfio-dma: a memfd mapped into the type1 container at iova == the "shell"
# mapping's address; the device DMA-reads a TX frame and writes its completion
# back (e1000e descriptor DD, virtio used ring); an unmapped IOVA faults.
need LAB_E1000E0 LAB_VIRTIO0
run_probe dma $LAB_E1000E0 --fault
e=$(grep -o 'in [0-9.]* ms' /tmp/probe.out | head -1)
run_probe dma $LAB_VIRTIO0
v=$(grep -o 'in [0-9.]* ms' /tmp/probe.out | head -1)
detail "e1000e DMA $e + DMAR fault on unmapped IOVA; virtio-net (ACCESS_PLATFORM) DMA $v"
