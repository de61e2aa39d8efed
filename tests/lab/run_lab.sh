#!/usr/bin/env bash
# tests/lab/run_lab.sh — the VFIO lab: boot a small Debian-kernel guest under
# QEMU (TCG) with a virtual Intel IOMMU and emulated PCIe functions, and run the
# lab scenarios (tests/lab/scenarios/*.sh) inside it, all in ONE boot.
#
#   tests/lab/run_lab.sh [--build-dir DIR] [--scenario NAME]... [--list] [--keep]
#
#   --build-dir DIR   CMake build dir holding npa-lab-vf-probe and npa_vf_test
#                     (default: $NPA_BUILD_DIR or <repo>/build)
#   --scenario NAME   run only NAME (repeatable); default: every scenario
#                     except those whose file has a "# lab-manual: WHY" line
#                     (not yet reliable enough for CI; they run when named)
#   --list            print the scenario names (manual ones marked) and exit
#   --keep            keep the guest root and console log (printed at the end)
#   --live            print the guest's "LIVE ..." console lines as they come
#                     (scenarios write them with live(); scripts/demo.sh)
#
# Env: NPA_LAB_WORK   cache/work dir (default /var/tmp/npa-lab): kernel deb,
#                     extracted vmlinux + modules, console logs; each run
#                     builds its guest in its own run.XXXXXX below it
#      NPA_LAB_TIMEOUT  wall-clock limit for the whole QEMU run (default 300 s)
#      NPA_LAB_SCENARIO_TIMEOUT  per-scenario limit inside the guest (default 60 s)
#
# Output: one "LAB: <scenario> PASS|FAIL (<seconds>s) <detail>" line per
# scenario, then "N passed, M failed". Exit 0 only if every scenario passed;
# 2 on usage or setup errors. Needs root for apt-get on the first run.
# The guest topology and how to add a scenario: docs/vfio-lab.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BUILD="${NPA_BUILD_DIR:-$REPO/build}"
WORK="${NPA_LAB_WORK:-/var/tmp/npa-lab}"
QEMU_TIMEOUT="${NPA_LAB_TIMEOUT:-300}"
SCN_TIMEOUT="${NPA_LAB_SCENARIO_TIMEOUT:-60}"
KEEP=0
LIVE=0
LIST=0
WANT=()

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD="$2"; shift 2 ;;
    --build-dir=*) BUILD="${1#*=}"; shift ;;
    --scenario) WANT+=("$2"); shift 2 ;;
    --scenario=*) WANT+=("${1#*=}"); shift ;;
    --list) LIST=1; shift ;;
    --keep) KEEP=1; shift ;;
    --live) LIVE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_lab.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
# Absolute, so it compares with the absolute paths ldd prints.
[ -d "$BUILD" ] && BUILD="$(cd "$BUILD" && pwd)"

# Scenario names come from the file names: scenarios/NN-name.sh -> "name";
# NN fixes the order (inventory before bind before vfio-dma ...).
declare -A SCN_FILE=() MANUAL=()
ALL=()
DEFAULT=()
for f in "$HERE"/scenarios/[0-9][0-9]-*.sh; do
  n="$(basename "$f" .sh)"; n="${n#[0-9][0-9]-}"
  SCN_FILE[$n]="$f"; ALL+=("$n")
  why="$(sed -n 's/^# lab-manual: *//p' "$f" | head -1)"
  if [ -n "$why" ]; then MANUAL[$n]="$why"; else DEFAULT+=("$n"); fi
done
if [ $LIST = 1 ]; then
  for n in "${ALL[@]}"; do
    if [ -n "${MANUAL[$n]:-}" ]; then echo "$n (manual: ${MANUAL[$n]})"; else echo "$n"; fi
  done
  exit 0
