// hypervisor/vhost/vhost_session.cc — VhostSession: the handlers of the
// requests and the data plane over the rings. The request table and the
// checks every message passes before its handler runs are in
// vhost_session_requests.cc.
#include "hypervisor/vhost/vhost_session.h"

#include <chrono>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <span>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace npa::agent {

namespace {

constexpr uint32_t kU64 = sizeof(uint64_t), kState = sizeof(npa_vhost_vring_state);

bool IsEventFd(int fd) {
  char path[64], target[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof(target) - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  return std::strcmp(target, "anon_inode:[eventfd]") == 0;
}

}  // namespace

VhostSession::VhostSession(VhostDevice::Options opts) : opts_(std::move(opts)), mtu_(opts_.mtu) {
  for (uint32_t i = 0; i < 2u * opts_.max_queue_pairs; ++i) vrings_.push_back(std::make_unique<Vring>());
  counters_.assign(opts_.max_queue_pairs, QueueCounters{});
}

VhostSession::~VhostSession() = default;

absl::StatusOr<VhostSession::Vring*> VhostSession::RingFromIndex(uint32_t index) {
  if (index >= vrings_.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vring index %u out of range (max %u)", index, vrings_.size() - 1));
  }
  return vrings_[index].get();
}

absl::StatusOr<RingLayout> VhostSession::Translate(const GuestMemory& mem, const Vring& r) const {
  const uint64_t n = r.num;
  const auto& a = r.addr;
  if (acked_features() & (1ull << NPA_VIRTIO_F_RING_PACKED)) {
    // vhost-user on a packed ring (as QEMU and DPDK use it): desc = the
    // descriptor ring, avail = the driver event suppression area, used =
    // the device's. §2.8.10.1: ring 16-aligned, each area 4-aligned.
    if ((a.desc_user_addr & 15) || (a.avail_user_addr & 3) || (a.used_user_addr & 3)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "packed ring addresses desc 0x%x driver area 0x%x device area 0x%x are misaligned",
          a.desc_user_addr, a.avail_user_addr, a.used_user_addr));
    }
    RingLayout l{r.num, nullptr, nullptr, nullptr};
    l.is_packed = true;
    l.packed.num = r.num;
    l.packed.desc = reinterpret_cast<npa_vring_packed_desc*>(
        mem.UvaToHost(a.desc_user_addr, npa_vring_packed_desc_size(r.num)));
    l.packed.driver = reinterpret_cast<npa_vring_packed_desc_event*>(
        mem.UvaToHost(a.avail_user_addr, sizeof(npa_vring_packed_desc_event)));
    l.packed.device = reinterpret_cast<npa_vring_packed_desc_event*>(
        mem.UvaToHost(a.used_user_addr, sizeof(npa_vring_packed_desc_event)));
    if (l.packed.desc == nullptr || l.packed.driver == nullptr || l.packed.device == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "packed ring of %u entries at desc 0x%x driver area 0x%x device area 0x%x is not inside "
          "guest memory",
          r.num, a.desc_user_addr, a.avail_user_addr, a.used_user_addr));
    }
    return l;
  }
  // §2.7: descriptor table 16-aligned, avail ring 2-aligned, used ring 4-aligned.
  if ((a.desc_user_addr & 15) || (a.avail_user_addr & 1) || (a.used_user_addr & 3)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ring addresses desc 0x%x avail 0x%x used 0x%x are misaligned", a.desc_user_addr,
        a.avail_user_addr, a.used_user_addr));
  }
  RingLayout l{r.num, nullptr, nullptr, nullptr};
  l.desc = reinterpret_cast<vring_desc*>(mem.UvaToHost(a.desc_user_addr, 16 * n));
  l.avail = reinterpret_cast<vring_avail*>(mem.UvaToHost(a.avail_user_addr, 6 + 2 * n));
  l.used = reinterpret_cast<vring_used*>(mem.UvaToHost(a.used_user_addr, 6 + 8 * n));
  if (l.desc == nullptr || l.avail == nullptr || l.used == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ring of %u entries at desc 0x%x avail 0x%x used 0x%x is not inside guest memory", r.num,
        a.desc_user_addr, a.avail_user_addr, a.used_user_addr));
  }
  return l;
}

