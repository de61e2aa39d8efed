// vf_dispatch_bench: what the shell's VF-path dispatch costs per frame, in
// instructions (docs/architecture.md, "Performance targets": "no more than a few
// instructions per packet over calling the plug-in directly").
//
// The modes drive the same plug-in code (tests/plugins/null/, the test
// loopback built with LB_NULL: tx_burst completes the whole burst with one
// buf_free_tx call, rx_burst hands up a full burst of 64 B frames it takes
// from the services' buf_alloc) with the same frames (64 B, burst 32) and
// the same buffer pool code (shell/buf_pool.h):
//
//   --mode=direct  the plug-in loaded with the shell's loader, a minimal
//                  services table over one BufPool, probe/configure/start on
//                  a made-up device; each burst is pool Alloc, lengths,
//                  fast.tx_burst (TX), fast.rx_burst, pool Free (RX).
//   --mode=shell   a real npa_shell on its emulated path against an
//                  in-process vhost-user back end (hypervisor/vhost), then a
//                  VfOffer from a test agent on a UNIX socket with a fake
//                  VFIO device, so the shell runs the same plug-in on its VF
//                  path; each burst is npa_buf_alloc, lengths, npa_tx_burst
//                  (TX), npa_rx_burst, npa_buf_free (RX).
//                  The plug-in sets NPA_PLUGIN_F_TX_FREE (ABI 1.1): the
//                  shell counts its TX frames per burst; and
//                  NPA_PLUGIN_F_RX_BYTES: the RX frames go up unchecked (the
//                  default) and the plug-in counts their bytes, checked to
//                  be in force.
//   --mode=shell-checked
//                  as shell, opened with NPA_SHELL_F_CHECK_PLUGIN_RX: the
//                  shell checks every RX frame and counts its bytes.
//   --mode=shell-v10
//                  as shell, with the same plug-in built as an ABI 1.0 one
//                  (tests/plugins/null_v10/: no flag, TX frames back through
//                  buf_free): the shell marks each TX frame
//                  (shell/vf/tx_tracker.h), the cost every 1.0 plug-in keeps.
//
// --phase=tx|rx|both (default both) picks what a burst of the loop does:
// the TX half, the RX half, or both (the ctest smoke tests). The script
// measures tx and rx in separate runs, so each has its own per-frame cost.
//
// Only the measured loop is instrumented (CALLGRIND_START/STOP_
// INSTRUMENTATION; run valgrind with --instr-atstart=no), after a warm-up
// of the same loop. scripts/bench-vf-dispatch.sh runs both modes under
// callgrind and turns the totals into instructions per frame. Without
// valgrind the program runs as is (the ctest smoke test does that).
//
// Output: one JSON line, {"mode":...,"frames":N,...}; ns_per_frame is wall
// clock, informational only (noisy machines: the instruction count is the
// figure). Exit: 0 ok, 1 setup or run failure (reason on stderr), 2 usage.
#include <linux/vfio.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define NPA_HAVE_CALLGRIND 1
#else
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#define NPA_HAVE_CALLGRIND 0
#endif

#include "common/clock.h"
#include "common/unix_socket.h"
#include "hypervisor/vhost/vhost_device.h"
#include "npa/plugin.h"
#include "npa/shell.h"
#include "shell/buf_pool.h"
#include "tests/support/fake_agent_test_util.h"
#include "tests/support/fake_vfio_test_util.h"
#include "shell/vf/plugin_loader.h"
#include "shell/shell_impl.h"
#include "shell/vf/tx_tracker.h"
#include "shell/vf/vf_switch.h"

