// The C API of libnpa_shell (npa/shell.h). Only the npa_* symbols leave the
// library (version script + -fvisibility=hidden, see CMakeLists.txt).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/unix_socket.h"
// The C API keeps default visibility; everything else is hidden.
#pragma GCC visibility push(default)
#include "npa/shell.h"
#pragma GCC visibility pop
#include "shell/reconnect.h"
#include "shell/shell_impl.h"
#include "shell/vf/vf_switch.h"

#include "shell/emulated/virtio_defs.h"

#define NPA_UNLIKELY(x) __builtin_expect(!!(x), 0)

using npa::shell::QueueCounters;
using npa::shell::QueueOps;
using npa::shell::QueueState;
using npa::shell::RssRx;
using npa::shell::ShellState;

namespace {

thread_local std::string g_last_error;

int Fail(int err, std::string msg) {
  g_last_error = std::move(msg);
  NPA_LOG(Debug, "shell: %s", g_last_error.c_str());
  return err;
}

// Negative errno for a status, by what the caller was doing. Codes follow
// shell.h: -EPROTO for a peer that broke the protocol, -ETIMEDOUT, ...
int ToErrno(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kDataLoss: return -EPROTO;
    case absl::StatusCode::kDeadlineExceeded: return -ETIMEDOUT;
    case absl::StatusCode::kAborted: return -ECONNRESET;
    case absl::StatusCode::kUnavailable: return -ECONNREFUSED;
    default: return npa::StatusToErrno(s);
  }
}

int Fail(const absl::Status& s, const char* what) {
  return Fail(ToErrno(s), absl::StrCat(what, ": ", s.message()));
}

uint16_t NoBurst(void*, npa_buf**, uint16_t, QueueCounters*) { return 0; }

QueueOps StoppedOps() {
  QueueOps o;
  o.rx = NoBurst;
  o.tx = NoBurst;
  return o;
}

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 63) return false;
  for (char ch : n)
    if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-'))
      return false;
  return true;
}

size_t AlignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

}  // namespace

