#include "hypervisor/vhost/vhost_session.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace npa::agent {
namespace {

class VhostSessionTest : public ::testing::Test {
 protected:
  explicit VhostSessionTest(uint32_t stop_release_wait_ms = 100)
      : s_({.name = "g1", .max_queue_pairs = 2, .stop_release_wait_ms = stop_release_wait_ms}) {}

  absl::Status Do(uint32_t req, const void* p, uint32_t size, std::vector<UniqueFd> fds = {},
                  uint32_t flags = NPA_VHOST_USER_VERSION) {
    VhostMessage m;
    m.hdr = {req, flags, size};
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
  static UniqueFd MemFd(size_t size) {
    UniqueFd fd(memfd_create("sess-test", MFD_CLOEXEC));
    EXPECT_EQ(ftruncate(fd.get(), size), 0);
    return fd;
  }
  static std::vector<UniqueFd> One(UniqueFd fd) {
    std::vector<UniqueFd> v;
    v.push_back(std::move(fd));
    return v;
  }
  // Owner + features + a 1 MiB table at gpa/uva 0x100000.
  void OwnFeaturesMem() {
    ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_FEATURES, (1ull << VIRTIO_F_VERSION_1) |
                                                       (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES)).ok());
    npa_vhost_memory m{};
    m.nregions = 1;
    m.regions[0] = {0x100000, 0x100000, 0x100000, 0};
    ASSERT_TRUE(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 40, One(MemFd(0x100000))).ok());
  }
  std::string Msg(const absl::Status& s) { return std::string(s.message()); }

  VhostSession s_;
  VhostReply reply_;
};

TEST_F(VhostSessionTest, QueriesBeforeOwnerAndStateTable) {
  ASSERT_TRUE(Do(NPA_VHOST_USER_GET_FEATURES, nullptr, 0).ok());
  EXPECT_TRUE(reply_.send);
  EXPECT_EQ(reply_.payload.u64, kDefaultFeatures);
  EXPECT_EQ(reply_.hdr.flags, NPA_VHOST_USER_VERSION | NPA_VHOST_USER_FLAG_REPLY);
  // Setters before SET_OWNER are illegal in state no-owner.
  absl::Status st = DoU64(NPA_VHOST_USER_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1);
  EXPECT_NE(Msg(st).find("not legal in state no-owner"), std::string::npos) << st;
  EXPECT_NE(Msg(st).find("guest 'g1' SET_FEATURES"), std::string::npos) << st;
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  EXPECT_EQ(s_.state(), VhostSession::kOwned);
  EXPECT_FALSE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());  // twice
  ASSERT_TRUE(Do(NPA_VHOST_USER_RESET_OWNER, nullptr, 0).ok());
  EXPECT_EQ(s_.state(), VhostSession::kNoOwner);
}

