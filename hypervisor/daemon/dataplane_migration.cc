#include "hypervisor/daemon/dataplane_migration.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/daemon/dataplane_frames.h"
#include "hypervisor/vhost/virtqueue.h"

namespace npa::agent {

// ---- MacHold ------------------------------------------------------------

void MacHold::set_max_frames(size_t n) {
  std::lock_guard<std::mutex> l(mu_);
  max_frames_ = n;
}

bool MacHold::Append(const PacketRef& p) {
  const size_t need = kHeldFrameHdrLen + p.len;
  std::lock_guard<std::mutex> l(mu_);
  if (closed_ || held_.frames.size() >= max_frames_ || bytes_ + need > kMaxHeldBytes) {
    held_.dropped++;
    return false;
  }
  std::string f(need, '\0');
  if (p.hdr != nullptr) memcpy(f.data(), p.hdr, kHeldFrameHdrLen);
  size_t off = kHeldFrameHdrLen;
  for (uint16_t s = 0; s < p.nsegs && off < need; s++) {
    const size_t take = std::min(p.segs[s].iov_len, need - off);
    memcpy(f.data() + off, p.segs[s].iov_base, take);
    off += take;
  }
  bytes_ += need;
  held_.frames.push_back(std::move(f));
  return true;
}

HeldFrames MacHold::Take() {
  std::lock_guard<std::mutex> l(mu_);
  HeldFrames out = std::move(held_);
  held_ = HeldFrames{};
  bytes_ = 0;
  return out;
}

HeldFrames MacHold::Close() {
  std::lock_guard<std::mutex> l(mu_);
  closed_ = true;
  HeldFrames out = std::move(held_);
  held_ = HeldFrames{};
  bytes_ = 0;
  return out;
}

bool RouteToHolds(std::span<const std::shared_ptr<MacHold>> holds, uint64_t from_key,
                  const PacketRef& p, const uint8_t* eth, uint64_t* kept, uint64_t* dropped) {
  auto append = [&](MacHold& h) { ++*(h.Append(p) ? kept : dropped); };
  if (!(eth[0] & 1)) {
    const uint64_t dst = MacKey(eth);
    for (const auto& h : holds) {
      if (h->key() == dst) {
        append(*h);
        return true;  // neither delivered nor flooded
      }
    }
    return false;
  }
  // Broadcast/multicast: the held MAC would have received a copy, unless it
  // sent the frame itself.
  const uint64_t src = MacKey(eth + 6);
  for (const auto& h : holds)
    if (h->key() != src && h->key() != from_key) append(*h);
  return false;
}

// ---- ControlQueue -------------------------------------------------------

void ControlQueue::Wake() {
  if (wake_fd_ < 0) return;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);  // a full eventfd is awake anyway
}

ControlQueueCounters ControlQueue::counters() const {
  ControlQueueCounters c;
  c.injected = injected_.load(std::memory_order_relaxed);
  c.inject_failed = inject_failed_.load(std::memory_order_relaxed);
  c.uplink_control = uplink_control_.load(std::memory_order_relaxed);
  c.uplink_dropped = uplink_dropped_.load(std::memory_order_relaxed);
  return c;
}

uint64_t ControlQueue::Inject(PortId guest, std::vector<std::string> frames, bool running) {
  const uint64_t total = frames.size();
  if (total == 0) return 0;
  if (!running) {
    inject_failed_.fetch_add(total, std::memory_order_relaxed);
    NPA_LOG(Warn, "dataplane: inject %llu frames into guest %u: dataplane not running",
            static_cast<unsigned long long>(total), guest);
    return total;
  }
  auto job = std::make_shared<InjectJob>();
  job->guest = guest;
  job->frames = std::move(frames);
  std::unique_lock<std::mutex> l(mu_);
  injects_.push_back(job);
  pending_.store(true, std::memory_order_release);
  Wake();
  if (!cv_.wait_for(l, std::chrono::seconds(3), [&] { return job->done; })) {
    // A stuck dataplane: take the job back and count what it did not do.
    injects_.erase(std::find(injects_.begin(), injects_.end(), job));
    const uint64_t rest = job->frames.size() - job->next;
    job->failed += rest;
    inject_failed_.fetch_add(rest, std::memory_order_relaxed);
  }
  if (job->failed)
    NPA_LOG(Warn, "dataplane: inject into guest %u: %llu of %llu frames not delivered", guest,
            static_cast<unsigned long long>(job->failed), static_cast<unsigned long long>(total));
  return job->failed;
}

