#!/usr/bin/env bash
# npa demo.
#
# Default: the whole story in the lab (issues 8 and 9). A small Debian guest
# boots under QEMU with a virtual IOMMU (tests/lab/run_lab.sh); inside it two
# hosts, A and B, each an npa-agent in its own network namespace with its own
# uplink, hang off one learning Linux bridge (the top-of-rack switch) beside a
# traffic peer. A guest on libnpa_shell streams numbered UDP both ways with the
# peer while it runs on A's virtio-net VF (the virtio_net plug-in), is revoked
# to A's emulated path, migrates to B (npactl migrate) and lands on B's e1000e
# VF (the e1000e plug-in); the switch follows each move, and every datagram
# arrives exactly once (scenario migrate).
# --host-a: host A only (scenario mac_steer): emulated -> virtio-net VF ->
#   planned revoke -> VF again, behind the learning switch.
# A live timeline (host, path, plug-in, datagrams each way, lost) is printed
# four times a second, then the per-phase table and the loss figures (and,
# for the story, the JSON line). Without the agents' migration support in the
# build, the story stops at A like --host-a, and says so.
#
# --quick: the emulated-only demo, no VM: a guest driver on libnpa_shell talks
# to a peer host through npa-agent's virtio rings (vhost-user), its
# MAC-learning switch and a TAP uplink: ARP, ping, and a sequence-numbered UDP
# stream each way, checked for loss, order and content.
#
#   peer netns                 host netns
#   [npa-udp-peer]--veth--[bridge]--TAP--[npa-agent]==vhost-user==[npa-guest-demo]
#    192.0.2.1                                                       192.0.2.2
#
# Usage: bash scripts/demo.sh [--host-a | --quick | --emulated] [--duration S] [--rate N] [--build-dir DIR]
#   --host-a      host A only in the lab (above); --story is the default
#   --emulated    the emulated-only demo at full length (--quick is its short run)
# Everything it creates is removed at exit.
# Exit: 0 the story passed (no loss either way); 1 a check failed; 2 usage.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
DURATION=12
RATE=5000
QUICK=0
EMULATED=0
STORY=1
while [ $# -gt 0 ]; do
  case "$1" in
    --story) STORY=1; shift ;;
    --host-a) STORY=0; shift ;;
    --quick) QUICK=1; EMULATED=1; DURATION=7; shift ;;
    --emulated) EMULATED=1; shift ;;
    --duration) DURATION="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --build-dir) BUILD="$2"; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces, TAP)" >&2; exit 2; }

say() { printf '\033[1m[demo %5.1fs]\033[0m %s\n' "$(echo "$EPOCHREALTIME - $T0" | bc)" "$*"; }
T0=$EPOCHREALTIME

if [ -z "${NPA_SKIP_DEPS:-}" ]; then "$ROOT/scripts/install-deps.sh"; fi

# ------------------------------------------------------------ the lab story
if [ $EMULATED = 0 ]; then
  if [ -z "${NPA_NO_BUILD:-}" ]; then
    say "building the lab's programs and plug-ins into $BUILD"
    [ -f "$BUILD/build.ninja" ] || cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    ninja -C "$BUILD" npa-lab-vf-probe npa_vf_test copy_npa-lab-agent copy_npa-lab-npactl npa-lab-story \
      npa_plugin_virtio_net npa_plugin_e1000e >/dev/null
  fi
  if [ $STORY = 0 ]; then
    SCN=mac_steer
    say "host A behind the learning switch: emulated -> virtio-net VF -> revoke -> VF again"
    say "(the whole migration story: bash scripts/demo.sh)"
  # The help text is read whole first: under pipefail, `--help | grep -q`
  # fails whenever grep exits before the agent's last write (SIGPIPE).
  elif [[ "$("$BUILD/tests/lab/npa-lab-agent" --help 2>&1)" == *--migration-listen* ]]; then
    SCN=migrate
    say "the story: host A, virtio-net VF -> revoke -> migrate to host B -> e1000e VF"
  else
    SCN=mac_steer
    say "this build's agent has no migration listener (npa-agent --migration-listen):"
    say "the story stops at host A: virtio-net VF -> revoke -> VF again, behind the learning switch"
  fi
  say "booting the lab VM (QEMU TCG, virtual IOMMU; tests/lab/run_lab.sh, topology in docs/vfio-lab.md)"
  set +e
  NPA_LAB_TIMEOUT="${NPA_LAB_TIMEOUT:-420}" "$ROOT/tests/lab/run_lab.sh" --build-dir "$BUILD" \
    --scenario "$SCN" --live 2>"$BUILD/demo-lab.err" | while IFS= read -r l; do
      case "$l" in
        ">>> "*) say "${l#>>> }" ;;
        "MIGRATION_JSON "*) echo; say "JSON (docs/vfio-lab.md):"; echo "${l#MIGRATION_JSON }" ;;
        "LAB: "*|*" passed, "*" failed") echo; say "$l" ;;
        *) echo "$l" ;;
      esac
    done
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" = 0 ]; then say "PASS: every datagram each way arrived exactly once"; exit 0; fi
  say "FAIL (run_lab.sh exit $rc); its log:"; tail -40 "$BUILD/demo-lab.err"
  exit 1
fi

if [ ! -x "$BUILD/hypervisor/daemon/npa-agent" ] || [ ! -x "$BUILD/tests/demo/npa-guest-demo" ] || [ -z "${NPA_NO_BUILD:-}" ]; then
  say "building into $BUILD"
  [ -f "$BUILD/build.ninja" ] || cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$BUILD" npa-agent npactl npa-guest-demo npa-udp-peer >/dev/null
fi

