# agent_vf: npa-agent's VF management on real VFIO. The agent (lab name
# npa-lab-agent, same sources as npa-agent) pools a virtio-net and an e1000e
# function; npactl (npa-lab-npactl) lists them as JSON with their IDs; fake
# control-protocol guests (npa-lab-vf-guest) receive the real device fd and
# check it with VFIO_DEVICE_GET_INFO and config space. Then:
#   virtio: attach -> ACTIVE, reset refused while attached, planned detach
#           (Revoke/RevokeDone) -> FREE; a declining guest -> teardown.
#   e1000e: attach (guest writes a marker to RDBAL0, BAR0+0x2800), planned
#           detach, attach again -> the new offer reads 0 (reset between
#           owners); forced detach -> the agent raises VFIO REQ: the guest
#           still reads its marker (asked before any reset), ignores the REQ
#           (--hold-after-req, an uncooperative guest), and after the agent's
#           grace period reads 0 through its still-open fd (the agent's reset,
#           confirmed), closes it, and the unbind completes -> FREE; npactl vf
#           reset of the free VF. (A cooperating guest: 82-shell_vf_e1000e.)
need LAB_VIRTIO1 LAB_E1000E0
for b in npa-lab-agent npa-lab-npactl npa-lab-vf-guest; do
  [ -x /lab/bin/$b ] || fail "/lab/bin/$b missing (ninja npa-lab-agent npa-lab-npactl npa-lab-vf-guest)"
done
V=$LAB_VIRTIO1
E=$LAB_E1000E0
SOCK=/run/npa-lab-agent.sock
# Generous: under TCG on a loaded host a libpci scan alone can take seconds.
ctl() { /lab/bin/npa-lab-npactl --socket $SOCK.admin --timeout 60000 "$@"; }
GUESTS=""
cleanup() {
  for p in $GUESTS; do kill $p 2>/dev/null; done
  [ -n "${AGENT:-}" ] && kill $AGENT 2>/dev/null
  wait 2>/dev/null
  for b in $V $E; do
    d=/sys/bus/pci/devices/$b
    echo >$d/driver_override 2>/dev/null
    [ "$(drv $b)" = vfio-pci ] && echo $b >$d/driver/unbind
    [ -e $d/driver ] || echo $b >/sys/bus/pci/drivers_probe
  done
  echo "--- agent log"; cat /tmp/agent.log 2>/dev/null | tail -n 40
}
trap cleanup EXIT
ip link set "$LAB_VIRTIO1_IF" down 2>/dev/null
ip link set "$LAB_E1000E0_IF" down 2>/dev/null

/lab/bin/npa-lab-agent --control $SOCK --vf $V --vf $E --vf-restore-driver \
  --vf-accept-timeout 8000 --vf-revoke-timeout 3000 --vf-force-grace 1500 >/tmp/agent.log 2>&1 &
AGENT=$!
i=0; while [ ! -S $SOCK ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -S $SOCK ] || fail "agent did not start: $(tail -3 /tmp/agent.log)"

# --- inventory as JSON (one object per function after splitting on '{"pci"')
ctl vf list --json >/tmp/list.json || fail "npactl vf list --json failed"
row() { sed 's/{"pci"/\n{"pci"/g' /tmp/list.json | grep "^{\"pci\":\"$1\""; }
rv=$(row $V); re=$(row $E)
echo "virtio row: $rv"; echo "e1000e row: $re"
echo "$rv" | grep -q '"vendor":"1af4","device":"1041"' || fail "virtio $V: wrong IDs in vf list: $rv"
echo "$rv" | grep -q '"class":"020000"' || fail "virtio $V: class"
echo "$rv" | grep -q '"in_pool":true,"state":"FREE"' || fail "virtio $V: not FREE in the pool"
echo "$re" | grep -q '"vendor":"8086","device":"10d3"' || fail "e1000e $E: wrong IDs in vf list: $re"
echo "$re" | grep -q '"iommu_group":[0-9]' || fail "e1000e $E: no IOMMU group"
echo "$re" | grep -q '"in_pool":true,"state":"FREE"' || fail "e1000e $E: not FREE in the pool"
if [ -n "${LAB_NVME_PF:-}" ]; then
  row $LAB_NVME_PF | grep -q '"sriov":{"totalvfs":2' || fail "nvme PF: SR-IOV not listed"
fi
ctl vf list

