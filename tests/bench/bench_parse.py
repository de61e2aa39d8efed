#!/usr/bin/env python3
"""Readers for scripts/bench-emulated.sh's files (tests/bench/bench_analyze.py
does the analysis): kept 1-s samples, c2c probes and placement classes,
npactl snapshots, the guest's summary line, the ring a run negotiated, perf
cycle counts. Formats: see bench_analyze.py's header."""
import json
import statistics


def read_text(path):
    """The file's text (undecodable bytes replaced); OSError when unreadable."""
    with open(path, errors="replace") as f:
        return f.read()

DROP_FIRST, DROP_LAST = 2, 1
PREEMPTED_NS = 2000


def parse_samples(path, fmt):
    """[(t_start, t_end, pps)] of the kept samples."""
    out = []
    try:
        lines = read_text(path).splitlines()
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
        for l in read_text(path).splitlines():
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
        text = read_text(path)
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
        for l in reversed(read_text(prefix + ".guest.log").splitlines()):
            if l.startswith("{"):
                return json.loads(l)
    except (OSError, ValueError):
        pass
    return None


def guest_banner_ring(prefix):
    """The ring from npa_bench_guest's start line on stderr ("..., split
    ring"), for a guest that never printed its JSON summary."""
    try:
        for l in read_text(prefix + ".guest.err").splitlines():
            f = l.split()
            if l.startswith("npa_bench_guest:") and len(f) >= 2 and f[-1] == "ring":
                return f[-2] if f[-2] in ("split", "packed") else None
    except OSError:
        pass
    return None


RING_PACKED_BIT = 34   # VIRTIO_F_RING_PACKED (VIRTIO 1.1, 6 "Reserved Feature Bits")


def ring_of_features(x):
    """'packed' or 'split' from a negotiated virtio feature word (int, or a
    string as protobuf's JSON prints uint64), None when unreadable."""
    try:
        v = int(x, 0) if isinstance(x, str) else int(x)
    except (TypeError, ValueError):
        return None
    return "packed" if v >> RING_PACKED_BIT & 1 else "split"


def find_key(o, names):
    if isinstance(o, dict):
        for k, v in o.items():
            if k in names:
                return v
        for v in o.values():
            r = find_key(v, names)
            if r is not None:
                return r
    elif isinstance(o, list):
        for v in o:
            r = find_key(v, names)
            if r is not None:
                return r
    return None


def dpdk_vhost_ring(path):
    """The ring DPDK's net_vhost negotiated, from its "negotiated Virtio
    features: 0x..." log line (lib.vhost.config, INFO)."""
    found = None
    try:
        for l in read_text(path).splitlines():
            k = l.find("negotiated Virtio features:")
            if k >= 0:
                found = ring_of_features(l[k:].split(":", 1)[1].strip())
    except OSError:
        return None
    return found


def dpdk_virtio_ring(path):
    """The ring DPDK's net_virtio_user negotiated, from "features after
    negotiate = <hex>" (pmd.net.virtio.init at debug level, which the script
    asks for on the virtio-user testpmd)."""
    found = None
    try:
        for l in read_text(path).splitlines():
            k = l.find("features after negotiate =")
            if k >= 0:
                try:
                    found = ring_of_features(int(l[k:].split("=", 1)[1].strip(), 16))
                except ValueError:
                    found = None
    except OSError:
        return None
    return found


def perf_cycles_per_s(path):
    """Cycles a second from a prefix.perf_* file, None without a count."""
    try:
        lines = read_text(path).splitlines()
        window = float(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    for l in lines[1:]:
        f = l.split(",")
        if len(f) >= 3 and f[2].startswith("cycles"):
            try:
                return float(f[0]) / window if window > 0 else None
            except ValueError:
                return None
    return None
