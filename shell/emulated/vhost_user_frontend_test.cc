// Front-end message handling against a scripted fake back end on a
// socketpair: a good session, then replies that are wrong in every way the
// front end checks.
#include "shell/emulated/vhost_user_frontend.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "common/unix_socket.h"
#include "gtest/gtest.h"
#include "npa/virtio_ring.h"

namespace npa::shell {
namespace {

struct Msg {
  npa_vhost_user_hdr h{};
  std::vector<uint8_t> payload;
  size_t nfds = 0;
};

// Reads one front-end message (header, payload, fds) from s.
bool ReadMsg(int s, Msg* m) {
  std::vector<UniqueFd> fds;
  if (!RecvExact(s, &m->h, sizeof m->h, &fds, 2000).ok()) return false;
  m->payload.resize(m->h.size);
  if (m->h.size && !RecvExact(s, m->payload.data(), m->h.size, &fds, 2000).ok()) return false;
  m->nfds = fds.size();
  return true;
}

void Reply(int s, uint32_t req, const void* p, uint32_t size, uint32_t flags = 0x5) {
  npa_vhost_user_hdr h{req, flags, size};
  iovec iov[2] = {{&h, sizeof h}, {const_cast<void*>(p), size}};
  (void)SendWithFds(s, iov, size ? 2 : 1, {});
}

// A back end that answers correctly, except where `tamper` says otherwise.
// tamper(request) returns true if it has replied (or deliberately not).
class FakeBackend {
 public:
  using Tamper = std::function<bool(int s, const Msg& m)>;
  FakeBackend(uint64_t features, uint64_t protocol, uint64_t queues, Tamper tamper = nullptr)
      : features_(features), protocol_(protocol), queues_(queues), tamper_(std::move(tamper)) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    front_.reset(sv[0]);
    back_.reset(sv[1]);
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeBackend() {
    shutdown(back_.get(), SHUT_RDWR);
    thread_.join();
  }
  UniqueFd TakeFront() { return std::move(front_); }
  std::vector<Msg> log;

