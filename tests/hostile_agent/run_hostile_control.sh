#!/usr/bin/env bash
# Hostile peers of npa-agent's control socket (npa-control-peer), against the
# real binary: a peer that never reads while the agent answers it (a second
# session's round trips must stay fast, the reader is cut off), half-open
# sessions and a half-negotiated guest (timed out), a connection flood from
# one pid (over the cap: Error LIMIT), fd floods and regions over the memory
# bound. The agent's fd count (/proc/PID/fd) and RSS are taken before the
# attacks and after them; the fd count must come back exactly, RSS within
# 8 MiB (16 under ASan), and the repeated flood adds at most 2 MiB (4). Every socket lives in a fresh temp dir, removed at exit.
# Usage: run_hostile_control.sh BUILD_DIR
set -u
B=$1
AGENT=$B/hypervisor/daemon/npa-agent; PEER=$B/tests/hostile_agent/npa-control-peer
for x in "$AGENT" "$PEER"; do [ -x "$x" ] || { echo "missing $x"; exit 1; }; done
dir=$(mktemp -d /tmp/npa-hostile-control.XXXXXX)
apid=; tpid=
cleanup() {
  local p
  for p in $apid $tpid; do
    kill "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
CAP=8
# Under ASan, freed memory waits in a quarantine (256 MiB by default) before
# reuse, which reads as RSS growth; without it the figure means what it
# means in a plain build. Appended: a caller's options still apply.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
timeout -k 5 150 "$AGENT" --control "$dir/agent.ctl" --mode sink --name hostile-control \
  --max-sessions-per-pid $CAP --hello-timeout 1000 --negotiate-timeout 4000 \
  >"$dir/agent.log" 2>&1 &
tpid=$!
for _ in $(seq 100); do [ -S "$dir/agent.ctl" ] && break; sleep 0.05; done
apid=$(pgrep -P "$tpid" | head -1)  # the agent, child of timeout(1)
[ -n "$apid" ] || { echo "FAIL: no agent process under timeout pid $tpid"; exit 1; }
[ -S "$dir/agent.ctl" ] || { echo "FAIL: the agent did not start"; cat "$dir/agent.log"; exit 1; }
nfd() { ls /proc/"$apid"/fd 2>/dev/null | wc -l; }
rss() { awk '/^VmRSS/ {print $2}' /proc/"$apid"/status 2>/dev/null; }
sleep 0.2
fd0=$(nfd); rss0=$(rss)
ok=1
run() {  # name, then npa-control-peer arguments
  local name=$1; shift
  timeout -k 5 60 "$PEER" --control "$dir/agent.ctl" "$@" >"$dir/$name.out" 2>&1
  local rc=$?
  echo "--- $name (exit $rc): $(cat "$dir/$name.out")"
  [ $rc = 0 ] || ok=0
}
run noread    --attack noread --seconds 3 --max-rtt-ms 500 --timeout-ms 5000
rssA=$(rss)  # after the first flood: what a repeat must not add to
run halfopen  --attack halfopen --count 6 --timeout-ms 8000
run connflood --attack connflood --count 20 --cap $CAP
run fdflood   --attack fdflood --count 20 --timeout-ms 3000
run noread2   --attack noread --seconds 3 --max-rtt-ms 500 --timeout-ms 5000
# The agent closes what the attacks left; wait for its fd count to settle.
for _ in $(seq 100); do [ "$(nfd)" -le "$fd0" ] && break; sleep 0.05; done
fd1=$(nfd); rss1=$(rss)
alive=0; kill -0 "$apid" 2>/dev/null && alive=1
echo "--- agent alive: $alive; fds before $fd0, after $fd1; RSS before ${rss0} KiB, after the first flood ${rssA} KiB, at the end ${rss1} KiB"
echo "--- the agent's lines about the attacks:"
grep -E "does not read|limit|LIMIT|within|FD_MISMATCH|max_guest_memory|memfd" "$dir/agent.log" | head -12
[ "$alive" = 1 ] || { echo "FAIL: the agent died"; tail -20 "$dir/agent.log"; ok=0; }
[ "$fd1" = "$fd0" ] || { echo "FAIL: the agent holds $((fd1 - fd0)) more fds"; ls -l /proc/"$apid"/fd; ok=0; }
# The bound on total growth covers first-use allocations (the allocator's
# arenas, the session table); a sanitizer's allocator keeps more of them.
# The repeated flood is the leak check: it must add (nearly) nothing.
bound=8192; repeat=2048
ldd "$AGENT" 2>/dev/null | grep -q libasan && { bound=16384; repeat=4096; }
[ -n "$rss1" ] && [ $((rss1 - rss0)) -le $bound ] || { echo "FAIL: RSS grew by $((rss1 - rss0)) KiB (bound $bound)"; ok=0; }
[ $((rss1 - rssA)) -le $repeat ] || { echo "FAIL: RSS grew by $((rss1 - rssA)) KiB between the first flood and its repeat"; ok=0; }
grep -q "does not read" "$dir/agent.log" || { echo "FAIL: no log line names the non-reading peer"; ok=0; }
[ $ok = 1 ] && echo "PASS: every hostile control peer was bounded; fds and RSS flat"
[ $ok = 1 ]
