#include "shell/emulated/virtq.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "shell/buf_pool.h"
#include "shell/offload.h"
#include "shell/region.h"
#include "tests/support/virtq_test_device.h"

namespace npa::shell {
namespace {

constexpr uint16_t kRing = 64;
constexpr uint32_t kBufs = 512;

class VirtqTest : public ::testing::Test {
 protected:
  void SetUp() override {
    size_t vr = VringBytes(kRing);
    auto r = Region::Create(2 * vr + kBufs * NPA_BUF_SLOT_SIZE, false);
    ASSERT_TRUE(r.ok()) << r.status();
    region_ = std::move(*r);
    uint8_t* slots = region_.base() + 2 * vr;
    ASSERT_TRUE(pool_.Init(slots, kBufs, 0, kBufs, reinterpret_cast<uintptr_t>(slots),
                           reinterpret_cast<uintptr_t>(slots) + kBufs * NPA_BUF_SLOT_SIZE)
                    .ok());
    kick_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_GE(kick_, 0);
    uint64_t f = (1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_NET_F_MRG_RXBUF);
    ASSERT_TRUE(tx_.Init(region_.base(), kRing, &pool_, f, kick_).ok());
    ASSERT_TRUE(rx_.Init(region_.base() + vr, kRing, &pool_, f, kick_).ok());
    rx_.set_mergeable(true);
  }
  void TearDown() override { close(kick_); }

  npa_buf* Frame(uint32_t len, uint8_t seed) {
    npa_buf* b = nullptr;
    if (pool_.Alloc(&b, 1) != 1) abort();  // test setup: the pool is sized for every test
    auto* d = static_cast<uint8_t*>(npa_buf_data(b));
    for (uint32_t i = 0; i < len; i++) d[i] = static_cast<uint8_t>(seed + i);
    b->data_len = static_cast<uint16_t>(len);
    b->pkt_len = len;
    return b;
  }
  uint64_t Kicks() {
    uint64_t v = 0;
    return read(kick_, &v, 8) == 8 ? v : 0;
  }

