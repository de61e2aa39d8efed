#include "shell/buf_pool.h"

#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "shell/region.h"

namespace npa::shell {
namespace {

class BufPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = Region::Create(kN * NPA_BUF_SLOT_SIZE, false);
    ASSERT_TRUE(r.ok());
    region_ = std::move(*r);
    ASSERT_TRUE(pool_.Init(region_.base(), kN, 7, kN, region_.iova(), region_.iova() + region_.size()).ok());
  }
  static constexpr uint32_t kN = 64;
  Region region_;
  BufPool pool_;
};

TEST_F(BufPoolTest, HeadersAreInitialised) {
  std::vector<npa_buf*> b(kN);
  ASSERT_EQ(pool_.Alloc(b.data(), kN), kN);
  std::set<uint32_t> slots;
  for (npa_buf* x : b) {
    EXPECT_EQ(x->iova, reinterpret_cast<uintptr_t>(x));
    EXPECT_EQ(x->buf_len, NPA_BUF_SLOT_SIZE);
    EXPECT_EQ(x->data_off, NPA_BUF_DATA_OFF);
    EXPECT_EQ(x->pool_id, 7u);
    EXPECT_EQ(x->nb_segs, 1);
    EXPECT_EQ(x->next, nullptr);
    EXPECT_EQ((x->iova - region_.iova()) % NPA_BUF_SLOT_SIZE, 0u);
    EXPECT_EQ(x->iova % 64, 0u);
    slots.insert(x->slot);
  }
  EXPECT_EQ(slots.size(), kN);
  EXPECT_EQ(pool_.available(), 0u);
  npa_buf* extra = nullptr;
  EXPECT_EQ(pool_.Alloc(&extra, 1), 0u) << "empty pool gives nothing";
  pool_.Free(b.data(), kN);
  EXPECT_EQ(pool_.available(), kN);
}

TEST_F(BufPoolTest, LifoHandsOutTheLastFreedFirst) {
  npa_buf* b[2];
  ASSERT_EQ(pool_.Alloc(b, 2), 2u);
  pool_.Free(&b[1], 1);
  npa_buf* c = nullptr;
  ASSERT_EQ(pool_.Alloc(&c, 1), 1u);
  EXPECT_EQ(c, b[1]);
}

TEST_F(BufPoolTest, FreeingAChainFreesEverySegmentAndResetsOnAlloc) {
  npa_buf* b[3];
  ASSERT_EQ(pool_.Alloc(b, 3), 3u);
  b[0]->next = b[1];
  b[1]->next = b[2];
  b[0]->nb_segs = 3;
  b[0]->ol_flags = NPA_BUF_OL_TX_CSUM;
  b[0]->data_off = 10;
  uint32_t before = pool_.available();
  pool_.Free(b, 1);
  EXPECT_EQ(pool_.available(), before + 3);
  npa_buf* x[3];
  ASSERT_EQ(pool_.Alloc(x, 3), 3u);
  for (npa_buf* y : x) {
    EXPECT_EQ(y->next, nullptr);
    EXPECT_EQ(y->ol_flags, 0u);
    EXPECT_EQ(y->data_off, NPA_BUF_DATA_OFF);
    EXPECT_EQ(y->nb_segs, 1);
  }
}

TEST_F(BufPoolTest, ForeignPointersAndCyclesCannotCorruptThePool) {
  npa_buf stray{};
  npa_buf* p = &stray;
  pool_.Free(&p, 1);
  EXPECT_EQ(pool_.bad_frees(), 1u);
  EXPECT_EQ(pool_.available(), kN);
  npa_buf* b = nullptr;
  ASSERT_EQ(pool_.Alloc(&b, 1), 1u);
  b->next = b;  // a cycle: the walk is bounded, extra frees are refused
  pool_.Free(&b, 1);
  EXPECT_LE(pool_.available(), kN);
}

