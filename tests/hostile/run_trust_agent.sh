#!/usr/bin/env bash
# The trust attacks of npa-evil-guest (issue 9: guest memory over the cap or
# on a disk file, thousands of kick fd replacements, long chains of
# zero-length descriptors with constant kicks; the packed-ring attacks) against the real npa-agent
# (--mode loopback), while npa-loopback-guest streams sequence-numbered
# frames through the same dataplane. Passes when: the memory attacks are
# refused with their reason, the legal-but-expensive ones are served without
# the agent's fd count growing (--agent-pid), the good guest loses nothing,
# and the agent's fd count after everything is what it was before.
# Usage: run_trust_agent.sh BUILD_DIR. Unique temp dir; no fixed names.
set -u
B=$1
AGENT=$B/hypervisor/daemon/npa-agent
EVIL=$B/tests/hostile/npa-evil-guest; GOOD=$B/tests/hostile_agent/npa-loopback-guest
for x in "$AGENT" "$EVIL" "$GOOD"; do [ -x "$x" ] || { echo "missing $x"; exit 1; }; done
dir=$(mktemp -d /tmp/npa-trust.XXXXXX)
apid=; gpid=
cleanup() {
  [ -n "$gpid" ] && kill "$gpid" 2>/dev/null
  [ -n "$apid" ] && kill "$apid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
timeout -k 5 110 "$AGENT" --control "$dir/agent.ctl" --vhost-user "$dir/vhost.sock" --mode loopback \
  --name trust-test >"$dir/agent.log" 2>&1 &
apid=$!
for _ in $(seq 100); do [ -S "$dir/agent.ctl" ] && [ -S "$dir/vhost.sock" ] && break; sleep 0.05; done
fds0=$(ls /proc/$apid/fd | wc -l)
timeout -k 5 60 "$GOOD" --control "$dir/agent.ctl" --rate 20000 --seconds 14 --drain 10 >"$dir/good.out" 2>"$dir/good.err" &
gpid=$!
sleep 1
rc=0
# Then the packed-ring attacks (VIRTIO 1.1 2.8; tests/hostile/evil_packed.cc):
# ring violations must break and close that guest only, the zero-length
# chains must be served lap after lap.
attacks="mem-over-cap mem-disk-file kick-replace-flood zero-len-chains max-chains"
attacks="$attacks $("$EVIL" --list | awk '/^packed-/ {print $1}')"
for a in $attacks; do
  timeout -k 5 60 "$EVIL" --socket "$dir/vhost.sock" --attack "$a" --timeout-ms 3000 --agent-pid "$apid" \
    >>"$dir/evil.out" 2>&1 || rc=1
done
wait "$gpid"; grc=$?; gpid=
sleep 0.5
alive=0; kill -0 "$apid" 2>/dev/null && alive=1
fds1=$(ls /proc/$apid/fd 2>/dev/null | wc -l)
echo "--- attacks (exit $rc)"; cat "$dir/evil.out"
echo "--- good guest (exit $grc): $(cat "$dir/good.out")"
echo "--- agent alive $alive, fds before $fds0 after $fds1"
echo "--- the agent's reasons:"; grep -E "cap|memfd|closed|broken" "$dir/agent.log" | head -6
ok=1
[ "$rc" = 0 ] || { echo "FAIL: an attack was not handled as it must be"; ok=0; }
[ "$grc" = 0 ] || { echo "FAIL: the good guest lost, reordered or corrupted frames"; cat "$dir/good.err"; ok=0; }
[ "$alive" = 1 ] || { echo "FAIL: the agent died"; tail -20 "$dir/agent.log"; ok=0; }
[ "$fds1" -le "$fds0" ] || { echo "FAIL: the agent holds $((fds1 - fds0)) more fds"; ls -l /proc/$apid/fd; ok=0; }
grep -q -- "--max-guest-memory" "$dir/agent.log" || { echo "FAIL: no over-cap refusal in the agent's log"; ok=0; }
[ $ok = 1 ] && echo PASS
[ $ok = 1 ]
