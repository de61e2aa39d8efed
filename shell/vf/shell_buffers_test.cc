// ShellBuffers (shell_buffers.h): the plug-in's buf_alloc/buf_free draw on a
// queue's pool from its owning thread and on its stash inside a control
// call, with TX completions cleared from the queue's tracker either way.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "shell/shell_impl.h"
#include "shell/vf/shell_buffers.h"

namespace npa::shell {
namespace {

class ShellBuffersTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kQueues = 2;
  static constexpr uint32_t kPerQueue = 64, kStash = 16;

  void SetUp() override {
    const size_t bytes = size_t{kPerQueue} * kQueues * NPA_BUF_SLOT_SIZE;
    mem_.reset(static_cast<uint8_t*>(aligned_alloc(4096, bytes)));
    ASSERT_NE(mem_, nullptr);
    const uintptr_t lo = reinterpret_cast<uintptr_t>(mem_.get()), hi = lo + bytes;
    queues_ = std::make_unique<QueueState[]>(kQueues);
    for (uint16_t q = 0; q < kQueues; q++) {
      QueueState& qs = queues_[q];
      ASSERT_TRUE(qs.pool.Init(mem_.get() + size_t{kPerQueue} * q * NPA_BUF_SLOT_SIZE, kPerQueue, q,
                               kPerQueue * kQueues, lo, hi)
                      .ok());
      ASSERT_TRUE(qs.vf_tx.Init(lo, hi).ok());
      // As npa_shell_configure fills it (stash entries are kStashed).
      qs.stash_target = kStash;
      qs.stash.resize(kStash);
      qs.stash.resize(qs.pool.AllocStashed(qs.stash.data(), kStash));
      ASSERT_EQ(qs.stash.size(), kStash);
    }
    bufs_ = std::make_unique<ShellBuffers>(queues_.get(), kQueues);
  }
  QueueState& Q(uint16_t q) { return queues_[q]; }

