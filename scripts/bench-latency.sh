#!/usr/bin/env bash
# Latency and idle cost of the emulated path: npa beside DPDK, in one run.
#
#   bash scripts/bench-latency.sh            # full run (REPS x 2 impls x 3 phases)
#   bash scripts/bench-latency.sh --quick    # CI smoke form, well under 30 s
#
# npa:  npa_bench_pingpong (libnpa_shell, CPU1) <-vhost-user-> npa-agent --mode
#       loopback (CPU0): the agent puts each guest TX frame into the same
#       guest's RX ring.
# DPDK: dpdk_pingpong (net_virtio_user, CPU1) <-vhost-user-> dpdk-testpmd
#       net_vhost --forward-mode=io --port-topology=loop (both lcores on
#       CPU0): testpmd sends each frame back out of the port it came in on.
# Each side is pinned whole (taskset: control threads too) to its own CPU.
# Both: 64 B frames (SIZE), 256-entry rings, 4 KiB pages (no hugepages:
# DPDK --no-huge, the shell NPA_SHELL_F_NO_HUGEPAGES), one queue pair.
# The guest programs share their timing code (tests/bench/pingpong_core.c).
#
# Phases, each rep, npa and DPDK in ABBA order (odd reps npa first):
#   poll   back to back, one frame in flight, the guest busy-polls RX
#   intr   back to back, the guest sleeps on its RX interrupt between frames
#          (npa: poll(2) on npa_queue_intr_fd; DPDK: rx_intr_enable + epoll)
#   light  interrupt mode, paced at RATE frames/s (open loop): the CPU each
#          side uses (guest: its getrusage over the window; back end:
#          /proc/<pid>/stat utime+stime over the same window), and latency
# One-way latency = round trip / 2, percentiles per run; the report gives the
# median over reps of each figure, and its min..max over reps (the noise).
#
# Options: --quick          REPS=1, short runs, no waiting for a quiet machine
#          --build-dir DIR  binaries of this build (default: build/ of the tree)
#          -h, --help       this text
# Env:     REPS=5 COUNT=100000 (poll round trips kept) INTR_COUNT=20000
#          RATE=10000 LIGHT_S=10 SIZE=64 NICE=0 QUIET_MAX=60
#          OUTDIR=/tmp/npa-bench-latency
#          IDLE_SPINS=N   npa-agent --idle-spins N (default: the agent's)
#          COALESCE_US=N  npa-agent --coalesce-us N: interrupt moderation
#                         (default 0, off); the JSON's npa_coalesce_us;
#                         COUNT and INTR_COUNT then default to 5000
#          IMPLS=npa|dpdk one side only (default both; the JSON then lacks the
#                         other's figures and the exit status is 1)
#          NICE=-20       every measured process, and this session's autogroup,
#                         at that niceness (both sides alike)
# Output:  a table, and as the LAST line one JSON object:
#   {"bench":"latency","reps":..,"npa_poll_p50_us":..,"npa_poll_p99_us":..,
#    "npa_poll_p999_us":..,"dpdk_poll_p50_us":..,...,"npa_intr_...":..,
#    "npa_light_guest_cpu_pct":..,"npa_light_backend_cpu_pct":..,
#    "npa_intr_guest_cpu_pct":..,"npa_intr_agent_cpu_pct":..,"dpdk_...":..}
#   (*_intr_guest/agent_cpu_pct: the light phase's figures, interrupt mode
#   at RATE; for DPDK "agent" is testpmd's vhost side.) wake_floor_*: the
#   machine's own cost of two threads that wake each other at RATE
#   (tests/bench/wake_floor.c), the floor of any design where both sleep.
# Exit: 0 measured, 1 failure (setup, or a phase with no valid run), 2 usage.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QUICK=0 BUILD_DIR=$ROOT/build
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --build-dir) [ $# -ge 2 ] || { echo "bench-latency: --build-dir needs a directory" >&2; exit 2; }
                 BUILD_DIR=$(cd "$2" 2>/dev/null && pwd) || { echo "bench-latency: no directory '$2'" >&2; exit 2; }
                 shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench-latency: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# With moderation every round trip of a back-to-back phase waits about one
# interval (~0.3-0.6 ms at 500 us), so those phases keep fewer frames or
# they would outlast their timeouts.
if [ "${COALESCE_US:-0}" != 0 ]; then COUNT=${COUNT:-5000} INTR_COUNT=${INTR_COUNT:-5000}; fi
if [ $QUICK = 1 ]; then
  REPS=${REPS:-1} COUNT=${COUNT:-20000} INTR_COUNT=${INTR_COUNT:-3000} LIGHT_S=${LIGHT_S:-3} QUIET_MAX=${QUIET_MAX:-0}
fi
REPS=${REPS:-5} COUNT=${COUNT:-100000} INTR_COUNT=${INTR_COUNT:-20000} RATE=${RATE:-10000}
LIGHT_S=${LIGHT_S:-10} SIZE=${SIZE:-64} NICE=${NICE:-0} QUIET_MAX=${QUIET_MAX:-60}
OUTDIR=${OUTDIR:-/tmp/npa-bench-latency} IMPLS=${IMPLS:-both}
case "$IMPLS" in npa|dpdk|both) ;; *) echo "bench-latency: IMPLS='$IMPLS' (npa, dpdk or both)" >&2; exit 2;; esac
for v in REPS COUNT INTR_COUNT RATE LIGHT_S SIZE QUIET_MAX; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "bench-latency: $v='${!v}' is not a number" >&2; exit 2; }
done
[ "$REPS" -ge 1 ] && [ "$COUNT" -ge 100 ] && [ "$INTR_COUNT" -ge 100 ] && [ "$RATE" -ge 100 ] &&
  [ "$LIGHT_S" -ge 2 ] && [ "$SIZE" -ge 60 ] && [ "$SIZE" -le 1514 ] ||
  { echo "bench-latency: want REPS>=1 COUNT,INTR_COUNT>=100 RATE>=100 LIGHT_S>=2 SIZE 60..1514" >&2; exit 2; }
