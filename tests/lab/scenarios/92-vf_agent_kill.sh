# vf_agent_kill: does a guest on a VF keep forwarding after kill -9 of its
# agent (issue 9, "the agent can restart under traffic")? The agent holds
# the VFIO container and group fds and made the DMA mappings of the guest's
# memory; the shell holds only the device fd it was offered. The kernel
# (6.1) keeps a group attached to its container while a device fd of the
# group is open, and a container keeps its IOMMU mappings while a group is
# attached, so the mappings should outlive the agent's fds. Measured here:
# the guest g1 on host A's virtio-net VF streams numbered UDP both ways with
# the peer; agent A is killed with SIGKILL; until it is back (3-5 s) the guest must go on
# sending and receiving through the VF (both counters grow, the bridge still
# sends its frames to A's twin), with no DMAR fault in the kernel log.
# Agent A is started again at once with the same flags; under TCG it takes
# 2-3 s to listen, so the guest's shell reconnects for up to 20 s (on ON_VF a
# shell that gives up does not retry): the shell resumes its emulated rings
# beside the VF, and the new agent re-adopts the VF from its restart roster
# (docs/security.md "Agent restart"): `vf list` shows it ADOPTED by g1 and
# `guests` g1 on path vf. A planned `vf detach g1` then moves the guest to
# the emulated path (tx_inflight_lost=0; the VF reclaimed: FREE) and the
# traffic goes on through A's uplink. At the end every datagram sent either
# way was received exactly once.
# lab-timeout: 240
need LAB_HA_VIRTIO LAB_HA_TWIN_IF
for b in npa-lab-agent npa-lab-npactl npa-lab-story; do
  [ -x /lab/bin/$b ] || fail "/lab/bin/$b missing"
done
export NPA_PLUGIN_PATH=/lab/plugins
TWO_PIDS=""
trap twohost_down EXIT
twohost_up
two_live_timeline
two_agent A --vf $LAB_HA_VIRTIO
TA=$LAB_HA_TWIN_IF
TWO_GUEST_ARGS="--reconnect-ms 20000"
two_traffic A
say "attach A's virtio-net VF"
two_ctl /run/npa-A.sock vf attach g1 $LAB_HA_VIRTIO >/tmp/two-ctl.out 2>&1 ||
  fail "vf attach: $(cat /tmp/two-ctl.out) $(tail -3 /tmp/two-agent-A.log)"
