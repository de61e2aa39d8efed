#include "shell/vf/vf_switch.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/control_codec.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "shell/shell_impl.h"
#include "shell/vf/path_switch.h"
#include "shell/vf/plugin_loader.h"

namespace npa::shell {
namespace {

std::mutex g_factory_mu;
VfDeviceIoFactory g_factory;
std::atomic<bool> g_announce{true};

// One run of sh->path from an outside event until it rests: what the steps
// need, and what they measured for the log lines and PATH_CHANGED events.
struct SwitchRun {
  // Attach: the offer's parameters (consumed by ATTACHING), why it failed.
  std::optional<VfPath::Params> params;
  uint64_t offer_id = 0;
  std::string refusal;
  uint64_t t_started = 0, t_switched = 0;
  bool entered_all = true;  // every queue acked the VF's ops
  // Release: why, its time bound, and how each step ended.
  std::string why;
  uint64_t t0 = 0, budget_ns = 0, t_tx = 0;
  bool left_all = true, clean = true, drained = true, returned_all = true;
  uint64_t lost = 0;
  uint64_t drain_frames = 0, drain_ns = 0;  // DRAINING: VF RX frames delivered, its time

  void StartRelease(uint32_t timeout_ms, std::string reason) {
    why = std::move(reason);
    t0 = t_tx = MonotonicNs();
    budget_ns = static_cast<uint64_t>(std::max<uint32_t>(timeout_ms, 50)) * 1000000ull;
  }
  // The release's deadlines, as a share of its bound; the last fifth is
  // left for stop/remove after the bounded waits.
  uint64_t until(uint32_t percent) const { return t0 + budget_ns * percent / 100; }
};

void StageAll(npa_shell* sh, const std::function<QueueOps(uint16_t)>& ops, Path* intr) {
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) sh->queues[q].Stage(ops(q), intr);
}

// Feeds every queue's acknowledgement of the ops just staged to sh->path:
// a queue acks by clearing switch_pending at its next burst
// (QueueState::ApplySwitch); `extra`, when set, is a further condition per
// queue (DRAINING: an empty VF RX burst). The last ack moves the machine
// (kAcked), or the deadline does (kAckTimedOut). true: every queue acked.
absl::StatusOr<bool> AwaitAcks(npa_shell* sh, uint64_t deadline_ns,
                               const std::function<bool(uint16_t)>& extra = {}) {
  PathSwitch& m = sh->path;
  NPA_RETURN_IF_ERROR(m.ExpectAcks(sh->nb_queue_pairs, deadline_ns));
  while (m.awaiting()) {
    for (uint16_t q = 0; q < sh->nb_queue_pairs && m.awaiting(); q++) {
      if (!m.pending(q) || sh->queues[q].switch_pending.load(std::memory_order_acquire)) continue;
      if (extra && !extra(q)) continue;
      NPA_RETURN_IF_ERROR(m.Ack(q));
    }
    if (!m.awaiting()) return true;
    NPA_RETURN_IF_ERROR(m.Tick(MonotonicNs()));
    if (!m.awaiting()) return false;
    usleep(20);
  }
  return true;
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

// ---- The step of each state (path_switch.h). Each ends by firing the
// event its outcome is, or returns the machine's refusal.

// ATTACHING: probe..start, inside a ControlCall (the plug-in fills its RX
// rings from the stash); a half-built path is destroyed inside it too.
absl::Status Attach(npa_shell* sh, SwitchRun& r) {
  if (!r.params) return absl::InternalError("ATTACHING without an offer");
  {
    ShellBuffers::ControlCall call(*sh->vf_buffers);
    auto v = VfPath::Create(std::move(*r.params));  // on failure the fd is closed with it
    r.params.reset();
    if (!v.ok()) {
      r.refusal = std::string(v.status().message());
    } else if (absl::Status s = (*v)->Start(); !s.ok()) {
      r.refusal = absl::StrCat("start failed: ", s.message());
    } else {
      sh->vf = std::move(*v);
      sh->vf_offer_id = r.offer_id;
    }
  }
  if (!sh->vf) return sh->path.Fire(PathEvent::kStartFailed);
  r.t_started = MonotonicNs();
  return sh->path.Fire(PathEvent::kStartOk);
}

// ENTERING: the VF's ops on every queue. Nothing is torn down after this,
// so an owner that does not burst (idle, or asleep without interrupts)
// costs only the measurement.
absl::Status Enter(npa_shell* sh, SwitchRun& r) {
  VfPath* vp = sh->vf.get();
  if (vp == nullptr) return absl::InternalError("ENTERING without a VF");
  SetVfIntr(sh, vp);
  // Queue 0's owner also sends one RARP announcement through the VF as it
  // applies the VF's ops, so a learning switch moves the MAC to the VF's
  // port at once (docs/migration.md; npa_queue_stats.announces).
  const bool announce = g_announce.load(std::memory_order_relaxed);
  // A plug-in that counts TX or RX bytes (NPA_PLUGIN_F_TX_BYTES,
  // NPA_PLUGIN_F_RX_BYTES): its count now is this VF's zero, taken before
  // any frame goes its way.
  if (vp->plugin_tx_bytes() || vp->plugin_rx_bytes())
    for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) {
      const npa_plugin_qstats ps = vp->QueueStats(q);
      if (vp->plugin_tx_bytes()) sh->queues[q].BeginVfTxBytes(ps.tx_bytes);
      if (vp->plugin_rx_bytes()) sh->queues[q].vf_rx_bytes.Begin(ps.rx_bytes);
    }
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++)
    sh->queues[q].Stage(vp->ops(q), vp, announce && q == 0);
  NPA_ASSIGN_OR_RETURN(r.entered_all, AwaitAcks(sh, MonotonicNs() + 500000000ull));
  r.t_switched = MonotonicNs();
  return absl::OkStatus();
}

