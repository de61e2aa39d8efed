#!/usr/bin/env bash
# ctest bench_smoke: one --quick pass of scripts/bench-emulated.sh on this
# build's binaries. Passes when the last line is the benchmark's headline
# JSON naming both rings (npa_ring, dpdk_ring), with both Mpps figures > 0 and
# each core's cycles per frame (and its method) present. Deliberately no
# performance threshold: CI machines differ; docs/PERFORMANCE.md holds the
# measured figures. A loaded CI machine may give the quick pair no common
# vCPU placement: the headline then says "comparable": false with "ratio":
# null, which passes (the script's exit is then 1 and only reported here);
# a comparable headline must carry a numeric ratio.
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
for k in ("npa_ring", "dpdk_ring"):
    if j.get(k) not in ("split", "packed"):
        sys.exit(f"bench_smoke: {k} = {j.get(k)!r}, want 'split' or 'packed' (script exit {rc})")
for k in ("npa_mpps", "dpdk_mpps", "npa_cpf_guest", "npa_cpf_back", "dpdk_cpf_guest", "dpdk_cpf_back"):
    v = j.get(k)
    if not isinstance(v, (int, float)) or not v > 0:
        sys.exit(f"bench_smoke: {k} = {v!r}, want a number > 0 (script exit {rc})")
if j.get("cpf_method") not in ("perf", "clock"):
    sys.exit(f"bench_smoke: cpf_method = {j.get('cpf_method')!r}, want 'perf' or 'clock'")
if not isinstance(j.get("comparable"), bool):
    sys.exit(f"bench_smoke: comparable = {j.get('comparable')!r}, want true or false")
if j["comparable"] != isinstance(j.get("ratio"), (int, float)):
    sys.exit(f"bench_smoke: comparable = {j['comparable']} but ratio = {j.get('ratio')!r}")
print(f"bench_smoke: ok: npa-{j['npa_ring']} {j['npa_mpps']} Mpps, DPDK-{j['dpdk_ring']} "
      f"{j['dpdk_mpps']} Mpps, ratio {j['ratio']} (comparable {j['comparable']}); cycles/frame "
      f"({j['cpf_method']}) npa {j['npa_cpf_guest']}/{j['npa_cpf_back']}, "
      f"DPDK {j['dpdk_cpf_guest']}/{j['dpdk_cpf_back']} (guest/back end)")
PY
