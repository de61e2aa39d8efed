# conform_e1000e: the whole npa-conform suite with the e1000e plug-in on
# LAB_E1000E0 (reset_method=bus: QEMU ignores the 'pm' reset the kernel would
# pick; docs/vfio-lab.md, Pitfalls).
need LAB_E1000E0 LAB_E1000E0_IF LAB_PEER_IF
conform_run "$LAB_E1000E0" "$LAB_E1000E0_IF" npa_plugin_e1000e.so bus