// The session table (VhostSessionTraits) against the requests that fire its
// events, every (state, event) pair: a legal one moves the session to the
// arc's target, any other is refused with the state unchanged.
TEST_F(VhostSessionTest, EveryStateAndStateChangingRequestFollowsTheSessionTable) {
  using S = VhostSessionState;
  using E = VhostSessionEvent;
  const uint32_t request[] = {NPA_VHOST_USER_SET_OWNER, NPA_VHOST_USER_SET_MEM_TABLE,
                              NPA_VHOST_USER_RESET_OWNER};
  size_t legal = 0;
  for (size_t f = 0; f < VhostSessionTraits::kNumStates; f++)
    for (size_t e = 0; e < VhostSessionTraits::kNumEvents; e++) {
      const S from = static_cast<S>(f);
      const E ev = static_cast<E>(e);
      SCOPED_TRACE(absl::StrCat(VhostSessionTraits::StateName(from), " + ",
                                VhostSessionTraits::EventName(ev)));
      VhostSession s({.name = "walk", .max_queue_pairs = 1});
      auto send = [&s](uint32_t req) {
        VhostMessage m;
        m.hdr = {req, NPA_VHOST_USER_VERSION, 0};
        if (req == NPA_VHOST_USER_SET_MEM_TABLE) {
          m.hdr.size = 40;
          m.payload.memory.nregions = 1;
          m.payload.memory.regions[0] = {0x100000, 0x10000, 0x100000, 0};
          m.fds.push_back(MemFd(0x10000));
        }
        VhostReply rep;
        return s.Handle(std::move(m), &rep);
      };
      // Reach `from` through the protocol itself.
      std::vector<S> path;
      std::vector<E> events;
      ASSERT_TRUE(VhostSessionTable::ShortestPath(S::kNoOwner, from, &path, &events).ok());
      for (E step : events) ASSERT_TRUE(send(request[static_cast<size_t>(step)]).ok());
      ASSERT_EQ(s.state(), from);
      const std::optional<S> to = VhostSessionTable::Next(from, ev);
      absl::Status st = send(request[e]);
      EXPECT_EQ(st.ok(), to.has_value()) << st;
      EXPECT_EQ(s.state(), to.value_or(from));
      legal += to.has_value();
    }
  EXPECT_EQ(legal, std::size(VhostSessionTraits::kArcs));
}

TEST_F(VhostSessionTest, RejectsMalformedHeaders) {
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_GET_FEATURES, nullptr, 0, {}, 2)).find("version"), std::string::npos);
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_GET_FEATURES, nullptr, 0, {}, 1 | NPA_VHOST_USER_FLAG_REPLY)).find("flags"),
            std::string::npos);
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_GET_FEATURES, nullptr, 0, {}, 1 | 0x100)).find("flags"), std::string::npos);
  EXPECT_NE(Msg(Do(99, nullptr, 0)).find("unknown"), std::string::npos);
  // A request of the spec that needs a feature never offered is named,
  // with the feature (QEMU's and DPDK's messages the agent does not serve).
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_LOG_BASE, nullptr, 0)).find("SET_LOG_BASE is not supported: dirty logging"),
            std::string::npos);
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_GET_CONFIG, nullptr, 0)).find("GET_CONFIG is not supported: protocol feature CONFIG"),
            std::string::npos);
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_ADD_MEM_REG, nullptr, 0)).find("CONFIGURE_MEM_SLOTS"), std::string::npos);
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_GET_FEATURES, nullptr, 300)).find("payload size 300"), std::string::npos);
}

TEST_F(VhostSessionTest, RejectsWrongPayloadSizesAndFds) {
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  uint64_t f = 1ull << VIRTIO_F_VERSION_1;
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_FEATURES, &f, 4)).find("payload size 4, expected 8"), std::string::npos);
  EXPECT_FALSE(Do(NPA_VHOST_USER_GET_FEATURES, &f, 8).ok());  // GET with payload
  EXPECT_FALSE(Do(NPA_VHOST_USER_SET_OWNER, &f, 8).ok());
  npa_vhost_vring_state st{0, 256};
  EXPECT_FALSE(Do(NPA_VHOST_USER_SET_VRING_NUM, &st, 4).ok());
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_VRING_NUM, &st, 8, One(MemFd(4096)))).find("carries 1 fds, expected 0"),
            std::string::npos);
}

TEST_F(VhostSessionTest, FeatureNegotiationChecksSubset) {
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  EXPECT_NE(Msg(DoU64(NPA_VHOST_USER_SET_FEATURES, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC)))
                .find("unoffered"),
            std::string::npos);
  EXPECT_NE(Msg(DoU64(NPA_VHOST_USER_SET_FEATURES, 1ull << VIRTIO_NET_F_MRG_RXBUF)).find("VERSION_1"), std::string::npos);
  EXPECT_FALSE(DoU64(NPA_VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << 40).ok());
  EXPECT_FALSE(DoU64(NPA_VHOST_USER_NET_SET_MTU, 9000).ok());  // MTU protocol feature not acked
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_PROTOCOL_FEATURES, kOfferedProtocolFeatures).ok());
  EXPECT_TRUE(DoU64(NPA_VHOST_USER_NET_SET_MTU, 9000).ok());
  EXPECT_EQ(s_.mtu(), 9000u);
  EXPECT_FALSE(DoU64(NPA_VHOST_USER_NET_SET_MTU, 10).ok());
}

