#!/usr/bin/env bash
# tests/vm/run_vm_test.sh — a QEMU VM whose own Linux virtio-net driver talks
# to a peer through npa-agent (issue 11; docs/vm.md).
#
#   run_vm_test.sh --agent NPA_AGENT --udp NPA_VM_UDP [--npactl NPACTL]
#                  [--queues N] [--count N] [--rate PPS] [--keep]
#
#   --agent PATH   the npa-agent binary
#   --udp PATH     npa-vm-udp, linked statically (it runs inside the VM too)
#   --npactl PATH  if given, the agent's own counters (npactl --json agent)
#                  are printed after the run, and its uplink must have
#                  dropped nothing
#   --queues N     queue pairs of the VM's NIC (default 1; N > 1 adds mq=on
#                  and gives the VM N vCPUs, so Linux uses them all)
#   --count N      datagrams each way (default 2000)
#   --rate PPS     datagrams per second each way (default 500)
#   --reconnect    restart npa-agent (SIGTERM, then a new one on the same
#                  socket) after the VM's first ping; QEMU's chardev has
#                  reconnect=1. The VM waits for its link to drop and come
#                  back, pings again, then runs the stream (0 lost after it)
#   --keep         keep the work directory (console, logs, initramfs)
#
# Env: NPA_VM_AGENT_LOG  the agent's --log-level (default info; debug logs
#                        every vhost-user message QEMU sends)
#      NPA_LAB_WORK      the lab's cache (kernel), see lab_kernel.sh
# What it does: a network namespace npavm<pid> holds npa-agent (--mode switch,
# --vhost-user SOCK, --tap npavm<pid>) and, on the TAP, the peer 10.99.0.1/24.
# QEMU (TCG; KVM when /dev/kvm works) boots the lab's kernel (lab_kernel.sh)
# with its RAM on a shared memfd backend and a virtio-net-pci NIC on
# -netdev vhost-user at the agent's socket. The VM's /init (vm_init.sh) sets
# 10.99.0.2/24, pings the peer, checks ARP, and runs npa-vm-udp against the
# peer's npa-vm-udp: COUNT datagrams each way, sequence-numbered.
#
# Checks: ping answered, the peer's MAC in the VM's ARP table and the VM's in
# the peer's, 0 lost, 0 duplicated, 0 corrupt both ways, the agent alive, its
# log free of rejected vhost-user messages and of sanitizer reports, exit 0 on
# SIGTERM. The agent runs with --require-sealed-memory: QEMU's memfd backend
# seals by default. Prints the figures.
# Exit 0 pass, 1 fail, 2 setup error (missing tool or kernel). Everything it
# made (namespace, TAP, QEMU, agent, peer, files) goes on every exit path.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AGENT="" UDP="" NPACTL="" QUEUES=1 COUNT=2000 RATE=500 KEEP=0 RECONNECT=0
usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) AGENT="$2"; shift 2 ;;
    --udp) UDP="$2"; shift 2 ;;
    --npactl) NPACTL="$2"; shift 2 ;;
    --queues) QUEUES="$2"; shift 2 ;;
    --count) COUNT="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --reconnect) RECONNECT=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_vm_test.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[ -x "$AGENT" ] && [ -x "$UDP" ] || { echo "run_vm_test.sh: --agent and --udp must be executables" >&2; exit 2; }
[ -z "$NPACTL" ] || [ -x "$NPACTL" ] || { echo "run_vm_test.sh: --npactl $NPACTL is not executable" >&2; exit 2; }
case "$QUEUES" in [1-8]) ;; *) echo "run_vm_test.sh: --queues must be 1..8" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "run_vm_test.sh: needs root (network namespace, TAP)" >&2; exit 2; }

T0=$EPOCHREALTIME
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }
log() { echo "[vm $(elapsed)s] $*" >&2; }

# Unique per run, so it can run beside other tests: names <= 15 chars.
NS="npavm$$"
TAP="npavm$$"
RUN="$(mktemp -d /tmp/npa-vm.XXXXXX)"
SOCK="$RUN/vhost.sock"
CTL="$RUN/agent.ctl"
CONSOLE="$RUN/console.log"
VM_MAC=52:54:00:56:4d:02
VM_IP=10.99.0.2 PEER_IP=10.99.0.1 VM_PORT=7001 PEER_PORT=7002
APID="" QPID="" PPID_UDP=""

