# tests/vm/lab_kernel.sh — the lab's guest kernel, for the lab and the VM test: sourced
# (bash), it finds Debian's linux-image-amd64 kernel that tests/lab/run_lab.sh
# boots, downloads and extracts it into the SAME cache (NPA_LAB_WORK, default
# /var/tmp/npa-lab: kernel/<version>/ with the .ready2 marker, under the same
# lock), and orders modules by their own "depends=" lines. A kernel the lab
# already extracted is reused as is; one extracted here is the lab's too.
#
#   . tests/vm/lab_kernel.sh
#   lab_kernel_prepare || exit 2        # sets LAB_KPKG LAB_KVER LAB_KDIR LAB_KERNEL LAB_MODROOT
#                                       # (LAB_PREFER_CACHED=1: an extracted one first)
#   lab_module_order virtio_pci virtio_net || exit 2   # sets LAB_MOD_ORDER (names), LAB_KO[name]=path
#
# tests/lab/run_lab.sh and tests/vm/run_vm_test.sh both source it.
# Errors: a message on stderr naming what is missing, return 2.

LAB_WORK="${NPA_LAB_WORK:-/var/tmp/npa-lab}"

lab_kernel_prepare() {
  mkdir -p "$LAB_WORK"/{pkgs,kernel,logs} || return 2
  LAB_KPKG=""
  # LAB_PREFER_CACHED=1: a kernel already extracted (the newest) is used
  # without asking apt which one is current (apt-cache takes seconds on a
  # loaded machine); the lab itself always asks.
  if [ "${LAB_PREFER_CACHED:-0}" = 1 ]; then
    LAB_KPKG="$(ls -1v "$LAB_WORK/kernel" 2>/dev/null | while read -r v; do
      [ -f "$LAB_WORK/kernel/$v/.ready2" ] && echo "linux-image-$v"; done | tail -1)"
  fi
  [ -n "$LAB_KPKG" ] ||
    LAB_KPKG="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
  if [ -z "$LAB_KPKG" ]; then
    # Offline or no package lists: whatever kernel is cached.
    LAB_KPKG="$(ls -1 "$LAB_WORK/kernel" 2>/dev/null | sed -n 's/^/linux-image-/p' | tail -1)"
  fi
  [ -n "$LAB_KPKG" ] || { echo "lab_kernel: cannot resolve linux-image-amd64 (apt-get update?)" >&2; return 2; }
  LAB_KVER="${LAB_KPKG#linux-image-}"
  LAB_KDIR="$LAB_WORK/kernel/$LAB_KVER"
  LAB_MODROOT="$LAB_KDIR/lib/modules/$LAB_KVER/kernel"
  # One extraction at a time per work dir (the lab takes the same lock).
  local rc=0
  exec {lab_lock}>"$LAB_WORK/.kernel.lock"
  flock "$lab_lock"
  if [ ! -f "$LAB_KDIR/.ready2" ]; then
    _lab_kernel_extract || rc=$?
  fi
  flock -u "$lab_lock"
  exec {lab_lock}>&-
  [ $rc = 0 ] || return $rc
  LAB_KERNEL="$LAB_KDIR/vmlinux"
  [ -s "$LAB_KERNEL" ] || LAB_KERNEL="$LAB_KDIR/boot/vmlinuz-$LAB_KVER"
  [ -s "$LAB_KERNEL" ] || { echo "lab_kernel: no kernel image in $LAB_KDIR" >&2; return 2; }
}

_lab_kernel_extract() {
  local deb m vz setup poff plen
  deb="$(ls "$LAB_WORK"/pkgs/"${LAB_KPKG}"_*.deb 2>/dev/null | head -1 || true)"
  if [ -z "$deb" ]; then
    echo "lab_kernel: downloading $LAB_KPKG" >&2
    (cd "$LAB_WORK/pkgs" && apt-get download "$LAB_KPKG" >"$LAB_WORK/logs/download.log" 2>&1) ||
      { echo "lab_kernel: apt-get download $LAB_KPKG failed" >&2; return 2; }
    deb="$(ls "$LAB_WORK"/pkgs/"${LAB_KPKG}"_*.deb | head -1)"
  fi
  echo "lab_kernel: extracting kernel + modules from $(basename "$deb")" >&2
  rm -rf "$LAB_KDIR"; mkdir -p "$LAB_KDIR"
  m="./lib/modules/$LAB_KVER/kernel"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$LAB_KDIR" --wildcards \
    "./boot/vmlinuz-$LAB_KVER" "$m/drivers/vfio/*" "$m/virt/lib/*" "$m/drivers/virtio/*" \
    "$m/drivers/net/ethernet/intel/e1000e/*" "$m/drivers/net/virtio_net.ko" \
    "$m/drivers/net/net_failover.ko" "$m/net/core/*" "$m/drivers/nvme/host/*" \
    "$m/block/t10-pi.ko" "$m/lib/crc*" "$m/crypto/crc*" \
    "$m/drivers/net/tun.ko" "$m/drivers/net/veth.ko" "$m/net/bridge/bridge.ko" \
    "$m/net/802/stp.ko" "$m/net/llc/llc.ko" || { echo "lab_kernel: extraction failed" >&2; return 2; }
  # PVH boot of the decompressed ELF vmlinux is ~2 s faster under TCG than the
  # bzImage decompressing itself. Boot protocol (Documentation/x86/boot.rst):
  # setup_sects at 0x1f1, payload_offset 0x248, payload_length 0x24c.
  vz="$LAB_KDIR/boot/vmlinuz-$LAB_KVER"
  _rd() { od -An -t"u$2" -j "$1" -N "$2" "$vz" | tr -d ' '; }
  setup=$(_rd $((0x1f1)) 1); [ "$setup" = 0 ] && setup=4
  poff=$(_rd $((0x248)) 4); plen=$(_rd $((0x24c)) 4)
  tail -c +$(( (setup + 1) * 512 + poff + 1 )) "$vz" | head -c "$plen" |
    xz -dc --single-stream >"$LAB_KDIR/vmlinux" 2>/dev/null || true
  # PVH needs the XEN_ELFNOTE_PHYS32_ENTRY note (type 0x12).
  readelf -n "$LAB_KDIR/vmlinux" 2>/dev/null | grep -q '(0x00000012)' || rm -f "$LAB_KDIR/vmlinux"
  touch "$LAB_KDIR/.ready2"
}

# Module load order from each .ko's .modinfo "depends=" (the deb has no
# modules.dep, and the host may have no kmod).
lab_module_order() {
  declare -gA LAB_KO=()
  declare -gA _LAB_DONE=()
  LAB_MOD_ORDER=()
  local f n
  while IFS= read -r f; do n="$(basename "$f" .ko)"; LAB_KO[$n]="$f"; LAB_KO[${n//-/_}]="$f"; done \
    < <(find "$LAB_MODROOT" -name '*.ko')
  for n in "$@"; do _lab_add_mod "$n" || return 2; done
}

_lab_add_mod() {
  local n="$1" d
  [ -n "${_LAB_DONE[$n]:-}" ] && return 0
  [ -n "${LAB_KO[$n]:-}" ] || { echo "lab_kernel: module $n not in $LAB_KPKG" >&2; return 2; }
  _LAB_DONE[$n]=1
  for d in $(objcopy -O binary --only-section=.modinfo "${LAB_KO[$n]}" /dev/stdout 2>/dev/null |
             tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
    _lab_add_mod "$d" || return 2
  done
  LAB_MOD_ORDER+=("$n")
}