namespace {

using npa::UniqueFd;
using npa::shell::BufPool;

constexpr uint16_t kBurst = 32;
constexpr uint16_t kFrameLen = 64;
constexpr uint16_t kVendor = 0x1d0f, kDevice = 0x1011;  // tests/plugins LB_NULL
constexpr uint16_t kRing = 256;
constexpr uint32_t kWarmBursts = 2000;

enum Phase : unsigned { kTx = 1, kRx = 2, kBoth = 3 };

struct Args {
  std::string mode;
  bool check_rx = false;  // --mode=shell-checked
  Phase phase = kBoth;
  uint64_t frames = 320000;
  std::string plugin_dir = NPA_BENCH_PLUGIN_DIR;
};

int Fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int Fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("vf_dispatch_bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

// The same 64-byte frame in every buffer, written once: the loop sets only
// the lengths (Alloc resets the header, not the data).
void WriteFrame(npa_buf* b) {
  uint8_t* d = static_cast<uint8_t*>(npa_buf_data(b));
  memset(d, 0xff, 6);
  memcpy(d + 6, "\x02\x00\x00\x00\x00\x99", 6);
  d[12] = 0x88;
  d[13] = 0xb5;
  memset(d + 14, 0x5a, kFrameLen - 14);
}

struct Result {
  uint64_t tx = 0, rx = 0, short_alloc = 0, ns = 0;
};

void PrintJson(const Args& a, const Result& r, const std::string& extra) {
  printf("{\"mode\":\"%s\",\"phase\":\"%s\",\"frames\":%" PRIu64 ",\"burst\":%u,\"frame_len\":%u,\"tx\":%" PRIu64
         ",\"rx\":%" PRIu64 ",\"short_alloc\":%" PRIu64 ",\"callgrind_macros\":%s,"
         "\"ns_per_frame\":%.2f%s}\n",
         a.mode.c_str(), a.phase == kTx ? "tx" : a.phase == kRx ? "rx" : "both", a.frames, kBurst, kFrameLen, r.tx, r.rx, r.short_alloc,
         NPA_HAVE_CALLGRIND ? "true" : "false",
         a.frames ? static_cast<double>(r.ns) / static_cast<double>(a.frames) : 0.0,
         extra.c_str());
  fflush(stdout);
}

// ---------------------------------------------------------------- direct --

// The services a plug-in needs to run one queue: buffers from one BufPool,
// logging to stderr; no BARs, config space, DMA or interrupts.
class DirectServices {
 public:
  static constexpr uint32_t kSlots = 2048;

  absl::Status Init() {
    mem_ = static_cast<uint8_t*>(aligned_alloc(4096, size_t{kSlots} * NPA_BUF_SLOT_SIZE));
    if (mem_ == nullptr) return absl::ResourceExhaustedError("buffer memory");
    const uintptr_t lo = reinterpret_cast<uintptr_t>(mem_);
    absl::Status s = pool_.Init(mem_, kSlots, 0, kSlots, lo, lo + size_t{kSlots} * NPA_BUF_SLOT_SIZE);
    if (!s.ok()) return s;
    for (uint32_t i = 0; i < kSlots; i++)
      WriteFrame(reinterpret_cast<npa_buf*>(mem_ + size_t{i} * NPA_BUF_SLOT_SIZE));
    svc_.struct_size = sizeof svc_;
    svc_.abi_major = NPA_PLUGIN_ABI_MAJOR;
    svc_.abi_minor = NPA_PLUGIN_ABI_MINOR;
    svc_.ctx = this;
    svc_.bar_map = [](void*, uint32_t, volatile void**, uint64_t*) { return -EINVAL; };
    svc_.cfg_read = [](void*, uint32_t, uint32_t, uint32_t*) { return -EINVAL; };
    svc_.cfg_write = [](void*, uint32_t, uint32_t, uint32_t) { return -EINVAL; };
    svc_.dma_alloc = [](void*, uint64_t, uint64_t, npa_dma_mem*) { return -ENOMEM; };
    svc_.dma_free = [](void*, npa_dma_mem*) {};
    svc_.irq_setup = [](void*, uint32_t, int*) { return -EINVAL; };
    svc_.buf_alloc = [](void* ctx, uint16_t, npa_buf** bufs, uint16_t n) -> uint16_t {
      return static_cast<uint16_t>(static_cast<DirectServices*>(ctx)->pool_.Alloc(bufs, n));
    };
    svc_.buf_free = [](void* ctx, uint16_t, npa_buf** bufs, uint16_t n) {
      static_cast<DirectServices*>(ctx)->pool_.Free(bufs, n);
    };
    svc_.log = [](void*, int level, const char* fmt, va_list ap) {
      if (level > NPA_LOG_WARN) return;
      fputs("plug-in: ", stderr);
      vfprintf(stderr, fmt, ap);
      fputc('\n', stderr);
    };
    svc_.now_ns = [](void*) -> uint64_t { return npa::MonotonicNs(); };
    svc_.sleep_us = [](void*, uint32_t us) { usleep(us > 1000000 ? 1000000 : us); };
    return absl::OkStatus();
  }
  ~DirectServices() { free(mem_); }

  const npa_services* table() const { return &svc_; }
  BufPool& pool() { return pool_; }

 private:
  uint8_t* mem_ = nullptr;
  BufPool pool_;
  npa_services svc_{};
};

// The burst loop of --mode=direct: what an application linked against the
// plug-in itself would run.
Result DirectLoop(BufPool& pool, const npa_plugin_fast_ops& f, npa_plugin_queue* pq,
                  uint64_t bursts, Phase phase) {
  Result r;
  npa_buf* b[kBurst];
  npa_buf* rx[kBurst];
  for (uint64_t i = 0; i < bursts; i++) {
    if (phase & kTx) {
      uint16_t n = static_cast<uint16_t>(pool.Alloc(b, kBurst));
      r.short_alloc += n != kBurst;
      for (uint16_t k = 0; k < n; k++) {
        b[k]->data_len = kFrameLen;
        b[k]->pkt_len = kFrameLen;
      }
      uint16_t s = f.tx_burst(pq, b, n);
      if (s < n) pool.Free(b + s, static_cast<uint32_t>(n - s));
      r.tx += s;
    }
    if (phase & kRx) {
      uint16_t got = f.rx_burst(pq, rx, kBurst);
      if (got) pool.Free(rx, got);
      r.rx += got;
    }
  }
  return r;
}

int RunDirect(const Args& a) {
  const std::string so = a.plugin_dir + "/libtest_null.so";
  auto lp = npa::shell::LoadPlugin(so, npa::shell::LoadOptions{});
  if (!lp.ok()) return Fail("loading %s: %s", so.c_str(), std::string(lp.status().message()).c_str());
  std::unique_ptr<npa::shell::LoadedPlugin> plugin = std::move(*lp);
  DirectServices svc;
  if (absl::Status s = svc.Init(); !s.ok()) return Fail("%s", std::string(s.message()).c_str());
  const npa_plugin_ctrl_ops& c = plugin->ctrl();
  const npa_plugin_fast_ops& f = plugin->fast();

  npa_device_info info{};
  info.struct_size = sizeof info;
  info.vendor = kVendor;
  info.device = kDevice;
  info.subsystem_vendor = kVendor;
  info.subsystem_device = 1;
  info.class_code = 0x020000;
  snprintf(info.pci_address, sizeof info.pci_address, "0000:00:05.0");
  npa_plugin_dev* dev = nullptr;
  int rc = c.probe(svc.table(), &info, &dev);
  if (rc != 0) return Fail("probe: %d (%s)", rc, strerror(-rc));
  npa_dev_config cfg{};
  cfg.struct_size = sizeof cfg;
  cfg.nb_queue_pairs = 1;
  cfg.ring_size = kRing;
  cfg.mtu = 1500;
  if ((rc = c.configure(dev, &cfg)) != 0) return c.remove(dev), Fail("configure: %d", rc);
  if ((rc = c.start(dev)) != 0) return c.remove(dev), Fail("start: %d", rc);
  npa_plugin_queue* pq = c.queue(dev, 0);
  if (pq == nullptr) return c.stop(dev), c.remove(dev), Fail("queue 0: none");

  DirectLoop(svc.pool(), f, pq, kWarmBursts, a.phase);
  const uint64_t bursts = a.frames / kBurst;
  const uint64_t t0 = npa::MonotonicNs();
  CALLGRIND_START_INSTRUMENTATION;
  Result r = DirectLoop(svc.pool(), f, pq, bursts, a.phase);
  CALLGRIND_STOP_INSTRUMENTATION;
  r.ns = npa::MonotonicNs() - t0;

  c.stop(dev);
  c.remove(dev);
  if ((a.phase & kTx) && r.tx != bursts * kBurst)
    return Fail("direct: the plug-in took %" PRIu64 " of %" PRIu64 " frames", r.tx, bursts * kBurst);
  if ((a.phase & kRx) && r.rx != bursts * kBurst)
    return Fail("direct: the plug-in delivered %" PRIu64 " of %" PRIu64 " frames", r.rx, bursts * kBurst);
  PrintJson(a, r, ",\"plugin\":\"" + plugin->name() + "\"");
  return 0;
}

// ----------------------------------------------------------------- shell --

// The vhost-user far end of the emulated path: it serves the session (memory
// table, rings) and nothing else; no frame goes that way in this benchmark.
// Blocks in poll between messages, so it adds nothing while the loop runs.
class QuietBackend {
 public:
  absl::Status Start(UniqueFd conn) {
    auto d = npa::agent::VhostDevice::Create(std::move(conn), {.name = "vfbench"});
    if (!d.ok()) return d.status();
    dev_ = std::move(*d);
    thread_ = std::thread([this] {
      for (int i = 0; i < 100000000 && !stop_; i++) {
        pollfd p{dev_->fd(), POLLIN, 0};
        if (poll(&p, 1, 50) == 1 && !dev_->OnReadable().ok()) break;
      }
    });
    return absl::OkStatus();
  }
  ~QuietBackend() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::unique_ptr<npa::agent::VhostDevice> dev_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

// The burst loop of --mode=shell: what a guest application runs.
Result ShellLoop(npa_shell* sh, uint64_t bursts, Phase phase) {
  Result r;
  npa_buf* b[kBurst];
  npa_buf* rx[kBurst];
  for (uint64_t i = 0; i < bursts; i++) {
    if (phase & kTx) {
      uint16_t n = npa_buf_alloc(sh, 0, b, kBurst);
      r.short_alloc += n != kBurst;
      for (uint16_t k = 0; k < n; k++) {
        b[k]->data_len = kFrameLen;
        b[k]->pkt_len = kFrameLen;
      }
      uint16_t s = npa_tx_burst(sh, 0, b, n);
      if (s < n) npa_buf_free(sh, 0, b + s, static_cast<uint16_t>(n - s));
      r.tx += s;
    }
    if (phase & kRx) {
      uint16_t got = npa_rx_burst(sh, 0, rx, kBurst);
      if (got) npa_buf_free(sh, 0, rx, got);
      r.rx += got;
    }
  }
  return r;
}

// Everything the shell mode sets up, torn down in reverse by the destructor.
struct ShellRig {
  std::string dir, ctl;
  std::unique_ptr<npa::shell::FakeAgent> agent;
  QuietBackend backend;
  npa_shell* sh = nullptr;

  ~ShellRig() {
    if (sh) npa_shell_close(sh);  // gives the VF back (bounded), then closes
    agent.reset();
    npa::shell::SetVfDeviceIoFactoryForTest(nullptr);
    if (!ctl.empty()) unlink(ctl.c_str());
    if (!dir.empty()) rmdir(dir.c_str());
  }

  int Open(const Args& a) {
    dir = "/tmp/npa_vf_dispatch_bench." + std::to_string(getpid());
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Fail("mkdir %s: %s", dir.c_str(), strerror(errno));
    ctl = dir + "/agent.ctl";
    if (setenv("NPA_PLUGIN_PATH", a.plugin_dir.c_str(), 1) != 0) return Fail("setenv");
    npa::shell::SetVfDeviceIoFactoryForTest(
        [](int, const npa::control::VfOffer& o) -> std::unique_ptr<npa::shell::VfioDeviceIo> {
          return std::make_unique<npa::shell::FakeVfioDevice>(static_cast<uint16_t>(o.vendor()),
                                            static_cast<uint16_t>(o.device()));
        });
    auto l = npa::ListenUnix(ctl);
    if (!l.ok()) return Fail("listen %s: %s", ctl.c_str(), std::string(l.status().message()).c_str());
    UniqueFd lfd = std::move(*l);
    std::string agent_err;
    std::thread t([&] {
      pollfd p{lfd.get(), POLLIN, 0};
      if (poll(&p, 1, 10000) != 1) return void(agent_err = "the shell did not connect");
      UniqueFd c(accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c.valid()) return void(agent_err = "accept failed");
      agent = std::make_unique<npa::shell::FakeAgent>(std::move(c));
      if (auto h = agent->ExpectHello(); !h.ok()) return void(agent_err = "no Hello");
      if (!agent->Welcome().ok()) return void(agent_err = "Welcome failed");
      if (absl::Status s = backend.Start(std::move(agent->vhost_peer)); !s.ok())
        agent_err = std::string(s.message());
    });
    npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
    oa.control_path = ctl.c_str();
    oa.name = "vfbench";
    oa.flags = NPA_SHELL_F_NO_HUGEPAGES | (a.check_rx ? NPA_SHELL_F_CHECK_PLUGIN_RX : 0u);
    int rc = npa_shell_open(&oa, &sh);
    t.join();
    if (!agent_err.empty()) return Fail("test agent: %s", agent_err.c_str());
    if (rc != 0) return Fail("npa_shell_open: %s", npa_shell_last_error(nullptr));
    npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
    qc.ring_size = kRing;
    // The offloads the null device has (test_good.c LB_NULL): the VF path
    // then has no software offload to run, as on a device with them.
    qc.offloads = NPA_OFFLOAD_TX_CSUM | NPA_OFFLOAD_VLAN_INSERT;
    if (npa_shell_configure(sh, &qc) != 0) return Fail("configure: %s", npa_shell_last_error(nullptr));
    auto f = agent->Receive();  // the region announcement
    if (!f.ok() || !f->env.has_regions()) return Fail("no region announcement from the shell");
    if (npa_shell_start(sh) != 0) return Fail("start: %s", npa_shell_last_error(nullptr));
    return 0;
  }

  // Offers the "VF" and bursts (empty) until the queue runs on it: the
  // switch is applied by the queue's owner, this thread.
  int SwitchToVf() {
    npa::control::Envelope e;
    auto* o = e.mutable_vf_offer();
    o->set_pci_address("0000:00:05.0");
    o->set_vendor(kVendor);
    o->set_device(kDevice);
    o->set_subsystem_vendor(kVendor);
    o->set_subsystem_device(1);
    o->set_class_code(0x020000);
    o->set_offer_id(1);
    UniqueFd stand_in(eventfd(0, EFD_CLOEXEC));  // the fake device answers for it
    int fd = stand_in.get();
    if (!agent->Send(e, std::span<const int>(&fd, 1)).ok()) return Fail("sending the VfOffer");
    npa_shell_info in{};
    const uint64_t end = npa::MonotonicNs() + 20000000000ull;
    for (int i = 0; i < 20000 && npa::MonotonicNs() < end; i++) {
      npa_rx_burst(sh, 0, nullptr, 0);
      in.struct_size = sizeof in;
      if (npa_shell_get_info(sh, &in) == 0 && in.path == NPA_PATH_VF) break;
      usleep(1000);
    }
    for (int i = 0; i < 8; i++) {
      auto f = agent->Receive(10000);
      if (!f.ok()) return Fail("no VfAccept: %s", std::string(f.status().message()).c_str());
      if (!f->env.has_vf_accept()) continue;
      if (!f->env.vf_accept().accepted())
        return Fail("VF offer declined: %s", f->env.vf_accept().reason().c_str());
      break;
    }
    in.struct_size = sizeof in;
    if (npa_shell_get_info(sh, &in) != 0 || in.path != NPA_PATH_VF)
      return Fail("the shell did not switch to the VF path");
    if (strcmp(in.plugin, "test_null") != 0) return Fail("the VF runs plug-in '%s'", in.plugin);
    return 0;
  }
};

int RunShell(const Args& a, bool v10) {
  ShellRig rig;
  if (int rc = rig.Open(a); rc != 0) return rc;
  if (int rc = rig.SwitchToVf(); rc != 0) return rc;
  // The mode under test is the one the shell chose from the plug-in's flags.
  if (rig.sh->vf->sw_tx_csum()) return Fail("the VF path checksums in software (LB_NULL has TX_CSUM)");
  // The 1.0 build has no NPA_PLUGIN_F_RX_BYTES.
  const bool plugin_rx_bytes = !a.check_rx && !v10;
  if (rig.sh->vf->plugin_rx_bytes() != plugin_rx_bytes)
    return Fail("the plug-in %s the RX bytes; expected %s", plugin_rx_bytes ? "does not count" : "counts",
                plugin_rx_bytes ? "NPA_PLUGIN_F_RX_BYTES in force" : "the shell to count them");
  if (rig.sh->queues[0].vf_tx.counted() == v10)
    return Fail("the shell %s the plug-in's TX frames; expected %s", v10 ? "counts" : "marks",
                v10 ? "per-frame marks (ABI 1.0)" : "a per-burst count (NPA_PLUGIN_F_TX_FREE)");
  // Write the frame into every buffer the queue's pool has free now (LIFO:
  // the loop cycles through the top ones).
  std::vector<npa_buf*> all(8192);
  uint16_t got = 0;
  size_t total = 0;
  while (total < all.size() &&
         (got = npa_buf_alloc(rig.sh, 0, all.data() + total,
                              static_cast<uint16_t>(std::min<size_t>(256, all.size() - total)))) > 0)
    total += got;
  for (size_t i = 0; i < total; i++) WriteFrame(all[i]);
  for (size_t i = 0; i < total; i += 256)
    npa_buf_free(rig.sh, 0, all.data() + i, static_cast<uint16_t>(std::min<size_t>(256, total - i)));

  ShellLoop(rig.sh, kWarmBursts, a.phase);
  npa_queue_stats before{};
  before.struct_size = sizeof before;
  npa_shell_queue_stats(rig.sh, 0, &before);
  const uint64_t bursts = a.frames / kBurst;
  const uint64_t t0 = npa::MonotonicNs();
  CALLGRIND_START_INSTRUMENTATION;
  Result r = ShellLoop(rig.sh, bursts, a.phase);
  CALLGRIND_STOP_INSTRUMENTATION;
  r.ns = npa::MonotonicNs() - t0;
  npa_queue_stats after{};
  after.struct_size = sizeof after;
  npa_shell_queue_stats(rig.sh, 0, &after);
  const uint64_t vf_tx = after.tx_vf_packets - before.tx_vf_packets;
  const uint64_t vf_rx = after.rx_vf_packets - before.rx_vf_packets;
  const uint64_t want_tx = (a.phase & kTx) ? bursts * kBurst : 0;
  const uint64_t want_rx = (a.phase & kRx) ? bursts * kBurst : 0;
  if (r.tx != want_tx || vf_tx != r.tx)
    return Fail("shell: %" PRIu64 " of %" PRIu64 " frames taken, %" PRIu64 " on the VF", r.tx,
                want_tx, vf_tx);
  if (r.rx != want_rx || vf_rx != r.rx)
    return Fail("shell: %" PRIu64 " of %" PRIu64 " frames received, %" PRIu64 " from the VF",
                r.rx, want_rx, vf_rx);
  // The byte counters move by exactly the frames' bytes, whoever counts
  // them (the shell per frame, or the plug-in's queue_stats).
  if (after.tx_bytes - before.tx_bytes != want_tx * kFrameLen ||
      after.rx_bytes - before.rx_bytes != want_rx * kFrameLen)
    return Fail("shell: byte counters moved tx %" PRIu64 " rx %" PRIu64 ", expected %" PRIu64
                " and %" PRIu64, after.tx_bytes - before.tx_bytes, after.rx_bytes - before.rx_bytes,
                want_tx * kFrameLen, want_rx * kFrameLen);
  char extra[200];
  snprintf(extra, sizeof extra, ",\"plugin\":\"test_null\",\"path\":\"vf\",\"tx_vf\":%" PRIu64
           ",\"rx_vf\":%" PRIu64 ",\"pool_buffers\":%zu", vf_tx, vf_rx, total);
  PrintJson(a, r, extra);
  return 0;
}

int Usage() {
  fprintf(stderr,
          "usage: vf_dispatch_bench --mode=direct|shell|shell-checked|shell-v10 [--phase=tx|rx|both]\n"
          "                         [--frames=N] [--plugin-dir=DIR]\n"
          "  phase: what each burst of the loop does (default both)\n"
          "  N: frames in the measured loop, a multiple of %u (default 320000)\n"
          "  DIR: where libtest_null.so is (default %s; %s for shell-v10)\n",
          kBurst, NPA_BENCH_PLUGIN_DIR, NPA_BENCH_PLUGIN_DIR_V10);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  bool dir_given = false;
  for (int i = 1; i < argc; i++) {
    std::string s = argv[i];
    if (s.rfind("--mode=", 0) == 0) {
      a.mode = s.substr(7);
    } else if (s.rfind("--phase=", 0) == 0) {
      const std::string p = s.substr(8);
      if (p == "tx") a.phase = kTx;
      else if (p == "rx") a.phase = kRx;
      else if (p == "both") a.phase = kBoth;
      else return Usage();
    } else if (s.rfind("--frames=", 0) == 0) {
      char* end = nullptr;
      errno = 0;
      unsigned long long v = strtoull(s.c_str() + 9, &end, 10);
      if (errno || *end || v == 0 || v % kBurst || v > (1ull << 40)) return Usage();
      a.frames = v;
    } else if (s.rfind("--plugin-dir=", 0) == 0) {
      a.plugin_dir = s.substr(13);
      dir_given = true;
    } else {
      return Usage();
    }
  }
  if (a.mode == "direct") return RunDirect(a);
  if (a.mode == "shell") return RunShell(a, false);
  if (a.mode == "shell-checked") {
    a.check_rx = true;
    return RunShell(a, false);
  }
  if (a.mode == "shell-v10") {
    if (!dir_given) a.plugin_dir = NPA_BENCH_PLUGIN_DIR_V10;
    return RunShell(a, true);
  }
  return Usage();
}