extern "C" {

int npa_shell_open(const npa_shell_open_args* args, npa_shell** out) {
  g_last_error.clear();
  if (out == nullptr || args == nullptr) return Fail(-EINVAL, "npa_shell_open: NULL args or out");
  *out = nullptr;
  // ABI 1.1 callers pass the struct without reconnect_ms: defaults.
  constexpr size_t kV11 = offsetof(npa_shell_open_args, reconnect_ms);
  if (args->struct_size < kV11)
    return Fail(-EINVAL, absl::StrCat("npa_shell_open: struct_size ", args->struct_size, " < ", kV11));
  const uint32_t reconnect_ms =
      args->struct_size >= offsetof(npa_shell_open_args, reserved1) ? args->reconnect_ms : 0;
  if (args->flags & ~(NPA_SHELL_F_NO_HUGEPAGES | NPA_SHELL_F_INTERRUPT | NPA_SHELL_F_NO_RECONNECT |
                      NPA_SHELL_F_TRUST_PLUGIN_RX | NPA_SHELL_F_CHECK_PLUGIN_RX))
    return Fail(-EINVAL, absl::StrCat("npa_shell_open: unknown flags 0x", absl::Hex(args->flags)));
  if ((args->flags & NPA_SHELL_F_TRUST_PLUGIN_RX) && (args->flags & NPA_SHELL_F_CHECK_PLUGIN_RX))
    return Fail(-EINVAL,
                "npa_shell_open: NPA_SHELL_F_TRUST_PLUGIN_RX and NPA_SHELL_F_CHECK_PLUGIN_RX together");
  const bool ctl = args->control_path != nullptr && args->control_path[0] != '\0';
  const bool vu = args->vhost_user_path != nullptr && args->vhost_user_path[0] != '\0';
  if (ctl == vu)
    return Fail(-EINVAL, "npa_shell_open: set exactly one of control_path and vhost_user_path");
  auto sh = std::make_unique<npa_shell>();
  sh->flags = args->flags;
  sh->timeout_ms = args->connect_timeout_ms ? static_cast<int>(std::min<uint32_t>(args->connect_timeout_ms, 3600000)) : 5000;
  sh->name = args->name ? args->name : absl::StrCat("guest-", ::getpid());
  if (!ValidName(sh->name))
    return Fail(-EINVAL, absl::StrCat("npa_shell_open: name '", sh->name,
                                      "' must match [A-Za-z0-9_.-]{1,63}"));
  memcpy(sh->mac, args->mac, 6);
  sh->reconnect_ms = reconnect_ms ? std::min<uint32_t>(reconnect_ms, 3600000)
                                  : npa::shell::kDefaultReconnectMs;
  if (args->control_path) sh->control_path = args->control_path;
  absl::Status s = sh->events.Init();
  if (!s.ok()) return Fail(s, "npa_shell_open");
  npa::UniqueFd vhost;
  if (ctl) {
    npa::shell::ControlClient::Hello h;
    h.name = sh->name;
    memcpy(h.mac.data(), args->mac, 6);
    // The open arguments do not carry the queue count yet: announce the most
    // we may configure; the Welcome says what the agent allows.
    h.queue_pairs = NPA_SHELL_MAX_QUEUES;
    auto cc = npa::shell::ControlClient::Connect(args->control_path, h, sh->timeout_ms);
    if (!cc.ok()) return Fail(cc.status(), absl::StrCat("npa_shell_open: control socket ", args->control_path).c_str());
    sh->control = std::move(*cc);
    vhost = sh->control->TakeVhostFd();
    memcpy(sh->mac, sh->control->welcome().mac.data(), 6);
    sh->mtu = static_cast<uint16_t>(std::min<uint32_t>(sh->control->welcome().mtu, 65535));
  } else {
    auto c = npa::ConnectUnix(args->vhost_user_path, sh->timeout_ms);
    if (!c.ok())
      return Fail(c.status(), absl::StrCat("npa_shell_open: vhost-user socket ", args->vhost_user_path).c_str());
    vhost = std::move(*c);
  }
  sh->fe = std::make_unique<npa::shell::VhostUserFrontend>(std::move(vhost), sh->timeout_ms);
  if (sh->control) {
    npa_shell* raw = sh.get();
    npa::shell::InstallVfHooks(raw);
    npa::shell::InstallSessionHooks(raw);
    s = sh->control->Start(&sh->events, [raw] { return npa::shell::CollectCounters(raw); });
    if (!s.ok()) return Fail(s, "npa_shell_open");
  }
  *out = sh.release();
  return 0;
}

void npa_shell_close(npa_shell* sh) {
  if (sh == nullptr) return;
  // Control thread first: its stats callback reads the queues.
  if (sh->control) sh->control->Stop();
  // The VF before the rings: the plug-in hands its buffers back.
  npa::shell::ReleaseVf(sh, "the shell is closing", false);
  {
    std::lock_guard<std::mutex> l(sh->mu);
    if (sh->state == ShellState::kStarted && sh->active) (void)sh->active->Stop();
  }
  // Close the vhost-user socket before the rings go: the back end stops.
  sh->fe.reset();
  sh->emulated.reset();  // returns ring-held buffers to the pools
  sh->queues.reset();
  delete sh;
}

int npa_shell_configure(npa_shell* sh, const npa_shell_queue_config* qc) {
  g_last_error.clear();
  if (sh == nullptr || qc == nullptr) return Fail(-EINVAL, "npa_shell_configure: NULL argument");
  std::lock_guard<std::mutex> l(sh->mu);
  if (sh->state != ShellState::kOpen) return Fail(-EBUSY, "npa_shell_configure: already configured");
  // ABI 1.3 callers pass the struct without `ring` (24 bytes): AUTO.
  constexpr uint32_t kQcV13 = offsetof(npa_shell_queue_config, ring);
  if (qc->struct_size < kQcV13)
    return Fail(-EINVAL, absl::StrCat("npa_shell_configure: struct_size ", qc->struct_size));
  const uint32_t ring_kind =
      qc->struct_size >= offsetof(npa_shell_queue_config, reserved1) ? qc->ring : NPA_RING_AUTO;
  if (ring_kind > NPA_RING_PACKED)
    return Fail(-EINVAL, absl::StrCat("npa_shell_configure: ring ", ring_kind,
                                      " is not NPA_RING_AUTO, _SPLIT or _PACKED"));
  const uint16_t nqp = qc->nb_queue_pairs;
  if (nqp < 1 || nqp > NPA_SHELL_MAX_QUEUES)
    return Fail(-EINVAL, absl::StrCat("npa_shell_configure: nb_queue_pairs ", nqp, " outside 1..",
                                      NPA_SHELL_MAX_QUEUES));
  if (sh->control && sh->control->welcome().max_queue_pairs != 0 &&
      nqp > sh->control->welcome().max_queue_pairs)
    return Fail(-EINVAL, absl::StrCat("npa_shell_configure: the agent allows ",
                                      sh->control->welcome().max_queue_pairs, " queue pairs, ",
                                      nqp, " requested"));
  const uint32_t ring = qc->ring_size ? qc->ring_size : 1024;
  if (ring < 64 || ring > 32768 || (ring & (ring - 1)) != 0)
    return Fail(-EINVAL, absl::StrCat("npa_shell_configure: ring_size ", ring,
                                      " is not a power of two in 64..32768"));
  const uint32_t pool = qc->pool_size ? qc->pool_size : 4 * ring;
  // The RX ring holds up to ring_size buffers; leave the application some.
  if (pool < ring + 64 || pool > (1u << 20))
    return Fail(-EINVAL, absl::StrCat("npa_shell_configure: pool_size ", pool, " outside ",
                                      ring + 64, "..", 1u << 20));
  const uint64_t known = NPA_OFFLOAD_TX_CSUM | NPA_OFFLOAD_TSO | NPA_OFFLOAD_RX_CSUM |
                         NPA_OFFLOAD_VLAN_INSERT | NPA_OFFLOAD_VLAN_STRIP | NPA_OFFLOAD_RSS_HASH |
                         NPA_OFFLOAD_MRG_RXBUF;
  if (qc->offloads & ~known)
    return Fail(-EINVAL, absl::StrCat("npa_shell_configure: unknown offload bits 0x",
                                      absl::Hex(qc->offloads & ~known)));
  std::shared_ptr<const npa::shell::RssRx> rss;
  if (qc->offloads & NPA_OFFLOAD_RSS_HASH) {  // in software on every path (rss_rx.h)
    auto r = npa::shell::RssRx::Create(nullptr, nqp);
    if (!r.ok()) return Fail(r.status(), "npa_shell_configure");
    rss = std::move(*r);
  }

  // Negotiate first: it decides nothing about memory, and a back end that
  // cannot serve us should fail before we allocate.
  uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_CSUM);
  if (qc->offloads & NPA_OFFLOAD_MRG_RXBUF) want |= 1ull << VIRTIO_NET_F_MRG_RXBUF;
  if (qc->offloads & NPA_OFFLOAD_RX_CSUM) want |= 1ull << VIRTIO_NET_F_GUEST_CSUM;
  if (qc->offloads & NPA_OFFLOAD_TSO)
    want |= (1ull << VIRTIO_NET_F_HOST_TSO4) | (1ull << VIRTIO_NET_F_HOST_TSO6);
  if (nqp > 1) want |= 1ull << VIRTIO_NET_F_MQ;
  // Event index on either ring kind (fewer kicks and interrupts); the packed
  // ring only when the application asks for it: split measured faster with
  // npa-agent (npa/shell.h NPA_RING_*, docs/PERFORMANCE.md "Four rings").
  want |= 1ull << NPA_VIRTIO_F_RING_EVENT_IDX;
  if (ring_kind == NPA_RING_PACKED) want |= 1ull << NPA_VIRTIO_F_RING_PACKED;
  absl::Status s = sh->fe->Negotiate(want, nqp);
  if (!s.ok()) {
    int e = ToErrno(s);
    if (s.code() == absl::StatusCode::kFailedPrecondition) e = -EPROTO;
    if (s.code() == absl::StatusCode::kResourceExhausted) e = -EINVAL;
    return Fail(e, absl::StrCat("npa_shell_configure: ", s.message()));
  }
  // TSO the back end lacks is done in software (tso.h, TxVirtq::Burst).
  const bool packed = (sh->fe->features() & (1ull << NPA_VIRTIO_F_RING_PACKED)) != 0;
  if (ring_kind == NPA_RING_PACKED && !packed)
    return Fail(-EPROTO, "npa_shell_configure: NPA_RING_PACKED asked for, the vhost-user back end "
                         "does not offer VIRTIO_F_RING_PACKED");
  NPA_LOG(Info, "shell '%s': emulated path: %s rings%s, features 0x%llx", sh->name.c_str(),
          packed ? "packed" : "split",
          (sh->fe->features() & (1ull << NPA_VIRTIO_F_RING_EVENT_IDX)) ? " with EVENT_IDX" : "",
          static_cast<unsigned long long>(sh->fe->features()));

  // One region: all rings (page aligned), all buffer slots, and with a
  // control session (a VF may come) the plug-ins' DMA reserve at the end.
  // Each queue's pool gets one extra ring of slots with a control session:
  // the stash a VF's RX ring is filled from at start (shell_impl.h).
  const bool vf_capable = sh->control != nullptr;
  const uint32_t per_q = pool + (vf_capable ? ring : 0);
  const size_t vring = npa::shell::VringBytes(static_cast<uint16_t>(ring));
  const size_t rings_bytes = AlignUp(2 * vring * nqp, 4096);
  const size_t slots_bytes = AlignUp(static_cast<size_t>(per_q) * NPA_BUF_SLOT_SIZE * nqp, 4096);
  const size_t dma_bytes = vf_capable ? npa::shell::kVfDmaReserve : 0;
  auto region = npa::shell::Region::Create(rings_bytes + slots_bytes + dma_bytes,
                                           !(sh->flags & NPA_SHELL_F_NO_HUGEPAGES),
                                           sh->name.c_str());
  if (!region.ok()) return Fail(-ENOMEM, absl::StrCat("npa_shell_configure: ", region.status().message()));
  sh->region = std::move(*region);
  auto queues = std::make_unique<QueueState[]>(nqp);
  npa::shell::EmulatedPath::Params p;
  p.nb_queue_pairs = nqp;
  p.ring_size = static_cast<uint16_t>(ring);
  p.vlan_strip = (qc->offloads & NPA_OFFLOAD_VLAN_STRIP) != 0;
  uint8_t* base = sh->region.base();
  const uintptr_t lo = reinterpret_cast<uintptr_t>(base + rings_bytes);
  const uintptr_t hi = lo + slots_bytes;
  for (uint16_t q = 0; q < nqp; q++) {
    p.rx_ring_mem.push_back(base + 2 * vring * q);
    p.tx_ring_mem.push_back(base + 2 * vring * q + vring);
    s = queues[q].pool.Init(base + rings_bytes + static_cast<size_t>(per_q) * NPA_BUF_SLOT_SIZE * q,
                            per_q, q, per_q * nqp, lo, hi);
    if (!s.ok()) return Fail(s, "npa_shell_configure");
    queues[q].qid = q;
    memcpy(queues[q].mac, sh->mac, 6);
    if (vf_capable) {
      s = queues[q].vf_tx.Init(lo, hi);
      if (!s.ok()) return Fail(s, "npa_shell_configure");
      queues[q].stash_target = ring;
      queues[q].stash.reserve(static_cast<size_t>(per_q) * nqp);
      queues[q].stash.resize(ring);
      queues[q].stash.resize(queues[q].pool.AllocStashed(queues[q].stash.data(), ring));
    }
    p.pools.push_back(&queues[q].pool);
    queues[q].ops = StoppedOps();
    queues[q].staged = StoppedOps();  // a staged RSS change re-applies these as they are
    queues[q].rss = rss.get();
  }
  npa::shell::MemRegion mr{sh->region.iova(), sh->region.size(), sh->region.fd()};
  s = sh->fe->SetMemTable({&mr, 1});
  if (!s.ok()) return Fail(s.code() == absl::StatusCode::kFailedPrecondition ? -EPROTO : ToErrno(s),
                           absl::StrCat("npa_shell_configure: ", s.message()));
  auto emu = npa::shell::EmulatedPath::Create(p, sh->fe.get());
  if (!emu.ok()) {
    const absl::Status& es = emu.status();
    return Fail(es.code() == absl::StatusCode::kFailedPrecondition ? -EPROTO : ToErrno(es),
                absl::StrCat("npa_shell_configure: ", es.message()));
  }
  for (uint16_t q = 0; q < nqp; q++) {
    QueueState& qs = queues[q];
    qs.intr_ep.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!qs.intr_ep) return Fail(-errno, "npa_shell_configure: epoll_create1 failed");
    qs.intr_src = (*emu)->intr_eventfd(q);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u32 = q;
    if (epoll_ctl(qs.intr_ep.get(), EPOLL_CTL_ADD, qs.intr_src, &e) < 0)
      return Fail(-errno, "npa_shell_configure: epoll_ctl failed");
    qs.wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!qs.wake || epoll_ctl(qs.intr_ep.get(), EPOLL_CTL_ADD, qs.wake.get(), &e) < 0)
      return Fail(-errno, "npa_shell_configure: eventfd/epoll_ctl for the switch wake-up failed");
    qs.intr_path = emu->get();
    if (sh->flags & NPA_SHELL_F_INTERRUPT) {
      (*emu)->SetInterrupt(q, true);
      qs.intr_enabled = true;
    }
  }
  if (vf_capable) {
    // Tell the agent what to DMA-map for a VF: the whole region, at
    // iova == our virtual address (buf.h), before any VF can be offered.
    s = npa::shell::AnnounceRegions(sh->control.get(), sh->region);
    if (!s.ok()) return Fail(s, "npa_shell_configure: sending region_announce");
    const size_t dma_off = rings_bytes + slots_bytes;
    sh->dma = std::make_unique<npa::shell::RegionDmaArena>(
        base + dma_off, sh->region.size() - dma_off, sh->region.iova() + dma_off);
  }
  sh->emulated = std::move(*emu);
  sh->queues = std::move(queues);
  if (vf_capable) sh->vf_buffers = std::make_unique<npa::shell::ShellBuffers>(sh->queues.get(), nqp);
  sh->guest_offloads = qc->offloads;
  sh->nb_queue_pairs = nqp;
  sh->ring_size = static_cast<uint16_t>(ring);
  sh->offloads = sh->emulated->offloads() | NPA_OFFLOAD_RSS_HASH;  // software, every path
  sh->rss = std::move(rss);
  sh->active = sh->emulated.get();
  sh->state = ShellState::kConfigured;
  if (absl::Status rs = npa::shell::SendRssConfig(sh, sh->rss.get()); !rs.ok())
    NPA_LOG(Warn, "shell '%s': npa_shell_configure: rss_config not sent (the next reconnect "
            "sends it): %s", sh->name.c_str(), std::string(rs.message()).c_str());
  return 0;
}

