#include "shell/vf/vf_path.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "shell/offload.h"

namespace npa::shell {
namespace {

using Q = VfPath::Queue;

// rss_set hands the shell's configuration over as it is (common/rss.h).
static_assert(NPA_RSS_CONF_HASH_IPV4 == kRssIpv4 && NPA_RSS_CONF_HASH_TCPV4 == kRssTcpv4 &&
              NPA_RSS_CONF_HASH_UDPV4 == kRssUdpv4 && NPA_RSS_CONF_HASH_IPV6 == kRssIpv6 &&
              NPA_RSS_CONF_HASH_TCPV6 == kRssTcpv6 && NPA_RSS_CONF_HASH_UDPV6 == kRssUdpv6);
static_assert(NPA_RSS_CONF_KEY_LEN == kRssKeyLen &&
              NPA_RSS_CONF_TABLE_MAX == RssTable::kMaxEntries);

#define NPA_UNLIKELY(x) __builtin_expect(!!(x), 0)

// A plug-in that reports more than it was asked for has already written past
// the caller's array; clamp so the shell at least hands up no garbage count.
inline uint16_t Clamp(uint16_t got, uint16_t n, QueueCounters* c) {
  if (NPA_UNLIKELY(got > n)) {
    QueueCounters::Add(c->rx_bad, 1);
    return n;
  }
  return got;
}

// NPA_SHELL_F_CHECK_PLUGIN_RX: nothing a plug-in hands up is trusted; each
// pointer must be a buffer of this shell that is out of the pools (not a
// stray or already-free pointer: those are counted and dropped untouched),
// and its metadata must lie inside its slot and frame (offload.h
// CheckRxFrame: otherwise the frame is freed and counted as dropped).
// Without the flag (the default) none of this runs: VfRxOnly.
constexpr uint32_t kPlainRx = NPA_BUF_OL_RX_CSUM_GOOD | NPA_BUF_OL_RX_VLAN | NPA_BUF_OL_RX_RSS_HASH;

// Nonzero unless b is the common frame: one segment, inside its slot, no
// offload facts beyond csum-good, VLAN and RSS. ORed, not short-circuited:
// no branch per field (b is already known to be a held buffer). nb_segs and
// ol_flags are tested in one 64-bit load (buf_len, nb_segs, ol_flags are
// adjacent, npa/buf.h). The slot bound is one compare: data_off - META_SIZE
// taken as unsigned 32 bits is >= 2^32 - META_SIZE when data_off <
// META_SIZE, so adding data_len (< 2^16) in 64 bits cannot wrap it below
// the bound.
static_assert(offsetof(npa_buf, buf_len) == 24 && offsetof(npa_buf, nb_segs) == 26 &&
              offsetof(npa_buf, ol_flags) == 28 && std::endian::native == std::endian::little);
constexpr uint64_t kSegsFlagsMask = (uint64_t{~kPlainRx} << 32) | 0xffff0000u;
constexpr uint64_t kSegsFlagsPlain = uint64_t{1} << 16;  // nb_segs 1, no other flag

inline uint64_t NotPlain(const npa_buf* b) {
  uint64_t segs_flags;
  memcpy(&segs_flags, reinterpret_cast<const char*>(b) + offsetof(npa_buf, buf_len), 8);
  const uint64_t dl = b->data_len;
  const uint64_t from_meta = static_cast<uint32_t>(b->data_off - NPA_BUF_META_SIZE);
  return reinterpret_cast<uintptr_t>(b->next) | ((segs_flags & kSegsFlagsMask) ^ kSegsFlagsPlain) |
         (b->pkt_len ^ dl) |
         static_cast<uint64_t>(from_meta + dl > NPA_BUF_SLOT_SIZE - NPA_BUF_META_SIZE);
}

// The slow pass, for a burst with anything but held, plain frames: each
// frame on its own, bufs compacted in place, the bytes of what is kept.
__attribute__((noinline)) uint16_t CheckVfRxSlow(Q* q, npa_buf** bufs, uint16_t got,
                                                 QueueCounters* c, uint64_t* bytes) {
  BufPool* pool = q->pool;
  uint16_t k = 0;
  uint64_t sum = 0;
  for (uint16_t i = 0; i < got; i++) {
    npa_buf* b = bufs[i];
    if (!pool->Held(b)) {
      QueueCounters::Add(c->rx_bad, 1);
      continue;
    }
    if (NotPlain(b) != 0 &&
        !CheckRxFrame(b, kMaxRxSegments, [pool](const npa_buf* s) { return pool->Held(s); })) {
      QueueCounters::Add(c->rx_bad, 1);
      QueueCounters::Add(c->rx_dropped, 1);
      pool->FreeFrame(b);
      continue;
    }
    sum += b->pkt_len;
    bufs[k++] = b;
  }
  *bytes = sum;
  return k;
}

// The common burst costs one pass: the pointer test (a branch: a stray
// pointer is never read), the ORed metadata test and the byte count
// together, no stores. Anything else: the slow pass from the start.
inline uint16_t CheckVfRx(Q* q, npa_buf** bufs, uint16_t got, QueueCounters* c, uint64_t* bytes) {
  const BufPool* pool = q->pool;
  uint64_t sum = 0;
  uint64_t odd = 0;
  uint16_t i = 0;
  for (; i < got; i++) {
    const npa_buf* b = bufs[i];
    if (NPA_UNLIKELY(!pool->Held(b))) break;
    odd |= NotPlain(b);
    sum += b->pkt_len;
  }
  if (NPA_UNLIKELY(i != got || odd != 0)) return CheckVfRxSlow(q, bufs, got, c, bytes);
  *bytes = sum;
  return got;
}

// A plug-in without NPA_PLUGIN_F_RX_BYTES, unchecked: the byte count only.
inline uint64_t SumRxBytes(npa_buf* const* bufs, uint16_t got) {
  uint64_t sum = 0;
  for (uint16_t i = 0; i < got; i++) sum += bufs[i]->pkt_len;
  return sum;
}

// By default the frames go up as the plug-in handed them, and a plug-in
// that counts its RX bytes (NPA_PLUGIN_F_RX_BYTES) leaves no per-frame work
// here at all: its count is folded in on the control side (shell_impl.h
// PluginBytes). NPA_SHELL_F_CHECK_PLUGIN_RX: CheckVfRx, which counts the
// bytes of what it keeps.
inline uint16_t VfRxOnly(Q* q, npa_buf** bufs, uint16_t n, QueueCounters* c) {
  uint16_t got = Clamp(q->rx(q->pq, bufs, n), n, c);
  uint64_t bytes = 0;
  if (q->check_rx)
    got = CheckVfRx(q, bufs, got, c, &bytes);
  else if (!q->plugin_rx_bytes)
    bytes = SumRxBytes(bufs, got);
  // The guest configured VLAN strip, the device cannot: same result as the
  // emulated path (offload.h StripVlan). The frames shrink: count again
  // (a plug-in's own RX byte count is not used then, vf_path.h).
  if (NPA_UNLIKELY(q->sw_vlan_strip)) {
    bytes = 0;
    for (uint16_t i = 0; i < got; i++) {
      StripVlan(bufs[i]);
      bytes += bufs[i]->pkt_len;
    }
  }
  if (got) {
    QueueCounters::Add(c->rx_packets, got);
    QueueCounters::Add(c->rx_vf, got);
    if (!q->plugin_rx_bytes) QueueCounters::Add(c->rx_bytes, bytes);
  }
  return got;
}

// On the VF: the device first, then whatever the emulated ring still holds
// (frames the agent delivered before it steered the MAC to the VF). The
// emulated check is one inlined load when nothing is there (RxVirtq::Idle).
uint16_t VfRx(void* ctx, npa_buf** bufs, uint16_t n, QueueCounters* c) {
  Q* q = static_cast<Q*>(ctx);
  uint16_t got = VfRxOnly(q, bufs, n, c);
  if (got < n && !q->emu_rx->Idle())
    got += q->emu_rx->Burst(bufs + got, static_cast<uint16_t>(n - got), c);
  return got;
}

// The guest's offload set is stable across paths: what the device lacks
// (sw, NPA_BUF_OL_TX_*) is done here. The tag first: it moves csum_start. A
// frame that cannot take the tag, or whose checksum offsets are outside it,
// is sent as is and counted (the device would not have done better).
inline void SoftwareTxOffloads(npa_buf* b, uint32_t sw, QueueCounters* c) {
  if ((b->ol_flags & sw & NPA_BUF_OL_TX_VLAN) && !InsertVlan(b)) QueueCounters::Add(c->tx_bad, 1);
  if (b->ol_flags & sw & NPA_BUF_OL_TX_CSUM) {
    if (!SoftwareChecksum(b)) QueueCounters::Add(c->tx_bad, 1);
    b->ol_flags &= ~NPA_BUF_OL_TX_CSUM;
  }
}

// plugin_bytes: the plug-in counts the bytes (NPA_PLUGIN_F_TX_BYTES; the
// shell folds its queue_stats in, shell_impl.h FoldVfTxBytes).
inline void CountTx(uint16_t sent, uint64_t bytes, bool plugin_bytes, QueueCounters* c) {
  if (sent) {
    QueueCounters::Add(c->tx_packets, sent);
    QueueCounters::Add(c->tx_vf, sent);
    if (!plugin_bytes) QueueCounters::Add(c->tx_bytes, bytes);
  }
}

// A plug-in of ABI 1.0 (no NPA_PLUGIN_F_TX_FREE): each frame is marked in
// the queue's TxTracker, so the loss on a forced revoke is exact whatever
// the plug-in does with its buffers.
uint16_t VfTx(void* ctx, npa_buf** bufs, uint16_t n, QueueCounters* c) {
  Q* q = static_cast<Q*>(ctx);
  // Completions of frames sent on the emulated ring before the switch.
  if (NPA_UNLIKELY(q->emu_tx->in_flight() != 0)) q->emu_tx->Reclaim(c);
  // One pass over the headers before the plug-in owns them: software
  // checksum, byte count, and the TX mark (before the call: a plug-in may
  // complete and free a frame inside tx_burst itself).
  const TxTracker::View track = q->track != nullptr ? q->track->view() : TxTracker::View{};
  const uint32_t sw = q->sw_tx_flags;  // what this device cannot do itself
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < n; i++) {
    npa_buf* b = bufs[i];
    if (NPA_UNLIKELY((b->ol_flags & sw) != 0)) SoftwareTxOffloads(b, sw, c);
    bytes += b->pkt_len;
    track.Mark(b);
  }
  uint16_t sent = q->tx(q->pq, bufs, n);
  if (NPA_UNLIKELY(sent > n)) sent = n;
  if (NPA_UNLIKELY(sent < n)) {
    // What the plug-in did not take is the caller's again.
    for (uint16_t i = sent; i < n; i++) {
      bytes -= bufs[i]->pkt_len;
      track.Clear(bufs[i]);
    }
    QueueCounters::Add(c->tx_full, 1);
  }
  CountTx(sent, bytes, q->plugin_tx_bytes, c);
  return sent;
}

// A plug-in with NPA_PLUGIN_F_TX_FREE returns its TX frames through
// buf_free_tx: the tracker keeps a count per burst (tx_tracker.h, counted
// mode), and the loop over the frames only sums their bytes and ORs their
// flags; the software offloads run in a second pass only for a burst that
// needs one (rare: the device lacks an offload the guest uses). A plug-in
// that also counts the bytes (NPA_PLUGIN_F_TX_BYTES) leaves no loop at all
// when there is no software offload.
uint16_t VfTxCounted(void* ctx, npa_buf** bufs, uint16_t n, QueueCounters* c) {
  Q* q = static_cast<Q*>(ctx);
  if (NPA_UNLIKELY(q->emu_tx->in_flight() != 0)) q->emu_tx->Reclaim(c);
  const uint32_t sw = q->sw_tx_flags;
  uint64_t bytes = 0;
  if (sw == 0) [[likely]] {
    // The device does every offload the guest uses: the byte count is the
    // only per-frame work (4 instructions a frame), unless the plug-in
    // counts them.
    if (!q->plugin_tx_bytes) {
#pragma GCC unroll 4
      for (uint16_t i = 0; i < n; i++) bytes += bufs[i]->pkt_len;
    }
  } else {
    uint32_t flags = 0;
#pragma GCC unroll 4
    for (uint16_t i = 0; i < n; i++) {
      flags |= bufs[i]->ol_flags;
      bytes += bufs[i]->pkt_len;
    }
    if ((flags & sw) != 0)
      for (uint16_t i = 0; i < n; i++)
        if ((bufs[i]->ol_flags & sw) != 0) SoftwareTxOffloads(bufs[i], sw, c);
  }
  // Counted before the call: the plug-in may complete (buf_free_tx) inside
  // tx_burst itself.
  q->track->Sent(n);
  uint16_t sent = q->tx(q->pq, bufs, n);
  if (NPA_UNLIKELY(sent > n)) sent = n;
  if (NPA_UNLIKELY(sent < n)) {
    for (uint16_t i = sent; i < n; i++) bytes -= bufs[i]->pkt_len;
    q->track->Unsent(static_cast<uint16_t>(n - sent));
    QueueCounters::Add(c->tx_full, 1);
  }
  CountTx(sent, bytes, q->plugin_tx_bytes, c);
  return sent;
}

uint16_t EmuRx(void* ctx, npa_buf** bufs, uint16_t n, QueueCounters* c) {
  return static_cast<Q*>(ctx)->emu_rx->Burst(bufs, n, c);
}
uint16_t EmuTx(void* ctx, npa_buf** bufs, uint16_t n, QueueCounters* c) {
  return static_cast<Q*>(ctx)->emu_tx->Burst(bufs, n, c);
}

// Revoke, after the quiesce: drain the VF's RX; an empty VF burst tells the
// control thread this queue is drained.
uint16_t DrainRx(void* ctx, npa_buf** bufs, uint16_t n, QueueCounters* c) {
  Q* q = static_cast<Q*>(ctx);
  uint16_t got = VfRxOnly(q, bufs, n, c);
  if (got == 0) q->drained.store(1, std::memory_order_release);
  if (got < n) got += q->emu_rx->Burst(bufs + got, static_cast<uint16_t>(n - got), c);
  return got;
}

QueueOps StageOps(BurstFn rx, BurstFn tx, void* q) {
  QueueOps o;
  o.rx = rx;
  o.tx = tx;
  o.rx_ctx = o.tx_ctx = q;
  return o;
}

uint32_t Pow2Floor(uint32_t v) {
  uint32_t p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}

}  // namespace

