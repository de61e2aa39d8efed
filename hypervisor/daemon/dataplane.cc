#include "hypervisor/daemon/dataplane.h"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "hypervisor/daemon/dataplane_frames.h"
#include "hypervisor/daemon/guest_rss.h"
#include "hypervisor/daemon/idle_policy.h"
#include "hypervisor/vhost/virtqueue.h"

namespace npa::agent {
namespace {

constexpr uint64_t kAgeEveryNs = 1000ull * 1000 * 1000;
// Run() reads the clock once per this many busy loops (and after every
// sleep): a vDSO clock_gettime costs about as much as a few frames, and the
// users of the time (MAC learning and aging at 1 s, the loopback's 100 ms
// hold limit) do not need it finer than a few microseconds of polling.
constexpr uint32_t kClockEveryLoops = 64;
// Sink mode copies each frame the way a forwarder would into its own
// buffers: a rotating set, so a stream of 1500 B frames is not copied into
// the same L1-resident bytes every time. The last slot still has room for a
// 64 KiB frame.
constexpr size_t kSinkSlots = 64;
constexpr size_t kSinkSlotBytes = 2048;

}  // namespace

const char* DataplaneModeName(DataplaneMode m) {
  switch (m) {
    case DataplaneMode::kSwitch: return "switch";
    case DataplaneMode::kSink: return "sink";
    case DataplaneMode::kLoopback: return "loopback";
  }
  return "?";
}

std::optional<DataplaneMode> ParseDataplaneMode(const std::string& s) {
  if (s == "switch") return DataplaneMode::kSwitch;
  if (s == "sink") return DataplaneMode::kSink;
  if (s == "loopback") return DataplaneMode::kLoopback;
  return std::nullopt;
}

Dataplane::Dataplane(Options opts, TapUplink* uplink)
    : opts_(opts), uplink_(uplink), switch_(opts.switch_opts),
      snapshot_(std::make_shared<Snapshot>()), ctl_(uplink) {}

Dataplane::~Dataplane() { Stop(); }

absl::Status Dataplane::Start() {
  if (opts_.burst == 0 || opts_.burst > 256)
    return absl::InvalidArgumentError(absl::StrCat("burst ", opts_.burst, " outside 1..256"));
  if (opts_.desc_budget < opts_.burst)
    return absl::InvalidArgumentError(absl::StrCat("descriptor budget ", opts_.desc_budget,
                                                   " is below the burst ", opts_.burst));
  if (opts_.coalesce_us * uint64_t{1000} > IdlePolicy::kMaxCoalesceNs)
    return absl::InvalidArgumentError(absl::StrCat("coalesce interval ", opts_.coalesce_us,
                                                   " us outside 0..10000"));
  if (running_) return absl::FailedPreconditionError("dataplane already started");
  wake_fd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd_) return ErrnoError(errno, "eventfd for the dataplane");
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) return ErrnoError(errno, "epoll_create1 for the dataplane");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_.get();
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev) < 0)
    return ErrnoError(errno, "epoll_ctl add dataplane wake fd");
  if (uplink_) {
    ev.data.fd = uplink_->notify_fd();
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, uplink_->notify_fd(), &ev) < 0)
      return ErrnoError(errno, "epoll_ctl add uplink ", uplink_->name(), " notify fd");
  }
  ctl_.set_wake_fd(wake_fd_.get());
  scratch_.resize(kSinkSlots * kSinkSlotBytes + 65536 + 64);
  eth_copies_.resize(opts_.burst);
  checked_segs_.resize(static_cast<size_t>(opts_.burst) * (kMaxFrameSegs + 1));
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  if (opts_.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(opts_.cpu, &set);
    int r = pthread_setaffinity_np(thread_.native_handle(), sizeof set, &set);
    if (r != 0) {
      Stop();
      return ErrnoError(r, "pin dataplane thread to CPU ", opts_.cpu);
    }
  }
  pthread_setname_np(thread_.native_handle(), "npa-dataplane");
  NPA_LOG(Info, "dataplane: started (mode %s, burst %u, cpu %d, uplink %s)",
          DataplaneModeName(opts_.mode), opts_.burst, opts_.cpu,
          uplink_ ? uplink_->name().c_str() : "none");
  return absl::OkStatus();
}