int npa_shell_start(npa_shell* sh) {
  g_last_error.clear();
  if (sh == nullptr) return Fail(-EINVAL, "npa_shell_start: NULL shell");
  std::lock_guard<std::mutex> l(sh->mu);
  if (sh->state == ShellState::kStarted) return 0;
  if (sh->state == ShellState::kOpen) return Fail(-EINVAL, "npa_shell_start: configure first");
  absl::Status s = sh->active->Start();
  if (!s.ok()) return Fail(s, "npa_shell_start");
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++)
    sh->queues[q].Stage(sh->active->ops(q), sh->active);
  sh->state = ShellState::kStarted;
  sh->events.Push(NPA_EVENT_PATH_CHANGED, sh->active->kind(), "emulated path (vhost-user)");
  return 0;
}

int npa_shell_stop(npa_shell* sh) {
  g_last_error.clear();
  if (sh == nullptr) return Fail(-EINVAL, "npa_shell_stop: NULL shell");
  // A stopped guest gives its VF back (the agent hears an unsolicited
  // RevokeDone); a later start runs on the emulated path until re-offered.
  npa::shell::ReleaseVf(sh, "the guest stopped its queues", true);
  std::lock_guard<std::mutex> l(sh->mu);
  if (sh->state != ShellState::kStarted) return 0;
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) sh->queues[q].Stage(StoppedOps(), nullptr);
  sh->state = ShellState::kStopped;
  absl::Status s = sh->active->Stop();
  if (!s.ok()) return Fail(s, "npa_shell_stop");
  return 0;
}

