#!/usr/bin/env bash
# The emulated-path benchmark: npa against DPDK, split and packed rings, like
# with like, in one command.
#
#   bash scripts/bench-emulated.sh            # full run (~REPS x 4 configs x 4 x ~20 s)
#   bash scripts/bench-emulated.sh --quick    # smoke: 1 rep, 64 B, split only, short runs
#
# npa:  npa-agent --mode sink on CPU0  <-vhost-user->  npa_bench_guest --tx --ring R on CPU1
# DPDK: testpmd net_vhost rxonly (fwd lcore CPU0) <-> testpmd net_virtio_user txonly
#       (fwd lcore CPU1), packed_vq=1 for the packed ring; mergeable RX buffers
# Four implementations per configuration: npa-split, npa-packed, dpdk-split,
# dpdk-packed (RINGS). Each run checks the ring it asked for was negotiated
# (npa: the guest's JSON "ring"; DPDK: virtio-user's "features after
# negotiate" and, on net_vhost, its "negotiated Virtio features", bit 34
# VIRTIO_F_RING_PACKED, the two must agree) and the script stops with exit 1
# when not.
# All: burst 32, the same ring size (RING), the same memory mode (2 MB
# hugepages or 4K pages), 1 queue pair, frames of SIZE bytes.
#
# Method (docs/PERFORMANCE.md): for each rep, each memory mode and each size,
# the four runs back to back, each pair (npa-R, dpdk-R) adjacent; the order is
# ABBA-like across reps (rep 1 npa-split dpdk-split dpdk-packed npa-packed,
# rep 2 the reverse, reps 3-4 the same rotated by one pair), so no
# implementation always runs first. Each run waits for an idle machine; a run
# is valid when the two busy processes got >= 95 % of both CPUs (else
# retried). Each run gives one sample a second; the first 2 and the last one
# are dropped. A c2c probe (npa_bench_c2c monitor) labels each sample "near"
# or "far" (vCPU placement on the host). A pair is compared only on a
# placement both runs saw (>= 2 near samples each, else >= 2 far each); a pair
# with none is run again (PAIR_RETRY times), then reported "not comparable"
# and excluded: never compared on all samples. The headline compares npa's
# best ring with DPDK's best ring (the higher median Mpps over comparable
# pairs): the median of the per-rep ratios where those runs share a placement.
# Cycles per frame on each core: perf's cycle count where `perf stat -e
# cycles` works, else /proc/cpuinfo's clock x the process's CPU share
# ("cpf_method": "perf" | "clock").
#
# --quick (the CI smoke test): split only, PAIR_RETRY=1, and a contended run
# is kept. On a loaded CI machine the pair may still see no common placement;
# the headline then says "comparable":false, "ratio":null and gives each
# side's median of all its samples, never a ratio of them (exit 1, as for any
# run with no comparable pair; the smoke test checks the fields, not the exit).
#
# Options: --quick          1 rep, DUR=6, SIZES=64, MODES=huge, RINGS=split (CI
#                           smoke test); a run with no sample is retried
#                           (RETRY=2), a contended one kept
#          --build-dir DIR  use the binaries of this build (default: build a
#                           Release tree in build-bench/)
#          --cross          also run npa's guest against DPDK's vhost, and DPDK's
#                           virtio-user against npa's agent, for each ring
#                           (splits the cost between the shell and the agent)
# Env:     REPS=3 DUR=10 SIZES="64 1500" MODES="huge nohuge" RING=256 BURST=32
#          RINGS="split packed"  ring kinds measured, for npa and DPDK alike
#          RETRY=1 PAIR_RETRY=2 QUIET_MAX=120 OUTDIR=/tmp/npa-bench-emulated
#          NICE=0   niceness of every measured process; NICE=-20 on a machine
#                   that never gets quiet (both sides alike; others slow down)
# Output:  a human-readable report, one JSON line per configuration, and as the
#          LAST line the headline JSON (64 B, hugepages when measured):
#   {"bench":"emulated","size":64,"hugepages":true,"npa_ring":..,"dpdk_ring":..,
#    "npa_mpps":..,"dpdk_mpps":..,"ratio":..,"comparable":..,"pairs":..,
#    "pairs_excluded":..,"npa_cpf_guest":..,"npa_cpf_back":..,"dpdk_cpf_guest":..,
#    "dpdk_cpf_back":..,"cpf_method":"perf"|"clock",...}
# Exit: 0 measured, 1 failure (no comparable pair, wrong ring, setup failed),
#       2 usage.
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
  RINGS=${RINGS:-split} PAIR_RETRY=${PAIR_RETRY:-1}