// LEAVING: off the VF, TX first, RX too while the plug-in quiesces.
absl::Status Leave(npa_shell* sh, SwitchRun& r) {
  VfPath* v = sh->vf.get();
  if (v == nullptr) return absl::InternalError("LEAVING without a VF");
  if (v->req_fd() >= 0) sh->control->Unwatch(v->req_fd());
  if (v->err_fd() >= 0) sh->control->Unwatch(v->err_fd());
  StageAll(sh, [&](uint16_t q) { return v->QuietOps(q); }, sh->emulated.get());
  NPA_ASSIGN_OR_RETURN(r.left_all, AwaitAcks(sh, r.until(30)));
  r.t_tx = MonotonicNs();
  return absl::OkStatus();
}

// QUIESCING: bounded; buffers the plug-in reaps go to the stash.
absl::Status Quiesce(npa_shell* sh, SwitchRun& r) {
  if (!sh->vf) return absl::InternalError("QUIESCING without a VF");
  const uint64_t end = r.until(50);
  {
    ShellBuffers::ControlCall call(*sh->vf_buffers);
    r.clean = sh->vf->Quiesce(static_cast<uint32_t>((end - std::min(end, MonotonicNs())) / 1000000) + 1);
  }
  return sh->path.Fire(r.clean ? PathEvent::kQuiesceDone : PathEvent::kQuiesceTimedOut);
}

// DRAINING: the VF's RX, per queue, until a burst came back empty and then
// for DrainGrace's grace while frames still arrive (vf_switch.h). The grace
// ends before the step's own bound (75 % of the release's), so a queue that
// keeps receiving is not reported as a drain that timed out.
absl::Status Drain(npa_shell* sh, SwitchRun& r) {
  VfPath* v = sh->vf.get();
  if (v == nullptr) return absl::InternalError("DRAINING without a VF");
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) v->ResetDrained(q);
  const uint64_t t0 = MonotonicNs();
  DrainGrace::Options go;
  const uint64_t bound = r.until(70);
  go.grace_ns = std::min(go.grace_ns, bound > t0 ? bound - t0 : 0);
  DrainGrace grace(sh->nb_queue_pairs, t0, go);
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++)  // the base counts
    grace.Drained(q, sh->queues[q].c.rx_vf.load(std::memory_order_relaxed), false, t0);
  StageAll(sh, [&](uint16_t q) { return v->DrainOps(q); }, sh->emulated.get());
  NPA_ASSIGN_OR_RETURN(r.drained, AwaitAcks(sh, r.until(75), [&](uint16_t q) {
                         return grace.Drained(q, sh->queues[q].c.rx_vf.load(std::memory_order_relaxed),
                                              v->rx_drained(q), MonotonicNs());
                       }));
  r.drain_frames = grace.frames();
  r.drain_ns = MonotonicNs() - t0;
  return absl::OkStatus();
}

