# shell_vf_virtio: libnpa_shell on a real VF. A guest process on the shell
# (npa-lab-shell-vf dut) sends numbered broadcast frames at 800/s through the
# real agent (npa-lab-agent, pool: one virtio-net function). On the emulated
# path the agent's switch floods them to a second shell guest (sink); on the
# VF path the virtio_net plug-in sends them on QEMU hub 0 to the peer
# namespace's NIC (sniff). npactl vf attach moves the DUT to the VF, npactl
# vf detach (planned Revoke) moves it back, both mid-traffic; then every
# number must have arrived exactly once at one of the two receivers.
# RX: blast, in the peer namespace, sends numbered unicast frames to the
# DUT's MAC throughout; those sent while the DUT was on the VF (marks A..B,
# B just before the detach) must each reach the DUT exactly once.
need LAB_VIRTIO1 LAB_PEER_IF
SHELL_VF_NIC=$LAB_VIRTIO1
SHELL_VF_NIC_IF=$LAB_VIRTIO1_IF
SHELL_VF_PLUGIN=virtio_net
SHELL_VF_FORCE=0
shell_vf_run
