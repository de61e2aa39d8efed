# The vendor plug-in loader (plugin_loader.*) and the call-order wrapper
# (plugin_device.*). Static and position-independent so libnpa_shell (a
# shared object) can absorb it.
add_library(npa_plugin_loader STATIC
  ${CMAKE_CURRENT_LIST_DIR}/plugin_loader.cc
  ${CMAKE_CURRENT_LIST_DIR}/plugin_device.cc)
set_target_properties(npa_plugin_loader PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_compile_definitions(npa_plugin_loader PRIVATE NPA_PLUGIN_DIR="${NPA_PLUGIN_INSTALL_DIR}")
target_link_libraries(npa_plugin_loader PUBLIC npa_common absl::status absl::statusor
  absl::strings absl::str_format ${CMAKE_DL_LIBS})

if(NPA_BUILD_TESTS)
  # shell/ is configured before the top level finds GTest; do it here too.
  enable_testing()
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(plugin_loader_test ${CMAKE_CURRENT_LIST_DIR}/plugin_loader_test.cc)
  target_link_libraries(plugin_loader_test PRIVATE npa_plugin_loader GTest::gtest_main)
  # The test plug-ins are built by tests/plugins/ (npa_test_plugins).
  target_compile_definitions(plugin_loader_test PRIVATE
    NPA_TEST_PLUGIN_ROOT="${CMAKE_BINARY_DIR}/tests/plugins")
  add_dependencies(plugin_loader_test npa_test_plugins)
  gtest_discover_tests(plugin_loader_test)
endif()