// QEMU with queues=N runs one vhost device per queue pair on one socket;
// each sends SET_FEATURES as it starts, while the earlier pairs run. The
// same value again is accepted; a change while a ring runs is refused.
TEST_F(VhostSessionTest, SetFeaturesAgainWhileRunningOnlyWithTheSameValue) {
  OwnFeaturesMem();  // VERSION_1 | F_PROTOCOL_FEATURES
  const uint64_t f = (1ull << VIRTIO_F_VERSION_1) | (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES);
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 256).ok());
  npa_vhost_vring_addr a{1, 0, 0x100000, 0x102000, 0x101000, 0};
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(UniqueFd(eventfd(0, 0)))).ok());
  absl::Status st = DoU64(NPA_VHOST_USER_SET_FEATURES, f);
  EXPECT_TRUE(st.ok()) << st;
  st = DoU64(NPA_VHOST_USER_SET_FEATURES, f | (1ull << VIRTIO_NET_F_MRG_RXBUF));
  EXPECT_NE(Msg(st).find("features changed"), std::string::npos) << st;
  EXPECT_EQ(s_.acked_features(), f);
}

TEST_F(VhostSessionTest, VringIndexNumAndBaseChecks) {
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  EXPECT_NE(Msg(DoState(NPA_VHOST_USER_SET_VRING_NUM, 4, 256)).find("vring index 4 out of range"), std::string::npos);
  EXPECT_NE(Msg(DoState(NPA_VHOST_USER_SET_VRING_NUM, 0, 100)).find("power of two"), std::string::npos);
  EXPECT_FALSE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 0, 0).ok());
  EXPECT_FALSE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 0, 65536).ok());
  EXPECT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 0, 32768).ok());
  EXPECT_FALSE(DoState(NPA_VHOST_USER_SET_VRING_BASE, 0, 70000).ok());
  EXPECT_FALSE(DoU64(NPA_VHOST_USER_SET_VRING_CALL, 7 | NPA_VHOST_USER_VRING_NOFD_MASK).ok());
  EXPECT_FALSE(DoU64(NPA_VHOST_USER_SET_VRING_CALL, 0x10000 | NPA_VHOST_USER_VRING_NOFD_MASK).ok());
  EXPECT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_CALL, 1 | NPA_VHOST_USER_VRING_NOFD_MASK).ok());
  // A call fd that is not an eventfd.
  EXPECT_NE(Msg(DoU64(NPA_VHOST_USER_SET_VRING_CALL, 1, One(MemFd(4096)))).find("not an eventfd"), std::string::npos);
  EXPECT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_CALL, 1, One(UniqueFd(eventfd(0, 0)))).ok());
}

TEST_F(VhostSessionTest, VringAddrNeedsMemTableAndMustBeInside) {
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 0, 256).ok());
  npa_vhost_vring_addr a{0, 0, 0x100000, 0x102000, 0x101000, 0};
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40)).find("not legal in state owned"), std::string::npos);
  npa_vhost_memory m{};
  m.nregions = 1;
  m.regions[0] = {0x100000, 0x100000, 0x100000, 0};
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 40, One(MemFd(0x100000))).ok());
  EXPECT_TRUE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40).ok());
  a.used_user_addr = 0x1ffc00;  // 2054-byte used ring runs past the end
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40)).find("not inside guest memory"), std::string::npos);
  a.used_user_addr = 0x102002;  // misaligned
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40)).find("misaligned"), std::string::npos);
  a.used_user_addr = 0x102000;
  a.flags = 1;  // VHOST_VRING_F_LOG
  EXPECT_FALSE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40).ok());
  a.flags = 0;
  a.index = 9;
  EXPECT_FALSE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40).ok());
}