startguest() { # name log args...
  n=$1; log=$2; shift 2
  /lab/bin/npa-lab-vf-guest --socket $SOCK --name $n --max-secs 300 "$@" >$log 2>&1 &
  GUESTS="$GUESTS $!"
  i=0; while ! ctl guests | grep -q "^[0-9]* *$n .*RUNNING"; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "guest $n not RUNNING: $(tail -2 $log)"; sleep 0.1
  done
}
state() { ctl vf list --json | sed 's/{"pci"/\n{"pci"/g' | grep "^{\"pci\":\"$1\"" | sed 's/.*"state":"\([A-Z]*\)".*/\1/'; }
waitstate() { # bdf state
  i=0; while [ "$(state $1)" != "$2" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "$1 is $(state $1), want $2"; sleep 0.1
  done
}
gok() { grep -q "VFGUEST: ok $2" $1 || fail "guest log $1 lacks '$2': $(grep FAIL $1 | head -1)"; }

# --- virtio-net: attach, reset refused, planned detach
startguest g0 /tmp/g0.log
ctl vf attach g0 $V || fail "vf attach g0 $V: $(tail -3 /tmp/agent.log)"
gok /tmp/g0.log "VFIO_DEVICE_GET_INFO on offered fd"
gok /tmp/g0.log "config space 1af4:1041 matches"
[ "$(state $V)" = ACTIVE ] || fail "$V is $(state $V) after attach"
ctl guests | grep -q "g0 .*VF_ACTIVE *vf" || fail "g0 not VF_ACTIVE on path vf"
out=$(ctl vf reset $V 2>&1) && fail "vf reset of an attached VF succeeded"
echo "$out" | grep -q "detach it first" || fail "vf reset while attached: '$out'"
ctl vf detach g0 >/tmp/det.out || fail "vf detach g0: $(cat /tmp/det.out)"
cat /tmp/det.out
grep -q "tx_inflight_lost=0" /tmp/det.out || fail "detach message: $(cat /tmp/det.out)"
gok /tmp/g0.log "device fd closed, revoke_done sent"
waitstate $V FREE
grep -q "vf $V: released by guest 'g0' (revoke_done)" /tmp/agent.log || fail "agent did not log the release"
[ "$(drv $V)" = virtio-pci ] || fail "$V: driver $(drv $V) after release with --vf-restore-driver"

# --- a guest that declines
startguest g2 /tmp/g2.log --decline
out=$(ctl vf attach g2 $V 2>&1) && fail "declined attach reported success"
echo "$out" | grep -q "declined on purpose" || fail "decline reason not reported: '$out'"
waitstate $V FREE

# --- e1000e: marker, planned detach, re-attach sees a clean device, forced detach
startguest g1 /tmp/g1.log --mark 0x2800 --check-clear 0x2800 --hold-after-req
ctl vf attach g1 $E || fail "vf attach g1 $E: $(tail -3 /tmp/agent.log)"
gok /tmp/g1.log "config space 8086:10d3 matches"
gok /tmp/g1.log "marker 0xa5a5a000 written"
grep -q "reset_method=bus" /tmp/agent.log 2>/dev/null ||
  [ "$(cat /sys/bus/pci/devices/$E/reset_method)" = bus ] || fail "$E: reset_method not bus"
ctl vf detach g1 || fail "planned detach of g1"
waitstate $E FREE
ctl vf attach g1 $E || fail "second attach of $E"
[ "$(grep -c 'offered device is clean' /tmp/g1.log)" = 2 ] || fail "second offer not clean: $(grep FAIL /tmp/g1.log)"
t0=$(cut -d' ' -f1 /proc/uptime)
ctl vf detach --force g1 >/tmp/force.out 2>&1 || fail "forced detach of g1: $(cat /tmp/force.out)"
grep -q "did not answer VFIO REQ" /tmp/force.out || fail "forced detach did not wait for the guest: $(cat /tmp/force.out)"
i=0; until grep -q "VFGUEST: ok device fd closed" /tmp/g1.log; do
  i=$((i + 1)); [ $i -lt 100 ] || fail "g1 did not close its fd after the forced detach: $(tail -3 /tmp/g1.log)"; sleep 0.1
done
gok /tmp/g1.log "REQ interrupt"
gok /tmp/g1.log "at REQ the device still holds its state"
gok /tmp/g1.log "reset confirmed through the guest's fd"
waitstate $E FREE
t1=$(cut -d' ' -f1 /proc/uptime)
ctl vf reset $E || fail "vf reset of free $E"

# --- SR-IOV through the agent: QEMU's nvme PF (the only SR-IOV PF QEMU has)
sriov=""
if [ -n "${LAB_NVME_PF:-}" ]; then
  ctl vf enable $LAB_NVME_PF 2 || fail "vf enable $LAB_NVME_PF 2: $(tail -2 /tmp/agent.log)"
  ctl vf list --json >/tmp/list.json
  row $LAB_NVME_PF | grep -q '"sriov":{"totalvfs":2,"numvfs":2}' || fail "numvfs not 2 after vf enable: $(row $LAB_NVME_PF)"
  nvf=$(sed 's/{"pci"/\n{"pci"/g' /tmp/list.json | grep -c "\"physfn\":\"$LAB_NVME_PF\"")
  [ "$nvf" = 2 ] || fail "vf list shows $nvf VFs of $LAB_NVME_PF, want 2"
  ctl vf enable $LAB_NVME_PF 0 || fail "vf enable $LAB_NVME_PF 0"
  sriov="; vf enable: 2 VFs listed with physfn, then 0"
fi
grep -q "FAIL" /tmp/g0.log /tmp/g1.log /tmp/g2.log && fail "a guest check failed: $(grep -h FAIL /tmp/g*.log | head -1)"
cat /tmp/g1.log
ctl vf list
fs=$(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.2f", b-a}')
detail "vf list JSON ids ok; virtio attach/GET_INFO/revoke ok, decline ok; e1000e marker cleared across owners, forced detach: REQ before reset, uncooperative guest reset after the grace (read back via its fd), FREE in ${fs}s; vf reset ok$sriov"
