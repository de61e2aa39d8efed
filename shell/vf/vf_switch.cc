#include "shell/vf/vf_switch.h"

#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/control_codec.h"
#include "common/log.h"
#include "shell/vf/plugin_loader.h"
#include "shell/shell_impl.h"

namespace npa::shell {
namespace {

// Set on the thread that runs VF control operations: the plug-in's
// buf_alloc/buf_free then go to the queue's stash, not to its pool, which
// belongs to the queue's owning thread (it may be bursting on the emulated
// path right now).
thread_local bool t_vf_control = false;

struct ScopedVfControl {
  bool prev = t_vf_control;
  ScopedVfControl() { t_vf_control = true; }
  ~ScopedVfControl() { t_vf_control = prev; }
};

std::mutex g_factory_mu;
VfDeviceIoFactory g_factory;

uint64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + t.tv_nsec;
}

class ShellBuffers : public BufferProvider {
 public:
  explicit ShellBuffers(npa_shell* sh) : sh_(sh) {}
  uint16_t Alloc(uint16_t qid, npa_buf** bufs, uint16_t n) override {
    if (qid >= sh_->nb_queue_pairs) return 0;
    QueueState& q = sh_->queues[qid];
    if (!t_vf_control) return static_cast<uint16_t>(q.pool.Alloc(bufs, n));
    std::lock_guard<std::mutex> l(q.stash_mu);
    uint16_t k = static_cast<uint16_t>(std::min<size_t>(n, q.stash.size()));
    for (uint16_t i = 0; i < k; i++) {
      bufs[i] = q.stash.back();
      q.stash.pop_back();
      BufPool::ResetHeader(bufs[i]);
    }
    return k;
  }
  void Free(uint16_t qid, npa_buf** bufs, uint16_t n) override {
    if (qid >= sh_->nb_queue_pairs) return;
    QueueState& q = sh_->queues[qid];
    // A TX frame coming back is a completion (or, at stop, a frame the VF
    // never sent: counted before stop, see FallBackLocked).
    const TxTracker::View track = q.vf_tx.view();
    for (uint16_t i = 0; i < n; i++) track.Clear(bufs[i]);
    if (!t_vf_control) {
      q.pool.Free(bufs, n);
      return;
    }
    std::lock_guard<std::mutex> l(q.stash_mu);
    for (uint16_t i = 0; i < n; i++) {
      // Every segment, bounded like BufPool::FreeFrame; foreign pointers are
      // dropped (the pool would count them as bad frees).
      npa_buf* b = bufs[i];
      for (uint32_t g = 0; b != nullptr && g <= q.pool.count() * sh_->nb_queue_pairs; g++) {
        npa_buf* next = b->next;
        if (q.pool.Owns(b)) {
          b->next = nullptr;
          q.stash.push_back(b);
        }
        b = next;
      }
    }
  }

 private:
  npa_shell* sh_;
};

void StageAll(npa_shell* sh, const std::function<QueueOps(uint16_t)>& ops, Path* intr) {
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) sh->queues[q].Stage(ops(q), intr);
}

// Until every queue acked or the deadline; true when all did.
bool WaitAcks(npa_shell* sh, uint64_t deadline_ns, const std::function<bool(uint16_t)>& extra = {}) {
  for (;;) {
    bool all = true;
    for (uint16_t q = 0; q < sh->nb_queue_pairs && all; q++) {
      if (sh->queues[q].switch_pending.load(std::memory_order_acquire)) all = false;
      else if (extra && !extra(q)) all = false;
    }
    if (all) return true;
    if (NowNs() >= deadline_ns) return false;
    usleep(20);
  }
}

void SetVfIntr(npa_shell* sh, VfPath* v) {
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) {
    QueueState& qs = sh->queues[q];
    int old = qs.vf_intr.exchange(-1);
    if (old >= 0) (void)epoll_ctl(qs.intr_ep.get(), EPOLL_CTL_DEL, old, nullptr);
    int fd = v ? v->intr_eventfd(q) : -1;
    if (fd >= 0) {
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.u32 = q;
      if (epoll_ctl(qs.intr_ep.get(), EPOLL_CTL_ADD, fd, &e) == 0) qs.vf_intr.store(fd);
    }
  }
}