  Region region_;
  BufPool pool_;
  int kick_ = -1;
  TxVirtq tx_;
  RxVirtq rx_;
  QueueCounters c_;
};

TEST_F(VirtqTest, TxSingleFramesCarryZeroHeaderAndCompleteToPool) {
  TestDevice dev(tx_.addrs(), kRing);
  dev.SetNoNotify(false);
  npa_buf* b[8];
  for (int i = 0; i < 8; i++) b[i] = Frame(60 + i, static_cast<uint8_t>(i));
  EXPECT_EQ(tx_.Burst(b, 8, &c_), 8);
  EXPECT_EQ(Kicks(), 1u) << "one kick per burst";
  auto frames = dev.PopTx(16);
  ASSERT_EQ(frames.size(), 8u);
  for (int i = 0; i < 8; i++) {
    ASSERT_EQ(frames[i].size(), 12u + 60 + i);
    for (int k = 0; k < 12; k++) EXPECT_EQ(frames[i][k], 0) << "header byte " << k;
    EXPECT_EQ(frames[i][12], static_cast<uint8_t>(i));
  }
  EXPECT_EQ(pool_.available(), kBufs - 8);
  dev.CompleteAll();
  tx_.Reclaim(&c_);
  EXPECT_EQ(pool_.available(), kBufs);
  EXPECT_EQ(tx_.num_free(), kRing);
  EXPECT_EQ(c_.tx_packets.load(), 8u);
  EXPECT_EQ(c_.tx_bytes.load(), 8u * 60 + 28);
}

TEST_F(VirtqTest, NoKickWhenDeviceSetsNoNotify) {
  TestDevice dev(tx_.addrs(), kRing);
  dev.SetNoNotify(true);
  npa_buf* b = Frame(64, 1);
  EXPECT_EQ(tx_.Burst(&b, 1, &c_), 1);
  EXPECT_EQ(Kicks(), 0u);
  EXPECT_EQ(c_.kicks.load(), 0u);
}

TEST_F(VirtqTest, TxOutOfOrderCompletionsKeepRingConsistent) {
  TestDevice dev(tx_.addrs(), kRing);
  dev.SetNoNotify(true);
  // Many rounds of: fill part of the ring, complete in reverse order. Every
  // frame must reach the device intact and every buffer come back.
  for (int round = 0; round < 20; round++) {
    npa_buf* b[40];
    for (int i = 0; i < 40; i++) b[i] = Frame(64, static_cast<uint8_t>(round * 40 + i));
    ASSERT_EQ(tx_.Burst(b, 40, &c_), 40) << "round " << round;
    auto frames = dev.PopTx(64);
    ASSERT_EQ(frames.size(), 40u);
    for (int i = 0; i < 40; i++)
      ASSERT_EQ(frames[i][12], static_cast<uint8_t>(round * 40 + i)) << "round " << round << " i " << i;
    dev.CompleteAll(/*reverse=*/round % 2 == 0);
  }
  tx_.Reclaim(&c_);
  EXPECT_EQ(pool_.available(), kBufs);
  EXPECT_EQ(c_.tx_bad.load(), 0u);
}

TEST_F(VirtqTest, TxRingFullStopsBurst) {
  TestDevice dev(tx_.addrs(), kRing);
  std::vector<npa_buf*> b(kRing + 10);
  for (auto& x : b) x = Frame(64, 0);
  EXPECT_EQ(tx_.Burst(b.data(), static_cast<uint16_t>(b.size()), &c_), kRing);
  EXPECT_EQ(c_.tx_full.load(), 1u);
  pool_.Free(b.data() + kRing, 10);
}

TEST_F(VirtqTest, TxChainUsesOneDescriptorPerSegment) {
  TestDevice dev(tx_.addrs(), kRing);
  npa_buf* a = Frame(1000, 0);
  npa_buf* s = Frame(500, static_cast<uint8_t>(1000 & 0xff));
  a->next = s;
  a->nb_segs = 2;
  a->pkt_len = 1500;
  EXPECT_EQ(tx_.Burst(&a, 1, &c_), 1);
  EXPECT_EQ(tx_.num_free(), kRing - 2);
  auto f = dev.PopTx(4);
  ASSERT_EQ(f.size(), 1u);
  ASSERT_EQ(f[0].size(), 12u + 1500);
  for (uint32_t i = 0; i < 1500; i++) ASSERT_EQ(f[0][12 + i], static_cast<uint8_t>(i)) << i;
  dev.CompleteAll();
  tx_.Reclaim(&c_);
  EXPECT_EQ(pool_.available(), kBufs);
  EXPECT_EQ(tx_.num_free(), kRing);
}

// A posted single buffer stores neither flags nor chain length (virtq_internal.h
// SplitProducer::Put): a completed chain must hand its descriptors back
// with flags 0, or the next single frames on them would reach the device
// as chains.
TEST_F(VirtqTest, TxChainDescriptorsServeSingleFramesAfterCompletion) {
  TestDevice dev(tx_.addrs(), kRing);
  const auto* desc = reinterpret_cast<const npa_vring_desc*>(tx_.addrs().desc);
  for (int round = 0; round < 6; round++) {
    // Chains of three segments among single frames, completed in reverse
    // on even rounds (heads then come back out of order).
    npa_buf* b[12];
    for (int i = 0; i < 12; i++) {
      b[i] = Frame(100, static_cast<uint8_t>(round * 12 + i));
      if (i % 3 == 0) {
        npa_buf* s1 = Frame(200, 1);
        npa_buf* s2 = Frame(300, 2);
        b[i]->next = s1;
        s1->next = s2;
        b[i]->nb_segs = 3;
        b[i]->pkt_len = 600;
      }
    }
    ASSERT_EQ(tx_.Burst(b, 12, &c_), 12) << "round " << round;
    auto chains = dev.PopTx(16);
    ASSERT_EQ(chains.size(), 12u);
    for (int i = 0; i < 12; i++)
      EXPECT_EQ(chains[i].size(), 12u + (i % 3 == 0 ? 600 : 100)) << "round " << round << " i " << i;
    dev.CompleteAll(/*reverse=*/round % 2 == 0);
    tx_.Reclaim(&c_);
    ASSERT_EQ(tx_.num_free(), kRing);
    for (uint16_t d = 0; d < kRing; d++) ASSERT_EQ(desc[d].flags, 0) << "descriptor " << d;
    // A full ring of single frames now reuses every descriptor.
    npa_buf* f[kRing];
    for (int i = 0; i < kRing; i++) f[i] = Frame(60, static_cast<uint8_t>(i));
    ASSERT_EQ(tx_.Burst(f, kRing, &c_), kRing);
    auto singles = dev.PopTx(kRing);
    ASSERT_EQ(singles.size(), size_t{kRing});
    for (int i = 0; i < kRing; i++) {
      ASSERT_EQ(singles[i].size(), 12u + 60) << "round " << round << " frame " << i;
      ASSERT_EQ(singles[i][12], static_cast<uint8_t>(i));
    }
    dev.CompleteAll();
    tx_.Reclaim(&c_);
  }
  EXPECT_EQ(pool_.available(), kBufs);
  EXPECT_EQ(c_.tx_bad.load(), 0u);
}

TEST_F(VirtqTest, RxDeliversFramesAndDecodesHeader) {
  TestDevice dev(rx_.addrs(), kRing);
  EXPECT_EQ(rx_.Refill(&c_), kRing);
  std::vector<uint8_t> frame(100);
  for (size_t i = 0; i < frame.size(); i++) frame[i] = static_cast<uint8_t>(i * 3);
  npa_virtio_net_hdr_mrg_rxbuf h{};
  h.hdr.flags = NPA_VIRTIO_NET_HDR_F_DATA_VALID;
  EXPECT_TRUE(rx_.Idle());
  ASSERT_TRUE(dev.PushRx(frame.data(), 100, true, &h));
  EXPECT_FALSE(rx_.Idle()) << "a used entry is there";
  ASSERT_TRUE(dev.PushRx(frame.data(), 60, true));
  npa_buf* b[4];
  ASSERT_EQ(rx_.Burst(b, 4, &c_), 2);
  EXPECT_TRUE(rx_.Idle());
  EXPECT_EQ(b[0]->pkt_len, 100u);
  EXPECT_EQ(b[0]->data_off, NPA_BUF_DATA_OFF);
  EXPECT_EQ(b[0]->ol_flags, NPA_BUF_OL_RX_CSUM_GOOD);
  EXPECT_EQ(memcmp(npa_buf_data(b[0]), frame.data(), 100), 0);
  EXPECT_EQ(b[1]->pkt_len, 60u);
  EXPECT_EQ(b[1]->ol_flags, 0u);
  EXPECT_EQ(c_.rx_bytes.load(), 160u);
  pool_.Free(b, 2);
}

TEST_F(VirtqTest, RxMergeableFrameBecomesChain) {
  TestDevice dev(rx_.addrs(), kRing);
  rx_.Refill(&c_);
  std::vector<uint8_t> frame(5000);
  for (size_t i = 0; i < frame.size(); i++) frame[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(dev.PushRx(frame.data(), 5000, true));
  npa_buf* b[4];
  ASSERT_EQ(rx_.Burst(b, 4, &c_), 1);
  EXPECT_EQ(b[0]->pkt_len, 5000u);
  EXPECT_EQ(b[0]->nb_segs, 3);
  std::vector<uint8_t> got;
  for (npa_buf* s = b[0]; s; s = s->next) {
    auto* d = static_cast<uint8_t*>(npa_buf_data(s));
    got.insert(got.end(), d, d + s->data_len);
  }
  EXPECT_EQ(got, frame);
  uint32_t before = pool_.available();
  pool_.Free(b, 1);
  EXPECT_EQ(pool_.available(), before + 3) << "freeing a chain frees every segment";
}

TEST_F(VirtqTest, HostileRxHeadersAreDroppedAndCounted) {
  TestDevice dev(rx_.addrs(), kRing);
  rx_.Refill(&c_);
  const uint32_t held_by_ring = kBufs - pool_.available();
  std::vector<uint8_t> frame(100, 0x5a);
  npa_virtio_net_hdr_mrg_rxbuf h{};
  h.hdr.flags = NPA_VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.hdr.csum_start = 90;
  h.hdr.csum_offset = 40;  // the checksum field would lie past the frame
  ASSERT_TRUE(dev.PushRx(frame.data(), 100, true, &h));
  h = {};
  h.hdr.gso_type = NPA_VIRTIO_NET_HDR_GSO_TCPV4;  // GSO without a segment size
  ASSERT_TRUE(dev.PushRx(frame.data(), 100, true, &h));
  h = {};
  h.hdr.flags = NPA_VIRTIO_NET_HDR_F_NEEDS_CSUM;  // bounded by the whole merged frame
  h.hdr.csum_start = 3000;
  h.hdr.csum_offset = 2000;
  std::vector<uint8_t> big(4000, 0x11);
  ASSERT_TRUE(dev.PushRx(big.data(), 4000, true, &h));
  h.hdr.csum_start = 34;
  h.hdr.csum_offset = 16;  // sane: delivered
  ASSERT_TRUE(dev.PushRx(frame.data(), 100, true, &h));
  npa_buf* b[8];
  ASSERT_EQ(rx_.Burst(b, 8, &c_), 1);
  EXPECT_EQ(b[0]->ol_flags, NPA_BUF_OL_RX_CSUM_PARTIAL);
  EXPECT_EQ(b[0]->csum_start, 34);
  EXPECT_EQ(c_.rx_bad.load(), 3u);
  EXPECT_EQ(c_.rx_dropped.load(), 3u);
  pool_.Free(b, 1);
  // Every dropped buffer went back: each is in the pool or the ring.
  EXPECT_EQ(pool_.available() + rx_.in_flight(), kBufs);
  EXPECT_LE(rx_.in_flight(), held_by_ring);
  EXPECT_EQ(pool_.bad_frees(), 0u);
}

TEST_F(VirtqTest, HostileUsedEntriesAreRejected) {
  TestDevice dev(rx_.addrs(), kRing);
  rx_.Refill(&c_);
  dev.WriteUsed({9999, 60});              // id out of range
  dev.WriteUsed({3, 100000});             // length larger than the buffer
  dev.WriteUsed({3, 60});                 // id already returned (by the entry above)
  dev.Publish();
  npa_buf* b[8];
  EXPECT_EQ(rx_.Burst(b, 8, &c_), 0);
  EXPECT_EQ(c_.rx_bad.load(), 3u);
  EXPECT_FALSE(rx_.broken());
  // A used index far ahead of what is outstanding marks the ring broken.
  dev.SetUsedIdx(static_cast<uint16_t>(rx_.last_used() + 5000));
  EXPECT_EQ(rx_.Burst(b, 8, &c_), 0);
  EXPECT_TRUE(rx_.broken());
}

TEST_F(VirtqTest, InterruptFlagFollowsSetInterrupt) {
  TestDevice dev(rx_.addrs(), kRing);
  EXPECT_EQ(dev.avail_flags(), NPA_VRING_AVAIL_F_NO_INTERRUPT) << "polling by default";
  rx_.SetInterrupt(true);
  EXPECT_EQ(dev.avail_flags(), 0);
  rx_.SetInterrupt(false);
  EXPECT_EQ(dev.avail_flags(), NPA_VRING_AVAIL_F_NO_INTERRUPT);
}

TEST_F(VirtqTest, BadOffloadRequestIsDroppedNotSent) {
  TestDevice dev(tx_.addrs(), kRing);
  npa_buf* b = Frame(64, 0);
  b->ol_flags = NPA_BUF_OL_TX_TSO4;  // no HOST_TSO4 negotiated
  b->tso_segsz = 1000;
  EXPECT_EQ(tx_.Burst(&b, 1, &c_), 1) << "taken (and dropped)";
  EXPECT_EQ(c_.tx_bad.load(), 1u);
  EXPECT_EQ(dev.AvailPending(), 0);
  EXPECT_EQ(pool_.available(), kBufs);
}

// The back end lacks HOST_TSO4: the shell segments (tso.h) and the ring gets
// ordinary frames with zeroed headers and valid checksums; the counters
// count the application's one frame.
TEST_F(VirtqTest, TxSoftwareTsoWhenTheBackEndLacksIt) {
  TestDevice dev(tx_.addrs(), kRing);
  const uint32_t payload = 3000, hdr = 14 + 20 + 20;
  std::vector<uint8_t> f(hdr + payload);
  const uint8_t h[hdr] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00,
                          0x45, 0, 0x0b, 0xe8, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
                          0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0};
  memcpy(f.data(), h, hdr);
  for (uint32_t i = 0; i < payload; i++) f[hdr + i] = static_cast<uint8_t>(i * 7);
  npa_buf* a = Frame(2000, 0);
  npa_buf* b2 = Frame(static_cast<uint32_t>(f.size()) - 2000, 0);
  memcpy(npa_buf_data(a), f.data(), 2000);
  memcpy(npa_buf_data(b2), f.data() + 2000, f.size() - 2000);
  a->next = b2;
  a->nb_segs = 2;
  a->pkt_len = static_cast<uint32_t>(f.size());
  a->ol_flags = NPA_BUF_OL_TX_TSO4;
  a->tso_segsz = 1400;
  EXPECT_EQ(tx_.Burst(&a, 1, &c_), 1);
  EXPECT_EQ(c_.tx_packets.load(), 1u) << "the application's frame, once";
  EXPECT_EQ(c_.tx_bytes.load(), f.size());
  auto frames = dev.PopTx(16);
  ASSERT_EQ(frames.size(), 3u);  // 1400 + 1400 + 200
  uint32_t seen = 0;
  for (size_t i = 0; i < frames.size(); i++) {
    const auto& fr = frames[i];
    const uint32_t len = std::min<uint32_t>(1400, payload - seen);
    ASSERT_EQ(fr.size(), 12u + hdr + len);
    for (int k = 0; k < 12; k++) EXPECT_EQ(fr[k], 0) << "header byte " << k;
    const uint8_t* ip = fr.data() + 12 + 14;
    EXPECT_EQ(CsumFold(CsumPartial(ip, 20, 0, false)), 0) << "IPv4 checksum, segment " << i;
    const uint16_t tl = static_cast<uint16_t>(20 + len);
    uint8_t ph[4] = {0, 6, static_cast<uint8_t>(tl >> 8), static_cast<uint8_t>(tl)};
    uint64_t pseudo = CsumPartial(ph, 4, CsumPartial(ip + 12, 8, 0, false), false);
    EXPECT_EQ(CsumFold(CsumPartial(ip + 20, tl, pseudo, false)), 0) << "TCP checksum, segment " << i;
    EXPECT_EQ(fr[12 + hdr], static_cast<uint8_t>(seen * 7));
    seen += len;
  }
  EXPECT_EQ(pool_.available(), kBufs - 3) << "the frame went back, its segments are in flight";
  dev.CompleteAll();
  tx_.Reclaim(&c_);
  EXPECT_EQ(pool_.available(), kBufs);
  // No room for all segments: the frame is not taken (the caller keeps it).
  npa_buf* big = Frame(hdr + 1000, 0);
  memcpy(npa_buf_data(big), f.data(), hdr + 1000);
  big->ol_flags = NPA_BUF_OL_TX_TSO4;
  big->tso_segsz = 10;  // 100 segments > 64 ring entries (and > kMaxTsoSegments)
  EXPECT_EQ(tx_.Burst(&big, 1, &c_), 1) << "refused by PlanTso: taken, dropped";
  EXPECT_EQ(c_.tx_bad.load(), 1u);
  npa_buf* fill[62];
  for (int i = 0; i < 62; i++) fill[i] = Frame(60, 0);
  ASSERT_EQ(tx_.Burst(fill, 62, &c_), 62);  // 2 ring entries left
  npa_buf* c3 = Frame(hdr + 3 * 500, 0);
  memcpy(npa_buf_data(c3), f.data(), hdr + 3 * 500);
  c3->ol_flags = NPA_BUF_OL_TX_TSO4;
  c3->tso_segsz = 500;  // 3 segments, 2 entries free
  EXPECT_EQ(tx_.Burst(&c3, 1, &c_), 0) << "ring full: stays the caller's";
  EXPECT_EQ(dev.PopTx(80).size(), 62u);
  dev.CompleteAll();
  EXPECT_EQ(tx_.Burst(&c3, 1, &c_), 1);
  EXPECT_EQ(dev.PopTx(8).size(), 3u);
  dev.CompleteAll();
  tx_.Reclaim(&c_);
  EXPECT_EQ(pool_.available(), kBufs) << "nothing leaked";
}

// virtio-net has no VLAN offload: the tag is inserted on TX and stripped on
// RX in software, so the guest sees the same on every path.
TEST_F(VirtqTest, VlanInsertOnTxAndStripOnRxInSoftware) {
  TestDevice tdev(tx_.addrs(), kRing);
  npa_buf* b = Frame(60, 0);
  b->ol_flags = NPA_BUF_OL_TX_VLAN;
  b->vlan_tci = 0x0abc;
  std::vector<uint8_t> orig(static_cast<uint8_t*>(npa_buf_data(b)),
                            static_cast<uint8_t*>(npa_buf_data(b)) + 60);
  ASSERT_EQ(tx_.Burst(&b, 1, &c_), 1);
  auto frames = tdev.PopTx(4);
  ASSERT_EQ(frames.size(), 1u);
  const auto& f = frames[0];
  ASSERT_EQ(f.size(), 12u + 64);
  for (int k = 0; k < 12; k++) EXPECT_EQ(f[k], 0) << "header byte " << k;
  EXPECT_EQ(memcmp(f.data() + 12, orig.data(), 12), 0) << "MACs first";
  EXPECT_EQ(f[24], 0x81);
  EXPECT_EQ(f[25], 0x00);
  EXPECT_EQ(f[26], 0x0a);
  EXPECT_EQ(f[27], 0xbc);
  EXPECT_EQ(memcmp(f.data() + 28, orig.data() + 12, 48), 0) << "then the rest";
  // RX: the same tagged bytes come back and are stripped.
  rx_.set_strip_vlan(true);
  TestDevice rdev(rx_.addrs(), kRing);
  EXPECT_EQ(rx_.Refill(&c_), kRing);
  ASSERT_TRUE(rdev.PushRx(f.data() + 12, 64, true));
  ASSERT_TRUE(rdev.PushRx(orig.data(), 60, true));  // untagged: left alone
  npa_buf* r[4];
  ASSERT_EQ(rx_.Burst(r, 4, &c_), 2);
  EXPECT_EQ(r[0]->ol_flags, NPA_BUF_OL_RX_VLAN);
  EXPECT_EQ(r[0]->vlan_tci, 0x0abc);
  ASSERT_EQ(r[0]->data_len, 60);
  EXPECT_EQ(r[0]->pkt_len, 60u);
  EXPECT_EQ(memcmp(npa_buf_data(r[0]), orig.data(), 60), 0);
  EXPECT_EQ(r[1]->ol_flags, 0u);
  EXPECT_EQ(r[1]->data_len, 60);
  pool_.Free(r, 2);
  // No room in front of the frame for the tag: dropped, counted.
  npa_buf* c2 = Frame(60, 0);
  c2->data_off = NPA_BUF_META_SIZE + 12;
  c2->ol_flags = NPA_BUF_OL_TX_VLAN;
  EXPECT_EQ(tx_.Burst(&c2, 1, &c_), 1);
  EXPECT_EQ(c_.tx_bad.load(), 1u);
}

// VIRTIO_F_RING_EVENT_IDX on a split ring (2.7.10): a kick only when a
// publish moves avail->idx past the device's avail_event; interrupts are
// asked for through used_event, the flags stay 0.
TEST_F(VirtqTest, EventIdxKicksOnlyWhenAvailIdxCrossesAvailEvent) {
  const uint64_t f = (1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_F_RING_EVENT_IDX);
  ASSERT_TRUE(tx_.Init(region_.base(), kRing, &pool_, f, kick_).ok());
  ASSERT_TRUE(tx_.event_idx());
  Kicks();
  const VringAddrs a = tx_.addrs();
  auto* used = reinterpret_cast<npa_vring_used*>(a.used);
  auto* avail = reinterpret_cast<npa_vring_avail*>(a.avail);
  EXPECT_EQ(avail->flags, 0) << "with EVENT_IDX the driver says it through used_event";
  TestDevice dev(a, kRing);
  auto burst = [&](int n) {
    std::vector<npa_buf*> b(n);
    for (auto& x : b) x = Frame(64, 0);
    EXPECT_EQ(tx_.Burst(b.data(), static_cast<uint16_t>(n), &c_), n);
    dev.PopTx(static_cast<uint16_t>(n));
    dev.CompleteAll();
    tx_.Reclaim(&c_);
  };
  *npa_vring_avail_event(used, kRing) = 10;  // "kick me when entry 10 is published"
  burst(8);  // 0..7
  EXPECT_EQ(Kicks(), 0u);
  burst(8);  // 8..15
  EXPECT_EQ(Kicks(), 1u);
  burst(8);  // 16..23
  EXPECT_EQ(Kicks(), 0u);
  *npa_vring_avail_event(used, kRing) = 23;  // already passed: nothing until 2^16 later
  burst(8);
  EXPECT_EQ(Kicks(), 0u);
  *npa_vring_avail_event(used, kRing) = 32;  // the next entry: kick
  burst(1);
  EXPECT_EQ(Kicks(), 1u);
  EXPECT_EQ(c_.kicks.load(), 2u);
  tx_.SetInterrupt(true);
  EXPECT_EQ(*npa_vring_used_event(avail, kRing), tx_.last_used()) << "armed: the next completion";
  tx_.SetInterrupt(false);
  EXPECT_EQ(*npa_vring_used_event(avail, kRing), static_cast<uint16_t>(tx_.last_used() - 1));
  EXPECT_EQ(avail->flags, 0);
  EXPECT_EQ(pool_.available(), kBufs);
}

}  // namespace
}  // namespace npa::shell