stop_pid() {  # pid: TERM, bounded wait (5 s), KILL; returns its exit status
  local p="$1" _
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
}
cleanup() {
  set +e
  # QEMU first (it would otherwise see the agent go), then the peer, then the
  # agent; its TAP goes with it and with the namespace.
  stop_pid "$QPID"; stop_pid "$PPID_UDP"; stop_pid "$APID"
  ip netns del "$NS" 2>/dev/null
  if [ $KEEP = 1 ]; then log "kept: $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { echo "FAIL: $*"; FAILED=1; }
FAILED=0

# ------------------------------------------------------------------ tools
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v objcopy >/dev/null || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  # --no-install-recommends: QEMU is ~18 MB without, ~160 MB with recommends.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" \
    >"$RUN/apt.log" 2>&1 || { echo "run_vm_test.sh: apt-get install ${need[*]} failed" >&2; exit 2; }
fi
BUSYBOX="$(dpkg -L busybox-static | grep -m1 '/bin/busybox$')"

# ------------------------------------------------------------------ kernel
. "$HERE/lab_kernel.sh"
LAB_PREFER_CACHED=1 lab_kernel_prepare || exit 2
lab_module_order virtio_pci virtio_net || exit 2

# ------------------------------------------------------------------ initramfs
ROOT="$RUN/root"
mkdir -p "$ROOT"/{bin,vm/mods,proc,sys,dev,tmp}
cp "$BUSYBOX" "$ROOT/bin/busybox"
cp "$UDP" "$ROOT/vm/npa-vm-udp"
for n in "${LAB_MOD_ORDER[@]}"; do cp "${LAB_KO[$n]}" "$ROOT/vm/mods/$n.ko"; done
printf '%s\n' "${LAB_MOD_ORDER[@]}" >"$ROOT/vm/modules.order"
cat >"$ROOT/vm/env" <<EOF
VM_MAC=$VM_MAC
VM_IP=$VM_IP
PEER_IP=$PEER_IP
VM_PORT=$VM_PORT
PEER_PORT=$PEER_PORT
COUNT=$COUNT
RATE=$RATE
UDP_TIMEOUT=60
RECONNECT=$RECONNECT
EOF
cp "$HERE/vm_init.sh" "$ROOT/init"; chmod +x "$ROOT/init"
CPIO="$RUN/initramfs.cpio"
(cd "$ROOT" && find . | cpio -o -H newc --quiet >"$CPIO") || { echo "run_vm_test.sh: cpio failed" >&2; exit 2; }

# ------------------------------------------------------------------ agent + peer side
ip netns add "$NS" || { echo "run_vm_test.sh: ip netns add $NS failed" >&2; exit 2; }
ip -n "$NS" link set lo up
# The agent's TAP is created in the agent's namespace. QEMU connects at
# start, long before the VM's driver starts the rings: the negotiation
# deadline must cover the boot (TCG on a loaded machine).
start_agent() {  # the agent, its TAP up with the peer's address (appends to agent.log)
  ip netns exec "$NS" timeout -k 5 170 "$AGENT" --control "$CTL" --vhost-user "$SOCK" --tap "$TAP" \
    --mode switch --name vmtest --restart-roster none --negotiate-timeout 120000 --require-sealed-memory \
    --log-level "${NPA_VM_AGENT_LOG:-info}" \
    >>"$RUN/agent.log" 2>&1 &
  APID=$!
  for _ in $(seq 100); do
    [ -S "$SOCK" ] && ip -n "$NS" link show "$TAP" >/dev/null 2>&1 && break
    kill -0 "$APID" 2>/dev/null || break
    sleep 0.05
  done
  if ! [ -S "$SOCK" ] || ! ip -n "$NS" link show "$TAP" >/dev/null 2>&1; then
    echo "FAIL: npa-agent did not listen on $SOCK with TAP $TAP"; cat "$RUN/agent.log"; exit 1
  fi
  ip -n "$NS" addr replace "$PEER_IP/24" dev "$TAP" && ip -n "$NS" link set "$TAP" up ||
    { echo "run_vm_test.sh: cannot configure $TAP" >&2; exit 2; }
}
start_agent

# ------------------------------------------------------------------ QEMU
ACCEL=tcg
# KVM only if it really works here (some hosts have /dev/kvm without VT-x).
if [ -w /dev/kvm ] && grep -qE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; fi
MEM=256
NET="vhost-user,id=net0,chardev=vu0"
DEVOPT="virtio-net-pci,netdev=net0,mac=$VM_MAC,disable-legacy=on,romfile="
# Under TCG, QEMU 7.2 dereferences its KVM-only irqfd table when vhost starts
# on a virtio-pci device with MSI-X (SIGSEGV in msix_set_vector_notifiers,
# from vhost_net_start). vectors=0 gives the device INTx: QEMU itself then
# reads the agent's call eventfds and raises the interrupt (docs/vm.md).
VECTORS=$((2 * QUEUES + 2))
[ $ACCEL = tcg ] && VECTORS=0
DEVOPT+=",vectors=$VECTORS"
if [ "$QUEUES" -gt 1 ]; then
  NET+=",queues=$QUEUES"
  DEVOPT+=",mq=on"
fi
CHR_OPT=""
[ $RECONNECT = 1 ] && CHR_OPT=",reconnect=1"   # retry the socket every second
# qboot is the fastest firmware for a PVH vmlinux; SeaBIOS otherwise.
BIOS=()
[ -f /usr/share/qemu/qboot.rom ] && [[ "$LAB_KERNEL" == */vmlinux ]] && BIOS=(-bios /usr/share/qemu/qboot.rom)
log "booting $LAB_KPKG under QEMU ($ACCEL, ${MEM} MB memfd, $QUEUES queue pair(s))"
timeout -k 5 150 qemu-system-x86_64 \
  -nodefaults -no-user-config -display none -monitor none -no-reboot \
  -serial "file:$CONSOLE" \
  -machine "q35,accel=$ACCEL,memory-backend=mem" -cpu max -smp "$QUEUES" -m "$MEM" \
  -object "memory-backend-memfd,id=mem,size=${MEM}M,share=on" \
  -chardev "socket,id=vu0,path=$SOCK$CHR_OPT" -netdev "$NET" -device "$DEVOPT" \
  "${BIOS[@]}" -kernel "$LAB_KERNEL" -initrd "$CPIO" \
  -append "console=ttyS0 quiet panic=-1 no_timer_check" \
  </dev/null >"$RUN/qemu.log" 2>&1 &
QPID=$!

# The peer's end starts once the VM's NIC is up (it would wait in its SYNC
# handshake anyway; this keeps its SYNCs off a ring nobody reads yet).
for _ in $(seq 1200); do
  grep -q '^VMTEST net-up' "$CONSOLE" 2>/dev/null && break
  kill -0 "$QPID" 2>/dev/null || break
  sleep 0.1
done
if [ $RECONNECT = 1 ] && grep -q '^VMTEST net-up' "$CONSOLE" 2>/dev/null; then
  # After the VM's first ping: a planned stop of the agent, and a new one on
  # the same socket. QEMU reconnects by itself.
  for _ in $(seq 600); do
    grep -q '^VMTEST reconnect-wait' "$CONSOLE" 2>/dev/null && break
    kill -0 "$QPID" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q '^VMTEST reconnect-wait' "$CONSOLE" 2>/dev/null; then
    log "restarting npa-agent (SIGTERM, pid $APID)"
    stop_pid "$APID"; arc=$?; APID=""
    [ $arc = 0 ] || fail "npa-agent exit status $arc on SIGTERM (before the restart)"
    echo "---- agent restarted" >>"$RUN/agent.log"
    start_agent
    log "npa-agent restarted (pid $APID)"
  else
    fail "the VM never reached its reconnect step"
  fi
fi
if grep -q '^VMTEST net-up' "$CONSOLE" 2>/dev/null; then
  log "$(grep -m1 '^VMTEST net-up' "$CONSOLE" | tr -d '\r')"
  ip netns exec "$NS" "$UDP" --bind "$PEER_IP:$PEER_PORT" --peer "$VM_IP:$VM_PORT" --count "$COUNT" \
    --rate "$RATE" --timeout 90 --name peer >"$RUN/peer.out" 2>&1 &
  PPID_UDP=$!
else
  fail "the VM's NIC did not come up (console below)"
fi
wait "$QPID"; qrc=$?; QPID=""
if [ -n "$PPID_UDP" ]; then
  # The peer's end stops on its own (all received, or FIN + quiet, or 90 s).
  for _ in $(seq 1000); do kill -0 "$PPID_UDP" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$PPID_UDP"; PPID_UDP=""
fi
log "QEMU exited ($qrc)"

# ------------------------------------------------------------------ checks
# The console without CRs, in a file: under pipefail, `producer | grep -q`
# fails whenever grep exits before the producer's last write (SIGPIPE).
tr -d '\r' <"$CONSOLE" >"$RUN/console.txt" 2>/dev/null
con() { cat "$RUN/console.txt"; }
congrep() { grep -q "$@" "$RUN/console.txt"; }
con | grep -E '^(VMTEST|VMUDP)' | sed 's/^/  vm: /'
[ -f "$RUN/peer.out" ] && sed 's/^/  peer: /' "$RUN/peer.out"
[ $qrc = 0 ] || fail "QEMU exit status $qrc ($([ $qrc = 124 ] && echo timeout || echo error); qemu.log: $(tail -3 "$RUN/qemu.log" | tr '\n' ' '))"
congrep '^VMTEST ping ok' || fail "the VM's ping to $PEER_IP"
congrep -E "^VMTEST arp $PEER_IP ([0-9a-f]{2}:){5}[0-9a-f]{2}" || fail "ARP for $PEER_IP in the VM"
peer_mac=$(ip -n "$NS" neigh show "$VM_IP" dev "$TAP" 2>/dev/null | awk '{for (i=1;i<NF;i++) if ($i=="lladdr") print $(i+1)}')
[ "$peer_mac" = "$VM_MAC" ] || fail "the peer's ARP entry for $VM_IP is '${peer_mac}' (want $VM_MAC)"
check_udp() {  # side line
  local side="$1" line="$2" k v
  [ -n "$line" ] || { fail "no UDP result from the $side"; return; }
  for k in lost dup corrupt; do
    v=$(sed -n "s/.* $k=\([0-9]*\).*/\1/p" <<<"$line")
    [ "$v" = 0 ] || fail "$side: $k=$v"
  done
  v=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$line"); [ "$v" = "$COUNT" ] || fail "$side: sent=$v of $COUNT"
  v=$(sed -n 's/.* received=\([0-9]*\).*/\1/p' <<<"$line"); [ "$v" = "$COUNT" ] || fail "$side: received=$v of $COUNT"
}
check_udp VM "$(grep -m1 '^VMUDP name=vm ' "$RUN/console.txt")"
check_udp peer "$(grep -m1 '^VMUDP name=peer ' "$RUN/peer.out" 2>/dev/null)"
congrep '^VMTEST udp-rc 0' || fail "npa-vm-udp in the VM did not pass"
if [ $RECONNECT = 1 ]; then
  congrep '^VMTEST reconnect link down .* carrier 1' || fail "the VM's link did not come back after the restart"
  congrep '^VMTEST reconnect ping ok' || fail "no ping after the agent restart"
  [ "$(grep -c 'attached via vhost-user socket' "$RUN/agent.log")" = 2 ] ||
    fail "QEMU did not reconnect to the new agent"
fi
if [ -n "$NPACTL" ]; then
  # The agent's own view (switch and uplink counters; the VM's guest is gone
  # with QEMU): printed with the figures.
  ag=$("$NPACTL" --socket "$CTL.admin" --json agent 2>&1 | head -c 3000)
  echo "  agent: $ag"
  # Nothing the agent dropped on the uplink either way.
  grep -q '"rx_dropped":0,' <<<"$ag" && grep -q '"tx_dropped":0}' <<<"$ag" ||
    fail "npactl agent: the uplink dropped frames (or no answer)"
fi
kill -0 "$APID" 2>/dev/null || fail "npa-agent died"
# A planned stop: exit 0, and nothing from the sanitizers (an ASan build).
stop_pid "$APID"; arc=$?; APID=""
[ $arc = 0 ] || fail "npa-agent exit status $arc on SIGTERM"
if grep -qE 'Sanitizer|runtime error' "$RUN/agent.log"; then
  fail "sanitizer report in the agent's log:"
  grep -E -A5 'Sanitizer|runtime error' "$RUN/agent.log" | head -20 | sed 's/^/  agent: /'
fi
if grep -E 'rejected|broken|unsupported' "$RUN/agent.log" >/dev/null; then
  fail "the agent rejected part of QEMU's vhost-user session:"
  grep -E 'rejected|broken|unsupported' "$RUN/agent.log" | head -10 | sed 's/^/  agent: /'
fi
if [ $FAILED = 1 ]; then
  echo "--- console (last 40 lines)"; con | tail -40
  echo "--- agent log (last 30 lines)"; tail -30 "$RUN/agent.log"
  echo "VM TEST FAIL ($(elapsed)s)"
  exit 1
fi
echo "VM TEST PASS ($(elapsed)s): $COUNT datagrams each way, 0 lost, 0 duplicated; queue pairs $QUEUES, $ACCEL$([ $RECONNECT = 1 ] && echo ", after an agent restart")"
