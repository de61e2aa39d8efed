# npa-agent and npactl: the top level of hypervisor/. Included by
# hypervisor/CMakeLists.txt after vhost/ and vf/ (so npa_vhost may exist).

add_library(npa_agent_core STATIC
  ${CMAKE_CURRENT_LIST_DIR}/guest_lifecycle.cc
  ${CMAKE_CURRENT_LIST_DIR}/mac_switch.cc
  ${CMAKE_CURRENT_LIST_DIR}/tap_uplink.cc
  ${CMAKE_CURRENT_LIST_DIR}/guest_port.cc
  ${CMAKE_CURRENT_LIST_DIR}/dataplane.cc
  ${CMAKE_CURRENT_LIST_DIR}/control_server.cc
  ${CMAKE_CURRENT_LIST_DIR}/control_server_vf.cc
  ${CMAKE_CURRENT_LIST_DIR}/npactl_format.cc
  ${CMAKE_CURRENT_LIST_DIR}/npactl_vf_format.cc
  ${CMAKE_CURRENT_LIST_DIR}/vf_lifecycle.cc
  ${CMAKE_CURRENT_LIST_DIR}/guest_regions.cc
  ${CMAKE_CURRENT_LIST_DIR}/vfio_layer.cc
  ${CMAKE_CURRENT_LIST_DIR}/vf_manager.cc)
target_link_libraries(npa_agent_core PUBLIC npa_common npa_vhost npa_vf absl::flat_hash_map absl::status
  absl::statusor absl::strings absl::str_format PkgConfig::URING)

add_executable(npa-agent ${CMAKE_CURRENT_LIST_DIR}/agent_main.cc)
target_link_libraries(npa-agent PRIVATE npa_agent_core)
add_executable(npactl ${CMAKE_CURRENT_LIST_DIR}/npactl.cc)
target_link_libraries(npactl PRIVATE npa_agent_core)
install(TARGETS npa-agent npactl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

if(NPA_BUILD_TESTS)
  foreach(t mac_switch guest_lifecycle tap_uplink dataplane control_server npactl_format
          vf_lifecycle guest_regions vf_manager npactl_vf_format control_server_vf)
    add_executable(${t}_test ${CMAKE_CURRENT_LIST_DIR}/${t}_test.cc)
    target_link_libraries(${t}_test PRIVATE npa_agent_core npa_vf_testing GTest::gtest_main)
    gtest_discover_tests(${t}_test DISCOVERY_TIMEOUT 30 PROPERTIES LABELS agent TIMEOUT 60)
  endforeach()
  # The VFIO lab ships every npa-lab-* program of the build dir into its guest
  # (tests/lab/run_lab.sh): a fake control-protocol guest, and the agent and
  # npactl under lab names (same sources) for tests/lab/scenarios/80-agent_vf.sh.
  if(TARGET npa_vhost_testfe)
    add_executable(npa-lab-vf-guest ${CMAKE_CURRENT_LIST_DIR}/lab_vf_guest.cc)
    target_link_libraries(npa-lab-vf-guest PRIVATE npa_agent_core npa_vhost_testfe)
  endif()
  add_executable(npa-lab-agent ${CMAKE_CURRENT_LIST_DIR}/agent_main.cc)
  target_link_libraries(npa-lab-agent PRIVATE npa_agent_core)
  add_executable(npa-lab-npactl ${CMAKE_CURRENT_LIST_DIR}/npactl.cc)
  target_link_libraries(npa-lab-npactl PRIVATE npa_agent_core)
endif()