// The steps of vf_switch.h "Revoke", each bounded. sh->vf_mu held.
uint64_t FallBackLocked(npa_shell* sh, uint32_t timeout_ms, const std::string& why) {
  VfPath* v = sh->vf.get();
  if (v == nullptr) return 0;
  ScopedVfControl ctl;
  const uint64_t t0 = NowNs();
  const uint64_t budget = static_cast<uint64_t>(std::max<uint32_t>(timeout_ms, 50)) * 1000000ull;
  // Leave a fifth of the budget for stop/remove after the bounded waits.
  auto until = [&](uint32_t percent) { return t0 + budget * percent / 100; };
  if (v->req_fd() >= 0) sh->control->Unwatch(v->req_fd());
  if (v->err_fd() >= 0) sh->control->Unwatch(v->err_fd());

  // 1. Off the VF: TX first, RX too while the plug-in quiesces.
  EmulatedPath* emu = sh->emulated.get();
  StageAll(sh, [&](uint16_t q) { return v->QuietOps(q); }, emu);
  bool acked = WaitAcks(sh, until(30));
  const uint64_t t_tx = NowNs();
  // 2. Quiesce.
  bool clean = v->Quiesce(static_cast<uint32_t>((until(50) - std::min(until(50), NowNs())) / 1000000) + 1);
  // 3. Drain the VF's RX until a burst comes back empty.
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) v->ResetDrained(q);
  StageAll(sh, [&](uint16_t q) { return v->DrainOps(q); }, emu);
  bool drained = WaitAcks(sh, until(75), [&](uint16_t q) { return v->rx_drained(q); });
  // 4. Emulated only, then the VF goes.
  StageAll(sh, [&](uint16_t q) { return emu->ops(q); }, emu);
  bool final_ack = WaitAcks(sh, until(80));
  SetVfIntr(sh, nullptr);
  {
    std::lock_guard<std::mutex> l(sh->mu);
    sh->active = emu;
    sh->plugin.clear();
  }
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) {
    QueueState& qs = sh->queues[q];
    uint64_t d = v->QueueStats(q).rx_dropped;
    qs.vf_dropped_base.store(qs.vf_dropped_base.load() + d);
    qs.vf_dropped_live.store(0);
  }
  // TX frames the VF took and never completed (tx_tracker.h). Counted
  // before stop: stop hands unsent frames back like any other buffer. After
  // a clean quiesce this is 0; on a dead device (ERR) it is exact; on a
  // slow but live one, stop's own short TX drain may still send a few of
  // them, so the count can exceed the loss by what that drain let out.
  uint64_t lost = 0;
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) {
    const uint64_t held = sh->queues[q].vf_tx.outstanding();
    lost += held;
    sh->queues[q].vf_tx_lost.fetch_add(held, std::memory_order_relaxed);
  }
  absl::Status s = v->Stop();
  if (!s.ok()) NPA_LOG(Warn, "shell: %s", std::string(s.message()).c_str());
  // A plug-in that kept a frame past stop broke plugin.h; its marks go
  // (already counted as lost above).
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) {
    const uint64_t kept = sh->queues[q].vf_tx.Reset();
    if (kept) NPA_LOG(Warn, "shell: queue %u: the plug-in kept %llu TX frames after stop", q,
                      static_cast<unsigned long long>(kept));
  }
  const std::string pci = v->pci_address(), plugin = v->plugin_name();
  sh->vf.reset();  // remove, services, close(device fd)
  const uint64_t t_end = NowNs();
  std::string detail = absl::StrFormat(
      "emulated: %s (%s at %s); tx moved in %llu us, total %llu us, tx lost %llu%s%s%s", why, plugin,
      pci, static_cast<unsigned long long>((t_tx - t0) / 1000),
      static_cast<unsigned long long>((t_end - t0) / 1000), static_cast<unsigned long long>(lost),
      clean ? "" : ", quiesce timed out",
      drained ? "" : ", rx drain timed out", acked && final_ack ? "" : ", idle queues");
  NPA_LOG(Info, "shell: back on the %s", detail.c_str());
  sh->events.Push(NPA_EVENT_PATH_CHANGED, NPA_PATH_EMULATED, detail);
  return lost;
}

void OnDeviceIrq(npa_shell* sh, int fd, const char* what) {
  uint64_t v;
  ssize_t r = ::read(fd, &v, sizeof v);
  (void)r;
  uint64_t offer;
  uint64_t lost;
  {
    std::lock_guard<std::mutex> l(sh->vf_mu);
    if (!sh->vf) return;
    offer = sh->vf_offer_id;
    // REQ: the device still works and its owner waits for our close, so
    // drain it properly, within the agent's grace period for a forced detach
    // (npa-agent --vf-force-grace, 3000 ms by default). ERR: it may be dead,
    // and every wait is bounded anyway.
    lost = FallBackLocked(sh, fd == sh->vf->req_fd() ? 2000 : 1000, what);
  }
  control::Envelope e;
  e.mutable_revoke_done()->set_offer_id(offer);
  e.mutable_revoke_done()->set_tx_inflight_lost(lost);
  e.mutable_revoke_done()->set_reason(what);
  absl::Status s = sh->control->Send(std::move(e));
  if (!s.ok()) NPA_LOG(Warn, "shell: telling the agent about the fallback: %s", std::string(s.message()).c_str());
}