TEST_F(BufPoolTest, DoubleFreeIsCountedAndNeverStackedTwice) {
  npa_buf* b[2];
  ASSERT_EQ(pool_.Alloc(b, 2), 2u);
  EXPECT_TRUE(pool_.Held(b[0]));
  pool_.Free(&b[0], 1);
  EXPECT_FALSE(pool_.Held(b[0]));
  const uint32_t avail = pool_.available();
  pool_.Free(&b[0], 1);  // again: refused
  EXPECT_EQ(pool_.bad_frees(), 1u);
  EXPECT_EQ(pool_.available(), avail);
  // Every slot comes out exactly once.
  std::vector<npa_buf*> all(kN);
  ASSERT_EQ(pool_.Alloc(all.data(), kN), kN - 1);
  std::set<npa_buf*> uniq(all.begin(), all.begin() + (kN - 1));
  EXPECT_EQ(uniq.size(), kN - 1);
  EXPECT_EQ(uniq.count(b[1]), 0u) << "b[1] is still the caller's";
}

TEST_F(BufPoolTest, CorruptedNextCannotStackAFreeMisalignedOrForeignBuffer) {
  npa_buf* b[3];
  ASSERT_EQ(pool_.Alloc(b, 3), 3u);
  pool_.Free(&b[2], 1);  // b[2] is free now
  const uint32_t avail = pool_.available();
  // A back end rewrote b[0]->next to a free slot: b[0] goes back, b[2] is
  // not stacked a second time and the walk stops there.
  b[0]->next = b[2];
  b[2]->next = b[1];  // a stale link of the free slot: never followed
  pool_.Free(&b[0], 1);
  EXPECT_EQ(pool_.available(), avail + 1);
  EXPECT_EQ(pool_.bad_frees(), 1u);
  EXPECT_TRUE(pool_.Held(b[1])) << "the walk stopped at the bad segment";
  // Inside the range but not at a slot start.
  auto* mid = reinterpret_cast<npa_buf*>(reinterpret_cast<uint8_t*>(b[1]) + 64);
  b[1]->next = mid;
  pool_.Free(&b[1], 1);
  EXPECT_EQ(pool_.bad_frees(), 2u);
  EXPECT_EQ(pool_.available(), avail + 2);
  // Outside the range, below it (wraps) and above it.
  npa_buf* below = reinterpret_cast<npa_buf*>(region_.iova() - NPA_BUF_SLOT_SIZE);
  npa_buf* above = reinterpret_cast<npa_buf*>(region_.iova() + size_t{kN} * NPA_BUF_SLOT_SIZE);
  EXPECT_FALSE(pool_.FreeSeg(below));
  EXPECT_FALSE(pool_.FreeSeg(above));
  EXPECT_FALSE(pool_.Held(mid));
  EXPECT_FALSE(pool_.Held(below));
  EXPECT_EQ(pool_.available(), avail + 2);
  std::vector<npa_buf*> all(kN);
  EXPECT_EQ(pool_.Alloc(all.data(), kN), kN);
  std::set<npa_buf*> uniq(all.begin(), all.end());
  EXPECT_EQ(uniq.size(), kN);
}

TEST(BufPoolSharedTest, PoolsOfOneRangeShareTheStateAcrossQueues) {
  constexpr uint32_t kPer = 16;
  auto r = Region::Create(2 * kPer * NPA_BUF_SLOT_SIZE, false);
  ASSERT_TRUE(r.ok());
  const uintptr_t lo = r->iova(), hi = lo + 2 * kPer * NPA_BUF_SLOT_SIZE;
  BufPool a, b;
  ASSERT_TRUE(a.Init(r->base(), kPer, 0, 2 * kPer, lo, hi).ok());
  ASSERT_TRUE(b.Init(r->base() + kPer * NPA_BUF_SLOT_SIZE, kPer, 1, 2 * kPer, lo, hi).ok());
  EXPECT_EQ(a.states(), b.states());
  npa_buf* x = nullptr;
  ASSERT_EQ(a.Alloc(&x, 1), 1u);
  EXPECT_TRUE(b.Held(x));
  b.Free(&x, 1);  // freed on the other queue: legal
  EXPECT_EQ(b.available(), kPer + 1);
  a.Free(&x, 1);  // and again on its own: a double free
  EXPECT_EQ(a.bad_frees(), 1u);
  EXPECT_EQ(a.available(), kPer - 1);
}

