// The VF path end to end, without hardware (vf_switch_fixture.h): a guest
// thread sends sequence-numbered frames and checks that every one comes back
// exactly once across attach, planned revoke and REQ/ERR-triggered
// fallback; offers the shell must decline; a queue owner asleep in
// interrupt mode. The software offloads on a VF are in vf_offload_test.cc.
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <string>
#include <thread>

#include <array>
#include <cstring>
#include <span>

#include "common/announce.h"
#include "gtest/gtest.h"
#include "npa/shell.h"
#include "shell/vf/vf_switch.h"
#include "shell/shell_impl.h"
#include "shell/vf/vf_switch_fixture.h"

namespace npa::shell {
namespace {

// Stats sampled from another thread must never go backwards.
class MonotonicWatch {
 public:
  explicit MonotonicWatch(npa_shell* sh) : sh_(sh), t_([this] { Run(); }) {}
  ~MonotonicWatch() {
    stop_ = true;
    t_.join();
  }
  uint64_t regressions() const { return regressions_; }
  uint64_t samples() const { return samples_; }

 private:
  void Run() {
    npa_queue_stats prev{};
    for (int i = 0; i < 100000 && !stop_; i++) {
      npa_queue_stats s{};
      s.struct_size = sizeof s;
      if (npa_shell_queue_stats(sh_, UINT16_MAX, &s) != 0) break;
      const uint64_t* a = &s.rx_packets;
      const uint64_t* b = &prev.rx_packets;
      // Every counter from rx_packets to the end of the struct (tx_vf_lost too).
      constexpr size_t kFields = (sizeof(npa_queue_stats) - offsetof(npa_queue_stats, rx_packets)) / 8;
      static_assert(kFields == 15);
      for (size_t k = 0; k < kFields; k++)
        if (a[k] < b[k]) regressions_++;
      prev = s;
      samples_++;
      usleep(200);
    }
  }
  npa_shell* sh_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> regressions_{0}, samples_{0};
  std::thread t_;
};

TEST_F(VfSwitchTest, AttachTrafficPlannedRevokeLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  DrainEvents();
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  MonotonicWatch watch(sh_);
  ASSERT_TRUE(WaitFor([&] { return guest_->received() > 2000; }, 10000)) << "emulated traffic";

  control::VfAccept a = Offer(7, kLbVendor, kLbDevice);
  ASSERT_TRUE(a.accepted()) << a.reason();
  EXPECT_EQ(a.offer_id(), 7u);
  EXPECT_EQ(a.plugin(), "test_good");
  npa_event ev;
  ASSERT_TRUE(NextPathEvent(&ev, 2000));
  EXPECT_EQ(ev.u.path, NPA_PATH_VF);
  EXPECT_NE(std::string(ev.detail).find("test_good"), std::string::npos) << ev.detail;
  npa_shell_info in = Info();
  EXPECT_EQ(in.path, NPA_PATH_VF);
  EXPECT_STREQ(in.plugin, "test_good");
  {
    // Unchecked (the default): test_good counts its RX bytes
    // (NPA_PLUGIN_F_RX_BYTES) and its count is the one folded in.
    std::lock_guard<std::mutex> l(sh_->vf_mu);
    ASSERT_TRUE(sh_->vf != nullptr);
    EXPECT_TRUE(sh_->vf->plugin_rx_bytes());
  }
  // The loopback plug-in reflects on the VF now.
  const uint64_t vf0 = Stats(sh_).rx_vf_packets;
  ASSERT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > vf0 + 50000; }, 20000));
  EXPECT_GT(Stats(sh_).tx_vf_packets, 50000u);

  // Planned revoke in the middle of the traffic.
  const uint64_t before = guest_->received();
  control::RevokeDone d = Revoke(7, 2000);
  EXPECT_EQ(d.offer_id(), 7u);
  EXPECT_EQ(d.tx_inflight_lost(), 0u);
  ASSERT_TRUE(NextPathEvent(&ev, 2000));
  EXPECT_EQ(ev.u.path, NPA_PATH_EMULATED);
  in = Info();
  EXPECT_EQ(in.path, NPA_PATH_EMULATED);
  EXPECT_STREQ(in.plugin, "");
  const uint64_t emu0 = Stats(sh_).rx_emulated_packets;
  ASSERT_TRUE(WaitFor([&] { return Stats(sh_).rx_emulated_packets > emu0 + 20000; }, 20000));
  EXPECT_GT(guest_->received(), before);
  EXPECT_EQ(shared_->destroyed.load(), shared_->created.load()) << "the device was released";

  guest_->Finish();
  EXPECT_EQ(guest_->dups(), 0u);
  EXPECT_EQ(guest_->missing(), 0u) << "sent " << guest_->sent() << " received " << guest_->received()
                                  << " rx_dropped " << Stats(sh_).rx_dropped << " first missing "
                                  << guest_->first_missing() << " reflected "
                                  << backend_->reflected();
  npa_queue_stats st = Stats(sh_);
  EXPECT_EQ(st.announces, 0u) << "turned off by the fixture";
  EXPECT_EQ(st.tx_packets, guest_->sent());
  EXPECT_EQ(st.rx_packets, guest_->received());
  EXPECT_EQ(st.tx_packets, st.tx_vf_packets + st.tx_emulated_packets);
  EXPECT_EQ(st.rx_packets, st.rx_vf_packets + st.rx_emulated_packets);
  // Bytes exact across both switches: on the VF the plug-in counted the TX
  // bytes (NPA_PLUGIN_F_TX_BYTES), the shell everything else.
  EXPECT_EQ(st.tx_bytes, Guest::kFrameLen * st.tx_packets);
  EXPECT_EQ(st.rx_bytes, Guest::kFrameLen * st.rx_packets);
  EXPECT_GT(watch.samples(), 10u);
  EXPECT_EQ(watch.regressions(), 0u);
}

