#!/usr/bin/env python3
"""Analysis for scripts/bench-emulated.sh: samples -> placement classes ->
pair-by-pair ratios -> medians, a report, and JSON lines.

Input: the script's runs.tsv, one line per run:
  rep size mode impl attempt cpu_share sample_file format c2c_file prefix
formats:
  npa          npa_bench_guest stdout: "sample <unix_t> <interval_s> <packets> <pps>"
  testpmd-rx   testpmd stdout with a unix time stamp before every line; "Rx-pps: N"
  testpmd-tx   the same, "Tx-pps: N" (the virtio-user side)
c2c_file: npa_bench_c2c monitor output, "<unix_t> <ns>|NA".
prefix.stats{1,2,3}: "<unix_t>" then `npactl --json stats` (npa-agent runs).

Rules (docs/PERFORMANCE.md):
- samples of 0 pps are dropped (before/after traffic), then the first 2 and
  the last 1 non-zero samples (warm-up and partial intervals);
- a sample is "near" when >= 75 % of the c2c probes inside its interval are
  under --near-ns, "far" when >= 75 % are at or above, "mixed" otherwise,
  "none" with fewer than 2 probes; probes over 2 us were preempted: ignored;
- a run is valid when its two busy processes had >= 95 % of both CPUs;
- the pair (npa, DPDK) of one rep compares near with near when both runs
  have >= 2 near samples, else far with far, else all samples ("all").

The last line printed is the headline configuration's JSON.
"""
import argparse
import json
import os
import statistics
import sys

DROP_FIRST, DROP_LAST = 2, 1
PREEMPTED_NS = 2000


def parse_samples(path, fmt):
    """[(t_start, t_end, pps)] of the kept samples."""
    out = []
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return []
    if fmt == "npa":
        for l in lines:
            f = l.split()
            if len(f) == 5 and f[0] == "sample":
                try:
                    t, dt, pps = float(f[1]), float(f[2]), float(f[4])
                except ValueError:
                    continue
                out.append((t - dt, t, pps))
    else:
        key = "Rx-pps:" if fmt == "testpmd-rx" else "Tx-pps:"
        prev = None
        for l in lines:
            f = l.split()
            if len(f) >= 3 and f[1] == key:
                try:
                    t, pps = float(f[0]), float(f[2])
                except ValueError:
                    continue
                if prev is not None:
                    out.append((prev, t, pps))
                prev = t
    nz = [s for s in out if s[2] > 0]
    return nz[DROP_FIRST:len(nz) - DROP_LAST] if len(nz) > DROP_FIRST + DROP_LAST else []


def parse_probes(path):
    probes = []
    try:
        for l in open(path, errors="replace"):
            f = l.split()
            if len(f) == 2 and f[1] != "NA":
                try:
                    t, ns = float(f[0]), float(f[1])
                except ValueError:
                    continue
                if ns < PREEMPTED_NS:
                    probes.append((t, ns))
    except OSError:
        pass
    return probes


def classify(t0, t1, probes, near_ns):
    inside = [ns for t, ns in probes if t0 < t <= t1]
    if len(inside) < 2:
        return "none"
    near = sum(1 for ns in inside if ns < near_ns)
    if near >= 0.75 * len(inside):
        return "near"
    if len(inside) - near >= 0.75 * len(inside):
        return "far"
    return "mixed"


def med(xs):
    return statistics.median(xs) if xs else None


def load_json_after_stamp(path):
    """(unix_t, parsed JSON or None) from a prefix.statsN file."""
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return None, None
    first, _, rest = text.partition("\n")
    try:
        t = float(first)
    except ValueError:
        return None, None
    try:
        return t, json.loads(rest)
    except ValueError:
        return t, None


