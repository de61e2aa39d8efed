#!/usr/bin/env bash
# The agent restarts under traffic, against the real binary (issue 9 part 4;
# docs/security.md "Agent restart"). Two shell guests (npa-restart-guest)
# stream sequence-numbered frames to each other through the agent's switch;
# mid-stream the agent is
#   kill: killed with SIGKILL, then started again at once with the same flags;
#   term: stopped with SIGTERM (a planned upgrade: it stops polling, closes
#         the sessions with Bye and exits), then started again likewise.
# Asserted:
#   - the guests resume within 1 s (3 s in a sanitizer build): the longest time a guest received nothing
#     while frames were due (rx_gap_ms, from its last frame before the
#     restart to its first after it), printed;
#   - every frame is delivered once or counted lost: term: 0 lost, 0
#     duplicated; kill: lost == 0 as well (in the switch nothing is held
#     between a guest's TX and another guest's RX, and the restarted agent
#     polls no TX until the guests it had are back), duplicates dropped by
#     the receiver and at most the senders' tx_resubmitted;
#   - the new agent dropped nothing at a guest's RX ring (rx_dropped; the
#     guests keep at most 512 frames a direction in flight, so a full TX
#     ring released at once still fits the receiver's RX buffers);
#   - `npactl --json guests` lists the same guests (name, MAC, state) after;
#   - the new agent's fd count equals the old one's before the restart.
# Every name (socket dir, guest names) carries this run's pid; everything
# made is removed at exit.
# The guests stream until the checks after the restart are done (SIGUSR1 to
# npa-restart-guest; at most 60 s).
# Usage: run_restart.sh BUILD_DIR kill|term [RATE]
set -u
B=$1 KIND=${2:-kill} RATE=${3:-4000} SECS=60
case "$KIND" in kill) SIG=KILL ;; term) SIG=TERM ;; *) echo "usage: $0 BUILD_DIR kill|term"; exit 2 ;; esac
AGENT=$B/hypervisor/daemon/npa-agent NPACTL=$B/hypervisor/npactl/npactl
GUEST=$B/tests/restart/npa-restart-guest
for x in "$AGENT" "$NPACTL" "$GUEST"; do [ -x "$x" ] || { echo "missing $x"; exit 1; }; done
dir=$(mktemp -d /tmp/npa-restart-$$.XXXXXX)
apid=; gpid=
cleanup() {
  local p
  for p in $gpid $apid; do
    kill "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  [ -n "${NPA_RESTART_KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT
ctl=$dir/agent.ctl
start_agent() {  # the same flags every time
  "$AGENT" --control "$ctl" --mode switch --name "restart-$$" --log-level info >>"$dir/agent.log" 2>&1 &
  apid=$!
  for _ in $(seq 200); do [ -S "$ctl.admin" ] && break; sleep 0.01; done
  [ -S "$ctl.admin" ] || { echo "FAIL: the agent did not start"; tail -20 "$dir/agent.log"; exit 1; }
}
nfd() { ls /proc/"$apid"/fd 2>/dev/null | wc -l; }
# name, MAC and state of every guest, sorted: what must be the same after.
guests() {
  "$NPACTL" --socket "$ctl.admin" --json guests 2>>"$dir/npactl.err" |
    python3 -c 'import json,sys
d=json.load(sys.stdin); g=d["guests"] if isinstance(d,dict) else d
print(" ".join(sorted("%s/%s/%s"%(x["name"],x["mac"],x["state"]) for x in g)))'
}
running2() { [ "$(guests | grep -o RUNNING | wc -l)" = 2 ]; }

start_agent
"$GUEST" --control "$ctl" --rate "$RATE" --seconds "$SECS" --name "rs$$" >"$dir/guest.out" 2>"$dir/guest.err" &
gpid=$!
for _ in $(seq 200); do running2 && break; sleep 0.02; done
running2 || { echo "FAIL: the two guests did not reach RUNNING"; guests; cat "$dir/guest.err"; exit 1; }
sleep 0.3  # both links settled, traffic flowing
list0=$(guests); fd0=$(nfd)
sleep 1
old=$apid
t_kill=$(date +%s%N)
kill -$SIG "$old"
for _ in $(seq 500); do kill -0 "$old" 2>/dev/null || break; sleep 0.01; done
wait "$old" 2>/dev/null
kill -0 "$old" 2>/dev/null && { echo "FAIL: agent $old did not exit on SIG$SIG"; exit 1; }
t_gone=$(date +%s%N)
start_agent
t_up=$(date +%s%N)
for _ in $(seq 300); do running2 && break; sleep 0.01; done
t_back=$(date +%s%N)
echo "--- SIG$SIG: agent gone after $(( (t_gone - t_kill) / 1000000 )) ms, new agent listening after $(( (t_up - t_kill) / 1000000 )) ms, both guests RUNNING after $(( (t_back - t_kill) / 1000000 )) ms"
sleep 0.5
list1=$(guests); fd1=$(nfd)
sleep 0.5  # traffic after the restart, then the guests stop and drain
# The new agent's drops at the guests' RX rings (rx_dropped): a full RX ring
# is a counted drop, not a restart loss; the guests' send window keeps every
# frame in flight within the RX buffers, so there must be none.
rxdrop=$("$NPACTL" --socket "$ctl.admin" --json stats 2>>"$dir/npactl.err" |
  python3 -c 'import json,sys; print(sum(q["rx_dropped"] for g in json.load(sys.stdin)["guests"] for q in g["queues"]))' 2>/dev/null)
kill -USR1 "$gpid"
wait "$gpid"; grc=$?; gpid=
line=$(tail -1 "$dir/guest.out")
echo "--- guest (exit $grc): $line"
echo "--- guests before: $list0"
echo "--- guests after:  $list1"
echo "--- agent fds before $fd0, after $fd1"
echo "--- new agent's rx_dropped over both guests: ${rxdrop:-(unreadable)}"
echo "--- new agent's counters: $("$NPACTL" --socket "$ctl.admin" --json agent 2>/dev/null | tr -d '\n' | head -c 600)"
ok=1
# The issue's bound is 1 s. A sanitizer build starts the agent and serves the
# reconnect several times slower (830 ms measured on a loaded 2-core VM), so
# it gets 3 s: the figure is printed either way.
bound=1000
ldd "$AGENT" 2>/dev/null | grep -q libasan && bound=3000
val() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$line" "$1" 2>/dev/null; }
[ -n "$(val sent)" ] || { echo "FAIL: no result line from the guest"; cat "$dir/guest.err"; ok=0; }
if [ $ok = 1 ]; then
  lost=$(val lost) dup=$(val duplicated) corrupt=$(val corrupt) resub=$(val resubmitted)
  gap=$(val rx_gap_ms) rec=$(val reconnected)
  echo "--- resumed within ${gap} ms of the last frame before the restart (bound $bound); lost $lost, duplicated $dup, resubmitted $resub"
  [ "$lost" = 0 ] || { echo "FAIL: $lost frames lost"; ok=0; }
  [ "$rxdrop" = 0 ] || { echo "FAIL: the new agent dropped ${rxdrop:-an unknown number of} frames at a full RX ring"; ok=0; }
  [ "$corrupt" = 0 ] || { echo "FAIL: $corrupt corrupt frames"; ok=0; }
  [ "$rec" = 2 ] || { echo "FAIL: $rec NPA_EVENT_RECONNECTED events (want 2, one per guest)"; ok=0; }
  awk -v g="$gap" -v b="$bound" 'BEGIN{exit !(g < b)}' || { echo "FAIL: resume took ${gap} ms"; ok=0; }
  if [ "$KIND" = term ]; then
    [ "$dup" = 0 ] || { echo "FAIL: $dup duplicates after a planned stop"; ok=0; }
  else
    [ "$dup" -le "$resub" ] || { echo "FAIL: $dup duplicates, more than the $resub resubmitted"; ok=0; }
  fi
fi
[ "$list0" = "$list1" ] && [ -n "$list0" ] || { echo "FAIL: npactl shows other guests after the restart"; ok=0; }
[ "$fd0" = "$fd1" ] || { echo "FAIL: agent fds $fd0 before, $fd1 after"; ls -l /proc/"$apid"/fd; ok=0; }
if [ $ok = 0 ]; then echo "--- npactl errors:"; tail -5 "$dir/npactl.err"; echo "--- agent log:"; tail -40 "$dir/agent.log"; echo "--- guest stderr:"; tail -20 "$dir/guest.err"; fi
[ $ok = 1 ] && echo "PASS: restart after SIG$SIG under traffic: resumed in ${gap} ms, 0 lost"
[ $ok = 1 ]
