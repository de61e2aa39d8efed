#!/usr/bin/env bash
# Hostile guests against the real npa-agent, while a good guest keeps its
# traffic: the good guest (libnpa_shell, control socket) streams frames that
# the agent reflects (--mode loopback); meanwhile npa-evil-guest runs every
# attack (descriptors outside its regions, looping chains, out-of-range
# indices, malformed messages, ...) on the agent's vhost-user socket, one
# session each, and npa-shrink-guest runs the "shrink" attack over the control
# socket (unsealed memfds in RegionAnnounce and SET_MEM_TABLE, which a guest
# could later shrink to SIGBUS the agent: both refused; a sealed one accepted
# and unshrinkable). Passes when every attacked session is closed with a logged
# reason, the agent survives, and the good guest loses nothing. Then the plain
# vhost-user listener is checked both ways: unsealed memory accepted by
# default (DPDK/QEMU do not seal), refused by a second agent started with
# --require-sealed-memory.
# Usage: run_hostile_agent.sh BUILD_DIR
set -u
B=$1
AGENT=$B/hypervisor/daemon/npa-agent; NPACTL=$B/hypervisor/npactl/npactl
EVIL=$B/tests/hostile/npa-evil-guest; GOOD=$B/tests/hostile_agent/npa-loopback-guest
SHRINK=$B/tests/hostile_agent/npa-shrink-guest
for x in "$AGENT" "$NPACTL" "$EVIL" "$GOOD" "$SHRINK"; do [ -x "$x" ] || { echo "missing $x"; exit 1; }; done
dir=$(mktemp -d /tmp/npa-hostile.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
timeout -k 5 120 "$AGENT" --control "$dir/agent.ctl" --vhost-user "$dir/vhost.sock" --mode loopback \
  --name hostile-test >"$dir/agent.log" 2>&1 &
apid=$!; pids+=($apid)
for _ in $(seq 100); do [ -S "$dir/agent.ctl" ] && [ -S "$dir/vhost.sock" ] && break; sleep 0.05; done
timeout -k 5 60 "$GOOD" --control "$dir/agent.ctl" --rate 20000 --seconds 8 --drain 10 >"$dir/good.out" 2>"$dir/good.err" &
gpid=$!; pids+=($gpid)
sleep 1
nattacks=$(( $("$EVIL" --list | wc -l) + 1 ))  # + shrink (npa-shrink-guest)
echo "running $nattacks attacks against npa-agent while the good guest streams"
timeout -k 5 30 "$SHRINK" --control "$dir/agent.ctl" >"$dir/shrink.out" 2>&1
src=$?
timeout -k 5 90 "$EVIL" --socket "$dir/vhost.sock" --agent-pid "$apid" --attack all --timeout-ms 3000 >"$dir/evil.out" 2>&1
erc=$?
timeout -k 5 30 "$SHRINK" --vhost-user "$dir/vhost.sock" --expect accepted >"$dir/shrink-plain.out" 2>&1
prc=$?
wait "$gpid"; grc=$?
alive=0; kill -0 "$apid" 2>/dev/null && alive=1
"$NPACTL" --socket "$dir/agent.ctl.admin" agent >"$dir/npactl.out" 2>&1; nrc=$?
closed=$(grep -c "closed\|broken\|rejected" "$dir/agent.log" || true)
echo "--- attacks (npa-evil-guest exit $erc)"; cat "$dir/evil.out"
echo "--- attack shrink (npa-shrink-guest exit $src)"; cat "$dir/shrink.out"
echo "--- plain vhost-user, default (exit $prc)"; cat "$dir/shrink-plain.out"
echo "--- good guest (exit $grc): $(cat "$dir/good.out")"
echo "--- agent alive: $alive, npactl exit $nrc, log lines naming a closed/broken session: $closed"
echo "--- sample of the agent's reasons:"; grep -E "closed|broken|rejected" "$dir/agent.log" | head -8
# A second agent with --require-sealed-memory: plain vhost-user front ends
# must seal too. Started after the first one's checks so both are not up at once.
timeout -k 5 60 "$AGENT" --control "$dir/agent2.ctl" --vhost-user "$dir/vhost2.sock" --mode sink \
  --name hostile-sealed --require-sealed-memory >"$dir/agent2.log" 2>&1 &
a2pid=$!; pids+=($a2pid)
for _ in $(seq 100); do [ -S "$dir/vhost2.sock" ] && break; sleep 0.05; done
timeout -k 5 30 "$SHRINK" --vhost-user "$dir/vhost2.sock" --expect refused >"$dir/shrink-req.out" 2>&1
rrc=$?
sleep 0.2
alive2=0; kill -0 "$a2pid" 2>/dev/null && alive2=1
sealed_log=$(grep -c "not sealed against shrinking" "$dir/agent2.log" || true)
echo "--- plain vhost-user, --require-sealed-memory (exit $rrc, agent alive $alive2, log lines $sealed_log)"
cat "$dir/shrink-req.out"
ok=1
[ "$erc" = 0 ] || { echo "FAIL: some attacked session was not closed"; ok=0; }
[ "$src" = 0 ] || { echo "FAIL: attack shrink: unsealed memory was not refused as it must be"; ok=0; }
[ "$prc" = 0 ] || { echo "FAIL: plain vhost-user with unsealed memory must still work by default"; ok=0; }
[ "$rrc" = 0 ] && [ "$alive2" = 1 ] && [ "$sealed_log" -ge 1 ] ||
  { echo "FAIL: --require-sealed-memory did not refuse unsealed plain vhost-user memory"; tail -5 "$dir/agent2.log"; ok=0; }
[ "$grc" = 0 ] || { echo "FAIL: the good guest lost traffic"; cat "$dir/good.err"; ok=0; }
[ "$alive" = 1 ] && [ "$nrc" = 0 ] || { echo "FAIL: the agent did not survive"; tail -20 "$dir/agent.log"; ok=0; }
[ "$closed" -ge "$nattacks" ] || { echo "FAIL: only $closed logged closures for $nattacks attacks"; ok=0; }
[ $ok = 1 ] && echo "PASS: $nattacks hostile sessions closed with reasons; the good guest lost nothing"
[ $ok = 1 ]