  struct Free {
    void operator()(uint8_t* p) const { free(p); }
  };
  std::unique_ptr<uint8_t, Free> mem_;
  std::unique_ptr<QueueState[]> queues_;
  std::unique_ptr<ShellBuffers> bufs_;
};

TEST_F(ShellBuffersTest, OutsideAControlCallThePoolServes) {
  EXPECT_FALSE(bufs_->in_control_call());
  const uint32_t pool0 = Q(1).pool.available();
  npa_buf* b[8];
  ASSERT_EQ(bufs_->Alloc(1, b, 8), 8);
  EXPECT_EQ(Q(1).pool.available(), pool0 - 8);
  EXPECT_EQ(Q(1).stash.size(), kStash) << "the stash is the control path's";
  bufs_->Free(1, b, 8);
  EXPECT_EQ(Q(1).pool.available(), pool0);
  EXPECT_EQ(Q(1).stash.size(), kStash);
}

TEST_F(ShellBuffersTest, InsideAControlCallTheStashServes) {
  const uint32_t pool0 = Q(0).pool.available();
  npa_buf* b[kStash + 4];
  {
    ShellBuffers::ControlCall call(*bufs_);
    EXPECT_TRUE(bufs_->in_control_call());
    // More than the stash holds: short, as plugin.h warns.
    ASSERT_EQ(bufs_->Alloc(0, b, kStash + 4), kStash);
    EXPECT_TRUE(Q(0).stash.empty());
    EXPECT_EQ(Q(0).pool.available(), pool0) << "the owner's pool is not touched";
    for (uint32_t i = 0; i < kStash; i++) {
      EXPECT_EQ(b[i]->data_off, NPA_BUF_DATA_OFF) << "headers reset";
      EXPECT_EQ(b[i]->nb_segs, 1);
    }
    EXPECT_EQ(bufs_->Alloc(0, b + kStash, 4), 0) << "an empty stash gives nothing";
    bufs_->Free(0, b, kStash);
    EXPECT_EQ(Q(0).stash.size(), kStash);
    EXPECT_EQ(Q(0).pool.available(), pool0);
  }
  EXPECT_FALSE(bufs_->in_control_call());
}

TEST_F(ShellBuffersTest, ControlCallsNest) {
  ShellBuffers::ControlCall outer(*bufs_);
  {
    ShellBuffers::ControlCall inner(*bufs_);
    EXPECT_TRUE(bufs_->in_control_call());
  }
  EXPECT_TRUE(bufs_->in_control_call()) << "until the outer call ends";
  npa_buf* b;
  ASSERT_EQ(bufs_->Alloc(0, &b, 1), 1);
  EXPECT_EQ(Q(0).stash.size(), kStash - 1);
  bufs_->Free(0, &b, 1);
}

TEST_F(ShellBuffersTest, StashFreeTakesEverySegmentAndDropsForeignPointers) {
  const uint32_t pool0 = Q(0).pool.available();
  npa_buf* seg[3];
  ASSERT_EQ(Q(0).pool.Alloc(seg, 3), 3u);
  seg[0]->next = seg[1];
  seg[1]->next = seg[2];
  seg[0]->nb_segs = 3;
  alignas(64) static uint8_t foreign_mem[NPA_BUF_SLOT_SIZE];
  npa_buf* foreign = reinterpret_cast<npa_buf*>(foreign_mem);
  foreign->next = nullptr;
  npa_buf* frames[2] = {seg[0], foreign};
  {
    ShellBuffers::ControlCall call(*bufs_);
    bufs_->Free(0, frames, 2);
  }
  EXPECT_EQ(Q(0).stash.size(), kStash + 3) << "three segments, the stray pointer dropped";
  for (size_t i = kStash; i < Q(0).stash.size(); i++)
    EXPECT_EQ(Q(0).stash[i]->next, nullptr) << "stash entries are single slots";
  EXPECT_EQ(Q(0).pool.available(), pool0 - 3);
  EXPECT_EQ(Q(0).pool.bad_frees(), 0u);
  EXPECT_EQ(bufs_->bad_frees(), 1u) << "the stray pointer is counted";
}

// A buffer freed twice on the control path is stashed once and counted;
// one in the stash is refused by the owner's pool too, and the reverse.
TEST_F(ShellBuffersTest, ADoubleFreeIsCountedAndNeverStashedTwice) {
  npa_buf* b[2];
  {
    ShellBuffers::ControlCall call(*bufs_);
    ASSERT_EQ(bufs_->Alloc(0, b, 2), 2);
    EXPECT_EQ(Q(0).stash.size(), kStash - 2);
    bufs_->Free(0, b, 1);
    bufs_->Free(0, b, 1);  // again
    EXPECT_EQ(Q(0).stash.size(), kStash - 1) << "stashed once";
    EXPECT_EQ(bufs_->bad_frees(), 1u);
  }
  // On the owner thread now: b[0] sits in the stash, so the pool refuses it.
  const uint32_t pool0 = Q(0).pool.available();
  bufs_->Free(0, b, 1);
  EXPECT_EQ(Q(0).pool.available(), pool0) << "a stashed buffer is not stacked";
  EXPECT_EQ(Q(0).pool.bad_frees(), 1u);
  // b[1] freed to the pool, then again on the control path: refused there.
  bufs_->Free(0, b + 1, 1);
  EXPECT_EQ(Q(0).pool.available(), pool0 + 1);
  {
    ShellBuffers::ControlCall call(*bufs_);
    bufs_->Free(0, b + 1, 1);
  }
  EXPECT_EQ(Q(0).stash.size(), kStash - 1) << "a free buffer is not stashed";
  EXPECT_EQ(bufs_->bad_frees(), 2u);
  // Every buffer is in exactly one place: the stash and the stack hold
  // distinct slots, and a stash entry given out again frees normally.
  std::vector<npa_buf*> all(Q(0).stash);
  std::vector<npa_buf*> stacked(Q(0).pool.available());
  ASSERT_EQ(Q(0).pool.AllocRaw(stacked.data(), static_cast<uint32_t>(stacked.size())),
            stacked.size());
  all.insert(all.end(), stacked.begin(), stacked.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a slot listed twice";
  Q(0).pool.Free(stacked.data(), static_cast<uint32_t>(stacked.size()));
}

// At a switch the owner trims the stash back to its target (shell.cc
// QueueState::ApplySwitch): what the plug-in freed into it goes back to the
// pool, every buffer accounted for, nothing refused.
TEST_F(ShellBuffersTest, ASwitchTrimsTheStashBackIntoThePool) {
  const uint32_t pool0 = Q(0).pool.available();
  npa_buf* b[kStash];
  ASSERT_EQ(Q(0).pool.Alloc(b, kStash), kStash);
  {
    ShellBuffers::ControlCall call(*bufs_);
    bufs_->Free(0, b, kStash);  // a plug-in's stop hands its ring back
  }
  ASSERT_EQ(Q(0).stash.size(), 2u * kStash);
  Q(0).ApplySwitch();
  EXPECT_EQ(Q(0).stash.size(), kStash);
  EXPECT_EQ(Q(0).pool.available(), pool0);
  EXPECT_EQ(Q(0).pool.bad_frees(), 0u);
  EXPECT_EQ(bufs_->bad_frees(), 0u);
  // Trimmed entries are the pool's again: the stash refills from it.
  npa_buf* again[kStash];
  ASSERT_EQ(Q(0).pool.Alloc(again, kStash), kStash);
  Q(0).pool.Free(again, kStash);
  EXPECT_EQ(Q(0).pool.bad_frees(), 0u);
}

// The owner moves stash entries back to its stack (shell.cc ApplySwitch);
// only stash entries are accepted there.
TEST_F(ShellBuffersTest, OnlyStashEntriesGoBackFromTheStash) {
  const uint32_t pool0 = Q(0).pool.available();
  EXPECT_TRUE(Q(0).pool.FreeStashed(Q(0).stash.back()));
  EXPECT_FALSE(Q(0).pool.FreeStashed(Q(0).stash.back())) << "already back on the stack";
  Q(0).stash.pop_back();
  npa_buf* out = nullptr;
  ASSERT_EQ(Q(0).pool.AllocRaw(&out, 1), 1u);
  EXPECT_FALSE(Q(0).pool.FreeStashed(out)) << "out of the pools, not stashed";
  EXPECT_EQ(Q(0).pool.bad_frees(), 2u);
  EXPECT_TRUE(Q(0).pool.FreeSeg(out));
  EXPECT_EQ(Q(0).pool.available(), pool0 + 1);
}

TEST_F(ShellBuffersTest, ATxFrameComingBackIsClearedEitherWay) {
  npa_buf* b[2];
  ASSERT_EQ(bufs_->Alloc(0, b, 2), 2);
  Q(0).vf_tx.Mark(b[0]);
  Q(0).vf_tx.Mark(b[1]);
  ASSERT_EQ(Q(0).vf_tx.outstanding(), 2u);
  bufs_->Free(0, b, 1);  // a completion on the owner's thread
  EXPECT_EQ(Q(0).vf_tx.outstanding(), 1u);
  {
    ShellBuffers::ControlCall call(*bufs_);
    bufs_->Free(0, b + 1, 1);  // handed back at stop
  }
  EXPECT_EQ(Q(0).vf_tx.outstanding(), 0u);
}

TEST_F(ShellBuffersTest, AQueueBeyondTheConfiguredOnesGetsNothing) {
  npa_buf* b[2];
  EXPECT_EQ(bufs_->Alloc(kQueues, b, 2), 0);
  ASSERT_EQ(bufs_->Alloc(0, b, 2), 2);
  const uint32_t pool0 = Q(0).pool.available();
  bufs_->Free(kQueues, b, 2);  // ignored
  EXPECT_EQ(Q(0).pool.available(), pool0);
  bufs_->Free(0, b, 2);
}

// The owner thread bursting on the emulated path while the control thread
// fills a ring from the stash: each uses its own store, so neither loses a
// buffer.
TEST_F(ShellBuffersTest, OwnerPoolAndControlStashAreUsedConcurrently) {
  const uint32_t pool0 = Q(0).pool.available();
  std::thread owner([&] {
    npa_buf* b[4];
    for (int i = 0; i < 20000; i++) {
      uint32_t n = Q(0).pool.Alloc(b, 4);
      Q(0).pool.Free(b, n);
    }
  });
  {
    ShellBuffers::ControlCall call(*bufs_);
    npa_buf* b[kStash];
    for (int i = 0; i < 2000; i++) {
      uint16_t n = bufs_->Alloc(0, b, kStash);
      bufs_->Free(0, b, n);
    }
  }
  owner.join();
  EXPECT_EQ(Q(0).pool.available(), pool0);
  EXPECT_EQ(Q(0).stash.size(), kStash);
}

}  // namespace
}  // namespace npa::shell