AGENT="$BUILD/hypervisor/daemon/npa-agent"
NPACTL="$BUILD/hypervisor/npactl/npactl"
GUEST="$BUILD/tests/demo/npa-guest-demo"
PEER="$BUILD/tests/demo/npa-udp-peer"

ID=$$
HOSTNS="npademo-host-$ID"
PEERNS="npademo-peer-$ID"
RUN="$(mktemp -d /tmp/npa-demo.XXXXXX)"
CTL="$RUN/agent.ctl"
TAP="npatap$((ID % 100000))"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$PEERNS" 2>/dev/null || true
  ip netns del "$HOSTNS" 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

say "creating network namespaces $HOSTNS and $PEERNS, veth and bridge"
ip netns add "$HOSTNS"
ip netns add "$PEERNS"
ip -n "$HOSTNS" link add vh type veth peer name vp netns "$PEERNS"
ip -n "$HOSTNS" link add br0 type bridge
ip -n "$HOSTNS" link set br0 up
ip -n "$HOSTNS" link set vh master br0 up
ip -n "$HOSTNS" link set lo up
ip -n "$PEERNS" link set lo up
ip -n "$PEERNS" addr add 192.0.2.1/24 dev vp
ip -n "$PEERNS" link set vp up

say "starting npa-agent with TAP uplink $TAP in $HOSTNS"
ip netns exec "$HOSTNS" "$AGENT" --control "$CTL" --tap "$TAP" --name demo-agent \
  >"$RUN/agent.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [ -S "$CTL" ] && break; sleep 0.05; done
[ -S "$CTL" ] || { cat "$RUN/agent.log"; echo "demo: agent did not start" >&2; exit 1; }
for _ in $(seq 1 100); do ip -n "$HOSTNS" link show "$TAP" >/dev/null 2>&1 && break; sleep 0.05; done
ip -n "$HOSTNS" link set "$TAP" master br0 up

# The UDP stream takes about half the run, leaving time for ARP, ping and draining.
COUNT=$(( RATE * (DURATION - 5) ))
[ "$COUNT" -gt 0 ] || COUNT=$RATE
say "starting the guest (npa-guest-demo, 192.0.2.2) on the agent's control socket"
"$GUEST" --control "$CTL" --ip 192.0.2.2 --peer-ip 192.0.2.1 --count "$COUNT" --expect "$COUNT" \
  --rate "$RATE" --duration "$DURATION" >"$RUN/guest.out" 2>"$RUN/guest.err" &
GPID=$!
PIDS+=($GPID)
for _ in $(seq 1 100); do grep -q "guest up" "$RUN/guest.out" 2>/dev/null && break; sleep 0.05; done
grep "guest up" "$RUN/guest.out" || { cat "$RUN/guest.err" "$RUN/agent.log"; echo "demo: guest did not come up" >&2; exit 1; }

say "ARP + ping from the peer to the guest"
ip netns exec "$PEERNS" ping -c 3 -i 0.2 -W 2 192.0.2.2 | sed 's/^/    /'
ip -n "$PEERNS" neigh show 192.0.2.2 | sed 's/^/    peer ARP cache: /'

say "UDP: $COUNT datagrams each way at $RATE/s, checked for loss, order and content"
ip netns exec "$PEERNS" "$PEER" --bind 192.0.2.1:9000 --to 192.0.2.2:9000 --count "$COUNT" \
  --expect "$COUNT" --rate "$RATE" --duration "$((DURATION - 2))" >"$RUN/peer.out" 2>"$RUN/peer.err" &
PPID_=$!
PIDS+=($PPID_)
# Per-second counters from both ends, side by side, while the stream runs.
shown_g=0; shown_p=0; ticks=0
while kill -0 "$GPID" 2>/dev/null || kill -0 "$PPID_" 2>/dev/null; do
  sleep 1
  ticks=$((ticks + 1))
  if [ $ticks = 2 ]; then  # the agent's view while the stream runs
    say "agent's view mid-stream (npactl guests; npactl --json guests saved):"
    "$NPACTL" --socket "$CTL.admin" guests 2>&1 | sed 's/^/    /' || true
    "$NPACTL" --socket "$CTL.admin" --json guests >"$RUN/npactl.json" 2>&1 || true
  fi
  ng=$(grep -c '^guest t=' "$RUN/guest.out" || true); np=$(grep -c '^peer  t=' "$RUN/peer.out" || true)
  [ "$ng" -gt "$shown_g" ] && { grep '^guest t=' "$RUN/guest.out" | tail -n +$((shown_g + 1)) | sed 's/^/    /'; shown_g=$ng; }
  [ "$np" -gt "$shown_p" ] && { grep '^peer  t=' "$RUN/peer.out" | tail -n +$((shown_p + 1)) | sed 's/^/    /'; shown_p=$np; }
done
set +e
wait "$GPID"; grc=$?
wait "$PPID_"; prc=$?
set -e

say "agent's counters at the end (npactl agent):"
"$NPACTL" --socket "$CTL.admin" agent 2>&1 | sed 's/^/    /' || true

GSUM=$(grep '^{' "$RUN/guest.out" | tail -1)
PSUM=$(grep '^{' "$RUN/peer.out" | tail -1)
say "guest summary: $GSUM"
say "peer  summary: $PSUM"
if [ "$grc" = 0 ] && [ "$prc" = 0 ]; then
  say "PASS: ARP, ping and $COUNT UDP datagrams each way, zero loss, in order, intact"
  exit 0
fi
echo "--- guest stderr"; cat "$RUN/guest.err"; echo "--- peer stderr"; cat "$RUN/peer.err"
echo "--- agent log (last 30 lines)"; tail -30 "$RUN/agent.log"
say "FAIL (guest exit $grc, peer exit $prc)"
exit 1