// RETURNING: emulated only.
absl::Status Return(npa_shell* sh, SwitchRun& r) {
  EmulatedPath* emu = sh->emulated.get();
  StageAll(sh, [&](uint16_t q) { return emu->ops(q); }, emu);
  NPA_ASSIGN_OR_RETURN(r.returned_all, AwaitAcks(sh, r.until(80)));
  return absl::OkStatus();
}

// RELEASING, the device part: the plug-in's last counters and the TX frames
// it still holds, then stop (it hands every buffer back), remove and close
// the device fd. Returns the TX frames lost. Inside a ControlCall.
uint64_t ReleaseDevice(npa_shell* sh) {
  VfPath* v = sh->vf.get();
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) {
    QueueState& qs = sh->queues[q];
    const npa_plugin_qstats ps = v->QueueStats(q);
    qs.vf_dropped_base.store(qs.vf_dropped_base.load() + ps.rx_dropped);
    qs.vf_dropped_live.store(0);
    // The last of its TX and RX bytes (the queues left the VF at LEAVING).
    if (v->plugin_tx_bytes()) qs.FoldVfTxBytes(ps.tx_bytes);
    if (v->plugin_rx_bytes()) qs.vf_rx_bytes.Fold(ps.rx_bytes);
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
    const uint64_t excess = sh->queues[q].vf_tx.excess_completions();
    if (excess)
      NPA_LOG(Warn,
              "shell: queue %u: the plug-in returned %llu more TX frames through buf_free_tx than "
              "it took (plugin.h \"TX completions apart\"); the lost count may be short by as many",
              q, static_cast<unsigned long long>(excess));
    const uint64_t kept = sh->queues[q].vf_tx.Reset();
    if (kept) NPA_LOG(Warn, "shell: queue %u: the plug-in kept %llu TX frames after stop", q,
                      static_cast<unsigned long long>(kept));
  }
  sh->vf.reset();  // remove, services, close(device fd)
  return lost;
}

// RELEASING: the queues' interrupts and the shell's active path back to the
// emulated ones, then the VF goes (ReleaseDevice, inside a ControlCall: its
// queue_stats, stop and remove may hand buffers back).
absl::Status Release(npa_shell* sh, SwitchRun& r) {
  EmulatedPath* emu = sh->emulated.get();
  SetVfIntr(sh, nullptr);
  {
    std::lock_guard<std::mutex> l(sh->mu);
    sh->active = emu;
    sh->plugin.clear();
  }
  if (!sh->vf) return sh->path.Fire(PathEvent::kReleased);
  const std::string pci = sh->vf->pci_address(), plugin = sh->vf->plugin_name();
  {
    ShellBuffers::ControlCall call(*sh->vf_buffers);
    r.lost = ReleaseDevice(sh);
  }
  const uint64_t t_end = MonotonicNs();
  std::string detail = absl::StrFormat(
      "emulated: %s (%s at %s); tx moved in %llu us, rx drained %llu frames in %llu us, total "
      "%llu us, tx lost %llu%s%s%s",
      r.why, plugin, pci, static_cast<unsigned long long>((r.t_tx - r.t0) / 1000),
      static_cast<unsigned long long>(r.drain_frames),
      static_cast<unsigned long long>(r.drain_ns / 1000),
      static_cast<unsigned long long>((t_end - r.t0) / 1000),
      static_cast<unsigned long long>(r.lost), r.clean ? "" : ", quiesce timed out",
      r.drained ? "" : ", rx drain timed out",
      r.left_all && r.returned_all ? "" : ", idle queues");
  NPA_LOG(Info, "shell: back on the %s", detail.c_str());
  sh->events.Push(NPA_EVENT_PATH_CHANGED, NPA_PATH_EMULATED, detail);
  return sh->path.Fire(PathEvent::kReleased);
}

