#include "hypervisor/vhost/vhost_device.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "gtest/gtest.h"
#include "tests/support/test_frontend.h"

namespace npa::agent {
namespace {

// Wait (bounded) until pred holds.
template <typename F>
bool WaitFor(F pred, int ms = 3000) {
  for (int i = 0; i < ms; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

struct Pair {
  std::unique_ptr<VhostDevice> dev;
  std::unique_ptr<TestFrontend> fe;
};

Pair MakePair(TestFrontend::Config cfg = {}, VhostDevice::Options opts = {.name = "g1"}) {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  Pair p;
  p.dev = *VhostDevice::Create(UniqueFd(sv[0]), opts);
  p.fe = *TestFrontend::Create(UniqueFd(sv[1]), cfg);
  return p;
}

TEST(VhostDeviceTest, CreateRejectsBadOptions) {
  EXPECT_FALSE(VhostDevice::Create(UniqueFd(), {.name = "x"}).ok());
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  close(sv[1]);
  EXPECT_FALSE(VhostDevice::Create(UniqueFd(dup(sv[0])), {.name = "x", .max_queue_pairs = 0}).ok());
  EXPECT_FALSE(
      VhostDevice::Create(UniqueFd(dup(sv[0])),
                          {.name = "x", .features = 1ull << NPA_VIRTIO_F_RING_INDIRECT_DESC})
          .ok());
  close(sv[0]);
}

TEST(VhostDeviceTest, TxFramesReachTheDataplaneAndReturn) {
  Pair p = MakePair();
  DevicePump pump({p.dev.get()});
  ASSERT_TRUE(p.fe->Handshake().ok());
  ASSERT_TRUE(WaitFor([&] { return p.dev->QueueReady(0); }));
  EXPECT_EQ(p.dev->num_queue_pairs(), 1);
  std::string a(60, 'a'), b(3000, 'b'), c(100, 'c');
  ASSERT_TRUE(p.fe->SendFrame(0, a.data(), a.size()));
  ASSERT_TRUE(p.fe->SendFrame(0, b.data(), b.size()));          // spans 2 buffers
  ASSERT_TRUE(p.fe->SendFrame(0, c.data(), c.size(), true));    // header in its own descriptor
  GuestFrame f[8];
  ASSERT_EQ(p.dev->PeekTx(0, f, 8), 3);
  auto flat = [](const GuestFrame& g) {
    std::string s;
    for (int i = 0; i < g.nsegs; ++i) s.append(static_cast<char*>(g.segs[i].iov_base), g.segs[i].iov_len);
    return s;
  };
  EXPECT_EQ(flat(f[0]), a);
  EXPECT_EQ(flat(f[1]), b);
  EXPECT_EQ(f[1].nsegs, 2);
  EXPECT_EQ(flat(f[2]), c);
  EXPECT_EQ(f[2].len, 100u);
  EXPECT_EQ(p.fe->ReapTx(0), 0u);
  p.dev->ReleaseTx(0, 3);
  EXPECT_EQ(p.fe->ReapTx(0), 3u);
  QueueCounters qc = p.dev->counters(0);
  EXPECT_EQ(qc.tx_packets, 3u);
  EXPECT_EQ(qc.tx_bytes, 3160u);
  EXPECT_FALSE(p.dev->broken());
}

TEST(VhostDeviceTest, RxFramesAreCopiedMergeable) {
  Pair p = MakePair();
  DevicePump pump({p.dev.get()});
  ASSERT_TRUE(p.fe->Handshake().ok());
  ASSERT_TRUE(WaitFor([&] { return p.dev->QueueReady(0); }));
  p.fe->FillRx(0);
  std::string small(64, 's'), big(5000, 0);
  for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 7);
  // The big frame comes as two segments (as from another guest's chain).
  iovec segs[2] = {{big.data(), 1000}, {big.data() + 1000, 4000}};
  iovec s1{small.data(), small.size()};
  npa_virtio_net_hdr_v1 h{};
  h.flags = NPA_VIRTIO_NET_HDR_F_DATA_VALID;
  PacketRef pk[2] = {{&h, &s1, 1, 64}, {nullptr, segs, 2, 5000}};
  ASSERT_EQ(p.dev->EnqueueRx(0, pk, 2), 2);
  std::string got;
  npa_virtio_net_hdr_v1 gh;
  ASSERT_TRUE(p.fe->RecvFrame(0, &got, &gh));
  EXPECT_EQ(got, small);
  EXPECT_EQ(gh.flags, NPA_VIRTIO_NET_HDR_F_DATA_VALID);
  EXPECT_EQ(gh.num_buffers, 1);
  ASSERT_TRUE(p.fe->RecvFrame(0, &got, &gh));
  EXPECT_EQ(got, big);
  EXPECT_EQ(gh.num_buffers, 3);
  EXPECT_EQ(p.dev->counters(0).rx_packets, 2u);
}

TEST(VhostDeviceTest, MultiQueueAndVringBase) {
  TestFrontend::Config cfg;
  cfg.queue_pairs = 2;
  cfg.queue_size = 64;
  Pair p = MakePair(cfg, {.name = "mq", .max_queue_pairs = 4});
  DevicePump pump({p.dev.get()});
  ASSERT_TRUE(p.fe->Handshake().ok());
  ASSERT_TRUE(WaitFor([&] { return p.dev->QueueReady(0) && p.dev->QueueReady(1); }));
  EXPECT_EQ(p.dev->num_queue_pairs(), 4);
  EXPECT_FALSE(p.dev->QueueReady(2));
  char x[80] = {};
  ASSERT_TRUE(p.fe->SendFrame(1, x, sizeof(x)));
  GuestFrame f[2];
  EXPECT_EQ(p.dev->PeekTx(0, f, 2), 0);
  ASSERT_EQ(p.dev->PeekTx(1, f, 2), 1);
  p.dev->ReleaseTx(1, 1);
  auto base = p.fe->GetVringBase(3);
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_EQ(*base, 1u);
  EXPECT_FALSE(p.dev->QueueReady(1));
  EXPECT_EQ(p.dev->PeekTx(1, f, 2), 0);
}

TEST(VhostDeviceTest, NewMemTableWhileFramesInFlightKeepsThemMapped) {
  Pair p = MakePair();
  DevicePump pump({p.dev.get()});
  ASSERT_TRUE(p.fe->Handshake().ok());
  ASSERT_TRUE(WaitFor([&] { return p.dev->QueueReady(0); }));
  std::string a(200, 'q');
  ASSERT_TRUE(p.fe->SendFrame(0, a.data(), a.size()));
  GuestFrame f[1];
  ASSERT_EQ(p.dev->PeekTx(0, f, 1), 1);
  // Same memory again: the back end maps it anew and drops its old mapping,
  // except that the in-flight frame still points into it.
  npa_vhost_memory m{};
  m.nregions = 1;
  m.regions[0] = {p.fe->gpa(p.fe->mem()), p.fe->mem_size(), p.fe->gpa(p.fe->mem()), 0};
  const int mfd = p.fe->memfd();
  ASSERT_TRUE(p.fe->Send(NPA_VHOST_USER_SET_MEM_TABLE, &m, 40, {&mfd, 1}).ok());
  ASSERT_TRUE(p.fe->Send(NPA_VHOST_USER_GET_FEATURES, nullptr, 0).ok());
  ASSERT_TRUE(p.fe->Recv().ok());  // the table was handled before this reply
  EXPECT_EQ(std::string(static_cast<char*>(f[0].segs[0].iov_base), f[0].len), a);
  p.dev->ReleaseTx(0, 1);
  EXPECT_EQ(p.fe->ReapTx(0), 1u);
  ASSERT_TRUE(p.fe->SendFrame(0, a.data(), a.size()));  // rings work through the new mapping
  ASSERT_EQ(p.dev->PeekTx(0, f, 1), 1);
  p.dev->ReleaseTx(0, 1);
  EXPECT_TRUE(pump.status(0).ok()) << pump.status(0);
}

TEST(VhostDeviceTest, SplitMessagesAreReassembled) {
  Pair p = MakePair();
  npa_vhost_user_hdr h{NPA_VHOST_USER_GET_FEATURES, 1, 0};
  // Header in two pieces, the device polled in between.
  ASSERT_TRUE(p.fe->SendRaw(&h, 5).ok());
  ASSERT_TRUE(p.dev->OnReadable().ok());
  ASSERT_TRUE(p.fe->SendRaw(reinterpret_cast<char*>(&h) + 5, 7).ok());
  ASSERT_TRUE(p.dev->OnReadable().ok());
  auto r = p.fe->Recv(1000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->payload.u64, kDefaultFeatures);
}

TEST(VhostDeviceTest, MalformedMessageAndCloseEndTheSession) {
  Pair p = MakePair();
  npa_vhost_user_hdr h{NPA_VHOST_USER_SET_FEATURES, 1, 5000};  // size > payload
  ASSERT_TRUE(p.fe->SendRaw(&h, sizeof(h)).ok());
  absl::Status s = p.dev->OnReadable();
  EXPECT_NE(std::string(s.message()).find("guest 'g1'"), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("payload size 5000"), std::string::npos) << s;

  Pair q = MakePair();
  int fd = q.fe->sock();
  shutdown(fd, SHUT_WR);
  EXPECT_TRUE(absl::IsAborted(q.dev->OnReadable()));
}

TEST(VhostDeviceTest, IdleNotifyControlsGuestKicks) {
  Pair p = MakePair();
  DevicePump pump({p.dev.get()});
  ASSERT_TRUE(p.fe->Handshake().ok());
  ASSERT_TRUE(WaitFor([&] { return p.dev->QueueReady(0); }));
  EXPECT_TRUE(p.fe->used(1)->flags & NPA_VRING_USED_F_NO_NOTIFY);  // polling by default
  std::vector<UniqueFd> fds = p.dev->NotifyFds();
  EXPECT_EQ(fds.size(), 2u);
  p.dev->SetIdleNotify(true);
  EXPECT_FALSE(p.fe->used(1)->flags & NPA_VRING_USED_F_NO_NOTIFY);
  char x[64] = {};
  ASSERT_TRUE(p.fe->SendFrame(0, x, sizeof(x)));
  uint64_t v = 0;
  bool kicked = false;
  for (const UniqueFd& fd : fds) kicked |= read(fd.get(), &v, 8) == 8;
  EXPECT_TRUE(kicked);
}

}  // namespace
}  // namespace npa::agent
