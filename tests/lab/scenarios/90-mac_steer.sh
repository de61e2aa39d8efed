# mac_steer: one host (agent A in namespace hostA, uplink up0 on its host
# bridge, pool: its virtio-net function LAB_HA_VIRTIO) behind the learning
# bridge tor (scenarios/lib.sh twohost_up; no QEMU hub between the paths).
# The guest g1 (npa-lab-story guest, libnpa_shell) streams numbered UDP with
# the peer in namespace speer, 250/s each way, while npactl moves it
# emulated -> VF -> emulated -> VF. After each move tor must send frames for
# the guest's MAC out of exactly one port, the active path's (ulA for the
# emulated path, A's twin for the VF), without anyone writing FDB entries,
# and at the end every datagram sent either way has arrived exactly once.
# The side that now carries the MAC announces it (RARP, common/announce.h):
# the shell through the VF at each attach, agent A on its uplink once the VF
# fell back (at once, then on --rarp-schedule); both counted on tor's ports
# and asserted. Frames the peer sent to the VF's port before tor re-learned
# are delivered by the shell's drain (shell/vf/vf_switch.h DrainGrace).
# lab-timeout: 240
need LAB_HA_VIRTIO LAB_HA_TWIN_IF
for b in npa-lab-agent npa-lab-npactl npa-lab-story; do
  [ -x /lab/bin/$b ] || fail "/lab/bin/$b missing"
done
[ -f /lab/plugins/npa_plugin_virtio_net.so ] || fail "/lab/plugins/npa_plugin_virtio_net.so missing"
export NPA_PLUGIN_PATH=/lab/plugins
TWO_PIDS=""
trap twohost_down EXIT
twohost_up
two_live_timeline
two_agent A --vf $LAB_HA_VIRTIO
TA=$LAB_HA_TWIN_IF
two_traffic A
ctl() { two_ctl /run/npa-A.sock "$@"; }
port=$(tor_port $TWO_GMAC)
[ "$port" = ulA ] || fail "tor learned the guest's MAC on '$port', want ulA (emulated path on A)"
# checkpoint NAME PORT: ~1 s of traffic; frames for the guest left tor only by PORT.
checkpoint() {
  local p a b bad i=0
  until [ "$(tor_port $TWO_GMAC)" = "$2" ]; do
    i=$((i + 1)); [ $i -lt 30 ] || fail "$1: tor has the guest's MAC on '$(tor_port $TWO_GMAC)', want $2"; sleep 0.1
  done
  say "$1: tor has the guest's MAC on $2"
  two_snap a; sleep 1; two_snap b
  bad=$(two_steered "$a" "$b" $2)
  [ -z "$bad" ] || fail "$1: frames for the guest left tor by other ports than $2:$bad"
  STEER="$STEER $1:$2($(two_delta "$a" "$b" $2 out_to))"
}
STEER=""
checkpoint emulated ulA
phase() { # name cmd... : run an npactl command, wait for the path event, print its time
  local n=$1 want=$2 k; shift 2
  k=$(two_count /tmp/two-guest.log "^EVENT .* path=$want")
  say "$n: npactl $*"
  t0=$(two_now)
  ctl "$@" >/tmp/two-ctl.out 2>&1 || fail "$n: npactl $*: $(cat /tmp/two-ctl.out) $(tail -3 /tmp/two-agent-A.log)"
  t1=$(two_now)
  i=0; until [ "$(two_count /tmp/two-guest.log "^EVENT .* path=$want")" -gt "$k" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "$n: no path=$want event: $(grep -v '^TL' /tmp/two-guest.log | tail -3)"; sleep 0.1
  done
  cat /tmp/two-ctl.out
  say "$n: the guest is on path $want ($(two_ms $t0 $t1) ms for npactl)"
  PH="$PH $n=$(two_ms $t0 $t1)ms"
}
PH=""
phase attach1 vf vf attach g1 $LAB_HA_VIRTIO
checkpoint vf1 $TA
phase revoke emulated vf detach g1
grep -q "tx_inflight_lost=0" /tmp/two-ctl.out || fail "planned revoke reported loss: $(cat /tmp/two-ctl.out)"
checkpoint emulated2 ulA
phase attach2 vf vf attach g1 $LAB_HA_VIRTIO
checkpoint vf2 $TA
two_finish
grep '^TL ' /tmp/two-guest.log | awk 'NR % 8 == 1'
cat /tmp/two-watch.log | grep -v '^WATCH' | head -20
rarp_vf=$(two_count /tmp/two-watch.log "^RARP if=$TA dir=in")
rarp_up=$(two_count /tmp/two-watch.log "^RARP if=ulA dir=in")
[ "$TWO_FINISH_OK" = 1 ] || fail "datagrams lost or duplicated: peer->guest $TWO_CHECK_G; guest->peer $TWO_CHECK_P"
[ "$rarp_vf" -ge 2 ] || fail "announcements through the VF: $rarp_vf, want one per attach"
[ "$rarp_up" -ge 1 ] || fail "announcements on A's uplink after the revoke: $rarp_up"
{ echo "phase          npactl ms"; echo "$PH" | tr ' ' '\n' | grep . | sed 's/=/ /' | awk '{printf "%-14s %s\n", $1, $2}'
  echo "datagrams: peer->guest $TWO_PSENT, guest->peer $TWO_GSENT; lost rx $TWO_LOST_RX tx $TWO_LOST_TX, duplicated $TWO_DUP"
  echo "tor's port for the guest's MAC per phase:$STEER"; } >/tmp/two-table.txt
cat /tmp/two-table.txt
while IFS= read -r l; do live "$l"; done </tmp/two-table.txt
detail "tor steered the guest's MAC to one port per path:$STEER (frames out); npactl$PH; $TWO_PSENT peer->guest and $TWO_GSENT guest->peer datagrams, each once (0 lost, 0 duplicated; max RX gap $(echo "$TWO_GSUM" | sed -n 's/.*max_rx_gap_ms=\([0-9.]*\).*/\1/p') ms at the guest, $(echo "$TWO_PSUM" | sed -n 's/.*max_rx_gap_ms=\([0-9.]*\).*/\1/p') ms at the peer); RARP seen: $rarp_vf via the VF, $rarp_up on A's uplink"
