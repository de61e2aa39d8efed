# vf_agent_kill: does a guest on a VF keep forwarding after kill -9 of its
# agent (issue 9, "the agent can restart under traffic")? The agent holds
# the VFIO container and group fds and made the DMA mappings of the guest's
# memory; the shell holds only the device fd it was offered. The kernel
# (6.1) keeps a group attached to its container while a device fd of the
# group is open, and a container keeps its IOMMU mappings while a group is
# attached, so the mappings should outlive the agent's fds. Measured here:
# the guest g1 on host A's virtio-net VF streams numbered UDP both ways with
# the peer; agent A is killed with SIGKILL; for 3 s the guest must go on
# sending and receiving through the VF (both counters grow, the bridge still
# sends its frames to A's twin), with no DMAR fault in the kernel log and,
# at the end, every datagram sent either way received exactly once.
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
sleep 3
say "3 s later" 
two_snap s1
tx1=$(tlval tx); rx1=$(tlval rx); path=$(tlval path)
dmar1=$(dmesg | grep -c DMAR)
grep -v '^TL ' /tmp/two-guest.log | tail -5
grep '^TL ' /tmp/two-guest.log | tail -4
[ -S /run/npa-A.sock ] && echo "(agent A's socket file is left behind: SIGKILL)"
two_finish
vin=$(two_delta "$s0" "$s1" $TA in_from)
vout=$(two_delta "$s0" "$s1" $TA out_to)
upin=$(two_delta "$s0" "$s1" ulA in_from)
echo "after kill -9: tx $tx0 -> $tx1, rx $rx0 -> $rx1, path $path; A's twin: $vin frames from the guest, $vout to it; ulA: $upin from the guest; DMAR lines $dmar0 -> $dmar1"
[ "$path" = vf ] || fail "after kill -9 of the agent the guest is on path '$path', not the VF"
[ $((tx1 - tx0)) -ge 400 ] && [ $((rx1 - rx0)) -ge 400 ] ||
  fail "the guest stopped forwarding after kill -9 of its agent: tx $tx0 -> $tx1, rx $rx0 -> $rx1 in 3 s"
[ "$vin" -ge 400 ] && [ "$upin" = 0 ] || fail "after the kill the guest's frames came in by A's twin $vin, by ulA $upin"
[ "$dmar1" = "$dmar0" ] || fail "DMAR faults after the kill: $(dmesg | grep DMAR | tail -2)"
[ "$TWO_FINISH_OK" = 1 ] || fail "datagrams lost or duplicated: peer->guest $TWO_CHECK_G; guest->peer $TWO_CHECK_P"
detail "yes: after kill -9 of agent A the guest forwarded on the VF for 3 s ($((tx1 - tx0)) datagrams out, $((rx1 - rx0)) in; $vin frames in by A's twin, none by A's uplink), no DMAR fault: the DMA mappings outlive the agent's container and group fds while the shell holds the device fd; $TWO_PSENT peer->guest and $TWO_GSENT guest->peer, each once"
