# Build helpers shared by every folder. A component is a library and the
# unit test beside it; these two functions are the only way either is added,
# so every test is discovered and labelled the same way.
#
#   npa_library(npa_vhost SOURCES a.cc b.cc DEPS npa_common absl::status)
#   npa_test(npa_vhost_test SOURCES a_test.cc DEPS npa_vhost npa_test_support
#            [LABELS agent] [TIMEOUT 120] [DEFINES X=1] [NEEDS target...])

# A static, position-independent library (libnpa_shell, a shared object,
# absorbs some of them).
function(npa_library name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${L_SOURCES})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${name} PUBLIC ${L_DEPS})
endfunction()

# A GoogleTest executable whose cases ctest discovers one by one. Nothing when
# NPA_BUILD_TESTS is off. NEEDS: targets that must be built first (test
# plug-ins, binaries the test runs).
function(npa_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;DEPS;LABELS;DEFINES;NEEDS;OPTIONS" ${ARGN})
  if(NOT NPA_BUILD_TESTS)
    return()
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_DEPS} GTest::gtest_main)
  if(T_DEFINES)
    target_compile_definitions(${name} PRIVATE ${T_DEFINES})
  endif()
  if(T_OPTIONS)
    target_compile_options(${name} PRIVATE ${T_OPTIONS})
  endif()
  # The test's own sources only (the code under test is in the libraries,
  # built with the tree's flags): scripts/test.sh compiles them at -O0, half
  # the time of -O2 for gtest's macro-heavy files.
  if(NPA_TEST_COMPILE_OPTIONS)
    target_compile_options(${name} PRIVATE ${NPA_TEST_COMPILE_OPTIONS})
  endif()
  if(T_NEEDS)
    add_dependencies(${name} ${T_NEEDS})
  endif()
  set(props TIMEOUT ${T_TIMEOUT})
  if(T_LABELS)
    list(APPEND props LABELS "${T_LABELS}")
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30 PROPERTIES ${props})
endfunction()
