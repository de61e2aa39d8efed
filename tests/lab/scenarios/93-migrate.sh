# migrate: the whole story on two hosts behind the learning bridge tor
# (scenarios/lib.sh twohost_up). Agent A (namespace hostA) pools its
# virtio-net function, agent B (hostB) its e1000e function; they trust each
# other through the lab CA (/lab/tls, mutual TLS) and listen for migrations on
# 10.77.9.1:7000 and 10.77.9.2:7000. The guest g1 streams numbered UDP with
# the peer (100/s each way) while:
#   1. A offers its virtio-net VF: the shell loads the virtio_net plug-in
#   2. planned revoke: back on A's emulated path
#   3. npactl migrate g1 --to 10.77.9.2:7000: the shell resumes its rings on
#      B's emulated path, B announces the MAC (RARP) on its uplink
#   4. B offers its e1000e VF (by itself; else npactl vf attach on B, said so):
#      the shell loads the e1000e plug-in
# Checks: tor sends the guest's frames out of the active path's port only
# (A's twin, ulA, then B's twin), B's announcement reaches tor on ulB, and
# every datagram sent either way arrives exactly once. Prints the per-phase
# table and the issue's JSON line ("MIGRATION_JSON {...}").
# After the planned revoke A announces the MAC on its uplink (asserted on
# ulA); frames already on their way to A's VF are drained by the shell.
# lab-timeout: 300
need LAB_HA_VIRTIO LAB_HA_TWIN_IF LAB_HB_E1000E LAB_HB_TWIN_IF
for b in npa-lab-agent npa-lab-npactl npa-lab-story; do
  [ -x /lab/bin/$b ] || fail "/lab/bin/$b missing"
done
for p in virtio_net e1000e; do
  [ -f /lab/plugins/npa_plugin_$p.so ] || fail "/lab/plugins/npa_plugin_$p.so missing"
done
[ -f /lab/tls/ca.pem ] || fail "/lab/tls missing (run_lab.sh makes it with openssl)"
export NPA_PLUGIN_PATH=/lab/plugins
# 100 datagrams/s each way: the lab's one TCG vCPU also runs two agents, whose
# TLS handshake has a 5 s deadline.
TWO_PPS=100
TWO_PIDS=""
trap twohost_down EXIT
twohost_up
two_live_timeline
# The TLS handshake's deadline (5 s by default) is missed when the one vCPU
# is busy; an agent that can be told (--migration-handshake-timeout) gets 20 s.
hs=""
/lab/bin/npa-lab-agent --help 2>&1 | grep -q -- --migration-handshake-timeout && hs="--migration-handshake-timeout 20000"
tls() { echo "--tls-cert /lab/tls/host$1.pem --tls-key /lab/tls/host$1.key --tls-ca /lab/tls/ca.pem $hs"; }
two_agent A --vf $LAB_HA_VIRTIO --migration-listen 10.77.9.1:7000 $(tls A)
two_agent B --vf $LAB_HB_E1000E --migration-listen 10.77.9.2:7000 $(tls B)
TA=$LAB_HA_TWIN_IF TB=$LAB_HB_TWIN_IF
two_traffic A,B
checkpoint() { # name port: tor has the MAC on port; ~1 s of frames for it leave by port only
  local a b bad i=0
  until [ "$(tor_port $TWO_GMAC)" = "$2" ]; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "$1: tor has the guest's MAC on '$(tor_port $TWO_GMAC)', want $2"; sleep 0.1
  done
  two_snap a; sleep 1; two_snap b
  bad=$(two_steered "$a" "$b" $2)
  [ -z "$bad" ] || fail "$1: frames for the guest left tor by other ports than $2:$bad"
  say "$1: tor sends the guest's frames out of $2 only ($(two_delta "$a" "$b" $2 out_to) in 1 s)"
  STEER="$STEER $1:$2"
}
evcount() { two_count /tmp/two-guest.log "^EVENT .* $1"; }
evwait() { # pattern count tenths: wait until more than count events match
  local i=0
  until [ "$(evcount "$1")" -gt "$2" ]; do
    i=$((i + 1)); [ $i -lt $3 ] || fail "no new '$1' event: $(grep '^EVENT' /tmp/two-guest.log | tail -2)"; sleep 0.1
  done
}
evmono() { grep "^EVENT .* $1" /tmp/two-guest.log | tail -1 | sed -n 's/^EVENT mono=\([0-9.]*\).*/\1/p'; }
STEER=""
checkpoint emulated_a ulA

