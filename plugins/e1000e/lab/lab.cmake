# The e1000e VFIO lab driver: runs inside the lab guest (tests/lab scenario
# e1000e_vf), drives a real (QEMU) 82574L through VFIO with the plug-in loaded
# by the shell's loader and the services table from shell/vf_services.
add_executable(npa-lab-e1000e ${CMAKE_CURRENT_LIST_DIR}/e1000e_lab.cc)
target_link_libraries(npa-lab-e1000e PRIVATE npa_vf_services npa_plugin_loader npa_common)
add_dependencies(npa-lab-e1000e npa_plugin_e1000e)
