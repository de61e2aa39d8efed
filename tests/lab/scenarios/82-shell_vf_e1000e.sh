# shell_vf_e1000e: as shell_vf_virtio, with an e1000e function and the e1000e
# plug-in; then a second attach and a FORCED detach mid-traffic (the agent
# resets and unbinds the device: VFIO REQ), after which the DUT keeps
# sending on the emulated path by itself. Every number arrives at most once;
# the frames the forced reset may have dropped are reported and bounded by
# what the shell reported as lost (RevokeDone.tx_inflight_lost) plus the
# VF's TX ring.
need LAB_E1000E0 LAB_PEER_IF
SHELL_VF_NIC=$LAB_E1000E0
SHELL_VF_NIC_IF=$LAB_E1000E0_IF
SHELL_VF_PLUGIN=e1000e
SHELL_VF_FORCE=1
shell_vf_run
