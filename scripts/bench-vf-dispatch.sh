#!/usr/bin/env bash
# The shell's VF-path dispatch cost per frame, in instructions (callgrind),
# for TX and RX apart: tests/bench/vf_dispatch_bench in its three modes over
# the same null plug-in code, 64 B frames, burst 32 (docs/PERFORMANCE.md,
# "VF path dispatch").
#
#   scripts/bench-vf-dispatch.sh --build-dir build-vfbench [--frames N] [--out-dir DIR]
#
# Builds nothing: the build dir must hold vf_dispatch_bench and
# tests/plugins/null{,_v10}/ (ninja vf_dispatch_bench; configure
# Release with -g for the line-level attribution below).
#
# Each mode runs under `valgrind --tool=callgrind --instr-atstart=no
# --separate-threads=yes`, once per phase (--phase=tx: alloc, lengths, TX
# burst; --phase=rx: RX burst of 32 frames the null device hands up, free);
# the benchmark instruments only its measured loop.
# The figure is the loop thread's "totals:" Ir over the frames; the other
# threads' totals are printed too (they should be 0: nothing else runs).
#
#   direct      the plug-in's fast ops called directly
#   shell       npa_buf_alloc + npa_tx_burst, npa_rx_burst + npa_buf_free on
#               the VF path, an ABI 1.1 plug-in (NPA_PLUGIN_F_TX_FREE: TX
#               counted per burst; NPA_PLUGIN_F_TX_BYTES and _RX_BYTES: it
#               counts the bytes), the shell's defaults (RX frames go up
#               unchecked)
#   shell-checked   shell, opened with NPA_SHELL_F_CHECK_PLUGIN_RX: every
#               RX frame is checked and the shell counts its bytes; RX only
#   shell-v10   the same with the plug-in built as ABI 1.0 (each TX frame
#               marked in the shell's TX tracker); TX only (its RX path is
#               the same as shell's)
#
# Where the shell's extra instructions go: self cost per file:function (as
# callgrind_annotate prints it, inlined code under the header it came from)
# for direct and shell, and the TX tracker's share of shell-v10 from
# line-level attribution:
# every line of shell/vf/tx_tracker.h, the lines of shell/vf/vf_path.cc and
# shell/vf/vf_switch.cc that call Mark/Clear or test for a tracker, and
# std::vector's operator[] inlined into VfTx and ShellBuffers::Free (the
# tracker's bitmap; nothing else there indexes a vector on this path).
#
# Output: a report, and as the LAST line one JSON object:
#   {"bench":"vf_dispatch","frames":N,"tx_direct_ipf":..,"tx_shell_ipf":..,"tx_diff_ipf":..,
#    "rx_direct_ipf":..,"rx_shell_ipf":..,"rx_diff_ipf":..,"rx_checked_ipf":..,
#    "rx_diff_checked_ipf":..,"tx_shell_v10_ipf":..,
#    "tx_diff_v10_ipf":..,"tracker_v10_ipf":..,"direct_ipf":..,"shell_ipf":..,"diff_ipf":..,...}
# (direct/shell/diff_ipf: TX + RX, the cost of one frame sent and one received.)
# Exit: 0 measured, 1 failure, 2 usage.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="" FRAMES=320000 OUT_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir|--frames|--out-dir)
      [ $# -ge 2 ] || { echo "bench-vf-dispatch: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --build-dir) BUILD_DIR=$2 ;;
        --frames) FRAMES=$2 ;;
        --out-dir) OUT_DIR=$2 ;;
      esac
      shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench-vf-dispatch: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$BUILD_DIR" ] || { echo "bench-vf-dispatch: --build-dir is required (this script builds nothing)" >&2; exit 2; }
[[ "$FRAMES" =~ ^[0-9]+$ ]] && [ "$FRAMES" -gt 0 ] && [ $((FRAMES % 32)) -eq 0 ] ||
  { echo "bench-vf-dispatch: --frames must be a positive multiple of 32" >&2; exit 2; }