two_wait /tmp/two-guest.log '^EVENT .* path=vf' 100
sleep 1
[ "$(tor_port $TWO_GMAC)" = $TA ] || fail "tor has the guest's MAC on '$(tor_port $TWO_GMAC)', want $TA"
tlval() { grep '^TL ' /tmp/two-guest.log | tail -1 | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
dmar0=$(dmesg | grep -c DMAR)
two_snap s0
tx0=$(tlval tx); rx0=$(tlval rx)
say "kill -9 of agent A (pid $TWO_AGENT_A)"
kill -KILL $TWO_AGENT_A
wait $TWO_AGENT_A_IP 2>/dev/null
kill -0 $TWO_AGENT_A 2>/dev/null && fail "agent A (pid $TWO_AGENT_A) survived SIGKILL"
[ -S /run/npa-A.sock ] && echo "(agent A's socket file is left behind: SIGKILL)"
[ -s /run/npa-A.sock.guests ] || fail "no restart roster /run/npa-A.sock.guests"
echo "restart roster: $(cat /run/npa-A.sock.guests)"
grep -q "^g1 .* $LAB_HA_VIRTIO [0-9]*$" /run/npa-A.sock.guests ||
  fail "the roster does not record g1's VF: $(cat /run/npa-A.sock.guests)"
say "agent A again, same flags"
two_agent A --vf $LAB_HA_VIRTIO
two_wait /tmp/two-guest.log "resumed on agent 'hostA'" 200
sleep 1
say "agent A back"
two_snap s1
tx1=$(tlval tx); rx1=$(tlval rx); path=$(tlval path)
dmar1=$(dmesg | grep -c DMAR)
grep -v '^TL ' /tmp/two-guest.log | tail -5
grep '^TL ' /tmp/two-guest.log | tail -4
vin=$(two_delta "$s0" "$s1" $TA in_from)
vout=$(two_delta "$s0" "$s1" $TA out_to)
upin=$(two_delta "$s0" "$s1" ulA in_from)
echo "after kill -9: tx $tx0 -> $tx1, rx $rx0 -> $rx1, path $path; A's twin: $vin frames from the guest, $vout to it; ulA: $upin from the guest; DMAR lines $dmar0 -> $dmar1"
[ "$path" = vf ] || fail "after kill -9 of the agent the guest is on path '$path', not the VF"
[ $((tx1 - tx0)) -ge 400 ] && [ $((rx1 - rx0)) -ge 400 ] ||
  fail "the guest stopped forwarding after kill -9 of its agent: tx $tx0 -> $tx1, rx $rx0 -> $rx1"
[ "$vin" -ge 400 ] && [ "$upin" = 0 ] || fail "after the kill the guest's frames came in by A's twin $vin, by ulA $upin"
[ "$dmar1" = "$dmar0" ] || fail "DMAR faults after the kill: $(dmesg | grep DMAR | tail -2)"
# The new agent's view: the VF held by g1 (no fd of its own), g1 on it.
vfrow() { two_ctl /run/npa-A.sock vf list --json | sed 's/{"pci"/\n{"pci"/g' | grep "^{\"pci\":\"$LAB_HA_VIRTIO\""; }
row=$(vfrow)
echo "vf list after the restart: $row"
echo "$row" | grep -q '"state":"ADOPTED"' && echo "$row" | grep -q '"guest":"g1"' ||
  fail "after the restart vf list shows $row; want ADOPTED by g1. $(tail -3 /tmp/two-agent-A.log)"
gl=$(two_ctl /run/npa-A.sock --json guests)
echo "$gl" | grep -q '"path":"vf"' || fail "after the restart g1 is not on path vf: $gl"
say "planned vf detach of the re-adopted VF"
two_snap s2
two_ctl /run/npa-A.sock vf detach g1 >/tmp/two-ctl.out 2>&1 ||
  fail "vf detach: $(cat /tmp/two-ctl.out) $(tail -3 /tmp/two-agent-A.log)"
cat /tmp/two-ctl.out
grep -q "tx_inflight_lost=0" /tmp/two-ctl.out || fail "the planned detach reported loss: $(cat /tmp/two-ctl.out)"
two_wait /tmp/two-guest.log '^EVENT .* path=emulated' 100
row=$(vfrow)
echo "$row" | grep -q '"state":"FREE"' || fail "after the detach vf list shows $row; want FREE (reclaimed)"
tx2=$(tlval tx); rx2=$(tlval rx)
sleep 2
say "2 s on the emulated path"
two_snap s3
tx3=$(tlval tx); rx3=$(tlval rx); path3=$(tlval path)
upin3=$(two_delta "$s2" "$s3" ulA in_from)
echo "after the detach: path $path3, tx $tx2 -> $tx3, rx $rx2 -> $rx3; ulA: $upin3 from the guest"
[ "$path3" = emulated ] || fail "after the detach the guest is on path '$path3'"
[ $((tx3 - tx2)) -ge 300 ] && [ $((rx3 - rx2)) -ge 300 ] ||
  fail "the guest stopped forwarding on the emulated path: tx $tx2 -> $tx3, rx $rx2 -> $rx3 in 2 s"
[ "$upin3" -gt 0 ] || fail "after the detach no frame of the guest came in by A's uplink"
two_finish
[ "$TWO_FINISH_OK" = 1 ] || fail "datagrams lost or duplicated: peer->guest $TWO_CHECK_G; guest->peer $TWO_CHECK_P"
detail "yes: after kill -9 of agent A the guest forwarded on the VF ($((tx1 - tx0)) datagrams out, $((rx1 - rx0)) in until its agent was back; $vin frames in by A's twin, none by A's uplink), no DMAR fault; agent A started again re-adopted the VF (ADOPTED by g1, g1 on path vf) and a planned vf detach moved g1 to the emulated path (tx_inflight_lost=0, VF FREE); $TWO_PSENT peer->guest and $TWO_GSENT guest->peer, each once"
