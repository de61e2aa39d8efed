#!/usr/bin/env bash
# npa's full test suite, as CI runs it. As root on a fresh Debian 12 machine:
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh --fast     # default build only: no sanitizers, fuzzers, lab
#
# Stages (each prints its own ctest/fuzzer summary):
#   1. deps     Debian packages (scripts/install-deps.sh)
#   2. build    RelWithDebInfo, -Wall -Wextra -Werror            -> build/
#   3. test     ctest: unit, interop with DPDK, hostile guests, demo e2e,
#               plug-in loader, benchmark smoke, VFIO lab (QEMU)
#   4. asan     ASan+UBSan build and ctest (minus the lab and the benchmark) -> build-asan/
#   5. fuzz     clang libFuzzer targets, FUZZ_SECONDS each (default 20)   -> build-fuzz/
# The last line is "N passed, M failed" over all stages' tests.
# Exit: 0 all passed, 1 something failed, 2 usage.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FAST=0
for a in "$@"; do
  case "$a" in
    --fast) FAST=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument '$a'" >&2; exit 2 ;;
  esac
done
JOBS=$(nproc)
PASSED=0; FAILED=0; FAILED_STAGES=()
T0=$SECONDS
stage() { echo; echo "=== [$((SECONDS - T0))s] $*"; }

# Tally one ctest run from its summary line "N% tests passed, F tests failed out of T".
run_ctest() {  # dir, extra args...
  local dir=$1; shift
  local log; log=$(mktemp)
  (cd "$dir" && ctest --output-on-failure --timeout 600 "$@") 2>&1 | tee "$log"
  local line; line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  rm -f "$log"
  if [ -z "$line" ]; then FAILED=$((FAILED + 1)); return 1; fi
  local f t; f=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
  t=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/')
  PASSED=$((PASSED + t - f)); FAILED=$((FAILED + f))
  [ "$f" = 0 ]
}

stage "deps"
"$ROOT/scripts/install-deps.sh" || { echo "deps failed"; echo "0 passed, 1 failed"; exit 1; }

stage "build (RelWithDebInfo, -Werror)"
# -g1 (line tables: backtraces keep file:line) and the unit tests' own
# sources at -O0 (NPA_TEST_COMPILE_OPTIONS; the code under test keeps -O2):
# together about a third off this stage (580 -> 389 s on a 2-core CI machine).
cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DNPA_TEST_COMPILE_OPTIONS=-O0 >/dev/null &&
  ninja -C "$ROOT/build" -j"$JOBS" || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

# The sanitizer tree builds in the background, at nice 19, while the plain
# tree's tests run: those mostly wait (QEMU, sockets, timers), and a nice-0
# test preempts a nice-19 compiler at once, so the tests keep their CPU and
# the build costs little wall time. The fuzzer tree builds the same way
# beside the ASan tests, so the ASan stage does not wait for it.
BG_LOG="$ROOT/build-bg.log"
FZ_LOG="$ROOT/build-fuzz-bg.log"
BG_PID=""
FZ_PID=""
if [ $FAST = 0 ]; then
  (
    set -o pipefail
    cmake -S "$ROOT" -B "$ROOT/build-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNPA_SANITIZE=ON \
      -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DCMAKE_C_FLAGS_DEBUG=-g1 -DNPA_BUILD_BENCH=OFF >/dev/null &&
      nice -n 19 ninja -C "$ROOT/build-asan" -j"$JOBS"
  ) >"$BG_LOG" 2>&1 &
  BG_PID=$!
fi

stage "test (ctest)"
if [ $FAST = 1 ]; then
  run_ctest "$ROOT/build" -LE 'lab|bench' || FAILED_STAGES+=(test)
else
  run_ctest "$ROOT/build" || FAILED_STAGES+=(test)
fi

if [ $FAST = 0 ]; then
  stage "asan: ASan+UBSan build (background, $BG_LOG) and ctest"
  # -g1: line tables only. Sanitizer reports keep file:line, and the build
  # is about a fifth shorter than with -g.
  wait "$BG_PID"; BG_RC=$?
  grep -E '^\[[0-9]+/[0-9]+\]' "$BG_LOG" | tail -2
  if [ $BG_RC != 0 ]; then echo "background build failed (exit $BG_RC):"; grep -v '^\[' "$BG_LOG" | tail -40; fi
  nice -n 19 "$ROOT/tests/fuzz/run_fuzzers.sh" --build-only >"$FZ_LOG" 2>&1 &
  FZ_PID=$!
  if [ $BG_RC = 0 ]; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      run_ctest "$ROOT/build-asan" -LE 'lab|bench' || FAILED_STAGES+=(asan)
  else
    FAILED=$((FAILED + 1)); FAILED_STAGES+=(asan-build)
  fi

  stage "fuzz: libFuzzer targets, ${FUZZ_SECONDS:-20}s each (build: background, $FZ_LOG)"
  wait "$FZ_PID"; FZ_RC=$?
  grep -E '^\[[0-9]+/[0-9]+\]' "$FZ_LOG" | tail -1
  if [ $FZ_RC != 0 ]; then
    echo "fuzzer build failed (exit $FZ_RC):"; grep -v '^\[' "$FZ_LOG" | tail -40
    FAILED=$((FAILED + 1)); FAILED_STAGES+=(fuzz-build)
  elif [ -x "$ROOT/tests/fuzz/run_fuzzers.sh" ]; then
    if "$ROOT/tests/fuzz/run_fuzzers.sh"; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); FAILED_STAGES+=(fuzz); fi
  else
    echo "tests/fuzz/run_fuzzers.sh missing"; FAILED=$((FAILED + 1)); FAILED_STAGES+=(fuzz)
  fi
fi

stage "done in $((SECONDS - T0))s"
[ ${#FAILED_STAGES[@]} -eq 0 ] || echo "failed stages: ${FAILED_STAGES[*]}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
