// vhost-user plumbing for packed rings and EVENT_IDX (VhostSession): the
// offer, ring sizes, SET_VRING_ADDR's three areas, SET/GET_VRING_BASE with
// the wrap counter in bit 15.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "gtest/gtest.h"
#include "hypervisor/vhost/vhost_session.h"

namespace npa::agent {
namespace {

constexpr uint64_t kBase = (1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES);
constexpr uint64_t kPacked = kBase | (1ull << NPA_VIRTIO_F_RING_PACKED);

class VhostSessionPackedTest : public ::testing::Test {
 protected:
  VhostSessionPackedTest() : s_({.name = "g1", .max_queue_pairs = 1}) {}
  void TearDown() override {
    if (g_ != nullptr) munmap(g_, 0x100000);
  }
  absl::Status Do(uint32_t req, const void* p, uint32_t size, std::vector<UniqueFd> fds = {}) {
    VhostMessage m;
    m.hdr = {req, NPA_VHOST_USER_VERSION, size};
    if (p) std::memcpy(&m.payload, p, std::min<size_t>(size, sizeof(m.payload)));
    m.fds = std::move(fds);
    return s_.Handle(std::move(m), &reply_);
  }
  absl::Status DoU64(uint32_t req, uint64_t v, std::vector<UniqueFd> fds = {}) {
    return Do(req, &v, 8, std::move(fds));
  }
  absl::Status DoState(uint32_t req, uint32_t index, uint32_t num) {
    npa_vhost_vring_state st{index, num};
    return Do(req, &st, 8);
  }
  static std::vector<UniqueFd> One(int fd) {
    std::vector<UniqueFd> v;
    v.emplace_back(fd);
    return v;
  }
  // Owner, features, 1 MiB of guest memory at uva/gpa 0x100000 the test
  // can write as the guest.
  void Begin(uint64_t features) {
    ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_FEATURES, features).ok());
    UniqueFd fd(memfd_create("packed-sess", MFD_CLOEXEC));
    ASSERT_EQ(ftruncate(fd.get(), 0x100000), 0);
    g_ = static_cast<uint8_t*>(mmap(nullptr, 0x100000, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0));
    ASSERT_NE(g_, MAP_FAILED);
    npa_vhost_memory m{};
    m.nregions = 1;
    m.regions[0] = {0x100000, 0x100000, 0x100000, 0};
    ASSERT_TRUE(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 40, One(fd.release())).ok());
  }
  absl::Status Addr(uint64_t desc, uint64_t driver, uint64_t device) {
    // vhost_vring_addr order: index, flags, desc, used, avail, log.
    npa_vhost_vring_addr a{1, 0, desc, device, driver, 0};
    return Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40);
  }
  npa_vring_packed_desc* Ring() { return reinterpret_cast<npa_vring_packed_desc*>(g_); }

  VhostSession s_;
  VhostReply reply_;
  uint8_t* g_ = nullptr;
};

TEST_F(VhostSessionPackedTest, OfferedAndSizesFollowTheAckedRingKind) {
  ASSERT_TRUE(Do(NPA_VHOST_USER_GET_FEATURES, nullptr, 0).ok());
  EXPECT_TRUE(reply_.payload.u64 & (1ull << NPA_VIRTIO_F_RING_PACKED));
  EXPECT_TRUE(reply_.payload.u64 & (1ull << NPA_VIRTIO_F_RING_EVENT_IDX));
  Begin(kBase);  // split: sizes are powers of two
  absl::Status st = DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 100);
  EXPECT_NE(std::string(st.message()).find("not a power of two"), std::string::npos) << st;
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_FEATURES, kPacked).ok());
  EXPECT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 100).ok());
  EXPECT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 32768).ok());
  EXPECT_FALSE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 32769).ok());
  EXPECT_FALSE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 0).ok());
  // Packed areas: the driver and device event structures are 4-aligned.
  st = Addr(0x100000, 0x108002, 0x108010);
  EXPECT_NE(std::string(st.message()).find("misaligned"), std::string::npos) << st;
  EXPECT_TRUE(Addr(0x100000, 0x108000, 0x108010).ok());
  st = Addr(0x100000, 0x200000, 0x108010);  // driver area past the memory
  EXPECT_NE(std::string(st.message()).find("not inside guest memory"), std::string::npos) << st;
  // Back to split after sizing: the 100-entry ring may not start.
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 100).ok());
  ASSERT_TRUE(Addr(0x100000, 0x108000, 0x108010).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_FEATURES, kBase).ok());
  st = DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(eventfd(0, 0)));
  EXPECT_NE(std::string(st.message()).find("VIRTIO_F_RING_PACKED is not acked"), std::string::npos)
      << st;
}