 private:
  void Run() {
    Msg m;
    while (ReadMsg(back_.get(), &m)) {
      log.push_back(m);
      if (tamper_ && tamper_(back_.get(), m)) continue;
      uint64_t v = 0;
      switch (m.h.request) {
        case NPA_VHOST_USER_GET_FEATURES: v = features_; break;
        case NPA_VHOST_USER_GET_PROTOCOL_FEATURES: v = protocol_; break;
        case NPA_VHOST_USER_GET_QUEUE_NUM: v = queues_; break;
        default:
          if (m.h.flags & NPA_VHOST_USER_FLAG_NEED_REPLY) Reply(back_.get(), m.h.request, &v, 8);
          continue;
      }
      Reply(back_.get(), m.h.request, &v, 8);
    }
  }
  uint64_t features_, protocol_, queues_;
  Tamper tamper_;
  UniqueFd front_, back_;
  std::thread thread_;
};

constexpr uint64_t kNetFeatures =
    (1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_NET_F_MRG_RXBUF) |
    (1ull << NPA_VIRTIO_NET_F_MQ) | (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES);
constexpr uint64_t kProto = (1ull << NPA_VHOST_USER_PROTOCOL_F_MQ) |
                            (1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK) |
                            (1ull << NPA_VHOST_USER_PROTOCOL_F_CONFIG);

TEST(VhostUserFrontendTest, GoodSessionNegotiatesIntersection) {
  FakeBackend be(kNetFeatures | (1ull << NPA_VIRTIO_NET_F_GUEST_TSO4), kProto, 4);
  VhostUserFrontend fe(be.TakeFront(), 2000);
  uint64_t want = (1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_NET_F_MRG_RXBUF) |
                  (1ull << NPA_VIRTIO_NET_F_CSUM) | (1ull << NPA_VIRTIO_NET_F_MQ);
  ASSERT_TRUE(fe.Negotiate(want, 2).ok());
  EXPECT_EQ(fe.features(), (1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_NET_F_MRG_RXBUF) |
                               (1ull << NPA_VIRTIO_NET_F_MQ) |
                               (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES))
      << "CSUM not offered, GUEST_TSO4 not wanted";
  EXPECT_EQ(fe.protocol_features(), kProto & ~(1ull << NPA_VHOST_USER_PROTOCOL_F_CONFIG));
  EXPECT_EQ(fe.max_queue_pairs(), 4);
  int memfd = eventfd(0, EFD_CLOEXEC);  // any fd will do for the wire test
  MemRegion r{0x10000, 0x20000, memfd};
  ASSERT_TRUE(fe.SetMemTable({&r, 1}).ok());
  int k = eventfd(0, EFD_CLOEXEC), c = eventfd(0, EFD_CLOEXEC);
  ASSERT_TRUE(fe.SetupVring(1, 256, {0x10000, 0x11000, 0x12000}, k, c).ok());
  ASSERT_TRUE(fe.EnableVring(1, true).ok());
  close(memfd);
  close(k);
  close(c);
  // What went over the wire.
  std::vector<uint32_t> reqs;
  const Msg* mem = nullptr;
  for (auto& m : be.log) {
    reqs.push_back(m.h.request);
    if (m.h.request == NPA_VHOST_USER_SET_MEM_TABLE) mem = &m;
    if (m.h.request == NPA_VHOST_USER_SET_VRING_KICK || m.h.request == NPA_VHOST_USER_SET_VRING_CALL) {
      EXPECT_EQ(m.nfds, 1u);
    }
  }
  ASSERT_GE(reqs.size(), 6u);
  EXPECT_EQ(reqs[0], NPA_VHOST_USER_SET_OWNER);
  EXPECT_EQ(reqs[1], NPA_VHOST_USER_GET_FEATURES);
  ASSERT_NE(mem, nullptr);
  EXPECT_EQ(mem->nfds, 1u);
  EXPECT_EQ(mem->h.size, 8u + 32u);
  EXPECT_TRUE(mem->h.flags & NPA_VHOST_USER_FLAG_NEED_REPLY) << "REPLY_ACK negotiated";
  npa_vhost_memory_region reg;
  memcpy(&reg, mem->payload.data() + 8, sizeof reg);
  EXPECT_EQ(reg.guest_phys_addr, 0x10000u);
  EXPECT_EQ(reg.userspace_addr, 0x10000u);
  EXPECT_EQ(reg.memory_size, 0x20000u);
  EXPECT_EQ(reg.mmap_offset, 0u);
}

// Pipelined (a resume): no SET_* asks for an ack, every message still goes
// out, in order, with its fds, and Sync's GET_FEATURES is the one barrier.
// A back end that drops the session at a refused request fails the batch at
// Sync, naming it.
TEST(VhostUserFrontendTest, PipelinedRequestsWaitForNoAckAndSyncEndsThem) {
  FakeBackend be(kNetFeatures, kProto, 4);
  VhostUserFrontend fe(be.TakeFront(), 2000);
  fe.set_pipelined(true);
  ASSERT_TRUE(fe.Negotiate((1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_NET_F_MRG_RXBUF), 1).ok());
  int memfd = eventfd(0, EFD_CLOEXEC);
  MemRegion r{0x10000, 0x20000, memfd};
  ASSERT_TRUE(fe.SetMemTable({&r, 1}).ok());
  int k = eventfd(0, EFD_CLOEXEC), c = eventfd(0, EFD_CLOEXEC);
  for (uint32_t v : {0u, 1u}) {
    ASSERT_TRUE(fe.SetupVring(v, 256, {0x10000, 0x11000, 0x12000}, k, c, 77).ok());
    ASSERT_TRUE(fe.EnableVring(v, true).ok());
  }
  ASSERT_TRUE(fe.Sync().ok());
  close(memfd);
  close(k);
  close(c);
  std::vector<uint32_t> sets;
  for (auto& m : be.log) {
    const uint32_t q = m.h.request;
    if (q == NPA_VHOST_USER_GET_FEATURES || q == NPA_VHOST_USER_GET_PROTOCOL_FEATURES ||
        q == NPA_VHOST_USER_GET_QUEUE_NUM)
      continue;
    sets.push_back(q);
    EXPECT_FALSE(m.h.flags & NPA_VHOST_USER_FLAG_NEED_REPLY) << VhostUserRequestName(q);
  }
  const std::vector<uint32_t> want = {
      NPA_VHOST_USER_SET_OWNER, NPA_VHOST_USER_SET_PROTOCOL_FEATURES, NPA_VHOST_USER_SET_FEATURES,
      NPA_VHOST_USER_SET_MEM_TABLE,
      NPA_VHOST_USER_SET_VRING_NUM, NPA_VHOST_USER_SET_VRING_BASE, NPA_VHOST_USER_SET_VRING_ADDR,
      NPA_VHOST_USER_SET_VRING_KICK, NPA_VHOST_USER_SET_VRING_CALL, NPA_VHOST_USER_SET_VRING_ENABLE,
      NPA_VHOST_USER_SET_VRING_NUM, NPA_VHOST_USER_SET_VRING_BASE, NPA_VHOST_USER_SET_VRING_ADDR,
      NPA_VHOST_USER_SET_VRING_KICK, NPA_VHOST_USER_SET_VRING_CALL, NPA_VHOST_USER_SET_VRING_ENABLE};
  EXPECT_EQ(sets, want);
  EXPECT_EQ(be.log.back().h.request, NPA_VHOST_USER_GET_FEATURES) << "Sync is the last message";

  // The back end drops the session at SET_VRING_ADDR: the batch fails at Sync.
  FakeBackend refusing(kNetFeatures, kProto, 4, [](int s, const Msg& m) {
    if (m.h.request == NPA_VHOST_USER_SET_VRING_ADDR) shutdown(s, SHUT_RDWR);
    return false;
  });
  VhostUserFrontend fe2(refusing.TakeFront(), 2000);
  fe2.set_pipelined(true);
  ASSERT_TRUE(fe2.Negotiate(1ull << NPA_VIRTIO_F_VERSION_1, 1).ok());
  int k2 = eventfd(0, EFD_CLOEXEC), c2 = eventfd(0, EFD_CLOEXEC);
  absl::Status st = fe2.SetupVring(0, 256, {0x10000, 0x11000, 0x12000}, k2, c2);
  if (st.ok()) st = fe2.Sync();
  close(k2);
  close(c2);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("vhost-user"), std::string::npos) << st;
}

struct BadCase {
  const char* name;
  std::function<bool(int, const Msg&)> tamper;
  absl::StatusCode code;
  const char* needle;
};

TEST(VhostUserFrontendTest, MalformedRepliesGiveClearErrors) {
  const uint64_t feat = kNetFeatures;
  auto on_features = [](std::function<void(int)> act) {
    return [act](int s, const Msg& m) {
      if (m.h.request != NPA_VHOST_USER_GET_FEATURES) return false;
      act(s);
      return true;
    };
  };
  std::vector<BadCase> cases = {
      {"wrong request code", on_features([&](int s) { Reply(s, NPA_VHOST_USER_GET_QUEUE_NUM, &feat, 8); }),
       absl::StatusCode::kDataLoss, "request code"},
      {"short payload", on_features([&](int s) { Reply(s, NPA_VHOST_USER_GET_FEATURES, &feat, 4); }),
       absl::StatusCode::kDataLoss, "payload of 4 bytes"},
      {"no reply flag", on_features([&](int s) { Reply(s, NPA_VHOST_USER_GET_FEATURES, &feat, 8, 0x1); }),
       absl::StatusCode::kDataLoss, "reply flag"},
      {"bad version", on_features([&](int s) { Reply(s, NPA_VHOST_USER_GET_FEATURES, &feat, 8, 0x6); }),
       absl::StatusCode::kDataLoss, "version"},
      {"silence", on_features([](int) {}), absl::StatusCode::kDeadlineExceeded, "GET_FEATURES"},
      {"hang up", on_features([](int s) { shutdown(s, SHUT_RDWR); }), absl::StatusCode::kAborted, "closed"},
      {"no VERSION_1", on_features([](int s) {
         uint64_t v = 1ull << NPA_VIRTIO_NET_F_MRG_RXBUF;
         Reply(s, NPA_VHOST_USER_GET_FEATURES, &v, 8);
       }),
       absl::StatusCode::kFailedPrecondition, "VERSION_1"},
      {"queue count 0",
       [](int s, const Msg& m) {
         if (m.h.request != NPA_VHOST_USER_GET_QUEUE_NUM) return false;
         uint64_t v = 0;
         Reply(s, m.h.request, &v, 8);
         return true;
       },
       absl::StatusCode::kDataLoss, "queue count 0"},
      {"ack says failure",
       [](int s, const Msg& m) {
         if (m.h.request != NPA_VHOST_USER_SET_FEATURES) return false;
         uint64_t v = 1;
         Reply(s, m.h.request, &v, 8);
         return true;
       },
       absl::StatusCode::kFailedPrecondition, "rejected SET_FEATURES"},
  };
  for (auto& c : cases) {
    FakeBackend be(feat, kProto, 4, c.tamper);
    VhostUserFrontend fe(be.TakeFront(), 300);
    absl::Status s =
        fe.Negotiate((1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_NET_F_MQ), 2);
    EXPECT_EQ(s.code(), c.code) << c.name << ": " << s;
    EXPECT_NE(s.message().find(c.needle), std::string::npos) << c.name << ": " << s;
  }
}

TEST(VhostUserFrontendTest, TooManyQueuePairsRequested) {
  FakeBackend be(kNetFeatures, kProto, 1);
  VhostUserFrontend fe(be.TakeFront(), 1000);
  absl::Status s =
      fe.Negotiate((1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_NET_F_MQ), 2);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
}

TEST(VhostUserFrontendTest, WithoutProtocolFeaturesOnlyOneQueuePair) {
  FakeBackend be((1ull << NPA_VIRTIO_F_VERSION_1), 0, 0);
  VhostUserFrontend fe(be.TakeFront(), 1000);
  ASSERT_TRUE(fe.Negotiate(1ull << NPA_VIRTIO_F_VERSION_1, 1).ok());
  EXPECT_EQ(fe.max_queue_pairs(), 1);
  EXPECT_TRUE(fe.EnableVring(0, true).ok()) << "rings start enabled: nothing to send";
  for (auto& m : be.log) EXPECT_NE(m.h.request, NPA_VHOST_USER_GET_PROTOCOL_FEATURES);
}

TEST(VhostUserFrontendTest, GetVringBaseValidatesIndex) {
  FakeBackend be(kNetFeatures, kProto, 4, [](int s, const Msg& m) {
    if (m.h.request != NPA_VHOST_USER_GET_VRING_BASE) return false;
    npa_vhost_vring_state st{7, 5};  // wrong ring
    Reply(s, m.h.request, &st, sizeof st);
    return true;
  });
  VhostUserFrontend fe(be.TakeFront(), 1000);
  ASSERT_TRUE(fe.Negotiate(1ull << NPA_VIRTIO_F_VERSION_1, 1).ok());
  auto r = fe.GetVringBase(1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
}

TEST(VhostUserFrontendTest, RepliesCarryingFdsAreRejected) {
  FakeBackend be(kNetFeatures, kProto, 4, [](int s, const Msg& m) {
    if (m.h.request != NPA_VHOST_USER_GET_FEATURES) return false;
    uint64_t v = kNetFeatures;
    npa_vhost_user_hdr h{m.h.request, 0x5, 8};
    iovec iov[2] = {{&h, sizeof h}, {&v, 8}};
    int fd = eventfd(0, EFD_CLOEXEC);
    int fds[1] = {fd};
    (void)SendWithFds(s, iov, 2, fds);
    close(fd);
    return true;
  });
  VhostUserFrontend fe(be.TakeFront(), 1000);
  absl::Status s = fe.Negotiate(1ull << NPA_VIRTIO_F_VERSION_1, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("unexpected fds"), std::string::npos) << s;
}

}  // namespace
}  // namespace npa::shell
