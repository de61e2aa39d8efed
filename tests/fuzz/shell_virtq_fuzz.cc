// libFuzzer target: the shell as the victim of a hostile back end. The
// shell's TX and RX virtqueues (shell/emulated/virtq.h) over one buffer pool
// run a script of operations where the "device" is the input: it writes any
// used-ring entry (id, len), any used index, any bytes anywhere in the shared
// buffer slots (virtio-net headers, frame bytes, and also the npa_buf headers
// of buffers the shell holds: `next`, lengths, offsets), while the shell
// sends, reclaims, receives, refills and frees as an application would.
//
// Invariants checked after every step (a violation is __builtin_trap):
//  - every frame RX hands up is a buffer of the shell that is out of the
//    pool, with data inside its slot and pkt_len the sum of its segments;
//  - the pool's free stack and its private state map agree: exactly
//    available() slots are marked free (no slot stacked twice);
// and at the end, after both rings release everything and the application
// frees what it holds, each slot is free at most once. ASan (the fuzz build)
// reports any access outside the ring and slot memory.
//
// Packed mode (config byte bit 3; VIRTIO 1.1 2.8): the rings are packed, of
// 13 slots (not a power of two) or 16 (bit 4), and the device writes any
// descriptor slot with any id, len and AVAIL/USED flags, and any event
// suppression area, instead of used-ring entries and indices.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "npa/virtio_ring.h"
#include "shell/buf_pool.h"
#include "shell/emulated/virtq.h"
#include "shell/offload.h"

using namespace npa::shell;

