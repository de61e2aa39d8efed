// Two guests on one back end: guest "evil" runs one attack per test case
// while guest "good" streams sequence-numbered frames through the same
// dataplane thread. The evil session must end (closed by the control thread
// or marked broken on the data path) with a reason naming the violation, and
// the good guest must lose nothing.
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "gtest/gtest.h"
#include "tests/support/test_frontend.h"
#include "tests/hostile/evil_frontend.h"

namespace npa::agent {
namespace {

using Clock = std::chrono::steady_clock;

std::pair<std::unique_ptr<VhostDevice>, std::unique_ptr<TestFrontend>> Guest(const char* name) {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto dev = VhostDevice::Create(UniqueFd(sv[0]), {.name = name});
  auto fe = TestFrontend::Create(UniqueFd(sv[1]), {});
  EXPECT_TRUE(dev.ok() && fe.ok());
  return {std::move(*dev), std::move(*fe)};
}

// The dataplane role: echo each guest's TX back into its own RX, skipping
// broken devices (the owner would close them).
class Dataplane {
 public:
  explicit Dataplane(std::vector<VhostDevice*> devs) : devs_(std::move(devs)), t_([this] { Run(); }) {}
  ~Dataplane() {
    stop_ = true;
    t_.join();
  }

 private:
  void Run() {
    GuestFrame f[32];
    PacketRef r[32];
    while (!stop_) {
      for (VhostDevice* d : devs_) {
        if (d->broken() || !d->QueueReady(0)) continue;
        const uint16_t n = d->PeekTx(0, f, 32);
        for (uint16_t i = 0; i < n; ++i) r[i] = {&f[i].hdr, f[i].segs, f[i].nsegs, f[i].len};
        uint16_t done = 0;
        for (int k = 0; k < 1000 && done < n && !d->broken(); ++k) done += d->EnqueueRx(0, r + done, n - done);
        d->ReleaseTx(0, n);
      }
    }
  }
  std::vector<VhostDevice*> devs_;
  std::atomic<bool> stop_{false};
  std::thread t_;
};

class HostileTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HostileTest, EvilGuestIsCutOffGoodGuestLosesNothing) {
  const evil::Attack* attack = evil::FindAttack(GetParam());
  ASSERT_NE(attack, nullptr);
  auto [good_dev, good] = Guest("good");
  auto [evil_dev, bad] = Guest("evil");
  DevicePump pump({good_dev.get(), evil_dev.get()});
  Dataplane dp({good_dev.get(), evil_dev.get()});
  ASSERT_TRUE(good->Handshake().ok());
  good->FillRx(0);

  // Attack from a second thread while the good guest streams. The fd probe
  // counts this process's fds: back end and both front ends live here, and
  // the attacker closes its own copies, so growth is the back end's.
  evil::SetFdProbe([] { return evil::CountFds(0); });
  absl::Status attack_status;
  std::thread attacker([&, a = attack, fe = bad.get()] { attack_status = a->run(*fe); });

  constexpr uint32_t kFrames = 3000;
  uint32_t sent = 0, got = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  std::string frame, want;
  while (got < kFrames && Clock::now() < deadline) {
    good->ReapTx(0);
    while (sent < kFrames && sent - got < 64) {
      char buf[256];
      const uint32_t len = 60 + sent % 190;
      for (uint32_t i = 0; i < len; ++i) buf[i] = char(sent * 13 + i);
      std::memcpy(buf, &sent, 4);
      if (!good->SendFrame(0, buf, len)) break;
      ++sent;
    }
    while (good->RecvFrame(0, &frame)) {
      uint32_t seq;
      ASSERT_GE(frame.size(), 60u);
      std::memcpy(&seq, frame.data(), 4);
      ASSERT_EQ(seq, got) << "good guest lost or reordered a frame";
      const uint32_t len = 60 + seq % 190;
      ASSERT_EQ(frame.size(), len);
      for (uint32_t i = 4; i < len; ++i) ASSERT_EQ(frame[i], char(seq * 13 + i)) << "seq " << seq << " byte " << i;
      ++got;
    }
  }
  attacker.join();
  EXPECT_EQ(got, kFrames);
  EXPECT_FALSE(good_dev->broken()) << good_dev->broken_reason();
  EXPECT_TRUE(pump.status(0).ok()) << pump.status(0);

  if (attack->kind == evil::Attack::kSurvive) {
    // Legal but expensive: served throughout, no fds accumulated.
    EXPECT_TRUE(attack_status.ok()) << attack_status;
    EXPECT_FALSE(evil_dev->broken()) << evil_dev->broken_reason();
    EXPECT_TRUE(pump.status(1).ok()) << pump.status(1);
    return;
  }

  // The evil session ended: closed by the control thread or broken.
  std::string reason;
  for (int i = 0; i < 3000 && reason.empty(); ++i) {
    if (evil_dev->broken()) reason = evil_dev->broken_reason();
    else if (pump.closed(1)) reason = std::string(pump.status(1).message());
    else std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_FALSE(reason.empty()) << "attack '" << attack->name << "' was not detected";
  EXPECT_NE(reason.find("guest 'evil'"), std::string::npos) << reason;
  EXPECT_NE(reason.find(attack->expect), std::string::npos) << reason;
  if (attack->kind == evil::Attack::kRing) {
    EXPECT_TRUE(evil_dev->broken()) << reason;
  }
}

std::vector<std::string> AttackNames() {
  std::vector<std::string> v;
  for (const auto& a : evil::Attacks()) v.push_back(a.name);
  return v;
}

INSTANTIATE_TEST_SUITE_P(AllAttacks, HostileTest, ::testing::ValuesIn(AttackNames()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace npa::agent