absl::StatusOr<std::unique_ptr<VfPath>> VfPath::Create(Params p) {
  if (p.arena == nullptr || p.buffers == nullptr || p.nb_queue_pairs == 0 ||
      p.emu_rx.size() < p.nb_queue_pairs || p.emu_tx.size() < p.nb_queue_pairs)
    return absl::InvalidArgumentError("VF path: arena, buffers or emulated rings missing");
  for (uint16_t q = 0; q < p.nb_queue_pairs; q++)
    if (p.emu_rx[q] == nullptr || p.emu_tx[q] == nullptr || p.emu_rx[q]->pool() == nullptr)
      return absl::InvalidArgumentError(
          absl::StrCat("VF path: queue ", q, " has no emulated rings or buffer pool"));
  std::unique_ptr<VfPath> v(new VfPath());
  v->fd_ = std::move(p.device_fd);
  v->pci_ = p.pci_address;
  v->nqp_ = p.nb_queue_pairs;
  v->guest_offloads_ = p.guest_offloads;

  // 1. The plug-in, by the identity the agent announced.
  auto lp = FindPluginFor(p.offered, p.plugin_dirs);
  if (!lp.ok())
    return absl::Status(lp.status().code(),
                        absl::StrFormat("no plug-in for %04x:%04x (subsystem %04x:%04x, class "
                                        "%06x): %s",
                                        p.offered.vendor, p.offered.device,
                                        p.offered.subsystem_vendor, p.offered.subsystem_device,
                                        p.offered.class_code, lp.status().message()));
  std::shared_ptr<const LoadedPlugin> plugin(std::move(*lp));
  v->plugin_name_ = plugin->name();

  // 2. The services table over the device fd (or the test's fake device).
  std::unique_ptr<VfioDeviceIo> io = p.io ? std::move(p.io) : MakeFdDeviceIo(v->fd_.get());
  auto svc = VfServices::Create(std::move(io), p.pci_address, p.arena, p.buffers,
                                p.nb_queue_pairs, p.log);
  if (!svc.ok())
    return absl::Status(svc.status().code(),
                        absl::StrCat("VFIO device ", p.pci_address, ": ", svc.status().message()));
  v->services_ = std::move(*svc);
  NPA_ASSIGN_OR_RETURN(npa_device_info info, v->services_->DeviceInfo());
  // The device is the authority; an offer that does not describe it is a
  // confused (or hostile) agent, and the plug-in was chosen by the offer.
  if (info.vendor != p.offered.vendor || info.device != p.offered.device)
    return absl::FailedPreconditionError(absl::StrFormat(
        "the offer says %04x:%04x but the device's config space says %04x:%04x",
        p.offered.vendor, p.offered.device, info.vendor, info.device));

  // 3. probe -> get_caps -> configure, with the guest's configuration.
  v->dev_ = std::make_unique<PluginDevice>(plugin);
  NPA_RETURN_IF_ERROR(v->dev_->Probe(v->services_->table(), info));
  NPA_ASSIGN_OR_RETURN(npa_dev_caps caps, v->dev_->GetCaps());
  if (caps.max_queue_pairs < p.nb_queue_pairs)
    return absl::FailedPreconditionError(absl::StrCat("the device has ", caps.max_queue_pairs,
                                                      " queue pairs, the guest uses ",
                                                      p.nb_queue_pairs));
  if (caps.max_mtu != 0 && caps.max_mtu < p.mtu)
    return absl::FailedPreconditionError(
        absl::StrCat("the device's MTU is at most ", caps.max_mtu, ", the guest uses ", p.mtu));
  if ((p.guest_offloads & NPA_OFFLOAD_TSO) && !(caps.offloads & NPA_CAP_TSO))
    return absl::FailedPreconditionError(
        "the guest uses TSO, the device lacks it and the shell segments in software on the emulated path only");
  npa_dev_config cfg{};
  cfg.struct_size = sizeof(cfg);
  cfg.nb_queue_pairs = p.nb_queue_pairs;
  uint32_t ring = std::clamp<uint32_t>(p.ring_size, caps.min_ring_size, caps.max_ring_size);
  cfg.ring_size = static_cast<uint16_t>(Pow2Floor(ring));
  cfg.mtu = p.mtu;
  memcpy(cfg.mac, p.mac, 6);
  if ((p.guest_offloads & NPA_OFFLOAD_TX_CSUM) && (caps.offloads & NPA_CAP_TX_CSUM))
    cfg.offloads |= NPA_CAP_TX_CSUM;
  if ((p.guest_offloads & NPA_OFFLOAD_RX_CSUM) && (caps.offloads & NPA_CAP_RX_CSUM))
    cfg.offloads |= NPA_CAP_RX_CSUM;
  if (p.guest_offloads & NPA_OFFLOAD_TSO) cfg.offloads |= NPA_CAP_TSO;
  if (p.nb_queue_pairs > 1 && (caps.offloads & NPA_CAP_MULTIQUEUE))
    cfg.offloads |= NPA_CAP_MULTIQUEUE;
  if (caps.offloads & NPA_CAP_MAC_FILTER) cfg.offloads |= NPA_CAP_MAC_FILTER;
  v->rx_intr_ = p.rx_intr && (caps.offloads & NPA_CAP_RX_INTR) && info.msix_vectors > 0;
  if (v->rx_intr_) cfg.offloads |= NPA_CAP_RX_INTR;
  cfg.rx_intr = v->rx_intr_ ? 1 : 0;
  // Software TX checksum whenever the guest asked for the offload and the
  // device cannot do it (the application may set NPA_BUF_OL_TX_CSUM anyway:
  // the emulated path always honours it).
  v->sw_tx_csum_ = !(cfg.offloads & NPA_CAP_TX_CSUM);
  // VLAN: the device's when it has it, else software like the emulated path.
  if ((p.guest_offloads & NPA_OFFLOAD_VLAN_INSERT) && (caps.offloads & NPA_CAP_VLAN_INSERT))
    cfg.offloads |= NPA_CAP_VLAN_INSERT;
  if ((p.guest_offloads & NPA_OFFLOAD_VLAN_STRIP) && (caps.offloads & NPA_CAP_VLAN_STRIP))
    cfg.offloads |= NPA_CAP_VLAN_STRIP;
  const bool sw_vlan_insert = !(cfg.offloads & NPA_CAP_VLAN_INSERT);
  const bool sw_vlan_strip =
      (p.guest_offloads & NPA_OFFLOAD_VLAN_STRIP) && !(cfg.offloads & NPA_CAP_VLAN_STRIP);
  NPA_RETURN_IF_ERROR(v->dev_->Configure(cfg));
  // Hardware RSS: the guest's key and table before start, so the device
  // spreads by them from its first frame. A device that refuses keeps
  // working: the shell's software hash covers every frame anyway.
  v->hw_rss_ = p.rss != nullptr && (caps.offloads & NPA_CAP_RSS) &&
               plugin->ctrl().rss_set != nullptr;
  if (v->hw_rss_) {
    if (absl::Status s = v->SetRss(*p.rss); !s.ok())
      NPA_LOG(Warn, "shell: %s: hardware RSS not set, the shell hashes in software: %s",
              p.pci_address.c_str(), std::string(s.message()).c_str());
  }

  // 4. REQ / ERR: the agent wants the device back, or it failed. A device
  // without them (the fake in tests may lack one) still works; it just
  // cannot warn us.
  auto req = v->services_->WireReqIrq();
  if (req.ok()) v->req_fd_ = *req;
  else NPA_LOG(Warn, "shell: %s: no REQ interrupt: %s", p.pci_address.c_str(),
               std::string(req.status().message()).c_str());
  auto err = v->services_->WireErrIrq();
  if (err.ok()) v->err_fd_ = *err;
  else NPA_LOG(Info, "shell: %s: no ERR interrupt: %s", p.pci_address.c_str(),
               std::string(err.status().message()).c_str());

  v->plugin_tx_bytes_ = (plugin->flags() & NPA_PLUGIN_F_TX_BYTES) != 0;
  // The plug-in's RX byte count is the queue's only when every frame it
  // hands up reaches the application as it was counted: unchecked (nothing
  // dropped by the check) and no software VLAN strip (which shrinks them).
  v->plugin_rx_bytes_ =
      !p.check_rx && !sw_vlan_strip && (plugin->flags() & NPA_PLUGIN_F_RX_BYTES) != 0;
  for (uint16_t q = 0; q < p.nb_queue_pairs; q++) {
    auto qu = std::make_unique<Queue>();
    qu->emu_rx = p.emu_rx[q];
    qu->emu_tx = p.emu_tx[q];
    qu->pool = p.emu_rx[q]->pool();
    qu->track = q < p.tx_track.size() ? p.tx_track[q] : nullptr;
    // The previous VF's frames were counted and its tracker reset at its
    // release; this VF's queues have not run yet.
    if (qu->track != nullptr) qu->track->SetCounted((plugin->flags() & NPA_PLUGIN_F_TX_FREE) != 0);
    qu->sw_tx_flags = (v->sw_tx_csum_ ? NPA_BUF_OL_TX_CSUM : 0u) |
                      (sw_vlan_insert ? NPA_BUF_OL_TX_VLAN : 0u);
    qu->sw_vlan_strip = sw_vlan_strip;
    qu->plugin_tx_bytes = v->plugin_tx_bytes_;
    qu->check_rx = p.check_rx;
    qu->plugin_rx_bytes = v->plugin_rx_bytes_;
    qu->rx = plugin->fast().rx_burst;
    qu->tx = plugin->fast().tx_burst;
    v->queues_.push_back(std::move(qu));
  }
  return v;
}