absl::Status Step(npa_shell* sh, SwitchRun& r) {
  switch (sh->path.state()) {
    case PathState::kAttaching: return Attach(sh, r);
    case PathState::kEntering: return Enter(sh, r);
    case PathState::kLeaving: return Leave(sh, r);
    case PathState::kQuiescing: return Quiesce(sh, r);
    case PathState::kDraining: return Drain(sh, r);
    case PathState::kReturning: return Return(sh, r);
    case PathState::kReleasing: return Release(sh, r);
    case PathState::kEmulated:
    case PathState::kOnVf:
    case PathState::kMigrateStopped:
    case PathState::kDetached:
    case PathState::kReconnecting:  // shell/reconnect.cc runs it, never Drive
      break;
  }
  return absl::InternalError(absl::StrCat("no step for state ", sh->path.state_name()));
}

// Runs sh->path until it rests (EMULATED or ON_VF), one step per state. A
// step the machine refuses (a bug here: path_switch_test walks the table)
// is logged with the shell's name and the switch abandoned: the table's
// kAbandon arcs lead straight to putting the queues back on the emulated
// path and releasing the VF. sh->vf_mu held.
void Drive(npa_shell* sh, SwitchRun& r) {
  while (!PathSwitch::Rests(sh->path.state())) {
    absl::Status s = Step(sh, r);
    if (s.ok()) continue;
    const std::string msg(s.message());
    NPA_LOG(Error, "shell '%s': %s (in %s); abandoning the switch", sh->name.c_str(), msg.c_str(),
            sh->path.state_name());
    if (r.refusal.empty()) r.refusal = msg;
    if (r.t0 == 0) r.StartRelease(500, absl::StrCat("switch abandoned: ", msg));
    absl::Status a = sh->path.Fire(PathEvent::kAbandon);
    if (!a.ok()) {
      NPA_LOG(Error, "shell '%s': %s; the VF path is stuck", sh->name.c_str(),
              std::string(a.message()).c_str());
      return;
    }
  }
}

// The steps of vf_switch.h "Revoke", each bounded: `cause` takes ON_VF to
// LEAVING, and the machine is driven back to EMULATED. The table's refusal
// when there is no VF to give back. Returns the TX frames lost. vf_mu held.
absl::StatusOr<uint64_t> FallBackLocked(npa_shell* sh, PathEvent cause, uint32_t timeout_ms,
                                        std::string why) {
  SwitchRun r;
  r.StartRelease(timeout_ms, std::move(why));
  NPA_RETURN_IF_ERROR(sh->path.Fire(cause));
  Drive(sh, r);
  return r.lost;
}