uint16_t npa_rx_burst(npa_shell* sh, uint16_t qid, npa_buf** bufs, uint16_t n) {
  if (NPA_UNLIKELY(sh == nullptr || qid >= sh->nb_queue_pairs)) return 0;
  QueueState& q = sh->queues[qid];
  if (NPA_UNLIKELY(q.switch_pending.load(std::memory_order_acquire))) q.ApplySwitch();
  const uint16_t got = q.ops.rx(q.ops.rx_ctx, bufs, n, &q.c);
  // NPA_OFFLOAD_RSS_HASH: one load and a predicted branch per burst when off.
  if (NPA_UNLIKELY(q.rss != nullptr) && got) q.rss->Apply(bufs, got);
  return got;
}

uint16_t npa_tx_burst(npa_shell* sh, uint16_t qid, npa_buf** bufs, uint16_t n) {
  if (NPA_UNLIKELY(sh == nullptr || qid >= sh->nb_queue_pairs)) return 0;
  QueueState& q = sh->queues[qid];
  if (NPA_UNLIKELY(q.switch_pending.load(std::memory_order_acquire))) q.ApplySwitch();
  return q.ops.tx(q.ops.tx_ctx, bufs, n, &q.c);
}

uint16_t npa_buf_alloc(npa_shell* sh, uint16_t qid, npa_buf** bufs, uint16_t n) {
  if (NPA_UNLIKELY(sh == nullptr || qid >= sh->nb_queue_pairs || bufs == nullptr)) return 0;
  return static_cast<uint16_t>(sh->queues[qid].pool.Alloc(bufs, n));
}

