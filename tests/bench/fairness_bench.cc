// fairness_bench — can hostile guests starve a good one? (issue 9, "Measure
// it"). One npa-agent Dataplane (sink mode: every guest's TX is read and
// copied, as a forwarder would) serves real vhost-user back ends
// (VhostDevice over socketpairs). A good guest streams 64-byte frames as
// fast as it can; N hostile guests meanwhile do the most expensive legal
// things: TX chains of kMaxChainDescs - 1 zero-length descriptors plus one
// frame (the longest chain the agent still walks), re-posted with a kick
// the moment they come back, with an interrupt asked for on every use. Reported per N: the good
// guest's frames per second (and relative to N = 0), its share of the
// frames and descriptors the dataplane handled, and its loss (frames sent
// minus frames the agent took: must be 0).
//
//   fairness_bench [--attackers 0,1,4,8] [--seconds 2] [--fair-factor F]
// Exit 0 when the good guest lost nothing in every run and got at least
// F x its fair share 1/(N+1) of the frames handled (F = 1 by default); the
// last line is JSON. The share also depends on the good guest's producer
// thread getting a CPU: on a two-core machine it shares the cores with the
// dataplane and the attackers' wake-ups, and in a 0.5 s run on a loaded CI
// machine it read 0.184 where fair is 0.2 (0.22-0.85 in other runs), so
// the ctest short form asks for half the fair share: an agent without its
// per-guest budget gives the good guest a small fraction of that.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/daemon/guest_port.h"
#include "hypervisor/vhost/desc_chain.h"
#include "tests/support/test_frontend.h"

namespace npa::agent {
namespace {

using Clock = std::chrono::steady_clock;

struct Guest {
  std::shared_ptr<GuestPort> port;
  std::unique_ptr<TestFrontend> fe;
};

Guest MakeGuest(const std::string& name) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) abort();
  VhostDevice::Options o;
  o.name = name;
  auto port = VhostPortFactory()(UniqueFd(sv[0]), o);
  auto fe = TestFrontend::Create(UniqueFd(sv[1]), {});
  if (!port.ok() || !fe.ok()) abort();
  return {std::shared_ptr<GuestPort>(std::move(*port)), std::move(*fe)};
}

// The control thread: serves every guest's vhost-user messages.
class Pump {
 public:
  explicit Pump(std::vector<GuestPort*> ports) : ports_(std::move(ports)), t_([this] { Run(); }) {}
  ~Pump() {
    stop_ = true;
    t_.join();
  }

 private:
  void Run() {
    while (!stop_) {
      std::vector<pollfd> p;
      for (GuestPort* g : ports_) p.push_back({g->fd(), POLLIN, 0});
      if (poll(p.data(), p.size(), 20) <= 0) continue;
      for (size_t i = 0; i < p.size(); ++i)
        if (p[i].revents) (void)ports_[i]->OnReadable();
    }
  }
  std::vector<GuestPort*> ports_;
  std::atomic<bool> stop_{false};
  std::thread t_;
};