say "A offers its virtio-net VF"
k=$(evcount 'path=vf'); t0=$(two_now)
two_ctl /run/npa-A.sock vf attach g1 $LAB_HA_VIRTIO >/tmp/two-ctl.out 2>&1 || fail "vf attach on A: $(cat /tmp/two-ctl.out)"
evwait 'path=vf' $k 150
grep '^EVENT .* path=vf' /tmp/two-guest.log | tail -1 | grep -q virtio_net || true
attach_a=$(two_ms $t0 $(two_now))
checkpoint vf_a $TA

say "planned revoke on A"
two_snap r0
k=$(evcount 'path=emulated'); t0=$(two_now)
two_ctl /run/npa-A.sock vf detach g1 >/tmp/two-ctl.out 2>&1 || fail "vf detach on A: $(cat /tmp/two-ctl.out)"
grep -q "tx_inflight_lost=0" /tmp/two-ctl.out || fail "planned revoke reported loss: $(cat /tmp/two-ctl.out)"
evwait 'path=emulated' $k 150
revoke_a=$(two_ms $t0 $(two_now))
checkpoint emulated_a2 ulA
two_snap r1
rarp_a=$(two_delta "$r0" "$r1" ulA rarp_in)
[ "$rarp_a" -ge 1 ] || fail "no RARP announcement of the guest's MAC from A's uplink after the revoke"

say "npactl migrate g1 --to 10.77.9.2:7000"
two_snap m0
km=$(evcount migrated); kv=$(evcount 'path=vf'); t0=$(two_now)
two_ctl /run/npa-A.sock migrate g1 --to 10.77.9.2:7000 --json >/tmp/two-migrate.json 2>&1 ||
  fail "npactl migrate: $(cat /tmp/two-migrate.json) / A: $(tail -3 /tmp/two-agent-A.log) / B: $(tail -3 /tmp/two-agent-B.log)"
t1=$(two_now)
cat /tmp/two-migrate.json
migrate_ms=$(two_ms $t0 $t1)
evwait migrated $km 100
tm=$(evmono migrated)
say "the guest is on host B ($migrate_ms ms for npactl migrate)"
offer=auto
i=0; until [ "$(evcount 'path=vf')" -gt $kv ]; do
  i=$((i + 1))
  if [ $i = 80 ]; then
    offer=npactl
    say "B offered no VF by itself in 8 s: npactl vf attach on B"
    two_ctl /run/npa-B.sock vf attach g1 $LAB_HB_E1000E >/tmp/two-ctl.out 2>&1 || fail "vf attach on B: $(cat /tmp/two-ctl.out)"
  fi
  [ $i -lt 250 ] || fail "the guest never reached B's VF: $(grep '^EVENT' /tmp/two-guest.log | tail -2)"
  sleep 0.1
done
tv=$(evmono 'path=vf')
grep '^EVENT .* path=vf' /tmp/two-guest.log | tail -1 | grep -q e1000e ||
  fail "on B the shell is not on the e1000e plug-in: $(grep '^EVENT .* path=vf' /tmp/two-guest.log | tail -1)"
