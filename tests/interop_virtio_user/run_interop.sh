#!/usr/bin/env bash
# DPDK net_virtio_user (front end) against npa's vhost-user back end
# (vhost_echo_server). Usage: run_interop.sh ECHO_SERVER CLIENT [client args...]
# Every process is bounded by `timeout`; only the PIDs started here are ended.
set -u
server=$1; client=$2; shift 2
dir=$(mktemp -d /tmp/npa-vu-interop.XXXXXX)
sock=$dir/vhost.sock
prefix=npa-vu-$$-$RANDOM
cleanup() {
  [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$dir" /var/run/dpdk/$prefix "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$prefix"
}
trap cleanup EXIT
timeout 90 "$server" --socket "$sock" --seconds 80 --connections 1 &
spid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "echo server did not listen"; exit 1; }
timeout 60 "$client" --socket "$sock" --prefix "$prefix" "$@"
crc=$?
wait "$spid"; src=$?
spid=
echo "client exit $crc, server exit $src"
[ "$crc" -eq 0 ] && [ "$src" -eq 0 ]