void Dataplane::Stop() {
  if (!running_.exchange(false)) return;
  uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ctl_.FailAll();  // injections nobody will serve now: counted as failed
  // Wake anyone waiting for an acknowledgement that will never come.
  std::lock_guard<std::mutex> l(mu_);
  acked_gen_ = gen_.load();
  acked_cv_.notify_all();
}

absl::Status Dataplane::Publish(std::shared_ptr<const Snapshot> next) {
  std::unique_lock<std::mutex> l(mu_);
  snapshot_ = std::move(next);
  uint64_t g = gen_.load() + 1;
  gen_.store(g, std::memory_order_release);
  if (!running_) {
    acked_gen_ = g;
    return absl::OkStatus();
  }
  uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof one);
  if (!acked_cv_.wait_for(l, std::chrono::seconds(2), [&] { return acked_gen_ >= g; }))
    return absl::DeadlineExceededError("dataplane did not pick up the guest change within 2 s");
  return absl::OkStatus();
}

std::shared_ptr<Dataplane::Snapshot> Dataplane::CopySnapshot() {
  std::lock_guard<std::mutex> l(mu_);
  return std::make_shared<Snapshot>(*snapshot_);
}

absl::Status Dataplane::AddGuest(PortId id, std::shared_ptr<GuestPort> port,
                                 std::optional<MacAddr> mac, std::shared_ptr<const GuestRss> rss) {
  if (id == kUplinkPort || id == kNoPort)
    return absl::InvalidArgumentError(absl::StrCat("dataplane: bad guest port id ", id));
  auto next = CopySnapshot();
  for (const Member& m : next->members) {
    if (m.id == id) return absl::AlreadyExistsError(absl::StrCat("dataplane: guest ", id, " already added"));
    if (mac && m.mac && *m.mac == *mac)
      return absl::AlreadyExistsError(absl::StrCat("dataplane: MAC ", MacToString(*mac),
                                                   " already belongs to guest ", m.id));
  }
  next->members.push_back(Member{id, std::move(port), mac, std::move(rss)});
  return Publish(std::move(next));
}

absl::Status Dataplane::SetGuestRss(PortId id, std::shared_ptr<const GuestRss> rss) {
  auto next = CopySnapshot();
  for (Member& m : next->members) {
    if (m.id != id) continue;
    m.rss = std::move(rss);
    return Publish(std::move(next));
  }
  return absl::NotFoundError(absl::StrCat("dataplane: guest ", id, " is not in the dataplane"));
}

absl::Status Dataplane::RemoveGuest(PortId id) {
  auto next = CopySnapshot();
  auto it = std::find_if(next->members.begin(), next->members.end(),
                         [&](const Member& m) { return m.id == id; });
  if (it == next->members.end()) return absl::OkStatus();
  next->members.erase(it);
  return Publish(std::move(next));
}

std::vector<Dataplane::GuestView> Dataplane::Guests() const {
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard<std::mutex> l(mu_);
    snap = snapshot_;
  }
  std::vector<GuestView> out;
  out.reserve(snap->members.size());
  for (const Member& m : snap->members) out.push_back(GuestView{m.id, m.port});
  return out;
}

