#!/bin/bash
# tests/migration/run_migration_failures.sh BUILD_DIR — issue 8 part 5 with
# the real binaries: a source whose certificate the destination does not
# trust, a source without TLS files, and an unknown guest. Each is refused
# with a clear error and the guest goes on streaming on A with 0 lost.
# Per-run paths and port: may run beside other tests.
set -u
B=${1:?usage: run_migration_failures.sh BUILD_DIR}
AGENT=$B/hypervisor/daemon/npa-agent NPACTL=$B/hypervisor/npactl/npactl
GUEST=$B/tests/migration/npa-migration-guest
DIR=$(mktemp -d /tmp/npa-mig-fail.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$DIR"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$DIR"/*.log "$DIR"/*.out; do echo "--- $f"; tail -n 15 "$f"; done; exit 1; }

ca() { openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
         -days 1 -keyout "$DIR/$1.key" -out "$DIR/$1.pem" 2>/dev/null; }
cert() {  # name ca
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$DIR/$1.key" -out "$DIR/$1.csr" 2>/dev/null &&
  openssl x509 -req -in "$DIR/$1.csr" -CA "$DIR/$2.pem" -CAkey "$DIR/$2.key" -CAcreateserial \
    -days 1 -sha256 -extfile <(printf "subjectAltName=IP:127.0.0.1\n") -out "$DIR/$1.pem" 2>/dev/null
}
ca ca-good && ca ca-other && cert agent-b ca-good && cert agent-a ca-other || fail "openssl"
PORT=$((20000 + ($$ % 20000) + 7))
# A presents a certificate from a CA B does not trust (A trusts B's CA).
"$AGENT" --control "$DIR/a.sock" --mode loopback --name agent-a --tls-cert "$DIR/agent-a.pem" \
  --tls-key "$DIR/agent-a.key" --tls-ca "$DIR/ca-good.pem" 2>"$DIR/a.log" &
PIDS+=($!)
"$AGENT" --control "$DIR/b.sock" --mode loopback --name agent-b --tls-cert "$DIR/agent-b.pem" \
  --tls-key "$DIR/agent-b.key" --tls-ca "$DIR/ca-good.pem" --migration-listen "127.0.0.1:$PORT" 2>"$DIR/b.log" &
PIDS+=($!)
# A third agent without TLS files.
"$AGENT" --control "$DIR/c.sock" --mode loopback --name agent-c 2>"$DIR/c.log" &
PIDS+=($!)
for i in $(seq 100); do
  [ -S "$DIR/a.sock.admin" ] && [ -S "$DIR/b.sock.admin" ] && [ -S "$DIR/c.sock.admin" ] && break
  sleep 0.05
done
"$GUEST" --control "$DIR/a.sock" --rate 5000 --seconds 4 --name g1 >"$DIR/guest.out" 2>"$DIR/guest.log" &
GPID=$!
PIDS+=($GPID)
"$GUEST" --control "$DIR/c.sock" --rate 1000 --seconds 8 --name g3 >"$DIR/guest3.out" 2>"$DIR/guest3.log" &
PIDS+=($!)
for i in $(seq 100); do
  "$NPACTL" --socket "$DIR/a.sock.admin" guests 2>/dev/null | grep -q RUNNING && break
  sleep 0.05
done
sleep 0.5

out=$("$NPACTL" --socket "$DIR/a.sock.admin" migrate g1 --to "127.0.0.1:$PORT" 2>&1); rc=$?
[ "$rc" = 1 ] || fail "untrusted certificate: npactl exit $rc: $out"
echo "$out" | grep -qi "certificate\|tls\|handshake" || fail "untrusted certificate: no TLS reason: $out"
echo "$out" | grep -q "the guest runs on this agent" || fail "untrusted certificate: $out"
echo "ok: untrusted certificate refused: $(echo "$out" | grep error: | head -c 200)"
"$NPACTL" --socket "$DIR/b.sock.admin" guests | grep -q g1 && fail "B kept a guest g1"

out=$("$NPACTL" --socket "$DIR/c.sock.admin" migrate g3 --to "127.0.0.1:$PORT" 2>&1); rc=$?
[ "$rc" = 1 ] && echo "$out" | grep -q "no migration TLS configuration" || fail "no TLS: exit $rc: $out"
echo "ok: agent without TLS files refuses migrate"

out=$("$NPACTL" --socket "$DIR/a.sock.admin" migrate nosuch --to "127.0.0.1:$PORT" 2>&1); rc=$?
[ "$rc" = 1 ] && echo "$out" | grep -q "no guest named or numbered 'nosuch'" || fail "unknown guest: exit $rc: $out"
echo "ok: unknown guest is NOT_FOUND"

wait "$GPID"; grc=$?
[ "$grc" = 0 ] || fail "guest on A lost frames or failed (exit $grc): $(cat "$DIR/guest.out")"
grep -q '"lost":0,"duplicated":0' "$DIR/guest.out" || fail "guest: $(cat "$DIR/guest.out")"
echo "ok: the guest streamed on A throughout: $(tail -n1 "$DIR/guest.out" | head -c 160)"
