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
# Packed rings (byte 1 bit 1): flags AVAIL = bit 7, USED = bit 15, NEXT = 1,
# WRITE = 2. Size 1 + b0 % 200.
AV, US = 0x80, 0x8000
pk = bytearray(0x6000)
struct.pack_into("<QIHH", pk, 0, 0x10000 + 0x8000, 100, 5, AV)           # slot 0: one frame, id 5
struct.pack_into("<QIHH", pk, 16, 0x10000 + 0x8100, 12, 0, AV | 1)       # slots 1-2: a chain, id 6
struct.pack_into("<QIHH", pk, 32, 0x10000 + 0x8200, 60, 6, AV)
write("desc_chain", "packed_tx_wrap1", bytes([6, 3, 0, 0x80]) + bytes(pk))   # 7 slots, base 0 wrap 1
pw = bytearray(0x6000)
for i in range(7):                                                      # lap 2 (wrap 0): AVAIL 0, USED 1
    struct.pack_into("<QIHH", pw, 16 * i, 0x10000 + 0x8000 + 0x100 * i, 0x100, i, US | 2)
write("desc_chain", "packed_rx_wrap0_at_5", bytes([6, 3, 5, 0]) + bytes(pw))  # base slot 5, wrap 0

# ---- plugin_table: [flags][opt][npa_plugin_info][name 256][vendor 256]
#      [version 256][ctrl ops][fast ops][id table] (plugin_table_fuzz.cc) ----
# x86-64 layout of include/npa/plugin.h ABI 1.x: info 96 bytes (struct_size,
# abi_major, abi_minor, 7 pointers/fields...), ctrl ops, fast ops.
INFO_SIZE, CTRL_SIZE, FAST_SIZE = 96, 136, 56


def padded(s, n):
    return s + bytes(n - len(s))


def info(id_count=1, id_entry_size=24, caps=1, major=1, minor=0):
    # struct_size u32, abi_major u16, abi_minor u16, name, vendor, version,
    # id_table (pointers, replaced by the target), id_count u32,
    # id_entry_size u32, capabilities u64, ctrl, fast (pointers).
    b = struct.pack("<IHH", INFO_SIZE, major, minor) + bytes(32)
    b += struct.pack("<IIQ", id_count, id_entry_size, caps) + bytes(16)
    return padded(b, INFO_SIZE)


def ops(size, n_ptrs):
    return padded(struct.pack("<I", size) + bytes(4) + b"\x01\x10\x00\x00\x00\x00\x00\x00" * n_ptrs, size)


pci = struct.pack("<HHHHII", 0x1D0F, 0x100F, 0xFFFF, 0xFFFF, 0, 0)
good = bytes([0x7F, 0]) + info() + padded(b"seed\0", 256) + padded(b"npa\0", 256) + padded(b"1.0\0", 256)
good += ops(CTRL_SIZE, 15) + ops(FAST_SIZE, 6) + pci
write("plugin_table", "good", good)
write("plugin_table", "no_nul_name", bytes([0x3F, 0]) + info() + b"a" * 256 + padded(b"npa\0", 256) +
      padded(b"1.0\0", 256) + ops(CTRL_SIZE, 15) + ops(FAST_SIZE, 6) + pci)
write("plugin_table", "two_ids_stride_32", bytes([0x7F, 0]) + info(2, 32) + padded(b"seed\0", 256) +
      padded(b"npa\0", 256) + padded(b"1.0\0", 256) + ops(CTRL_SIZE, 15) + ops(FAST_SIZE, 6) +
      padded(pci, 32) * 2)
write("plugin_table", "short_ctrl", bytes([0x7F, 0]) + info() + padded(b"seed\0", 256) + padded(b"npa\0", 256) +
      padded(b"1.0\0", 256) + ops(64, 7) + ops(FAST_SIZE, 6) + pci)

# ---- shell_virtq: [cfg] then steps [op][args...] (shell_virtq_fuzz.cc) ----
send4 = bytes([0, 3]) + (struct.pack("<H", 60) + bytes([0, 0, 0]) + struct.pack("<H", 0)) * 4
complete = bytes([1, 0, 0]) + struct.pack("<I", 0) + bytes([1, 1, 1]) + struct.pack("<I", 0) + bytes([2, 2])
rx_used = bytes([3, 0, 0]) + struct.pack("<I", 112) + bytes([1])
write("shell_virtq", "send_complete", bytes([0]) + send4 + complete + bytes([4, 6, 7]))
write("shell_virtq", "receive", bytes([1]) + rx_used + bytes([4, 6, 7]) + rx_used + bytes([4, 4, 6]))
# The device rewrites a header's next pointer, then completes: the walk must refuse it.
write("shell_virtq", "corrupt_next", bytes([2]) + send4 + bytes([5]) + struct.pack("<I", 8) + bytes([7]) +
      bytes([0x40, 0x10, 0, 0, 0, 0, 0]) + complete)
csum_rx = bytes([5]) + struct.pack("<I", 128 - 12) + bytes([9]) + bytes([1, 0, 0, 0, 90, 0, 40, 0, 0])
write("shell_virtq", "bad_rx_csum", bytes([0]) + csum_rx + rx_used + bytes([4]))
# Packed mode (cfg bit 3; bit 4: 16 slots, else 13; bit 5: EVENT_IDX): a used
# descriptor is [op 1|3][slot][id][len u32][flags: bit0 AVAIL, bit1 USED].
def pused(op, slot, id_, ln, fl=3):
    return bytes([op, slot, id_]) + struct.pack("<I", ln) + bytes([fl])
write("shell_virtq", "packed_send_complete", bytes([8]) + send4 + pused(1, 0, 0, 0) + pused(1, 1, 1, 0) +
      bytes([2, 0, 0, 1]) + send4 + bytes([2, 0x02, 0x80, 2]))
write("shell_virtq", "packed_receive", bytes([8 | 1]) + pused(3, 0, 0, 112) + bytes([4, 6, 7]) +
      pused(3, 1, 1, 112) + pused(3, 2, 2, 5000) + bytes([4, 4, 6]))
write("shell_virtq", "packed_hostile", bytes([8 | 16 | 32]) + send4 + pused(1, 0, 3, 0, 2) + bytes([2, 0, 0, 2]) +
      pused(3, 0, 17, 112) + bytes([4]))

# ---- migration_state: MigrationState protobuf (include/npa/control.proto) ----
ms = field(1, 0, 1) + field(2, 0, 77) + field(3, 2, b"agent-a") + field(4, 2, b"g1")
ms += field(5, 2, bytes([2, 0, 0, 0, 0, 1])) + field(6, 0, 1500) + field(7, 0, 1)
ms += field(8, 0, 0) + field(9, 0, 1 << 32) + field(11, 0, 1 << 26)
write("migration_state", "offer", ms)
vr = b"".join(field(12, 2, field(1, 0, v) + field(2, 0, 5) + field(3, 0, 5)) for v in (0, 1))
write("migration_state", "commit", ms + vr + field(13, 2, field(1, 0, 10)))
write("migration_state", "bad_version", field(1, 0, 9) + ms[2:])