void npa_buf_free(npa_shell* sh, uint16_t qid, npa_buf** bufs, uint16_t n) {
  if (NPA_UNLIKELY(sh == nullptr || qid >= sh->nb_queue_pairs || bufs == nullptr)) return;
  sh->queues[qid].pool.Free(bufs, n);
}

namespace {
int SetRssLocked(npa_shell* sh, const npa_rss_config* cfg) {
  std::lock_guard<std::mutex> l(sh->mu);
  if (!sh->rss)
    return Fail(-EINVAL, "npa_shell_set_rss: configure the shell with NPA_OFFLOAD_RSS_HASH first");
  auto r = npa::shell::RssRx::Create(cfg, sh->nb_queue_pairs);
  if (!r.ok()) return Fail(r.status(), "npa_shell_set_rss");
  // Every queue that acknowledged its last staging holds the configuration
  // in force, so the retired ones are nobody's any more.
  bool all_acked = true;
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++)
    all_acked = all_acked && sh->queues[q].switch_pending.load(std::memory_order_acquire) == 0;
  if (all_acked) sh->rss_retired.clear();
  constexpr size_t kMaxRetired = 8;
  if (sh->rss_retired.size() >= kMaxRetired)
    return Fail(-EBUSY, absl::StrCat("npa_shell_set_rss: the queues' owners have not applied the "
                                     "last ", kMaxRetired, " RSS changes (they do at their next burst)"));
  sh->rss_retired.push_back(std::move(sh->rss));
  sh->rss = std::shared_ptr<const npa::shell::RssRx>(std::move(*r));
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) sh->queues[q].StageRss(sh->rss.get());
  // The agent spreads RX by the same table. If it cannot be told (its
  // session is down), the next reconnect tells it; the shell's hash already
  // uses the new configuration.
  if (absl::Status s = npa::shell::SendRssConfig(sh, sh->rss.get()); !s.ok())
    NPA_LOG(Warn, "shell '%s': npa_shell_set_rss: the agent was not told: %s", sh->name.c_str(),
            std::string(s.message()).c_str());
  return 0;
}
}  // namespace