fi
REPS=${REPS:-3} DUR=${DUR:-10} SIZES=${SIZES:-"64 1500"} MODES=${MODES:-"huge nohuge"}
RING=${RING:-256} RINGS=${RINGS:-"split packed"} BURST=${BURST:-32} RETRY=${RETRY:-1} PAIR_RETRY=${PAIR_RETRY:-2}
QUIET_MAX=${QUIET_MAX:-120} NICE=${NICE:-0}
OUTDIR=${OUTDIR:-/tmp/npa-bench-emulated}
[ -n "$RINGS" ] || { echo "bench-emulated: RINGS is empty (split and/or packed)" >&2; exit 2; }
for r in $RINGS; do case $r in split|packed) ;; *) echo "bench-emulated: ring '$r' in RINGS (split|packed)" >&2; exit 2;; esac; done
for v in REPS DUR RING BURST RETRY PAIR_RETRY QUIET_MAX; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "bench-emulated: $v='${!v}' is not a number" >&2; exit 2; }
done
[[ "$NICE" =~ ^-?[0-9]+$ ]] && [ "$NICE" -ge -20 ] && [ "$NICE" -le 19 ] ||
  { echo "bench-emulated: NICE='$NICE' not in -20..19" >&2; exit 2; }
PRIO="nice -n $NICE"   # every measured process (both sides alike) runs at this niceness
# With CONFIG_SCHED_AUTOGROUP, niceness only ranks tasks inside one session's
# group; other sessions' builds still take an equal share each. So NICE also
# applies to this session's autogroup (this script and its children only).
if [ "$NICE" != 0 ] && [ -w /proc/$$/autogroup ]; then echo "$NICE" >/proc/$$/autogroup 2>/dev/null; fi
# Inside that group the script itself (and npactl, the probes' set-up, the
# analysis) must not sit at 0 under its own -20 pollers: starved, it reached
# a run's measurement window only after the traffic had ended. So it takes
# the same niceness, which every child inherits (PRIO then adds nothing).
if [ "$NICE" != 0 ] && renice -n "$NICE" -p $$ >/dev/null 2>&1; then PRIO="nice -n 0"; fi
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
# "$BUILD_DIR/": find does not descend a build dir given as a symlink without the slash.
find_bin() { find "$BUILD_DIR/" -maxdepth 4 -type f -name "$1" -perm -u+x 2>/dev/null | head -1; }
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
# (grep reads all of it: with pipefail, grep -q's early exit would SIGPIPE
# the agent and fail the pipeline, a spurious warning)
"$AGENT" --help 2>&1 | grep -c -- '--mode' >/dev/null ||
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
jiffies_of() {       # utime + stime of the pids; -1 when one has gone (its time is lost)
  local p s=0 f
  for p in "$@"; do
    f=$(awk '{print $14 + $15}' /proc/"$p"/stat 2>/dev/null) && [ -n "$f" ] || { echo -1; return; }
    s=$((s + f))
  done
  echo $s
}
ts_lines() { local l; while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
share_pct() {        # jiffies delta, ns delta, CPUs -> % of that many CPUs
  awk -v j="$1" -v dt="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.0f", 100 * j / hz / (n * dt / 1e9)}'
}
npactl_stats() {     # control socket, file: "<unix_time>" line, then npactl's JSON
  # npactl talks to the agent's admin socket (<control socket>.admin).
  { echo "$EPOCHREALTIME"; timeout 10 "$NPACTL" --socket "$1.admin" --json stats 2>&1; } >"$2"
}