bool ValidPci(const std::string& a) {
  if (a.empty() || a.size() > 31) return false;
  for (char c : a)
    if (!(isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return false;
  return true;
}

control::VfAccept Reject(uint64_t offer_id, const std::string& why) {
  NPA_LOG(Warn, "shell: VF offer %llu declined: %s", static_cast<unsigned long long>(offer_id),
          why.c_str());
  control::VfAccept a;
  a.set_offer_id(offer_id);
  a.set_accepted(false);
  // A frame is at most 64 KiB (control.proto); the loader's "tried: ..."
  // list grows with the plug-in directories.
  a.set_reason(why.size() > 2000 ? why.substr(0, 2000) + "..." : why);
  return a;
}

control::VfAccept OnOffer(npa_shell* sh, const control::VfOffer& o, UniqueFd fd) {
  const uint64_t t0 = NowNs();
  if (o.vendor() > 0xffff || o.device() > 0xffff || o.subsystem_vendor() > 0xffff ||
      o.subsystem_device() > 0xffff || o.class_code() > 0xffffff || o.revision() > 0xff)
    return Reject(o.offer_id(), "vf_offer: an ID, class or revision is out of range");
  if (!ValidPci(o.pci_address()))
    return Reject(o.offer_id(), "vf_offer: pci_address is not a PCI address");
  if (!fd) return Reject(o.offer_id(), "vf_offer: no device fd");
  std::lock_guard<std::mutex> vl(sh->vf_mu);
  if (sh->vf)
    return Reject(o.offer_id(), absl::StrCat("a VF is already attached (", sh->vf->pci_address(),
                                             ", offer ", sh->vf_offer_id, ")"));
  {
    std::lock_guard<std::mutex> l(sh->mu);
    if (sh->state != ShellState::kStarted || !sh->emulated)
      return Reject(o.offer_id(), "the guest has not started its queues (npa_shell_start)");
  }
  ScopedVfControl ctl;
  VfPath::Params p;
  p.pci_address = o.pci_address();
  p.offered = {static_cast<uint16_t>(o.vendor()), static_cast<uint16_t>(o.device()),
               static_cast<uint16_t>(o.subsystem_vendor()),
               static_cast<uint16_t>(o.subsystem_device()), o.class_code()};
  {
    std::lock_guard<std::mutex> l(g_factory_mu);
    if (g_factory) p.io = g_factory(fd.get(), o);
  }
  p.device_fd = std::move(fd);
  p.plugin_dirs = PluginSearchDirs();
  p.nb_queue_pairs = sh->nb_queue_pairs;
  p.ring_size = sh->ring_size;
  memcpy(p.mac, sh->mac, 6);
  p.mtu = sh->mtu;
  p.guest_offloads = sh->guest_offloads;
  p.rx_intr = true;
  p.arena = sh->dma.get();
  p.buffers = sh->vf_buffers.get();
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) {
    p.emu_rx.push_back(&sh->emulated->rx(q));
    p.emu_tx.push_back(&sh->emulated->tx(q));
    p.tx_track.push_back(&sh->queues[q].vf_tx);
  }
  p.log = [](int level, std::string_view line) {
    std::string s(line);
    if (level <= NPA_LOG_ERROR) NPA_LOG(Error, "plug-in: %s", s.c_str());
    else if (level == NPA_LOG_WARN) NPA_LOG(Warn, "plug-in: %s", s.c_str());
    else if (level == NPA_LOG_INFO) NPA_LOG(Info, "plug-in: %s", s.c_str());
    else NPA_LOG(Debug, "plug-in: %s", s.c_str());
  };
  if (!sh->dma || !sh->vf_buffers)
    return Reject(o.offer_id(), "the shell reserved no DMA memory (not configured?)");
  auto v = VfPath::Create(std::move(p));  // on failure the fd is closed with it
  if (!v.ok()) return Reject(o.offer_id(), std::string(v.status().message()));
  absl::Status s = (*v)->Start();
  if (!s.ok()) return Reject(o.offer_id(), absl::StrCat("start failed: ", s.message()));
  const uint64_t t_started = NowNs();
  VfPath* vp = v->get();
  SetVfIntr(sh, vp);
  StageAll(sh, [&](uint16_t q) { return vp->ops(q); }, vp);
  // Nothing is torn down after this, so an owner that does not burst
  // (idle, or asleep without interrupts) costs only the measurement.
  bool acked = WaitAcks(sh, NowNs() + 500000000ull);
  const uint64_t t_switched = NowNs();
  sh->vf = std::move(*v);
  sh->vf_offer_id = o.offer_id();
  {
    std::lock_guard<std::mutex> l(sh->mu);
    sh->active = vp;
    sh->plugin = vp->plugin_name();
  }
  if (vp->req_fd() >= 0) {
    int f = vp->req_fd();
    s = sh->control->Watch(f, [sh, f] { OnDeviceIrq(sh, f, "the agent took the VF back (VFIO REQ)"); });
    if (!s.ok()) NPA_LOG(Warn, "shell: watching REQ: %s", std::string(s.message()).c_str());
  }
  if (vp->err_fd() >= 0) {
    int f = vp->err_fd();
    s = sh->control->Watch(f, [sh, f] { OnDeviceIrq(sh, f, "the VF failed (VFIO ERR)"); });
    if (!s.ok()) NPA_LOG(Warn, "shell: watching ERR: %s", std::string(s.message()).c_str());
  }
  std::string detail = absl::StrFormat(
      "vf: %s at %s; probe..start %llu us, queues switched in %llu us%s%s", vp->plugin_name(),
      vp->pci_address(), static_cast<unsigned long long>((t_started - t0) / 1000),
      static_cast<unsigned long long>((t_switched - t_started) / 1000),
      vp->sw_tx_csum() ? ", software TX checksum" : "", acked ? "" : " (idle queues pending)");
  NPA_LOG(Info, "shell: %s", detail.c_str());
  sh->events.Push(NPA_EVENT_PATH_CHANGED, NPA_PATH_VF, detail);
  control::VfAccept a;
  a.set_offer_id(o.offer_id());
  a.set_accepted(true);
  a.set_plugin(vp->plugin_name());
  a.set_reason(detail);
  return a;
}

control::RevokeDone OnRevoke(npa_shell* sh, const control::Revoke& r) {
  control::RevokeDone d;
  d.set_offer_id(r.offer_id());
  std::lock_guard<std::mutex> vl(sh->vf_mu);
  // Unknown or already-released offer: nothing to give back (idempotent; a
  // fallback may have raced the agent's revoke).
  if (!sh->vf || r.offer_id() != sh->vf_offer_id) return d;
  const uint32_t t = r.timeout_ms() ? std::min<uint32_t>(r.timeout_ms(), 60000) : 5000;
  std::string why = r.reason().empty() ? std::string("revoked by the agent")
                                       : absl::StrCat("revoked: ", r.reason().substr(0, 40));
  d.set_tx_inflight_lost(FallBackLocked(sh, t, why));
  return d;
}

}  // namespace

