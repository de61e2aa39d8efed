#!/usr/bin/env bash
# The emulated-path benchmark: npa against DPDK, like with like, in one command.
#
#   bash scripts/bench-emulated.sh            # full run (~REPS x 4 configs x 2 x ~20 s)
#   bash scripts/bench-emulated.sh --quick    # smoke: 1 rep, 64 B, short runs
#
# npa:  npa-agent --mode sink on CPU0  <-vhost-user->  npa_bench_guest --tx on CPU1
# DPDK: testpmd net_vhost rxonly (fwd lcore CPU0) <-> testpmd net_virtio_user txonly
#       (fwd lcore CPU1): split ring, mergeable RX buffers (virtio-user's defaults)
# Both: burst 32, the same ring size (RING), the same memory mode (2 MB hugepages
# or 4K pages), 1 queue pair, frames of SIZE bytes.
#
# Method (docs/PERFORMANCE.md): for each rep, each memory mode and each size,
# an npa run and a DPDK run back to back (ABBA order across reps), each after
# waiting for an idle machine; a run is valid when the two busy processes got
# >= 95 % of both CPUs (else retried). Each run gives one sample a second; the
# first 2 and the last one are dropped. A c2c probe (npa_bench_c2c monitor)
# labels each sample "near" or "far" (vCPU placement on the host). Each pair's
# ratio npa/DPDK compares the same placement when both runs have it; the
# report gives the median ratio and median Mpps per configuration.
#
# Options: --quick          1 rep, DUR=6, SIZES=64, MODES=huge (CI smoke test);
#                           a run with no sample is retried (RETRY=2), a
#                           contended one kept
#          --build-dir DIR  use the binaries of this build (default: build a
#                           Release tree in build-bench/)
#          --cross          also run npa's guest against DPDK's vhost, and DPDK's
#                           virtio-user against npa's agent (splits the cost
#                           between the shell and the agent)
# Env:     REPS=3 DUR=10 SIZES="64 1500" MODES="huge nohuge" RING=256 BURST=32
#          RETRY=1 QUIET_MAX=120 OUTDIR=/tmp/npa-bench-emulated
#          NPA_RING=split  the shell's ring kind (split|packed|auto): split, like
#                   DPDK's virtio-user default, so every pair (and --cross,
#                   where DPDK's vhost would take packed) compares like with
#                   like; npa-agent serves split rings only so far
#          NICE=0   niceness of every measured process; NICE=-20 on a machine
#                   that never gets quiet (both sides alike; others slow down)
# Output:  a human-readable report, one JSON line per configuration, and as the
#          LAST line the headline JSON (64 B, hugepages when measured):
#   {"bench":"emulated","size":64,"hugepages":true,"npa_mpps":..,"dpdk_mpps":..,"ratio":..}
# Exit: 0 measured, 1 failure (no valid pair, setup failed), 2 usage.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QUICK=0 CROSS=0 BUILD_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --cross) CROSS=1 ;;
    --build-dir) [ $# -ge 2 ] || { echo "bench-emulated: --build-dir needs a directory" >&2; exit 2; }
                 BUILD_DIR=$(cd "$2" 2>/dev/null && pwd) || { echo "bench-emulated: no directory '$2'" >&2; exit 2; }
                 shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench-emulated: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ $QUICK = 1 ]; then
  REPS=${REPS:-1} DUR=${DUR:-6} SIZES=${SIZES:-64} MODES=${MODES:-huge} QUIET_MAX=${QUIET_MAX:-15} RETRY=${RETRY:-2}
fi
REPS=${REPS:-3} DUR=${DUR:-10} SIZES=${SIZES:-"64 1500"} MODES=${MODES:-"huge nohuge"}
RING=${RING:-256} NPA_RING=${NPA_RING:-split} BURST=${BURST:-32} RETRY=${RETRY:-1} QUIET_MAX=${QUIET_MAX:-120} NICE=${NICE:-0}
OUTDIR=${OUTDIR:-/tmp/npa-bench-emulated}
case $NPA_RING in split|packed|auto) ;; *) echo "bench-emulated: NPA_RING='$NPA_RING' (split|packed|auto)" >&2; exit 2;; esac
for v in REPS DUR RING BURST RETRY QUIET_MAX; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "bench-emulated: $v='${!v}' is not a number" >&2; exit 2; }
done
[[ "$NICE" =~ ^-?[0-9]+$ ]] && [ "$NICE" -ge -20 ] && [ "$NICE" -le 19 ] ||
  { echo "bench-emulated: NICE='$NICE' not in -20..19" >&2; exit 2; }
