# The VF services table over a VFIO device fd (vf_services.*): static and
# position-independent so libnpa_shell (a shared object) can absorb it.
add_library(npa_vf_services STATIC ${CMAKE_CURRENT_LIST_DIR}/vf_services.cc)
set_target_properties(npa_vf_services PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(npa_vf_services PUBLIC npa_common absl::status absl::statusor
  absl::strings absl::str_format)

if(NPA_BUILD_TESTS)
  enable_testing()
  find_package(GTest REQUIRED)
  include(GoogleTest)
  add_executable(vf_services_test ${CMAKE_CURRENT_LIST_DIR}/vf_services_test.cc)
  target_link_libraries(vf_services_test PRIVATE npa_vf_services GTest::gtest_main)
  gtest_discover_tests(vf_services_test)
endif()
