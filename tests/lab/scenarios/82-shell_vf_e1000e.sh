# shell_vf_e1000e: as shell_vf_virtio, with an e1000e function and the e1000e
# plug-in; then a second attach and a FORCED detach mid-traffic (the agent
# raises VFIO REQ, resets and unbinds once the shell lets go), after which
# the DUT keeps sending on the emulated path by itself. Every number arrives
# at most once, and exactly the frames the shell reported as lost
# (RevokeDone.tx_inflight_lost, in npactl's answer) are missing. RX is
# checked in both VF windows (the planned one and the forced one).
need LAB_E1000E0 LAB_PEER_IF
SHELL_VF_NIC=$LAB_E1000E0
SHELL_VF_NIC_IF=$LAB_E1000E0_IF
SHELL_VF_PLUGIN=e1000e
SHELL_VF_FORCE=1
shell_vf_run
