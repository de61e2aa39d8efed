// Packed rings (VIRTIO 1.1 2.8) of TxVirtq / RxVirtq against an in-test
// device (tests/support/packed_test_device.h): round trips over several
// laps (a power-of-two and a non-power-of-two size), out-of-order
// completions, chains, hostile used descriptors, event suppression.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "shell/buf_pool.h"
#include "shell/emulated/virtq.h"
#include "shell/offload.h"
#include "shell/region.h"
#include "tests/support/packed_test_device.h"

namespace npa::shell {
namespace {

constexpr uint32_t kBufs = 1024;
constexpr uint64_t kPacked = (1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_F_RING_PACKED);
constexpr uint64_t kEventIdx = 1ull << NPA_VIRTIO_F_RING_EVENT_IDX;

class PackedVirtqTest : public ::testing::TestWithParam<uint16_t> {
 protected:
  void SetUp() override {
    ring_ = GetParam();
    vr_ = VringBytes(ring_);
    auto r = Region::Create(2 * vr_ + kBufs * NPA_BUF_SLOT_SIZE, false);
    ASSERT_TRUE(r.ok()) << r.status();
    region_ = std::move(*r);
    uint8_t* slots = region_.base() + 2 * vr_;
    ASSERT_TRUE(pool_.Init(slots, kBufs, 0, kBufs, reinterpret_cast<uintptr_t>(slots),
                           reinterpret_cast<uintptr_t>(slots) + kBufs * NPA_BUF_SLOT_SIZE)
                    .ok());
    kick_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_GE(kick_, 0);
    Init(kPacked);
  }
  void Init(uint64_t f) {
    if (tx_) tx_->ReleaseAll();
    if (rx_) rx_->ReleaseAll();
    tx_ = std::make_unique<TxVirtq>();
    rx_ = std::make_unique<RxVirtq>();
    ASSERT_TRUE(tx_->Init(region_.base(), ring_, &pool_, f, kick_).ok());
    ASSERT_TRUE(rx_->Init(region_.base() + vr_, ring_, &pool_, f, kick_).ok());
    ASSERT_TRUE(tx_->packed());
    Kicks();
  }
  void TearDown() override {
    if (tx_) tx_->ReleaseAll();
    if (rx_) rx_->ReleaseAll();
    close(kick_);
  }
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

