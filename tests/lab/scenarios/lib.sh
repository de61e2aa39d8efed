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
