// The attach/revoke soak (issue 9, part 5): N cycles of VF attach and revoke
// under traffic, in process, alternating a planned revoke (Revoke, the
// agent asks) with a forced one (VFIO REQ: the device is being taken away
// and the shell falls back by itself). The VF path runs end to end without
// hardware on the VF switch fixture (shell/vf/vf_switch_fixture.h: a test
// agent on a socket, the agent's vhost-user back end as loopback, a fake
// VFIO device and the loopback plug-in tests/plugins/test_good).
//
// What must hold after the N cycles:
//  - every frame the guest thread sent came back exactly once, or was
//    counted lost by the shell (tx_vf_lost, rx_dropped): no duplicate, and
//    missing == counted;
//  - the process's open fds, the fake devices created/destroyed, and the
//    plug-ins' DMA arena (bytes free) are exactly as before the cycles;
//  - RSS grows by less than kRssSlackKb (allocator caches settle after the
//    first cycles; a leak of one buffer ring per cycle would exceed it);
//  - the whole run is clean under ASan and UBSan (scripts/soak.sh builds it so).
//
// NPA_SOAK_CYCLES sets N (default 100: the ctest form; scripts/soak.sh runs
// 1000). The last line of output is one "SOAK ..." line with the figures
// (docs/soak.md).
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "gtest/gtest.h"
#include "npa/shell.h"
#include "shell/shell_impl.h"
#include "shell/vf/vf_switch_fixture.h"

namespace npa::shell {
namespace {

constexpr uint64_t kRssSlackKb = 16 * 1024;

int OpenFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1;  // the DIR's own fd
}

uint64_t RssKb() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
}

uint32_t Cycles() {
  const char* e = getenv("NPA_SOAK_CYCLES");
  long v = e != nullptr ? strtol(e, nullptr, 10) : 100;
  return v > 0 && v <= 100000 ? static_cast<uint32_t>(v) : 100;
}

// The fixture's Guest (vf_switch_fixture.h) stops after 60 s and keeps a
// window that frames lost on a forced revoke would fill for good; the soak
// runs for many minutes and loses frames by design. This one numbers frames
// the same way, counts the shell's own loss counters (tx_vf_lost,
// rx_dropped) out of its window, and runs until told to finish (bounded by
// an hour).
class SoakGuest {
 public:
  static constexpr uint32_t kWindow = 48;
  // 1000 cycles at full speed send ~90 M frames; one bit each, touched at
  // construction so the map is in the RSS baseline.
  static constexpr uint64_t kMax = 1ull << 29;