  uint16_t ring_ = 0;
  size_t vr_ = 0;
  Region region_;
  BufPool pool_;
  int kick_ = -1;
  std::unique_ptr<TxVirtq> tx_;
  std::unique_ptr<RxVirtq> rx_;
  QueueCounters c_;
};

INSTANTIATE_TEST_SUITE_P(Sizes, PackedVirtqTest, ::testing::Values(64, 100));

TEST_P(PackedVirtqTest, NewRingStartsAtWrapCounterOne) {
  EXPECT_EQ(tx_->base(), 0x8000) << "SET_VRING_BASE of a new packed ring: slot 0, wrap 1";
  EXPECT_EQ(tx_->num_free(), ring_);
  PackedTestDevice dev(tx_->addrs(), ring_);
  EXPECT_EQ(dev.driver_event().flags, NPA_VRING_PACKED_EVENT_FLAG_DISABLE) << "polling";
}

TEST_P(PackedVirtqTest, TxRoundTripsOverSeveralLaps) {
  PackedTestDevice dev(tx_->addrs(), ring_);
  uint64_t sent = 0, seen = 0;
  // 7 frames a burst: bursts straddle the wrap at every lap of either size.
  for (int round = 0; round < 5 * ring_ / 7 + 3; round++) {
    npa_buf* b[7];
    for (int i = 0; i < 7; i++) b[i] = Frame(60 + i, static_cast<uint8_t>(sent + i));
    ASSERT_EQ(tx_->Burst(b, 7, &c_), 7) << "round " << round;
    auto chains = dev.Take(64);
    ASSERT_EQ(chains.size(), 7u) << "round " << round;
    for (int i = 0; i < 7; i++) {
      ASSERT_EQ(chains[i].bytes.size(), 12u + 60 + i);
      for (int k = 0; k < 12; k++) ASSERT_EQ(chains[i].bytes[k], 0);
      ASSERT_EQ(chains[i].bytes[12], static_cast<uint8_t>(sent + i));
      dev.Complete(chains[i]);
    }
    sent += 7;
    seen += chains.size();
    tx_->Reclaim(&c_);
    ASSERT_EQ(tx_->num_free(), ring_);
    ASSERT_EQ(pool_.available(), kBufs) << "every frame back once";
    ASSERT_FALSE(tx_->broken());
  }
  EXPECT_EQ(seen, sent);
  EXPECT_GT(sent, 4u * ring_) << "several laps";
  EXPECT_EQ(c_.tx_packets.load(), sent);
  EXPECT_EQ(c_.tx_bad.load(), 0u);
  // Where the device stands: slot and wrap encoded as SET_VRING_BASE wants.
  EXPECT_EQ(tx_->base(), npa_vring_packed_base(dev.avail_pos(), dev.avail_wrap()));
  EXPECT_EQ(tx_->PackedDeviceUsedBase(), npa_vring_packed_base(dev.used_pos(), dev.used_wrap()));
}

// What a reconnect resumes at after the back end died (EmulatedPath::used_idx
// on a packed ring): the device's used slot and lap, read from the ring, not
// the driver's own position; and the frames still in the device's hands.
TEST_P(PackedVirtqTest, DeviceUsedBaseRunsAheadOfTheDriverAcrossLaps) {
  PackedTestDevice dev(tx_->addrs(), ring_);
  int crossed = 0;
  // 9 a burst, 5 completed at once: the used position lands mid-burst and,
  // at either size, in the next lap at some round.
  for (int round = 0; round < 3 * ring_ / 9; round++) {
    npa_buf* b[9];
    for (auto& x : b) x = Frame(64, 0);
    ASSERT_EQ(tx_->Burst(b, 9, &c_), 9);
    auto ch = dev.Take(9);
    ASSERT_EQ(ch.size(), 9u);
    const bool wrap_before = dev.used_wrap();
    for (int i = 0; i < 5; i++) dev.Complete(ch[i]);
    crossed += dev.used_wrap() != wrap_before;
    // Not reclaimed yet: the driver still stands before these 6.
    EXPECT_EQ(tx_->PackedDeviceUsedBase(), npa_vring_packed_base(dev.used_pos(), dev.used_wrap()));
    EXPECT_EQ(tx_->PackedDeviceInFlight(), 4);
    tx_->Reclaim(&c_);
    EXPECT_EQ(tx_->PackedDeviceUsedBase(), npa_vring_packed_base(dev.used_pos(), dev.used_wrap()));
    for (int i = 5; i < 9; i++) dev.Complete(ch[i]);
    tx_->Reclaim(&c_);
    ASSERT_EQ(tx_->num_free(), ring_);
  }
  EXPECT_GE(crossed, 1) << "a check with the device's used position in its second lap";
  EXPECT_EQ(pool_.available(), kBufs);
}

TEST_P(PackedVirtqTest, TxFillsTheRingThenCompletesOutOfOrder) {
  PackedTestDevice dev(tx_->addrs(), ring_);
  for (int lap = 0; lap < 3; lap++) {
    std::vector<npa_buf*> b(ring_ + 4);
    for (auto& x : b) x = Frame(64, 7);
    uint16_t took = tx_->Burst(b.data(), static_cast<uint16_t>(b.size()), &c_);
    ASSERT_EQ(took, ring_) << "a full ring takes size frames";
    pool_.Free(b.data() + took, static_cast<uint32_t>(b.size() - took));
    auto chains = dev.Take(ring_ + 4);
    ASSERT_EQ(chains.size(), ring_);
    // 2.8.7: completions in any order (ids tell which buffer).
    std::reverse(chains.begin(), chains.end());
    std::swap(chains[1], chains[ring_ / 2]);
    for (auto& ch : chains) dev.Complete(ch);
    EXPECT_EQ(tx_->Reclaim(&c_), ring_);
    ASSERT_EQ(pool_.available(), kBufs);
    ASSERT_EQ(tx_->num_free(), ring_);
  }
  EXPECT_EQ(c_.tx_bad.load(), 0u);
}

TEST_P(PackedVirtqTest, TxChainTakesConsecutiveSlotsWithOneId) {
  PackedTestDevice dev(tx_->addrs(), ring_);
  for (int k = 0; k < 2 * ring_; k++) {  // chains straddle the wrap too
    npa_buf* h = Frame(40, 1);
    npa_buf* t = Frame(30, 100);
    h->next = t;
    h->nb_segs = 2;
    h->pkt_len = 70;
    ASSERT_EQ(tx_->Burst(&h, 1, &c_), 1);
    auto chains = dev.Take(4);
    ASSERT_EQ(chains.size(), 1u);
    ASSERT_EQ(chains[0].ndesc, 2);
    ASSERT_EQ(chains[0].bytes.size(), 12u + 70);
    EXPECT_EQ(chains[0].bytes[12 + 40], 100);
    dev.Complete(chains[0]);
    tx_->Reclaim(&c_);
    ASSERT_EQ(pool_.available(), kBufs);
  }
  EXPECT_FALSE(tx_->broken());
}

TEST_P(PackedVirtqTest, RxRoundTripsOverSeveralLaps) {
  PackedTestDevice dev(rx_->addrs(), ring_);
  npa_buf* out[32];
  EXPECT_EQ(rx_->Burst(out, 32, &c_), 0) << "first call posts buffers";
  EXPECT_EQ(rx_->in_flight(), ring_);
  uint64_t got = 0;
  uint8_t frame[200];
  for (int round = 0; round < 6 * ring_ / 11 + 2; round++) {
    ASSERT_TRUE(rx_->Idle()) << "round " << round << ": nothing used yet";
    auto chains = dev.Take(11);
    ASSERT_EQ(chains.size(), 11u) << "round " << round;
    for (size_t i = 0; i < chains.size(); i++) {
      ASSERT_TRUE(chains[i].write);
      for (uint32_t k = 0; k < sizeof frame; k++) frame[k] = static_cast<uint8_t>(got + i + k);
      dev.Fill(chains[i], frame, 60 + static_cast<uint32_t>(i));
      ASSERT_FALSE(rx_->Idle()) << "round " << round << ": a used descriptor, on any lap";
    }
    uint16_t n = rx_->Burst(out, 32, &c_);
    ASSERT_EQ(n, 11);
    for (uint16_t i = 0; i < n; i++) {
      ASSERT_EQ(out[i]->data_len, 60 + i);
      ASSERT_EQ(static_cast<uint8_t*>(npa_buf_data(out[i]))[0], static_cast<uint8_t>(got + i));
    }
    pool_.Free(out, n);
    got += n;
    // Refilled in batches of 32: the ring keeps at least size - 32 posted.
    ASSERT_GE(rx_->in_flight() + 32, ring_);
  }
  EXPECT_GT(got, 5u * ring_);
  EXPECT_EQ(c_.rx_packets.load(), got);
  EXPECT_EQ(c_.rx_bad.load(), 0u);
  EXPECT_FALSE(rx_->broken());
}

TEST_P(PackedVirtqTest, RxOutOfOrderAndMergeable) {
  Init(kPacked | (1ull << NPA_VIRTIO_NET_F_MRG_RXBUF));
  rx_->set_mergeable(true);
  PackedTestDevice dev(rx_->addrs(), ring_);
  npa_buf* out[8];
  rx_->Burst(out, 8, &c_);
  auto chains = dev.Take(3);
  ASSERT_EQ(chains.size(), 3u);
  // One frame over buffers 2 then 0 (out of order), num_buffers = 2.
  auto* h0 = reinterpret_cast<uint8_t*>(chains[2].addr);
  memset(h0, 0, 12);
  h0[10] = 2;  // num_buffers
  memset(h0 + 12, 0xab, 100);
  memset(reinterpret_cast<uint8_t*>(chains[0].addr), 0xcd, 50);
  dev.Complete(chains[2].id, 112, 1);
  dev.Complete(chains[0].id, 50, 1);
  ASSERT_EQ(rx_->Burst(out, 8, &c_), 1) << "rx_bad " << c_.rx_bad.load() << " broken " << rx_->broken();
  EXPECT_EQ(out[0]->pkt_len, 150u);
  EXPECT_EQ(out[0]->nb_segs, 2);
  ASSERT_NE(out[0]->next, nullptr);
  EXPECT_EQ(static_cast<uint8_t*>(npa_buf_data(out[0]->next))[0], 0xcd);
  pool_.FreeFrame(out[0]);
  // Buffer 1 still works.
  uint8_t f[64] = {1};
  dev.Fill(chains[1], f, 64);
  ASSERT_EQ(rx_->Burst(out, 8, &c_), 1);
  pool_.FreeFrame(out[0]);
  EXPECT_EQ(c_.rx_bad.load(), 0u);
}

// ---- hostile device: each counted, no bad buffer ever freed, pool intact.

TEST_P(PackedVirtqTest, TxIdOutOfRangeMakesQueueInert) {
  PackedTestDevice dev(tx_->addrs(), ring_);
  npa_buf* b[4];
  for (auto& x : b) x = Frame(64, 0);
  ASSERT_EQ(tx_->Burst(b, 4, &c_), 4);
  dev.Take(4);
  dev.Complete(static_cast<uint16_t>(ring_ + 5), 0, 1);
  tx_->Reclaim(&c_);
  EXPECT_EQ(c_.tx_bad.load(), 1u);
  EXPECT_TRUE(tx_->broken());
  EXPECT_EQ(pool_.available(), kBufs - 4) << "nothing freed on the device's word";
  tx_->Reclaim(&c_);
  EXPECT_EQ(c_.tx_bad.load(), 1u) << "inert: not counted again";
  tx_->ReleaseAll();
  EXPECT_EQ(pool_.available(), kBufs);
}

TEST_P(PackedVirtqTest, TxDuplicateCompletionIsCaught) {
  PackedTestDevice dev(tx_->addrs(), ring_);
  npa_buf* b[2] = {Frame(64, 0), Frame(64, 1)};
  ASSERT_EQ(tx_->Burst(b, 2, &c_), 2);
  auto ch = dev.Take(2);
  dev.Complete(ch[0]);
  dev.Complete(ch[0]);  // id again: not outstanding any more
  tx_->Reclaim(&c_);
  EXPECT_EQ(c_.tx_bad.load(), 1u);
  EXPECT_TRUE(tx_->broken());
  EXPECT_EQ(pool_.available(), kBufs - 1) << "the first completion freed one, the duplicate none";
}

TEST_P(PackedVirtqTest, UsedFlagWithoutAvailIsCaught) {
  PackedTestDevice dev(tx_->addrs(), ring_);
  npa_buf* b = Frame(64, 0);
  ASSERT_EQ(tx_->Burst(&b, 1, &c_), 1);
  dev.Take(1);
  dev.Raw(0, 0, NPA_VRING_PACKED_F_USED);  // USED = wrap 1, AVAIL = 0
  tx_->Reclaim(&c_);
  EXPECT_EQ(c_.tx_bad.load(), 1u);
  EXPECT_TRUE(tx_->broken());
  EXPECT_EQ(pool_.available(), kBufs - 1);
}

TEST_P(PackedVirtqTest, RxLenBeyondPostedIsDroppedAndRingGoesOn) {
  PackedTestDevice dev(rx_->addrs(), ring_);
  npa_buf* out[8];
  rx_->Burst(out, 8, &c_);
  const uint32_t before = pool_.available();
  auto ch = dev.Take(2);
  dev.Complete(ch[0], 12 + NPA_BUF_DATA_ROOM + 1);  // one byte more than posted
  dev.Complete(ch[1], 11);                          // shorter than the header
  EXPECT_EQ(rx_->Burst(out, 8, &c_), 0);
  EXPECT_EQ(c_.rx_bad.load(), 2u);
  EXPECT_EQ(c_.rx_dropped.load(), 2u);
  EXPECT_FALSE(rx_->broken());
  EXPECT_EQ(pool_.available(), before + 2) << "both buffers back to the pool, once";
  uint8_t f[64] = {9};
  auto ch2 = dev.Take(1);
  dev.Fill(ch2[0], f, 64);
  ASSERT_EQ(rx_->Burst(out, 8, &c_), 1);
  EXPECT_EQ(static_cast<uint8_t*>(npa_buf_data(out[0]))[0], 9);
  pool_.FreeFrame(out[0]);
}

TEST_P(PackedVirtqTest, RxIdNotOutstandingMakesQueueInert) {
  PackedTestDevice dev(rx_->addrs(), ring_);
  npa_buf* out[8];
  rx_->Burst(out, 8, &c_);
  auto ch = dev.Take(1);
  uint8_t f[64] = {};
  dev.Fill(ch[0], f, 64);
  ASSERT_EQ(rx_->Burst(out, 8, &c_), 1);
  pool_.FreeFrame(out[0]);
  // The id just consumed is posted again by the refill only after 32 frees;
  // complete it again now: a duplicate.
  dev.Complete(ch[0].id, 76, 1);
  EXPECT_EQ(rx_->Burst(out, 8, &c_), 0);
  EXPECT_EQ(c_.rx_bad.load(), 1u);
  EXPECT_TRUE(rx_->broken());
  EXPECT_EQ(rx_->Burst(out, 8, &c_), 0) << "inert";
  EXPECT_EQ(c_.rx_bad.load(), 1u);
}

// ---- notifications (2.8.10)

TEST_P(PackedVirtqTest, KicksFollowTheDeviceEventArea) {
  PackedTestDevice dev(tx_->addrs(), ring_);
  auto burst = [&](int n) {
    std::vector<npa_buf*> b(n);
    for (auto& x : b) x = Frame(64, 0);
    EXPECT_EQ(tx_->Burst(b.data(), static_cast<uint16_t>(n), &c_), n);
    for (auto& ch : dev.Take(n)) dev.Complete(ch);
  };
  dev.SetEvent(NPA_VRING_PACKED_EVENT_FLAG_ENABLE);
  burst(4);
  EXPECT_EQ(Kicks(), 1u);
  dev.SetEvent(NPA_VRING_PACKED_EVENT_FLAG_DISABLE);
  burst(4);
  EXPECT_EQ(Kicks(), 0u);
  // Without EVENT_IDX negotiated DESC is not ours to honour: kick.
  dev.SetEvent(NPA_VRING_PACKED_EVENT_FLAG_DESC, npa_vring_packed_base(100, 1));
  burst(4);
  EXPECT_EQ(Kicks(), 1u);
}

TEST_P(PackedVirtqTest, EventIdxKicksOnlyWhenTheNamedSlotIsPublished) {
  Init(kPacked | kEventIdx);
  PackedTestDevice dev(tx_->addrs(), ring_);
  auto burst = [&](int n) {
    std::vector<npa_buf*> b(n);
    for (auto& x : b) x = Frame(64, 0);
    EXPECT_EQ(tx_->Burst(b.data(), static_cast<uint16_t>(n), &c_), n);
    for (auto& ch : dev.Take(n)) dev.Complete(ch);
    tx_->Reclaim(&c_);
  };
  // "Kick me when slot 10 of lap 1 is available."
  dev.SetEvent(NPA_VRING_PACKED_EVENT_FLAG_DESC, npa_vring_packed_base(10, 1));
  burst(8);  // slots 0..7
  EXPECT_EQ(Kicks(), 0u);
  burst(8);  // 8..15: crosses 10
  EXPECT_EQ(Kicks(), 1u);
  burst(8);  // 16..23
  EXPECT_EQ(Kicks(), 0u);
  // Next lap, slot 2: the bursts go round the ring; exactly one kick, in the
  // burst that publishes slot 2 with wrap counter 0.
  dev.SetEvent(NPA_VRING_PACKED_EVENT_FLAG_DESC, npa_vring_packed_base(2, 0));
  uint64_t kicks = 0;
  for (int k = 0; k < ring_ / 8 + 2; k++) {
    burst(8);
    kicks += Kicks();
  }
  EXPECT_EQ(kicks, 1u);
  EXPECT_EQ(c_.kicks.load(), 2u);
}

TEST_P(PackedVirtqTest, InterruptArmingWritesTheDriverEventArea) {
  Init(kPacked | kEventIdx);
  PackedTestDevice dev(rx_->addrs(), ring_);
  npa_buf* out[8];
  rx_->Burst(out, 8, &c_);
  auto ch = dev.Take(3);
  uint8_t f[64] = {};
  for (auto& x : ch) dev.Fill(x, f, 64);
  ASSERT_EQ(rx_->Burst(out, 8, &c_), 3);
  pool_.Free(out, 3);
  rx_->SetInterrupt(true);
  EXPECT_EQ(dev.driver_event().flags, NPA_VRING_PACKED_EVENT_FLAG_DESC);
  EXPECT_EQ(dev.driver_event().off_wrap, npa_vring_packed_base(3, 1)) << "next used slot";
  rx_->SetInterrupt(false);
  EXPECT_EQ(dev.driver_event().flags, NPA_VRING_PACKED_EVENT_FLAG_DISABLE);
  Init(kPacked);
  PackedTestDevice dev2(rx_->addrs(), ring_);
  rx_->SetInterrupt(true);
  EXPECT_EQ(dev2.driver_event().flags, NPA_VRING_PACKED_EVENT_FLAG_ENABLE);
}

}  // namespace
}  // namespace npa::shell