void OnDeviceIrq(npa_shell* sh, int fd, PathEvent cause, const char* what) {
  uint64_t v;
  ssize_t rd = ::read(fd, &v, sizeof v);
  (void)rd;
  uint64_t offer;
  uint64_t lost;
  {
    std::lock_guard<std::mutex> l(sh->vf_mu);
    // Already given back (a revoke or the shell's stop won the race): the
    // table refuses, nothing to do.
    if (absl::Status s = sh->path.Check(cause); !s.ok()) {
      NPA_LOG(Info, "shell '%s': %s ignored: %s", sh->name.c_str(), what,
              std::string(s.message()).c_str());
      return;
    }
    offer = sh->vf_offer_id;
    // REQ: the device still works and its owner waits for our close, so
    // drain it properly, within the agent's grace period for a forced detach
    // (npa-agent --vf-force-grace, 3000 ms by default). ERR: it may be dead,
    // and every wait is bounded anyway.
    auto l2 = FallBackLocked(sh, cause, cause == PathEvent::kDeviceReq ? 2000 : 1000, what);
    if (!l2.ok()) {
      NPA_LOG(Error, "shell '%s': %s: %s", sh->name.c_str(), what,
              std::string(l2.status().message()).c_str());
      return;
    }
    lost = *l2;
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

// The VfPath parameters for an offer: the device, the guest's configuration,
// the shell's memory and rings.
VfPath::Params OfferParams(npa_shell* sh, const control::VfOffer& o, UniqueFd fd) {
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
  p.check_rx = (sh->flags & NPA_SHELL_F_CHECK_PLUGIN_RX) != 0;
  p.arena = sh->dma.get();
  p.buffers = sh->vf_buffers.get();
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) {
    p.emu_rx.push_back(&sh->emulated->rx(q));
    p.emu_tx.push_back(&sh->emulated->tx(q));
    p.tx_track.push_back(&sh->queues[q].vf_tx);
  }
  {
    std::lock_guard<std::mutex> l(sh->mu);  // vf_mu -> mu, as everywhere
    p.rss = sh->rss;
  }
  p.log = [](int level, std::string_view line) {
    std::string s(line);
    if (level <= NPA_LOG_ERROR) NPA_LOG(Error, "plug-in: %s", s.c_str());
    else if (level == NPA_LOG_WARN) NPA_LOG(Warn, "plug-in: %s", s.c_str());
    else if (level == NPA_LOG_INFO) NPA_LOG(Info, "plug-in: %s", s.c_str());
    else NPA_LOG(Debug, "plug-in: %s", s.c_str());
  };
  return p;
}

control::VfAccept OnOffer(npa_shell* sh, const control::VfOffer& o, UniqueFd fd) {
  const uint64_t t0 = MonotonicNs();
  if (o.vendor() > 0xffff || o.device() > 0xffff || o.subsystem_vendor() > 0xffff ||
      o.subsystem_device() > 0xffff || o.class_code() > 0xffffff || o.revision() > 0xff)
    return Reject(o.offer_id(), "vf_offer: an ID, class or revision is out of range");
  if (!ValidPci(o.pci_address()))
    return Reject(o.offer_id(), "vf_offer: pci_address is not a PCI address");
  if (!fd) return Reject(o.offer_id(), "vf_offer: no device fd");
  std::lock_guard<std::mutex> vl(sh->vf_mu);
  if (absl::Status s = sh->path.Check(PathEvent::kOffer); !s.ok()) {
    if (sh->vf)
      return Reject(o.offer_id(), absl::StrCat("a VF is already attached (", sh->vf->pci_address(),
                                               ", offer ", sh->vf_offer_id, "); ", s.message()));
    return Reject(o.offer_id(), std::string(s.message()));
  }
  {
    std::lock_guard<std::mutex> l(sh->mu);
    if (sh->state != ShellState::kStarted || !sh->emulated)
      return Reject(o.offer_id(), "the guest has not started its queues (npa_shell_start)");
  }
  SwitchRun r;
  r.params = OfferParams(sh, o, std::move(fd));
  r.offer_id = o.offer_id();
  if (!sh->dma || !sh->vf_buffers)
    return Reject(o.offer_id(), "the shell reserved no DMA memory (not configured?)");
  if (absl::Status s = sh->path.Fire(PathEvent::kOffer); !s.ok())
    return Reject(o.offer_id(), std::string(s.message()));
  Drive(sh, r);  // ATTACHING -> ENTERING -> ON_VF, or back to EMULATED
  if (sh->path.state() != PathState::kOnVf)
    return Reject(o.offer_id(), r.refusal.empty() ? std::string("the attach was abandoned") : r.refusal);
  VfPath* vp = sh->vf.get();
  {
    std::lock_guard<std::mutex> l(sh->mu);
    sh->active = vp;
    sh->plugin = vp->plugin_name();
  }
  if (vp->req_fd() >= 0) {
    int f = vp->req_fd();
    absl::Status s = sh->control->Watch(f, [sh, f] {
      OnDeviceIrq(sh, f, PathEvent::kDeviceReq, "the agent took the VF back (VFIO REQ)");
    });
    if (!s.ok()) NPA_LOG(Warn, "shell: watching REQ: %s", std::string(s.message()).c_str());
  }
  if (vp->err_fd() >= 0) {
    int f = vp->err_fd();
    absl::Status s = sh->control->Watch(f, [sh, f] {
      OnDeviceIrq(sh, f, PathEvent::kDeviceErr, "the VF failed (VFIO ERR)");
    });
    if (!s.ok()) NPA_LOG(Warn, "shell: watching ERR: %s", std::string(s.message()).c_str());
  }
  std::string detail = absl::StrFormat(
      "vf: %s at %s; probe..start %llu us, queues switched in %llu us%s%s", vp->plugin_name(),
      vp->pci_address(), static_cast<unsigned long long>((r.t_started - t0) / 1000),
      static_cast<unsigned long long>((r.t_switched - r.t_started) / 1000),
      vp->sw_tx_csum() ? ", software TX checksum" : "",
      r.entered_all ? "" : " (idle queues pending)");
  NPA_LOG(Info, "shell: %s", detail.c_str());
  sh->events.Push(NPA_EVENT_PATH_CHANGED, NPA_PATH_VF, detail);
  control::VfAccept a;
  a.set_offer_id(o.offer_id());
  a.set_accepted(true);
  a.set_plugin(vp->plugin_name());
  a.set_reason(detail);
  return a;
}

control::RevokeDone OnRevoke(npa_shell* sh, const control::Revoke& rv) {
  control::RevokeDone d;
  d.set_offer_id(rv.offer_id());
  std::lock_guard<std::mutex> vl(sh->vf_mu);
  // Unknown or already-released offer: nothing to give back (idempotent; a
  // fallback may have raced the agent's revoke).
  if (absl::Status s = sh->path.Check(PathEvent::kRevoke); !s.ok()) {
    NPA_LOG(Info, "shell '%s': revoke of offer %llu: nothing to give back (%s)", sh->name.c_str(),
            static_cast<unsigned long long>(rv.offer_id()), std::string(s.message()).c_str());
    return d;
  }
  if (rv.offer_id() != sh->vf_offer_id) {
    NPA_LOG(Warn, "shell '%s': revoke of offer %llu ignored: the VF attached came with offer %llu",
            sh->name.c_str(), static_cast<unsigned long long>(rv.offer_id()),
            static_cast<unsigned long long>(sh->vf_offer_id));
    return d;
  }
  const uint32_t t = rv.timeout_ms() ? std::min<uint32_t>(rv.timeout_ms(), 60000) : 5000;
  std::string why = rv.reason().empty() ? std::string("revoked by the agent")
                                        : absl::StrCat("revoked: ", rv.reason().substr(0, 40));
  absl::StatusOr<uint64_t> lost = FallBackLocked(sh, PathEvent::kRevoke, t, std::move(why));
  if (lost.ok()) d.set_tx_inflight_lost(*lost);
  else NPA_LOG(Error, "shell '%s': revoke: %s", sh->name.c_str(), std::string(lost.status().message()).c_str());
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
    // Called at every stop and close; without a VF the table refuses the
    // stop, and there is nothing to give back.
    if (!sh->path.CanFire(PathEvent::kShellStop)) return;
    offer = sh->vf_offer_id;
    absl::StatusOr<uint64_t> l = FallBackLocked(sh, PathEvent::kShellStop, 500, why);
    if (!l.ok()) {
      NPA_LOG(Error, "shell '%s': %s: %s", sh->name.c_str(), why,
              std::string(l.status().message()).c_str());
      return;
    }
    lost = *l;
  }
  if (notify && sh->control) {
    control::Envelope e;
    e.mutable_revoke_done()->set_offer_id(offer);
    e.mutable_revoke_done()->set_tx_inflight_lost(lost);
    e.mutable_revoke_done()->set_reason(why);
    absl::Status s = sh->control->Send(std::move(e));
    if (!s.ok()) NPA_LOG(Info, "shell: telling the agent about the release: %s", std::string(s.message()).c_str());
  }
}

void ReplayRssToVf(npa_shell* sh) {
  std::lock_guard<std::mutex> vl(sh->vf_mu);
  if (!sh->vf || !sh->vf->hw_rss()) return;
  std::shared_ptr<const RssRx> rss;
  {
    std::lock_guard<std::mutex> l(sh->mu);
    rss = sh->rss;  // the latest: of two racing calls, the last one's wins
  }
  if (!rss) return;
  if (absl::Status s = sh->vf->SetRss(*rss); !s.ok())
    NPA_LOG(Warn, "shell '%s': npa_shell_set_rss: %s kept its previous RSS (the shell's hash "
            "is the new one on every frame): %s", sh->name.c_str(), sh->vf->plugin_name().c_str(),
            std::string(s.message()).c_str());
}

void SetAnnounceOnAttachForTest(bool on) { g_announce.store(on); }

void SetVfDeviceIoFactoryForTest(VfDeviceIoFactory f) {
  std::lock_guard<std::mutex> l(g_factory_mu);
  g_factory = std::move(f);
}

}  // namespace npa::shell