BIN="$BUILD_DIR/tests/bench/vf_dispatch_bench"
[ -x "$BIN" ] || { echo "bench-vf-dispatch: no $BIN (ninja -C $BUILD_DIR vf_dispatch_bench)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "bench-vf-dispatch: valgrind not installed (apt-get install valgrind)" >&2; exit 1; }
if [ -z "$OUT_DIR" ]; then OUT_DIR=$(mktemp -d /tmp/npa-vf-dispatch.XXXXXX) || exit 1; fi
mkdir -p "$OUT_DIR" || exit 1

for run in direct-tx shell-tx shell-v10-tx direct-rx shell-rx shell-checked-rx; do
  mode=${run%-*} phase=${run##*-}
  rm -f "$OUT_DIR/$run".out* "$OUT_DIR/$run".json "$OUT_DIR/$run".err
  valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes --dump-instr=no \
    --callgrind-out-file="$OUT_DIR/$run.out" "$BIN" --mode="$mode" --phase="$phase" \
    --frames="$FRAMES" >"$OUT_DIR/$run.json" 2>"$OUT_DIR/$run.err"
  rc=$?
  if [ $rc -ne 0 ] || ! grep -q "^{\"mode\":\"$mode\",\"phase\":\"$phase\"" "$OUT_DIR/$run.json"; then
    echo "bench-vf-dispatch: $run failed (exit $rc); its stderr:" >&2
    tail -20 "$OUT_DIR/$run.err" >&2
    exit 1
  fi
done

python3 - "$OUT_DIR" "$FRAMES" "$ROOT" <<'EOF'
import glob, json, os, re, sys
from collections import defaultdict

out_dir, frames, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def parse(path):
    """Self Ir per (file, function, line) of one callgrind out file
    (positions: line; name and subposition compression), and its totals."""
    names = {}
    def name(kind, v):
        m = re.match(r'\((\d+)\)(?: (.*))?$', v)
        if not m:
            return v
        key = (kind, m.group(1))
        if m.group(2) is not None:
            names[key] = m.group(2)
        return names.get(key, v)
    cost = defaultdict(int)
    totals = None
    fl = fi = fn = '?'
    last = 0
    skip_next = False
    with open(path) as f:
        for raw in f:
            line = raw.rstrip('\n')
            if not line or line.startswith('#'):
                continue
            if line.startswith('totals:'):
                totals = int(line.split()[1])
                continue
            m = re.match(r'(ob|fl|fi|fe|fn|cob|cfi|cfl|cfn)=(.*)$', line)
            if m:
                k, v = m.groups()
                kind = {'cfi': 'fl', 'cfl': 'fl', 'fi': 'fl', 'fe': 'fl', 'cfn': 'fn', 'cob': 'ob'}.get(k, k)
                v = name(kind, v)
                if k == 'fl':
                    fl = fi = v
                elif k in ('fi', 'fe'):
                    fi = v
                elif k == 'fn':
                    fn = v
                    fi = fl
                continue
            if line.startswith('calls='):
                skip_next = True
                continue
            m = re.match(r'([+-]?\d+|\*)\s+(\d+)', line)
            if not m:
                continue
            p = m.group(1)
            if p == '*':
                pos = last
            elif p[0] in '+-':
                pos = last + int(p)
            else:
                pos = int(p)
            last = pos
            if skip_next:  # the inclusive cost of a call: not this line's own
                skip_next = False
                continue
            cost[(fi, fn, pos)] += int(m.group(2))
    return cost, totals

def run(mode):
    phase = mode.rsplit('-', 1)[1]
    files = sorted(glob.glob(os.path.join(out_dir, mode + '.out-*')))
    if not files:
        sys.exit('bench-vf-dispatch: no callgrind output for ' + mode)
    main = [f for f in files if f.endswith('-01')] or files[:1]
    cost, totals = parse(main[0])
    if totals is None:
        sys.exit('bench-vf-dispatch: no totals line in ' + main[0])
    parsed = sum(cost.values())
    if parsed != totals:
        sys.exit('bench-vf-dispatch: %s: parsed %d Ir, totals say %d' % (main[0], parsed, totals))
    others = sum((parse(f)[1] or 0) for f in files if f != main[0])
    with open(os.path.join(out_dir, mode + '.json')) as f:
        js = json.loads(f.readline())
    if js.get('frames') != frames or js.get(phase) != frames:
        sys.exit('bench-vf-dispatch: %s moved %s of %d frames' % (mode, js.get(phase), frames))
    return cost, totals, others

def short_fn(fn):
    fn = re.sub(r'\(anonymous namespace\)::', '', fn)
    fn = re.sub(r'npa::shell::', '', fn)
    return re.sub(r'\(.*$', '', fn)

def short_file(fi):
    # Absolute, or relative to the source root (a ccache CCACHE_BASEDIR
    # build records relative paths).
    return os.path.relpath(fi, root) if fi.startswith(root) else os.path.normpath(fi)

def by_fn(cost):
    agg = defaultdict(int)
    for (fi, fn, _), c in cost.items():
        agg[(short_file(fi), short_fn(fn))] += c
    return agg

direct, d_tot, d_oth = run('direct-tx')
shell, s_tot, s_oth = run('shell-tx')
v10, u_tot, u_oth = run('shell-v10-tx')
rdirect, rd_tot, rd_oth = run('direct-rx')
rshell, rs_tot, rs_oth = run('shell-rx')
rcheck, rc_tot, rc_oth = run('shell-checked-rx')
ipf = lambda x: x / frames

# The tracker's lines: all of tx_tracker.h; in vf_path.cc / vf_switch.cc the
# lines that mark, clear or test for a tracker (found in the source, so the
# attribution follows the code); vector indexing inlined into VfTx and
# ShellBuffers::Free.
def tracker_lines(src):
    path = os.path.join(root, src)
    with open(path) as f:
        return {i + 1 for i, l in enumerate(f)
                if re.search(r'->Mark\(|->Clear\(|vf_tx\.Clear\(|track != nullptr', l)}
marked = {f: tracker_lines(f) for f in ('shell/vf/vf_path.cc', 'shell/vf/vf_switch.cc')}
tracker = defaultdict(int)
for (fi, fn, line), c in v10.items():
    sf = short_fn(fn)
    if fi.endswith('shell/vf/tx_tracker.h'):
        tracker['tx_tracker.h (Mark/Clear/Index) in ' + sf] += c
    elif short_file(fi) in marked and line in marked[short_file(fi)]:
        tracker['%s:%d (loop, test) in %s' % (short_file(fi), line, sf)] += c
    elif fi.endswith('bits/stl_vector.h') and sf in ('VfTx', 'ShellBuffers::Free'):
        tracker['vector operator[] (bitmap) in ' + sf] += c
tracker_total = sum(tracker.values())

print('VF dispatch, callgrind Ir per frame (%d frames, 64 B, burst 32; out files in %s)' % (frames, out_dir))
print('  TX  direct (plug-in fast ops)     %8.2f' % ipf(d_tot))
print('      shell  (npa_*_burst, VF path) %8.2f' % ipf(s_tot))
print('      difference                    %8.2f  (target: at most 5)' % ipf(s_tot - d_tot))
print('      shell, ABI 1.0 plug-in        %8.2f  (difference %.2f)' % (ipf(u_tot), ipf(u_tot - d_tot)))
print('        of which the TX tracker     %8.2f  (line attribution)' % ipf(tracker_total))
print('  RX  direct (plug-in fast ops)     %8.2f' % ipf(rd_tot))
print('      shell  (npa_*_burst, VF path) %8.2f' % ipf(rs_tot))
print('      difference                    %8.2f  (target: at most 5)' % ipf(rs_tot - rd_tot))
print('      shell, checking every frame   %8.2f  (difference %.2f)' % (ipf(rc_tot), ipf(rc_tot - rd_tot)))
others = d_oth + s_oth + u_oth + rd_oth + rs_oth + rc_oth
print('  other threads (should be 0)       %d Ir in all six runs' % others)
print()
for phase, sh_cost, di_cost in (('TX', shell, direct), ('RX', rshell, rdirect),
                                ('RX checked', rcheck, rdirect)):
    s_fn, d_fn = by_fn(sh_cost), by_fn(di_cost)
    print('%s: self Ir per frame by file:function (>= 0.05), shell | direct:' % phase)
    keys = sorted(set(s_fn) | set(d_fn), key=lambda k: -(s_fn.get(k, 0) + d_fn.get(k, 0)))
    for k in keys:
        s, d = ipf(s_fn.get(k, 0)), ipf(d_fn.get(k, 0))
        if s >= 0.05 or d >= 0.05:
            print('  %7.2f | %7.2f  %s:%s' % (s, d, k[0], k[1]))
    print()
print('TX tracker (shell-v10), Ir per frame:')
for k, c in sorted(tracker.items(), key=lambda kv: -kv[1]):
    print('  %7.2f  %s' % (ipf(c), k))
print()
for phase, sh_cost in (('TX', shell), ('RX', rshell), ('RX checked', rcheck)):
    top = sorted(((c, fi, fn, line) for (fi, fn, line), c in sh_cost.items()
                  if short_file(fi).startswith('shell/')), reverse=True)[:15]
    print('%s: shell source lines, Ir per frame (top 15):' % phase)
    for c, fi, fn, line in top:
        print('  %7.2f  %s:%d  (%s)' % (ipf(c), short_file(fi), line, short_fn(fn)))
    print()
r2 = lambda x: round(ipf(x), 2)
print(json.dumps({
    'bench': 'vf_dispatch', 'frames': frames, 'burst': 32, 'frame_len': 64,
    'tx_direct_ipf': r2(d_tot), 'tx_shell_ipf': r2(s_tot), 'tx_diff_ipf': r2(s_tot - d_tot),
    'rx_direct_ipf': r2(rd_tot), 'rx_shell_ipf': r2(rs_tot), 'rx_diff_ipf': r2(rs_tot - rd_tot),
    'rx_checked_ipf': r2(rc_tot), 'rx_diff_checked_ipf': r2(rc_tot - rd_tot),
    'tx_shell_v10_ipf': r2(u_tot), 'tx_diff_v10_ipf': r2(u_tot - d_tot),
    'tracker_v10_ipf': r2(tracker_total),
    'direct_ipf': r2(d_tot + rd_tot), 'shell_ipf': r2(s_tot + rs_tot),
    'diff_ipf': r2(s_tot + rs_tot - d_tot - rd_tot),
    'tx_direct_ir': d_tot, 'tx_shell_ir': s_tot, 'tx_shell_v10_ir': u_tot,
    'rx_direct_ir': rd_tot, 'rx_shell_ir': rs_tot, 'rx_checked_ir': rc_tot,
    'other_threads_ir': others}))
EOF
