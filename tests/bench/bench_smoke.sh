#!/usr/bin/env bash
# ctest bench_smoke: one --quick pass of scripts/bench-emulated.sh on this
# build's binaries. Passes when the last line is the benchmark's JSON object
# and both Mpps figures are > 0. Deliberately no performance threshold: CI
# machines differ; docs/PERFORMANCE.md holds the measured figures.
# usage: bench_smoke.sh BENCH_SCRIPT BUILD_DIR
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: bench_smoke.sh BENCH_SCRIPT BUILD_DIR" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
OUTDIR=${OUTDIR:-/tmp/npa-bench-smoke} timeout 280 bash "$1" --quick --build-dir "$2" >"$out"
rc=$?
cat "$out"
last=$(tail -n 1 "$out")
python3 - "$last" "$rc" <<'PY'
import json, sys
line, rc = sys.argv[1], sys.argv[2]
try:
    j = json.loads(line)
except ValueError as e:
    sys.exit(f"bench_smoke: last line is not JSON ({e}): {line!r} (script exit {rc})")
if not isinstance(j, dict) or j.get("bench") != "emulated":
    sys.exit(f"bench_smoke: not the benchmark's JSON: {line!r}")
for k in ("npa_mpps", "dpdk_mpps"):
    v = j.get(k)
    if not isinstance(v, (int, float)) or not v > 0:
        sys.exit(f"bench_smoke: {k} = {v!r}, want a number > 0 (script exit {rc})")
if not isinstance(j.get("ratio"), (int, float)):
    sys.exit(f"bench_smoke: ratio = {j.get('ratio')!r}")
print(f"bench_smoke: ok: npa {j['npa_mpps']} Mpps, DPDK {j['dpdk_mpps']} Mpps, ratio {j['ratio']}")
PY