int npa_shell_set_rss(npa_shell* sh, const npa_rss_config* cfg) {
  g_last_error.clear();
  if (sh == nullptr || cfg == nullptr) return Fail(-EINVAL, "npa_shell_set_rss: NULL argument");
  int rc = SetRssLocked(sh, cfg);
  // A VF with hardware RSS gets it too (vf_switch.h); vf_mu is taken before
  // mu everywhere, so only after mu is released.
  if (rc == 0) npa::shell::ReplayRssToVf(sh);
  return rc;
}

int npa_rss_queue(npa_shell* sh, uint32_t hash) {
  g_last_error.clear();
  if (sh == nullptr) return Fail(-EINVAL, "npa_rss_queue: NULL shell");
  std::lock_guard<std::mutex> l(sh->mu);
  if (!sh->rss) return Fail(-EINVAL, "npa_rss_queue: the shell has no NPA_OFFLOAD_RSS_HASH");
  return sh->rss->Queue(hash);
}

int npa_queue_intr_fd(npa_shell* sh, uint16_t qid) {
  g_last_error.clear();
  if (sh == nullptr || qid >= sh->nb_queue_pairs)
    return Fail(-EINVAL, "npa_queue_intr_fd: no such queue (configure first?)");
  return sh->queues[qid].intr_ep.get();
}