fi
if [ ${#WANT[@]} -eq 0 ]; then WANT=("${DEFAULT[@]}"); fi
for n in "${WANT[@]}"; do
  [ -n "${SCN_FILE[$n]:-}" ] || { echo "run_lab.sh: no scenario '$n' (have: ${ALL[*]})" >&2; exit 2; }
done

T0=$EPOCHREALTIME
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }
log() { echo "[lab $(elapsed)s] $*" >&2; }
mkdir -p "$WORK"/{pkgs,kernel,logs}
# Per-run state (guest root, initramfs, console) in a private directory, so
# runs sharing NPA_LAB_WORK (several checkouts, a developer next to CI) never
# boot each other's initramfs. QEMU is ours to stop on EVERY exit path: it
# runs under timeout(1), which puts itself in its own process group, so
# neither ^C nor a TERM to this script would otherwise reach it.
RUN="$(mktemp -d "$WORK/run.XXXXXX")"
QPID=""
cleanup() {
  set +e
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
    kill -TERM "$QPID" 2>/dev/null   # timeout(1) passes it on to QEMU (and KILLs 5 s later)
    for _ in $(seq 50); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.2; done
    pkill -KILL -P "$QPID" 2>/dev/null; kill -KILL "$QPID" 2>/dev/null
    log "QEMU stopped"
  fi
  [ $KEEP = 1 ] || rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ------------------------------------------------------------------ host tools
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v objcopy >/dev/null || need+=(binutils)
[ -x /sbin/ip ] || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "run_lab.sh: need packages ${need[*]} (run as root)" >&2; exit 2; }
  log "installing ${need[*]}"
  # --no-install-recommends: QEMU is ~18 MB without, ~160 MB with recommends.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" \
    >"$WORK/logs/apt.log" 2>&1 || { echo "run_lab.sh: apt-get failed, see $WORK/logs/apt.log" >&2; exit 2; }
fi
BUSYBOX="$(dpkg -L busybox-static | grep -m1 '/bin/busybox$')"

PROBE="$BUILD/tests/lab/npa-lab-vf-probe"
VFTEST="$BUILD/hypervisor/vf/npa_vf_test"
for b in "$PROBE" "$VFTEST"; do
  [ -x "$b" ] || { echo "run_lab.sh: $b missing; build it (ninja -C $BUILD npa-lab-vf-probe npa_vf_test)" >&2; exit 2; }
done

# ---------------------------------------------------------------- guest kernel
# tests/vm/lab_kernel.sh is the one place that resolves Debian's
# linux-image-amd64, downloads and extracts it (modules and the PVH vmlinux)
# into $WORK under its lock, and orders modules by their own "depends=".
# SeaBIOS, not qboot: with any NIC attached to a -netdev hubport, qboot never
# starts the kernel on QEMU 7.2 (measured). SeaBIOS still boots the PVH vmlinux.
NPA_LAB_WORK="$WORK"
# shellcheck source=../vm/lab_kernel.sh
. "$REPO/tests/vm/lab_kernel.sh"
lab_kernel_prepare || exit 2
KPKG="$LAB_KPKG" KERNEL="$LAB_KERNEL"
# vfio_iommu_type1 is request_module()d by vfio at run time, not a link
# dependency; the crypto API's soft dependencies come before nvme.
lab_module_order vfio_iommu_type1 vfio-pci e1000e virtio_pci virtio_net crct10dif_generic \
  crc64_rocksoft_generic nvme tun veth bridge || exit 2
ORDER=("${LAB_MOD_ORDER[@]}")

# ------------------------------------------------------------------ initramfs
# The guest runs the project's dynamically linked binaries: copy them with every
# library ldd reports (same paths), plus iproute2's ip for network namespaces.
ROOT="$RUN/root"
rm -rf "$ROOT"; mkdir -p "$ROOT"/{bin,sbin,lab/bin,lab/mods,lab/scenarios,proc,sys,dev,tmp,run,lib64}
cp "$BUSYBOX" "$ROOT/bin/busybox"
# Project binaries without their debug sections (symbols stay): a RelWithDebInfo
# build ships ~4x the bytes otherwise, and the TCG guest's boot time grows with
# the initramfs it unpacks.
put() { objcopy --strip-debug "$1" "$2/$(basename "$1")" 2>/dev/null || cp "$1" "$2/"; SHIP+=("$1"); }
SHIP=()
put "$PROBE" "$ROOT/lab/bin"
put "$VFTEST" "$ROOT/lab/bin"
cp /sbin/ip "$ROOT/lab/bin/ip"   # /lab/bin is first in PATH: busybox has its own ip
cp /sbin/bridge "$ROOT/lab/bin/bridge"   # fdb of the two-host lab's bridge
SHIP+=(/sbin/ip /sbin/bridge)
# Other suites' lab programs and plug-ins, when built: npa-lab-* drivers, the
# conformance runner, vendor plug-ins (/lab/plugins) and deliberately broken
# ones (/lab/plugins/broken). Their scenarios say what they need if absent.
while IFS= read -r b; do put "$b" "$ROOT/lab/bin"; done < <(
  find "$BUILD" -path '*/CMakeFiles' -prune -o -type f -perm -u+x \( -name 'npa-lab-*' -o -name npa-conform \) -print |
  grep -v "^$PROBE\$")
mkdir -p "$ROOT/lab/plugins/broken"
# Vendor plug-ins wherever their CMake put them (build/plugins or a subfolder).
while IFS= read -r so; do put "$so" "$ROOT/lab/plugins"; done < <(
  find "$BUILD/plugins" -path '*/CMakeFiles' -prune -o -type f -name 'npa_plugin_*.so' -print 2>/dev/null)
# Deliberately broken plug-ins. libunknown_caps.so is not broken: unknown
# capability bits from a newer minor are accepted with a warning, by design.
for so in "$BUILD"/tests/plugins/broken/*.so; do
  [ -f "$so" ] && [ "$(basename "$so")" != libunknown_caps.so ] && put "$so" "$ROOT/lab/plugins/broken"
done
# Every library once (the binaries share most of theirs).
declare -A LIBS=()
for b in "${SHIP[@]}"; do
  while read -r lib; do LIBS[$lib]=1; done < <(ldd "$b" | awk '/=> \//{print $3} /^\t\/lib/{print $1}')
done
# Same paths as on the host, and the build's own libraries (found through a
# RUNPATH into the build dir) also in /lab/lib: the guest mounts tmpfs on
# /tmp and /run, which would hide a build dir under them. init puts /lab/lib
# on LD_LIBRARY_PATH, which is searched before RUNPATH.
mkdir -p "$ROOT/lab/lib"
for lib in "${!LIBS[@]}"; do
  mkdir -p "$ROOT$(dirname "$lib")"; cp -L "$lib" "$ROOT$lib"
  case "$lib" in "$BUILD"/*) cp -L "$lib" "$ROOT/lab/lib/" ;; esac
done
for n in "${ORDER[@]}"; do cp "${LAB_KO[$n]}" "$ROOT/lab/mods/$n.ko"; done
printf '%s\n' "${ORDER[@]}" >"$ROOT/lab/modules.order"
cp "$HERE"/scenarios/lib.sh "$ROOT/lab/scenarios/"
: >"$ROOT/lab/run.list"
for n in "${WANT[@]}"; do
  cp "${SCN_FILE[$n]}" "$ROOT/lab/scenarios/$n.sh"; echo "$n" >>"$ROOT/lab/run.list"
done
echo "$SCN_TIMEOUT" >"$ROOT/lab/scenario_timeout"
[ $LIVE = 1 ] && touch "$ROOT/lab/live"
# The two-host lab's agents authenticate each other with mutual TLS: a lab CA
# and one certificate per host (CN hostA, hostB; EC P-256, made once per work
# dir), in /lab/tls. A third, self-signed "rogue" certificate the CA never
# signed is there for refusal tests.
TLS="$WORK/tls"
if [ ! -f "$TLS/.ready" ] && command -v openssl >/dev/null; then
  rm -rf "$TLS"; mkdir -p "$TLS"
  ( cd "$TLS" &&
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes) &&
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' >leaf.ext &&
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 3650 -subj /CN=npa-lab-ca &&
    for h in hostA hostB; do
      openssl req "${ec[@]}" -keyout $h.key -out $h.csr -subj /CN=$h &&
      openssl x509 -req -in $h.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $h.pem -days 3650 -extfile leaf.ext || exit 1
    done &&
    openssl req -x509 "${ec[@]}" -keyout rogue.key -out rogue.pem -days 3650 -subj /CN=rogue &&
    touch .ready ) >"$WORK/logs/tls.log" 2>&1 || log "could not make the lab's TLS files (see $WORK/logs/tls.log)"
fi
mkdir -p "$ROOT/lab/tls"
[ -f "$TLS/.ready" ] && cp "$TLS"/{ca.pem,hostA.pem,hostA.key,hostB.pem,hostB.key,rogue.pem,rogue.key} "$ROOT/lab/tls/"
cp "$HERE/guest_init.sh" "$ROOT/init"; chmod +x "$ROOT/init"
CPIO="$RUN/initramfs.cpio"
(cd "$ROOT" && find . | cpio -o -H newc --quiet >"$CPIO")
log "guest: $KPKG, ${#ORDER[@]} modules, initramfs $(du -h "$CPIO" | cut -f1), scenarios: ${WANT[*]}"

# ----------------------------------------------------------------------- boot
# Topology (docs/vfio-lab.md): four DUT functions, each behind its own PCIe root
# port (bus reset and FLR need one; x-speed=5 or the kernel waits ~2 s for a
# link-active bit QEMU never sets after a bus reset), all on QEMU hub 0 with a
# kernel-driven peer NIC that the guest moves into the "peer" namespace. Nothing
# leaves QEMU: no -netdev user, no socket/mcast. romfile= : no PXE option ROMs. aw-bits=48 so the IOMMU can map
# IOVA == the process virtual address (the agent's convention, docs/architecture.md "Memory").
# The two-host lab (scenarios 9x): host A's virtio-net function and host B's
# e1000e function each have a hub of their own (1, 2) whose only other port is
# a kernel-driven "twin" NIC; /init enslaves the twins to the learning bridge
# "tor", so a frame reaches a function only where the bridge learned its MAC.
DEV=()
i=0
rp() { i=$((i + 1)); DEV+=(-device "pcie-root-port,id=rp$i,bus=pcie.0,chassis=$i,slot=$i,x-speed=5"); }
nic() { # model mac extra [hub]
  rp; DEV+=(-netdev "hubport,id=hp$i,hubid=${4:-0}" -device "$1,bus=rp$i,netdev=hp$i,mac=$2,romfile=${3:+,$3}")
}
nic virtio-net-pci 52:54:00:4c:00:01 iommu_platform=on,disable-legacy=on
nic virtio-net-pci 52:54:00:4c:00:02 iommu_platform=on,disable-legacy=on
nic e1000e 52:54:00:4c:00:03
nic e1000e 52:54:00:4c:00:04
nic virtio-net-pci 52:54:00:4c:00:fe disable-legacy=on      # peer (kernel driver)
nic virtio-net-pci 52:54:00:4c:01:01 iommu_platform=on,disable-legacy=on 1  # host A's VF
nic virtio-net-pci 52:54:00:4c:01:fe disable-legacy=on 1                   # its twin on tor
nic e1000e 52:54:00:4c:02:01 "" 2                                          # host B's VF
nic virtio-net-pci 52:54:00:4c:02:fe disable-legacy=on 2                   # its twin on tor
# SR-IOV: QEMU 7.2's only SR-IOV PF is nvme.
rp; DEV+=(-device nvme-subsys,id=nvsub,nqn=npa-lab
  -device "nvme,bus=rp$i,serial=npalab,subsys=nvsub,sriov_max_vfs=2,sriov_vq_flexible=4,sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=3")

CONSOLE="$RUN/console.log"
log "booting QEMU (TCG, limit ${QEMU_TIMEOUT}s)"
qrc=0
# In the background so that the traps above run (and stop it) while we wait.
# no_timer_check: on a loaded host the TCG guest's early check that the timer
# interrupt ticks through the remapped IO-APIC can miss its busy-wait window,
# and the kernel panics ("timer doesn't work through Interrupt-remapped
# IO-APIC"; seen at load average 9 on 2 cores). The timer is QEMU's and works.
timeout -k 5 "$QEMU_TIMEOUT" qemu-system-x86_64 \
  -nodefaults -no-user-config -display none -monitor none -serial stdio -no-reboot \
  -machine q35,accel=tcg,kernel-irqchip=split -cpu max -smp 1 -m 768 \
  -device intel-iommu,intremap=on,caching-mode=on,aw-bits=48 \
  "${DEV[@]}" -kernel "$KERNEL" -initrd "$CPIO" \
  -append "console=ttyS0 ${NPA_LAB_KERNEL_LOG:-quiet} panic=-1 intel_iommu=on no_timer_check" \
  </dev/null >"$CONSOLE" 2>&1 &
QPID=$!
if [ $LIVE = 1 ]; then
  # The console file grows as the guest writes; its LIVE lines go to stdout
  # now (tail stops when QEMU does).
  tail -n +1 -F --pid="$QPID" "$CONSOLE" 2>/dev/null | sed -u -n 's/\r$//; s/^LIVE //p' &
fi
wait "$QPID" || qrc=$?
QPID=""
# The latest run's console stays at the documented place.
tr -d '\r' <"$CONSOLE" >"$WORK/logs/console.log.$$" && mv "$WORK/logs/console.log.$$" "$WORK/logs/console.log"
CONSOLE="$WORK/logs/console.log"
[ $KEEP = 1 ] && cp "$CONSOLE" "$RUN/console.log"
[ $qrc = 0 ] || log "QEMU exited with status $qrc ($([ $qrc = 124 ] && echo timeout || echo error))"
log "guest finished; console log: $CONSOLE"

# --------------------------------------------------------------------- report
pass=0; fail=0
for n in "${WANT[@]}"; do
  line="$(grep -m1 "^LABRESULT $n " "$CONSOLE" || true)"
  if [ -z "$line" ]; then
    echo "LAB: $n FAIL (0s) no result from the guest (crash or timeout; see $CONSOLE)"
    fail=$((fail + 1)); continue
  fi
  read -r _ _ verdict secs detail <<<"$line"
  if [ "$verdict" != PASS ]; then
    grep "^LABLOG $n: " "$CONSOLE" | tail -n 25 | sed 's/^LABLOG /  | /' >&2 || true
  fi
  echo "LAB: $n $verdict (${secs}s) $detail"
  if [ "$verdict" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
grep -E '^LABINIT' "$CONSOLE" | sed 's/^LABINIT /  init: /' >&2 || true
[ $KEEP = 1 ] && log "kept: $RUN (root/, initramfs.cpio, console.log)"
log "total $(elapsed)s"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