[ -z "${IDLE_SPINS:-}" ] || [[ "$IDLE_SPINS" =~ ^[0-9]+$ ]] || { echo "bench-latency: IDLE_SPINS='$IDLE_SPINS' is not a number" >&2; exit 2; }
COALESCE_US=${COALESCE_US:-0}
[[ "$COALESCE_US" =~ ^[0-9]+$ ]] || { echo "bench-latency: COALESCE_US='$COALESCE_US' is not a number" >&2; exit 2; }
[[ "$NICE" =~ ^-?[0-9]+$ ]] && [ "$NICE" -ge -20 ] && [ "$NICE" -le 19 ] ||
  { echo "bench-latency: NICE='$NICE' not in -20..19" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench-latency: run as root (DPDK EAL, CPU pinning)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench-latency: needs 2 CPUs" >&2; exit 1; }
for c in dpdk-testpmd taskset python3 timeout; do
  command -v $c >/dev/null || { echo "bench-latency: '$c' not found (apt-get install dpdk util-linux python3)" >&2; exit 1; }
done
AGENT=$BUILD_DIR/hypervisor/daemon/npa-agent
NPA_PP=$BUILD_DIR/tests/bench/npa_bench_pingpong
DPDK_PP=$BUILD_DIR/tests/bench/dpdk_pingpong
for b in "$AGENT" "$NPA_PP" "$DPDK_PP"; do
  [ -x "$b" ] || { echo "bench-latency: no $b (ninja -C $BUILD_DIR npa-agent npa_bench_pingpong dpdk_pingpong)" >&2; exit 1; }
done

CPU_BACK=0 CPU_GUEST=1
PRIO="nice -n $NICE"
# With autogroup, niceness ranks tasks only within this session's group:
# apply it to the group too (this script and its children only).
if [ "$NICE" != 0 ] && [ -w /proc/$$/autogroup ]; then echo "$NICE" >/proc/$$/autogroup 2>/dev/null; fi
rm -rf "$OUTDIR"; mkdir -p "$OUTDIR"
RUNS=$OUTDIR/runs.jsonl; : >"$RUNS"
PREFIX=npalat$$          # DPDK file prefixes of this run (cleaned up)
log() { echo "$@" >&2; }

# ------------------------------------------------------------------ clean-up
BACK_PID=""              # the one back end running (started by us, pid of the process itself)
stop_back() {
  local p=$BACK_PID i
  BACK_PID=""
  [ -n "$p" ] || return 0
  kill -INT "$p" 2>/dev/null
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}
GUEST_PID=""             # the running guest's `timeout` wrapper (it passes signals on)
cleanup() {
  if [ -n "$GUEST_PID" ] && kill -0 "$GUEST_PID" 2>/dev/null; then
    kill -TERM "$GUEST_PID" 2>/dev/null
    wait_for 5 eval '! kill -0 $GUEST_PID 2>/dev/null' || kill -KILL "$GUEST_PID" 2>/dev/null
  fi
  stop_back
  rm -rf /var/run/dpdk/$PREFIX* 2>/dev/null
  rm -f "$OUTDIR"/*.sock "$OUTDIR"/agent.ctl* 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers
wait_for() {             # wait_for SECONDS cmd...: every 0.1 s
  local n=$(( $1 * 10 )) i; shift
  for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.1; done; return 1
}
has_line() { grep -aq -- "$2" "$1" 2>/dev/null; }
sys_ticks() { awk '/^cpu /{b=0; for (k = 2; k <= 9; k++) if (k != 5 && k != 6) b += $k; print b}' /proc/stat; }
# cpu_window PID SECONDS: "<pid %> <others %>", % of one CPU over SECONDS:
# PID's utime+stime, and every other busy jiffy of the machine (the noise).
# One process reads the clock right beside each /proc read: separate reads
# from the shell can be descheduled in between on a busy machine.
cpu_window() {
  python3 - "$1" "$2" <<'PY'
import os, sys, time
pid, secs = sys.argv[1], float(sys.argv[2])
hz = os.sysconf("SC_CLK_TCK")
def sample():
    with open(f"/proc/{pid}/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    with open("/proc/stat") as f:
        c = [int(x) for x in f.readline().split()[1:9]]
    t = time.monotonic()
    return int(st[11]) + int(st[12]), sum(c) - c[3] - c[4], t
try:
    p0, s0, t0 = sample()
    time.sleep(secs)
    p1, s1, t1 = sample()
except OSError:  # the process ended meanwhile: no figure
    print("null null")
    sys.exit(0)
dt = t1 - t0
print(f"{100 * (p1 - p0) / hz / dt:.2f} {100 * ((s1 - s0) - (p1 - p0)) / hz / dt:.1f}")
PY
}
quiet_wait() {           # until a 1-s window under 10 % busy, at most QUIET_MAX s
  local t=0 a b
  [ "$QUIET_MAX" = 0 ] && return 0
  while [ $t -lt "$QUIET_MAX" ]; do
    a=$(sys_ticks); sleep 1; b=$(sys_ticks)
    [ $(( (b - a) * 100 / ($(getconf CLK_TCK) * $(nproc)) )) -lt 10 ] && return 0
    t=$((t + 1))
  done
  log "   (machine not quiet after ${QUIET_MAX}s: measuring anyway)"
}

start_back() {           # start_back IMPL: the echoing back end on CPU_BACK; sets BACK_PID, SOCK
  local impl=$1 log=$OUTDIR/$impl.r$REP.backend.log
  SOCK=$OUTDIR/$impl.sock
  rm -f "$SOCK"
  if [ "$impl" = npa ]; then
    taskset -c $CPU_BACK $PRIO "$AGENT" --vhost-user "$SOCK" --control "$OUTDIR/agent.ctl" \
      --restart-roster none --mode loopback --cpu $CPU_BACK ${IDLE_SPINS:+--idle-spins $IDLE_SPINS} --coalesce-us $COALESCE_US \
      >"$log" 2>&1 </dev/null &
  else
    # --stats-period: without it a non-interactive testpmd reads stdin and
    # exits at its end; stats every 60 s cost nothing measurable.
    taskset -c $CPU_BACK $PRIO dpdk-testpmd --lcores "0@$CPU_BACK,1@$CPU_BACK" --main-lcore 0 --no-pci \
      --no-huge -m 512 --file-prefix ${PREFIX}b --vdev "net_vhost0,iface=$SOCK,queues=1" -- \
      --forward-mode=io --port-topology=loop --nb-cores=1 --burst=32 --total-num-mbufs=8192 \
      --stats-period 60 >"$log" 2>&1 </dev/null &
  fi
  BACK_PID=$!
  if ! wait_for 30 test -S "$SOCK"; then
    log "   $impl back end never created $SOCK (see $log)"; stop_back; return 1
  fi
  [ "$impl" = npa ] || wait_for 30 has_line "$log" "forwarding" ||
    { log "   testpmd did not start forwarding (see $log)"; stop_back; return 1; }
  return 0
}

# run_guest IMPL PHASE: one guest run against the running back end; appends
# one record to runs.jsonl. 0 ok, 1 failed.
run_guest() {
  local impl=$1 phase=$2 out=$OUTDIR/$impl.r$REP.$phase.out err=$OUTDIR/$impl.r$REP.$phase.err
  local args=(--size "$SIZE") limit
  case $phase in
    poll)  args+=(--mode poll --count "$COUNT" --warmup 2000); limit=60 ;;
    intr)  args+=(--mode intr --count "$INTR_COUNT" --warmup 500); limit=60 ;;
    light) args+=(--mode intr --rate "$RATE" --count $((RATE * LIGHT_S * 2)) --seconds "$LIGHT_S"
                  --warmup $((RATE / 2))); limit=$((LIGHT_S + 40)) ;;
  esac
  local cmd
  if [ "$impl" = npa ]; then
    cmd=("$NPA_PP" --vhost-user "$SOCK" --no-huge --ring 256 "${args[@]}")
  else
    cmd=("$DPDK_PP" --lcores "0@$CPU_GUEST" --no-pci --no-huge -m 256 --file-prefix ${PREFIX}g
         --vdev "net_virtio_user0,path=$SOCK,queues=1,queue_size=256" -- "${args[@]}")
  fi
  : >"$out"
  timeout -s INT -k 5 $limit taskset -c $CPU_GUEST $PRIO "${cmd[@]}" >"$out" 2>"$err" </dev/null &
  local gpid=$! bcpu=null other=null
  GUEST_PID=$gpid
  if [ "$phase" = light ]; then
    # The back end's CPU over the guest's measured window (it starts at the
    # guest's "measuring" line and lasts LIGHT_S s): sampled from 0.2 s after
    # that line for LIGHT_S - 1 s. Also the CPU everything else on the
    # machine used meanwhile (the noise).
    if wait_for 30 has_line "$out" '^measuring'; then
      sleep 0.2
      read -r bcpu other < <(cpu_window $BACK_PID $((LIGHT_S - 1))) || { bcpu=null other=null; }
    fi
  fi
  wait $gpid; local rc=$?
  GUEST_PID=""
  local js; js=$(grep -a '^{' "$out" | tail -1)
  if [ $rc != 0 ] || [ -z "$js" ]; then
    log "   $impl $phase: guest failed (exit $rc, see $err)"; return 1
  fi
  # other: busy % of one CPU by everything but the back end (the guest included).
  printf '{"rep":%s,"phase":"%s","backend_cpu_pct":%s,"others_cpu_pct":%s,"run":%s}\n' \
    "$REP" "$phase" "$bcpu" "$other" "$js" >>"$RUNS"
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); r=j["run"]
print("   r%s %-4s %-5s p50 %8.2f  p99 %8.2f  p99.9 %8.2f us  lost %d  guest cpu %6.2f%%  back end cpu %s%%" % (
  j["rep"], r["impl"], j["phase"], r["p50_us"], r["p99_us"], r["p999_us"], r["lost"], r["cpu_pct"], j["backend_cpu_pct"]))' \
    "$(tail -1 "$RUNS")" >&2
  return 0
}

run_impl() {             # run_impl IMPL: back end up, the three phases, back end down
  local impl=$1 phase tries
  quiet_wait
  start_back "$impl" || { FAILS=$((FAILS + 1)); return; }
  for phase in poll intr light; do
    for tries in 1 2; do   # one retry: a run can die of a stall on a shared machine
      run_guest "$impl" "$phase" && break
      [ $tries = 2 ] && FAILS=$((FAILS + 1))
    done
  done
  stop_back
  rm -rf /var/run/dpdk/$PREFIX* 2>/dev/null
}

log "# npa latency and idle cost vs DPDK $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null)"
log "# CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, kernel $(uname -r)"
log "# $(date -u +%FT%TZ) REPS=$REPS COUNT=$COUNT INTR_COUNT=$INTR_COUNT RATE=$RATE LIGHT_S=$LIGHT_S SIZE=$SIZE NICE=$NICE IDLE_SPINS=${IDLE_SPINS:-default} COALESCE_US=$COALESCE_US"
log "# binaries: $BUILD_DIR ($(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null))"
log "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
FAILS=0
for REP in $(seq 1 "$REPS"); do
  case "$IMPLS" in
    npa|dpdk) run_impl "$IMPLS" ;;
    *) if [ $((REP % 2)) = 1 ]; then run_impl npa; run_impl dpdk; else run_impl dpdk; run_impl npa; fi ;;
  esac
done
# The machine's floor for sides that both sleep: two threads on the same two
# CPUs waking each other through eventfds at RATE, no network code at all.
FLOOR=$OUTDIR/wake_floor.json; : >"$FLOOR"
if [ -x "$BUILD_DIR/tests/bench/wake_floor" ]; then
  timeout -k 5 60 $PRIO "$BUILD_DIR/tests/bench/wake_floor" --rate "$RATE" --count $((RATE * (QUICK ? 1 : 3))) \
    --cpus $CPU_GUEST,$CPU_BACK >"$FLOOR" 2>>"$OUTDIR/wake_floor.err" || log "   wake_floor failed (see $OUTDIR/wake_floor.err)"
  log "   wake floor: $(cat "$FLOOR")"
fi
log "# finished $(date -u +%FT%TZ); load average $(cut -d' ' -f1-3 /proc/loadavg); runs in $RUNS"

python3 - "$RUNS" "$REPS" "$RATE" "$FAILS" "$FLOOR" "$COALESCE_US" <<'PY'
import json, statistics, sys
path, reps, rate, fails, floor = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
coalesce_us = int(sys.argv[6])
runs = [json.loads(l) for l in open(path) if l.strip()]
def vals(impl, phase, key, src="run"):
    out = []
    for r in runs:
        if r["run"]["impl"] == impl and r["phase"] == phase:
            v = r["run"][key] if src == "run" else r[key]
            if isinstance(v, (int, float)):
                out.append(v)
    return out
def med(v):
    return round(statistics.median(v), 2) if v else None
head = {"bench": "latency", "reps": reps, "rate": rate, "npa_coalesce_us": coalesce_us}
rows = []
missing = []
for phase in ("poll", "intr", "light"):
    for impl in ("npa", "dpdk"):
        if not vals(impl, phase, "p50_us"):
            missing.append(f"{impl}/{phase}")
        row = [impl, phase]
        for k, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p999")):
            v = vals(impl, phase, k)
            head[f"{impl}_{phase}_{name}_us"] = med(v)
            row.append(f"{med(v)} [{min(v):.2f}..{max(v):.2f}]" if v else "-")
        g = vals(impl, phase, "cpu_pct")
        head[f"{impl}_{phase}_guest_cpu_pct" if phase == "light" else f"{impl}_{phase}_b2b_guest_cpu_pct"] = med(g)
        row.append(f"{med(g)}" if g else "-")
        if phase == "light":
            b = vals(impl, phase, "backend_cpu_pct", src="rec")
            o = vals(impl, phase, "others_cpu_pct", src="rec")
            head[f"{impl}_light_backend_cpu_pct"] = med(b)
            head[f"{impl}_light_others_cpu_pct"] = med(o)
            row.append(f"{med(b)} [{min(b):.1f}..{max(b):.1f}]" if b else "-")
            sel = [r["run"] for r in runs if r["run"]["impl"] == impl and r["phase"] == phase]
            head[f"{impl}_light_kpps"] = med([x["sent"] / x["wall_s"] / 1000 for x in sel if x["wall_s"] > 0])
            lost = sum(x["lost"] for x in sel)
            head[f"{impl}_light_lost"] = lost
        else:
            row.append("")
        if phase != "poll":
            # How often the guest really slept per frame (an interrupt that
            # fired before the sleep began costs no context switch).
            sel = [r["run"] for r in runs if r["run"]["impl"] == impl and r["phase"] == phase]
            head[f"{impl}_{phase}_sleeps_per_frame"] = med([x["vol_ctx_switches"] / x["kept"] for x in sel if x["kept"]])
        rows.append(row)
# The names of the issue: interrupt mode at light load, guest and back end.
for impl, back in (("npa", "agent"), ("dpdk", "vhost")):
    head[f"{impl}_intr_guest_cpu_pct"] = head.get(f"{impl}_light_guest_cpu_pct")
    head[f"{impl}_intr_{back}_cpu_pct"] = head.get(f"{impl}_light_backend_cpu_pct")
print(f"one-way latency (us, round trip / 2): median over {reps} rep(s) [min..max over reps]; CPU in % of one core")
print(f"{'impl':5} {'phase':6} {'p50':>22} {'p99':>22} {'p99.9':>22} {'guest cpu':>10} {'back end cpu':>16}")
for r in rows:
    print(f"{r[0]:5} {r[1]:6} {r[2]:>22} {r[3]:>22} {r[4]:>22} {r[5]:>10} {r[6]:>16}")
print(f"light = interrupt mode, paced at {rate} frames/s; back end = npa-agent / testpmd net_vhost")
if missing:
    print("no valid run for: " + ", ".join(missing), file=sys.stderr)
try:
    w = json.loads(open(floor).read())
    for k in ("sender_cpu_pct", "echo_cpu_pct", "waking_write_us", "mean_rtt_us"):
        head[f"wake_floor_{k}"] = w[k]
    print(f"wake floor at {rate}/s (eventfd ping-pong, both threads sleep): sender {w['sender_cpu_pct']} %, "
          f"echo {w['echo_cpu_pct']} % of a core; a waking write(2) takes {w['waking_write_us']} us")
except (OSError, ValueError, KeyError):
    pass
head["failed_runs"] = fails
print(json.dumps(head))
sys.exit(1 if missing else 0)
PY