def agent_guest_packets(doc):
    """Packets the agent counted from the guest (guest TX) over every guest's
    queues. The control schema (GuestInfo.queues) counts from the guest's
    point of view, so the guest's TX is tx_packets."""
    total, found = 0, False

    def walk(o):
        nonlocal total, found
        if isinstance(o, dict):
            qs = o.get("queues")
            if isinstance(qs, list) and ("name" in o or "id" in o or "guest" in o):
                for q in qs:
                    if isinstance(q, dict):
                        v = q.get("tx_packets", q.get("txPackets"))
                        if v is not None:
                            total += int(v)
                            found = True
                return
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(doc)
    return total if found else None


def guest_summary(prefix):
    try:
        for l in reversed(open(prefix + ".guest.log", errors="replace").read().splitlines()):
            if l.startswith("{"):
                return json.loads(l)
    except (OSError, ValueError):
        pass
    return None


class Run:
    def __init__(self, row, near_ns):
        (self.rep, self.size, self.mode, self.impl, self.attempt, self.share, self.sfile,
         self.fmt, self.c2c, self.prefix) = row
        self.rep, self.size, self.attempt = int(self.rep), int(self.size), int(self.attempt)
        self.share = float(self.share or 0)
        probes = parse_probes(self.c2c)
        self.samples = [(pps, classify(t0, t1, probes, near_ns))
                        for t0, t1, pps in parse_samples(self.sfile, self.fmt)]
        self.all = [p for p, _ in self.samples]
        self.by = {c: [p for p, k in self.samples if k == c] for c in ("near", "far", "mixed", "none")}
        self.check = self.cross_check()

    def valid(self):
        return self.share >= 95 and len(self.all) > 0 and self.memory_ok()

    def memory_ok(self):
        """The shell must have used the memory the run claims (it falls back
        to 4K pages silently when no hugepage is free)."""
        if self.fmt != "npa":
            return True
        g = guest_summary(self.prefix)
        return g is not None and bool(g.get("hugepages")) == (self.mode == "huge")

    def cross_check(self):
        """npa-agent runs: the agent's count against the guest's, and the
        agent's mid-run rate against the guest's samples."""
        t1, s1 = load_json_after_stamp(self.prefix + ".stats1")
        t2, s2 = load_json_after_stamp(self.prefix + ".stats2")
        _, s3 = load_json_after_stamp(self.prefix + ".stats3")
        if s1 is None and s2 is None and s3 is None and not os.path.exists(self.prefix + ".guest.log"):
            return None
        c1, c2, c3 = (agent_guest_packets(s) if s is not None else None for s in (s1, s2, s3))
        res = {}
        if c1 is not None and c2 is not None and t2 > t1:
            res["agent_mid_pps"] = (c2 - c1) / (t2 - t1)
        g = guest_summary(self.prefix)
        if g is not None and g.get("bursts"):
            # Share of the guest's bursts that found the ring full: near 1,
            # the back end is the bottleneck; near 0, the guest is.
            res["ring_full_share"] = g.get("tx_full", 0) / g["bursts"]
        if g is not None and c3 is not None:
            res["agent_total"] = c3
            res["guest_total"] = g.get("shell_tx_packets", g.get("packets"))
        return res

    def value(self, basis):
        return med(self.all if basis == "all" else self.by[basis])


def pick(runs, allow_invalid):
    """The run kept for (size, mode, rep, impl): the last valid attempt, else
    (with allow_invalid) the last attempt."""
    best = {}
    for r in runs:
        k = (r.size, r.mode, r.rep, r.impl)
        ok = r.valid() or (allow_invalid and r.all)
        if ok and (k not in best or r.attempt > best[k].attempt or
                   (not best[k].valid() and r.valid())):
            best[k] = r
    return best


def mpps(x):
    return None if x is None else round(x / 1e6, 3)


def fmt(x, w=6):
    return f"{x / 1e6:{w}.2f}" if x is not None else " " * (w - 2) + "n/a"