checkpoint vf_b $TB
two_snap m1
rarp_b=$(two_delta "$m0" "$m1" ulB rarp_in)
fromb=$(two_delta "$m0" "$m1" ulB in_from)
ann=$(grep '^RARP if=ulB dir=in' /tmp/two-watch.log | head -1 | sed -n 's/.*mono=\([0-9.]*\).*/\1/p')
two_finish
grep -v '^TL \|^GAP' /tmp/two-guest.log | tail -8
[ "$TWO_FINISH_OK" = 1 ] || fail "datagrams lost or duplicated: peer->guest $TWO_CHECK_G; guest->peer $TWO_CHECK_P"
[ "$rarp_b" -ge 1 ] || fail "no RARP announcement of the guest's MAC from B's uplink reached tor"
[ "$fromb" -gt 0 ] || fail "no frame of the guest came in by B's uplink (ulB) between the move and B's VF"

# The per-phase table and the JSON line of issue 8.
ms() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "") print "null"; else printf "%.1f", (b - a) * 1000 }'; }
announce_ms=$(ms "$tm" "$ann"); attach_b=$(ms "$tm" "$tv")
phases=$(tr -d '\n' </tmp/two-migrate.json | grep -o '"name":"[^"]*","duration_us":[0-9]*' |
  sed 's/"name":"\([^"]*\)","duration_us":\([0-9]*\)/\1 \2/' |
  awk '{printf "%s\"%s\":%.3f", (NR > 1 ? "," : ""), $1, $2 / 1000}')
gap_g=$(echo "$TWO_GSUM" | sed -n 's/.*max_rx_gap_ms=\([0-9.]*\).*/\1/p')
gap_p=$(echo "$TWO_PSUM" | sed -n 's/.*max_rx_gap_ms=\([0-9.]*\).*/\1/p')
reord=$(( $(echo "$TWO_GSUM" | sed -n 's/.* reordered=\([0-9]*\).*/\1/p') + $(echo "$TWO_PSUM" | sed -n 's/.* reordered=\([0-9]*\).*/\1/p') ))
blackout=$(awk -v a="$gap_g" -v b="$gap_p" 'BEGIN{print (a > b ? a : b)}')
{ echo "phase               ms"
  printf '%-18s %s\n' "attach on A" "$attach_a" "revoke on A" "$revoke_a" "migrate (npactl)" "$migrate_ms"
  [ -n "$phases" ] && echo "$phases" | tr ',' '\n' | sed 's/^"\([^"]*\)":\(.*\)/  \1 \2/' | awk '{printf "  %-16s %s\n", $1, $2}'
  printf '%-18s %s\n' "announce on B" "$announce_ms" "attach on B" "$attach_b"
  echo "datagrams: peer->guest $TWO_PSENT, guest->peer $TWO_GSENT; lost rx $TWO_LOST_RX tx $TWO_LOST_TX, duplicated $TWO_DUP, reordered $reord"
  echo "longest gap: at the guest (rx) $gap_g ms, at the peer (guest tx) $gap_p ms" ; } >/tmp/two-table.txt
cat /tmp/two-table.txt
while IFS= read -r l; do live "$l"; done </tmp/two-table.txt
J="{\"bench\":\"migration\",\"from\":\"virtio_net\",\"to\":\"e1000e\",\"lost_rx\":$TWO_LOST_RX,\"lost_tx\":$TWO_LOST_TX,\"duplicated\":$TWO_DUP,\"reordered\":$reord,\"blackout_ms\":$blackout,\"blackout_rx_ms\":$gap_g,\"blackout_tx_ms\":$gap_p,\"phases_ms\":{\"revoke_a\":$revoke_a,\"migrate\":$migrate_ms,${phases:+$phases,}\"announce_b\":$announce_ms,\"attach_b\":$attach_b},\"vf_offer_on_b\":\"$offer\",\"env\":\"lab TCG\"}"
echo "MIGRATION_JSON $J"
live "MIGRATION_JSON $J"
detail "virtio_net VF on A -> revoke -> migrate to B ($migrate_ms ms) -> e1000e VF on B ($offer offer, $attach_b ms after the move); tor:$STEER, A's RARP after the revoke $rarp_a, B's RARP seen $rarp_b; $TWO_PSENT peer->guest and $TWO_GSENT guest->peer each once (lost 0/0, dup 0, reordered $reord); blackout rx $gap_g ms tx $gap_p ms"