TEST_F(VhostSessionPackedTest, BaseCarriesTheWrapCounterBothWays) {
  Begin(kPacked | (1ull << NPA_VIRTIO_F_RING_EVENT_IDX));
  constexpr uint32_t kNum = 7;
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, kNum).ok());
  // A slot past the ring is refused at the kick, naming it.
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_BASE, 1, npa_vring_packed_base(9, 1)).ok());
  ASSERT_TRUE(Addr(0x100000, 0x108000, 0x108010).ok());
  absl::Status st = DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(eventfd(0, 0)));
  EXPECT_NE(std::string(st.message()).find("names slot 9"), std::string::npos) << st;
  // Resume at slot 3 of an odd lap (wrap 0): slots 3.. hold the previous
  // lap's descriptors (flags AVAIL|USED), slots 0..2 this lap's used ones.
  for (uint32_t i = 3; i < kNum; i++) Ring()[i].flags = NPA_VRING_PACKED_F_AVAIL | NPA_VRING_PACKED_F_USED;
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_BASE, 1, npa_vring_packed_base(3, 0)).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(eventfd(0, 0))).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_ENABLE, 1, 1).ok());
  // The guest posts one TX frame at slot 3 with its wrap counter 0
  // (AVAIL = 0, USED = 1).
  std::memset(g_ + 0x10000, 0, 12);
  std::memset(g_ + 0x10000 + 12, 'p', 60);
  Ring()[3] = {0x110000, 72, 11, 0};
  __atomic_store_n(&Ring()[3].flags, static_cast<uint16_t>(NPA_VRING_PACKED_F_USED), __ATOMIC_RELEASE);
  GuestFrame f[2];
  ASSERT_EQ(s_.PeekTx(0, f, 2), 1) << s_.broken_reason();
  EXPECT_EQ(static_cast<uint8_t*>(f[0].segs[0].iov_base)[0], 'p');
  s_.ReleaseTx(0, 1);
  // Used in place: id 11, AVAIL = USED = 0 (the device's wrap counter).
  EXPECT_EQ(Ring()[3].id, 11);
  EXPECT_EQ(Ring()[3].flags & (NPA_VRING_PACKED_F_AVAIL | NPA_VRING_PACKED_F_USED), 0);
  ASSERT_TRUE(DoState(NPA_VHOST_USER_GET_VRING_BASE, 1, 0).ok());
  EXPECT_EQ(reply_.payload.state.num, npa_vring_packed_base(4, 0));
}

// EVENT_IDX acked on a split ring: the session hands it to the queue, which
// then interrupts only when used->idx passes used_event (§2.7.7.2), however
// avail->flags reads.
TEST_F(VhostSessionPackedTest, EventIdxOnASplitRingReachesTheQueue) {
  Begin(kBase | (1ull << NPA_VIRTIO_F_RING_EVENT_IDX));
  constexpr uint32_t kNum = 8;
  auto* desc = reinterpret_cast<npa_vring_desc*>(g_);
  auto* avail = reinterpret_cast<npa_vring_avail*>(g_ + 0x2000);
  auto* used = reinterpret_cast<npa_vring_used*>(g_ + 0x1000);
  const int call = eventfd(0, EFD_NONBLOCK);
  ASSERT_GE(call, 0);
  uint64_t file = 1;
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_VRING_CALL, &file, 8, One(dup(call))).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, kNum).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_BASE, 1, 0).ok());
  npa_vhost_vring_addr a{1, 0, 0x100000, 0x101000, 0x102000, 0};
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(eventfd(0, 0))).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_ENABLE, 1, 1).ok());
  *npa_vring_used_event(avail, kNum) = 3;
  avail->flags = NPA_VRING_AVAIL_F_NO_INTERRUPT;  // ignored with EVENT_IDX
  GuestFrame f[1];
  uint64_t calls[6];
  for (uint16_t i = 0; i < 6; i++) {
    std::memset(g_ + 0x10000 + i * 256, 0, 12);
    desc[i] = {0x110000 + i * 256u, 72, 0, 0};
    avail->ring[i % kNum] = i;
    __atomic_store_n(&avail->idx, static_cast<uint16_t>(i + 1), __ATOMIC_RELEASE);
    ASSERT_EQ(s_.PeekTx(0, f, 1), 1) << s_.broken_reason();
    s_.ReleaseTx(0, 1);
    uint64_t v = 0;
    calls[i] = read(call, &v, 8) == 8 ? v : 0;
  }
  EXPECT_EQ(used->idx, 6);
  // used idx 1..6: only the move 3 -> 4 crosses used_event 3.
  for (int i = 0; i < 6; i++) EXPECT_EQ(calls[i], i == 3 ? 1u : 0u) << i;
  close(call);
}

TEST_F(VhostSessionPackedTest, AViolationBreaksTheDeviceWithTheSlotNamed) {
  Begin(kPacked);
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 8).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_BASE, 1, npa_vring_packed_base(0, 1)).ok());
  ASSERT_TRUE(Addr(0x100000, 0x108000, 0x108010).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(eventfd(0, 0))).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_ENABLE, 1, 1).ok());
  Ring()[0] = {0x900000, 72, 0, 0};  // outside the 1 MiB at 0x100000
  __atomic_store_n(&Ring()[0].flags, static_cast<uint16_t>(NPA_VRING_PACKED_F_AVAIL), __ATOMIC_RELEASE);
  GuestFrame f[1];
  EXPECT_EQ(s_.PeekTx(0, f, 1), 0);
  EXPECT_TRUE(s_.broken());
  EXPECT_NE(s_.broken_reason().find("descriptor 0 addr 0x900000 len 72 is outside guest memory"),
            std::string::npos)
      << s_.broken_reason();
}

}  // namespace
}  // namespace npa::agent