TEST_F(VhostSessionTest, MemTableValidation) {
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  npa_vhost_memory m{};
  m.nregions = 2;
  m.regions[0] = {0x0, 0x2000, 0x0, 0};
  m.regions[1] = {0x1000, 0x1000, 0x10000, 0};
  std::vector<UniqueFd> two;
  two.push_back(MemFd(0x2000));
  two.push_back(MemFd(0x1000));
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 72, std::move(two))).find("overlaps"), std::string::npos);
  // fd count mismatch
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 72, One(MemFd(0x2000)))).find("carries 1 fds, expected 2"),
            std::string::npos);
  // size does not match nregions
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 40, One(MemFd(0x2000)))).find("does not match"), std::string::npos);
  m.nregions = 9;
  EXPECT_FALSE(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 8 + 9 * 32).ok());
  m.nregions = 0;
  EXPECT_FALSE(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 8).ok());
  m.nregions = 1;
  m.regions[0] = {0x0, 0x10000, 0x0, 0};  // fd smaller than the region
  EXPECT_NE(Msg(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 40, One(MemFd(0x1000)))).find("needs mmap_offset+size"),
            std::string::npos);
  EXPECT_EQ(s_.state(), VhostSession::kOwned);
}

TEST_F(VhostSessionTest, KickStartsRingAndGetVringBaseStops) {
  OwnFeaturesMem();
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 256).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_BASE, 1, 5).ok());
  EXPECT_NE(Msg(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1 | NPA_VHOST_USER_VRING_NOFD_MASK)).find("addresses"),
            std::string::npos);
  npa_vhost_vring_addr a{1, 0, 0x100000, 0x102000, 0x101000, 0};
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(UniqueFd(eventfd(0, 0)))).ok());
  EXPECT_FALSE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 128).ok());  // running
  ASSERT_TRUE(DoState(NPA_VHOST_USER_GET_VRING_BASE, 1, 0).ok());
  EXPECT_EQ(reply_.payload.state.num, 5u);
  EXPECT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 128).ok());  // stopped again
}

// A TX ring (vring 1, 8 entries) in a 1 MiB guest memory the test can
// write as the guest: desc at +0, used at +0x1000, avail at +0x2000, frame
// buffers from +0x10000.
class VhostSessionTxTest : public VhostSessionTest {
 protected:
  explicit VhostSessionTxTest(uint32_t stop_release_wait_ms = 100)
      : VhostSessionTest(stop_release_wait_ms) {}
  void SetUp() override {
    ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_FEATURES, (1ull << VIRTIO_F_VERSION_1) |
                                                       (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES)).ok());
    mfd_ = MemFd(0x100000);
    g_ = static_cast<uint8_t*>(mmap(nullptr, 0x100000, PROT_READ | PROT_WRITE, MAP_SHARED, mfd_.get(), 0));
    ASSERT_NE(g_, MAP_FAILED);
    npa_vhost_memory m{};
    m.nregions = 1;
    m.regions[0] = {0x100000, 0x100000, 0x100000, 0};
    ASSERT_TRUE(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 40, One(UniqueFd(dup(mfd_.get())))).ok());
    desc_ = reinterpret_cast<npa_vring_desc*>(g_);
    avail_ = reinterpret_cast<npa_vring_avail*>(g_ + 0x2000);
    used_ = reinterpret_cast<npa_vring_used*>(g_ + 0x1000);
  }
  void TearDown() override {
    if (g_ != nullptr && g_ != MAP_FAILED) munmap(g_, 0x100000);
  }
  // Guest side: post frame `tag` at avail index idx (descriptor idx % 8).
  void Post(uint16_t idx, uint8_t tag) {
    const uint16_t d = idx % 8;
    std::memset(g_ + 0x10000 + d * 256, 0, 12);
    std::memset(g_ + 0x10000 + d * 256 + 12, tag, 60);
    desc_[d] = {0x110000 + d * 256u, 72, 0, 0};
    avail_->ring[idx % 8] = d;
    __atomic_store_n(&avail_->idx, static_cast<uint16_t>(idx + 1), __ATOMIC_RELEASE);
  }
  void Start(uint16_t base) {
    ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 8).ok());
    ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_BASE, 1, base).ok());
    npa_vhost_vring_addr a{1, 0, 0x100000, 0x101000, 0x102000, 0};
    ASSERT_TRUE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40).ok());
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(UniqueFd(eventfd(0, 0)))).ok());
    ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_ENABLE, 1, 1).ok());
  }
  uint16_t UsedIdx() const { return __atomic_load_n(&used_->idx, __ATOMIC_ACQUIRE); }
  static uint8_t Tag(const GuestFrame& f) { return static_cast<uint8_t*>(f.segs[0].iov_base)[0]; }

  UniqueFd mfd_;
  uint8_t* g_ = nullptr;
  npa_vring_desc* desc_ = nullptr;
  npa_vring_avail* avail_ = nullptr;
  npa_vring_used* used_ = nullptr;
};