// After the switch to a VF, one RARP announcement with the guest's MAC goes
// out through the VF (a learning bridge moves the MAC to the VF's port at
// once), counted apart from the application's TX. The loopback plug-in
// reflects it, so it shows up on RX here.
TEST_F(VfSwitchTest, AnnouncesTheMacThroughTheVf) {
  SetAnnounceOnAttachForTest(true);
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  npa_rx_burst(sh_, 0, nullptr, 0);  // apply the start
  ASSERT_TRUE(Offer(9, kLbVendor, kLbDevice).accepted());
  npa_buf* r = nullptr;
  // This thread owns queue 0: its next burst applies the VF's ops and sends
  // the announcement through them.
  ASSERT_TRUE(WaitFor([&] { return npa_rx_burst(sh_, 0, &r, 1) == 1; }, 3000));
  std::array<uint8_t, 6> mac{};
  ASSERT_TRUE(ParseRarpAnnounce(
      std::span<const uint8_t>(static_cast<const uint8_t*>(npa_buf_data(r)), r->data_len), &mac));
  EXPECT_EQ(memcmp(mac.data(), Info().mac, 6), 0);
  npa_buf_free(sh_, 0, &r, 1);
  npa_queue_stats st = Stats(sh_);
  EXPECT_EQ(st.announces, 1u);
  EXPECT_EQ(st.tx_packets, 0u) << "not the application's frame";
  EXPECT_EQ(st.tx_bytes, 0u) << "nor its bytes, which the plug-in counted (NPA_PLUGIN_F_TX_BYTES)";
  EXPECT_EQ(st.tx_vf_packets, 0u);
  EXPECT_EQ(st.rx_vf_packets, 1u);
  // A second burst sends nothing more: one announcement per switch.
  EXPECT_EQ(npa_rx_burst(sh_, 0, &r, 1), 0);
  EXPECT_EQ(Stats(sh_).announces, 1u);
}

TEST_F(VfSwitchTest, ReqInterruptFallsBackByItself) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  DrainEvents();
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  control::VfAccept a = Offer(9, kLbVendor, kLbDevice);
  ASSERT_TRUE(a.accepted()) << a.reason();
  npa_event ev;
  ASSERT_TRUE(NextPathEvent(&ev, 2000));
  const uint64_t vf0 = Stats(sh_).rx_vf_packets;
  ASSERT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > vf0 + 2000; }, 10000));
  // The agent unbinds the device: vfio-pci signals REQ.
  int req = shared_->req_efd.load();
  ASSERT_GE(req, 0) << "REQ was wired";
  uint64_t one = 1;
  ASSERT_EQ(write(req, &one, sizeof one), 8);
  // Unsolicited RevokeDone for the offer.
  control::RevokeDone d = ExpectRevokeDone();
  EXPECT_EQ(d.offer_id(), 9u);
  ASSERT_TRUE(NextPathEvent(&ev, 2000));
  EXPECT_EQ(ev.u.path, NPA_PATH_EMULATED);
  EXPECT_NE(std::string(ev.detail).find("REQ"), std::string::npos) << ev.detail;
  const std::string fallback_detail = ev.detail;
  EXPECT_EQ(Info().path, NPA_PATH_EMULATED);
  const uint64_t emu0 = Stats(sh_).rx_emulated_packets;
  ASSERT_TRUE(WaitFor([&] { return Stats(sh_).rx_emulated_packets > emu0 + 20000; }, 20000));
  guest_->Finish();
  EXPECT_EQ(guest_->dups(), 0u);
  EXPECT_EQ(guest_->missing(), 0u) << fallback_detail;
  // A late agent Revoke for the released offer is answered, harmlessly.
  EXPECT_EQ(Revoke(9, 100).offer_id(), 9u);
  // And a new offer is taken again.
  control::VfAccept b = Offer(10, kLbVendor, kLbDevice);
  EXPECT_TRUE(b.accepted()) << b.reason();
}

