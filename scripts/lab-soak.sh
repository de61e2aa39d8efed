#!/usr/bin/env bash
# The lab soak (issue 9, part 5): tests/lab/scenarios/95-soak.sh in the VFIO
# lab (QEMU TCG, virtual Intel IOMMU, real kernel VFIO): N attach/revoke
# cycles of one VF under traffic, planned and forced alternating, every
# frame delivered once or counted lost, the agent's fds/RSS/locked (DMA-
# pinned) memory, the guest's fds/RSS, the pinned pages and the vfio MSI-X
# vectors flat. Runs under the system-test lock; prints the scenario's
# progress lines as they come, then its SOAK_JSON line and the LAB: verdict
# (the figures for docs/soak.md "The lab soak").
#
#   scripts/lab-soak.sh                  # 100 cycles
#   scripts/lab-soak.sh --cycles 10      # the short form
#   scripts/lab-soak.sh --build-dir build-h4 --no-build
# Env: NPA_BUILD_DIR (default <repo>/build), NPA_LAB_WORK (run_lab.sh's).
# Exit: run_lab.sh's (0 only if the scenario passed), 2 on usage errors.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
cycles=100
build=${NPA_BUILD_DIR:-$src/build}
do_build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles=${2:?--cycles needs a number}; shift 2 ;;
    --cycles=*) cycles=${1#--cycles=}; shift ;;
    --build-dir) build=${2:?--build-dir needs a directory}; shift 2 ;;
    --build-dir=*) build=${1#--build-dir=}; shift ;;
    --no-build) do_build=0; shift ;;
    -h|--help) sed -n 2,15p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lab-soak: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$cycles" in ''|*[!0-9]*) echo "lab-soak: --cycles must be a whole number, not '$cycles'" >&2; exit 2 ;; esac
[ "$cycles" -ge 2 ] && [ "$cycles" -le 5000 ] || { echo "lab-soak: --cycles $cycles: need 2..5000" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "lab-soak: the lab needs root" >&2; exit 2; }
if [ $do_build = 1 ]; then
  [ -f "$build/build.ninja" ] || { echo "lab-soak: $build is not a configured build dir (cmake -S $src -B $build -G Ninja)" >&2; exit 2; }
  ninja -C "$build" -j"${NPA_JOBS:-2}" npa-lab-vf-probe npa_vf_test copy_npa-lab-agent copy_npa-lab-npactl \
    npa-lab-shell-vf npa_plugin_virtio_net >"$build/lab-soak.build.log" 2>&1 ||
    { echo "lab-soak: build failed, see $build/lab-soak.build.log"; tail -20 "$build/lab-soak.build.log"; exit 1; }
fi
work=${NPA_LAB_WORK:-/var/tmp/npa-lab}
# Time limits from the count: 11-20 s a cycle under TCG on this shared 2-core
# machine (attach ~7 s, detach ~3.5 s, the rest traffic checks), doubled for
# a loaded one, plus the setup and the final checks.
scn_timeout=$((180 + cycles * 40))
qemu_timeout=$((scn_timeout + 240))
# SOAK_CYCLES reaches the guest on the kernel command line: the kernel gives
# an unknown NAME=value parameter to init as an environment variable, and the
# scenario also reads /proc/cmdline. (run_lab.sh puts NPA_LAB_KERNEL_LOG on
# the command line; it has no other way to pass a value into the guest.)
klog="${NPA_LAB_KERNEL_LOG:-quiet} SOAK_CYCLES=$cycles"
cmd=(env NPA_LAB_KERNEL_LOG="$klog" NPA_LAB_SCENARIO_TIMEOUT=$scn_timeout NPA_LAB_TIMEOUT=$qemu_timeout
     "$src/tests/lab/run_lab.sh" --build-dir "$build" --scenario soak --live)
echo "lab-soak: $cycles cycles; flock /tmp/npa-system-tests.lock ${cmd[*]}"
out=$(mktemp /tmp/npa-lab-soak.XXXXXX)
t0=$(date +%s)
# The console log is run_lab.sh's latest (shared work dir): read it while
# the lock is still held.
export LAB_SOAK_OUT="$out" LAB_SOAK_WORK="$work"
flock /tmp/npa-system-tests.lock bash -c '
  "$@" >"$LAB_SOAK_OUT" 2>&1; rc=$?
  grep "^LABLOG soak: " "$LAB_SOAK_WORK/logs/console.log" | sed "s/^LABLOG soak: //" >"$LAB_SOAK_OUT.log"
  exit $rc' lab-soak "${cmd[@]}" &
pid=$!
# Progress as it comes (run_lab.sh --live prints the scenario's LIVE lines).
tail -n +1 -F --pid=$pid "$out" 2>/dev/null | grep --line-buffered -E '^(SOAK|>>>)' &
tpid=$!
wait $pid; rc=$?
sleep 0.5; kill $tpid 2>/dev/null; wait $tpid 2>/dev/null
echo "lab-soak: run_lab.sh exit $rc after $(( $(date +%s) - t0 )) s"
grep -E '^(before|baseline|after):|^SOAK_PROGRESS|^DUT:|^BLAST:|^MERGE:' "$out.log" 2>/dev/null
if [ $rc != 0 ]; then
  echo "--- last lines of the scenario's log"
  tail -n 40 "$out.log" 2>/dev/null
  grep -E '^\[lab|^LAB:' "$out"
fi
grep '^SOAK_JSON ' "$out.log" 2>/dev/null | sed 's/^SOAK_JSON //'
grep '^LAB: soak ' "$out"
echo "lab-soak: full output $out, scenario log $out.log"
exit $rc