void ControlQueue::FailAll() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& j : injects_) {
    const uint64_t rest = j->frames.size() - j->next;
    j->failed += rest;
    inject_failed_.fetch_add(rest, std::memory_order_relaxed);
    j->next = j->frames.size();
    j->done = true;
  }
  injects_.clear();
  cv_.notify_all();
}

absl::Status ControlQueue::SendOnUplink(std::span<const uint8_t> frame, bool running) {
  (void)running;  // the TAP takes a direct write from any thread, running or not
  if (uplink_ == nullptr) return absl::FailedPreconditionError("dataplane: no uplink to send on");
  // Written at once from the calling (control) thread, not queued for the
  // dataplane's next loop: a migrated guest's first RARP must leave within a
  // millisecond of its path going live, and a dataplane that sleeps or waits
  // for a CPU can take longer (TapUplink::SendDirect).
  absl::Status s = uplink_->SendDirect(frame);
  if (s.ok()) {
    uplink_control_.fetch_add(1, std::memory_order_relaxed);
  } else if (!absl::IsInvalidArgument(s)) {
    uplink_dropped_.fetch_add(1, std::memory_order_relaxed);
  }
  if (absl::IsInvalidArgument(s))
    return absl::InvalidArgumentError(absl::StrCat("dataplane: ", s.message()));
  return s;
}

uint32_t ControlQueue::ServiceInject(InjectJob& j, uint64_t now_ns, uint16_t burst,
                                     GuestPort* port) {
  uint32_t moved = 0;
  if (j.last_progress_ns == 0) j.last_progress_ns = now_ns ? now_ns : 1;
  bool progress = false;
  while (port != nullptr && !port->broken() && j.next < j.frames.size()) {
    // A run of well-formed frames for one queue, at most a burst.
    npa_virtio_net_hdr_v1 hdrs[256];
    iovec segs[256];
    PacketRef refs[256];
    uint16_t k = 0;
    uint16_t q = 0;
    const uint16_t nq = port->num_queue_pairs();
    for (size_t i = j.next; i < j.frames.size() && k < burst; i++) {
      const std::string& f = j.frames[i];
      if (f.size() < kHeldFrameHdrLen + 14 || f.size() - kHeldFrameHdrLen > kMaxFrameLen) {
        if (k > 0) break;  // deliver the run first, then count this one
        j.failed++;
        inject_failed_.fetch_add(1, std::memory_order_relaxed);
        j.next = i + 1;
        continue;
      }
      const auto* data = reinterpret_cast<const uint8_t*>(f.data()) + kHeldFrameHdrLen;
      const uint32_t len = static_cast<uint32_t>(f.size() - kHeldFrameHdrLen);
      uint16_t fq = nq ? static_cast<uint16_t>(FlowQueue(data, len, 16) % nq) : 0;
      if (!port->QueueReady(fq)) fq = 0;
      if (k > 0 && fq != q) break;
      q = fq;
      memcpy(&hdrs[k], f.data(), kHeldFrameHdrLen);
      segs[k] = {const_cast<uint8_t*>(data), len};
      refs[k] = {&hdrs[k], &segs[k], 1, len};
      k++;
    }
    if (k == 0) continue;  // only malformed ones: counted, look again
    if (!port->QueueReady(q)) break;
    const uint16_t done = port->EnqueueRx(q, refs, k, RxFull::kKeep);
    j.next += done;
    injected_.fetch_add(done, std::memory_order_relaxed);
    moved += done;
    if (done) progress = true;
    if (done < k) break;  // no room now
  }
  if (progress) j.last_progress_ns = now_ns;
  const bool gone = port == nullptr || port->broken();
  if (j.next < j.frames.size() && (gone || now_ns - j.last_progress_ns > kMaxHoldNs)) {
    const uint64_t rest = j.frames.size() - j.next;
    j.failed += rest;
    inject_failed_.fetch_add(rest, std::memory_order_relaxed);
    j.next = j.frames.size();
  }
  return moved;
}

