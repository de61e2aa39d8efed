#include "shell/vf/vf_switch_fixture.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <utility>

#include "common/unix_socket.h"
#include "shell/vf/vf_switch.h"

namespace npa::shell {

bool WaitFor(const std::function<bool()>& cond, int ms) {
  auto end = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < end) {
    if (cond()) return true;
    usleep(1000);
  }
  return cond();
}

npa_queue_stats Stats(npa_shell* sh) {
  npa_queue_stats st{};
  st.struct_size = sizeof st;
  EXPECT_EQ(npa_shell_queue_stats(sh, UINT16_MAX, &st), 0);
  return st;
}

// ---------------------------------------------------------------- Guest --

uint64_t Guest::first_missing() const {
  for (uint64_t i = 0; i < sent_; i++)
    if (seen_[i] == 0) return i;
  return UINT64_MAX;
}

uint64_t Guest::missing() const {
  uint64_t m = 0;
  for (uint64_t i = 0; i < sent_; i++) m += seen_[i] == 0;
  return m;
}

void Guest::Run() {
  const auto end = Clock::now() + std::chrono::seconds(60);  // hard bound
  // Post RX buffers before the first frame can come back (guide, section 4).
  npa_rx_burst(sh_, 0, nullptr, 0);
  auto drain_end = Clock::time_point::max();
  while (Clock::now() < end) {
    if (!sending_ && drain_end == Clock::time_point::max())
      drain_end = Clock::now() + std::chrono::seconds(3);
    if (Clock::now() > drain_end || (!sending_ && received_ == sent_)) break;
    if (sending_ && sent_ - received_ < kWindow && sent_ < kMax) {
      npa_buf* b[16];
      uint16_t want = static_cast<uint16_t>(std::min<uint64_t>(16, kWindow - (sent_ - received_)));
      uint16_t n = npa_buf_alloc(sh_, 0, b, want);
      for (uint16_t i = 0; i < n; i++) {
        uint8_t* d = static_cast<uint8_t*>(npa_buf_data(b[i]));
        memset(d, 0xff, 6);
        memcpy(d + 6, "\x02\x00\x00\x00\x00\x99", 6);
        d[12] = 0x88;
        d[13] = 0xb5;
        uint64_t seq = sent_ + i;
        memcpy(d + 14, &seq, 8);
        memset(d + 22, 0x5a, 42);
        b[i]->data_len = kFrameLen;
        b[i]->pkt_len = kFrameLen;
      }
      uint16_t s = npa_tx_burst(sh_, 0, b, n);
      // Frames are numbered in the order the shell took them: the untaken
      // ones carry seq >= sent_ + s and are freed, nothing is renumbered.
      if (s < n) npa_buf_free(sh_, 0, b + s, static_cast<uint16_t>(n - s));
      sent_ += s;
    }
    npa_buf* r[32];
    uint16_t got = npa_rx_burst(sh_, 0, r, 32);
    for (uint16_t i = 0; i < got; i++) {
      uint64_t seq = UINT64_MAX;
      if (r[i]->data_len >= 22) memcpy(&seq, static_cast<uint8_t*>(npa_buf_data(r[i])) + 14, 8);
      if (seq < kMax) {
        if (seen_[seq]++) dups_++;
        else received_++;
      } else {
        bogus_++;
      }
    }
    if (got) npa_buf_free(sh_, 0, r, got);
    if (got == 0) usleep(5);
  }
}

// --------------------------------------------------------- VfSwitchTest --

void VfSwitchTest::SetUp() {
  dir_ = "/tmp/npa_vf_switch_test." + std::to_string(getpid());
  mkdir(dir_.c_str(), 0700);
  path_ = dir_ + "/agent.ctl";
  SetPluginDir("good");
  // The loopback plug-in would reflect the attach's RARP announcement into
  // RX; tests that count reflected frames one by one do not expect it.
  // AnnouncesTheMacThroughTheVf turns it on.
  SetAnnounceOnAttachForTest(false);
  shared_ = std::make_shared<FakeVfioShared>();
  SetVfDeviceIoFactoryForTest([this](int, const control::VfOffer& o) -> std::unique_ptr<VfioDeviceIo> {
    uint16_t ven = static_cast<uint16_t>(o.vendor()), dev = static_cast<uint16_t>(o.device());
    if (lie_about_device_) dev ^= 1;
    return std::make_unique<FakeVfioDevice>(ven, dev, shared_);
  });
}

void VfSwitchTest::TearDown() {
  if (guest_) guest_->Finish();
  guest_.reset();
  if (sh_) npa_shell_close(sh_);
  backend_.reset();
  agent_.reset();
  SetVfDeviceIoFactoryForTest(nullptr);
  SetAnnounceOnAttachForTest(true);
  unlink(path_.c_str());
  rmdir(dir_.c_str());
  unsetenv("NPA_PLUGIN_PATH");
}

void VfSwitchTest::SetPluginDir(const char* sub) {
  setenv("NPA_PLUGIN_PATH", (std::string(NPA_TEST_PLUGIN_ROOT) + "/" + sub).c_str(), 1);
}

