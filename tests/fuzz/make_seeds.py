#!/usr/bin/env python3
"""Writes the seed corpora under corpus/<target>/ (committed; rerun to regenerate).

Each seed is a real, valid input: control frames as the shell sends them,
the vhost-user bring-up sequence DPDK's virtio-user sends, and a TX ring with
one posted frame.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def envelope(seq, body_field, body):
    return field(1, 0, 1) + field(3, 0, seq) + field(body_field, 2, body)


def frame(body):
    return struct.pack("<I", len(body)) + body


# ---- control_codec ----
hello = field(1, 2, b"guest0") + field(2, 2, bytes([2, 0, 0, 0, 0, 1])) + field(3, 0, 2) + field(5, 0, 1234)
write("control_codec", "hello", frame(envelope(1, 10, hello)))
write("control_codec", "hello_body_only", envelope(1, 10, hello))
write("control_codec", "bye", frame(envelope(2, 14, b"")))
write("control_codec", "stats_then_bye", frame(envelope(3, 15, b"")) + frame(envelope(4, 14, b"")))
write("control_codec", "bad_major", frame(field(1, 0, 7) + field(14, 2, b"")))

# ---- vhost_message: records [fd byte][hdr][payload] ----
V = 1
NEED_REPLY = 8


def rec(req, payload=b"", fdb=0, flags=V):
    return bytes([fdb]) + struct.pack("<III", req, flags, len(payload)) + payload


def u64(v):
    return struct.pack("<Q", v)


def state(i, n):
    return struct.pack("<II", i, n)


def addr(i, desc, used, avail):
    return struct.pack("<IIQQQQ", i, 0, desc, used, avail, 0)


FEAT = (1 << 32) | (1 << 15) | (1 << 30) | (1 << 22)
seq = rec(3) + rec(1) + rec(15) + rec(16, u64(0b1001)) + rec(17) + rec(2, u64(FEAT), flags=V | NEED_REPLY)
seq += rec(5, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0x10000, 0x10000, 0x10000, 0), fdb=0x11)
for ring in (0, 1):
    base = 0x10000 + ring * 0x4000
    seq += rec(13, u64(ring), fdb=1) + rec(8, state(ring, 64)) + rec(10, state(ring, 0))
    seq += rec(9, addr(ring, base, base + 0x2000, base + 0x1000)) + rec(12, u64(ring), fdb=1)
    seq += rec(18, state(ring, 1))
seq += rec(11, state(1, 0))
write("vhost_message", "dpdk_bringup", seq)
write("vhost_message", "nofd_rings", rec(3) + rec(2, u64(1 << 32)) + rec(13, u64(0x100)) + rec(12, u64(0x101)))
write("vhost_message", "stream_mode", bytes([0x80]) + seq[1:13] + seq[14:26])
write("vhost_message", "status", rec(3) + rec(16, u64(1 << 16)) + rec(39, u64(0xf)) + rec(40))

# ---- desc_chain: [ring size exp][mrg][head u16][arena 64 KiB...] ----
arena = bytearray(0x6000)
struct.pack_into("<QIHH", arena, 0, 0x10000 + 0x8000, 100, 0, 0)        # desc 0: one buffer
struct.pack_into("<QIHH", arena, 16, 0x10000 + 0x8100, 12, 1, 2)       # desc 1 -> 2: split header
struct.pack_into("<QIHH", arena, 32, 0x10000 + 0x8200, 60, 0, 0)
struct.pack_into("<HHHH", arena, 0x4000, 0, 2, 0, 1)                    # avail: idx 2, ring [0, 1]
write("desc_chain", "tx_two_frames", bytes([6, 1, 0, 0]) + bytes(arena))
rx = bytearray(0x6000)
for i in range(4):
    struct.pack_into("<QIHH", rx, 16 * i, 0x10000 + 0x8000 + 0x800 * i, 0x800, 2, 0)  # WRITE
struct.pack_into("<HH", rx, 0x4000, 0, 4)
struct.pack_into("<HHHH", rx, 0x4004, 0, 1, 2, 3)
write("desc_chain", "rx_four_buffers", bytes([3, 1, 0, 0]) + bytes(rx))