TEST_F(VfSwitchTest, ErrInterruptFallsBackAndTellsTheAgent) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  DrainEvents();
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  ASSERT_TRUE(Offer(11, kLbVendor, kLbDevice).accepted());
  npa_event ev;
  ASSERT_TRUE(NextPathEvent(&ev, 2000));
  int err = shared_->err_efd.load();
  ASSERT_GE(err, 0) << "ERR was wired";
  uint64_t one = 1;
  ASSERT_EQ(write(err, &one, sizeof one), 8);
  EXPECT_EQ(ExpectRevokeDone().offer_id(), 11u);
  ASSERT_TRUE(NextPathEvent(&ev, 2000));
  EXPECT_EQ(ev.u.path, NPA_PATH_EMULATED);
  EXPECT_NE(std::string(ev.detail).find("ERR"), std::string::npos) << ev.detail;
  const uint64_t r0 = guest_->received();
  ASSERT_TRUE(WaitFor([&] { return guest_->received() > r0 + 5000; }, 20000));
  guest_->Finish();
  EXPECT_EQ(guest_->dups(), 0u);
  EXPECT_EQ(guest_->missing(), 0u);
  EXPECT_EQ(shared_->destroyed.load(), shared_->created.load());
}

// A VF whose TX hangs (tests/plugins stuck/): the frames it took are lost
// when the agent takes it back, and the shell counts exactly those. Both
// ways the shell counts: per burst for an ABI 1.1 plug-in that returns TX
// frames through buf_free_tx (stuck/), per frame for a 1.0 one (stuck_v10/).
class VfSwitchHungTest : public VfSwitchTest, public ::testing::WithParamInterface<const char*> {};
INSTANTIATE_TEST_SUITE_P(Abi, VfSwitchHungTest, ::testing::Values("stuck", "stuck_v10"),
                         [](const auto& info) { return std::string(info.param); });

TEST_P(VfSwitchHungTest, HungVfTxIsCountedExactlyWhenReqTakesItBack) {
  SetPluginDir(GetParam());
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  DrainEvents();
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  const uint64_t r0 = guest_->received();
  ASSERT_TRUE(WaitFor([&] { return guest_->received() > r0 + 1000; }, 10000));
  ASSERT_TRUE(Offer(21, kLbVendor, 0x1010).accepted());
  npa_event ev;
  ASSERT_TRUE(NextPathEvent(&ev, 2000));
  // The guest's window (48 frames) fills up with frames the VF holds.
  ASSERT_TRUE(WaitFor([&] { return Stats(sh_).tx_vf_packets > 0; }, 10000));
  uint64_t held = 0;
  ASSERT_TRUE(WaitFor([&] {
    uint64_t a = Stats(sh_).tx_vf_packets;
    usleep(50000);
    held = Stats(sh_).tx_vf_packets;
    return a == held;
  }, 10000));
  ASSERT_GT(held, 0u);
  EXPECT_EQ(Stats(sh_).tx_vf_lost, 0u);
  uint64_t one = 1;
  ASSERT_EQ(write(shared_->req_efd.load(), &one, sizeof one), 8);
  control::RevokeDone d = ExpectRevokeDone();
  EXPECT_EQ(d.offer_id(), 21u);
  EXPECT_NE(d.reason().find("VFIO REQ"), std::string::npos) << d.reason();
  ASSERT_TRUE(NextPathEvent(&ev, 5000));
  EXPECT_EQ(ev.u.path, NPA_PATH_EMULATED);
  guest_->Finish();
  // Every frame the VF took is lost, and exactly those are reported.
  EXPECT_EQ(d.tx_inflight_lost(), held);
  EXPECT_EQ(Stats(sh_).tx_vf_lost, held);
  // Their bytes were sent as far as the counters go, counted by the plug-in
  // (stuck: NPA_PLUGIN_F_TX_BYTES) or by the shell (stuck_v10: ABI 1.0).
  EXPECT_EQ(Stats(sh_).tx_bytes, Guest::kFrameLen * Stats(sh_).tx_packets);
  EXPECT_EQ(guest_->missing(), held) << "first missing " << guest_->first_missing();
  EXPECT_EQ(guest_->dups(), 0u);
  EXPECT_EQ(shared_->destroyed.load(), shared_->created.load());
}