int npa_queue_intr_enable(npa_shell* sh, uint16_t qid, int enable) {
  g_last_error.clear();
  if (sh == nullptr || qid >= sh->nb_queue_pairs)
    return Fail(-EINVAL, "npa_queue_intr_enable: no such queue (configure first?)");
  // Called by qid's owning thread: apply a staged switch first, so that
  // intr_path is the path this thread runs on (and is still alive).
  QueueState& q = sh->queues[qid];
  if (q.switch_pending.load(std::memory_order_acquire)) q.ApplySwitch();
  q.intr_enabled = enable != 0;
  // The emulated ring stays armed too: it still delivers frames in flight
  // when the agent moved the MAC (failsafe drain).
  if (sh->emulated) sh->emulated->SetInterrupt(qid, enable != 0);
  if (q.intr_path != nullptr && q.intr_path != sh->emulated.get())
    q.intr_path->SetInterrupt(qid, enable != 0);
  return 0;
}

int npa_queue_intr_ack(npa_shell* sh, uint16_t qid) {
  g_last_error.clear();
  if (sh == nullptr || qid >= sh->nb_queue_pairs)
    return Fail(-EINVAL, "npa_queue_intr_ack: no such queue (configure first?)");
  QueueState& q = sh->queues[qid];
  const int fds[3] = {q.intr_src, q.vf_intr.load(std::memory_order_relaxed), q.wake.get()};
  for (int i = 0; i < 3; i++) {
    if (fds[i] < 0) continue;
    uint64_t v = 0;
    ssize_t r = ::read(fds[i], &v, sizeof v);
    if (r == sizeof v && i < 2) QueueCounters::Add(q.c.interrupts, v);
    else if (r < 0 && errno != EAGAIN) return Fail(-errno, "npa_queue_intr_ack: read of an interrupt eventfd failed");
  }
  return 0;
}