void Attack(TestFrontend& fe, const std::atomic<bool>& stop) {
  const uint16_t zeros = kMaxChainDescs - 1;
  const uint32_t size = fe.config().queue_size;
  const uint32_t per = zeros + 1u;
  const uint32_t chains = size / per;
  UniqueFd kick(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  UniqueFd call(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const uint64_t idx = 1;
  const int kfd = kick.get(), cfd = call.get();
  (void)fe.Send(NPA_VHOST_USER_SET_VRING_KICK, &idx, 8, {&kfd, 1});
  (void)fe.Send(NPA_VHOST_USER_SET_VRING_CALL, &idx, 8, {&cfd, 1});
  npa_vring_desc* d = fe.desc(1);
  npa_vring_avail* a = fe.avail(1);
  npa_vring_used* u = fe.used(1);
  uint8_t* buf = fe.mem() + fe.mem_size() / 2;
  std::memset(buf, 0, 12);
  std::memset(buf + 12, 0xee, 60);
  for (uint32_t c = 0; c < chains; ++c) {
    const uint16_t head = static_cast<uint16_t>(c * per);
    for (uint16_t k = 0; k < zeros; ++k)
      d[head + k] = {fe.gpa(buf), 0, NPA_VRING_DESC_F_NEXT, static_cast<uint16_t>(head + k + 1)};
    d[head + zeros] = {fe.gpa(buf), 72, 0, 0};
  }
  // Re-post every chain the moment the agent has used them all, and kick.
  // In between the attacker sleeps on its call eventfd (it asks for an
  // interrupt on every used update, which costs the agent a write per
  // burst): a hostile guest has vCPUs of its own, and on a two-core
  // machine a spinning attacker would starve the good guest's producer of
  // CPU, which measures the scheduler, not the dataplane.
  while (!stop.load(std::memory_order_relaxed)) {
    if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == a->idx) {
      for (uint32_t c = 0; c < chains; ++c) {
        const uint16_t i = a->idx;
        a->ring[i & (size - 1)] = static_cast<uint16_t>(c * per);
        __atomic_store_n(&a->idx, static_cast<uint16_t>(i + 1), __ATOMIC_RELEASE);
      }
      const uint64_t one = 1;
      (void)!write(kfd, &one, 8);
      continue;
    }
    pollfd p{cfd, POLLIN, 0};
    if (poll(&p, 1, 1) > 0) {
      uint64_t v;
      (void)!read(cfd, &v, 8);
    }
  }
}

struct Result {
  int attackers;
  double good_fps, share, desc_share;
  uint64_t sent, taken, lost, hostile_frames;
};

Result RunOnce(int n, double seconds) {
  Dataplane::Options o;
  o.mode = DataplaneMode::kSink;
  o.idle_spins = 1u << 30;  // never sleep: measure the polling share
  Dataplane dp(o, nullptr);
  Guest good = MakeGuest("good");
  std::vector<Guest> bad;
  for (int i = 0; i < n; ++i) bad.push_back(MakeGuest("hostile" + std::to_string(i)));
  std::vector<GuestPort*> ports{good.port.get()};
  for (auto& b : bad) ports.push_back(b.port.get());
  Pump pump(ports);
  if (!good.fe->Handshake().ok()) abort();
  for (auto& b : bad)
    if (!b.fe->Handshake().ok()) abort();
  if (!dp.Start().ok()) abort();
  if (!dp.AddGuest(1, good.port, std::nullopt).ok()) abort();
  for (int i = 0; i < n; ++i)
    if (!dp.AddGuest(2 + i, bad[i].port, std::nullopt).ok()) abort();
  std::atomic<bool> stop{false};
  std::vector<std::thread> attackers;
  for (auto& b : bad) attackers.emplace_back([&, fe = b.fe.get()] { Attack(*fe, stop); });
  // Warm up, then measure.
  uint64_t sent = 0;
  char frame[64] = {};
  auto stream_until = [&](Clock::time_point end) {
    while (Clock::now() < end) {
      good.fe->ReapTx(0);
      while (good.fe->SendFrame(0, frame, sizeof frame)) ++sent;
    }
  };
  stream_until(Clock::now() + std::chrono::milliseconds(200));
  const uint64_t g0 = good.port->counters(0).tx_packets;
  uint64_t h0 = 0;
  for (auto& b : bad) h0 += b.port->counters(0).tx_packets + b.port->counters(0).tx_dropped;
  const auto t0 = Clock::now();
  stream_until(t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  const uint64_t g1 = good.port->counters(0).tx_packets;
  uint64_t h1 = 0;
  for (auto& b : bad) h1 += b.port->counters(0).tx_packets + b.port->counters(0).tx_dropped;
  stop = true;
  for (auto& t : attackers) t.join();
  // Drain: everything the good guest sent must be taken.
  for (int i = 0; i < 2000 && good.port->counters(0).tx_packets < sent; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Result r{};
  r.attackers = n;
  r.sent = sent;
  r.taken = good.port->counters(0).tx_packets;
  r.lost = r.sent - std::min(r.sent, r.taken);
  r.good_fps = (g1 - g0) / dt;
  r.hostile_frames = h1 - h0;
  r.share = double(g1 - g0) / double((g1 - g0) + (h1 - h0));
  const double good_desc = double(g1 - g0), bad_desc = double(h1 - h0) * kMaxChainDescs;
  r.desc_share = good_desc / (good_desc + bad_desc);
  dp.Stop();
  return r;
}

}  // namespace
}  // namespace npa::agent

int main(int argc, char** argv) {
  std::vector<int> ns = {0, 1, 4, 8};
  double seconds = 2;
  double factor = 1.0;
  const char* usage = "usage: %s [--attackers 0,1,4,8] [--seconds S] [--fair-factor F]\n";
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf(usage, argv[0]);
      return 0;
    }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--seconds") seconds = atof(argv[i + 1]);
    else if (k == "--fair-factor") factor = atof(argv[i + 1]);
    else if (k == "--attackers") {
      ns.clear();
      for (const char* p = argv[i + 1]; *p;) {
        ns.push_back(atoi(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else {
      fprintf(stderr, usage, argv[0]);
      return 2;
    }
  }
  bool ok = true;
  double base = 0;
  std::string json = "{\"bench\":\"fairness\",\"runs\":[";
  for (size_t i = 0; i < ns.size(); ++i) {
    npa::agent::Result r = npa::agent::RunOnce(ns[i], seconds);
    if (r.attackers == 0) base = r.good_fps;
    const double rel = base > 0 ? r.good_fps / base : 0;
    const double fair = 1.0 / (r.attackers + 1);
    const bool run_ok = r.lost == 0 && r.share + 1e-9 >= fair * factor;
    ok &= run_ok;
    printf("attackers %d: good %.0f frames/s (%.2f of alone), share of frames %.3f (fair %.3f), "
           "of descriptors %.3f, hostile chains %llu, good sent %llu taken %llu lost %llu %s\n",
           r.attackers, r.good_fps, rel, r.share, fair, r.desc_share,
           (unsigned long long)r.hostile_frames, (unsigned long long)r.sent,
           (unsigned long long)r.taken, (unsigned long long)r.lost, run_ok ? "ok" : "FAIL");
    char b[256];
    snprintf(b, sizeof b,
             "%s{\"attackers\":%d,\"good_fps\":%.0f,\"relative\":%.3f,\"share\":%.3f,\"desc_share\":%.3f,\"lost\":%llu}",
             i ? "," : "", r.attackers, r.good_fps, rel, r.share, r.desc_share, (unsigned long long)r.lost);
    json += b;
  }
  json += "]}";
  printf("%s\n", json.c_str());
  return ok ? 0 : 1;
}