// vhost-user spec, "Starting and stopping rings": GET_VRING_BASE stops a
// ring; SET_VRING_BASE + SET_VRING_KICK start it again at the given index.
// Migration abort and a reconnecting shell rely on it, and on a ring that
// starts at a non-zero base resuming there.
TEST_F(VhostSessionTxTest, StoppedRingRestartsAtTheGivenBase) {
  // Start at base 5, as a resumed guest would: avail/used continue from 5.
  avail_->idx = 5;
  used_->idx = 5;
  Start(5);
  Post(5, 0xa5);
  GuestFrame f[4];
  ASSERT_EQ(s_.PeekTx(0, f, 4), 1);
  EXPECT_EQ(Tag(f[0]), 0xa5);
  s_.ReleaseTx(0, 1);
  EXPECT_EQ(UsedIdx(), 6);
  // Stop: the base reported is the next index to serve.
  ASSERT_TRUE(DoState(NPA_VHOST_USER_GET_VRING_BASE, 1, 0).ok());
  EXPECT_EQ(reply_.payload.state.num, 6u);
  Post(6, 0xa6);  // queued while stopped: not served
  EXPECT_EQ(s_.PeekTx(0, f, 4), 0);
  // Restart at the reported base: the queued frame is served, once.
  Start(6);
  ASSERT_EQ(s_.PeekTx(0, f, 4), 1);
  EXPECT_EQ(Tag(f[0]), 0xa6);
  s_.ReleaseTx(0, 1);
  EXPECT_EQ(UsedIdx(), 7);
  EXPECT_EQ(s_.PeekTx(0, f, 4), 0);
  EXPECT_FALSE(s_.broken());
}

// The migration duplicate: the dataplane peeked a TX frame and is
// delivering it when GET_VRING_BASE arrives. The stop waits for its
// ReleaseTx, so the base counts it as consumed and the restarted ring (on
// this agent or, after a migration, on another) does not send it again.
// A wait far longer than the test needs: the stop must not answer before
// the release however slowly this machine runs the test.
class VhostSessionTxPatientTest : public VhostSessionTxTest {
 protected:
  VhostSessionTxPatientTest() : VhostSessionTxTest(60000) {}
};