VfPath::~VfPath() {
  if (dev_) {
    PluginDevice::State st = dev_->state();
    if (st == PluginDevice::State::kStarted || st == PluginDevice::State::kQuiesced) {
      absl::Status s = dev_->Stop();
      if (!s.ok()) NPA_LOG(Error, "shell: %s", std::string(s.message()).c_str());
    }
    if (dev_->state() != PluginDevice::State::kIdle && dev_->state() != PluginDevice::State::kRemoved) {
      absl::Status s = dev_->Remove();
      if (!s.ok()) NPA_LOG(Error, "shell: %s", std::string(s.message()).c_str());
    }
    dev_.reset();
  }
  services_.reset();  // disables the interrupts, unmaps the BARs
  fd_.reset();        // the agent may now reset and reclaim the device
}

absl::Status VfPath::Start() {
  NPA_RETURN_IF_ERROR(dev_->Start());
  std::vector<int> efds = services_->msix_eventfds();
  for (uint16_t q = 0; q < nqp_; q++) {
    queues_[q]->pq = dev_->queue_context(q);
    queues_[q]->drained.store(0, std::memory_order_relaxed);
    queues_[q]->intr_fd = -1;
    if (rx_intr_) {
      auto vec = dev_->IrqVector(q);
      if (vec.ok() && *vec >= 0 && static_cast<size_t>(*vec) < efds.size())
        queues_[q]->intr_fd = efds[*vec];
    }
  }
  return absl::OkStatus();
}

