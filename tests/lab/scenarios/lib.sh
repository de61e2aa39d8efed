# tests/lab/scenarios/lib.sh — helpers sourced (after /lab/env) by every
# scenario inside the guest. A scenario passes when its shell exits 0.
#   detail "text"   the summary shown on the LAB: line (last one wins)
#   fail "text"     print the reason and exit 1
#   need VAR...     fail unless each role variable from /lab/env is set
#   probe ARGS...   run npa-lab-vf-probe (the VF library's lab driver)
#   peer CMD...     run CMD in the peer network namespace
detail() { echo "DETAIL: $*"; }
fail() { echo "FAIL: $*"; exit 1; }
need() {
  for v in "$@"; do eval "[ -n \"\${$v:-}\" ]" || fail "role $v not found at boot (see LABINIT roles)"; done
}
# Debian's static busybox runs its own applets before PATH; use iproute2's ip.
ip() { /lab/bin/ip "$@"; }
probe() { /lab/bin/npa-lab-vf-probe "$@"; }
peer() { ip netns exec peer "$@"; }
drv() { basename "$(readlink /sys/bus/pci/devices/$1/driver 2>/dev/null)" 2>/dev/null; }
# Current netdev name of a PCI function (names change when a driver rebinds).
ifname_of() {
  ls /sys/bus/pci/devices/$1/net 2>/dev/null || ls /sys/bus/pci/devices/$1/virtio*/net 2>/dev/null
}
# Runs each "probe" check, echoes its output, fails the scenario on the first failure.
run_probe() {
  probe "$@" >/tmp/probe.out 2>&1; rc=$?
  cat /tmp/probe.out
  [ $rc = 0 ] || fail "npa-lab-vf-probe $*: $(sed -n 's/^FAIL: //p' /tmp/probe.out | tail -1)"
}

# conform_run BDF IFNAME PLUGIN.so RESET_METHOD [npa-conform args...]: bind to
# vfio-pci, run npa-conform against the peer namespace, hand the function back.
# npa-conform opens the function with the VFIO host library and runs the
# plug-in over the shell's services table (docs/conformance.md).
# Used by the virtio_net and conform_* scenarios.
conform_run() {
  local bdf="$1" ifc="$2" so="/lab/plugins/$3" rm="$4"
  shift 4
  local bin=/lab/bin/npa-conform d=/sys/bus/pci/devices/$bdf
  [ -x "$bin" ] && [ -f "$so" ] || fail "$bin or $so missing from the guest"
  ip link set "$ifc" down 2>/dev/null
  [ -n "$rm" ] && { echo "$rm" >$d/reset_method || fail "cannot set reset_method=$rm"; }
  echo vfio-pci >$d/driver_override
  [ -e $d/driver ] && echo $bdf >$d/driver/unbind
  echo $bdf >/sys/bus/pci/drivers_probe
  [ "$(drv $bdf)" = vfio-pci ] || fail "$bdf did not bind to vfio-pci (driver: $(drv $bdf))"
  local broken=""
  [ -d /lab/plugins/broken ] && broken="--broken-dir /lab/plugins/broken"
  # Streamed (tee), so a run killed at the scenario time limit still shows
  # how far it got.
  { "$bin" --peer-netns peer --peer-if "$LAB_PEER_IF" $broken "$@" "$so" "$bdf" 2>&1
    echo $? >/tmp/conform.rc; } | tee /tmp/conform.out
  local rc
  rc=$(cat /tmp/conform.rc)
  # On failure, the peer NIC's own counters: did frames reach its driver?
  [ $rc = 0 ] || ip -n peer -s -s link show "$LAB_PEER_IF"
  echo >$d/driver_override
  [ -e $d/driver ] && echo $bdf >$d/driver/unbind
  echo $bdf >/sys/bus/pci/drivers_probe
  local sum
  sum=$(tail -1 /tmp/conform.out)
  [ $rc = 0 ] || fail "$(grep -m1 '^CONFORM .* FAIL' /tmp/conform.out || echo "npa-conform exit $rc") ($sum)"
  detail "$(grep -c '^CONFORM .* PASS' /tmp/conform.out) cases passed: $sum"
}