TEST_F(VhostSessionTxPatientTest, GetVringBaseWaitsForPeekedFramesToBeReleased) {
  // The RX ring too, so that QueueReady(0) turns false exactly when the
  // stop takes the TX ring off the dataplane.
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 0, 8).ok());
  npa_vhost_vring_addr rx{0, 0, 0x103000, 0x104000, 0x105000, 0};
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &rx, 40).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 0, One(UniqueFd(eventfd(0, 0)))).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_ENABLE, 0, 1).ok());
  Start(0);
  ASSERT_TRUE(s_.QueueReady(0));
  Post(0, 0xb0);
  GuestFrame f[4];
  ASSERT_EQ(s_.PeekTx(0, f, 4), 1);  // the dataplane holds it, delivering
  std::atomic<bool> answered{false};
  absl::Status st;
  std::thread stop([&] {
    st = DoState(NPA_VHOST_USER_GET_VRING_BASE, 1, 0);
    answered = true;
  });
  // Once stopping, the ring hands out nothing new, and the stop has not
  // answered while the frame is still out.
  Post(1, 0xb1);
  for (int i = 0; i < 20000 && s_.QueueReady(0); i++) usleep(1000);
  ASSERT_FALSE(s_.QueueReady(0));
  EXPECT_EQ(s_.PeekTx(0, f + 1, 3), 0);
  EXPECT_FALSE(answered.load());
  s_.ReleaseTx(0, 1);  // delivered
  stop.join();
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(reply_.payload.state.num, 1u);  // 0xb0 consumed, 0xb1 not
  EXPECT_EQ(UsedIdx(), 1);
  Start(1);
  ASSERT_EQ(s_.PeekTx(0, f, 4), 1);
  EXPECT_EQ(Tag(f[0]), 0xb1);  // 0xb0 is not read again
  s_.ReleaseTx(0, 1);
  EXPECT_EQ(UsedIdx(), 2);
  EXPECT_FALSE(s_.broken());
}

// A dataplane that never releases (stuck, or loopback keeping frames) does
// not hold the control thread: after the bounded wait the frame is left
// unconsumed, read again on restart, and its late release is ignored.
TEST_F(VhostSessionTxTest, GetVringBaseGivesUpOnAFrameNeverReleased) {
  Start(0);
  Post(0, 0xc0);
  GuestFrame f[4];
  ASSERT_EQ(s_.PeekTx(0, f, 4), 1);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(DoState(NPA_VHOST_USER_GET_VRING_BASE, 1, 0).ok());
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(90));  // it did wait (100 ms)
  EXPECT_LT(waited, std::chrono::seconds(30));      // and gave up
  EXPECT_EQ(reply_.payload.state.num, 0u);
  s_.ReleaseTx(0, 1);  // late: swallowed
  EXPECT_EQ(UsedIdx(), 0);
  Start(0);
  ASSERT_EQ(s_.PeekTx(0, f, 4), 1);
  EXPECT_EQ(Tag(f[0]), 0xc0);
  s_.ReleaseTx(0, 1);
  EXPECT_EQ(UsedIdx(), 1);
  EXPECT_FALSE(s_.broken());
}

size_t OpenFds() {
  size_t n = 0;
  for (int fd = 0; fd < 65536; fd++) n += fcntl(fd, F_GETFD) >= 0;
  return n;
}

// A guest that replaces its kick fd again and again (also while the
// dataplane holds duplicates) makes the back end hold no more fds.
TEST_F(VhostSessionTest, ReplacedKickFdsAreClosedNotAccumulated) {
  OwnFeaturesMem();
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, 1, 256).ok());
  npa_vhost_vring_addr a{1, 0, 0x100000, 0x102000, 0x101000, 0};
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(UniqueFd(eventfd(0, 0)))).ok());
  ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_ENABLE, 1, 1).ok());
  std::vector<UniqueFd> dups = s_.NotifyFds();  // the dataplane's copies
  ASSERT_EQ(dups.size(), 1u);
  const size_t before = OpenFds();
  for (int i = 0; i < 3000; i++) {
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, 1, One(UniqueFd(eventfd(0, 0)))).ok()) << i;
    if (i % 500 == 0) dups = s_.NotifyFds();  // the dataplane re-syncs now and then
  }
  dups = s_.NotifyFds();
  EXPECT_EQ(OpenFds(), before);
  EXPECT_EQ(dups.size(), 1u);
}

