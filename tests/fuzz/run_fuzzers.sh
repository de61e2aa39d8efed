#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan, separate build dir) and
# runs each for FUZZ_SECONDS (default 20) on a scratch copy of its committed
# seed corpus. Exits non-zero if a build fails or any fuzzer finds a crash,
# leak, timeout or sanitizer report (the reproducer is kept in the log dir).
#
#   FUZZ_SECONDS=60 tests/fuzz/run_fuzzers.sh [target...]
#   tests/fuzz/run_fuzzers.sh --build-only [target...]   # build, run nothing
# Env: FUZZ_BUILD_DIR (default <repo>/build-fuzz), CC/CXX (default clang/clang++),
#      FUZZ_SOURCE_DIR (default the repo), FUZZ_JOBS (ninja -j, default 2),
#      FUZZ_PARALLEL (targets run at once, one core each; default nproc).
# Each target's report comes in the order given, after all have run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${FUZZ_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
build=${FUZZ_BUILD_DIR:-$src/build-fuzz}
secs=${FUZZ_SECONDS:-20}
build_only=0
if [ "${1:-}" = --build-only ]; then build_only=1; shift; fi
targets=${*:-"control_codec vhost_message desc_chain plugin_table shell_virtq migration_state"}
export CC=${CC:-clang} CXX=${CXX:-clang++}

cmake -S "$src" -B "$build" -G Ninja -DNPA_FUZZ=ON -DNPA_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.cmake.log" 2>&1 \
  || { echo "cmake failed, see $build.cmake.log"; tail -20 "$build.cmake.log"; exit 1; }
bins=""
for t in $targets; do bins="$bins ${t}_fuzz"; done
ninja -C "$build" -j"${FUZZ_JOBS:-2}" $bins || { echo "fuzzer build failed"; exit 1; }
[ $build_only = 1 ] && exit 0

logs=$(mktemp -d /tmp/npa-fuzz.XXXXXX)
par=${FUZZ_PARALLEL:-$(nproc)}
case "$par" in ''|*[!0-9]*|0) echo "run_fuzzers: FUZZ_PARALLEL must be a positive number, not '$par'" >&2; exit 2 ;; esac
# One target: its corpus copy, its run, its exit code in $work/rc.
run_one() {
  local t=$1 work=$logs/$1
  mkdir -p "$work/corpus"
  cp "$here/corpus/$t/"* "$work/corpus/" 2>/dev/null
  # -timeout: one input taking > 10 s is a hang; -rss_limit_mb bounds memory;
  # -malloc_limit_mb: one allocation over 32 MB is a finding (no input of
  # ours needs one; protobuf's 50 MB reserve for a length past the end was
  # one, common/wire_check.h; the corpus keeps its reproducers).
  timeout $((secs + 60)) "$build/tests/fuzz/${t}_fuzz" "$work/corpus" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=32 -print_final_stats=1 \
    -artifact_prefix="$work/" >"$work/log" 2>&1
  echo $? >"$work/rc"
}
echo "running: $targets (${secs}s each, $par at a time)"
running=0
for t in $targets; do
  run_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$par" ]; then wait -n; running=$((running - 1)); fi
done
wait
fail=0
for t in $targets; do
  work=$logs/$t
  rc=$(cat "$work/rc" 2>/dev/null || echo "no exit code")
  echo "== $t: ${secs}s"
  tail -3 "$work/log"
  if [ "$rc" != 0 ]; then
    echo "FAIL $t (exit $rc); log and reproducer in $work"
    grep -m5 -E "ERROR|SUMMARY|runtime error" "$work/log"
    fail=1
  else
    echo "ok   $t"
  fi
done
[ $fail -eq 0 ] && rm -rf "$logs"
exit $fail
