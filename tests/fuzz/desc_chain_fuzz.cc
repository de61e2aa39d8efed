// libFuzzer target: the descriptor-chain walker and the device side of a
// split or packed (VIRTIO 1.1 2.8) virtqueue over a small fake guest memory.
//
// The input fills a 64 KiB arena that is the guest's only region (gpa
// 0x10000..0x20000): the descriptor table, avail and used rings live in it,
// so every ring field, index and descriptor is fuzzer-controlled. The arena
// is a heap allocation: any access outside it is an ASan report. Byte 0
// picks the ring size (2^(b%9)), byte 1 mergeable, bytes 2-3 a head for a
// direct WalkChain. Byte 1 bit 1 set: a packed ring instead, of 1 + b0 % 200
// slots (any size), bytes 2-3 the base (slot modulo the size, bit 15 the
// wrap counter); the driver and device event areas sit at 0x4000 / 0x4010.
#include <cstring>
#include <memory>
#include <vector>

#include "hypervisor/vhost/desc_chain.h"
#include "hypervisor/vhost/virtqueue.h"

using namespace npa::agent;

namespace {
constexpr uint64_t kGpa = 0x10000;
constexpr size_t kArena = 0x10000;

void Drive(VirtQueue& vq, bool tx) {
  QueueCounters c{};
  std::string violation;
  if (tx) {
    GuestFrame f[8];
    for (int round = 0; round < 4 && violation.empty(); ++round) {
      uint32_t budget = 40;
      const uint16_t n = vq.PeekTx(f, 8, &c, &violation, &budget);
      for (uint16_t i = 0; i < n; ++i) {
        volatile uint8_t sink = static_cast<uint8_t*>(f[i].segs[0].iov_base)[0];
        (void)sink;
      }
      vq.ReleaseTx(static_cast<uint16_t>(n / 2));
      if (round == 2) vq.Stop();
    }
  } else {
    uint8_t pkt[3000];
    std::memset(pkt, 0xab, sizeof(pkt));
    iovec segs[2] = {{pkt, 1000}, {pkt + 1000, 2000}};
    PacketRef p[3] = {{nullptr, segs, 1, 1000}, {nullptr, segs, 2, 3000}, {nullptr, segs, 1, 64}};
    for (int round = 0; round < 4 && violation.empty(); ++round) vq.EnqueueRx(p, 3, &c, &violation);
  }
}

void FuzzPacked(const GuestMemory& m, std::shared_ptr<const GuestMemory> mem, uint8_t* arena,
                uint32_t num, bool mrg, uint16_t head) {
  auto* ring = reinterpret_cast<npa_vring_packed_desc*>(arena);
  const uint16_t base = npa_vring_packed_base(static_cast<uint16_t>((head & 0x7fff) % num), head >> 15);
  ChainBuf bufs[kMaxFrameSegs + 1];
  ChainWalk w;
  ChainError e;
  uint16_t id;
  uint32_t hint = 0;
  for (ChainDir dir : {ChainDir::kReadable, ChainDir::kWritable}) {
    const PackedWalk r = WalkPackedChain(ring, num, PackedBaseIdx(base), PackedBaseWrap(base), num, m,
                                         &hint, dir, bufs, kMaxFrameSegs + 1, &w, &id, &e);
    if (r == PackedWalk::kError) (void)e.Describe();
  }
  RingLayout l{num, nullptr, nullptr, nullptr};
  l.is_packed = true;
  l.packed = {num, ring, reinterpret_cast<npa_vring_packed_desc_event*>(arena + 0x4000),
              reinterpret_cast<npa_vring_packed_desc_event*>(arena + 0x4010)};
  for (bool tx : {true, false}) {
    VirtQueue vq;
    vq.Configure(mem, l, base, mrg, -1, /*event_idx=*/true);
    Drive(vq, tx);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const uint32_t num = 1u << (data[0] % 9);
  const bool mrg = data[1] & 1;
  uint16_t head;
  std::memcpy(&head, data + 2, 2);
  std::vector<uint8_t> arena(kArena);
  std::memcpy(arena.data(), data + 4, std::min(size - 4, kArena));
  auto mem = GuestMemory::FromRegions({{kGpa, kGpa, kArena, arena.data()}});
  if (!mem.ok()) return 0;
  if (data[1] & 2) {
    FuzzPacked(**mem, *mem, arena.data(), 1 + data[0] % 200, mrg, head);
    return 0;
  }

  // Direct walk from an arbitrary head, both directions.
  auto* table = reinterpret_cast<npa_vring_desc*>(arena.data());
  ChainBuf bufs[kMaxFrameSegs + 1];
  ChainWalk w;
  ChainError e;
  uint32_t hint = 0;
  for (ChainDir dir : {ChainDir::kReadable, ChainDir::kWritable}) {
    if (WalkChain(table, num, head, **mem, &hint, dir, bufs, kMaxFrameSegs + 1, &w, &e)) {
      GuestFrame f;
      if (!w.truncated && SplitNetHdr(bufs, w.nbufs, &f)) {
        volatile uint8_t sink = 0;
        for (uint16_t k = 0; k < f.nsegs; ++k) {
          sink = sink ^ static_cast<uint8_t*>(f.segs[k].iov_base)[f.segs[k].iov_len - 1];
        }
      }
    } else {
      (void)e.Describe();
    }
  }

  // Whole rings: desc at 0, avail at 0x4000 (<= 6+2*256), used at 0x5000.
  RingLayout l{num, table, reinterpret_cast<npa_vring_avail*>(arena.data() + 0x4000),
               reinterpret_cast<npa_vring_used*>(arena.data() + 0x5000)};
  for (bool tx : {true, false}) {
    VirtQueue vq;
    vq.Configure(*mem, l, head, mrg, -1);
    Drive(vq, tx);
  }
  return 0;
}
