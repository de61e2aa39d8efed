# soak: issue 9, part 5, in the VFIO lab: SOAK_CYCLES (default 100)
# attach/revoke cycles of one real VF under traffic, alternating a planned
# detach (`npactl vf detach`: Revoke, the shell quiesces and drains) and a
# forced one (`npactl vf detach --force`: VFIO REQ, the shell falls back by
# itself), each after an `npactl vf attach`. Single-host part of the lab
# only (the setup of shell_vf_virtio: one agent, pool = LAB_VIRTIO1 with the
# virtio_net plug-in, no uplink); docs/soak.md "The lab soak".
#
# Traffic (tests/lab/npa_lab_shell_vf.cc): the DUT, a guest process on
# libnpa_shell, sends numbered frames at 800/s all along (to the peer
# namespace's NIC through the VF, to a second shell guest through the
# agent's switch on the emulated path); blast, in the peer namespace, sends
# numbered frames to the DUT's MAC at 450/s (they can reach it only through
# the VF: the agent has no uplink here).
#
# After every cycle (guest back on the emulated path): the detach answer's
# tx_inflight_lost (the shell's count: 0 on a planned detach), the DUT alive
# and on the path it should be, and the resources against the baseline
# taken after the first planned + forced pair: the agent's open fds, the
# DUT's open fds, the agent's VmLck (VFIO type1 accounts every page it pins
# for a DMA mapping in the mapping task's locked_vm, so the agent's VmLck is
# the size of the container's live mappings), the system's FOLL_PIN pages
# (/proc/vmstat nr_foll_pin_acquired - released: the pages pinned for DMA)
# and the vfio MSI-X vectors in /proc/interrupts must be equal. The lab
# kernel has no IOMMU debugfs, so the IOMMU's own tables cannot be read.
# At the end: TX, every number the DUT sent seen at most once by the sink
# and the sniffer together, missing exactly the shell's tx_inflight_lost sum
# plus what the agent's switch counted as dropped for the sink; RX, every
# cycle's VF window [mark A, mark B) of blast exactly once at the DUT; RSS
# of the agent and the DUT grown by less than SOAK_RSS_KB (2048). One
# progress line per 10 cycles, one "SOAK_JSON {...}" line at the end.
#
# SOAK_CYCLES reaches the guest through the kernel command line (init's
# environment): scripts/lab-soak.sh --cycles N does that.
# lab-manual: long (a cycle takes 11-20 s under TCG: 100 cycles took 21 min); scripts/lab-soak.sh runs it
# lab-timeout: 4200
need LAB_VIRTIO1 LAB_PEER_IF
CYCLES=${SOAK_CYCLES:-}
[ -z "$CYCLES" ] && CYCLES=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^SOAK_CYCLES=//p' | tail -1)
CYCLES=${CYCLES:-100}
case "$CYCLES" in ''|*[!0-9]*) fail "SOAK_CYCLES='$CYCLES' is not a number" ;; esac
[ "$CYCLES" -ge 2 ] && [ "$CYCLES" -le 5000 ] || fail "SOAK_CYCLES=$CYCLES: need 2..5000 (the first two are the warm-up pair)"
RSS_BOUND=${SOAK_RSS_KB:-2048}
NIC=$LAB_VIRTIO1
NIC_IF=$LAB_VIRTIO1_IF
PLUGIN=virtio_net
for b in npa-lab-agent npa-lab-npactl npa-lab-shell-vf; do
  [ -x /lab/bin/$b ] || fail "/lab/bin/$b missing (ninja npa-lab-agent npa-lab-npactl npa-lab-shell-vf)"