TEST_F(VfSwitchTest, OfferWithoutMatchingPluginIsDeclinedWithReason) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  control::VfAccept a = Offer(3, 0x1d0f, 0xbad0);
  EXPECT_FALSE(a.accepted());
  EXPECT_NE(a.reason().find("no plug-in for 1d0f:bad0"), std::string::npos) << a.reason();
  EXPECT_EQ(Info().path, NPA_PATH_EMULATED);
  // Broken plug-ins for exactly that ID are skipped at load, with why.
  // Among the broken plug-ins for exactly that ID only 'unknown_caps' loads
  // (the rest are skipped at load, with why); its probe refuses the device.
  SetPluginDir("broken");
  a = Offer(4, 0x1d0f, 0xbad0);
  EXPECT_FALSE(a.accepted());
  EXPECT_NE(a.reason().find("plug-in 'unknown_caps': probe failed"), std::string::npos) << a.reason();
  EXPECT_EQ(shared_->destroyed.load(), shared_->created.load());
}

TEST_F(VfSwitchTest, PluginWhoseProbeFailsIsDeclinedAndUndone) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  SetPluginDir("match");  // loads fine, probe answers -ENOTSUP
  control::VfAccept a = Offer(5, 0x8086, 0x10d3);
  EXPECT_FALSE(a.accepted());
  EXPECT_NE(a.reason().find("probe failed"), std::string::npos) << a.reason();
  EXPECT_EQ(shared_->destroyed.load(), shared_->created.load());
  EXPECT_EQ(Info().path, NPA_PATH_EMULATED);
}

TEST_F(VfSwitchTest, HostileOffersAreDeclined) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  control::VfAccept a = Offer(1, kLbVendor, kLbDevice, /*with_fd=*/false);
  EXPECT_FALSE(a.accepted());
  EXPECT_NE(a.reason().find("expected 1"), std::string::npos) << a.reason();
  a = Offer(2, 0x1d0f0, kLbDevice);
  EXPECT_FALSE(a.accepted());
  EXPECT_NE(a.reason().find("out of range"), std::string::npos) << a.reason();
  lie_about_device_ = true;
  a = Offer(3, kLbVendor, kLbDevice);
  EXPECT_FALSE(a.accepted());
  EXPECT_NE(a.reason().find("config space says"), std::string::npos) << a.reason();
  lie_about_device_ = false;
  a = Offer(4, kLbVendor, kLbDevice);
  ASSERT_TRUE(a.accepted()) << a.reason();
  a = Offer(5, kLbVendor, kLbDevice);
  EXPECT_FALSE(a.accepted());
  EXPECT_NE(a.reason().find("already attached"), std::string::npos) << a.reason();
}

TEST_F(VfSwitchTest, RepeatedAttachRevokeUnderTrafficKeepsEveryFrame) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  MonotonicWatch watch(sh_);
  ASSERT_NO_FATAL_FAILURE(CycleVfs(100, 10));
  guest_->Finish();
  EXPECT_EQ(guest_->dups(), 0u);
  EXPECT_EQ(guest_->missing(), 0u) << "sent " << guest_->sent();
  EXPECT_EQ(watch.regressions(), 0u);
  EXPECT_EQ(shared_->destroyed.load(), shared_->created.load());
  npa_queue_stats st = Stats(sh_);
  EXPECT_EQ(st.tx_packets, guest_->sent());
  EXPECT_EQ(st.tx_packets, st.tx_vf_packets + st.tx_emulated_packets);
  // Ten VFs' TX bytes, each folded in from its plug-in, and the emulated
  // ones in between: exact.
  EXPECT_EQ(st.tx_bytes, Guest::kFrameLen * st.tx_packets);
  EXPECT_EQ(st.rx_bytes, Guest::kFrameLen * st.rx_packets);
}