// QEMU 7.2's vhost-user-net order, as the agent logged it (tests/vm,
// docs/vm.md): the protocol features are set at connect, the rings are
// enabled at device reset (before the guest's driver sets the features),
// and the start sends no SET_VRING_ENABLE after the kicks. The rings must
// be live after that start; refusing the early enable closed QEMU's session.
TEST_F(VhostSessionTest, QemuEnablesRingsBeforeSetFeatures) {
  const uint64_t proto = (1ull << NPA_VHOST_USER_PROTOCOL_F_MQ) |
                         (1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK) |
                         (1ull << NPA_VHOST_USER_PROTOCOL_F_STATUS);
  ASSERT_TRUE(Do(NPA_VHOST_USER_GET_FEATURES, nullptr, 0).ok());
  ASSERT_TRUE(Do(NPA_VHOST_USER_GET_PROTOCOL_FEATURES, nullptr, 0).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_PROTOCOL_FEATURES, proto).ok());
  ASSERT_TRUE(Do(NPA_VHOST_USER_GET_QUEUE_NUM, nullptr, 0).ok());
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  for (uint32_t v = 0; v < 2; v++) {
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_CALL, v, One(UniqueFd(eventfd(0, 0)))).ok());
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_ERR, v, One(UniqueFd(eventfd(0, 0)))).ok());
  }
  // Device reset: enable, before any SET_FEATURES.
  for (uint32_t v = 0; v < 2; v++) {
    absl::Status st = DoState(NPA_VHOST_USER_SET_VRING_ENABLE, v, 1);
    ASSERT_TRUE(st.ok()) << st;
  }
  // The driver's DRIVER_OK: features, status, memory, then each ring.
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_FEATURES, (1ull << VIRTIO_F_VERSION_1) |
                                                     (1ull << VIRTIO_NET_F_MRG_RXBUF) |
                                                     (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES)).ok());
  ASSERT_TRUE(Do(NPA_VHOST_USER_GET_STATUS, nullptr, 0).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_STATUS, 0x7).ok());
  npa_vhost_memory m{};
  m.nregions = 1;
  m.regions[0] = {0x100000, 0x100000, 0x100000, 0};
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_MEM_TABLE, &m, 40, One(MemFd(0x100000)),
                 NPA_VHOST_USER_VERSION | NPA_VHOST_USER_FLAG_NEED_REPLY).ok());
  EXPECT_EQ(reply_.payload.u64, 0u);  // REPLY_ACK: accepted
  for (uint32_t v = 0; v < 2; v++) {
    const uint64_t at = 0x100000 + v * 0x4000;
    ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_NUM, v, 256).ok());
    ASSERT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_BASE, v, 0).ok());
    npa_vhost_vring_addr a{v, 0, at, at + 0x2000, at + 0x1000, 0};
    ASSERT_TRUE(Do(NPA_VHOST_USER_SET_VRING_ADDR, &a, 40).ok());
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, v, One(UniqueFd(eventfd(0, 0)))).ok());
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_CALL, v, One(UniqueFd(eventfd(0, 0)))).ok());
  }
  EXPECT_TRUE(s_.QueueReady(0));
  // Stop (QEMU: SET_STATUS 0, GET_VRING_BASE on each ring), then the
  // driver's next start: the enable state carried over, ready again.
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_STATUS, 0).ok());
  for (uint32_t v = 0; v < 2; v++) ASSERT_TRUE(DoState(NPA_VHOST_USER_GET_VRING_BASE, v, 0).ok());
  EXPECT_FALSE(s_.QueueReady(0));
  for (uint32_t v = 0; v < 2; v++)
    ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_VRING_KICK, v, One(UniqueFd(eventfd(0, 0)))).ok());
  EXPECT_TRUE(s_.QueueReady(0));
}

