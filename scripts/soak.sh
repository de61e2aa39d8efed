#!/usr/bin/env bash
# The 1000-cycle attach/revoke soak (tests/soak/attach_revoke_soak_test.cc)
# under ASan+UBSan, in its own build directory: half planned revokes, half
# forced (VFIO REQ), under traffic; every frame delivered once or counted
# lost; fds, devices and the plug-ins' DMA arena equal before and after, RSS
# bounded. Prints the test's SOAK line (the figures for docs/soak.md).
#
#   scripts/soak.sh                 # 1000 cycles
#   scripts/soak.sh --cycles 200
# Env: SOAK_BUILD_DIR (default <repo>/build-soak), SOAK_JOBS (ninja -j, default 2),
#      SOAK_SANITIZE (default ON; OFF for a plain RelWithDebInfo build).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
cycles=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles=${2:?--cycles needs a number}; shift 2 ;;
    --cycles=*) cycles=${1#--cycles=}; shift ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "soak: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$cycles" in ''|*[!0-9]*) echo "soak: --cycles must be a whole number, not '$cycles'" >&2; exit 2 ;; esac
build=${SOAK_BUILD_DIR:-$src/build-soak}
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNPA_SANITIZE="${SOAK_SANITIZE:-ON}" -DNPA_BUILD_BENCH=OFF >"$build.cmake.log" 2>&1 \
  || { echo "cmake failed, see $build.cmake.log"; tail -20 "$build.cmake.log"; exit 1; }
ninja -C "$build" -j"${SOAK_JOBS:-2}" attach_revoke_soak_test npa_test_plugins \
  || { echo "soak build failed"; exit 1; }
log=$(mktemp /tmp/npa-soak.XXXXXX.log)
# halt_on_error: the first sanitizer report fails the run; detect_leaks: LSan
# at exit counts as a finding too. No quarantine: ASan's default keeps up to
# 256 MB of freed memory mapped, which would read as RSS growth (60 MB over
# 1000 cycles) and hide a real leak behind the test's RSS bound.
ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:quarantine_size_mb=0:thread_local_quarantine_size_kb=0} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
NPA_SOAK_CYCLES=$cycles "$build/tests/soak/attach_revoke_soak_test" >"$log" 2>&1
rc=$?
grep -E "^SOAK |ERROR: AddressSanitizer|runtime error|LeakSanitizer|FAILED|PASSED" "$log"
if [ $rc -ne 0 ]; then
  echo "soak FAILED (exit $rc); log: $log"
  exit 1
fi
echo "soak passed; log: $log"
