# sriov: the generic SR-IOV path on QEMU's nvme PF (its only SR-IOV device):
# sriov_numvfs -> virtfn0 -> bind the VF to vfio-pci -> VFIO_DEVICE_RESET.
need LAB_NVME_PF
run_probe sriov $LAB_NVME_PF
detail "$(sed -n 's/^OK \(VFIO_DEVICE_RESET of VF in [0-9.]* ms\)/\1/p' /tmp/probe.out); VF $(sed -n 's/.*virtfn0 = //p' /tmp/probe.out) via $LAB_NVME_PF"