// Without F_PROTOCOL_FEATURES in either form (acked, or SET_PROTOCOL_FEATURES
// sent) a ring cannot be enabled: the front end did not negotiate ring
// enabling, and the refusal says so. RESET_OWNER forgets the negotiation.
TEST_F(VhostSessionTest, SetVringEnableNeedsProtocolFeaturesInSomeForm) {
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  absl::Status st = DoState(NPA_VHOST_USER_SET_VRING_ENABLE, 0, 1);
  EXPECT_NE(Msg(st).find("without VHOST_USER_F_PROTOCOL_FEATURES"), std::string::npos) << st;
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_PROTOCOL_FEATURES, 0).ok());
  EXPECT_TRUE(DoState(NPA_VHOST_USER_SET_VRING_ENABLE, 0, 1).ok());
  ASSERT_TRUE(Do(NPA_VHOST_USER_RESET_OWNER, nullptr, 0).ok());
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  EXPECT_FALSE(DoState(NPA_VHOST_USER_SET_VRING_ENABLE, 0, 1).ok());
}

TEST_F(VhostSessionTest, ReplyAckAcksAndNacks) {
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_OWNER, nullptr, 0).ok());
  ASSERT_TRUE(DoU64(NPA_VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK).ok());
  npa_vhost_vring_state st{0, 256};
  ASSERT_TRUE(Do(NPA_VHOST_USER_SET_VRING_NUM, &st, 8, {}, 1 | NPA_VHOST_USER_FLAG_NEED_REPLY).ok());
  EXPECT_TRUE(reply_.send);
  EXPECT_EQ(reply_.payload.u64, 0u);
  st.num = 3;
  EXPECT_FALSE(Do(NPA_VHOST_USER_SET_VRING_NUM, &st, 8, {}, 1 | NPA_VHOST_USER_FLAG_NEED_REPLY).ok());
  EXPECT_TRUE(reply_.send);
  EXPECT_EQ(reply_.payload.u64, 1u);
}

// Control-protocol guests get require_sealed_memory (control_server.cc): an
// unsealed SET_MEM_TABLE fd is refused, naming the region; a shrink-sealed
// one is accepted. Off (the default, for
// DPDK/QEMU), the same unsealed fd is accepted.
TEST(VhostSessionSealTest, RequireSealedMemoryGatesSetMemTable) {
  auto own = [](VhostSession& s) {
    VhostReply rep;
    VhostMessage m;
    m.hdr = {NPA_VHOST_USER_SET_OWNER, NPA_VHOST_USER_VERSION, 0};
    ASSERT_TRUE(s.Handle(std::move(m), &rep).ok());
  };
  auto mem_table = [](VhostSession& s, UniqueFd fd) {
    npa_vhost_memory mt{};
    mt.nregions = 1;
    mt.regions[0] = {0x100000, 0x10000, 0x100000, 0};
    VhostMessage m;
    m.hdr = {NPA_VHOST_USER_SET_MEM_TABLE, NPA_VHOST_USER_VERSION, 40};
    std::memcpy(&m.payload, &mt, 40);
    m.fds.push_back(std::move(fd));
    VhostReply rep;
    return s.Handle(std::move(m), &rep);
  };
  auto memfd = [](bool seal) {
    UniqueFd fd(memfd_create("sess-seal", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    EXPECT_EQ(ftruncate(fd.get(), 0x10000), 0);
    if (seal) {
      EXPECT_EQ(fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    }
    return fd;
  };
  {
    VhostSession s({.name = "sealed-guest", .require_sealed_memory = true});
    own(s);
    absl::Status st = mem_table(s, memfd(false));
    EXPECT_FALSE(st.ok());
    EXPECT_NE(std::string(st.message()).find("region 0 fd is not sealed against shrinking"),
              std::string::npos)
        << st;
    st = mem_table(s, memfd(true));
    EXPECT_TRUE(st.ok()) << st;
  }
  {
    VhostSession s({.name = "dpdk-guest"});
    own(s);
    absl::Status st = mem_table(s, memfd(false));
    EXPECT_TRUE(st.ok()) << st;
  }
}

}  // namespace
}  // namespace npa::agent