  explicit SoakGuest(npa_shell* sh) : sh_(sh), seen_(kMax / 64, 0) {}
  ~SoakGuest() { Finish(); }
  void Start() { thread_ = std::thread([this] { Run(); }); }
  void Finish() {
    sending_ = false;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t sent() const { return sent_; }
  uint64_t received() const { return received_; }
  uint64_t dups() const { return dups_; }
  uint64_t bogus() const { return bogus_; }
  uint64_t missing() const {
    uint64_t m = 0;
    for (uint64_t i = 0; i < sent_; i++) m += (seen_[i / 64] >> (i % 64) & 1) == 0;
    return m;
  }

 private:
  static uint64_t Lost(npa_shell* sh) {
    npa_queue_stats st{};
    st.struct_size = sizeof st;
    if (npa_shell_queue_stats(sh, 0, &st) != 0) return 0;
    return st.tx_vf_lost + st.rx_dropped;
  }
  void Run() {
    const uint64_t end = MonotonicMs() + 3600 * 1000;
    npa_rx_burst(sh_, 0, nullptr, 0);
    uint64_t drain_end = UINT64_MAX, lost = 0;
    while (MonotonicMs() < end) {
      if (!sending_ && drain_end == UINT64_MAX) drain_end = MonotonicMs() + 3000;
      if (MonotonicMs() > drain_end || (!sending_ && received_ + lost >= sent_)) break;
      uint64_t out = sent_ - received_ - std::min<uint64_t>(lost, sent_ - received_);
      if (sending_ && out >= kWindow) {
        lost = Lost(sh_);  // the window is full: frames the shell counted lost leave it
        out = sent_ - received_ - std::min<uint64_t>(lost, sent_ - received_);
      }
      if (sending_ && out < kWindow && sent_ < kMax) {
        npa_buf* b[16];
        const uint16_t want = static_cast<uint16_t>(std::min<uint64_t>(16, kWindow - out));
        const uint16_t n = npa_buf_alloc(sh_, 0, b, want);
        for (uint16_t i = 0; i < n; i++) {
          uint8_t* d = static_cast<uint8_t*>(npa_buf_data(b[i]));
          memset(d, 0xff, 6);
          memcpy(d + 6, "\x02\x00\x00\x00\x00\x99", 6);
          d[12] = 0x88;
          d[13] = 0xb5;
          const uint64_t seq = sent_ + i;
          memcpy(d + 14, &seq, 8);
          memset(d + 22, 0x5a, 42);
          b[i]->data_len = 64;
          b[i]->pkt_len = 64;
        }
        const uint16_t s = npa_tx_burst(sh_, 0, b, n);
        if (s < n) npa_buf_free(sh_, 0, b + s, static_cast<uint16_t>(n - s));
        sent_ += s;
      }
      npa_buf* r[32];
      const uint16_t got = npa_rx_burst(sh_, 0, r, 32);
      for (uint16_t i = 0; i < got; i++) {
        uint64_t seq = UINT64_MAX;
        if (r[i]->data_len >= 22) memcpy(&seq, static_cast<uint8_t*>(npa_buf_data(r[i])) + 14, 8);
        if (seq < kMax) {
          uint64_t& w = seen_[seq / 64];
          const uint64_t bit = 1ull << (seq % 64);
          if (w & bit) {
            dups_++;
          } else {
            w |= bit;
            received_++;
          }
        } else {
          bogus_++;
        }
      }
      if (got) npa_buf_free(sh_, 0, r, got);
      if (got == 0) {
        if (!sending_) lost = Lost(sh_);
        usleep(5);
      }
    }
  }

  npa_shell* sh_;
  std::thread thread_;
  std::atomic<bool> sending_{true};
  std::atomic<uint64_t> sent_{0}, received_{0}, dups_{0}, bogus_{0};
  std::vector<uint64_t> seen_;
};

class AttachRevokeSoak : public VfSwitchTest {
 protected:
  uint64_t DmaFree() { return sh_->dma ? sh_->dma->bytes_free() : 0; }
  void TearDown() override {
    if (soak_) soak_->Finish();
    soak_.reset();
    VfSwitchTest::TearDown();
  }
  std::unique_ptr<SoakGuest> soak_;
};

TEST_F(AttachRevokeSoak, PlannedAndForcedCyclesUnderTrafficLeaveNothingBehind) {
  const uint32_t cycles = Cycles();
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  soak_ = std::make_unique<SoakGuest>(sh_);
  SoakGuest* guest = soak_.get();
  guest->Start();
  // Warm up with one full cycle of each kind, so that the first-time
  // allocations (plug-in load, thread-local caches) are in the baseline.
  auto cycle = [&](uint64_t id, bool forced) -> bool {
    const uint64_t r0 = guest->received();
    if (!WaitFor([&] { return guest->received() > r0 + 200; }, 10000)) {
      ADD_FAILURE() << "no emulated traffic before cycle " << id;
      return false;
    }
    control::VfAccept a = Offer(id, kLbVendor, kLbDevice);
    if (!a.accepted()) {
      ADD_FAILURE() << "cycle " << id << ": " << a.reason();
      return false;
    }
    const uint64_t v0 = Stats(sh_).rx_vf_packets;
    if (!WaitFor([&] { return Stats(sh_).rx_vf_packets > v0 + 200; }, 10000)) {
      ADD_FAILURE() << "no VF traffic in cycle " << id;
      return false;
    }
    if (!forced) {
      control::RevokeDone d = Revoke(id, 2000);
      EXPECT_EQ(d.offer_id(), id);
      return true;
    }
    const int req = shared_->req_efd.load();
    if (req < 0) {
      ADD_FAILURE() << "cycle " << id << ": REQ not wired";
      return false;
    }
    uint64_t one = 1;
    EXPECT_EQ(write(req, &one, sizeof one), 8);
    control::RevokeDone d = ExpectRevokeDone();  // unsolicited: the shell fell back
    EXPECT_EQ(d.offer_id(), id);
    return WaitFor([&] { return Info().path == NPA_PATH_EMULATED; }, 5000);
  };
  ASSERT_TRUE(cycle(1, false));
  ASSERT_TRUE(cycle(2, true));
  DrainEvents();
  const int fds0 = OpenFds();
  const uint64_t rss0 = RssKb();
  const uint64_t dma0 = DmaFree();
  const int created0 = shared_->created.load(), destroyed0 = shared_->destroyed.load();
  ASSERT_EQ(created0, destroyed0);
  const uint64_t t0 = MonotonicMs();
  uint32_t planned = 0, forced = 0;
  for (uint32_t k = 0; k < cycles; k++) {
    const bool f = (k % 2) == 1;
    ASSERT_TRUE(cycle(100 + k, f)) << "cycle " << k;
    (f ? forced : planned)++;
    if (k % 16 == 15) DrainEvents();
  }
  const uint64_t secs_ms = MonotonicMs() - t0;
  guest->Finish();
  DrainEvents();
  const npa_queue_stats st = Stats(sh_);
  const uint64_t counted_lost = st.tx_vf_lost + st.rx_dropped;
  const int fds1 = OpenFds();
  const uint64_t rss1 = RssKb();
  const uint64_t dma1 = DmaFree();
  printf("SOAK cycles=%u planned=%u forced=%u seconds=%.1f sent=%llu received=%llu dups=%llu "
         "missing=%llu counted_lost=%llu (tx_vf_lost=%llu rx_dropped=%llu) fds=%d->%d "
         "rss_kb=%llu->%llu dma_free=%llu->%llu devices=%d/%d\n",
         cycles, planned, forced, secs_ms / 1000.0, (unsigned long long)guest->sent(),
         (unsigned long long)guest->received(), (unsigned long long)guest->dups(),
         (unsigned long long)guest->missing(), (unsigned long long)counted_lost,
         (unsigned long long)st.tx_vf_lost, (unsigned long long)st.rx_dropped, fds0, fds1,
         (unsigned long long)rss0, (unsigned long long)rss1, (unsigned long long)dma0,
         (unsigned long long)dma1, shared_->created.load(), shared_->destroyed.load());
  EXPECT_EQ(guest->dups(), 0u);
  EXPECT_EQ(guest->bogus(), 0u) << "frames that are not the guest's";
  EXPECT_LT(guest->sent(), SoakGuest::kMax) << "the sequence space ran out: raise kMax";
  EXPECT_EQ(guest->missing(), counted_lost) << "every frame delivered once or counted lost";
  EXPECT_EQ(st.tx_packets, guest->sent());
  EXPECT_EQ(fds1, fds0) << "fds leaked over " << cycles << " cycles";
  EXPECT_EQ(dma1, dma0) << "plug-in DMA memory not returned";
  EXPECT_EQ(shared_->created.load() - created0, static_cast<int>(cycles));
  EXPECT_EQ(shared_->destroyed.load(), shared_->created.load()) << "a VFIO device was not closed";
  EXPECT_LT(rss1, rss0 + kRssSlackKb) << "RSS grew by " << (rss1 - rss0) << " KiB";
  EXPECT_EQ(Info().path, NPA_PATH_EMULATED);
}

}  // namespace
}  // namespace npa::shell
