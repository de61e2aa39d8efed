#!/usr/bin/env bash
# DPDK net_virtio_user (front end) against the real npa-agent: the agent
# listens on a plain vhost-user socket in --mode loopback (it reflects each
# guest's frames back to it) and the DPDK client checks every echoed frame.
# Usage: [EXPECT_RING=split|packed] run_agent_interop.sh NPA_AGENT CLIENT [client args...]
# EXPECT_RING: fail unless every vring the agent started was of that kind
# (its Info log line "vring N started: packed ring of ..."), so a packed run
# that silently fell back to split rings cannot pass.
set -u
agent=$1; client=$2; shift 2
expect_ring=${EXPECT_RING:-}
dir=$(mktemp -d /tmp/npa-agent-interop.XXXXXX)
sock=$dir/vhost.sock
prefix=npa-ag-$$-$RANDOM
cleanup() {
  if [ -n "${apid:-}" ]; then
    kill "$apid" 2>/dev/null
    # Bounded: a wedged agent is killed, never waited on forever.
    for _ in $(seq 50); do kill -0 "$apid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$apid" 2>/dev/null
  fi
  wait 2>/dev/null
  rm -rf "$dir" /var/run/dpdk/$prefix "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$prefix"
}
trap cleanup EXIT
timeout -k 5 90 "$agent" --control "$dir/agent.ctl" --vhost-user "$sock" --mode loopback \
  --name interop >"$dir/agent.log" 2>&1 &
apid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "npa-agent did not listen"; cat "$dir/agent.log"; exit 1; }
timeout -k 5 60 "$client" --socket "$sock" --prefix "$prefix" "$@"
crc=$?
kill -0 "$apid" 2>/dev/null; alive=$?
echo "client exit $crc, agent alive: $([ $alive = 0 ] && echo yes || echo no)"
[ "$crc" -eq 0 ] || tail -20 "$dir/agent.log"
ring_ok=0
if [ -n "$expect_ring" ]; then
  started=$(grep -c "started: $expect_ring ring" "$dir/agent.log")
  other=$(grep "started: [a-z]* ring" "$dir/agent.log" | grep -vc "started: $expect_ring ring")
  echo "agent started $started $expect_ring vrings, $other of another kind"
  grep -m2 "started: " "$dir/agent.log"
  { [ "$started" -gt 0 ] && [ "$other" -eq 0 ]; } || ring_ok=1
fi
[ "$crc" -eq 0 ] && [ "$alive" -eq 0 ] && [ "$ring_ok" -eq 0 ]
