#!/bin/bash
# scripts/bench-migration.sh — issue 8 part 4 on the host itself: the same
# move as the lab's, between two npa-agent processes on this host, emulated
# path on both sides (no VF, no TCG). A real shell (npa-migration-guest,
# libnpa_shell) streams sequence-numbered frames through agent A in loopback
# mode; `npactl migrate` moves it to agent B (mutual TLS, certificates made
# here with openssl); the guest checks every frame came back once.
#
#   scripts/bench-migration.sh [--build DIR] [--rate N] [--seconds S] [--no-build] [--keep]
#
# As root the guest's memory is on 2 MB hugepages (16 are reserved for the
# run and given back after; NPA_BENCH_NO_HUGEPAGES=1: 4K pages); "hugepages"
# in the JSON says which the shell got.
# --keep leaves the run's directory (agents' logs a.log/b.log, the guest's
# guest.out/guest.err, all with CLOCK_MONOTONIC stamps) and prints its path.
#
# The last line is one JSON object (docs/migration.md has the figures):
#   {"bench":"migration","from":"emulated","to":"emulated","lost_rx":..,
#    "lost_tx":..,"duplicated":..,"reordered":..,"blackout_ms":..,
#    "mig_rx_gap_ms":..,"mig_tx_gap_ms":..,"worst_gap_ms":..,"rx_gap_ms":..,
#    "tx_gap_ms":..,"phases_ms":{..},"total_ms":..,"rarp_after_live_us":..,
#    "hugepages":..,"rings_stopped_us":..}
# blackout_ms is the move's: the longer of the RX and TX gaps around the
# moment the shell resumed on B (mig_*_gap_ms). worst_gap_ms is the longest
# gap anywhere in the run, the machine's scheduling noise included.
# rings_stopped_us is the shell's own figure: from its rings' stop on A to
# their resume on B.
# As root, agent B also gets a TAP uplink (npabm<pid>) and the script times
# B's first RARP on it: "rarp_after_live_us" is the kernel's receive stamp of
# the first RARP frame on the TAP (AF_PACKET, SO_TIMESTAMPNS) minus the moment
# B logged the guest RUNNING ("resumed, RUNNING"; log stamps are
# CLOCK_MONOTONIC, the realtime stamp is moved to it by the offset read in the
# sniffer). Issue 8's target is 1 ms. Without root it is null.
# In loopback mode a frame crosses the guest's TX and RX once each, so the
# guest's round-trip count is reported in both lost_tx and lost_rx (a frame
# lost on either side is missing once). Exit 0 if 0 lost and 0 duplicated.
set -u
BUILD=build RATE=20000 SECONDS_=6 DO_BUILD=1 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --seconds) SECONDS_=$2; shift ;;
    --no-build) DO_BUILD=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n 2,36p "$0"; exit 0 ;;
    *) echo "bench-migration: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$DO_BUILD" = 1 ]; then
  ninja -C "$BUILD" npa-agent npactl npa-migration-guest >/dev/null || exit 1
fi
AGENT=$BUILD/hypervisor/daemon/npa-agent NPACTL=$BUILD/hypervisor/npactl/npactl
GUEST=$BUILD/tests/migration/npa-migration-guest
for b in "$AGENT" "$NPACTL" "$GUEST"; do [ -x "$b" ] || { echo "bench-migration: $b missing" >&2; exit 1; }; done

DIR=$(mktemp -d /tmp/npa-bench-mig.XXXXXX)
PIDS=()
TAP=""
[ "$(id -u)" = 0 ] && TAP="npabm$(($$ % 100000))"
# As root, 2 MB hugepages for the guest's memory, as VMs are deployed (the
# shell takes them when the pool has room, else 4K pages; the JSON says
# which). It matters here: B maps the guest's memory during the blackout,
# and on a nested-virtualisation host each first touch of a 4K page through
# a new mapping costs about 5 us, 2 MB pages about 0.3 ms each (docs/migration.md).
HUGE_ORIG=""
if [ "$(id -u)" = 0 ] && [ "${NPA_BENCH_NO_HUGEPAGES:-0}" != 1 ]; then
  free_huge=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
  if [ "${free_huge:-0}" -lt 16 ]; then
    HUGE_ORIG=$(cat /proc/sys/vm/nr_hugepages)
    echo $((HUGE_ORIG + 16)) >/proc/sys/vm/nr_hugepages 2>/dev/null || HUGE_ORIG=""
  fi
fi
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "$TAP" ] && ip link del "$TAP" 2>/dev/null
  if [ "$KEEP" = 1 ]; then echo "bench-migration: kept $DIR" >&2; else rm -rf "$DIR"; fi
  [ -n "$HUGE_ORIG" ] && echo "$HUGE_ORIG" >/proc/sys/vm/nr_hugepages 2>/dev/null
}
trap cleanup EXIT

# Certificates: one CA, one per agent (EC P-256), SAN 127.0.0.1.
cert() {  # name
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$DIR/$1.key" -out "$DIR/$1.csr" 2>/dev/null &&
  openssl x509 -req -in "$DIR/$1.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
    -days 1 -sha256 -extfile <(printf "subjectAltName=IP:127.0.0.1,DNS:localhost\n") \
    -out "$DIR/$1.pem" 2>/dev/null
}
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=npa-bench-ca" \
  -days 1 -keyout "$DIR/ca.key" -out "$DIR/ca.pem" 2>/dev/null && cert agent-a && cert agent-b ||
  { echo "bench-migration: openssl could not make the certificates" >&2; exit 1; }