# One run's measurement window: the two busy processes' CPU share while the
# traffic flows (from 2 s after start for DUR-4 s, ending at least 1 s before
# the traffic does: on a loaded machine the set-up before it can run late).
# Sets SHARE (% of both CPUs), SHARE_BACK and SHARE_GUEST (% of one CPU each);
# all stay 0 (an invalid run) when the window is under 2 s or a process ended
# inside it. With a working cycle counter, perf counts each side's cycles over
# the same window (PREFIX.perf_back, PREFIX.perf_guest: the window in s, then
# perf's CSV).
measure_share() {    # PREFIX "back-end pids" "guest pids" TRAFFIC_END(epoch s)
  local jb0 jg0 jb1 jg1 t0 t1 w=$((DUR - 4)) side pids perfs=()
  local left=$(( $4 - $(date +%s) - 1 ))
  [ "$left" -lt "$w" ] && w=$left
  if [ "$w" -lt 2 ]; then log "   (set-up ran late: no measurement window left)"; return 0; fi
  if [ "$PERF_OK" = 1 ]; then
    for side in back guest; do
      pids=$([ $side = back ] && echo $2 || echo $3); pids=${pids// /,}
      [ -n "$pids" ] || continue
      echo "$w" >"$1.perf_$side"
      timeout $((w + 10)) perf stat -x, -e cycles -p "$pids" -- sleep "$w" 2>>"$1.perf_$side" >/dev/null &
      perfs+=($!)
    done
  fi
  jb0=$(jiffies_of $2); jg0=$(jiffies_of $3); t0=$(date +%s%N)
  sleep "$w"
  jb1=$(jiffies_of $2); jg1=$(jiffies_of $3); t1=$(date +%s%N)
  for side in "${perfs[@]:-}"; do [ -n "$side" ] && wait "$side"; done
  if [ "$jb0" -lt 0 ] || [ "$jg0" -lt 0 ] || [ "$jb1" -lt 0 ] || [ "$jg1" -lt 0 ]; then
    log "   (a measured process ended inside the window: no CPU share)"; return 0
  fi
  SHARE=$(share_pct $((jb1 - jb0 + jg1 - jg0)) $((t1 - t0)) 2)
  SHARE_BACK=$(share_pct $((jb1 - jb0)) $((t1 - t0)) 1)
  SHARE_GUEST=$(share_pct $((jg1 - jg0)) $((t1 - t0)) 1)
  return 0
}
manifest_row() {     # sample_file format c2c_file prefix: one line of runs.tsv
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$REP" "$SIZE" "$MODE" "$IMPL" \
    "$RING_KIND" "$ROUND" "$ATTEMPT" "$SHARE" "$SHARE_BACK" "$SHARE_GUEST" "$1" "$2" "$3" "$4" >>"$MANIFEST"
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
  $PRIO timeout -s INT $((DUR + 60)) "$GUEST" --vhost-user "$sock" --tx --size "$size" --burst "$BURST" --ring-size "$RING" --ring "$RING_KIND" \
    --cpu $CPU_GUEST --seconds "$DUR" --linger-ms 300 --hold-ms 3000 $nohuge >"$glog" 2>"$gerr" </dev/null &
  local gpid=$!; STARTED+=($gpid)
  if ! wait_for 40 has_line "$glog" '^sample '; then
    log "   the guest produced no sample (see $gerr)"; stop_all; return 2
  fi
  local t_first; t_first=$(awk '$1 == "sample" { printf "%d", $2; exit }' "$glog")
  [ -n "$t_first" ] || t_first=$(date +%s)
  sleep 1
  [ "$backend" = agent ] && npactl_stats "$ctl" "$OUTDIR/$tag.stats1"
  bproc=$(children_of "$bpid"); [ "$backend" = agent ] || bproc=$(for c in $bproc; do children_of "$c"; echo "$c"; done)
  local gproc; gproc=$(children_of "$gpid")
  # The first sample closes the guest's first second of its --seconds DUR.
  measure_share "$OUTDIR/$tag" "$(echo $bproc)" "$(echo $gproc)" "$((t_first - 1 + DUR))"
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
  manifest_row "$sfile" "$fmt" "$mlog" "$OUTDIR/$tag"
  return 0
}

# run_dpdk TAG SIZE MODE [npa-agent]: testpmd virtio-user txonly into testpmd
# net_vhost rxonly, or (cross) into npa-agent's sink.
run_dpdk() {
  local tag=$1 size=$2 mode=$3 backend=${4:-dpdk}
  local sock=$SOCKDIR/vhost.sock ctl=$SOCKDIR/agent.ctl
  local slog=$OUTDIR/$tag.backend.log clog=$OUTDIR/$tag.client.log mlog=$OUTDIR/$tag.c2c.log
  rm -f "$sock" "$ctl"
  local packed=0; [ "$RING_KIND" = packed ] && packed=1
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
    $(memargs "$mode" npab$$c) --log-level=pmd.net.virtio.init:debug --vdev "net_virtio_user0,path=$sock,queues=1,queue_size=$RING,packed_vq=$packed" \
    -- --forward-mode=txonly $tp > >(ts_lines >"$clog") 2>&1 </dev/null &
  local cpid=$!; STARTED+=($cpid)
  $PRIO timeout $((DUR + 90)) "$C2C" monitor $((DUR + 60)) --period-ms 250 --rounds 1000 >"$mlog" 2>/dev/null &
  STARTED+=($!)
  if ! wait_for 60 has_line "$clog" "start packet forwarding"; then
    log "   virtio-user testpmd never started forwarding (see $clog)"; stop_all; clean_dpdk_files; return 2
  fi
  local t_start=$SECONDS t_end=$(( $(date +%s) + DUR ))
  sleep 2
  [ "$backend" = dpdk ] || npactl_stats "$ctl" "$OUTDIR/$tag.stats1"
  local bprocs="" gprocs="" c
  for c in $(children_of "$spid"); do bprocs="$bprocs $c $(children_of "$c")"; done
  for c in $(children_of "$cpid"); do gprocs="$gprocs $c $(children_of "$c")"; done
  measure_share "$OUTDIR/$tag" "$(echo $bprocs)" "$(echo $gprocs)" "$t_end"
  [ "$backend" = dpdk ] || npactl_stats "$ctl" "$OUTDIR/$tag.stats2"
  # The traffic lasts DUR s from the first forwarding line, as the npa guest's --seconds.
  local left=$((DUR + 1 - (SECONDS - t_start))); [ $left -gt 0 ] && sleep $left
  stop_pid "$cpid"
  sleep 0.5
  [ "$backend" = dpdk ] || npactl_stats "$ctl" "$OUTDIR/$tag.stats3"
  stop_all
  sleep 0.3
  clean_dpdk_files
  manifest_row "$([ "$backend" = dpdk ] && echo "$slog" || echo "$clog")" \
    "$([ "$backend" = dpdk ] && echo testpmd-rx || echo testpmd-tx)" "$mlog" "$OUTDIR/$tag"
  return 0
}

# run IMPL RING SIZE MODE: one measurement (round ROUND of its pair) with
# retries when the CPUs were shared. Stops the script (exit 1) when the run
# did not get the ring it asked for: every later figure would be mislabelled.
run() {
  IMPL=$1 RING_KIND=$2 SIZE=$3 MODE=$4; local size=$3 mode=$4 rc
  for ATTEMPT in $(seq 0 "$RETRY"); do
    local tag="${IMPL}-${RING_KIND}_${size}_${mode}_r${REP}_p${ROUND}_a${ATTEMPT}"
    wait_quiet
    SHARE=0 SHARE_BACK=0 SHARE_GUEST=0
    local rows; rows=$(wc -l <"$MANIFEST")
    case $IMPL in
      npa) run_npa "$tag" "$size" "$mode" agent ;;
      dpdk) run_dpdk "$tag" "$size" "$mode" dpdk ;;
      npa-guest+dpdk-vhost) run_npa "$tag" "$size" "$mode" dpdk ;;
      dpdk-virtio+npa-agent) run_dpdk "$tag" "$size" "$mode" agent ;;
    esac
    rc=$?
    if [ $rc = 0 ] && [ "$(wc -l <"$MANIFEST")" -le "$rows" ]; then rc=2; fi
    local med="FAILED" got=""
    if [ $rc = 0 ]; then
      med=$(python3 "$ROOT/tests/bench/bench_analyze.py" --quick-median "$(tail -1 "$MANIFEST" | cut -f11,12 | tr '\t' ' ')" 2>/dev/null)
      got=$(python3 "$ROOT/tests/bench/bench_analyze.py" --manifest "$MANIFEST" --last-ring 2>/dev/null)
    fi
    log "$(printf '   r%s %-29s %5s B %-6s %9s Mpps  cpu %3s%% (back %s%%, guest %s%%)%s' "$REP" "$IMPL-$RING_KIND" \
      "$size" "$mode" "${med:-?}" "$SHARE" "$SHARE_BACK" "$SHARE_GUEST" "$([ "$ROUND" = 0 ] || echo " round $ROUND")")"
    if [ $rc = 0 ] && [ "$got" != "$RING_KIND" ]; then
      log "FAIL: $IMPL asked for a $RING_KIND ring and negotiated '${got:-unknown}' (see $OUTDIR/$tag.*)"
      exit 1
    fi
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

