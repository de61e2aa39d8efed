#!/usr/bin/env bash
# ctest bench_latency_smoke: one --quick pass of scripts/bench-latency.sh on
# this build's binaries. Passes when the script exits 0 and its last line is
# the benchmark's JSON with a number for every latency percentile and CPU
# figure, npa's and DPDK's, and no light-load frame lost. Deliberately no
# performance threshold: machines differ; docs/PERFORMANCE.md holds figures.
# usage: bench_latency_smoke.sh BENCH_SCRIPT BUILD_DIR
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: bench_latency_smoke.sh BENCH_SCRIPT BUILD_DIR" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
OUTDIR=${OUTDIR:-/tmp/npa-bench-latency-smoke} timeout 120 bash "$1" --quick --build-dir "$2" >"$out"
rc=$?
cat "$out"
python3 - "$(tail -n 1 "$out")" "$rc" <<'PY'
import json, sys
line, rc = sys.argv[1], int(sys.argv[2])
try:
    j = json.loads(line)
except ValueError as e:
    sys.exit(f"bench_latency_smoke: last line is not JSON ({e}): {line!r} (script exit {rc})")
if not isinstance(j, dict) or j.get("bench") != "latency":
    sys.exit(f"bench_latency_smoke: not the benchmark's JSON: {line!r}")
if rc != 0:
    sys.exit(f"bench_latency_smoke: the script exited {rc}")
want = [f"{i}_{p}_{q}_us" for i in ("npa", "dpdk") for p in ("poll", "intr", "light")
        for q in ("p50", "p99", "p999")]
want += ["npa_intr_guest_cpu_pct", "npa_intr_agent_cpu_pct",
         "dpdk_intr_guest_cpu_pct", "dpdk_intr_vhost_cpu_pct"]
bad = [k for k in want if not isinstance(j.get(k), (int, float)) or not j[k] > 0]
if bad:
    sys.exit("bench_latency_smoke: not a number > 0: " + ", ".join(f"{k}={j.get(k)!r}" for k in bad))
for i in ("npa", "dpdk"):
    if j.get(f"{i}_light_lost") != 0:
        sys.exit(f"bench_latency_smoke: {i} lost {j.get(f'{i}_light_lost')!r} frames at light load")
    if not j[f"{i}_poll_p50_us"] <= j[f"{i}_poll_p99_us"] <= j[f"{i}_poll_p999_us"]:
        sys.exit(f"bench_latency_smoke: {i} percentiles out of order: {line}")
print(f"bench_latency_smoke: ok: poll p50 npa {j['npa_poll_p50_us']} us, DPDK {j['dpdk_poll_p50_us']} us")
PY
