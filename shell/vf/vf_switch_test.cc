// The VF path end to end, without hardware: a test-side agent speaks the
// control protocol on a real socket, a vhost-user back end (npa_vhost, the
// agent's own) reflects the emulated path's frames, and the "VF" is a fake
// VFIO device (VfioDeviceIo seam) driven by the software loopback plug-in
// tests/plugins/test_good. A guest thread sends sequence-numbered frames and
// checks that every one comes back exactly once across attach, planned
// revoke and REQ-triggered fallback.
#include <linux/vfio.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/unix_socket.h"
#include "gtest/gtest.h"
#include "hypervisor/vhost/vhost_device.h"
#include "npa/shell.h"
#include "tests/support/fake_agent_test_util.h"
#include "tests/support/fake_vfio_test_util.h"
#include "shell/offload.h"
#include "shell/vf/vf_switch.h"

namespace npa::shell {
namespace {

using Clock = std::chrono::steady_clock;

// The emulated path's far end: reflects every TX frame into the RX ring.
class LoopbackBackend {
 public:
  explicit LoopbackBackend(UniqueFd conn) {
    auto d = agent::VhostDevice::Create(std::move(conn), {.name = "vftest"});
    EXPECT_TRUE(d.ok()) << d.status();
    if (d.ok()) dev_ = std::move(*d);
    thread_ = std::thread([this] { Run(); });
  }
  ~LoopbackBackend() {
    stop_ = true;
    thread_.join();
  }
  uint64_t reflected() const { return reflected_; }

 private:
  void Run() {
    if (!dev_) return;
    bool open = true;
    while (!stop_) {
      pollfd p{dev_->fd(), POLLIN, 0};
      if (open && poll(&p, 1, 0) == 1 && !dev_->OnReadable().ok()) open = false;
      bool idle = true;
      for (uint16_t q = 0; open && q < dev_->num_queue_pairs(); q++) {
        if (!dev_->QueueReady(q)) continue;
        agent::GuestFrame f[32];
        uint16_t n = dev_->PeekTx(q, f, 32);
        if (n == 0) continue;
        idle = false;
        agent::PacketRef r[32];
        for (uint16_t i = 0; i < n; i++) r[i] = {nullptr, f[i].segs, f[i].nsegs, f[i].len};
        reflected_ += dev_->EnqueueRx(q, r, n);
        dev_->ReleaseTx(q, n);
      }
      if (idle) usleep(50);
    }
  }
  std::unique_ptr<agent::VhostDevice> dev_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> reflected_{0};
};

// Sends frames numbered 0,1,2,... keeping at most kWindow in flight (so the
// loopback never finds a full RX ring), and records every number received.
class Guest {
 public:
  static constexpr uint32_t kWindow = 48;
  static constexpr uint32_t kMax = 1u << 22;

  explicit Guest(npa_shell* sh) : sh_(sh), seen_(kMax, 0) {}
  void Start() { thread_ = std::thread([this] { Run(); }); }
  // Stop sending, then keep receiving until everything came back or 3 s.
  void Finish() {
    sending_ = false;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t sent() const { return sent_; }
  uint64_t received() const { return received_; }
  uint64_t dups() const { return dups_; }
  uint64_t first_missing() const {
    for (uint64_t i = 0; i < sent_; i++)
      if (seen_[i] == 0) return i;
    return UINT64_MAX;
  }
  uint64_t missing() const {
    uint64_t m = 0;
    for (uint64_t i = 0; i < sent_; i++) m += seen_[i] == 0;
    return m;
  }

 private:
  void Run() {
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
          b[i]->data_len = 64;
          b[i]->pkt_len = 64;
        }
        uint16_t s = npa_tx_burst(sh_, 0, b, n);
        // Frames are numbered in the order the shell took them.
        if (s < n) {
          for (uint16_t i = s; i < n; i++) {
            // renumber nothing: the untaken ones carry seq >= sent_+s and are freed
          }
          npa_buf_free(sh_, 0, b + s, static_cast<uint16_t>(n - s));
        }
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
  npa_shell* sh_;
  std::thread thread_;
  std::atomic<bool> sending_{true};
  std::atomic<uint64_t> sent_{0}, received_{0}, dups_{0}, bogus_{0};
  std::vector<uint8_t> seen_;
};

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

// Ethernet + IPv4 + UDP with 8 payload bytes into b, asking for the UDP
// checksum (NPA_BUF_OL_TX_CSUM): the field holds the pseudo-header sum, as
// for CHECKSUM_PARTIAL.
constexpr uint8_t kUdpPseudoTail[4] = {0, 17, 0, 16};  // zero, proto 17, UDP length 16
void FillUdpPartialCsum(npa_buf* b, const char (&payload)[9]) {
  uint8_t* d = static_cast<uint8_t*>(npa_buf_data(b));
  const uint8_t hdr[42] = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00,
      0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
      0x30, 0x39, 0x00, 0x35, 0, 16, 0, 0};
  memcpy(d, hdr, sizeof hdr);
  memcpy(d + sizeof hdr, payload, 8);
  uint64_t ph = CsumPartial(d + 26, 8, 0, false);  // source and destination
  ph = CsumPartial(kUdpPseudoTail, 4, ph, false);
  uint16_t folded = static_cast<uint16_t>(~CsumFold(ph));
  memcpy(d + 40, &folded, 2);
  b->data_len = b->pkt_len = sizeof hdr + 8;
  b->ol_flags = NPA_BUF_OL_TX_CSUM;
  b->csum_start = 34;
  b->csum_offset = 6;
}

// The received datagram's checksum over pseudo header + datagram: 0 if valid.
uint16_t UdpCsumFold(const uint8_t* rd) {
  uint64_t s = CsumPartial(rd + 26, 8, 0, false);
  s = CsumPartial(kUdpPseudoTail, 4, s, false);
  s = CsumPartial(rd + 34, 16, s, false);
  return CsumFold(s);
}

class VfSwitchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/npa_vf_switch_test." + std::to_string(getpid());
    mkdir(dir_.c_str(), 0700);
    path_ = dir_ + "/agent.ctl";
    SetPluginDir("good");
    shared_ = std::make_shared<FakeVfioShared>();
    SetVfDeviceIoFactoryForTest([this](int, const control::VfOffer& o) -> std::unique_ptr<VfioDeviceIo> {
      uint16_t ven = static_cast<uint16_t>(o.vendor()), dev = static_cast<uint16_t>(o.device());
      if (lie_about_device_) dev ^= 1;
      return std::make_unique<FakeVfioDevice>(ven, dev, shared_);
    });
  }
  void TearDown() override {
    if (guest_) guest_->Finish();
    guest_.reset();
    if (sh_) npa_shell_close(sh_);
    backend_.reset();
    agent_.reset();
    SetVfDeviceIoFactoryForTest(nullptr);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
    unsetenv("NPA_PLUGIN_PATH");
  }
  void SetPluginDir(const char* sub) {
    setenv("NPA_PLUGIN_PATH", (std::string(NPA_TEST_PLUGIN_ROOT) + "/" + sub).c_str(), 1);
  }