# shell_vf_run: the body of the shell_vf_* scenarios. Set SHELL_VF_NIC,
# SHELL_VF_NIC_IF, SHELL_VF_PLUGIN and SHELL_VF_FORCE (1: end with a forced
# detach) first; see 81-shell_vf_virtio.sh and 82-shell_vf_e1000e.sh.
# TX: the DUT's numbered broadcasts, each at the sink (emulated) or the
# sniffer (VF) exactly once. RX: blast, in the peer namespace, sends numbered
# unicast frames to the DUT's MAC all along; only the VF can deliver them
# (the agent has no uplink here), so each VF window [mark A, mark B) must
# arrive at the DUT exactly once: A after the DUT is on the VF and sending,
# B just before the detach (which drains the VF's RX ring into the DUT).
shell_vf_run() {

# ---- common body of the 8x-shell_vf_* scenarios (kept identical in each file)
for b in npa-lab-agent npa-lab-npactl npa-lab-shell-vf; do
  [ -x /lab/bin/$b ] || fail "/lab/bin/$b missing (ninja npa-lab-agent npa-lab-npactl npa-lab-shell-vf)"
done
[ -f /lab/plugins/npa_plugin_$SHELL_VF_PLUGIN.so ] || fail "/lab/plugins/npa_plugin_$SHELL_VF_PLUGIN.so missing"
export NPA_PLUGIN_PATH=/lab/plugins
X=/lab/bin/npa-lab-shell-vf
SOCK=/run/npa-shellvf.sock
ctl() { /lab/bin/npa-lab-npactl --socket $SOCK.admin "$@"; }
PIDS=""
cleanup() {
  for p in $PIDS; do kill $p 2>/dev/null; done
  [ -n "${AGENT:-}" ] && kill $AGENT 2>/dev/null
  wait 2>/dev/null
  d=/sys/bus/pci/devices/$SHELL_VF_NIC
  echo >$d/driver_override 2>/dev/null
  [ "$(drv $SHELL_VF_NIC)" = vfio-pci ] && echo $SHELL_VF_NIC >$d/driver/unbind
  [ -e $d/driver ] || echo $SHELL_VF_NIC >/sys/bus/pci/drivers_probe
  for f in /tmp/dut.log /tmp/sink.log /tmp/sniff.log /tmp/blast.log /tmp/agent.log; do
    echo "--- $f"; grep -v '^PROGRESS' $f 2>/dev/null | tail -n 25
  done
}
trap cleanup EXIT
ip link set "$SHELL_VF_NIC_IF" down 2>/dev/null
# The logs too: the previous shell_vf_* scenario left its own, and a wait for
# '^SHELL: dut mac' must not match the old DUT's line before the new DUT's
# redirect has truncated the file (it did once: the MAC read back empty).
rm -f $SOCK /tmp/sink.bin /tmp/sniff.bin /tmp/dut.count /tmp/dut_rx.bin /tmp/marks.txt /tmp/range.out \
  /tmp/dut.log /tmp/sink.log /tmp/sniff.log /tmp/blast.log /tmp/agent.log \
  /tmp/att.out /tmp/det.out /tmp/att2.out /tmp/force.out
now() { cut -d' ' -f1 /proc/uptime; }
waitlog() { # file pattern tenths
  i=0; until grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt $3 ] || fail "no '$2' in $1 after $(($3 / 10)) s: $(tail -2 $1)"; sleep 0.1
  done
}
sent_vf() { grep '^PROGRESS' /tmp/dut.log | tail -1 | sed -n 's/.*tx_vf=\([0-9]*\).*/\1/p'; }
sent_all() { grep '^PROGRESS' /tmp/dut.log | tail -1 | sed -n 's/.*sent=\([0-9]*\).*/\1/p'; }
# mark VAR: SIGUSR1 to blast, VAR = the number of the next frame it sends.
mark() {
  n0=$(grep -c '^MARK' /tmp/marks.txt 2>/dev/null)
  kill -USR1 $BLAST || fail "blast is gone: $(tail -2 /tmp/blast.log)"
  i=0; until [ "$(grep -c '^MARK' /tmp/marks.txt 2>/dev/null)" -gt "${n0:-0}" ]; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "blast wrote no mark in 5 s: $(tail -2 /tmp/blast.log)"; sleep 0.05
  done
  eval "$1=$(grep '^MARK' /tmp/marks.txt | tail -1 | cut -d' ' -f2)"
}
waitmore() { # counter-fn delta tenths
  b=$($1); b=${b:-0}; i=0
  while [ "$($1)" -lt $((b + $2)) ] 2>/dev/null || [ -z "$($1)" ]; do
    i=$((i + 1)); [ $i -lt $3 ] || fail "$1 did not grow by $2 (at $($1))"; sleep 0.1
  done
}

