#!/usr/bin/env bash
# tests/interop_vhost/run_interop.sh CLIENT QUEUES [FRAMES] [RING]
# Starts dpdk-testpmd with a net_vhost port reflecting frames (macswap), runs
# CLIENT (libnpa_shell in standalone vhost-user mode) against it, and stops
# only the testpmd it started. Bounded: testpmd lives at most 90 s, the client
# at most 75 s.
set -u
# RING: split, packed or auto (the client fails if the forced ring is not the
# one in use; DPDK's vhost offers VIRTIO_F_RING_PACKED and EVENT_IDX).
CLIENT=$1 Q=$2 FRAMES=${3:-20000} RING=${4:-auto}
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd not installed (Debian package dpdk)"; exit 1; }
DIR=$(mktemp -d /tmp/npa_interop_vhost.XXXXXX)
SOCK=$DIR/vhost.sock
LOG=$DIR/testpmd.log
TPID=""
cleanup() {
  if [ -n "$TPID" ]; then
    kill -INT "$TPID" 2>/dev/null      # `timeout` passes it on to its testpmd
    for _ in $(seq 1 50); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$TPID" 2>/dev/null
    wait "$TPID" 2>/dev/null
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT
# --no-huge: DPDK's memory is memfd-backed; -m 512 MB; single forwarding core.
# --stats-period keeps testpmd running with stdin at EOF (it would quit).
timeout -s INT 90 dpdk-testpmd -l 0,1 --no-pci --no-huge -m 512 --file-prefix="npaint$$" \
    --log-level=lib.vhost.config:info \
    --vdev "net_vhost0,iface=$SOCK,queues=$Q" -- \
    --forward-mode=macswap --stats-period 1 --nb-cores=1 --rxq="$Q" --txq="$Q" \
    --total-num-mbufs=16384 >"$LOG" 2>&1 </dev/null &
TPID=$!
for _ in $(seq 1 200); do
  grep -aq "Press enter to exit\|start packet forwarding\|Port statistics" "$LOG" 2>/dev/null && [ -S "$SOCK" ] && break
  kill -0 "$TPID" 2>/dev/null || break
  sleep 0.1
done
if ! [ -S "$SOCK" ]; then
  echo "testpmd did not create $SOCK:"; tail -30 "$LOG"; exit 1
fi
timeout 75 "$CLIENT" "$SOCK" "$Q" "$FRAMES" "$RING"
rc=$?
# DPDK's own word on the ring kind (lib.vhost.config:info logs the features
# the front end set): a packed run must show VIRTIO_F_RING_PACKED (bit 34).
if [ $rc -eq 0 ] && [ "$RING" = packed ]; then
  feat=$(grep -aoE "negotiated Virtio features: 0x[0-9a-f]+" "$LOG" | tail -1 | grep -oE "0x[0-9a-f]+")
  if [ -z "$feat" ]; then
    echo "testpmd's log does not show the negotiated features"; rc=1
  elif (( (feat >> 34 & 1) == 0 )); then
    echo "testpmd negotiated $feat: no VIRTIO_F_RING_PACKED"; rc=1
  else
    echo "testpmd negotiated $feat: packed ring"
  fi
fi
if [ $rc -ne 0 ]; then
  echo "---- client failed (rc $rc); testpmd log tail:"; grep -av "^ *\(RX\|TX\)-\|Throughput\|####\|^ *$\|statistics for port" "$LOG" | tail -40
fi
exit $rc
