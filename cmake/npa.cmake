# Build helpers shared by every folder. A component is a library and the
# unit test beside it; these two functions are the only way either is added,
# so every test is discovered and labelled the same way.
#
#   npa_library(npa_vhost SOURCES a.cc b.cc DEPS npa_common absl::status [OPTIONS -O3])
#   npa_test(npa_vhost_test SOURCES a_test.cc DEPS npa_vhost npa_test_support
#            [LABELS agent] [TIMEOUT 120] [DEFINES X=1] [NEEDS target...])

# Precompiled headers (NPA_PCH, GCC only). Each source otherwise parses the
# standard library, Abseil and the protobuf messages anew (the unit tests
# GoogleTest too): ~150k lines, half of an -O2 compile and most of an -O0
# one, and the ASan tree's biggest cost in CI. Two headers are compiled once
# per tree and reused (REUSE_FROM): one for the libraries, one for the unit
# tests.
#
# Reuse needs a user's flags to be the header's flags: the same sanitizer
# options, the same -O class (the tests' -O0 is not a RelWithDebInfo
# library's -O2, hence two headers; a library with OPTIONS has none), and
# -fPIC for the libraries, -fPIE for the test executables (GCC refuses a
# header built with the other). CMake adds -Winvalid-pch, and -Werror makes
# any mismatch a build error, never a silently slower build. What the users
# add on top (warning switches, path defines, visibility) no header below
# reads.
#
# Off by default for Release and MinSizeRel: at -O3 GCC 12 reports false
# positives from inside libstdc++ (-Warray-bounds on std::string's memcpy,
# the family of GCC bug 105329) through a precompiled header that it does
# not report when the same headers are parsed, and -Werror makes them fatal.
# The trees scripts/test.sh builds (RelWithDebInfo at -O2, Debug) have them
# on. ccache caches such compiles only with
# CCACHE_SLOPPINESS=pch_defines,time_macros.
set(npa_pch_default OFF)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND NOT CMAKE_BUILD_TYPE MATCHES "^(Release|MinSizeRel)$")
  set(npa_pch_default ON)
endif()
option(NPA_PCH "Precompile the common headers of libraries and unit tests" ${npa_pch_default})
set(NPA_PCH_HEADERS
  <algorithm> <array> <atomic> <chrono> <cstdint> <cstring> <functional> <map> <memory>
  <mutex> <optional> <span> <string> <string_view> <thread> <utility> <vector>
  [["absl/status/status.h"]] [["absl/status/statusor.h"]] [["absl/strings/str_cat.h"]]
  [["absl/strings/str_format.h"]] [["include/npa/control.pb.h"]])
set(NPA_PCH_DEPS npa_proto absl::status absl::statusor absl::strings absl::str_format)
if(NPA_PCH)
  add_library(npa_lib_pch OBJECT ${CMAKE_SOURCE_DIR}/cmake/pch.cc)
  set_target_properties(npa_lib_pch PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(npa_lib_pch PRIVATE ${NPA_PCH_DEPS})
  target_precompile_headers(npa_lib_pch PRIVATE ${NPA_PCH_HEADERS})
endif()
if(NPA_PCH AND NPA_BUILD_TESTS)
  add_library(npa_test_pch OBJECT ${CMAKE_SOURCE_DIR}/cmake/pch.cc)
  set_target_properties(npa_test_pch PROPERTIES POSITION_INDEPENDENT_CODE OFF)
  target_compile_options(npa_test_pch PRIVATE -fPIE ${NPA_TEST_COMPILE_OPTIONS})
  target_link_libraries(npa_test_pch PRIVATE ${NPA_PCH_DEPS} GTest::gtest)
  target_precompile_headers(npa_test_pch PRIVATE ${NPA_PCH_HEADERS} <gtest/gtest.h>)
endif()

# A static, position-independent library (libnpa_shell, a shared object,
# absorbs some of them).
# OPTIONS: compile options of its own (-O3 on a hot path). Such a library
# compiles without a precompiled header: its flags are not the shared
# header's (in a Debug tree, -O3 against -O0), and at -O3 a header of its own
# would bring GCC 12's false positives (see NPA_PCH).
function(npa_library name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS;OPTIONS" ${ARGN})
  add_library(${name} STATIC ${L_SOURCES})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${name} PUBLIC ${L_DEPS})
  if(L_OPTIONS)
    target_compile_options(${name} PRIVATE ${L_OPTIONS})
  endif()
  if(TARGET npa_lib_pch AND NOT L_OPTIONS)
    target_precompile_headers(${name} REUSE_FROM npa_lib_pch)
    # The header is C++: a C source (a layout check) compiles without it.
    foreach(src IN LISTS L_SOURCES)
      if(src MATCHES "\\.c$")
        set_source_files_properties(${src} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
      endif()
    endforeach()
  endif()
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
  if(TARGET npa_test_pch)
    target_precompile_headers(${name} REUSE_FROM npa_test_pch)
  endif()
  set(props TIMEOUT ${T_TIMEOUT})
  if(T_LABELS)
    list(APPEND props LABELS "${T_LABELS}")
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30 PROPERTIES ${props})
endfunction()