uint32_t ControlQueue::Service(uint64_t now_ns, uint16_t burst,
                               absl::FunctionRef<GuestPort*(PortId)> port_of) {
  uint32_t moved = 0;
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = injects_.begin(); it != injects_.end();) {
    InjectJob& j = **it;
    moved += ServiceInject(j, now_ns, burst, port_of(j.guest));
    if (j.next == j.frames.size()) {
      j.done = true;
      it = injects_.erase(it);
    } else {
      ++it;
    }
  }
  pending_.store(!injects_.empty(), std::memory_order_release);
  cv_.notify_all();
  return moved;
}

// ---- Dataplane's migration methods (dataplane.h) ------------------------

absl::Status Dataplane::HoldMac(const MacAddr& mac, size_t max_frames) {
  if (IsMulticast(mac) || IsZeroMac(mac))
    return absl::InvalidArgumentError(
        absl::StrCat("dataplane: hold MAC ", MacToString(mac), ": not a unicast address"));
  auto next = CopySnapshot();
  const uint64_t key = MacKey(mac.data());
  for (const auto& h : next->holds) {
    if (h->key() == key) {
      h->set_max_frames(max_frames);
      return absl::OkStatus();
    }
  }
  next->holds.push_back(std::make_shared<MacHold>(key, max_frames));
  NPA_LOG(Info, "dataplane: holding frames for %s (at most %zu frames, %zu bytes)",
          MacToString(mac).c_str(), max_frames, kMaxHeldBytes);
  return Publish(std::move(next));
}

Dataplane::HeldFrames Dataplane::TakeHeld(const MacAddr& mac) {
  const uint64_t key = MacKey(mac.data());
  std::shared_ptr<MacHold> h;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& x : snapshot_->holds)
      if (x->key() == key) h = x;
  }
  return h ? h->Take() : HeldFrames{};
}

Dataplane::HeldFrames Dataplane::ReleaseMac(const MacAddr& mac) {
  const uint64_t key = MacKey(mac.data());
  auto next = CopySnapshot();
  auto it = std::find_if(next->holds.begin(), next->holds.end(),
                         [&](const auto& h) { return h->key() == key; });
  if (it == next->holds.end()) return HeldFrames{};
  std::shared_ptr<MacHold> h = *it;
  next->holds.erase(it);
  if (absl::Status s = Publish(std::move(next)); !s.ok()) {
    // The dataplane may still append; Close makes those count as drops.
    NPA_LOG(Warn, "dataplane: release of held MAC %s: %s", MacToString(mac).c_str(),
            std::string(s.message()).c_str());
  }
  HeldFrames out = h->Close();
  NPA_LOG(Info, "dataplane: released MAC %s (%zu frames held, %llu dropped)",
          MacToString(mac).c_str(), out.frames.size(),
          static_cast<unsigned long long>(out.dropped));
  return out;
}

bool Dataplane::DeliverHeld(PortId from, const PacketRef& p, const uint8_t* eth) {
  // The sender's pinned MAC: a guest's own broadcast is not copied to its hold.
  uint64_t from_key = 0;
  if (eth[0] & 1) {
    for (const Local& l : locals_)
      if (l.id == from) from_key = l.mac_key;
  }
  uint64_t kept = 0, dropped = 0;
  const bool consumed = RouteToHolds(holds_, from_key, p, eth, &kept, &dropped);
  if (kept) Add(c_.held, kept);
  if (dropped) c_.held_dropped.fetch_add(dropped, std::memory_order_relaxed);
  return consumed;
}

uint64_t Dataplane::InjectRx(PortId guest, std::vector<std::string> frames) {
  return ctl_.Inject(guest, std::move(frames), running_.load());
}

absl::Status Dataplane::SendOnUplink(std::span<const uint8_t> frame) {
  return ctl_.SendOnUplink(frame, running_.load());
}

uint32_t Dataplane::ServiceControl(uint64_t now_ns) {
  return ctl_.Service(now_ns, opts_.burst, [this](PortId id) -> GuestPort* {
    for (Local& x : locals_)
      if (x.id == id) return x.port.get();
    return nullptr;
  });
}

}  // namespace npa::agent
