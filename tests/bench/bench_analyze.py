#!/usr/bin/env python3
"""Analysis for scripts/bench-emulated.sh: samples -> placement classes ->
like-with-like pair ratios -> medians, a report, and JSON lines.

Input: the script's runs.tsv, one line per run (tab-separated):
  rep size mode impl ring round attempt cpu_share share_back share_guest
  sample_file format c2c_file prefix
impl: npa, dpdk, npa-guest+dpdk-vhost, dpdk-virtio+npa-agent; ring: the ring
the run asked for (split|packed); round: the pair's attempt (a pair whose two
runs saw no common placement is run again as round 1, 2, ...); attempt: the
run's own retry (CPU share below 95 %, no sample). share_back/share_guest: %
of ONE CPU the back end's / the guest's processes got.
formats:
  npa          npa_bench_guest stdout: "sample <unix_t> <interval_s> <packets> <pps>"
  testpmd-rx   testpmd stdout with a unix time stamp before every line; "Rx-pps: N"
  testpmd-tx   the same, "Tx-pps: N" (the virtio-user side)
c2c_file: npa_bench_c2c monitor output, "<unix_t> <ns>|NA".
prefix.stats{1,2,3}: "<unix_t>" then `npactl --json stats` (npa-agent runs).
prefix.perf_{back,guest}: "<window_s>" then `perf stat -x, -e cycles` output
(only where perf counts cycles on this machine).

Rules (docs/PERFORMANCE.md):
- samples of 0 pps are dropped (before/after traffic), then the first 2 and
  the last 1 non-zero samples (warm-up and partial intervals);
- a sample is "near" when >= 75 % of the c2c probes inside its interval are
  under --near-ns, "far" when >= 75 % are at or above, "mixed" otherwise,
  "none" with fewer than 2 probes; probes over 2 us were preempted: ignored;
- a run is valid when its two busy processes had >= 95 % of both CPUs;
- a pair (npa-R, DPDK-R) of one rep and ring R compares near with near when
  both runs have >= 2 near samples, else far with far; otherwise it is NOT
  comparable and is excluded (the script re-runs it first). There is no
  "all samples" basis: near against far reads 0.5x or 2x for nothing;
- the headline takes npa's best ring against DPDK's best ring (best = the
  higher median Mpps on a placement every ring of that side saw: near, else
  far, else over that ring's comparable pairs), and the median of the
  per-rep ratios where those two runs share a placement;
- cycles per frame on a core = that core's cycles over the run's frame rate:
  from perf's cycle count when present ("perf"), else clock x the process's
  CPU share ("clock", the clock from /proc/cpuinfo, --clock-mhz).

The last line printed is the headline configuration's JSON.
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_parse import (agent_guest_packets, classify, dpdk_vhost_ring, dpdk_virtio_ring, find_key,  # noqa: E402
                         guest_banner_ring, guest_summary, load_json_after_stamp, med, parse_probes,
                         parse_samples, perf_cycles_per_s, read_text, ring_of_features)

IMPLS = ("npa", "dpdk")
CROSS_IMPLS = ("npa-guest+dpdk-vhost", "dpdk-virtio+npa-agent")


def cpf_clock(clock_mhz, share_pct, pps):
    """Cycles per frame on one core: the core's clock times the share of it
    the process had, over the frame rate."""
    if not clock_mhz or not pps or share_pct is None or share_pct <= 0:
        return None
    return clock_mhz * 1e6 * share_pct / 100 / pps


class Run:
    COLUMNS = 14

    def __init__(self, row, near_ns):
        (self.rep, self.size, self.mode, self.impl, self.ring, self.round, self.attempt, self.share,
         self.share_back, self.share_guest, self.sfile, self.fmt, self.c2c, self.prefix) = row
        self.rep, self.size, self.round, self.attempt = (int(self.rep), int(self.size),
                                                         int(self.round), int(self.attempt))
        self.share = float(self.share or 0)
        self.share_back = float(self.share_back or 0)
        self.share_guest = float(self.share_guest or 0)
        probes = parse_probes(self.c2c)
        self.samples = [(pps, classify(t0, t1, probes, near_ns))
                        for t0, t1, pps in parse_samples(self.sfile, self.fmt)]
        self.all = [p for p, _ in self.samples]
        self.by = {c: [p for p, k in self.samples if k == c] for c in ("near", "far", "mixed", "none")}
        self.check = self.cross_check()

    @property
    def name(self):
        return f"{self.impl}-{self.ring}"

    def valid(self):
        return self.share >= 95 and len(self.all) > 0 and self.memory_ok()

    def memory_ok(self):
        """The shell must have used the memory the run claims (it falls back
        to 4K pages silently when no hugepage is free)."""
        if self.fmt != "npa":
            return True
        g = guest_summary(self.prefix)
        return g is not None and bool(g.get("hugepages")) == (self.mode == "huge")

    def negotiated_ring(self):
        """The ring the run really used, or None when nothing says."""
        if self.impl in ("npa", "npa-guest+dpdk-vhost"):
            g = guest_summary(self.prefix)
            return g.get("ring") if g else guest_banner_ring(self.prefix)
        client = dpdk_virtio_ring(self.prefix + ".client.log")
        if self.impl == "dpdk":     # both ends must say the same
            vhost = dpdk_vhost_ring(self.prefix + ".backend.log")
            return client if client == vhost else None
        if client:                  # dpdk-virtio+npa-agent
            return client
        for n in (1, 2, 3):     # the agent's GuestInfo, should npactl print it
            _, doc = load_json_after_stamp(f"{self.prefix}.stats{n}")
            r = ring_of_features(find_key(doc, ("virtio_features", "virtioFeatures")))
            if r:
                return r
        return None

    def cpf(self, side, clock_mhz):
        """(cycles per frame on the side's core, "perf"|"clock") or (None, None)."""
        pps = med(self.all)
        if not pps:
            return None, None
        cps = perf_cycles_per_s(f"{self.prefix}.perf_{side}")
        if cps:
            return cps / pps, "perf"
        v = cpf_clock(clock_mhz, self.share_back if side == "back" else self.share_guest, pps)
        return (v, "clock") if v else (None, None)

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
    """The run kept for (size, mode, rep, impl, ring, round): the last valid
    attempt, else (with allow_invalid) the last attempt with samples."""
    best = {}
    for r in runs:
        k = (r.size, r.mode, r.rep, r.impl, r.ring, r.round)
        ok = r.valid() or (allow_invalid and r.all)
        if ok and (k not in best or (r.valid(), r.attempt) > (best[k].valid(), best[k].attempt)):
            best[k] = r
    return best


class Pair:
    """An npa run against a DPDK run on a common placement."""

    def __init__(self, n, d, basis):
        self.n, self.d, self.basis = n, d, basis
        self.nv, self.dv = n.value(basis), d.value(basis)
        self.ratio = self.nv / self.dv


def pair_basis(n, d):
    """The placement both runs saw (>= 2 samples each): "near", else "far",
    else None: not comparable. Never "all"."""
    for c in ("near", "far"):
        if len(n.by[c]) >= 2 and len(d.by[c]) >= 2:
            return c
    return None


def compare(n, d):
    b = pair_basis(n, d)
    return Pair(n, d, b) if b is not None and d.value(b) else None


def like_pairs(best, size, mode, ring):
    """{rep: (Pair or None, (npa run, dpdk run) of the pair's last round)}:
    npa-R against DPDK-R, the first comparable round of each rep."""
    out = {}
    keys = [k for k in best if k[:2] == (size, mode) and k[3] in IMPLS and k[4] == ring]
    for rep in sorted({k[2] for k in keys}):
        chosen, last = None, (None, None)
        for rnd in sorted({k[5] for k in keys if k[2] == rep}):
            n = best.get((size, mode, rep, "npa", ring, rnd))
            d = best.get((size, mode, rep, "dpdk", ring, rnd))
            last = (n or last[0], d or last[1])
            if n and d and chosen is None:
                chosen = compare(n, d)
        out[rep] = (chosen, last)
    return out


def best_ring(values):
    """{ring: [Mpps values]} -> the ring with the highest median (the first
    listed on a tie), None when no ring has a value."""
    best, bv = None, None
    for ring, vs in values.items():
        m = med(vs)
        if m is not None and (bv is None or m > bv):
            best, bv = ring, m
    return best


def best_ring_like(runs_by_ring, fallback):
    """{ring: [Run]} of one side -> its best ring, judged like with like:
    on the near samples when every ring has >= 2 of them, else on the far
    ones, else (no placement common to all rings) by `fallback`, a
    {ring: [Mpps]} for best_ring. A ring must not win because its runs
    happened to be placed near and the other's far."""
    for cls in ("near", "far"):
        vals = {r: [v for x in xs for v in x.by[cls]] for r, xs in runs_by_ring.items()}
        if vals and all(len(v) >= 2 for v in vals.values()):
            return best_ring(vals)
    return best_ring(fallback)


def side_run(like, rep, impl):
    """The run of impl in rep: the comparable pair's, else the last round's."""
    p, last = like.get(rep, (None, (None, None)))
    if p:
        return p.n if impl == "npa" else p.d
    return last[0] if impl == "npa" else last[1]


def headline(best, size, mode, rings, clock_mhz):
    """The configuration's JSON: npa's best ring against DPDK's best ring."""
    like = {r: like_pairs(best, size, mode, r) for r in rings}
    comp = {r: [p for p, _ in like[r].values() if p] for r in rings}
    def runs_of(impl):
        return {r: [x for k, x in best.items() if k[:2] == (size, mode) and k[3] == impl and k[4] == r]
                for r in rings}
    nb = best_ring_like(runs_of("npa"), {r: [p.nv for p in comp[r]] for r in rings})
    db = best_ring_like(runs_of("dpdk"), {r: [p.dv for p in comp[r]] for r in rings})
    reps = sorted({rep for r in rings for rep in like[r]})
    pairs, excluded, fallback = [], 0, nb is None or db is None
    if fallback:    # no comparable pair at all: the rings by all samples
        nb = best_ring({r: [med(x.all) for x in (side_run(like[r], rep, "npa") for rep in reps) if x]
                        for r in rings})
        db = best_ring({r: [med(x.all) for x in (side_run(like[r], rep, "dpdk") for rep in reps) if x]
                        for r in rings})
    for rep in reps:
        if fallback:    # rings chosen on all samples: nothing is compared
            excluded += 1
            continue
        if nb == db:
            p = like[nb][rep][0]
        else:
            n, d = side_run(like[nb], rep, "npa"), side_run(like[db], rep, "dpdk")
            p = compare(n, d) if n and d else None
        if p:
            pairs.append(p)
        else:
            excluded += 1
    ratios = [p.ratio for p in pairs]
    if pairs:
        nruns, druns = [p.n for p in pairs], [p.d for p in pairs]
        nm, dm = med([p.nv for p in pairs]), med([p.dv for p in pairs])
    else:           # reported, never compared: "comparable": false, "ratio": null
        nruns = [x for x in (side_run(like[nb], rep, "npa") for rep in reps) if x] if nb else []
        druns = [x for x in (side_run(like[db], rep, "dpdk") for rep in reps) if x] if db else []
        nm, dm = med([med(x.all) for x in nruns]), med([med(x.all) for x in druns])
    j = {"bench": "emulated", "size": size, "hugepages": mode == "huge",
         "npa_ring": nb, "dpdk_ring": db, "npa_mpps": mpps(nm), "dpdk_mpps": mpps(dm),
         "ratio": round(med(ratios), 3) if ratios else None, "comparable": bool(ratios),
         "pairs": len(ratios), "pairs_near": sum(p.basis == "near" for p in pairs),
         "pairs_far": sum(p.basis == "far" for p in pairs), "pairs_excluded": excluded}
    methods = set()
    for impl, rs in (("npa", nruns), ("dpdk", druns)):
        for side in ("guest", "back"):
            vals = [v for v, m in (r.cpf(side, clock_mhz) for r in rs) if v]
            methods |= {m for _, m in (r.cpf(side, clock_mhz) for r in rs) if m}
            j[f"{impl}_cpf_{side}"] = round(med(vals), 1) if vals else None
    j["cpf_method"] = "perf" if methods == {"perf"} else "clock" if methods == {"clock"} else (
        "mixed" if methods else None)
    j["clock_mhz"] = clock_mhz
    for r in rings:
        ps = comp[r]
        j[f"{r}_ratio"] = round(med([p.ratio for p in ps]), 3) if ps else None
        j[f"npa_{r}_mpps"] = mpps(med([p.nv for p in ps]))
        j[f"dpdk_{r}_mpps"] = mpps(med([p.dv for p in ps]))
        j[f"{r}_pairs"] = len(ps)
        j[f"{r}_excluded"] = len(like[r]) - len(ps)
    return j, like, pairs


def mpps(x):
    return None if x is None else round(x / 1e6, 3)


def fmt(x, w=6):
    return f"{x / 1e6:{w}.2f}" if x is not None else " " * (w - 2) + "n/a"


def cnt(r):
    return f"{len(r.by['near'])}/{len(r.by['far'])}/{len(r.by['mixed']) + len(r.by['none'])}"


def print_config(size, mode, j, like, pairs, best, rings):
    print(f"\n-- {size} B, {'2 MB hugepages' if mode == 'huge' else '4K pages'}")
    print("   rep ring    npa Mpps [near/far/mixed]   DPDK Mpps [near/far/mixed]   ratio  basis")
    for r in rings:
        if not like[r]:
            print(f"   {r}: no valid run in any rep (see the runs not valid above)")
        for rep, (p, (n, d)) in sorted(like[r].items()):
            if p:
                print(f"   r{rep}  {r:6s} {fmt(p.nv)} [{cnt(p.n):>7s}]          {fmt(p.dv)} [{cnt(p.d):>7s}]"
                      f"           {p.ratio:5.2f}  {p.basis}")
            elif n and d:
                print(f"   r{rep}  {r:6s} {fmt(med(n.all))} [{cnt(n):>7s}]          {fmt(med(d.all))} "
                      f"[{cnt(d):>7s}]             n/a  NOT COMPARABLE (no common placement): excluded")
            else:
                print(f"   r{rep}  {r:6s} (no valid pair)")
        if j[f"{r}_pairs"]:
            print(f"   => {r}: npa {j[f'npa_{r}_mpps']:.2f} Mpps, DPDK {j[f'dpdk_{r}_mpps']:.2f} Mpps, "
                  f"median ratio {j[f'{r}_ratio']:.2f} over {j[f'{r}_pairs']} pair(s)")
        print(f"   {r}: {j[f'{r}_excluded']} pair(s) excluded as not comparable")
    ratios = [p.ratio for p in pairs]
    head = f"npa-{j['npa_ring']} vs dpdk-{j['dpdk_ring']}"
    if ratios:
        print(f"   => best vs best ({head}): npa {j['npa_mpps']:.2f} Mpps, DPDK {j['dpdk_mpps']:.2f} Mpps, "
              f"median ratio {j['ratio']:.2f} over {len(ratios)} pair(s) (near {j['pairs_near']}, "
              f"far {j['pairs_far']}; range {min(ratios):.2f}..{max(ratios):.2f}); "
              f"{j['pairs_excluded']} pair(s) not comparable, excluded")
    else:
        print(f"   => best vs best ({head}): NO comparable pair ({j['pairs_excluded']} excluded); "
              f"medians of all samples, not compared: npa {fmt(j['npa_mpps'] and j['npa_mpps'] * 1e6, 0)}"
              f", DPDK {fmt(j['dpdk_mpps'] and j['dpdk_mpps'] * 1e6, 0)} Mpps")
    print(f"   cycles per frame ({j['cpf_method']}, clock {j['clock_mhz']} MHz): "
          f"npa guest {j['npa_cpf_guest']}, back end {j['npa_cpf_back']}; "
          f"DPDK guest {j['dpdk_cpf_guest']}, back end {j['dpdk_cpf_back']}")
    sel = [x for k, x in best.items() if k[:2] == (size, mode) and k[3] in IMPLS]
    cls = {c: sum(len(x.by[c]) for x in sel) for c in ("near", "far", "mixed", "none")}
    print(f"   samples: near {cls['near']}, far {cls['far']}, mixed/unknown {cls['mixed'] + cls['none']}")
    j.update(samples_near=cls["near"], samples_far=cls["far"], samples_mixed=cls["mixed"] + cls["none"])
    for r in sorted(sel, key=lambda r: (r.rep, r.ring, r.round, r.impl)):
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
            print(f"   cross-check r{r.rep} {r.name} round {r.round}: " + "; ".join(parts))
    for impl in CROSS_IMPLS:
        for ring in rings:
            xs = [x for k, x in best.items() if k[:2] == (size, mode) and k[3:5] == (impl, ring)]
            if xs:
                print(f"   cross: {impl}-{ring:6s} " + ", ".join(
                    f"r{x.rep} {fmt(x.value('all'), 0)} Mpps [near {fmt(x.value('near'), 0)}, "
                    f"far {fmt(x.value('far'), 0)}]"
                    + (f" ring full {100 * x.check['ring_full_share']:.0f} %"
                       if x.check and "ring_full_share" in x.check else "")
                    for x in sorted(xs, key=lambda x: x.rep)))


def empty_headline(args):
    return {"bench": "emulated", "size": args.headline_size, "hugepages": args.headline_mode == "huge",
            "npa_ring": None, "dpdk_ring": None, "npa_mpps": None, "dpdk_mpps": None, "ratio": None,
            "comparable": False, "npa_cpf_guest": None, "npa_cpf_back": None, "dpdk_cpf_guest": None,
            "dpdk_cpf_back": None, "cpf_method": None}


def report(runs, args):
    best = pick(runs, args.allow_invalid)
    rings = []
    for r in runs:
        if r.ring not in rings:
            rings.append(r.ring)
    configs = []
    for r in runs:
        if (r.size, r.mode) not in configs:
            configs.append((r.size, r.mode))
    print()
    print("==== npa vs DPDK on the emulated path: guest TX -> back end, 1 queue pair, "
          "burst 32; Mpps = median of the 1-s samples")
    print("==== near/far = vCPU placement during the sample (c2c round trip < / >= "
          f"{args.near_ns} ns); a pair is compared on a placement both runs saw, or excluded")
    invalid = [r for r in runs if not r.valid()]
    if invalid:
        print(f"# {len(invalid)} run(s) not valid (CPU share < 95 %, no samples, or wrong page size): "
              + ", ".join(f"{r.name} {r.size}B {r.mode} r{r.rep}/{r.round}a{r.attempt} cpu {r.share:.0f}%"
                          + ("" if r.memory_ok() else " NOT-ON-" + r.mode.upper() + "-PAGES")
                          for r in invalid))
    lines_json = {}
    for size, mode in configs:
        j, like, pairs = headline(best, size, mode, rings, args.clock_mhz)
        print_config(size, mode, j, like, pairs, best, rings)
        lines_json[(size, mode)] = j
    print()
    head = (args.headline_size, args.headline_mode)
    if head not in lines_json and lines_json:
        head = list(lines_json)[-1]
    for k, j in lines_json.items():
        if k != head:
            print(json.dumps(j, separators=(",", ":")))
    if head not in lines_json:
        print(json.dumps(empty_headline(args), separators=(",", ":")))
        return 1
    j = lines_json[head]
    print(json.dumps(j, separators=(",", ":")))
    return 0 if j["ratio"] is not None else 1


def load_runs(path, near_ns):
    runs = []
    for l in read_text(path).splitlines():
        row = l.split("\t")
        if len(row) == Run.COLUMNS:
            runs.append(Run(row, near_ns))
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest")
    ap.add_argument("--near-ns", type=float, default=200)
    ap.add_argument("--headline-size", type=int, default=64)
    ap.add_argument("--headline-mode", default="huge")
    ap.add_argument("--clock-mhz", type=float, default=None,
                    help="core clock for cycles per frame where perf cannot count cycles")
    ap.add_argument("--allow-invalid", action="store_true",
                    help="use runs below the CPU-share threshold when no valid one exists (smoke runs)")
    ap.add_argument("--quick-median", metavar="'FILE FORMAT'",
                    help="print the median Mpps of one run's kept samples and exit")
    ap.add_argument("--last-ring", action="store_true",
                    help="print the ring the manifest's last run negotiated (split|packed|unknown)")
    ap.add_argument("--pair-basis", nargs=5, metavar=("REP", "SIZE", "MODE", "RING", "ROUND"),
                    help="print near|far|none: the placement npa-RING and dpdk-RING of that round share")
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
    runs = load_runs(args.manifest, args.near_ns)
    if args.last_ring:
        print((runs[-1].negotiated_ring() if runs else None) or "unknown")
        return 0
    if args.pair_basis:
        rep, size, mode, ring, rnd = args.pair_basis
        best = pick(runs, args.allow_invalid)
        n = best.get((int(size), mode, int(rep), "npa", ring, int(rnd)))
        d = best.get((int(size), mode, int(rep), "dpdk", ring, int(rnd)))
        print((pair_basis(n, d) if n and d else None) or "none")
        return 0
    if not runs:
        print("bench_analyze: no runs in the manifest", file=sys.stderr)
        print(json.dumps(empty_headline(args), separators=(",", ":")))
        return 1
    return report(runs, args)


if __name__ == "__main__":
    sys.exit(main())