int npa_shell_queue_stats(npa_shell* sh, uint16_t qid, npa_queue_stats* out) {
  g_last_error.clear();
  if (sh == nullptr || out == nullptr) return Fail(-EINVAL, "npa_shell_queue_stats: NULL argument");
  if (out->struct_size < offsetof(npa_queue_stats, rx_packets))
    return Fail(-EINVAL, absl::StrCat("npa_shell_queue_stats: struct_size ", out->struct_size));
  if (qid != UINT16_MAX && qid >= sh->nb_queue_pairs)
    return Fail(-EINVAL, absl::StrCat("npa_shell_queue_stats: queue ", qid, " does not exist"));
  npa_queue_stats st{};
  st.struct_size = static_cast<uint32_t>(std::min<size_t>(out->struct_size, sizeof st));
  const uint16_t first = qid == UINT16_MAX ? 0 : qid;
  const uint16_t last = qid == UINT16_MAX ? sh->nb_queue_pairs : static_cast<uint16_t>(qid + 1);
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  // Fold in the plug-in's device drops, and its TX and RX bytes when it
  // counts them (NPA_PLUGIN_F_TX_BYTES, NPA_PLUGIN_F_RX_BYTES). Its queue_stats is a control op (never
  // concurrent with another): read it only when no switch runs, else keep
  // the last reading.
  {
    std::unique_lock<std::mutex> vl(sh->vf_mu, std::try_to_lock);
    if (vl.owns_lock() && sh->vf)
      for (uint16_t q = first; q < last; q++) {
        const npa_plugin_qstats ps = sh->vf->QueueStats(q);
        auto& live = sh->queues[q].vf_dropped_live;
        if (ps.rx_dropped > live.load()) live.store(ps.rx_dropped);
        if (sh->vf->plugin_tx_bytes()) sh->queues[q].FoldVfTxBytes(ps.tx_bytes);
        if (sh->vf->plugin_rx_bytes()) sh->queues[q].vf_rx_bytes.Fold(ps.rx_bytes);
      }
  }
  for (uint16_t q = first; q < last; q++) {
    const QueueCounters& c = sh->queues[q].c;
    st.rx_dropped += ld(sh->queues[q].vf_dropped_base) + ld(sh->queues[q].vf_dropped_live);
    st.rx_packets += ld(c.rx_packets);
    st.rx_bytes += ld(c.rx_bytes) + sh->queues[q].vf_rx_bytes.load();
    st.tx_packets += ld(c.tx_packets);
    st.tx_bytes += ld(c.tx_bytes) + sh->queues[q].vf_tx_bytes.load();
    st.rx_dropped += ld(c.rx_dropped);
    st.tx_full += ld(c.tx_full);
    st.rx_emulated_packets += ld(c.rx_emulated);
    st.tx_emulated_packets += ld(c.tx_emulated);
    st.rx_vf_packets += ld(c.rx_vf);
    st.tx_vf_packets += ld(c.tx_vf);
    st.kicks += ld(c.kicks);
    st.interrupts += ld(c.interrupts);
    st.tx_vf_lost += ld(sh->queues[q].vf_tx_lost);
    st.tx_resubmitted += ld(sh->queues[q].tx_resubmitted);
    st.announces += ld(sh->queues[q].announces);
  }
  memcpy(out, &st, st.struct_size);
  return 0;
}

int npa_shell_get_info(npa_shell* sh, npa_shell_info* out) {
  g_last_error.clear();
  if (sh == nullptr || out == nullptr) return Fail(-EINVAL, "npa_shell_get_info: NULL argument");
  if (out->struct_size < offsetof(npa_shell_info, mac))
    return Fail(-EINVAL, absl::StrCat("npa_shell_get_info: struct_size ", out->struct_size));
  std::lock_guard<std::mutex> l(sh->mu);
  npa_shell_info in{};
  in.struct_size = static_cast<uint32_t>(std::min<size_t>(out->struct_size, sizeof in));
  in.abi_major = NPA_SHELL_ABI_MAJOR;
  in.abi_minor = NPA_SHELL_ABI_MINOR;
  memcpy(in.mac, sh->mac, 6);
  in.mtu = sh->mtu;
  in.nb_queue_pairs = sh->nb_queue_pairs;
  const bool started = sh->state == ShellState::kStarted;
  in.link_up = started && (sh->control ? sh->control->link_up() : true);
  in.path = started && sh->active ? sh->active->kind() : NPA_PATH_NONE;
  in.offloads = sh->offloads;
  snprintf(in.plugin, sizeof in.plugin, "%s", started ? sh->plugin.c_str() : "");
  in.hugepages = sh->region.base() != nullptr && sh->region.hugepages();
  if (sh->emulated)
    in.ring = sh->emulated->tx(0).packed() ? NPA_RING_PACKED : NPA_RING_SPLIT;
  memcpy(out, &in, in.struct_size);
  return 0;
}

int npa_shell_event_fd(npa_shell* sh) {
  g_last_error.clear();
  if (sh == nullptr) return Fail(-EINVAL, "npa_shell_event_fd: NULL shell");
  return sh->events.fd();
}

int npa_shell_next_event(npa_shell* sh, npa_event* ev) {
  g_last_error.clear();
  if (sh == nullptr || ev == nullptr) return Fail(-EINVAL, "npa_shell_next_event: NULL argument");
  if (ev->struct_size < offsetof(npa_event, detail))
    return Fail(-EINVAL, absl::StrCat("npa_shell_next_event: struct_size ", ev->struct_size));
  return sh->events.Pop(ev);
}

const char* npa_shell_last_error(npa_shell*) { return g_last_error.c_str(); }

}  // extern "C"