void InstallVfHooks(npa_shell* sh) {
  ControlClient::VfHooks h;
  h.offer = [sh](const control::VfOffer& o, UniqueFd fd) { return OnOffer(sh, o, std::move(fd)); };
  h.revoke = [sh](const control::Revoke& r) { return OnRevoke(sh, r); };
  sh->control->SetVfHooks(std::move(h));
}

void ReleaseVf(npa_shell* sh, const char* why, bool notify) {
  uint64_t offer, lost;
  {
    std::lock_guard<std::mutex> vl(sh->vf_mu);
    if (!sh->vf) return;
    offer = sh->vf_offer_id;
    lost = FallBackLocked(sh, 500, why);
  }
  if (notify && sh->control) {
    control::Envelope e;
    e.mutable_revoke_done()->set_offer_id(offer);
    e.mutable_revoke_done()->set_tx_inflight_lost(lost);
    e.mutable_revoke_done()->set_reason(why);
    (void)sh->control->Send(std::move(e));
  }
}

std::unique_ptr<BufferProvider> MakeShellBuffers(npa_shell* sh) {
  return std::make_unique<ShellBuffers>(sh);
}

void SetVfDeviceIoFactoryForTest(VfDeviceIoFactory f) {
  std::lock_guard<std::mutex> l(g_factory_mu);
  g_factory = std::move(f);
}

}  // namespace npa::shell
