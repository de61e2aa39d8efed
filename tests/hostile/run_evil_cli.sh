#!/usr/bin/env bash
# npa-evil-guest (every attack, one connection each) against the VhostDevice
# echo server: every attacked session must be closed by the back end, and
# the server must survive all of them. Usage: run_evil_cli.sh SERVER EVIL
set -u
server=$1; evil=$2
dir=$(mktemp -d /tmp/npa-evil.XXXXXX)
sock=$dir/vhost.sock
cleanup() { [ -n "${spid:-}" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
n=$("$evil" --list | wc -l)
timeout 100 "$server" --socket "$sock" --seconds 90 --connections "$n" --keep-going 2>"$dir/server.log" &
spid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
timeout 90 "$evil" --socket "$sock" --attack all --timeout-ms 3000
erc=$?
wait "$spid"; src=$?; spid=
echo "evil-guest exit $erc, server exit $src"
[ "$src" -eq 0 ] || tail -20 "$dir/server.log"
[ "$erc" -eq 0 ] && [ "$src" -eq 0 ]
