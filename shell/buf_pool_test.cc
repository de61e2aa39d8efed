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

TEST(BufPoolInitTest, RejectsBadArguments) {
  BufPool p;
  EXPECT_FALSE(p.Init(nullptr, 4, 0, 4, 0, 0).ok());
  alignas(64) static uint8_t mem[4 * NPA_BUF_SLOT_SIZE];
  EXPECT_FALSE(p.Init(mem, 4, 0, 3, 0, 0).ok()) << "capacity below count";
  EXPECT_FALSE(p.Init(mem + 1, 1, 0, 1, 0, 0).ok()) << "misaligned";
}

}  // namespace
}  // namespace npa::shell