  // Opens, configures and starts a shell against the test agent.
  void OpenShell(uint32_t flags = 0) {
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
      backend_ = std::make_unique<LoopbackBackend>(std::move(agent_->vhost_peer));
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

  // Sends a VfOffer with one fd (a stand-in: the fake device answers for
  // it) and returns the shell's VfAccept.
  control::VfAccept Offer(uint64_t id, uint32_t ven, uint32_t dev, bool with_fd = true) {
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
  control::RevokeDone Revoke(uint64_t id, uint32_t timeout_ms) {
    control::Envelope e;
    e.mutable_revoke()->set_offer_id(id);
    e.mutable_revoke()->set_timeout_ms(timeout_ms);
    EXPECT_TRUE(agent_->Send(e).ok());
    return ExpectRevokeDone();
  }
  control::RevokeDone ExpectRevokeDone() {
    return ExpectBody<control::RevokeDone>([](const control::Envelope& r) { return r.has_revoke_done(); },
                                           [](const control::Envelope& r) { return r.revoke_done(); });
  }
  template <typename T>
  T ExpectBody(bool (*has)(const control::Envelope&), T (*get)(const control::Envelope&)) {
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
  npa_shell_info Info() {
    npa_shell_info in{};
    in.struct_size = sizeof in;
    EXPECT_EQ(npa_shell_get_info(sh_, &in), 0);
    return in;
  }
  // The last PATH_CHANGED event, if any arrived within ms.
  bool NextPathEvent(npa_event* ev, int ms) {
    auto end = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < end) {
      ev->struct_size = sizeof *ev;
      int r = npa_shell_next_event(sh_, ev);
      if (r == 1 && ev->type == NPA_EVENT_PATH_CHANGED) return true;
      if (r == 0) usleep(1000);
    }
    return false;
  }
  void DrainEvents() {
    npa_event ev;
    ev.struct_size = sizeof ev;
    while (npa_shell_next_event(sh_, &ev) == 1) {}
  }

  std::string dir_, path_;
  std::shared_ptr<FakeVfioShared> shared_;
  bool lie_about_device_ = false;
  uint64_t offloads_ = NPA_OFFLOAD_TX_CSUM;  // what OpenShell configures
  std::unique_ptr<FakeAgent> agent_;
  std::unique_ptr<LoopbackBackend> backend_;
  npa_shell* sh_ = nullptr;
  std::unique_ptr<Guest> guest_;
};

constexpr uint32_t kLbVendor = 0x1d0f, kLbDevice = 0x100f;

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
      static_assert(kFields == 13);
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
  EXPECT_EQ(st.tx_packets, guest_->sent());
  EXPECT_EQ(st.rx_packets, guest_->received());
  EXPECT_EQ(st.tx_packets, st.tx_vf_packets + st.tx_emulated_packets);
  EXPECT_EQ(st.rx_packets, st.rx_vf_packets + st.rx_emulated_packets);
  EXPECT_GT(watch.samples(), 10u);
  EXPECT_EQ(watch.regressions(), 0u);
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
// when the agent takes it back, and the shell counts exactly those.
TEST_F(VfSwitchTest, HungVfTxIsCountedExactlyWhenReqTakesItBack) {
  SetPluginDir("stuck");
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
  for (uint64_t id = 100; id < 110; id++) {
    const uint64_t r0 = guest_->received();
    ASSERT_TRUE(WaitFor([&] { return guest_->received() > r0 + 3000; }, 10000)) << "cycle " << id;
    control::VfAccept a = Offer(id, kLbVendor, kLbDevice);
    ASSERT_TRUE(a.accepted()) << a.reason();
    const uint64_t v0 = Stats(sh_).rx_vf_packets;
    ASSERT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > v0 + 3000; }, 10000)) << "cycle " << id;
    control::RevokeDone d = Revoke(id, 2000);
    EXPECT_EQ(d.tx_inflight_lost(), 0u);
  }
  guest_->Finish();
  EXPECT_EQ(guest_->dups(), 0u);
  EXPECT_EQ(guest_->missing(), 0u) << "sent " << guest_->sent();
  EXPECT_EQ(watch.regressions(), 0u);
  EXPECT_EQ(shared_->destroyed.load(), shared_->created.load());
  npa_queue_stats st = Stats(sh_);
  EXPECT_EQ(st.tx_packets, guest_->sent());
  EXPECT_EQ(st.tx_packets, st.tx_vf_packets + st.tx_emulated_packets);
}