DataplaneCounters Dataplane::counters() const {
  DataplaneCounters d;
  d.loops = c_.loops.load(std::memory_order_relaxed);
  d.sleeps = c_.sleeps.load(std::memory_order_relaxed);
  d.coalesced_waits = c_.coalesced_waits.load(std::memory_order_relaxed);
  d.sink_packets = c_.sink_packets.load(std::memory_order_relaxed);
  d.sink_bytes = c_.sink_bytes.load(std::memory_order_relaxed);
  d.flood_copies = c_.flood_copies.load(std::memory_order_relaxed);
  d.delivery_drops = c_.delivery_drops.load(std::memory_order_relaxed);
  d.flooded_to_nobody = c_.flooded_to_nobody.load(std::memory_order_relaxed);
  d.held = c_.held.load(std::memory_order_relaxed);
  d.held_dropped = c_.held_dropped.load(std::memory_order_relaxed);
  const ControlQueueCounters q = ctl_.counters();
  d.delivery_drops += q.uplink_dropped;
  d.injected = q.injected;
  d.inject_failed = q.inject_failed;
  d.uplink_control = q.uplink_control;
  d.budget_yields = c_.budget_yields.load(std::memory_order_relaxed);
  return d;
}

void Dataplane::DropNotifyFds(Local& g) {
  for (const UniqueFd& fd : g.notify_fds) epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd.get(), nullptr);
  g.notify_fds.clear();  // closes our duplicates
  g.notify_gen = ~0ull;
}

void Dataplane::SyncNotifyFds(Local& g) {
  uint64_t gen = g.port->generation();
  if (gen == g.notify_gen) return;
  DropNotifyFds(g);
  g.notify_fds = g.port->DupNotifyFds();
  g.notify_gen = gen;
  for (const UniqueFd& fd : g.notify_fds) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd.get();
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd.get(), &ev);
  }
}

void Dataplane::Refresh() {
  std::shared_ptr<const Snapshot> snap;
  uint64_t g;
  {
    std::lock_guard<std::mutex> l(mu_);
    snap = snapshot_;
    g = gen_.load(std::memory_order_acquire);
  }
  std::vector<Local> next;
  for (const Member& m : snap->members) {
    auto old = std::find_if(locals_.begin(), locals_.end(), [&](const Local& x) { return x.id == m.id; });
    if (old != locals_.end()) {
      next.push_back(std::move(*old));
      next.back().rss = m.rss;  // the one thing a member changes in place
      locals_.erase(old);
      continue;
    }
    Local l;
    l.id = m.id;
    l.port = m.port;
    l.mac_key = m.mac ? MacKey(m.mac->data()) : 0;
    l.rss = m.rss;
    l.out.reserve(opts_.burst);
    if (m.mac) {
      absl::Status s = switch_.PinMac(*m.mac, m.id);
      if (!s.ok()) NPA_LOG(Warn, "dataplane: guest %u: %s", m.id, std::string(s.message()).c_str());
    }
    next.push_back(std::move(l));
  }
  for (Local& gone : locals_) {  // removed guests
    DropNotifyFds(gone);
    gone.port->SetIdleNotify(false);
    switch_.RemovePort(gone.id);
  }
  locals_ = std::move(next);
  holds_ = snap->holds;
  for (Local& l : locals_) {
    l.mac_held = false;
    for (const auto& h : holds_) l.mac_held |= l.mac_key != 0 && h->key() == l.mac_key;
  }
  seen_gen_ = g;
  std::lock_guard<std::mutex> l(mu_);
  acked_gen_ = g;
  acked_cv_.notify_all();
}