void VfSwitchTest::OpenShell(uint32_t flags) {
  auto l = ListenUnix(path_);
  ASSERT_TRUE(l.ok()) << l.status();
  UniqueFd lfd = std::move(*l);
  std::thread t([&] {
    pollfd p{lfd.get(), POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 5000), 1);
    UniqueFd c(accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(c.valid());
    agent_ = std::make_unique<FakeAgent>(std::move(c));
    ASSERT_TRUE(agent_->ExpectHello().ok());
    ASSERT_TRUE(agent_->Welcome().ok());
    auto b = LoopbackBackend::Create(std::move(agent_->vhost_peer), "vftest");
    ASSERT_TRUE(b.ok()) << b.status();
    backend_ = std::move(*b);
  });
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = path_.c_str();
  oa.name = "vfguest";
  oa.flags = NPA_SHELL_F_NO_HUGEPAGES | flags;
  int rc = npa_shell_open(&oa, &sh_);
  t.join();
  ASSERT_EQ(rc, 0) << npa_shell_last_error(nullptr);
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.ring_size = 256;
  qc.offloads = offloads_;
  ASSERT_EQ(npa_shell_configure(sh_, &qc), 0) << npa_shell_last_error(nullptr);
  // The region announcement: one region, its memfd, iova == address.
  auto f = agent_->Receive();
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->env.has_regions());
  ASSERT_EQ(f->env.regions().regions_size(), 1);
  EXPECT_EQ(f->fds.size(), 1u);
  EXPECT_GE(f->env.regions().regions(0).size(), kVfDmaReserve);
  ASSERT_EQ(npa_shell_start(sh_), 0) << npa_shell_last_error(nullptr);
}

template <typename T>
T VfSwitchTest::ExpectBody(bool (*has)(const control::Envelope&),
                           T (*get)(const control::Envelope&)) {
  // Generous: the machine running the tests may be heavily loaded; the
  // shell's own bounds are what the tests check, not this one.
  for (int i = 0; i < 8; i++) {
    auto f = agent_->Receive(10000);
    if (!f.ok()) {
      ADD_FAILURE() << f.status();
      return T();
    }
    if (has(f->env)) return get(f->env);
  }
  ADD_FAILURE() << "no reply";
  return T();
}

control::VfAccept VfSwitchTest::Offer(uint64_t id, uint32_t ven, uint32_t dev, bool with_fd) {
  control::Envelope e;
  auto* o = e.mutable_vf_offer();
  o->set_pci_address("0000:00:05.0");
  o->set_vendor(ven);
  o->set_device(dev);
  o->set_subsystem_vendor(0x1d0f);
  o->set_subsystem_device(1);
  o->set_class_code(0x020000);
  o->set_offer_id(id);
  UniqueFd fake(eventfd(0, EFD_CLOEXEC));
  int fd = fake.get();
  EXPECT_TRUE(agent_->Send(e, with_fd ? std::span<const int>(&fd, 1) : std::span<const int>()).ok());
  return ExpectBody<control::VfAccept>([](const control::Envelope& r) { return r.has_vf_accept(); },
                                       [](const control::Envelope& r) { return r.vf_accept(); });
}

void VfSwitchTest::CycleVfs(uint64_t first, uint64_t n, const std::function<void()>& on_vf) {
  for (uint64_t id = first; id < first + n; id++) {
    const uint64_t r0 = guest_->received();
    ASSERT_TRUE(WaitFor([&] { return guest_->received() > r0 + 3000; }, 10000)) << "cycle " << id;
    control::VfAccept a = Offer(id, kLbVendor, kLbDevice);
    ASSERT_TRUE(a.accepted()) << a.reason();
    if (on_vf) on_vf();
    const uint64_t v0 = Stats(sh_).rx_vf_packets;
    ASSERT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > v0 + 3000; }, 10000)) << "cycle " << id;
    control::RevokeDone d = Revoke(id, 2000);
    EXPECT_EQ(d.tx_inflight_lost(), 0u);
  }
}

control::RevokeDone VfSwitchTest::Revoke(uint64_t id, uint32_t timeout_ms) {
  control::Envelope e;
  e.mutable_revoke()->set_offer_id(id);
  e.mutable_revoke()->set_timeout_ms(timeout_ms);
  EXPECT_TRUE(agent_->Send(e).ok());
  return ExpectRevokeDone();
}

control::RevokeDone VfSwitchTest::ExpectRevokeDone() {
  return ExpectBody<control::RevokeDone>([](const control::Envelope& r) { return r.has_revoke_done(); },
                                         [](const control::Envelope& r) { return r.revoke_done(); });
}

npa_shell_info VfSwitchTest::Info() {
  npa_shell_info in{};
  in.struct_size = sizeof in;
  EXPECT_EQ(npa_shell_get_info(sh_, &in), 0);
  return in;
}

bool VfSwitchTest::NextPathEvent(npa_event* ev, int ms) {
  auto end = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < end) {
    ev->struct_size = sizeof *ev;
    int r = npa_shell_next_event(sh_, ev);
    if (r == 1 && ev->type == NPA_EVENT_PATH_CHANGED) return true;
    if (r == 0) usleep(1000);
  }
  return false;
}

void VfSwitchTest::DrainEvents() {
  npa_event ev;
  ev.struct_size = sizeof ev;
  while (npa_shell_next_event(sh_, &ev) == 1) {}
}

}  // namespace npa::shell