# The implementations of one rep, "impl:ring" each, in an ABBA-like order:
# pairs (npa-R, dpdk-R) adjacent, alternate pairs start with the other side
# (npa-split dpdk-split dpdk-packed npa-packed), even reps run the reverse,
# and every second rep pair starts one pair further, so over four reps each
# implementation runs first once and no pair always follows the other.
rep_order() {
  local seq=() out=() i=0 r n k
  for r in $RINGS; do
    if [ $((i % 2)) = 0 ]; then seq+=("npa:$r" "dpdk:$r"); else seq+=("dpdk:$r" "npa:$r"); fi
    i=$((i + 1))
  done
  n=${#seq[@]} k=$(( (REP - 1) / 2 * 2 % ${#seq[@]} ))
  for ((i = 0; i < n; i++)); do out+=("${seq[$(( (i + k) % n ))]}"); done
  if [ $((REP % 2)) = 0 ]; then for ((i = n - 1; i >= 0; i--)); do echo "${out[$i]}"; done
  else printf '%s\n' "${out[@]}"; fi
}

# run_pair "impl:ring" "impl:ring" SIZE MODE: the two runs of one ring, again
# (up to PAIR_RETRY times) while they saw no common placement (>= 2 near
# samples in both, or >= 2 far in both). A pair never comparable is reported
# as such by the analysis and excluded, never compared on all samples.
run_pair() {
  local a=$1 b=$2 ring=${1#*:} basis
  for ROUND in $(seq 0 "$PAIR_RETRY"); do
    run "${a%%:*}" "$ring" "$3" "$4"; run "${b%%:*}" "$ring" "$3" "$4"
    basis=$(python3 "$ROOT/tests/bench/bench_analyze.py" --manifest "$MANIFEST" --near-ns $NEAR_NS \
      --pair-basis "$REP" "$3" "$4" "$ring" "$ROUND" $([ $QUICK = 1 ] && echo --allow-invalid) 2>/dev/null)
    case $basis in near|far) log "   r$REP $ring pair: compared on $basis placement"; return 0 ;; esac
    [ "$ROUND" -lt "$PAIR_RETRY" ] && log "   r$REP $ring pair: no common placement (or no valid run): run the pair again"
  done
  log "   r$REP $ring pair: not comparable after $PAIR_RETRY re-run(s): excluded"
  return 0
}

# Cycles per frame: perf's cycle counter where this machine has one (a VM
# without a virtual PMU says "<not supported>"), else the clock.
PERF_OK=0
if command -v perf >/dev/null && timeout 10 perf stat -x, -e cycles true 2>&1 >/dev/null | grep -Eq '^[0-9]+,'; then
  PERF_OK=1
fi
CLOCK_MHZ=$(awk -F: '/^cpu MHz/ { s += $2; n++ } END { if (n) printf "%.0f", s / n }' /proc/cpuinfo)
CLOCK_MHZ=${CLOCK_MHZ:-0}

probe() { log "# c2c round trip now: $(timeout 30 "$C2C" once 2>/dev/null || echo NA) ns"; }

log "# npa emulated-path benchmark vs DPDK $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null)"
log "# CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, kernel $(uname -r)"
log "# started $(date -u +%FT%TZ)  REPS=$REPS DUR=$DUR SIZES='$SIZES' MODES='$MODES' RINGS='$RINGS' RING=$RING BURST=$BURST NICE=$NICE"
log "# cycles per frame: $([ "$PERF_OK" = 1 ] && echo "perf stat -e cycles" || echo "clock ($CLOCK_MHZ MHz from /proc/cpuinfo) x CPU share: perf cannot count cycles here")"
log "# binaries: $BUILD_DIR ($(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt"))"
probe
for REP in $(seq 1 "$REPS"); do
  for mode in $MODES; do
    [ "$mode" = huge ] && [ "$HUGE_OK" = 0 ] && continue
    for size in $SIZES; do
      order=($(rep_order))
      for ((k = 0; k < ${#order[@]}; k += 2)); do run_pair "${order[k]}" "${order[k + 1]}" "$size" "$mode"; done
      if [ $CROSS = 1 ]; then
        ROUND=0
        for ring in $RINGS; do
          run npa-guest+dpdk-vhost "$ring" "$size" "$mode"; run dpdk-virtio+npa-agent "$ring" "$size" "$mode"
        done
      fi
    done
  done
done
probe
log "# finished $(date -u +%FT%TZ); logs and runs.tsv under $OUTDIR"

headline_mode=huge; [ "$HUGE_OK" = 1 ] && case " $MODES " in *" huge "*) ;; *) headline_mode=${MODES%% *};; esac
[ "$HUGE_OK" = 1 ] || headline_mode=nohuge
python3 "$ROOT/tests/bench/bench_analyze.py" --manifest "$MANIFEST" --near-ns $NEAR_NS \
  --headline-size 64 --headline-mode "$headline_mode" --clock-mhz "$CLOCK_MHZ" $([ $QUICK = 1 ] && echo --allow-invalid)
