#!/usr/bin/env python3
"""Unit tests for tests/bench/bench_analyze.py: like-with-like pairing, no
"all samples" basis, the best-vs-best headline, cycles per frame, the ring a
run negotiated. Synthetic runs: files written the way bench-emulated.sh and
the binaries write them. Run: python3 -m unittest (ctest bench_analyze_test)."""
import json
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_analyze as ba  # noqa: E402
import bench_parse as bp  # noqa: E402

NEAR_NS, FAR_NS = 100, 400


class Fixture:
    """Writes one run's files; placement per 1-s sample: 'n' near, 'f' far."""

    def __init__(self, root):
        self.root = root
        self.n = 0

    def run(self, impl, ring, pps, placements, rep=1, rnd=0, share=99, share_back=99,
            share_guest=99, size=64, mode="huge"):
        self.n += 1
        prefix = os.path.join(self.root, f"run{self.n}")
        # 2 warm-up samples and 1 tail sample are dropped: pad around the kept ones.
        kinds = ["n", "n"] + list(placements) + ["n"]
        with open(prefix + ".guest.log", "w") as f, open(prefix + ".c2c.log", "w") as c:
            for i, k in enumerate(kinds):
                t = 1000.0 + i
                f.write(f"sample {t + 1:.3f} 1.0 {int(pps)} {pps}\n")
                for q in range(4):
                    c.write(f"{t + 0.1 + 0.2 * q:.3f} {NEAR_NS if k == 'n' else FAR_NS}\n")
            f.write(json.dumps({"guest": "npa_bench_guest", "ring": ring, "hugepages": mode == "huge",
                                "bursts": 0}) + "\n")
        row = [str(rep), str(size), mode, impl, ring, str(rnd), "0", str(share), str(share_back),
               str(share_guest), prefix + ".guest.log", "npa", prefix + ".c2c.log", prefix]
        return ba.Run(row, 200)


def best_of(*runs):
    return ba.pick(list(runs), allow_invalid=False)