void Dataplane::Deliver(PortId from, uint16_t qp, const PacketRef& p, const uint8_t* eth,
                        uint64_t now_ns) {
  Decision d = switch_.Forward(eth, p.len, from, now_ns);
  if (d.kind == Decision::kDrop) return;
  // The one per-frame branch migration adds; false unless a MAC is held.
  if (__builtin_expect(!holds_.empty(), 0) && DeliverHeld(from, p, eth)) return;
  auto queue_for = [&](Local& g) {
    uint16_t nq = g.port->num_queue_pairs();
    uint16_t q = nq ? static_cast<uint16_t>(qp % nq) : 0;
    // The guest's own RSS table, when its shell sent one: a flow stays on
    // one queue, the one the guest's hash names (guest_rss.h).
    if (g.rss && nq > 1) {
      q = g.rss->QueueOf(p.segs, p.nsegs, q);
      if (q >= nq) q = 0;
    }
    // A guest may enable fewer queue pairs than it negotiated: queue 0 is
    // always there once the guest is ready.
    if (!g.port->QueueReady(q)) q = 0;
    // One pending batch per guest goes to one queue: a frame for another
    // queue flushes what is pending first, which also keeps their order.
    if (!g.out.empty() && g.out_qp != q) FlushGuest(g);
    return q;
  };
  if (d.kind == Decision::kUnicast) {
    if (d.port == kUplinkPort) {
      if (uplink_) {
        uplink_out_.push_back(p);
      } else {
        Add(c_.delivery_drops, 1);
      }
      return;
    }
    for (Local& g : locals_) {
      if (g.id == d.port) {
        g.out_qp = queue_for(g);
        g.out.push_back(p);
        return;
      }
    }
    Add(c_.delivery_drops, 1);  // the learned port went away meanwhile
    return;
  }
  uint64_t copies = 0;
  if (from != kUplinkPort && uplink_) {
    uplink_out_.push_back(p);
    copies++;
  }
  for (Local& g : locals_) {
    if (g.id == from || g.mac_held) continue;  // a held guest's copy went to its hold
    g.out_qp = queue_for(g);
    g.out.push_back(p);
    copies++;
  }
  // Every frame is accounted for: a flood nobody could take is a loss.
  if (copies) {
    Add(c_.flood_copies, copies);
  } else {
    Add(c_.flooded_to_nobody, 1);
  }
}

void Dataplane::FlushGuest(Local& g) {
  uint16_t n = static_cast<uint16_t>(g.out.size());
  uint16_t done = 0;
  if (!g.port->broken() && g.port->QueueReady(g.out_qp))
    done = g.port->EnqueueRx(g.out_qp, g.out.data(), n, RxFull::kDrop);
  if (n != done) Add(c_.delivery_drops, n - done);
  g.out.clear();
}

void Dataplane::Flush() {
  uint64_t dropped = 0;
  for (Local& g : locals_) {
    if (!g.out.empty()) FlushGuest(g);
  }
  if (!uplink_out_.empty()) {
    uint16_t n = static_cast<uint16_t>(uplink_out_.size());
    dropped += n - uplink_->Send(uplink_out_.data(), n);
    uplink_out_.clear();
  }
  if (dropped) Add(c_.delivery_drops, dropped);
}

uint32_t Dataplane::PollLoopback(Local& g, uint16_t qp, GuestFrame* frames, PacketRef* refs,
                                 uint64_t now_ns) {
  if (g.held.size() <= qp) {
    g.held.resize(qp + 1u);
    g.held_since_ns.resize(qp + 1u, 0);
  }
  std::vector<GuestFrame>& held = g.held[qp];
  uint16_t n;
  if (!held.empty()) {
    // Nothing new is peeked while older frames wait: order is kept.
    n = static_cast<uint16_t>(held.size());
    std::copy(held.begin(), held.end(), frames);
  } else {
    n = g.port->PeekTx(qp, frames, opts_.burst);
    if (n == 0) return 0;
  }
  for (uint16_t i = 0; i < n; i++)
    refs[i] = PacketRef{&frames[i].hdr, frames[i].segs, frames[i].nsegs, frames[i].len};
  // kKeep: what does not fit stays in the guest's TX ring (held), so it is
  // neither dropped nor counted as dropped.
  uint16_t done = g.port->EnqueueRx(qp, refs, n, RxFull::kKeep);
  if (done == 0 && !held.empty() && now_ns - g.held_since_ns[qp] > kMaxHoldNs) {
    // No progress for kMaxHoldNs: the oldest frame may never fit (or the
    // guest stopped receiving). Drop it rather than stall the queue forever.
    done = 1;
    Add(c_.delivery_drops, 1);
  }
  // ReleaseTx returns the oldest peeked frames: exactly the delivered prefix.
  if (done) {
    g.port->ReleaseTx(qp, done);
    g.held_since_ns[qp] = now_ns;
  }
  held.assign(frames + done, frames + n);
  return done;
}