// Across three attach/revoke cycles every frame arrives once, packets and
// bytes are exact, and the shell refused nothing (rx_bad stays 0), in each
// RX mode:
// - by default (and with NPA_SHELL_F_TRUST_PLUGIN_RX, an ABI 1.5 caller's
//   way to ask for it) what the plug-in hands up goes to the application
//   unchecked, and the plug-in's RX byte count is folded in
//   (test_good sets NPA_PLUGIN_F_RX_BYTES);
// - with NPA_SHELL_F_CHECK_PLUGIN_RX every frame is checked and the shell
//   counts the bytes of what it delivers.
class VfRxModeTest : public VfSwitchTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(VfRxModeTest, KeepsEveryFrameAndByte) {
  const bool checked = (GetParam() & NPA_SHELL_F_CHECK_PLUGIN_RX) != 0;
  ASSERT_NO_FATAL_FAILURE(OpenShell(GetParam()));
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  ASSERT_NO_FATAL_FAILURE(CycleVfs(200, 3, [&] {
    std::lock_guard<std::mutex> l(sh_->vf_mu);
    ASSERT_TRUE(sh_->vf != nullptr);
    EXPECT_EQ(sh_->vf->plugin_rx_bytes(), !checked);
  }));
  guest_->Finish();
  EXPECT_EQ(guest_->dups(), 0u);
  EXPECT_EQ(guest_->missing(), 0u) << "sent " << guest_->sent();
  const npa_queue_stats st = Stats(sh_);
  EXPECT_GT(st.rx_vf_packets, 9000u);
  EXPECT_EQ(st.rx_packets, guest_->received());
  EXPECT_EQ(st.rx_packets, st.rx_vf_packets + st.rx_emulated_packets);
  EXPECT_EQ(st.rx_bytes, Guest::kFrameLen * st.rx_packets);
  EXPECT_EQ(st.tx_bytes, Guest::kFrameLen * st.tx_packets);
  EXPECT_EQ(sh_->queues[0].c.rx_bad.load(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, VfRxModeTest,
                         ::testing::Values(0u, NPA_SHELL_F_TRUST_PLUGIN_RX, NPA_SHELL_F_CHECK_PLUGIN_RX),
                         [](const ::testing::TestParamInfo<uint32_t>& i) -> std::string {
                           if (i.param == 0) return "Default";
                           return i.param == NPA_SHELL_F_TRUST_PLUGIN_RX ? "Trust" : "Check";
                         });

// A queue in interrupt mode, its owner asleep in epoll: the switch wakes it
// (the per-queue wake eventfd), so the attach is acknowledged at once.
TEST_F(VfSwitchTest, InterruptModeOwnerIsWokenForTheSwitch) {
  ASSERT_NO_FATAL_FAILURE(OpenShell(NPA_SHELL_F_INTERRUPT));
  DrainEvents();
  std::atomic<bool> stop{false};
  std::atomic<int> wakeups{0};
  std::thread owner([&] {
    int ep = npa_queue_intr_fd(sh_, 0);
    ASSERT_GE(ep, 0);
    ASSERT_EQ(npa_queue_intr_enable(sh_, 0, 1), 0);
    for (int i = 0; i < 1000 && !stop; i++) {
      epoll_event ev;
      int n = epoll_wait(ep, &ev, 1, 100);
      if (n == 1) {
        wakeups++;
        npa_queue_intr_ack(sh_, 0);
      }
      npa_buf* r[8];
      uint16_t got = npa_rx_burst(sh_, 0, r, 8);
      if (got) npa_buf_free(sh_, 0, r, got);
    }
  });
  control::VfAccept a = Offer(31, kLbVendor, kLbDevice);
  ASSERT_TRUE(a.accepted()) << a.reason();
  EXPECT_EQ(a.reason().find("idle queues"), std::string::npos) << a.reason();
  EXPECT_GE(wakeups.load(), 1);
  control::RevokeDone d = Revoke(31, 2000);
  EXPECT_EQ(d.tx_inflight_lost(), 0u);
  npa_event ev;
  ASSERT_TRUE(NextPathEvent(&ev, 1000));  // the attach
  ASSERT_TRUE(NextPathEvent(&ev, 1000));  // the revoke
  EXPECT_EQ(ev.u.path, NPA_PATH_EMULATED);
  EXPECT_EQ(std::string(ev.detail).find("idle queues"), std::string::npos) << ev.detail;
  stop = true;
  owner.join();
}

}  // namespace
}  // namespace npa::shell