class RunsTestCase(unittest.TestCase):
    """A fresh directory of run files per test."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.fx = Fixture(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()


class PairingTest(RunsTestCase):
    def test_pairs_like_with_like(self):
        ns = self.fx.run("npa", "split", 20e6, "nnnnn")
        ds = self.fx.run("dpdk", "split", 10e6, "nnnnn")
        npk = self.fx.run("npa", "packed", 30e6, "nnnnn")
        dpk = self.fx.run("dpdk", "packed", 12e6, "nnnnn")
        best = best_of(ns, ds, npk, dpk)
        split = ba.like_pairs(best, 64, "huge", "split")[1][0]
        packed = ba.like_pairs(best, 64, "huge", "packed")[1][0]
        self.assertIs(split.n, ns)
        self.assertIs(split.d, ds)
        self.assertIs(packed.n, npk)
        self.assertIs(packed.d, dpk)
        self.assertAlmostEqual(split.ratio, 2.0)
        self.assertAlmostEqual(packed.ratio, 2.5)
        self.assertEqual(split.basis, "near")

    def test_far_only_when_no_common_near(self):
        n = self.fx.run("npa", "split", 10e6, "nnfff")
        d = self.fx.run("dpdk", "split", 5e6, "fffff")
        self.assertEqual(ba.pair_basis(n, d), "far")
        self.assertAlmostEqual(ba.compare(n, d).ratio, 2.0)

    def test_no_common_placement_is_never_compared_on_all(self):
        # npa far, DPDK near: "all" would read 0.5; the pair must be excluded.
        n = self.fx.run("npa", "split", 10e6, "fffff")
        d = self.fx.run("dpdk", "split", 20e6, "nnnnn")
        self.assertIsNone(ba.pair_basis(n, d))
        self.assertIsNone(ba.compare(n, d))
        # One near and one far sample each is not a common placement either.
        self.assertIsNone(ba.pair_basis(self.fx.run("npa", "split", 1e6, "nf"),
                                        self.fx.run("dpdk", "split", 1e6, "nf")))
        j, _, pairs = ba.headline(best_of(n, d), 64, "huge", ["split"], 2000)
        self.assertEqual(pairs, [])
        self.assertIsNone(j["ratio"])
        self.assertFalse(j["comparable"])
        self.assertEqual(j["pairs_excluded"], 1)
        self.assertEqual(j["split_excluded"], 1)
        self.assertNotIn("pairs_all", j)
        # Reported, not compared: each side's own median of all its samples.
        self.assertEqual(j["npa_mpps"], 10.0)
        self.assertEqual(j["dpdk_mpps"], 20.0)

    def test_rerun_round_is_used_when_the_first_is_not_comparable(self):
        n0 = self.fx.run("npa", "split", 10e6, "fffff", rnd=0)
        d0 = self.fx.run("dpdk", "split", 20e6, "nnnnn", rnd=0)
        n1 = self.fx.run("npa", "split", 21e6, "nnnnn", rnd=1)
        d1 = self.fx.run("dpdk", "split", 14e6, "nnnnn", rnd=1)
        best = best_of(n0, d0, n1, d1)
        p = ba.like_pairs(best, 64, "huge", "split")[1][0]
        self.assertIs(p.n, n1)
        self.assertIs(p.d, d1)
        j, _, _ = ba.headline(best, 64, "huge", ["split"], 2000)
        self.assertEqual(j["ratio"], 1.5)
        self.assertEqual(j["pairs_excluded"], 0)

    def test_headline_is_best_ring_against_best_ring(self):
        runs = []
        for rep in (1, 2, 3):
            runs += [self.fx.run("npa", "split", 20e6, "nnnnn", rep=rep),
                     self.fx.run("npa", "packed", 30e6 + rep, "nnnnn", rep=rep),
                     self.fx.run("dpdk", "split", 15e6, "nnnnn", rep=rep),
                     self.fx.run("dpdk", "packed", 10e6, "nnnnn", rep=rep)]
        j, _, pairs = ba.headline(best_of(*runs), 64, "huge", ["split", "packed"], 2000)
        self.assertEqual(j["npa_ring"], "packed")
        self.assertEqual(j["dpdk_ring"], "split")
        self.assertEqual(len(pairs), 3)
        self.assertTrue(all(p.n.ring == "packed" and p.d.ring == "split" for p in pairs))
        self.assertAlmostEqual(j["ratio"], round((30e6 + 2) / 15e6, 3))
        self.assertEqual(j["split_ratio"], round(20 / 15, 3))
        self.assertEqual(j["packed_ratio"], 3.0)
        keys = list(j)
        self.assertEqual(keys[:9], ["bench", "size", "hugepages", "npa_ring", "dpdk_ring",
                                    "npa_mpps", "dpdk_mpps", "ratio", "comparable"])

    def test_best_ring_is_judged_on_a_common_placement(self):
        # npa split is faster than packed on near samples, but one split rep
        # ran far: a median over pairs would crown packed for that alone.
        runs = [self.fx.run("npa", "split", 10e6, "fffff", rep=1), self.fx.run("dpdk", "split", 8e6, "fffff", rep=1),
                self.fx.run("npa", "split", 50e6, "nnnnn", rep=2), self.fx.run("dpdk", "split", 30e6, "nnnnn", rep=2),
                self.fx.run("npa", "split", 55e6, "nnnnn", rep=3), self.fx.run("dpdk", "split", 8e6, "fffff", rep=3)]
        for rep in (1, 2, 3):
            runs += [self.fx.run("npa", "packed", 40e6, "nnnnn", rep=rep),
                     self.fx.run("dpdk", "packed", 42e6, "nnnnn", rep=rep)]
        j, _, _ = ba.headline(best_of(*runs), 64, "huge", ["split", "packed"], 2000)
        self.assertEqual(j["npa_ring"], "split")
        self.assertEqual(j["dpdk_ring"], "packed")

    def test_best_vs_best_pair_needs_its_own_common_placement(self):
        # Like pairs comparable (split near, packed far), but npa's best
        # (packed, far) against DPDK's best (split, near) shares nothing.
        runs = [self.fx.run("npa", "split", 20e6, "nnnnn"), self.fx.run("dpdk", "split", 15e6, "nnnnn"),
                self.fx.run("npa", "packed", 30e6, "fffff"), self.fx.run("dpdk", "packed", 10e6, "fffff")]
        j, _, pairs = ba.headline(best_of(*runs), 64, "huge", ["split", "packed"], 2000)
        self.assertEqual((j["npa_ring"], j["dpdk_ring"]), ("packed", "split"))
        self.assertEqual(pairs, [])
        self.assertEqual(j["pairs_excluded"], 1)
        self.assertIsNone(j["ratio"])


class CyclesPerFrameTest(RunsTestCase):
    def test_clock_method(self):
        # 2 GHz, 50 % of the core, 10 Mpps: 100 cycles a frame.
        self.assertAlmostEqual(ba.cpf_clock(2000, 50, 10e6), 100.0)
        self.assertIsNone(ba.cpf_clock(2000, 0, 10e6))
        self.assertIsNone(ba.cpf_clock(None, 50, 10e6))
        r = self.fx.run("npa", "split", 20e6, "nnnnn", share_back=100, share_guest=90)
        self.assertEqual(r.cpf("back", 3000), (150.0, "clock"))
        v, m = r.cpf("guest", 3000)
        self.assertAlmostEqual(v, 135.0)
        self.assertEqual(m, "clock")

    def test_perf_method_wins_when_perf_counted(self):
        r = self.fx.run("dpdk", "split", 10e6, "nnnnn")
        with open(r.prefix + ".perf_guest", "w") as f:
            f.write("6\n12000000000,,cycles,6000000000,100.00,,\n")
        self.assertEqual(r.cpf("guest", 3000), (200.0, "perf"))
        with open(r.prefix + ".perf_back", "w") as f:
            f.write("6\n<not supported>,,cycles,0,100.00,,\n")
        self.assertEqual(r.cpf("back", 3000)[1], "clock")

    def test_headline_carries_cpf_per_core(self):
        runs = [self.fx.run("npa", "split", 20e6, "nnnnn", share_back=100, share_guest=100),
                self.fx.run("dpdk", "split", 10e6, "nnnnn", share_back=100, share_guest=50)]
        j, _, _ = ba.headline(best_of(*runs), 64, "huge", ["split"], 2000)
        self.assertEqual(j["cpf_method"], "clock")
        self.assertEqual((j["npa_cpf_guest"], j["npa_cpf_back"]), (100.0, 100.0))
        self.assertEqual((j["dpdk_cpf_guest"], j["dpdk_cpf_back"]), (100.0, 200.0))


class RingTest(unittest.TestCase):
    def test_features_word(self):
        self.assertEqual(bp.ring_of_features("0xd50008000"), "packed")   # seen from DPDK 22.11
        self.assertEqual(bp.ring_of_features(0x150008000), "split")
        self.assertEqual(bp.ring_of_features("17179869184"), "packed")   # protobuf JSON uint64
        self.assertIsNone(bp.ring_of_features("junk"))

    def test_dpdk_vhost_log_and_guest_banner(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "x")
            with open(p + ".backend.log", "w") as f:
                f.write("1.0 VHOST_CONFIG: (/s.sock) negotiated Virtio features: 0x150008000\n")
            self.assertEqual(bp.dpdk_vhost_ring(p + ".backend.log"), "split")
            with open(p + ".client.log", "w") as f:
                f.write("1.0 virtio_ethdev_negotiate_features(): features after negotiate = 500018000\n")
            self.assertEqual(bp.dpdk_virtio_ring(p + ".client.log"), "packed")
            # A DPDK run whose two ends disagree has no known ring.
            row = ["1", "64", "huge", "dpdk", "packed", "0", "0", "99", "99", "99", p + ".backend.log",
                   "testpmd-rx", p + ".c2c.log", p]
            self.assertIsNone(ba.Run(row, 200).negotiated_ring())
            with open(p + ".backend.log", "w") as f:
                f.write("1.0 VHOST_CONFIG: (/s.sock) negotiated Virtio features: 0xd50008000\n")
            self.assertEqual(ba.Run(row, 200).negotiated_ring(), "packed")
            with open(p + ".guest.err", "w") as f:
                f.write("npa_bench_guest: tx 64 B burst 32 on s, 2M huge pages, pool 4096, packed ring\n")
            self.assertEqual(bp.guest_banner_ring(p), "packed")


if __name__ == "__main__":
    unittest.main()