uint32_t Dataplane::PollGuest(Local& g, uint64_t now_ns) {
  if (g.port->broken()) return 0;
  GuestFrame frames[256];
  PacketRef refs[256];
  uint32_t work = 0;
  const uint16_t nq = g.port->num_queue_pairs();
  if (nq == 0) return 0;
  // The guest's budget for this poll, over all its queues; the queue we
  // start with rotates so that a busy queue 0 cannot starve the others.
  uint32_t frames_left = opts_.burst;
  uint32_t descs_left = opts_.desc_budget;
  const uint16_t first = g.next_qp < nq ? g.next_qp : 0;
  g.next_qp = static_cast<uint16_t>(first + 1 < nq ? first + 1 : 0);
  for (uint16_t k = 0; k < nq; k++) {
    if (frames_left == 0 || descs_left == 0) {
      Add(c_.budget_yields, 1);  // the rest waits for the next round
      break;
    }
    const uint16_t qp = static_cast<uint16_t>(first + k < nq ? first + k : first + k - nq);
    if (!g.port->QueueReady(qp)) continue;
    if (opts_.mode == DataplaneMode::kLoopback) {
      const uint32_t done = PollLoopback(g, qp, frames, refs, now_ns);
      work += done;
      frames_left -= std::min(frames_left, done);
      continue;
    }
    const uint16_t n = g.port->PeekTxBudget(qp, frames, static_cast<uint16_t>(frames_left),
                                            &descs_left);
    if (n == 0) continue;
    work += n;
    frames_left -= n;
    switch (opts_.mode) {
      case DataplaneMode::kSink: {
        uint64_t bytes = 0;
        for (uint16_t i = 0; i < n; i++) {
          const size_t base = (sink_slot_++ % kSinkSlots) * kSinkSlotBytes;
          const GuestFrame& f = frames[i];
          CopyFrame(f, scratch_.data() + base, scratch_.size() - base);
          bytes += f.len;
        }
        Add(c_.sink_packets, n);
        Add(c_.sink_bytes, bytes);
        break;
      }
      case DataplaneMode::kLoopback:
        break;  // PollLoopback above
      case DataplaneMode::kSwitch: {
        for (uint16_t i = 0; i < n; i++) {
          // One read of the header from guest memory: the switch checks this
          // copy and every destination gets this copy (CheckedSegs), so a
          // guest that rewrites its header meanwhile cannot slip past the
          // anti-spoofing check.
          uint8_t* eth = eth_copies_[i].data();
          GatherEth(frames[i], eth);
          iovec* segs = &checked_segs_[static_cast<size_t>(i) * (kMaxFrameSegs + 1)];
          const uint16_t nsegs = frames[i].len >= 14 ? CheckedSegs(frames[i], eth, segs) : 0;
          const PacketRef ref{&frames[i].hdr, segs, nsegs, frames[i].len};
          Deliver(g.id, qp, ref, eth, now_ns);
        }
        Flush();
        break;
      }
    }
    // Every destination copied, so the guest's buffers go back right away.
    g.port->ReleaseTx(qp, n);
  }
  return work;
}

uint32_t Dataplane::PollUplink(uint64_t now_ns) {
  if (!uplink_) return 0;
  UplinkFrame frames[256];
  uint16_t n = uplink_->Receive(frames, opts_.burst);
  if (n == 0) return 0;
  iovec segs[256];
  for (uint16_t i = 0; i < n; i++) {
    segs[i] = {const_cast<uint8_t*>(frames[i].data), frames[i].len};
    PacketRef p{&frames[i].hdr, &segs[i], 1, frames[i].len};
    uint16_t qp = 0;
    if (opts_.mode == DataplaneMode::kSwitch) {
      // Flow-hash only decides the queue; the switch decides the guest.
      qp = FlowQueue(frames[i].data, frames[i].len, 16);
      Deliver(kUplinkPort, qp, p, frames[i].data, now_ns);
    }
    // sink/loopback: uplink traffic has nowhere to go; Receive counted it.
  }
  if (opts_.mode == DataplaneMode::kSwitch) Flush();
  return n;
}