PORT=$((20000 + ($$ % 20000)))
tls() { echo --tls-cert "$DIR/$1.pem" --tls-key "$DIR/$1.key" --tls-ca "$DIR/ca.pem"; }
"$AGENT" --control "$DIR/a.sock" --mode loopback --name agent-a $(tls agent-a) \
  --log-level info 2>"$DIR/a.log" &
PIDS+=($!)
"$AGENT" --control "$DIR/b.sock" --mode loopback --name agent-b $(tls agent-b) ${TAP:+--tap $TAP} \
  --migration-listen "127.0.0.1:$PORT" --log-level info 2>"$DIR/b.log" &
PIDS+=($!)
for i in $(seq 100); do
  [ -S "$DIR/a.sock.admin" ] && [ -S "$DIR/b.sock.admin" ] && break
  sleep 0.05
done
if [ -n "$TAP" ]; then
  # The first RARP (ethertype 0x8035) on B's TAP: its kernel stamp, moved to
  # CLOCK_MONOTONIC. Bounded: gives up after SECONDS_ + 10 s.
  python3 - "$TAP" "$((SECONDS_ + 10))" >"$DIR/rarp.out" 2>&1 <<'PY' &
import socket, struct, sys, time
tap, limit = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
s.bind((tap, 0x8035))
s.settimeout(limit)
print("ready", flush=True)
try:
    data, anc, _, _ = s.recvmsg(2048, 64)
except socket.timeout:
    print("none"); sys.exit(0)
off = time.clock_gettime(time.CLOCK_MONOTONIC) - time.clock_gettime(time.CLOCK_REALTIME)
for level, kind, raw in anc:
    if level == socket.SOL_SOCKET and kind == 35:
        sec, nsec = struct.unpack("qq", raw[:16])
        print("%.6f" % (sec + nsec / 1e9 + off))
PY
  PIDS+=($!)
  for i in $(seq 100); do grep -q ready "$DIR/rarp.out" 2>/dev/null && break; sleep 0.05; done
fi
"$GUEST" --control "$DIR/a.sock" --rate "$RATE" --seconds "$SECONDS_" --name mig-guest \
  >"$DIR/guest.out" 2>"$DIR/guest.err" &
GPID=$!
PIDS+=($GPID)
# Move it in the middle of the stream.
for i in $(seq 100); do
  "$NPACTL" --socket "$DIR/a.sock.admin" --json guests 2>/dev/null | grep -q '"RUNNING"' && break
  sleep 0.05
done
sleep "$(awk -v s="$SECONDS_" 'BEGIN{print s / 3}')"
"$NPACTL" --socket "$DIR/a.sock.admin" --json migrate mig-guest --to "127.0.0.1:$PORT" \
  >"$DIR/migrate.json" 2>"$DIR/migrate.err"
MRC=$?
wait "$GPID"
GRC=$?
echo "--- npactl migrate (exit $MRC):"; cat "$DIR/migrate.json" "$DIR/migrate.err"
echo "--- guest (exit $GRC):"; cat "$DIR/guest.out" "$DIR/guest.err"
if [ "$MRC" != 0 ] || [ "$GRC" != 0 ]; then
  echo "--- agent A log (tail):"; tail -n 25 "$DIR/a.log"
  echo "--- agent B log (tail):"; tail -n 25 "$DIR/b.log"
fi
sleep 0.2  # the RARP follows RUNNING by well under this
python3 - "$DIR/guest.out" "$DIR/migrate.json" "$DIR/b.log" "$DIR/rarp.out" "$DIR/guest.err" <<'PY'
import json, os, re, sys
g = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
try:
    m = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
except Exception:
    m = {"phases": [], "error": {"message": "no reply"}}
phases = {p["name"]: round(p["duration_us"] / 1000.0, 3) for p in m.get("phases", [])}
out = {"bench": "migration", "from": "emulated", "to": "emulated",
       "lost_rx": g["lost"], "lost_tx": g["lost"], "duplicated": g["duplicated"],
       "reordered": g["reordered"],
       "blackout_ms": max(g.get("mig_rx_gap_ms", 0), g.get("mig_tx_gap_ms", 0)),
       "mig_rx_gap_ms": g.get("mig_rx_gap_ms"), "mig_tx_gap_ms": g.get("mig_tx_gap_ms"),
       "worst_gap_ms": max(g["rx_gap_ms"], g["tx_gap_ms"]),
       "rx_gap_ms": g["rx_gap_ms"], "tx_gap_ms": g["tx_gap_ms"], "phases_ms": phases,
       "total_ms": round(m.get("total_us", 0) / 1000.0, 3), "migrated": g["migrated"],
       "state": m.get("state", ""), "sent": g["sent"]}
rarp_us = None
try:
    live = [float(l.split()[0]) for l in open(sys.argv[3]) if "resumed, RUNNING" in l]
    first = [float(l) for l in open(sys.argv[4]) if re.match(r"^[0-9.]+$", l.strip())]
    if live and first:
        rarp_us = round((first[0] - live[0]) * 1e6, 1)
except OSError:
    pass
out["rarp_after_live_us"] = rarp_us
try:
    gerr = open(sys.argv[5]).read()
    out["hugepages"] = "no 2 MB hugepages" not in gerr
    # The shell's own figure: its rings stopped on A until they run on B.
    r = re.search(r"rings resumed ([0-9]+) us after they stopped", gerr)
    out["rings_stopped_us"] = int(r.group(1)) if r else None
except OSError:
    out["hugepages"] = None
if "error" in m:
    out["error"] = m["error"].get("message", "")
print(json.dumps(out, separators=(",", ":")))
PY
[ "$MRC" = 0 ] && [ "$GRC" = 0 ]