absl::Status VfPath::Stop() {
  PluginDevice::State st = dev_->state();
  if (st != PluginDevice::State::kStarted && st != PluginDevice::State::kQuiesced)
    return absl::OkStatus();
  return dev_->Stop();
}

bool VfPath::Quiesce(uint32_t timeout_ms) {
  const uint64_t start = MonotonicNs();
  for (int round = 0; round < 100000; round++) {
    absl::Status s = dev_->Quiesce(1000);
    if (s.ok()) return true;
    if (absl::IsUnimplemented(s)) return true;  // optional op: TX completes at stop
    if (!absl::IsUnavailable(s)) {
      NPA_LOG(Warn, "shell: %s", std::string(s.message()).c_str());
      return false;
    }
    if (MonotonicNs() - start >= timeout_ms * 1000000ull) return false;
  }
  return false;
}

// The three stages of a switch differ only in which bursts a queue runs:
// VF both ways; emulated both ways (quiet); emulated TX with RX still
// draining the VF (drain). Every stage's context is the same queue.
QueueOps VfPath::ops(uint16_t qid) {
  Queue* q = queues_[qid].get();
  return StageOps(VfRx, q->track != nullptr && q->track->counted() ? VfTxCounted : VfTx, q);
}
QueueOps VfPath::QuietOps(uint16_t qid) { return StageOps(EmuRx, EmuTx, queues_[qid].get()); }
QueueOps VfPath::DrainOps(uint16_t qid) { return StageOps(DrainRx, EmuTx, queues_[qid].get()); }