uint32_t Dataplane::PollOnce(uint64_t now_ns) {
  uint32_t work = 0;
  // Injected frames are older than anything the uplink has now: first.
  if (__builtin_expect(ctl_.pending(), 0)) work += ServiceControl(now_ns);
  if (__builtin_expect(hold_traffic_.load(std::memory_order_relaxed), 0)) return work;
  for (Local& g : locals_) work += PollGuest(g, now_ns);
  work += PollUplink(now_ns);
  return work;
}

void Dataplane::HoldTraffic(bool hold) {
  if (hold_traffic_.exchange(hold) == hold || hold || !wake_fd_) return;
  uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof one);  // a full eventfd is awake anyway
}

void Dataplane::Sleep() {
  for (Local& g : locals_) {
    SyncNotifyFds(g);
    g.port->SetIdleNotify(true);
  }
  // Re-check after arming: a guest may have queued a frame before it saw
  // that we want kicks, and would then never kick.
  if (PollOnce(MonotonicNs()) == 0 && running_.load(std::memory_order_relaxed) &&
      gen_.load(std::memory_order_acquire) == seen_gen_) {
    Add(c_.sleeps, 1);
    WaitEvents(static_cast<int64_t>(opts_.idle_sleep_ms) * 1'000'000);
  }
  for (Local& g : locals_) g.port->SetIdleNotify(false);
}

void Dataplane::WaitEvents(int64_t timeout_ns) {
  epoll_event evs[64];
  timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
              static_cast<long>(timeout_ns % 1'000'000'000)};
  // epoll_pwait2 (Linux 5.11): a timeout in ns, for moderation intervals
  // below a millisecond.
  int n = epoll_pwait2(epoll_fd_.get(), evs, 64, &ts, nullptr);
  const int uplink_fd = uplink_ ? uplink_->notify_fd() : -1;
  for (int i = 0; i < n; i++) {
    // Level-triggered eventfds: consume the count or the next wait returns
    // at once. The uplink's fd is the TAP itself: reading it would eat a
    // frame, and the next Receive drains it anyway.
    if (evs[i].data.fd == uplink_fd) continue;
    uint64_t v;
    (void)!read(evs[i].data.fd, &v, sizeof v);
  }
}

void Dataplane::Run() {
  IdlePolicy idle({.spins = opts_.idle_spins,
                   .coalesce_ns = static_cast<uint64_t>(opts_.coalesce_us) * 1000});
  uint32_t since_clock = kClockEveryLoops;  // read it on the first loop
  uint64_t now = 0;
  while (running_.load(std::memory_order_relaxed)) {
    if (gen_.load(std::memory_order_acquire) != seen_gen_) Refresh();
    Add(c_.loops, 1);
    if (++since_clock >= kClockEveryLoops) {
      now = MonotonicNs();
      since_clock = 0;
    }
    uint32_t work = PollOnce(now);
    if (now - last_age_ns_ > kAgeEveryNs) {
      switch_.Age(now);
      last_age_ns_ = now;
    }
    // Moderation needs a fresh clock on every empty poll (its deep-idle
    // test); without it the clock stays one read per kClockEveryLoops.
    if (!work && idle.moderated()) now = MonotonicNs();
    switch (idle.After(work, now)) {
      case IdleAction::kPoll:
        break;
      case IdleAction::kWait:
        // Kicks stay off: guests queue without a syscall, and the next poll
        // takes everything that arrived in the interval in one pass.
        Add(c_.coalesced_waits, 1);
        WaitEvents(static_cast<int64_t>(idle.wait_ns()));
        since_clock = kClockEveryLoops;
        break;
      case IdleAction::kSleep:
        Sleep();
        since_clock = kClockEveryLoops;  // the sleep may have lasted long
        break;
    }
  }
  for (Local& g : locals_) DropNotifyFds(g);
  locals_.clear();
}

}  // namespace npa::agent