/lab/bin/npa-lab-agent --control $SOCK --vf $SHELL_VF_NIC --vf-restore-driver \
  --vf-accept-timeout 15000 --vf-revoke-timeout 8000 >/tmp/agent.log 2>&1 &
AGENT=$!
i=0; while [ ! -S $SOCK ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -S $SOCK ] || fail "agent did not start: $(tail -3 /tmp/agent.log)"

# Not through the peer() function: a backgrounded function is a subshell,
# and the TERM at the end must reach the sniffer itself (ip netns exec execs).
/lab/bin/ip netns exec peer $X sniff --if "$LAB_PEER_IF" --secs 100 --out /tmp/sniff.bin >/tmp/sniff.log 2>&1 &
PIDS="$PIDS $!"; SNIFF=$!
$X sink --socket $SOCK --name sink --secs 100 --out /tmp/sink.bin >/tmp/sink.log 2>&1 &
PIDS="$PIDS $!"; SINK=$!
waitlog /tmp/sniff.log READY 50
waitlog /tmp/sink.log READY 100
$X dut --socket $SOCK --name dut --pps 800 --secs 45 --out /tmp/dut.count --rx-out /tmp/dut_rx.bin --intr >/tmp/dut.log 2>&1 &
PIDS="$PIDS $!"; DUT=$!
waitlog /tmp/dut.log '^SHELL: dut mac' 100
DMAC=$(sed -n 's/^SHELL: dut mac \([0-9a-f:]*\) .*/\1/p' /tmp/dut.log | head -1)
[ -n "$DMAC" ] || fail "no MAC on the DUT's SHELL line: $(grep '^SHELL' /tmp/dut.log)"
/lab/bin/ip netns exec peer $X blast --if "$LAB_PEER_IF" --dst $DMAC --pps 450 --secs 100 --marks /tmp/marks.txt >/tmp/blast.log 2>&1 &
PIDS="$PIDS $!"; BLAST=$!
waitlog /tmp/blast.log READY 50
waitlog /tmp/dut.log '^PROGRESS' 100
waitmore sent_all 400 100

