#include "shell/emulated/emulated_path.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "npa/virtio_ring.h"

namespace npa::shell {
namespace {

uint16_t RxBurst(void* ctx, npa_buf** bufs, uint16_t n, QueueCounters* c) {
  return static_cast<RxVirtq*>(ctx)->Burst(bufs, n, c);
}
uint16_t TxBurst(void* ctx, npa_buf** bufs, uint16_t n, QueueCounters* c) {
  return static_cast<TxVirtq*>(ctx)->Burst(bufs, n, c);
}

absl::StatusOr<UniqueFd> MakeEventFd(const char* what, uint16_t q) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return ErrnoError(errno, "eventfd for ", what, " of queue ", q);
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EmulatedPath>> EmulatedPath::Create(const Params& p,
                                                                   VhostUserFrontend* fe) {
  if (p.rx_ring_mem.size() < p.nb_queue_pairs || p.tx_ring_mem.size() < p.nb_queue_pairs ||
      p.pools.size() < p.nb_queue_pairs)
    return absl::InvalidArgumentError("emulated path: ring memory or pools missing");
  std::unique_ptr<EmulatedPath> e(new EmulatedPath(fe));
  const uint64_t f = fe->features();
  for (uint16_t q = 0; q < p.nb_queue_pairs; q++) {
    auto qu = std::make_unique<Queue>();
    NPA_ASSIGN_OR_RETURN(qu->rx_kick, MakeEventFd("RX kick", q));
    NPA_ASSIGN_OR_RETURN(qu->rx_call, MakeEventFd("RX call", q));
    NPA_ASSIGN_OR_RETURN(qu->tx_kick, MakeEventFd("TX kick", q));
    NPA_ASSIGN_OR_RETURN(qu->tx_call, MakeEventFd("TX call", q));
    NPA_RETURN_IF_ERROR(qu->rx.Init(p.rx_ring_mem[q], p.ring_size, p.pools[q], f, qu->rx_kick.get()));
    NPA_RETURN_IF_ERROR(qu->tx.Init(p.tx_ring_mem[q], p.ring_size, p.pools[q], f, qu->tx_kick.get()));
    qu->rx.set_mergeable((f & (1ull << NPA_VIRTIO_NET_F_MRG_RXBUF)) != 0);
    qu->rx.set_strip_vlan(p.vlan_strip);
    // base(): 0 for a new split ring, 0x8000 (slot 0, wrap counter 1) for
    // a packed one (vhost-user SET_VRING_BASE, as DPDK and QEMU encode it).
    NPA_RETURN_IF_ERROR(fe->SetupVring(2u * q, p.ring_size, qu->rx.addrs(), qu->rx_kick.get(),
                                       qu->rx_call.get(), qu->rx.base()));
    NPA_RETURN_IF_ERROR(fe->SetupVring(2u * q + 1, p.ring_size, qu->tx.addrs(), qu->tx_kick.get(),
                                       qu->tx_call.get(), qu->tx.base()));
    e->queues_.push_back(std::move(qu));
  }
  return e;
}

EmulatedPath::~EmulatedPath() {
  for (auto& q : queues_) {
    q->rx.ReleaseAll();
    q->tx.ReleaseAll();
  }
}

uint64_t EmulatedPath::offloads() const {
  // TX checksum and TSO are always there: the device's, or software
  // (offload.cc, tso.h) where the back end lacks them; VLAN insert/strip
  // always in software (virtio-net has no such offload).
  return NPA_OFFLOAD_TX_CSUM | NPA_OFFLOAD_TSO | NPA_OFFLOAD_RX_CSUM | NPA_OFFLOAD_MRG_RXBUF |
         NPA_OFFLOAD_VLAN_INSERT | NPA_OFFLOAD_VLAN_STRIP;
}

absl::Status EmulatedPath::Start() {
  // RX buffers are posted by the owning thread's rx_burst (it refills in
  // batches), never from here: the pool belongs to that thread.
  for (size_t q = 0; q < queues_.size(); q++) {
    NPA_RETURN_IF_ERROR(fe_->EnableVring(static_cast<uint32_t>(2 * q), true));
    NPA_RETURN_IF_ERROR(fe_->EnableVring(static_cast<uint32_t>(2 * q + 1), true));
  }
  started_ = true;
  return absl::OkStatus();
}

absl::Status EmulatedPath::Stop() {
  started_ = false;
  for (size_t q = 0; q < queues_.size(); q++) {
    NPA_RETURN_IF_ERROR(fe_->EnableVring(static_cast<uint32_t>(2 * q), false));
    NPA_RETURN_IF_ERROR(fe_->EnableVring(static_cast<uint32_t>(2 * q + 1), false));
  }
  return absl::OkStatus();
}

uint16_t EmulatedPath::used_idx(uint32_t vring) const {
  const Queue& qu = *queues_[vring / 2];
  const VirtqBase& ring = (vring & 1) ? static_cast<const VirtqBase&>(qu.tx) : qu.rx;
  // Packed: no shared used index; the device's used position is found in
  // the ring itself, with its wrap counter (bit 15), as SET_VRING_BASE wants.
  if (ring.packed()) return ring.PackedDeviceUsedBase();
  const VringAddrs a = ring.addrs();
  // used->idx is written by the back end (VIRTIO 1.x 2.7.8): acquire, as
  // the rings read it.
  const auto* used = reinterpret_cast<const npa_vring_used*>(a.used);
  return __atomic_load_n(&used->idx, __ATOMIC_ACQUIRE);
}

uint16_t EmulatedPath::tx_in_flight(uint16_t q) const {
  if (queues_[q]->tx.packed()) return queues_[q]->tx.PackedDeviceInFlight();
  const uint16_t avail = __atomic_load_n(
      &reinterpret_cast<const npa_vring_avail*>(queues_[q]->tx.addrs().avail)->idx, __ATOMIC_ACQUIRE);
  return static_cast<uint16_t>(avail - used_idx(2u * q + 1));
}

absl::Status EmulatedPath::Resume(VhostUserFrontend* fe, std::span<const uint16_t> next_avail) {
  if (next_avail.size() != vrings())
    return absl::InvalidArgumentError(absl::StrCat("emulated path: ", next_avail.size(),
                                                   " vring bases for ", vrings(), " vrings"));
  for (uint32_t v = 0; v < vrings(); v++) {
    // Packed: bits 0..14 a slot, bit 15 its wrap counter (the lap). A slot
    // past the ring is no position at all: refuse it rather than hand it to
    // the next back end (it came from the old one, GET_VRING_BASE).
    const VirtqBase& ring = (v & 1) ? static_cast<const VirtqBase&>(queues_[v / 2]->tx)
                                    : queues_[v / 2]->rx;
    if (ring.packed() && (next_avail[v] & 0x7fff) >= ring.size())
      return absl::InvalidArgumentError(absl::StrCat("emulated path: vring ", v, " base 0x",
                                                     absl::Hex(next_avail[v]), ": slot ",
                                                     next_avail[v] & 0x7fff, " >= ring size ",
                                                     ring.size()));
  }
  fe_ = fe;
  for (uint16_t q = 0; q < queues_.size(); q++) {
    Queue& qu = *queues_[q];
    NPA_RETURN_IF_ERROR(fe->SetupVring(2u * q, qu.rx.size(), qu.rx.addrs(), qu.rx_kick.get(),
                                       qu.rx_call.get(), next_avail[2u * q]));
    NPA_RETURN_IF_ERROR(fe->SetupVring(2u * q + 1, qu.tx.size(), qu.tx.addrs(), qu.tx_kick.get(),
                                       qu.tx_call.get(), next_avail[2u * q + 1]));
  }
  if (started_) {
    for (uint32_t v = 0; v < vrings(); v++) NPA_RETURN_IF_ERROR(fe->EnableVring(v, true));
  }
  // The back end may have missed kicks while nobody served the rings: TX
  // frames that waited, RX buffers posted meanwhile.
  for (auto& qu : queues_) {
    const uint64_t one = 1;
    for (int fd : {qu->rx_kick.get(), qu->tx_kick.get()}) {
      ssize_t r = ::write(fd, &one, sizeof one);
      (void)r;  // an eventfd at its maximum is already signalled
    }
  }
  return absl::OkStatus();
}

QueueOps EmulatedPath::ops(uint16_t qid) {
  QueueOps o;
  o.rx = RxBurst;
  o.tx = TxBurst;
  o.rx_ctx = &queues_[qid]->rx;
  o.tx_ctx = &queues_[qid]->tx;
  return o;
}

}  // namespace npa::shell