PRIO="nice -n $NICE"   # every measured process (both sides alike) runs at this niceness
# With CONFIG_SCHED_AUTOGROUP, niceness only ranks tasks inside one session's
# group; other sessions' builds still take an equal share each. So NICE also
# applies to this session's autogroup (this script and its children only).
if [ "$NICE" != 0 ] && [ -w /proc/$$/autogroup ]; then echo "$NICE" >/proc/$$/autogroup 2>/dev/null; fi
[ "$DUR" -ge 5 ] || { echo "bench-emulated: DUR must be >= 5 (samples are 1 s; 3 are dropped)" >&2; exit 2; }
for s in $SIZES; do [[ "$s" =~ ^[0-9]+$ ]] && [ "$s" -ge 60 ] && [ "$s" -le 1514 ] ||
  { echo "bench-emulated: size '$s' not in 60..1514" >&2; exit 2; }; done
for m in $MODES; do case $m in huge|nohuge) ;; *) echo "bench-emulated: mode '$m' (huge|nohuge)" >&2; exit 2;; esac; done
[ "$(id -u)" = 0 ] || { echo "bench-emulated: run as root (hugepages, hugetlbfs, CPU pinning)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench-emulated: needs 2 CPUs" >&2; exit 1; }

CPU_BACK=0 CPU_GUEST=1          # back end (agent / vhost) and guest (shell / virtio-user)
NEAR_NS=200                     # c2c round trip below this = "near" placement
HUGEMNT=/mnt/npa-bench-huge
SOCKDIR=$OUTDIR/sock
rm -rf "$OUTDIR"; mkdir -p "$OUTDIR" "$SOCKDIR"
MANIFEST=$OUTDIR/runs.tsv; : >"$MANIFEST"
log() { echo "$@" >&2; }

# ------------------------------------------------------------------ install
need_cmds="dpdk-testpmd cmake ninja g++ python3 taskset stdbuf timeout"
missing=""; for c in $need_cmds; do command -v "$c" >/dev/null || missing="$missing $c"; done
if [ -n "$missing" ]; then
  log "# installing Debian packages for:$missing"
  if [ -x "$ROOT/scripts/install-deps.sh" ]; then
    timeout 1800 "$ROOT/scripts/install-deps.sh" >"$OUTDIR/apt.log" 2>&1
  else
    DEBIAN_FRONTEND=noninteractive timeout 1800 apt-get -o DPkg::Lock::Timeout=600 install -y -q \
      dpdk cmake ninja-build g++ python3 util-linux coreutils >"$OUTDIR/apt.log" 2>&1
  fi
  for c in $need_cmds; do command -v "$c" >/dev/null ||
    { log "bench-emulated: '$c' still missing after install (see $OUTDIR/apt.log)"; exit 1; }; done
fi

# ------------------------------------------------------------------ build
TARGETS="npa-agent npactl npa_bench_guest npa_bench_c2c"
find_bin() { find "$BUILD_DIR" -maxdepth 4 -type f -name "$1" -perm -u+x 2>/dev/null | head -1; }
if [ -z "$BUILD_DIR" ]; then
  BUILD_DIR=$ROOT/build-bench
  if ! grep -qs '^CMAKE_BUILD_TYPE:[A-Z]*=Release$' "$BUILD_DIR/CMakeCache.txt"; then
    timeout 600 cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUTDIR/cmake.log" 2>&1 ||
      { log "bench-emulated: cmake failed, see $OUTDIR/cmake.log"; exit 1; }
  fi
  log "# building $TARGETS (Release) in $BUILD_DIR"
  timeout 3600 ninja -C "$BUILD_DIR" -j2 $TARGETS >"$OUTDIR/build.log" 2>&1 ||
    { tail -30 "$OUTDIR/build.log" >&2; log "bench-emulated: build failed, see $OUTDIR/build.log"; exit 1; }
fi
AGENT=$(find_bin npa-agent) NPACTL=$(find_bin npactl) GUEST=$(find_bin npa_bench_guest) C2C=$(find_bin npa_bench_c2c)
for b in AGENT NPACTL GUEST C2C; do
  [ -n "${!b}" ] || { log "bench-emulated: no $b binary under $BUILD_DIR (build: ninja -C $BUILD_DIR $TARGETS)"; exit 1; }