namespace {

constexpr uint16_t kRing = 16;
constexpr uint32_t kBufs = 96;

struct Script {
  const uint8_t* p;
  size_t n;
  bool More() const { return n > 0; }
  uint8_t U8() {
    if (!n) return 0;
    n--;
    return *p++;
  }
  uint16_t U16() { return static_cast<uint16_t>(U8() | U8() << 8); }
  uint32_t U32() { return static_cast<uint32_t>(U16() | static_cast<uint32_t>(U16()) << 16); }
};

struct Aligned {
  void operator()(uint8_t* p) const { free(p); }
};

uint64_t FreeStates(const BufPool& pool) {
  const SlotStates* st = pool.states();
  uint64_t k = 0;
  for (uint64_t i = 0; i < st->nslots(); i++) k += st->Get(i) == SlotStates::kFree;
  return k;
}

void CheckPool(const BufPool& pool) {
  if (FreeStates(pool) != pool.available()) __builtin_trap();
  if (pool.available() > pool.count()) __builtin_trap();
}

void CheckRxFrame(const BufPool& pool, const npa_buf* b) {
  uint32_t total = 0, segs = 0;
  for (const npa_buf* s = b; s != nullptr; s = s->next) {
    if (!pool.Held(s) || ++segs > kBufs) __builtin_trap();
    if (s->data_off < NPA_BUF_META_SIZE || s->data_off + s->data_len > NPA_BUF_SLOT_SIZE)
      __builtin_trap();
    total += s->data_len;
  }
  if (total != b->pkt_len || segs != b->nb_segs) __builtin_trap();
  if (b->ol_flags & NPA_BUF_OL_RX_CSUM_PARTIAL)
    if (b->csum_start + b->csum_offset + 2u > b->pkt_len) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Script in{data, size};
  const uint8_t cfg = in.U8();
  const bool packed = (cfg & 8) != 0;
  const uint16_t ring = packed && !(cfg & 16) ? 13 : kRing;
  const size_t vr = VringBytes(kRing);  // >= VringBytes(ring)
  const size_t bytes = 2 * vr + size_t{kBufs} * NPA_BUF_SLOT_SIZE;
  std::unique_ptr<uint8_t, Aligned> mem(static_cast<uint8_t*>(aligned_alloc(4096, bytes)));
  memset(mem.get(), 0, bytes);
  uint8_t* slots = mem.get() + 2 * vr;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(slots);
  BufPool pool;
  if (!pool.Init(slots, kBufs, 0, kBufs, lo, lo + size_t{kBufs} * NPA_BUF_SLOT_SIZE).ok()) return 0;
  uint64_t f = 1ull << NPA_VIRTIO_F_VERSION_1;
  if (cfg & 1) f |= 1ull << NPA_VIRTIO_NET_F_MRG_RXBUF;
  if (cfg & 2) f |= (1ull << NPA_VIRTIO_NET_F_CSUM) | (1ull << NPA_VIRTIO_NET_F_HOST_TSO4);
  if (packed) f |= 1ull << NPA_VIRTIO_F_RING_PACKED;
  if (cfg & 32) f |= 1ull << NPA_VIRTIO_F_RING_EVENT_IDX;
  TxVirtq tx;
  RxVirtq rx;
  if (!tx.Init(mem.get(), ring, &pool, f, -1).ok() || !rx.Init(mem.get() + vr, ring, &pool, f, -1).ok())
    return 0;
  rx.set_mergeable(cfg & 1);
  rx.set_strip_vlan(cfg & 4);
  auto* tused = reinterpret_cast<npa_vring_used*>(tx.addrs().used);
  auto* rused = reinterpret_cast<npa_vring_used*>(rx.addrs().used);
  // Packed: the descriptor rings and the device's event areas.
  auto* tdesc = reinterpret_cast<npa_vring_packed_desc*>(tx.addrs().desc);
  auto* rdesc = reinterpret_cast<npa_vring_packed_desc*>(rx.addrs().desc);
  auto* tev = reinterpret_cast<npa_vring_packed_desc_event*>(tx.addrs().used);
  // The used rings say "no notify" (packed: the device area DISABLE):
  // Kick() would write to fd -1 otherwise (harmless, but noisy under strace).
  if (packed)
    tev->flags = NPA_VRING_PACKED_EVENT_FLAG_DISABLE;
  else
    tused->flags = rused->flags = NPA_VRING_USED_F_NO_NOTIFY;
  // Any pair of AVAIL/USED bits (2.8.1), over any other flags.
  auto packed_write = [&](npa_vring_packed_desc* d) {
    npa_vring_packed_desc& x = d[in.U8() % ring];
    x.id = static_cast<uint16_t>(in.U8() % (ring + 2u));
    x.len = in.U32() % 5000;
    const uint8_t fl = in.U8();
    const uint16_t flags = static_cast<uint16_t>(((fl & 1) ? NPA_VRING_PACKED_F_AVAIL : 0) |
                                                 ((fl & 2) ? NPA_VRING_PACKED_F_USED : 0) |
                                                 ((fl >> 2) & 7));
    __atomic_store_n(&x.flags, flags, __ATOMIC_RELEASE);
  };
  QueueCounters c;
  rx.Refill(&c);
  std::vector<npa_buf*> app;  // frames the application holds
  app.reserve(kBufs);

  for (int step = 0; step < 256 && in.More(); step++) {
    switch (in.U8() % 8) {
      case 0: {  // the application sends up to 8 frames, some chained or with offloads
        npa_buf* b[8];
        uint32_t n = pool.Alloc(b, in.U8() % 8 + 1);
        for (uint32_t i = 0; i < n; i++) {
          b[i]->data_len = static_cast<uint16_t>(in.U16() % NPA_BUF_DATA_ROOM);
          b[i]->pkt_len = b[i]->data_len;
          const uint8_t o = in.U8();
          if (o & 1) b[i]->ol_flags |= NPA_BUF_OL_TX_CSUM;
          if (o & 2) b[i]->ol_flags |= NPA_BUF_OL_TX_TSO4;
          if (o & 4) b[i]->ol_flags |= NPA_BUF_OL_TX_VLAN;
          b[i]->csum_start = in.U8();
          b[i]->csum_offset = in.U8() % 32;
          b[i]->tso_segsz = in.U16();
          if ((o & 8) && i + 1 < n) {  // chain the next frame's buffer behind this one
            npa_buf* s = b[i + 1];
            s->data_len = 64;
            b[i]->next = s;
            b[i]->nb_segs = 2;
            b[i]->pkt_len += 64;
            for (uint32_t k = i + 1; k + 1 < n; k++) b[k] = b[k + 1];
            n--;
          }
        }
        uint16_t sent = tx.Burst(b, static_cast<uint16_t>(n), &c);
        pool.Free(b + sent, n - sent);
        break;
      }
      case 1:  // the device completes anything it likes on TX
        if (packed) {
          packed_write(tdesc);
          break;
        }
        tused->ring[in.U8() % kRing] = {in.U8() % (kRing + 2u), in.U32()};
        break;
      case 2:  // ... and moves the TX used index anywhere (packed: its event area)
        if (packed) {
          tev->off_wrap = in.U16();
          tev->flags = in.U8() % 4;
        } else {
          __atomic_store_n(&tused->idx, static_cast<uint16_t>(tused->idx + in.U8() % (kRing + 4)),
                           __ATOMIC_RELEASE);
        }
        tx.Reclaim(&c);
        break;
      case 3:  // RX used entries and index
        if (packed) {
          packed_write(rdesc);
          break;
        }
        rused->ring[in.U8() % kRing] = {in.U8() % (kRing + 2u), in.U32() % 5000};
        __atomic_store_n(&rused->idx, static_cast<uint16_t>(rused->idx + in.U8() % 4),
                         __ATOMIC_RELEASE);
        break;
      case 4: {  // the application receives
        npa_buf* b[8];
        uint16_t got = rx.Burst(b, 8, &c);
        for (uint16_t i = 0; i < got; i++) {
          CheckRxFrame(pool, b[i]);
          app.push_back(b[i]);
        }
        break;
      }
      case 5: {  // the device writes bytes anywhere in the slots, headers included
        const size_t off = in.U32() % (size_t{kBufs} * NPA_BUF_SLOT_SIZE);
        const size_t len = in.U8() % 16 + 1;
        for (size_t k = 0; k < len && off + k < size_t{kBufs} * NPA_BUF_SLOT_SIZE; k++)
          slots[off + k] = in.U8();
        break;
      }
      case 6:  // the application frees what it received (oldest first)
        if (!app.empty()) {
          pool.Free(app.data(), 1);
          app.erase(app.begin());
        }
        break;
      case 7:
        rx.Refill(&c);
        break;
    }
    CheckPool(pool);
  }
  pool.Free(app.data(), static_cast<uint32_t>(app.size()));
  tx.ReleaseAll();
  rx.ReleaseAll();
  CheckPool(pool);
  return 0;
}
