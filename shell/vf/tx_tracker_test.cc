#include "shell/vf/tx_tracker.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

namespace npa::shell {
namespace {

class TxTrackerTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kSlots = 200;  // not a multiple of 64: the last word is partial
  void SetUp() override {
    mem_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, kSlots * NPA_BUF_SLOT_SIZE)));
    ASSERT_TRUE(t_.Init(lo(), lo() + kSlots * NPA_BUF_SLOT_SIZE).ok());
  }
  uintptr_t lo() const { return reinterpret_cast<uintptr_t>(mem_.get()); }
  npa_buf* slot(uint32_t i) { return reinterpret_cast<npa_buf*>(mem_.get() + i * NPA_BUF_SLOT_SIZE); }
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> mem_;
  TxTracker t_;
};

TEST_F(TxTrackerTest, CountsMarkedFramesUntilCleared) {
  for (uint32_t i : {0u, 1u, 63u, 64u, 199u}) t_.Mark(slot(i));
  EXPECT_EQ(t_.outstanding(), 5u);
  t_.Mark(slot(64));  // the same frame again (a bug upstream): counted once
  // Only a slot's own start: the 17 * 128 slot size must not alias.
  for (uint32_t off : {64u, 128u, 17u * 128u / 2, NPA_BUF_SLOT_SIZE - 128u})
    t_.Mark(reinterpret_cast<npa_buf*>(lo() + 3 * NPA_BUF_SLOT_SIZE + off));
  EXPECT_EQ(t_.outstanding(), 5u);
  EXPECT_TRUE(t_.Clear(slot(63)));
  EXPECT_FALSE(t_.Clear(slot(63)));  // already cleared
  EXPECT_FALSE(t_.Clear(slot(2)));   // never marked: an RX buffer, say
  EXPECT_EQ(t_.outstanding(), 4u);
  EXPECT_EQ(t_.Reset(), 4u);
  EXPECT_EQ(t_.outstanding(), 0u);
  EXPECT_FALSE(t_.Clear(slot(199)));
}

// A plug-in with NPA_PLUGIN_F_TX_FREE: one count per queue, no marks.
TEST_F(TxTrackerTest, CountedModeCountsBurstsAndNeverWraps) {
  t_.SetCounted(true);
  t_.Mark(slot(5));  // the per-frame view is empty in counted mode
  EXPECT_EQ(t_.outstanding(), 0u);
  t_.Sent(32);
  t_.Unsent(7);      // the plug-in took 25
  t_.Completed(20);
  EXPECT_EQ(t_.outstanding(), 5u);
  t_.Completed(9);   // 4 more than it held: a plug-in bug, kept apart
  EXPECT_EQ(t_.outstanding(), 0u);
  EXPECT_EQ(t_.excess_completions(), 4u);
  t_.Sent(3);
  EXPECT_EQ(t_.Reset(), 3u);
  EXPECT_EQ(t_.outstanding(), 0u);
  EXPECT_TRUE(t_.counted());  // Reset keeps the mode
  t_.SetCounted(false);
  t_.Mark(slot(5));
  EXPECT_EQ(t_.outstanding(), 1u);
}

// Every 128-byte-aligned offset in (and around) the range: exactly the slot
// starts inside it count, each as its own slot.
TEST_F(TxTrackerTest, IndexIsExactForEveryAlignedOffset) {
  const TxTracker::View v = t_.view();
  uint64_t hits = 0;
  for (int64_t off = -64 * 128; off < static_cast<int64_t>(kSlots * NPA_BUF_SLOT_SIZE) + 64 * 128;
       off += 128) {
    uint64_t i;
    const bool in = v.Index(reinterpret_cast<npa_buf*>(lo() + off), &i);
    const bool want = off >= 0 && off % NPA_BUF_SLOT_SIZE == 0 &&
                      off < static_cast<int64_t>(kSlots * NPA_BUF_SLOT_SIZE);
    ASSERT_EQ(in, want) << "offset " << off;
    if (in) {
      EXPECT_EQ(i, static_cast<uint64_t>(off) / NPA_BUF_SLOT_SIZE);
      hits++;
    }
  }
  EXPECT_EQ(hits, kSlots);
}

TEST_F(TxTrackerTest, IgnoresPointersThatAreNotSlots) {
  t_.Mark(reinterpret_cast<npa_buf*>(lo() + 8));                               // inside a slot
  t_.Mark(reinterpret_cast<npa_buf*>(lo() + kSlots * NPA_BUF_SLOT_SIZE));      // one past the end
  t_.Mark(reinterpret_cast<npa_buf*>(lo() - NPA_BUF_SLOT_SIZE));               // before the range
  t_.Mark(nullptr);
  EXPECT_EQ(t_.outstanding(), 0u);
  EXPECT_FALSE(t_.Clear(nullptr));
  EXPECT_FALSE(t_.Clear(reinterpret_cast<npa_buf*>(lo() + 64)));
}

TEST(TxTrackerInit, RejectsBadRangesAndIgnoresEverythingUninitialized) {
  TxTracker t;
  alignas(64) static uint8_t mem[NPA_BUF_SLOT_SIZE];
  t.Mark(reinterpret_cast<npa_buf*>(mem));
  EXPECT_EQ(t.outstanding(), 0u);
  EXPECT_FALSE(t.Init(100, 100).ok());
  EXPECT_FALSE(t.Init(200, 100).ok());
}

}  // namespace
}  // namespace npa::shell