done
"$AGENT" --help 2>&1 | grep -q -- '--mode' ||
  log "WARN: npa-agent --help does not mention --mode; the sink mode may be missing"

# ------------------------------------------------------------------ processes and cleanup
STARTED=()            # PIDs this script started (the `timeout` wrappers); nothing else is killed
HUGE_ORIG="" HUGE_MOUNTED=0 HUGE_OK=0
children_of() { cat /proc/"$1"/task/*/children 2>/dev/null; }
stop_pid() {          # INT, then up to 5 s, then KILL: the wrapper and its direct children
  local p=$1 kids i
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
  kids=$(children_of "$p")
  kill -INT "$p" 2>/dev/null
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then
    for i in $kids; do kill -KILL "$i" 2>/dev/null; done
    kill -KILL "$p" 2>/dev/null
  fi
  wait "$p" 2>/dev/null
  return 0
}
stop_all() { local p; for p in "${STARTED[@]:-}"; do [ -n "$p" ] && stop_pid "$p"; done; STARTED=(); }
clean_dpdk_files() {  # what a killed testpmd may leave behind (our prefixes only)
  rm -rf /var/run/dpdk/npab$$* 2>/dev/null
  [ "$HUGE_MOUNTED" = 1 ] && rm -f "$HUGEMNT"/npab$$* 2>/dev/null
  return 0
}
cleanup() {
  stop_all
  clean_dpdk_files
  rm -rf "$SOCKDIR"
  if [ "$HUGE_MOUNTED" = 1 ]; then umount "$HUGEMNT" 2>/dev/null && rmdir "$HUGEMNT" 2>/dev/null; fi
  if [ -n "$HUGE_ORIG" ]; then echo "$HUGE_ORIG" >/proc/sys/vm/nr_hugepages 2>/dev/null &&
    log "# hugepages restored to $HUGE_ORIG"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ hugepages
setup_huge() {        # 1024 x 2 MB (both testpmds: 2 x 512 MB; the shell's region: tens of MB)
  local cur; cur=$(cat /proc/sys/vm/nr_hugepages)
  if [ "$cur" -lt 1024 ]; then
    HUGE_ORIG=$cur
    echo 1024 >/proc/sys/vm/nr_hugepages 2>/dev/null || return 1
  fi
  [ "$(awk '/HugePages_Free/{print $2}' /proc/meminfo)" -ge 600 ] || return 1
  mkdir -p "$HUGEMNT"
  if ! mountpoint -q "$HUGEMNT"; then
    mount -t hugetlbfs -o pagesize=2M nodev "$HUGEMNT" || return 1
    HUGE_MOUNTED=1
  fi
  HUGE_OK=1
}
case " $MODES " in *" huge "*)
  if setup_huge; then log "# hugepages: $(cat /proc/sys/vm/nr_hugepages) x 2 MB reserved, hugetlbfs on $HUGEMNT"
  else log "# hugepages: NOT available here -> the huge mode is skipped"; fi ;;
esac
memargs() {          # DPDK EAL memory options for mode $1, file prefix $2
  if [ "$1" = huge ]; then echo "--huge-dir $HUGEMNT -m 512 --single-file-segments --file-prefix=$2"
  else echo "--no-huge -m 1024 --file-prefix=$2"; fi   # --no-huge memory is a memfd: shareable
}

# ------------------------------------------------------------------ helpers
busy_pct() {         # non-idle % of all CPUs over $1 s
  local a b; a=($(grep '^cpu ' /proc/stat)); sleep "$1"; b=($(grep '^cpu ' /proc/stat))
  local idle=$(( (b[4]+b[5]) - (a[4]+a[5]) )) tot=0 k
  for k in 1 2 3 4 5 6 7 8; do tot=$((tot + b[k] - a[k])); done
  echo $(( tot > 0 ? 100 * (tot - idle) / tot : 0 ))
}
wait_quiet() {       # until 3 consecutive 1-s windows under 5 % busy (at most QUIET_MAX s)
  local t=0 ok=0 b
  while [ $t -lt "$QUIET_MAX" ]; do
    b=$(busy_pct 1)
    if [ "${b:-100}" -lt 5 ]; then ok=$((ok + 1)); [ $ok -ge 3 ] && return 0; else ok=0; fi
    t=$((t + 1))
  done
  log "WARN: machine not quiet after ${QUIET_MAX}s, measuring anyway"; return 1
}
wait_for() {         # wait_for SECONDS test-args...: poll every 0.1 s
  local n=$(( $1 * 10 )) i; shift
  for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done; return 1
}
has_line() { grep -aq -- "$2" "$1" 2>/dev/null; }
jiffies_of() { local p s=0; for p in "$@"; do [ -r /proc/$p/stat ] &&
  s=$((s + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $s; }
ts_lines() { local l; while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
share_pct() {        # jiffies delta, ns delta -> % of 2 CPUs
  awk -v j="$1" -v dt="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.0f", 100 * j / hz / (2 * dt / 1e9)}'
}
npactl_stats() {     # control socket, file: "<unix_time>" line, then npactl's JSON
  # npactl talks to the agent's admin socket (<control socket>.admin).
  { echo "$EPOCHREALTIME"; timeout 10 "$NPACTL" --socket "$1.admin" --json stats 2>&1; } >"$2"
}

# One run's measurement window: the two busy processes' CPU share while the
# traffic flows (from 2 s after start for DUR-4 s). Sets SHARE.
measure_share() {    # pids...
  local j0 j1 t0 t1
  j0=$(jiffies_of "$@"); t0=$(date +%s%N)
  sleep $((DUR - 4))
  j1=$(jiffies_of "$@"); t1=$(date +%s%N)
  SHARE=$(share_pct $((j1 - j0)) $((t1 - t0)))
}

# run_npa TAG SIZE MODE [DPDK_BACKEND]: npa guest TX into npa-agent's sink, or
# (cross) into DPDK's net_vhost rxonly.
run_npa() {
  local tag=$1 size=$2 mode=$3 backend=${4:-agent}
  local sock=$SOCKDIR/vhost.sock ctl=$SOCKDIR/agent.ctl
  local alog=$OUTDIR/$tag.backend.log glog=$OUTDIR/$tag.guest.log gerr=$OUTDIR/$tag.guest.err mlog=$OUTDIR/$tag.c2c.log
  rm -f "$sock" "$ctl"
  local bpid bproc
  if [ "$backend" = agent ]; then
    $PRIO timeout -s INT $((DUR + 90)) "$AGENT" --vhost-user "$sock" --mode sink --cpu $CPU_BACK --burst "$BURST" \
      --control "$ctl" >"$alog" 2>&1 </dev/null &
  else
    $PRIO timeout -s INT $((DUR + 90)) stdbuf -oL dpdk-testpmd --lcores "0@$CPU_GUEST,1@$CPU_BACK" --main-lcore 0 --no-pci \
      $(memargs "$mode" npab$$s) --vdev "net_vhost0,iface=$sock,queues=1" -- --forward-mode=rxonly \
      --stats-period 1 --nb-cores=1 --burst="$BURST" --total-num-mbufs=32768 > >(ts_lines >"$alog") 2>&1 </dev/null &
  fi
  bpid=$!; STARTED=($bpid)
  wait_for 60 test -S "$sock" || { log "   back end never created $sock (see $alog)"; stop_all; return 2; }
  $PRIO timeout $((DUR + 90)) "$C2C" monitor $((DUR + 60)) --period-ms 250 --rounds 1000 >"$mlog" 2>/dev/null &
  STARTED+=($!)
  local nohuge=""; [ "$mode" = nohuge ] && nohuge=--no-huge
  $PRIO timeout -s INT $((DUR + 60)) "$GUEST" --vhost-user "$sock" --tx --size "$size" --burst "$BURST" --ring-size "$RING" --ring "$NPA_RING" \
    --cpu $CPU_GUEST --seconds "$DUR" --linger-ms 300 --hold-ms 3000 $nohuge >"$glog" 2>"$gerr" </dev/null &
  local gpid=$!; STARTED+=($gpid)
  if ! wait_for 40 has_line "$glog" '^sample '; then
    log "   the guest produced no sample (see $gerr)"; stop_all; return 2
  fi
  sleep 1
  [ "$backend" = agent ] && npactl_stats "$ctl" "$OUTDIR/$tag.stats1"
  bproc=$(children_of "$bpid"); [ "$backend" = agent ] || bproc=$(for c in $bproc; do children_of "$c"; echo "$c"; done)
  local gproc; gproc=$(children_of "$gpid")
  measure_share $bproc $gproc
  [ "$backend" = agent ] && npactl_stats "$ctl" "$OUTDIR/$tag.stats2"
  # The guest drains the ring, prints its JSON line and stays connected
  # (--hold-ms): the agent's counters for it are read then, before they go.
  wait_for $((DUR + 30)) has_line "$glog" '^{' || log "   WARN: no final line from the guest"
  [ "$backend" = agent ] && npactl_stats "$ctl" "$OUTDIR/$tag.stats3"
  local i; for i in $(seq 100); do kill -0 "$gpid" 2>/dev/null || break; sleep 0.1; done
  stop_all
  sleep 0.3
  clean_dpdk_files
  local fmt=npa; [ "$backend" = agent ] || fmt=testpmd-rx
  local sfile=$glog; [ "$backend" = agent ] || sfile=$alog
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$REP" "$size" "$mode" "$IMPL" "$ATTEMPT" "$SHARE" \
    "$sfile" "$fmt" "$mlog" "$OUTDIR/$tag" >>"$MANIFEST"
  return 0
}

# run_dpdk TAG SIZE MODE [npa-agent]: testpmd virtio-user txonly into testpmd
# net_vhost rxonly, or (cross) into npa-agent's sink.
run_dpdk() {
  local tag=$1 size=$2 mode=$3 backend=${4:-dpdk}
  local sock=$SOCKDIR/vhost.sock ctl=$SOCKDIR/agent.ctl
  local slog=$OUTDIR/$tag.backend.log clog=$OUTDIR/$tag.client.log mlog=$OUTDIR/$tag.c2c.log
  rm -f "$sock" "$ctl"
  local tp="--stats-period 1 --nb-cores=1 --burst=$BURST --total-num-mbufs=32768 --txpkts=$size"
  if [ "$backend" = dpdk ]; then
    $PRIO timeout -s INT $((DUR + 120)) stdbuf -oL dpdk-testpmd --lcores "0@$CPU_GUEST,1@$CPU_BACK" --main-lcore 0 --no-pci \
      $(memargs "$mode" npab$$s) --vdev "net_vhost0,iface=$sock,queues=1" -- --forward-mode=rxonly $tp \
      > >(ts_lines >"$slog") 2>&1 </dev/null &
  else
    $PRIO timeout -s INT $((DUR + 120)) "$AGENT" --vhost-user "$sock" --mode sink --cpu $CPU_BACK --burst "$BURST" \
      --control "$ctl" >"$slog" 2>&1 </dev/null &
  fi
  local spid=$!; STARTED=($spid)
  wait_for 60 test -S "$sock" || { log "   back end never created $sock (see $slog)"; stop_all; return 2; }
  [ "$backend" = dpdk ] && { wait_for 30 has_line "$slog" "start packet forwarding" || log "   WARN: vhost testpmd not ready"; }
  sleep 0.5
  $PRIO timeout -s INT $((DUR + 90)) stdbuf -oL dpdk-testpmd --lcores "0@$CPU_BACK,1@$CPU_GUEST" --main-lcore 0 --no-pci \
    $(memargs "$mode" npab$$c) --vdev "net_virtio_user0,path=$sock,queues=1,queue_size=$RING" \
    -- --forward-mode=txonly $tp > >(ts_lines >"$clog") 2>&1 </dev/null &
  local cpid=$!; STARTED+=($cpid)
  $PRIO timeout $((DUR + 90)) "$C2C" monitor $((DUR + 60)) --period-ms 250 --rounds 1000 >"$mlog" 2>/dev/null &
  STARTED+=($!)
  if ! wait_for 60 has_line "$clog" "start packet forwarding"; then
    log "   virtio-user testpmd never started forwarding (see $clog)"; stop_all; clean_dpdk_files; return 2
  fi
  local t_start=$SECONDS
  sleep 2
  [ "$backend" = dpdk ] || npactl_stats "$ctl" "$OUTDIR/$tag.stats1"
  local procs="" p c
  for p in $spid $cpid; do for c in $(children_of "$p"); do procs="$procs $c $(children_of "$c")"; done; done
  measure_share $procs
  [ "$backend" = dpdk ] || npactl_stats "$ctl" "$OUTDIR/$tag.stats2"
  # The traffic lasts DUR s from the first forwarding line, as the npa guest's --seconds.
  local left=$((DUR + 1 - (SECONDS - t_start))); [ $left -gt 0 ] && sleep $left
  stop_pid "$cpid"
  sleep 0.5
  [ "$backend" = dpdk ] || npactl_stats "$ctl" "$OUTDIR/$tag.stats3"
  stop_all
  sleep 0.3
  clean_dpdk_files
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$REP" "$size" "$mode" "$IMPL" "$ATTEMPT" "$SHARE" \
    "$([ "$backend" = dpdk ] && echo "$slog" || echo "$clog")" \
    "$([ "$backend" = dpdk ] && echo testpmd-rx || echo testpmd-tx)" "$mlog" "$OUTDIR/$tag" >>"$MANIFEST"
  return 0
}

# run IMPL SIZE MODE: one measurement with retries when the CPUs were shared.
run() {
  IMPL=$1; local size=$2 mode=$3 rc
  for ATTEMPT in $(seq 0 "$RETRY"); do
    local tag="${IMPL}_${size}_${mode}_r${REP}_a${ATTEMPT}"
    wait_quiet
    SHARE=0
    case $IMPL in
      npa) run_npa "$tag" "$size" "$mode" agent ;;
      dpdk) run_dpdk "$tag" "$size" "$mode" dpdk ;;
      npa-guest+dpdk-vhost) run_npa "$tag" "$size" "$mode" dpdk ;;
      dpdk-virtio+npa-agent) run_dpdk "$tag" "$size" "$mode" agent ;;
    esac
    rc=$?
    local med; med=$(python3 "$ROOT/tests/bench/bench_analyze.py" --quick-median "$(tail -1 "$MANIFEST" | cut -f7,8 | tr '\t' ' ')" 2>/dev/null)
    [ $rc = 0 ] || med="FAILED"
    log "$(printf '   r%s %-22s %5s B %-6s %9s Mpps  cpu %3s%%' "$REP" "$IMPL" "$size" "$mode" "${med:-?}" "$SHARE")"
    # A run with no kept sample (the side started late, or the machine stalled)
    # is always run again. A contended run is run again in a full measurement;
    # --quick keeps it (the analysis takes it with --allow-invalid), since the
    # smoke test checks that both sides measure, not how fast.
    if [ $rc = 0 ] && { [ -z "$med" ] || [ "$med" = n/a ]; }; then
      log "   (no sample survived the warm-up and tail cut: retry)"; continue
    fi
    [ $rc = 0 ] && { [ "${SHARE:-0}" -ge 95 ] || [ $QUICK = 1 ]; } && return 0
    [ $rc = 0 ] && log "   (the two processes got ${SHARE}% of the CPUs: contended -> retry)"
  done
  return 0
}

probe() { log "# c2c round trip now: $(timeout 30 "$C2C" once 2>/dev/null || echo NA) ns"; }

log "# npa emulated-path benchmark vs DPDK $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null)"
log "# CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, kernel $(uname -r)"
log "# started $(date -u +%FT%TZ)  REPS=$REPS DUR=$DUR SIZES='$SIZES' MODES='$MODES' RING=$RING BURST=$BURST NICE=$NICE"
log "# binaries: $BUILD_DIR ($(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt"))"
probe
for REP in $(seq 1 "$REPS"); do
  for mode in $MODES; do
    [ "$mode" = huge ] && [ "$HUGE_OK" = 0 ] && continue
    for size in $SIZES; do
      # ABBA: odd reps npa first, even reps DPDK first, so neither side always
      # runs right after the other on a warmer (or cooler) machine.
      if [ $((REP % 2)) = 1 ]; then run npa "$size" "$mode"; run dpdk "$size" "$mode"
      else run dpdk "$size" "$mode"; run npa "$size" "$mode"; fi
      if [ $CROSS = 1 ]; then
        run npa-guest+dpdk-vhost "$size" "$mode"; run dpdk-virtio+npa-agent "$size" "$mode"
      fi
    done
  done
done
probe
log "# finished $(date -u +%FT%TZ); logs and runs.tsv under $OUTDIR"

headline_mode=huge; [ "$HUGE_OK" = 1 ] && case " $MODES " in *" huge "*) ;; *) headline_mode=${MODES%% *};; esac
[ "$HUGE_OK" = 1 ] || headline_mode=nohuge
python3 "$ROOT/tests/bench/bench_analyze.py" --manifest "$MANIFEST" --near-ns $NEAR_NS \
  --headline-size 64 --headline-mode "$headline_mode" $([ $QUICK = 1 ] && echo --allow-invalid)