def report(runs, args):
    best = pick(runs, args.allow_invalid)
    configs = []
    for r in runs:
        if (r.size, r.mode) not in configs:
            configs.append((r.size, r.mode))
    lines_json = {}
    print()
    print("==== npa vs DPDK on the emulated path: guest TX -> back end, 1 queue pair, "
          "burst 32; Mpps = median of the 1-s samples")
    print("==== near/far = vCPU placement during the sample (c2c round trip < / >= "
          f"{args.near_ns} ns); ratio basis = placement compared")
    invalid = [r for r in runs if not r.valid()]
    if invalid:
        print(f"# {len(invalid)} run(s) not valid (CPU share < 95 %, no samples, or wrong page size): "
              + ", ".join(f"{r.impl} {r.size}B {r.mode} r{r.rep}a{r.attempt} cpu {r.share:.0f}%"
                          + ("" if r.memory_ok() else " NOT-ON-" + r.mode.upper() + "-PAGES")
                          for r in invalid))
    for size, mode in configs:
        print(f"\n-- {size} B, {'2 MB hugepages' if mode == 'huge' else '4K pages'}")
        print("   rep  npa Mpps [near/far/mixed]   DPDK Mpps [near/far/mixed]   ratio  basis")
        ratios, nvals, dvals, bases = [], [], [], []
        reps = sorted({r.rep for r in runs if (r.size, r.mode) == (size, mode)})
        for rep in reps:
            n = best.get((size, mode, rep, "npa"))
            d = best.get((size, mode, rep, "dpdk"))
            if n is None or d is None:
                print(f"   r{rep}  (no valid pair)")
                continue
            if len(n.by["near"]) >= 2 and len(d.by["near"]) >= 2:
                basis = "near"
            elif len(n.by["far"]) >= 2 and len(d.by["far"]) >= 2:
                basis = "far"
            else:
                basis = "all"
            nv, dv = n.value(basis), d.value(basis)
            ratio = nv / dv if dv else None
            if ratio is not None:
                ratios.append(ratio)
                nvals.append(nv)
                dvals.append(dv)
                bases.append(basis)
            cnt = lambda r: f"{len(r.by['near'])}/{len(r.by['far'])}/{len(r.by['mixed']) + len(r.by['none'])}"
            print(f"   r{rep}  {fmt(nv)} {basis:4s} [{cnt(n):>7s}]     {fmt(dv)} {basis:4s} [{cnt(d):>7s}]"
                  f"      {ratio:5.2f}  {basis}" if ratio is not None else f"   r{rep}  ratio n/a")
        sel = [r for (s, m, _, i), r in best.items() if (s, m) == (size, mode) and i in ("npa", "dpdk")]
        cls = {c: sum(len(r.by[c]) for r in sel) for c in ("near", "far", "mixed", "none")}
        pooled = {}
        for impl in ("npa", "dpdk"):
            for c in ("near", "far"):
                pooled[(impl, c)] = med([p for r in sel if r.impl == impl for p in r.by[c]])
        j = {"bench": "emulated", "size": size, "hugepages": mode == "huge",
             "npa_mpps": mpps(med(nvals)), "dpdk_mpps": mpps(med(dvals)),
             "ratio": round(med(ratios), 3) if ratios else None,
             "pairs": len(ratios), "pairs_near": bases.count("near"), "pairs_far": bases.count("far"),
             "pairs_all": bases.count("all"),
             "npa_near_mpps": mpps(pooled[("npa", "near")]), "dpdk_near_mpps": mpps(pooled[("dpdk", "near")]),
             "npa_far_mpps": mpps(pooled[("npa", "far")]), "dpdk_far_mpps": mpps(pooled[("dpdk", "far")]),
             "samples_near": cls["near"], "samples_far": cls["far"],
             "samples_mixed": cls["mixed"] + cls["none"]}
        lines_json[(size, mode)] = j
        if ratios:
            print(f"   => npa {j['npa_mpps']:.2f} Mpps, DPDK {j['dpdk_mpps']:.2f} Mpps, "
                  f"median ratio npa/DPDK {j['ratio']:.2f} over {len(ratios)} pair(s) "
                  f"(near {j['pairs_near']}, far {j['pairs_far']}, all {j['pairs_all']}); "
                  f"range {min(ratios):.2f}..{max(ratios):.2f}")
        print(f"   samples: near {cls['near']}, far {cls['far']}, mixed/unknown {cls['mixed'] + cls['none']}; "
              f"pooled medians near: npa {fmt(pooled[('npa', 'near')], 0)} / DPDK {fmt(pooled[('dpdk', 'near')], 0)}, "
              f"far: npa {fmt(pooled[('npa', 'far')], 0)} / DPDK {fmt(pooled[('dpdk', 'far')], 0)} Mpps")
        for r in sorted(sel, key=lambda r: (r.rep, r.impl)):
            c = r.check
            if not c:
                continue
            parts = []
            if "agent_mid_pps" in c and r.all:
                parts.append(f"agent mid-run rate {c['agent_mid_pps'] / 1e6:.2f} Mpps vs guest median "
                             f"{med(r.all) / 1e6:.2f} ({c['agent_mid_pps'] / med(r.all):.3f}x)")
            if c.get("guest_total") is not None:
                parts.append(f"agent total {c['agent_total']} vs guest tx {c['guest_total']} "
                             f"(diff {c['agent_total'] - c['guest_total']})")
            if "ring_full_share" in c:
                parts.append(f"guest bursts finding the ring full {100 * c['ring_full_share']:.0f} %")
            if parts:
                print(f"   cross-check r{r.rep}: " + "; ".join(parts))
        for impl in ("npa-guest+dpdk-vhost", "dpdk-virtio+npa-agent"):
            xs = [r for (s, m, _, i), r in best.items() if (s, m, i) == (size, mode, impl)]
            if xs:
                print(f"   cross: {impl:22s} " + ", ".join(
                    f"r{r.rep} {fmt(r.value('all'), 0)} Mpps [near {fmt(r.value('near'), 0)}, far {fmt(r.value('far'), 0)}]"
                    + (f" ring full {100 * r.check['ring_full_share']:.0f} %"
                       if r.check and "ring_full_share" in r.check else "")
                    for r in sorted(xs, key=lambda r: r.rep)))
    print()
    head = (args.headline_size, args.headline_mode)
    if head not in lines_json and lines_json:
        head = list(lines_json)[-1]
    for k, j in lines_json.items():
        if k != head:
            print(json.dumps(j, separators=(",", ":")))
    if head not in lines_json:
        print(json.dumps({"bench": "emulated", "size": args.headline_size,
                          "hugepages": args.headline_mode == "huge", "npa_mpps": None,
                          "dpdk_mpps": None, "ratio": None}, separators=(",", ":")))
        return 1
    j = lines_json[head]
    print(json.dumps(j, separators=(",", ":")))
    return 0 if j["ratio"] is not None else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest")
    ap.add_argument("--near-ns", type=float, default=200)
    ap.add_argument("--headline-size", type=int, default=64)
    ap.add_argument("--headline-mode", default="huge")
    ap.add_argument("--allow-invalid", action="store_true",
                    help="use runs below the CPU-share threshold when no valid one exists (smoke runs)")
    ap.add_argument("--quick-median", metavar="'FILE FORMAT'",
                    help="print the median Mpps of one run's kept samples and exit")
    args = ap.parse_args()
    if args.quick_median:
        f = args.quick_median.split()
        if len(f) != 2:
            return 2
        m = med([p for _, _, p in parse_samples(f[0], f[1])])
        print(f"{m / 1e6:.2f}" if m else "n/a")
        return 0
    if not args.manifest or not os.path.exists(args.manifest):
        print("bench_analyze: --manifest FILE needed", file=sys.stderr)
        return 2
    runs = []
    for l in open(args.manifest):
        row = l.rstrip("\n").split("\t")
        if len(row) == 10:
            runs.append(Run(row, args.near_ns))
    if not runs:
        print("bench_analyze: no runs in the manifest", file=sys.stderr)
        print(json.dumps({"bench": "emulated", "size": args.headline_size,
                          "hugepages": args.headline_mode == "huge", "npa_mpps": None,
                          "dpdk_mpps": None, "ratio": None}, separators=(",", ":")))
        return 1
    return report(runs, args)


if __name__ == "__main__":
    sys.exit(main())