void VhostSession::UpdateLiveLocked(uint32_t index) {
  Vring& r = *vrings_[index];
  const bool should = r.started && r.enabled && mem_ != nullptr && r.vq.configured();
  if (r.live.load(std::memory_order_relaxed) != should) {
    r.live.store(should, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
  }
}

void VhostSession::MarkBrokenLocked(const std::string& why) {
  if (broken_.load(std::memory_order_relaxed)) return;
  broken_reason_ = absl::StrCat("guest '", opts_.name, "' ", why);
  broken_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  if (stop_waiters_ > 0) tx_released_.notify_all();  // nothing more will be released
  NPA_LOG(Error, "vhost-user[%s]: device broken: %s", opts_.name.c_str(), broken_reason_.c_str());
}

absl::Status VhostSession::ValidateEventFd(int fd, const char* what) const {
  if (!IsEventFd(fd)) return absl::InvalidArgumentError(absl::StrCat(what, " fd is not an eventfd"));
  // A blocking eventfd whose counter the guest saturated would stall the
  // dataplane's write(); non-blocking makes that write fail instead.
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return ErrnoError(errno, "fcntl on ", what, " fd");
  return absl::OkStatus();
}

// ---- handlers -------------------------------------------------------------

absl::Status VhostSession::OnGetFeatures(VhostMessage&, VhostReply* r) {
  r->hdr.size = kU64;
  r->payload.u64 = opts_.features;
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetFeatures(VhostMessage& m, VhostReply*) {
  const uint64_t f = m.payload.u64;
  if (f & ~opts_.features) {
    return absl::InvalidArgumentError(absl::StrFormat("features 0x%x include unoffered bits 0x%x", f, f & ~opts_.features));
  }
  if (!(f & (1ull << VIRTIO_F_VERSION_1))) {
    return absl::InvalidArgumentError("VIRTIO_F_VERSION_1 not acked (legacy virtio is not supported)");
  }
  // With -netdev vhost-user,queues=N QEMU runs one vhost device per queue
  // pair on the one socket, and each sends SET_FEATURES (the same value) as
  // it starts, while the pairs started before it run. The same value changes
  // nothing and is accepted; a different one is refused.
  if (f != acked_features()) {
    for (const auto& r : vrings_) {
      if (r->started) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "features changed (0x%x -> 0x%x) while a vring is running", acked_features(), f));
      }
    }
  }
  acked_features_.store(f, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetOwner(VhostMessage&, VhostReply*) { return absl::OkStatus(); }

void VhostSession::ResetLocked() {
  for (uint32_t i = 0; i < vrings_.size(); ++i) {
    Vring& r = *vrings_[i];
    r.vq.Stop();
    r.started = r.enabled = r.addr_set = false;
    r.num = 0;
    r.base = 0;
    r.call.reset();
    r.err.reset();
    r.kick.reset();
    r.vq.SetCallFd(-1);
    UpdateLiveLocked(i);
  }
  mem_.reset();
}

absl::Status VhostSession::OnResetOwner(VhostMessage&, VhostReply*) {
  std::lock_guard<std::mutex> l(mu_);
  ResetLocked();
  acked_features_.store(0, std::memory_order_relaxed);
  acked_protocol_ = 0;
  protocol_set_ = false;
  return absl::OkStatus();
}

absl::Status VhostSession::OnGetProtocolFeatures(VhostMessage&, VhostReply* r) {
  r->hdr.size = kU64;
  r->payload.u64 = kOfferedProtocolFeatures;
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetProtocolFeatures(VhostMessage& m, VhostReply*) {
  if (m.payload.u64 & ~kOfferedProtocolFeatures) {
    return absl::InvalidArgumentError(absl::StrFormat("protocol features 0x%x include unoffered bits", m.payload.u64));
  }
  acked_protocol_ = m.payload.u64;
  protocol_set_ = true;
  return absl::OkStatus();
}

absl::Status VhostSession::OnGetQueueNum(VhostMessage&, VhostReply* r) {
  r->hdr.size = kU64;
  r->payload.u64 = opts_.max_queue_pairs;
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetMemTable(VhostMessage& m, VhostReply*) {
  std::span<const npa_vhost_memory_region> regions(m.payload.memory.regions, m.payload.memory.nregions);
  NPA_ASSIGN_OR_RETURN(std::shared_ptr<const GuestMemory> mem,
                       GuestMemory::Map(regions, std::move(m.fds), opts_.name,
                                        opts_.require_sealed_memory, opts_.max_guest_memory));
  // Re-translate every configured ring against the new table before
  // installing it, so a failure leaves the old state intact.
  std::vector<std::pair<uint32_t, RingLayout>> layouts;
  for (uint32_t i = 0; i < vrings_.size(); ++i) {
    const Vring& r = *vrings_[i];
    if (!r.addr_set) continue;
    absl::StatusOr<RingLayout> l = Translate(*mem, r);
    if (!l.ok()) return absl::Status(l.status().code(), absl::StrCat("vring ", i, ": ", l.status().message()));
    layouts.emplace_back(i, *l);
  }
  std::shared_ptr<const GuestMemory> old;
  {
    std::lock_guard<std::mutex> l(mu_);
    old = std::exchange(mem_, mem);
    for (const auto& [i, layout] : layouts) {
      if (vrings_[i]->vq.configured()) vrings_[i]->vq.Remap(mem, layout);
    }
  }
  // `old` unmaps here, outside the lock, unless in-flight TX frames hold it.
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetVringNum(VhostMessage& m, VhostReply*) {
  NPA_ASSIGN_OR_RETURN(Vring * r, RingFromIndex(m.payload.state.index));
  const uint32_t num = m.payload.state.num;
  // §2.8.2: a packed ring may have any size up to 32768; a split one is a
  // power of two (§2.7). Front ends ack features before sizing rings; the
  // kick re-checks in case they change in between.
  const bool packed = acked_features() & (1ull << NPA_VIRTIO_F_RING_PACKED);
  if (num == 0 || num > kMaxRingSize || (!packed && (num & (num - 1)) != 0)) {
    return absl::InvalidArgumentError(absl::StrFormat("vring %u size %u is not %sin 1..%u",
                                                      m.payload.state.index, num,
                                                      packed ? "" : "a power of two ", kMaxRingSize));
  }
  if (r->started) return absl::FailedPreconditionError("vring is running");
  r->num = num;
  r->addr_set = false;  // sizes changed: the addresses must be re-sent and re-checked
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetVringAddr(VhostMessage& m, VhostReply*) {
  NPA_ASSIGN_OR_RETURN(Vring * r, RingFromIndex(m.payload.addr.index));
  if (m.payload.addr.flags != 0) {
    return absl::InvalidArgumentError(absl::StrFormat("vring flags 0x%x (logging not offered)", m.payload.addr.flags));
  }
  if (r->started) return absl::FailedPreconditionError("vring is running");
  if (r->num == 0) return absl::FailedPreconditionError("SET_VRING_ADDR before SET_VRING_NUM");
  Vring probe;
  probe.num = r->num;
  probe.addr = m.payload.addr;
  NPA_RETURN_IF_ERROR(Translate(*mem_, probe).status());
  r->addr = m.payload.addr;
  r->addr_set = true;
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetVringBase(VhostMessage& m, VhostReply*) {
  NPA_ASSIGN_OR_RETURN(Vring * r, RingFromIndex(m.payload.state.index));
  if (m.payload.state.num > 0xffff) {
    // Split: the 16-bit avail index. Packed: bits 0..14 the slot, bit 15
    // the wrap counter (checked against the size at the kick).
    return absl::InvalidArgumentError(absl::StrFormat("vring base %u > 65535", m.payload.state.num));
  }
  if (r->started) return absl::FailedPreconditionError("vring is running");
  r->base = static_cast<uint16_t>(m.payload.state.num);
  return absl::OkStatus();
}

absl::Status VhostSession::OnGetVringBase(VhostMessage& m, VhostReply* rep) {
  const uint32_t index = m.payload.state.index;
  NPA_ASSIGN_OR_RETURN(Vring * r, RingFromIndex(index));
  uint16_t base;
  uint16_t orphaned = 0;
  {
    std::unique_lock<std::mutex> l(mu_);
    // Not live any more: the dataplane peeks nothing new from this ring.
    r->started = false;
    UpdateLiveLocked(index);
    // TX frames the dataplane already peeked are being delivered right now
    // (PeekTx -> Deliver -> ReleaseTx, one burst, mu_ dropped in between).
    // Wait for that ReleaseTx so the base counts them as consumed: reported
    // as not consumed, the frontend would post them again after a restart
    // (on another agent, after a migration) and the wire would carry them
    // twice. Bounded: a dataplane that keeps frames longer (loopback's
    // backpressure) or is stuck leaves them orphaned as before, re-read
    // once the ring restarts, and the log says how many.
    if (r->vq.configured() && r->vq.in_flight() > 0) {
      ++stop_waiters_;
      tx_released_.wait_for(l, std::chrono::milliseconds(opts_.stop_release_wait_ms), [r, this] {
        return r->vq.in_flight() == 0 || broken_.load(std::memory_order_relaxed);
      });
      --stop_waiters_;
      orphaned = r->vq.in_flight();
    }
    base = r->vq.configured() ? r->vq.Stop() : r->base;
    r->base = base;
    r->kick.reset();  // the dataplane sleeps on its own duplicate
  }
  if (orphaned > 0) {
    NPA_LOG(Warn,
            "vhost-user[%s]: GET_VRING_BASE ring %u: %u TX frames still with the dataplane "
            "after %u ms; base %u leaves them to be read again on restart",
            opts_.name.c_str(), index, orphaned, opts_.stop_release_wait_ms, base);
  }
  rep->hdr.size = kState;
  rep->payload.state = {index, base};
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetVringFd(VhostMessage& m, VhostReply*) {
  const uint64_t v = m.payload.u64;
  const uint32_t req = m.hdr.request;
  const char* what = req == NPA_VHOST_USER_SET_VRING_KICK ? "kick"
                     : req == NPA_VHOST_USER_SET_VRING_CALL ? "call" : "err";
  if (v & ~(NPA_VHOST_USER_VRING_IDX_MASK | NPA_VHOST_USER_VRING_NOFD_MASK)) {
    return absl::InvalidArgumentError(absl::StrFormat("payload 0x%x has unknown bits", v));
  }
  const uint32_t index = static_cast<uint32_t>(v & NPA_VHOST_USER_VRING_IDX_MASK);
  NPA_ASSIGN_OR_RETURN(Vring * r, RingFromIndex(index));
  UniqueFd fd = m.fds.empty() ? UniqueFd() : std::move(m.fds[0]);
  if (fd.valid()) NPA_RETURN_IF_ERROR(ValidateEventFd(fd.get(), what));
  UniqueFd old;  // closed after the lock is dropped
  if (req == NPA_VHOST_USER_SET_VRING_ERR) {
    old = std::exchange(r->err, std::move(fd));
    return absl::OkStatus();
  }
  if (req == NPA_VHOST_USER_SET_VRING_CALL) {
    std::lock_guard<std::mutex> l(mu_);
    old = std::exchange(r->call, std::move(fd));
    r->vq.SetCallFd(r->call.get());
    return absl::OkStatus();
  }
  // KICK: the ring starts (spec: "started ... upon receiving a kick").
  if (state() != kMemReady || !r->addr_set || r->num == 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "vring %u kicked before it has %s", index,
        state() != kMemReady ? "a memory table" : r->num == 0 ? "a size" : "addresses"));
  }
  const bool packed = acked_features() & (1ull << NPA_VIRTIO_F_RING_PACKED);
  if (!r->started && !packed && (r->num & (r->num - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vring %u size %u is not a power of two and VIRTIO_F_RING_PACKED is not acked", index, r->num));
  }
  if (!r->started && packed && PackedBaseIdx(r->base) >= r->num) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "packed vring %u base 0x%x names slot %u of a ring of %u", index, r->base,
        PackedBaseIdx(r->base), r->num));
  }
  NPA_ASSIGN_OR_RETURN(RingLayout layout, Translate(*mem_, *r));
  std::lock_guard<std::mutex> l(mu_);
  // A replaced kick fd is closed here and now (old, after the lock): the
  // dataplane sleeps on duplicates (NotifyFds), so nothing accumulates
  // however often a guest replaces it.
  old = std::exchange(r->kick, std::move(fd));
  if (!r->started) {
    const bool mrg = acked_features() & (1ull << VIRTIO_NET_F_MRG_RXBUF);
    const bool event_idx = acked_features() & (1ull << NPA_VIRTIO_F_RING_EVENT_IDX);
    r->vq.Configure(mem_, layout, r->base, mrg, r->call.get(), event_idx);
    // The ring kind, for operators and for the interop tests that prove
    // which one a front end negotiated.
    NPA_LOG(Info, "vhost-user[%s]: vring %u started: %s ring of %u, base 0x%x%s", opts_.name.c_str(),
            index, packed ? "packed" : "split", r->num, r->base, event_idx ? ", event_idx" : "");
    r->started = true;
    // Without F_PROTOCOL_FEATURES rings start enabled (spec, "Ring states").
    if (!(acked_features() & (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES))) r->enabled = true;
  }
  UpdateLiveLocked(index);
  generation_.fetch_add(1, std::memory_order_release);  // kick fd set changed
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetVringEnable(VhostMessage& m, VhostReply*) {
  const uint32_t index = m.payload.state.index;
  NPA_ASSIGN_OR_RETURN(Vring * r, RingFromIndex(index));
  if (m.payload.state.num > 1) {
    return absl::InvalidArgumentError(absl::StrFormat("enable value %u (must be 0 or 1)", m.payload.state.num));
  }
  // QEMU sends SET_VRING_ENABLE at device reset, before SET_FEATURES: it
  // counts F_PROTOCOL_FEATURES as negotiated once the back end offered it and
  // SET_PROTOCOL_FEATURES was sent (which a front end may only send when the
  // bit was offered). Either proof is enough.
  if (!protocol_set_ && !(acked_features() & (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES))) {
    return absl::FailedPreconditionError(
        "SET_VRING_ENABLE without VHOST_USER_F_PROTOCOL_FEATURES (neither acked nor "
        "SET_PROTOCOL_FEATURES sent)");
  }
  std::lock_guard<std::mutex> l(mu_);
  r->enabled = m.payload.state.num == 1;
  UpdateLiveLocked(index);
  return absl::OkStatus();
}

absl::Status VhostSession::OnNetSetMtu(VhostMessage& m, VhostReply*) {
  if (m.payload.u64 < 68 || m.payload.u64 > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat("MTU %u outside 68..65535", m.payload.u64));
  }
  mtu_.store(static_cast<uint32_t>(m.payload.u64), std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status VhostSession::OnSetStatus(VhostMessage& m, VhostReply*) {
  if (m.payload.u64 > 0xff) {
    return absl::InvalidArgumentError(absl::StrFormat("status 0x%x does not fit the 8-bit device status", m.payload.u64));
  }
  status_ = static_cast<uint8_t>(m.payload.u64);
  return absl::OkStatus();
}

absl::Status VhostSession::OnGetStatus(VhostMessage&, VhostReply* r) {
  r->hdr.size = kU64;
  r->payload.u64 = status_;
  return absl::OkStatus();
}

// ---- data plane -------------------------------------------------------------

uint16_t VhostSession::num_queue_pairs() const {
  return (acked_features() & (1ull << VIRTIO_NET_F_MQ)) ? opts_.max_queue_pairs : 1;
}

bool VhostSession::QueueReady(uint16_t qp) const {
  if (qp >= opts_.max_queue_pairs || broken()) return false;
  return vrings_[2 * qp]->live.load(std::memory_order_acquire) &&
         vrings_[2 * qp + 1]->live.load(std::memory_order_acquire);
}

uint16_t VhostSession::PeekTx(uint16_t qp, GuestFrame* out, uint16_t n, uint32_t* desc_budget) {
  if (qp >= opts_.max_queue_pairs) return 0;
  std::lock_guard<std::mutex> l(mu_);
  Vring& r = *vrings_[2 * qp + 1];
  if (broken_.load(std::memory_order_relaxed) || !r.live.load(std::memory_order_relaxed)) return 0;
  std::string violation;
  const uint16_t got = r.vq.PeekTx(out, n, &counters_[qp], &violation, desc_budget);
  if (!violation.empty()) MarkBrokenLocked(absl::StrCat("TX queue ", qp, ": ", violation));
  return got;
}

void VhostSession::ReleaseTx(uint16_t qp, uint16_t n) {
  if (qp >= opts_.max_queue_pairs || n == 0) return;
  std::lock_guard<std::mutex> l(mu_);
  if (broken_.load(std::memory_order_relaxed)) return;
  vrings_[2 * qp + 1]->vq.ReleaseTx(n);
  if (stop_waiters_ > 0) tx_released_.notify_all();  // OnGetVringBase
}

uint16_t VhostSession::EnqueueRx(uint16_t qp, const PacketRef* pkts, uint16_t n, RxFull full) {
  if (qp >= opts_.max_queue_pairs) return 0;
  std::lock_guard<std::mutex> l(mu_);
  Vring& r = *vrings_[2 * qp];
  if (broken_.load(std::memory_order_relaxed) || !r.live.load(std::memory_order_relaxed)) {
    if (full == RxFull::kDrop) counters_[qp].rx_dropped += n;
    return 0;
  }
  std::string violation;
  const uint16_t got = r.vq.EnqueueRx(pkts, n, &counters_[qp], &violation, full);
  if (!violation.empty()) MarkBrokenLocked(absl::StrCat("RX queue ", qp, ": ", violation));
  return got;
}

std::string VhostSession::broken_reason() const {
  std::lock_guard<std::mutex> l(mu_);
  return broken_reason_;
}

QueueCounters VhostSession::counters(uint16_t qp) const {
  if (qp >= opts_.max_queue_pairs) return {};
  std::lock_guard<std::mutex> l(mu_);
  return counters_[qp];
}

std::vector<UniqueFd> VhostSession::NotifyFds() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<UniqueFd> fds;
  for (const auto& r : vrings_) {
    if (!r->live.load(std::memory_order_relaxed) || !r->kick.valid()) continue;
    // Duplicated under mu_, so the number cannot be closed and reused by
    // the control thread in between.
    UniqueFd d(fcntl(r->kick.get(), F_DUPFD_CLOEXEC, 0));
    if (d.valid()) fds.push_back(std::move(d));
  }
  return fds;
}

void VhostSession::SetIdleNotify(bool want_kicks) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& r : vrings_) r->vq.set_idle_notify(want_kicks);
}

}  // namespace npa::agent