int VfPath::intr_eventfd(uint16_t qid) const { return queues_[qid]->intr_fd; }

void VfPath::SetInterrupt(uint16_t qid, bool enable) {
  const npa_plugin_fast_ops& f = dev_->plugin().fast();
  Queue& q = *queues_[qid];
  if (rx_intr_ && q.pq != nullptr && f.rx_intr_enable != nullptr) {
    int rc = f.rx_intr_enable(q.pq, enable ? 1 : 0);
    if (rc != 0) NPA_LOG(Debug, "shell: %s rx_intr_enable(%u) = %d", plugin_name_.c_str(), qid, rc);
  }
}

bool VfPath::link_up() const {
  // link_status is a control op; the shell reports the control session's
  // view (the agent's LinkState), so this is only the started state.
  return dev_ && dev_->state() == PluginDevice::State::kStarted;
}

absl::Status VfPath::SetRss(const RssRx& rss) {
  if (!hw_rss_) return absl::OkStatus();
  const std::span<const uint8_t> key = rss.hasher().key();
  const std::span<const uint16_t> table = rss.table().entries();
  npa_rss_conf c{};
  c.struct_size = sizeof(c);
  c.hash_types = rss.types();
  c.key_len = static_cast<uint16_t>(key.size());
  c.table_len = static_cast<uint16_t>(table.size());
  c.nb_queue_pairs = nqp_;
  c.key = key.data();
  c.table = table.data();
  return dev_->RssSet(c);
}

npa_plugin_qstats VfPath::QueueStats(uint16_t qid) {
  auto s = dev_->QueueStats(qid);
  if (s.ok()) return *s;
  npa_plugin_qstats z{};
  z.struct_size = sizeof(z);
  return z;
}

}  // namespace npa::shell