// The loopback device has no TX checksum; the guest configured the offload,
// so the VF path computes it in software (the offload set is stable).
TEST_F(VfSwitchTest, TxChecksumDoneInSoftwareOnAVfWithoutIt) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  // This thread owns queue 0 and is not bursting: the attach is applied at
  // its next burst (the accept says the queue was idle).
  control::VfAccept a = Offer(21, kLbVendor, kLbDevice);
  ASSERT_TRUE(a.accepted()) << a.reason();
  EXPECT_NE(a.reason().find("software TX checksum"), std::string::npos) << a.reason();
  npa_buf* b;
  ASSERT_EQ(npa_buf_alloc(sh_, 0, &b, 1), 1);
  FillUdpPartialCsum(b, "checksum");
  ASSERT_EQ(npa_tx_burst(sh_, 0, &b, 1), 1);
  EXPECT_EQ(Info().path, NPA_PATH_VF);
  npa_buf* r = nullptr;
  ASSERT_TRUE(WaitFor([&] { return npa_rx_burst(sh_, 0, &r, 1) == 1; }, 3000));
  const uint8_t* rd = static_cast<const uint8_t*>(npa_buf_data(r));
  EXPECT_EQ(UdpCsumFold(rd), 0) << "checksum field " << std::hex << int(rd[40]) << int(rd[41]);
  EXPECT_FALSE(rd[40] == 0 && rd[41] == 0);
  EXPECT_EQ(Stats(sh_).tx_vf_packets, 1u);
  EXPECT_EQ(Stats(sh_).rx_vf_packets, 1u);
  npa_buf_free(sh_, 0, &r, 1);
}

// VLAN insert and strip on a VF without them (the loopback plug-in): done
// in software as on the emulated path; the tag moves csum_start, so the
// software checksum must still land in the right place.
TEST_F(VfSwitchTest, VlanInsertAndStripDoneInSoftwareOnAVfWithoutThem) {
  offloads_ = NPA_OFFLOAD_TX_CSUM | NPA_OFFLOAD_VLAN_INSERT | NPA_OFFLOAD_VLAN_STRIP;
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  EXPECT_NE(Info().offloads & NPA_OFFLOAD_VLAN_INSERT, 0u);
  ASSERT_TRUE(Offer(23, kLbVendor, kLbDevice).accepted());
  npa_buf* b;
  ASSERT_EQ(npa_buf_alloc(sh_, 0, &b, 1), 1);
  FillUdpPartialCsum(b, "vlantag!");
  std::vector<uint8_t> frame(static_cast<uint8_t*>(npa_buf_data(b)),
                             static_cast<uint8_t*>(npa_buf_data(b)) + b->data_len);
  b->ol_flags |= NPA_BUF_OL_TX_VLAN;
  b->vlan_tci = 0x2123;  // PCP 1, VID 0x123
  ASSERT_EQ(npa_tx_burst(sh_, 0, &b, 1), 1);
  EXPECT_EQ(Info().path, NPA_PATH_VF);
  npa_buf* r = nullptr;
  ASSERT_TRUE(WaitFor([&] { return npa_rx_burst(sh_, 0, &r, 1) == 1; }, 3000));
  EXPECT_NE(r->ol_flags & NPA_BUF_OL_RX_VLAN, 0u);
  EXPECT_EQ(r->vlan_tci, 0x2123);
  ASSERT_EQ(r->data_len, frame.size()) << "the tag went on the wire and came off again";
  const uint8_t* rd = static_cast<const uint8_t*>(npa_buf_data(r));
  EXPECT_EQ(memcmp(rd, frame.data(), 40), 0);
  EXPECT_EQ(UdpCsumFold(rd), 0) << "the checksum followed the tag's shift";
  npa_buf_free(sh_, 0, &r, 1);
}

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
