#!/usr/bin/env bash
# npa's own front end (libnpa_shell, via tests/interop_vhost's client) against
# npa's back end (VhostDevice in vhost_echo_server --macswap).
# Usage: run_shell_interop.sh ECHO_SERVER SHELL_CLIENT QUEUES [FRAMES]
set -u
server=$1; client=$2; q=$3; frames=${4:-20000}
dir=$(mktemp -d /tmp/npa-shell-agent.XXXXXX)
sock=$dir/vhost.sock
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
timeout 90 "$server" --socket "$sock" --seconds 80 --connections 1 --macswap &
spid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "echo server did not listen"; exit 1; }
timeout 75 "$client" "$sock" "$q" "$frames"
crc=$?
wait "$spid"; src=$?; spid=
echo "shell client exit $crc, server exit $src"
[ "$crc" -eq 0 ] && [ "$src" -eq 0 ]