TEST(BufPoolSharedTest, ASlotNoPoolWasGivenIsNotABuffer) {
  constexpr uint32_t kPer = 8;
  auto r = Region::Create(2 * kPer * NPA_BUF_SLOT_SIZE, false);
  ASSERT_TRUE(r.ok());
  const uintptr_t lo = r->iova(), hi = lo + 2 * kPer * NPA_BUF_SLOT_SIZE;
  BufPool a;
  ASSERT_TRUE(a.Init(r->base(), kPer, 0, 2 * kPer, lo, hi).ok());
  auto* tail = reinterpret_cast<npa_buf*>(r->base() + kPer * NPA_BUF_SLOT_SIZE);
  EXPECT_FALSE(a.Held(tail));
  EXPECT_FALSE(a.FreeSeg(tail));
  EXPECT_EQ(a.available(), kPer);
}

TEST(BufPoolInitTest, SlotsMustBeSlotsOfTheRange) {
  alignas(64) static uint8_t mem[4 * NPA_BUF_SLOT_SIZE];
  const uintptr_t lo = reinterpret_cast<uintptr_t>(mem);
  BufPool p;
  EXPECT_FALSE(p.Init(mem + 64, 2, 0, 2, lo, lo + sizeof mem).ok()) << "not at a slot offset";
  EXPECT_FALSE(p.Init(mem, 5, 0, 5, lo, lo + sizeof mem).ok()) << "past the range";
  EXPECT_FALSE(p.Init(mem, 1, 0, 1, lo + NPA_BUF_SLOT_SIZE, lo + sizeof mem).ok()) << "below it";
  BufPool never_initialised;
  npa_buf* stray = reinterpret_cast<npa_buf*>(mem);
  EXPECT_FALSE(never_initialised.FreeSeg(stray));
  EXPECT_EQ(never_initialised.bad_frees(), 1u);
}

TEST(BufPoolInitTest, RejectsBadArguments) {
  BufPool p;
  EXPECT_FALSE(p.Init(nullptr, 4, 0, 4, 0, 0).ok());
  alignas(64) static uint8_t mem[4 * NPA_BUF_SLOT_SIZE];
  EXPECT_FALSE(p.Init(mem, 4, 0, 3, 0, 0).ok()) << "capacity below count";
  EXPECT_FALSE(p.Init(mem + 1, 1, 0, 1, 0, 0).ok()) << "misaligned";
}

// SlotStates::IndexOf's one compare (rotate, multiply by 17's inverse) is
// the reference check (slot start, inside the range) for every byte offset
// of the first and last slots, every slot start, and addresses below lo and
// far above it.
TEST(SlotStatesTest, IndexIsBelowNslotsExactlyForSlotStarts) {
  constexpr uint64_t kSlots = 1000;
  const uintptr_t lo = uintptr_t{0x7f0000000000};
  SlotStates st(lo, kSlots);
  auto check = [&](int64_t off) {
    const auto* b = reinterpret_cast<const npa_buf*>(lo + static_cast<uintptr_t>(off));
    const bool want = off >= 0 && off % NPA_BUF_SLOT_SIZE == 0 &&
                      static_cast<uint64_t>(off) / NPA_BUF_SLOT_SIZE < kSlots;
    uint64_t i = 0;
    ASSERT_EQ(st.Index(b, &i), want) << "offset " << off;
    if (want) {
      ASSERT_EQ(i, static_cast<uint64_t>(off) / NPA_BUF_SLOT_SIZE);
    }
  };
  const int64_t slot = NPA_BUF_SLOT_SIZE, end = slot * kSlots;
  for (int64_t off = -4 * slot; off < 3 * slot; off++) check(off);
  for (int64_t off = end - 3 * slot; off < end + 4 * slot; off++) check(off);
  for (int64_t k = 0; k <= static_cast<int64_t>(kSlots); k++) {
    check(k * slot);
    check(k * slot + 128);  // a multiple of 128, not of the slot
    check(k * slot - 64);
  }
  for (int64_t big : {int64_t{1} << 40, int64_t{1} << 50, (int64_t{1} << 57) + slot, -(int64_t{1} << 56)})
    check(big);
  // Every address in one 128-byte class: a multiple of 128 * 17^-1 far away.
  for (uint64_t k = 1; k < 64; k++) check(static_cast<int64_t>((k << 57) >> 1));
}

}  // namespace
}  // namespace npa::shell