done
[ -f /lab/plugins/npa_plugin_$PLUGIN.so ] || fail "/lab/plugins/npa_plugin_$PLUGIN.so missing"
export NPA_PLUGIN_PATH=/lab/plugins
X=/lab/bin/npa-lab-shell-vf
SOCK=/run/npa-soak.sock
ctl() { /lab/bin/npa-lab-npactl --socket $SOCK.admin "$@"; }
PIDS=""
soak_cleanup() {
  for p in $PIDS; do kill $p 2>/dev/null; done
  [ -n "${AGENT:-}" ] && kill $AGENT 2>/dev/null
  wait 2>/dev/null
  d=/sys/bus/pci/devices/$NIC
  echo >$d/driver_override 2>/dev/null
  [ "$(drv $NIC)" = vfio-pci ] && echo $NIC >$d/driver/unbind
  [ -e $d/driver ] || echo $NIC >/sys/bus/pci/drivers_probe
  rm -f $SOCK $SOCK.admin /tmp/soak-*.bin
  for f in /tmp/soak-dut.log /tmp/soak-sink.log /tmp/soak-sniff.log /tmp/soak-blast.log /tmp/soak-agent.log; do
    echo "--- $f"; grep -v '^PROGRESS' $f 2>/dev/null | tail -n 15
  done
}
trap soak_cleanup EXIT
ip link set "$NIC_IF" down 2>/dev/null
rm -f $SOCK /tmp/soak-* 
now() { cut -d' ' -f1 /proc/uptime; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%d", (b-a)*1000}'; }
soak_wait() { # file pattern tenths
  local i=0
  until grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt $3 ] || fail "cycle ${C:-0}: no '$2' in $1 after $(($3 / 10)) s: $(tail -2 $1)"; sleep 0.1
  done
}
# soak_wait_count FILE PATTERN N TENTHS: until PATTERN matches N lines.
soak_wait_count() {
  local i=0
  until [ "$(grep -c "$2" "$1" 2>/dev/null)" -ge "$3" ]; do
    i=$((i + 1)); [ $i -lt $4 ] || fail "cycle ${C:-0}: only $(grep -c "$2" "$1") '$2' in $1 after $(($4 / 10)) s, want $3: $(grep -v '^PROGRESS' $1 | tail -2)"; sleep 0.1
  done
}
last_progress() { grep '^PROGRESS' /tmp/soak-dut.log | tail -1 | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
sent_vf() { last_progress tx_vf; }
sent_all() { grep '^PROGRESS' /tmp/soak-dut.log | tail -1 | sed -n 's/^PROGRESS sent=\([0-9]*\).*/\1/p'; }
soak_more() { # counter-fn delta tenths
  local b i=0
  b=$($1); b=${b:-0}
  while [ -z "$($1)" ] || [ "$($1)" -lt $((b + $2)) ]; do
    i=$((i + 1)); [ $i -lt $3 ] || fail "cycle ${C:-0}: $1 did not grow by $2 in $(($3 / 10)) s (at $($1))"; sleep 0.1
  done
}
# mark VAR: SIGUSR1 to blast, VAR = the number of the next frame it sends.
soak_mark() {
  local n0 i=0
  n0=$(grep -c '^MARK' /tmp/soak-marks.txt 2>/dev/null)
  kill -USR1 $BLAST || fail "cycle $C: blast is gone: $(tail -2 /tmp/soak-blast.log)"
  until [ "$(grep -c '^MARK' /tmp/soak-marks.txt 2>/dev/null)" -gt "${n0:-0}" ]; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "cycle $C: blast wrote no mark in 5 s"; sleep 0.05
  done
  eval "$1=$(grep '^MARK' /tmp/soak-marks.txt | tail -1 | cut -d' ' -f2)"
}
stat_kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" /proc/$1/status; }
nfd() { ls /proc/$1/fd 2>/dev/null | wc -l; }
pinned() {
  awk '/^nr_foll_pin_acquired /{a=$2} /^nr_foll_pin_released /{r=$2} END{if (a == "") print "na"; else print a - r}' /proc/vmstat
}
msix() { grep -c 'vfio-msix' /proc/interrupts; }
# res: one snapshot "afd arss alck gfd grss pin msix" (the flat-checked set).
res() { echo "$(nfd $AGENT) $(stat_kb $AGENT VmRSS) $(stat_kb $AGENT VmLck) $(nfd $DUT) $(stat_kb $DUT VmRSS) $(pinned) $(msix)"; }
field() { echo "$1" | cut -d' ' -f$2; }
show() { echo "agent_fds=$(field "$1" 1) agent_rss_kb=$(field "$1" 2) agent_locked_kb=$(field "$1" 3) guest_fds=$(field "$1" 4) guest_rss_kb=$(field "$1" 5) pinned_pages=$(field "$1" 6) vfio_msix=$(field "$1" 7)"; }
showj() { echo "{\"agent_fds\":$(field "$1" 1),\"agent_rss_kb\":$(field "$1" 2),\"agent_locked_kb\":$(field "$1" 3),\"guest_fds\":$(field "$1" 4),\"guest_rss_kb\":$(field "$1" 5),\"pinned_pages\":$(field "$1" 6),\"vfio_msix\":$(field "$1" 7)}"; }
# flat BASE NOW: "" if every exactly-checked field (fds, locked, pinned,
# MSI-X) equals, else what differs.
flat() {
  local bad="" k
  for k in 1:agent_fds 3:agent_locked_kb 4:guest_fds 6:pinned_pages 7:vfio_msix; do
    [ "$(field "$1" ${k%%:*})" = "$(field "$2" ${k%%:*})" ] || bad="$bad ${k#*:} $(field "$1" ${k%%:*})->$(field "$2" ${k%%:*});"
  done
  echo "$bad"
}

/lab/bin/npa-lab-agent --control $SOCK --vf $NIC --vf-restore-driver \
  --vf-accept-timeout 15000 --vf-revoke-timeout 8000 >/tmp/soak-agent.log 2>&1 &
AGENT=$!
i=0; while [ ! -S $SOCK ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -S $SOCK ] || fail "agent did not start: $(tail -3 /tmp/soak-agent.log)"
# Receivers and senders run until the end (TERM); --secs is only their bound.
/lab/bin/ip netns exec peer $X sniff --if "$LAB_PEER_IF" --secs 3600 --out /tmp/soak-sniff.bin >/tmp/soak-sniff.log 2>&1 &
PIDS="$PIDS $!"; SNIFF=$!
$X sink --socket $SOCK --name sink --secs 3600 --out /tmp/soak-sink.bin >/tmp/soak-sink.log 2>&1 &
PIDS="$PIDS $!"; SINK=$!
soak_wait /tmp/soak-sniff.log READY 50
soak_wait /tmp/soak-sink.log READY 100
$X dut --socket $SOCK --name dut --pps 800 --secs 3600 --out /tmp/soak-dut.count \
  --rx-out /tmp/soak-dut_rx.bin --intr >/tmp/soak-dut.log 2>&1 &
PIDS="$PIDS $!"; DUT=$!
soak_wait /tmp/soak-dut.log '^SHELL: dut mac' 100
DMAC=$(sed -n 's/^SHELL: dut mac \([0-9a-f:]*\) .*/\1/p' /tmp/soak-dut.log | head -1)
[ -n "$DMAC" ] || fail "no MAC on the DUT's SHELL line"
/lab/bin/ip netns exec peer $X blast --if "$LAB_PEER_IF" --dst $DMAC --pps 450 --secs 3600 \
  --marks /tmp/soak-marks.txt >/tmp/soak-blast.log 2>&1 &
PIDS="$PIDS $!"; BLAST=$!
soak_wait /tmp/soak-blast.log READY 50
soak_wait /tmp/soak-dut.log '^PROGRESS' 100
soak_more sent_all 400 100

T0=$(now)
R0=$(res)        # before the first attach
echo "before: $(show "$R0")"
live ">>> soak: $CYCLES cycles, before: $(show "$R0")"
RB=""            # baseline: after the warm-up pair (cycles 1 and 2)
C=0 PLANNED=0 FORCED=0 LOST=0 WINDOWS="" ATT_MS=0 DET_MS=0 ATT_MAX=0 DET_MAX=0 RETRIES=0
while [ $C -lt $CYCLES ]; do
  C=$((C + 1))
  kind=planned; [ $((C % 2)) = 0 ] && kind=forced
  # Attach. A VF the agent is still tearing down answers busy: retried, bounded.
  t=$(now); try=0
  until ctl vf attach dut $NIC >/tmp/soak-att.out 2>&1; do
    try=$((try + 1)); RETRIES=$((RETRIES + 1))
    [ $try -lt 5 ] || fail "cycle $C: vf attach: $(cat /tmp/soak-att.out) $(tail -3 /tmp/soak-agent.log)"
    sleep 1
  done
  soak_wait_count /tmp/soak-dut.log 'EVENT .* path=vf' $C 200
  a=$(ms_since $t); ATT_MS=$((ATT_MS + a)); [ $a -gt $ATT_MAX ] && ATT_MAX=$a
  soak_more sent_vf 100 100
  # On the VF: the same set, so the mapping measures are seen to see the
  # mappings (locked/pinned > 0) and to be the same every cycle.
  V=$(res)
  if [ $C = 2 ]; then
    VB=$V
    echo "on the VF (cycle 2): $(show "$VB")"
    [ "$(field "$VB" 3)" != "$(field "$R0" 3)" ] && [ "$(field "$VB" 6)" != "$(field "$R0" 6)" ] ||
      fail "on the VF the agent's VmLck or the pinned pages did not change ($(show "$VB")): they cannot measure the DMA mappings"
  elif [ $C -gt 2 ]; then
    bad=$(flat "$VB" "$V")
    [ -z "$bad" ] || fail "cycle $C ($kind), on the VF: not flat against cycle 2 on the VF:$bad ($(show "$V"))"
  fi
  soak_mark A
  sleep 0.5
  soak_mark B
  WINDOWS="$WINDOWS $A:$B"
  t=$(now)
  if [ $kind = planned ]; then
    ctl vf detach dut >/tmp/soak-det.out 2>&1 || fail "cycle $C: vf detach: $(cat /tmp/soak-det.out)"
    grep -q 'tx_inflight_lost=0' /tmp/soak-det.out || fail "cycle $C: planned detach reported loss: $(cat /tmp/soak-det.out)"
    PLANNED=$((PLANNED + 1))
  else
    ctl vf detach --force dut >/tmp/soak-det.out 2>&1 || fail "cycle $C: forced detach: $(cat /tmp/soak-det.out)"
    l=$(sed -n 's/.*tx_inflight_lost=\([0-9][0-9]*\).*/\1/p' /tmp/soak-det.out | head -1)
    [ -n "$l" ] || fail "cycle $C: forced detach: no tx_inflight_lost=<N> in npactl's answer, the loss cannot be counted: $(head -c 300 /tmp/soak-det.out)"
    LOST=$((LOST + l))
    FORCED=$((FORCED + 1))
  fi
  soak_wait_count /tmp/soak-dut.log 'EVENT .* path=emulated' $C 200
  d=$(ms_since $t); DET_MS=$((DET_MS + d)); [ $d -gt $DET_MAX ] && DET_MAX=$d
  if [ $kind = forced ]; then
    grep 'EVENT .* path=emulated' /tmp/soak-dut.log | tail -1 | grep -q 'VFIO REQ' ||
      fail "cycle $C: fallback not from REQ: $(grep 'path=emulated' /tmp/soak-dut.log | tail -1)"
  fi
  kill -0 $DUT 2>/dev/null || fail "cycle $C: the DUT died: $(grep -E '^(DUT|FAIL)' /tmp/soak-dut.log)"
  # Back on the emulated path and sending there: the agent's teardown
  # (reset, unmap, unbind, driver restored) is done once npactl answered.
  soak_more sent_all 100 100
  R=$(res)
  if [ $C = 2 ]; then
    RB=$R
    echo "baseline (after the warm-up pair): $(show "$RB")"
  fi
  if [ -n "$RB" ]; then
    bad=$(flat "$RB" "$R")
    [ -z "$bad" ] || fail "cycle $C ($kind): not flat against the baseline:$bad ($(show "$R"))"
  fi
  # Nothing may stay pinned or locked once the VF is gone: against the
  # state before the first attach as well.
  [ "$(field "$R" 3)" = "$(field "$R0" 3)" ] && [ "$(field "$R" 6)" = "$(field "$R0" 6)" ] ||
    fail "cycle $C ($kind): DMA mappings left after the detach: $(show "$R") (before the first attach: $(show "$R0"))"
  if [ $((C % 10)) = 0 ] || [ $C = $CYCLES ]; then
    line="SOAK_PROGRESS cycle=$C/$CYCLES planned=$PLANNED forced=$FORCED t=$(ms_since $T0)ms tx_sent=$(sent_all) tx_inflight_lost=$LOST attach_ms_avg=$((ATT_MS / C)) detach_ms_avg=$((DET_MS / C)) $(show "$R") on_vf_locked_kb=$(field "$V" 3) on_vf_pinned_pages=$(field "$V" 6) on_vf_agent_fds=$(field "$V" 1) on_vf_guest_fds=$(field "$V" 4) on_vf_msix=$(field "$V" 7)"
    echo "$line"; live "$line"
  fi
done
SECS=$(awk -v a=$T0 -v b=$(now) 'BEGIN{printf "%.1f", b-a}')
RA=$(res)
echo "after: $(show "$RA")"

kill -TERM $BLAST; wait $BLAST
kill -TERM $DUT; wait $DUT; drc=$?
sleep 1
# The agent's switch drops a broadcast for the sink when the sink's RX ring
# is full (a sink starved of the one vCPU): its own counter says how many.
sinkdrop=$(ctl --json stats sink 2>/dev/null | grep -o '"rx_dropped":[0-9]*' | cut -d: -f2 |
  awk '{s += $1} END {print s + 0}')
kill -TERM $SINK $SNIFF; wait $SINK; wait $SNIFF
[ $drc = 0 ] || fail "DUT exit $drc (tx_packets != sent?): $(grep -E '^(DUT|FAIL)' /tmp/soak-dut.log)"
grep '^DUT:' /tmp/soak-dut.log
grep '^BLAST:' /tmp/soak-blast.log
N=$(cat /tmp/soak-dut.count)

# RX: every cycle's VF window exactly once at the DUT, nothing twice.
rxfail="" want=0 w=0
for win in $WINDOWS; do
  w=$((w + 1)); a=${win%:*} b=${win#*:}
  [ "$b" -gt "$a" ] 2>/dev/null || rxfail="${rxfail}cycle $w: empty window [$a,$b); "
  want=$((want + b - a))
  $X range --file /tmp/soak-dut_rx.bin --from $a --to $b >/tmp/soak-range.out 2>&1 ||
    rxfail="${rxfail}cycle $w: $(tail -1 /tmp/soak-range.out | sed 's/^RANGE: file=[^ ]* //'); "
done
rxvf=$(sed -n 's/^DUT: .* rx_vf=\([0-9]*\) .*/\1/p' /tmp/soak-dut.log)
[ "${rxvf:-0}" -ge $want ] || rxfail="${rxfail}rx_vf=${rxvf:-?} < $want frames sent in the VF windows; "

# TX: every number once at the sink or the sniffer, missing exactly what was counted.
$X merge --expect $N --expect-missing $((LOST + sinkdrop)) /tmp/soak-sink.bin /tmp/soak-sniff.bin >/tmp/soak-merge.out 2>&1; mrc=$?
cat /tmp/soak-merge.out
m() { sed -n "s/^MERGE: expect=.* $1=\([0-9-]*\).*/\1/p" /tmp/soak-merge.out; }
txrecv=$(m received); txmiss=$(m missing); txdup=$(m duplicates)
ras() { echo "[$(field "$RB" $1),$(field "$RA" $1)]"; }
rss_a=$(( $(field "$RA" 2) - $(field "$RB" 2) )); rss_g=$(( $(field "$RA" 5) - $(field "$RB" 5) ))
echo "SOAK_JSON {\"scenario\":\"soak\",\"plugin\":\"$PLUGIN\",\"vf\":\"$NIC\",\"cycles\":$CYCLES,\"planned\":$PLANNED,\"forced\":$FORCED,\"seconds\":$SECS,\"tx_sent\":$N,\"tx_received\":${txrecv:-null},\"tx_missing\":${txmiss:-null},\"tx_duplicates\":${txdup:-null},\"tx_counted_lost\":$((LOST + sinkdrop)),\"tx_inflight_lost\":$LOST,\"sink_dropped_by_agent\":$sinkdrop,\"rx_windows\":$w,\"rx_window_frames\":$want,\"rx_vf\":${rxvf:-null},\"rx_ok\":$([ -z "$rxfail" ] && echo true || echo false),\"agent_fds\":$(ras 1),\"agent_rss_kb\":$(ras 2),\"agent_locked_kb\":$(ras 3),\"guest_fds\":$(ras 4),\"guest_rss_kb\":$(ras 5),\"pinned_pages\":$(ras 6),\"vfio_msix\":$(ras 7),\"before_first_attach\":{\"agent_fds\":$(field "$R0" 1),\"agent_rss_kb\":$(field "$R0" 2),\"agent_locked_kb\":$(field "$R0" 3),\"guest_fds\":$(field "$R0" 4),\"guest_rss_kb\":$(field "$R0" 5),\"pinned_pages\":$(field "$R0" 6)},\"on_vf\":{\"cycle2\":$(showj "$VB"),\"last\":$(showj "$V")},\"attach_ms_avg\":$((ATT_MS / CYCLES)),\"attach_ms_max\":$ATT_MAX,\"detach_ms_avg\":$((DET_MS / CYCLES)),\"detach_ms_max\":$DET_MAX,\"attach_retries\":$RETRIES}"
live "SOAK_END cycles=$CYCLES tx_sent=$N missing=${txmiss:-?} counted=$((LOST + sinkdrop)) rx_windows=$w"
[ -z "$rxfail" ] || fail "RX via the VF: $rxfail"
[ $mrc = 0 ] || fail "TX frames lost or duplicated: $(grep 'MERGE: expect' /tmp/soak-merge.out) (counted: tx_inflight_lost=$LOST + $sinkdrop dropped for the sink)"
[ $rss_a -lt $RSS_BOUND ] && [ $rss_g -lt $RSS_BOUND ] ||
  fail "RSS grew over $CYCLES cycles: agent $(ras 2) KiB, DUT $(ras 5) KiB (bound +$RSS_BOUND KiB)"
detail "$CYCLES cycles ($PLANNED planned, $FORCED forced) in ${SECS}s on $PLUGIN ($NIC): TX $N frames, $txmiss missing = $LOST tx_inflight_lost + $sinkdrop dropped for the sink, 0 dup; RX $w VF windows, $want frames each once; agent fds $(ras 1), RSS $(ras 2) KiB, locked $(ras 3) KiB; DUT fds $(ras 4), RSS $(ras 5) KiB; pinned pages $(ras 6); vfio MSI-X $(ras 7); attach avg $((ATT_MS / CYCLES)) ms, detach avg $((DET_MS / CYCLES)) ms"