t0=$(now)
ctl vf attach dut $SHELL_VF_NIC >/tmp/att.out 2>&1 || fail "vf attach: $(cat /tmp/att.out) $(tail -3 /tmp/agent.log)"
t1=$(now)
waitlog /tmp/dut.log 'path=vf' 100
waitmore sent_vf 100 100
mark A1
waitmore sent_vf 800 100
mark B1
tb=$(now)
ctl vf detach dut >/tmp/det.out 2>&1 || fail "vf detach: $(cat /tmp/det.out)"
t2=$(now)
cat /tmp/att.out /tmp/det.out
waitlog /tmp/dut.log 'path=emulated' 100
grep -q "tx_inflight_lost=0" /tmp/det.out || fail "planned detach reported loss: $(cat /tmp/det.out)"
att_ms=$(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%d", (b-a)*1000}')
det_ms=$(awk -v a=$tb -v b=$t2 'BEGIN{printf "%d", (b-a)*1000}')
sw_in=$(grep -m1 'path=vf' /tmp/dut.log | sed -n 's/.*queues switched in \([0-9]*\) us.*/\1/p')
sw_out=$(grep 'back on the emulated' /tmp/dut.log | tail -1 | sed -n 's/.*tx moved in \([0-9]*\) us, total \([0-9]*\) us.*/\1\/\2/p')
waitmore sent_all 400 100
extra=""
lost=0
windows="$A1:$B1"
if [ "$SHELL_VF_FORCE" = 1 ]; then
  ctl vf attach dut $SHELL_VF_NIC >/tmp/att2.out 2>&1 || fail "second vf attach: $(cat /tmp/att2.out)"
  i=0; until [ "$(grep -c 'path=vf' /tmp/dut.log)" -ge 2 ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "second attach did not reach the DUT"; sleep 0.1
  done
  waitmore sent_vf 100 100
  mark A2
  waitmore sent_vf 800 100
  mark B2
  windows="$windows $A2:$B2"
  ctl vf detach --force dut >/tmp/force.out 2>&1 || fail "forced detach: $(cat /tmp/force.out)"
  cat /tmp/force.out
  i=0; until [ "$(grep -c 'path=emulated' /tmp/dut.log)" -ge 2 ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "no fallback after the forced detach"; sleep 0.1
  done
  grep 'path=emulated' /tmp/dut.log | tail -1 | grep -q 'VFIO REQ' || fail "fallback not from REQ: $(grep 'path=emulated' /tmp/dut.log | tail -1)"
  waitmore sent_all 400 100
  kill -0 $DUT || fail "the DUT died after the forced detach"
  # The shell counts the TX frames the VF had not completed when it gave
  # the device up (RevokeDone.tx_inflight_lost, in npactl's answer): exactly
  # those may be missing. Checked after the RX windows, so a run without
  # the count still reports them.
  lost=$(sed -n 's/.*tx_inflight_lost=\([0-9][0-9]*\).*/\1/p' /tmp/force.out | head -1)
  fb=$(grep 'back on the emulated' /tmp/dut.log | tail -1 | sed -n 's/.*tx moved in \([0-9]*\) us, total \([0-9]*\) us.*/\1\/\2/p')
  extra="; forced detach: REQ fallback (tx moved/total ${fb} us), DUT kept sending on the emulated path"
fi
kill -TERM $BLAST; wait $BLAST
kill -TERM $DUT; wait $DUT; drc=$?
sleep 1
# The agent's switch drops a broadcast for the sink when the sink's RX ring
# is full (a slow receiver under TCG load): its own counter says how many,
# so those are accounted too (sum of the sink's per-queue rx_dropped).
sinkdrop=$(ctl --json stats sink 2>/dev/null | grep -o '"rx_dropped":[0-9]*' | cut -d: -f2 |
  awk '{s += $1} END {print s + 0}')
kill -TERM $SINK $SNIFF; wait $SINK; wait $SNIFF
[ $drc = 0 ] || fail "DUT exit $drc: $(grep -E '^(DUT|FAIL)' /tmp/dut.log)"
grep '^DUT:' /tmp/dut.log
grep '^BLAST:' /tmp/blast.log
cat /tmp/marks.txt

# RX: each VF window exactly once at the DUT, nothing anywhere twice.
rxfail="" want=0 w=0
for win in $windows; do
  w=$((w + 1)); a=${win%:*} b=${win#*:}
  [ "$b" -gt "$a" ] 2>/dev/null || rxfail="${rxfail}window $w: empty marks [$a,$b); "
  want=$((want + b - a))
  $X range --file /tmp/dut_rx.bin --from $a --to $b >>/tmp/range.out 2>&1 ||
    rxfail="${rxfail}window $w: $(tail -1 /tmp/range.out | sed 's/^RANGE: file=[^ ]* //'); "
done
cat /tmp/range.out
rxvf=$(sed -n 's/^DUT: .* rx_vf=\([0-9]*\) .*/\1/p' /tmp/dut.log)
rxrec=$(sed -n 's/^DUT: .* rx_recorded=\([0-9]*\) .*/\1/p' /tmp/dut.log)
[ "${rxvf:-0}" -ge $want ] || rxfail="${rxfail}rx_vf=${rxvf:-?} < $want frames sent in the VF windows; "
# Interrupt mode: between sends the DUT sleeps on its queue's interrupt fd;
# on the VF path only the VF's MSI-X (through the plug-in) can wake it early.
ivf=$(sed -n 's/^DUT: .* intr_wakeups_vf=\([0-9]*\) .*/\1/p' /tmp/dut.log)
iemu=$(sed -n 's/^DUT: .* intr_wakeups_emulated=\([0-9]*\) .*/\1/p' /tmp/dut.log)
[ "${ivf:-0}" -gt 0 ] || rxfail="${rxfail}no wake-up by the VF's interrupt in interrupt mode; "
rx="RX: $w VF window(s) [$windows) of blast, $want frames each once at the DUT (rx_vf=$rxvf, recorded=$rxrec); interrupt mode: ${ivf:-0} wake-ups by the VF's MSI-X, ${iemu:-0} by the emulated ring"
[ -z "$rxfail" ] || fail "RX via the VF: $rxfail($rx)"

N=$(cat /tmp/dut.count)
if [ -z "$lost" ]; then
  $X merge --expect $N /tmp/sink.bin /tmp/sniff.bin >/tmp/merge.out 2>&1
  cat /tmp/merge.out
  fail "forced detach: no tx_inflight_lost=<N> in npactl's answer, so the loss cannot be checked ($(head -c 300 /tmp/force.out)); TX $(grep 'MERGE: expect' /tmp/merge.out | sed 's/MERGE: //'); $rx"
fi
$X merge --expect $N --expect-missing $((lost + sinkdrop)) /tmp/sink.bin /tmp/sniff.bin >/tmp/merge.out 2>&1; mrc=$?
cat /tmp/merge.out
[ $mrc = 0 ] || fail "frames lost or duplicated (shell reported tx_inflight_lost=$lost, agent dropped $sinkdrop for the sink): $(grep 'MERGE: expect' /tmp/merge.out); $rx"
m=$(grep 'MERGE: expect' /tmp/merge.out | sed 's/MERGE: //')
vfn=$(grep -m1 '/tmp/sniff.bin' /tmp/merge.out | sed -n 's/.*: \([0-9]*\) frames/\1/p')
[ "$SHELL_VF_FORCE" = 1 ] && extra="$extra, tx_inflight_lost=$lost"
[ "$sinkdrop" -gt 0 ] && m="$m (= $sinkdrop the agent counted as dropped for the slow sink + $lost tx_inflight_lost)"
detail "$SHELL_VF_PLUGIN: attach ${att_ms} ms (npactl; queues switched ${sw_in} us), detach ${det_ms} ms (tx moved/total ${sw_out} us), $vfn frames via the VF to the peer; $m$extra; $rx"
}

# ---------------------------------------------------------------- two hosts
# The two-host lab (docs/vfio-lab.md "Two hosts and a switch"). /init made
# the bridge "tor" with the twins of host A's virtio-net function (LAB_HA_*)
# and host B's e1000e function (LAB_HB_*). twohost_up adds, each in its own
# network namespace:
#   hostA, hostB  a host bridge br0 with the agent's TAP uplink up0 (made
#                 persistent here; the agent attaches to it) and eth0, a veth
#                 whose other end (ulA, ulB) is a port of tor; the host's
#                 address on br0 (10.77.9.1, .2) carries the agents' migration TCP
#   speer         the traffic peer: eth0 (10.77.9.254), other end ulP on tor
# The guest process (10.77.9.10, MAC TWO_GMAC) runs in the root namespace and
# reaches its agent's control socket by path. twohost_down undoes it all.
TWO_GIP=10.77.9.10
TWO_GMAC=52:54:00:4c:0a:10
TWO_PIP=10.77.9.254
twohost_up() {
  need LAB_HA_VIRTIO LAB_HA_TWIN_IF LAB_HB_E1000E LAB_HB_TWIN_IF
  ip link show tor >/dev/null 2>&1 || fail "bridge tor missing (see LABINIT lines)"
  twohost_down quiet
  local h n
  for h in A B; do
    n=1; [ $h = B ] && n=2
    ip netns add host$h || fail "ip netns add host$h"
    ip -n host$h link add br0 type bridge stp_state 0 || fail "host$h: bridge"
    ip -n host$h tuntap add dev up0 mode tap vnet_hdr || fail "host$h: tuntap up0"
    ip link add ul$h type veth peer name eth0 netns host$h || fail "veth ul$h"
    ip -n host$h link set up0 master br0 && ip -n host$h link set eth0 master br0 &&
      ip -n host$h addr add 10.77.9.$n/24 dev br0 && ip -n host$h link set br0 up &&
      ip -n host$h link set eth0 up && ip -n host$h link set lo up &&
      ip link set ul$h master tor && ip link set ul$h up || fail "host$h: wiring"
  done
  ip netns add speer || fail "ip netns add speer"
  ip link add ulP type veth peer name eth0 netns speer || fail "veth ulP"
  ip -n speer addr add $TWO_PIP/24 dev eth0 && ip -n speer link set eth0 up &&
    ip -n speer link set lo up && ip link set ulP master tor && ip link set ulP up ||
    fail "speer: wiring"
  # The peer knows the guest's MAC (no ARP in the measured stream; the guest
  # answers ARP anyway).
  ip -n speer neigh replace $TWO_GIP lladdr $TWO_GMAC dev eth0 nud permanent
  TWO_PMAC=$(ip -n speer link show eth0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
  for d in $LAB_HA_VIRTIO_IF $LAB_HB_E1000E_IF; do ip link set "$d" down 2>/dev/null; done
  TWO_PORTS="ulA,ulB,ulP,$LAB_HA_TWIN_IF,$LAB_HB_TWIN_IF"
}
twohost_down() {
  local b
  for b in $TWO_PIDS; do kill $b 2>/dev/null; done
  wait 2>/dev/null
  ip netns del hostA 2>/dev/null; ip netns del hostB 2>/dev/null; ip netns del speer 2>/dev/null
  # Gone with their namespaces' ends, but a half-made setup may leave them.
  for b in ulA ulB ulP; do ip link del $b 2>/dev/null; done
  for b in ${LAB_HA_VIRTIO:-} ${LAB_HB_E1000E:-}; do
    d=/sys/bus/pci/devices/$b
    echo >$d/driver_override 2>/dev/null
    [ "$(drv $b)" = vfio-pci ] && echo $b >$d/driver/unbind
    [ -e $d/driver ] || echo $b >/sys/bus/pci/drivers_probe
  done
  [ "${1:-}" = quiet ] && return 0
  for f in /tmp/two-*.log; do
    [ -f "$f" ] || continue
    echo "--- $f"; grep -v '^TL ' "$f" | tail -n 20
  done
}
# Where the bridge tor last saw MAC: the port name, or "" if it does not know.
tor_port() { /lab/bin/bridge fdb show br tor 2>/dev/null | awk -v m="$1" '$1 == m && !/permanent/ {print $3; exit}'; }
# two_wait FILE PATTERN TENTHS: wait for PATTERN in FILE, bounded.
two_wait() {
  local i=0
  until grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt $3 ] || fail "no '$2' in $1 after $(($3 / 10)) s: $(grep -v '^TL ' $1 | tail -2)"; sleep 0.1
  done
}
# two_count FILE PATTERN: how many lines match.
two_count() { grep -c "$2" "$1" 2>/dev/null || true; }
# Uptime seconds (= CLOCK_MONOTONIC in the guest, which the programs print as mono=).
two_now() { cut -d' ' -f1 /proc/uptime; }
two_ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%d", (b - a) * 1000}'; }
# two_snap VAR: SIGUSR1 to the watcher, VAR = its next WATCH line.
two_snap() {
  local n0 i=0
  n0=$(two_count /tmp/two-watch.log '^WATCH')
  kill -USR1 $TWO_WATCH || fail "watcher gone: $(tail -2 /tmp/two-watch.log)"
  until [ "$(two_count /tmp/two-watch.log '^WATCH')" -gt "$n0" ]; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "watcher wrote no snapshot in 5 s"; sleep 0.1
  done
  eval "$1=\"\$(grep '^WATCH' /tmp/two-watch.log | tail -1)\""
}
# two_field SNAP PORT KEY: one counter of one port in a WATCH line.
two_field() { echo "$1" | tr ' ' '\n' | grep "^$2:" | tr ',' '\n' | sed -n "s/^\(.*:\)\{0,1\}$3=//p"; }
# two_delta A B PORT KEY: the counter's growth from snapshot A to B.
two_delta() { echo $(( $(two_field "$2" $3 $4) - $(two_field "$1" $3 $4) )); }
# two_steered A B PORT: between snapshots A and B, frames for the guest left
# tor only through PORT (and did leave through it).
two_steered() {
  local p d bad=""
  for p in $(echo $TWO_PORTS | tr ',' ' '); do
    d=$(two_delta "$1" "$2" $p out_to)
    if [ $p = $3 ]; then [ "$d" -gt 0 ] || bad="$bad none out of $p;"
    else [ "$d" = 0 ] || bad="$bad $d out of $p;"; fi
  done
  echo "$bad"
}
# npactl for the agent whose control socket is $1: the admin socket
# <control>.admin when the agent has one, else the control socket itself.
two_ctl() {
  local s="$1"; shift
  [ -S "$s.admin" ] && s="$s.admin"
  /lab/bin/npa-lab-npactl --socket "$s" --timeout 30000 "$@"
}
# two_bg NS VAR LOG CMD...: run CMD in namespace NS in the background, output
# to LOG; VAR = CMD's own pid (ip netns exec forks, so $! is ip's: signals
# go to VAR, the exit status comes from waiting for VAR_IP).
two_bg() {
  local ns=$1 var=$2 log=$3 pf=/tmp/two-$2.pid i=0; shift 3
  rm -f $pf
  ip netns exec $ns /bin/sh -c 'echo $$ >'"$pf"'; exec "$@"' sh "$@" >$log 2>&1 &
  eval "${var}_IP=$!"
  TWO_PIDS="$TWO_PIDS $!"
  until [ -s $pf ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "$* did not start in $ns"; sleep 0.1
  done
  eval "$var=$(cat $pf)"
  TWO_PIDS="$TWO_PIDS $(cat $pf)"
}
# two_agent H EXTRA...: start host H's agent in its namespace, control socket
# /run/npa-H.sock, uplink up0, log /tmp/two-agent-H.log; sets TWO_AGENT_H.
two_agent() {
  local h=$1 i=0; shift
  rm -f /run/npa-$h.sock
  two_bg host$h TWO_AGENT_$h /tmp/two-agent-$h.log /lab/bin/npa-lab-agent --control /run/npa-$h.sock \
    --tap up0 --name host$h --vf-restore-driver --vf-accept-timeout 15000 --vf-revoke-timeout 8000 "$@"
  while [ ! -S /run/npa-$h.sock ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
  [ -S /run/npa-$h.sock ] || fail "agent $h did not start: $(tail -3 /tmp/two-agent-$h.log)"
  say "agent $h up (pid $(eval echo \$TWO_AGENT_$h), namespace host$h)"
}
# say TEXT: a timestamped progress line in the scenario's log (and live).
say() { echo "[$(two_now)] $*"; live ">>> $*"; }
# two_traffic HOSTS: the watcher on tor's ports, the peer and the guest g1 on
# agent A (TWO_PPS datagrams/s each way, default 250; TWO_GUEST_ARGS: more
# npa-lab-story guest options); returns once both streams flow.
two_traffic() {
  rm -f /tmp/two-*.rec /tmp/two-watch.log /tmp/two-peer.log /tmp/two-guest.log
  /lab/bin/npa-lab-story watch --if "$TWO_PORTS" --mac $TWO_GMAC --secs 600 >/tmp/two-watch.log 2>&1 &
  TWO_WATCH=$!; TWO_PIDS="$TWO_PIDS $!"
  two_bg speer TWO_PEER /tmp/two-peer.log /lab/bin/npa-lab-story peer --ip $TWO_PIP --guest-ip $TWO_GIP \
    --pps ${TWO_PPS:-250} --secs 600 --out /tmp/two-peer.rec
  two_wait /tmp/two-watch.log READY 50
  two_wait /tmp/two-peer.log READY 50
  /lab/bin/npa-lab-story guest --socket /run/npa-A.sock --name g1 --ip $TWO_GIP --peer-ip $TWO_PIP \
    --peer-mac $TWO_PMAC --mac $TWO_GMAC --pps ${TWO_PPS:-250} --secs 600 --out /tmp/two-guest.rec \
    --hosts "$1" ${TWO_GUEST_ARGS:-} >/tmp/two-guest.log 2>&1 &
  TWO_GUEST=$!; TWO_PIDS="$TWO_PIDS $!"
  two_wait /tmp/two-guest.log '^SHELL' 100
  local i=0
  until [ "$(grep '^TL ' /tmp/two-guest.log | tail -1 | sed -n 's/.* rx=\([0-9]*\).*/\1/p')" -gt 100 ] 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 150 ] || fail "the streams did not start: $(tail -2 /tmp/two-guest.log) / $(tail -2 /tmp/two-peer.log)"; sleep 0.1
  done
  say "guest g1 and the peer stream both ways"
}
# two_finish: stop both senders, let the paths drain, stop the receivers and
# check both records: every datagram sent arrived exactly once. Sets TWO_GSUM,
# TWO_PSUM (the final lines), TWO_GSENT, TWO_PSENT, TWO_CHECK_G, TWO_CHECK_P.
two_finish() {
  kill -USR1 $TWO_GUEST $TWO_PEER
  sleep 1.5
  kill -TERM $TWO_GUEST $TWO_PEER
  wait $TWO_GUEST; local grc=$?
  wait $TWO_PEER_IP; local prc=$?
  TWO_GSUM=$(grep '^GUEST:' /tmp/two-guest.log); TWO_PSUM=$(grep '^PEER:' /tmp/two-peer.log)
  [ $grc = 0 ] && [ $prc = 0 ] || fail "guest exit $grc, peer exit $prc: $TWO_GSUM / $TWO_PSUM"
  TWO_GSENT=$(echo "$TWO_GSUM" | sed -n 's/.* sent=\([0-9]*\).*/\1/p')
  TWO_PSENT=$(echo "$TWO_PSUM" | sed -n 's/.* sent=\([0-9]*\).*/\1/p')
  TWO_CHECK_G=$(/lab/bin/npa-lab-story check --file /tmp/two-guest.rec --expect $TWO_PSENT); local g=$?
  TWO_CHECK_P=$(/lab/bin/npa-lab-story check --file /tmp/two-peer.rec --expect $TWO_GSENT); local p=$?
  echo "$TWO_GSUM"; echo "$TWO_PSUM"
  echo "peer -> guest: $TWO_CHECK_G"; echo "guest -> peer: $TWO_CHECK_P"
  TWO_LOST_RX=$(echo "$TWO_CHECK_G" | sed -n 's/.* missing=\([0-9]*\).*/\1/p')
  TWO_LOST_TX=$(echo "$TWO_CHECK_P" | sed -n 's/.* missing=\([0-9]*\).*/\1/p')
  TWO_DUP=$(( $(echo "$TWO_CHECK_G" | sed -n 's/.* duplicates=\([0-9]*\).*/\1/p') + \
              $(echo "$TWO_CHECK_P" | sed -n 's/.* duplicates=\([0-9]*\).*/\1/p') ))
  TWO_FINISH_OK=1
  [ $g = 0 ] && [ $p = 0 ] || TWO_FINISH_OK=0
}
# live TEXT: with run_lab.sh --live (scripts/demo.sh), TEXT goes to the
# console at once, where run_lab.sh prints it; scenario logs come only at the end.
live() { [ -f /lab/live ] && echo "LIVE $*" >/dev/console; return 0; }
# two_live_timeline: with --live, four lines a second from the guest's and the
# peer's latest counters: host, path, plug-in, datagrams each way, lost so far.
two_live_timeline() {
  [ -f /lab/live ] || return 0
  ( while :; do
      g=$(tail -n 12 /tmp/two-guest.log 2>/dev/null | grep '^TL ' | tail -1)
      p=$(tail -n 12 /tmp/two-peer.log 2>/dev/null | grep '^PTL ' | tail -1)
      pl=$(echo "$p" | sed -n 's/.* lost_rx=\([0-9]*\).*/\1/p')
      [ -n "$g" ] && echo "$g" | awk -v pl="${pl:-0}" '{
          for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
          printf "LIVE   t=%6.2fs  host %-2s path %-8s plug-in %-10s | guest tx %6d  rx %6d | lost: rx %d  tx %d\n",
            v["t"], v["host"], v["path"], v["plugin"], v["tx"], v["rx"], v["lost_rx"], pl }' >/dev/console
      sleep 0.25
    done ) &
  TWO_PIDS="$TWO_PIDS $!"
}
