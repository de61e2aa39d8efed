#include "hypervisor/daemon/tap_uplink.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace npa::agent {
namespace {

constexpr uint32_t kEthOverhead = 14 + 4;  // Ethernet header + one VLAN tag
constexpr uint32_t kGsoMaxFrame = 65536;   // largest frame with TSO offloads

absl::Status IfFlags(const std::string& ifname, short* flags, bool set) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return ErrnoError(errno, "socket(AF_INET) for ioctl on ", ifname);
  ifreq ifr{};
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname.c_str());
  if (set) {
    if (ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) return ErrnoError(errno, "SIOCGIFFLAGS ", ifname);
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | *flags);
    if (ioctl(s.get(), SIOCSIFFLAGS, &ifr) < 0) return ErrnoError(errno, "SIOCSIFFLAGS ", ifname);
    return absl::OkStatus();
  }
  if (ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) return ErrnoError(errno, "SIOCGIFFLAGS ", ifname);
  *flags = ifr.ifr_flags;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TapUplink>> TapUplink::Create(Options opts) {
  if (opts.name.empty() || opts.name.size() >= IFNAMSIZ)
    return absl::InvalidArgumentError(
        absl::StrCat("TAP name '", opts.name, "' must be 1..", IFNAMSIZ - 1, " characters"));
  if (opts.mtu < 68 || opts.mtu > 9000)
    return absl::InvalidArgumentError(absl::StrCat("TAP MTU ", opts.mtu, " outside 68..9000"));
  if (opts.rx_depth == 0 || opts.rx_depth > 4096 || opts.tx_depth == 0 || opts.tx_depth > 4096)
    return absl::InvalidArgumentError("TAP rx_depth/tx_depth must be 1..4096");
  std::unique_ptr<TapUplink> up(new TapUplink());
  NPA_RETURN_IF_ERROR(up->Init(opts));
  return up;
}

absl::Status TapUplink::Init(const Options& opts) {
  tap_.reset(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!tap_) return ErrnoError(errno, "open /dev/net/tun for TAP ", opts.name);
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", opts.name.c_str());
  // A name with "%d" is a template the kernel fills in: never an existing one.
  attached_existing_ =
      opts.name.find('%') == std::string::npos && if_nametoindex(opts.name.c_str()) != 0;
  if (ioctl(tap_.get(), TUNSETIFF, &ifr) < 0)
    return ErrnoError(errno, "TUNSETIFF ", opts.name,
                      attached_existing_ ? " (an interface of that name exists: a TAP made "
                                           "with other flags than tap, no_pi, vnet_hdr, or "
                                           "not a TAP)"
                                         : "");
  name_ = ifr.ifr_name;
  if (opts.persist && ioctl(tap_.get(), TUNSETPERSIST, 1) < 0)
    return ErrnoError(errno, "TUNSETPERSIST 1 on ", name_);
  // Non-blocking: Receive reads until EAGAIN from the dataplane thread.
  if (fcntl(tap_.get(), F_SETFL, fcntl(tap_.get(), F_GETFL) | O_NONBLOCK) < 0)
    return ErrnoError(errno, "fcntl O_NONBLOCK on TAP ", name_);
  int hdr = static_cast<int>(kNetHdrLen);
  if (ioctl(tap_.get(), TUNSETVNETHDRSZ, &hdr) < 0)
    return ErrnoError(errno, "TUNSETVNETHDRSZ 12 on ", name_);
  if (ioctl(tap_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(opts.offloads)) < 0)
    return ErrnoError(errno, "TUNSETOFFLOAD ", opts.offloads, " on ", name_);
  ifindex_ = static_cast<int>(if_nametoindex(name_.c_str()));
  {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s) return ErrnoError(errno, "socket(AF_INET) for SIOCSIFMTU on ", name_);
    ifreq m{};
    snprintf(m.ifr_name, IFNAMSIZ, "%s", name_.c_str());
    m.ifr_mtu = static_cast<int>(opts.mtu);
    if (ioctl(s.get(), SIOCSIFMTU, &m) < 0) return ErrnoError(errno, "SIOCSIFMTU ", opts.mtu, " on ", name_);
  }
  short up = IFF_UP;
  NPA_RETURN_IF_ERROR(IfFlags(name_, &up, /*set=*/true));

  // GSO frames from the kernel can be up to 64 KiB once TSO is on; otherwise
  // a slot holds one MTU-sized frame plus a VLAN tag.
  uint32_t frame_max =
      (opts.offloads & (TUN_F_TSO4 | TUN_F_TSO6)) ? kGsoMaxFrame : opts.mtu + kEthOverhead;
  slot_size_ = (kNetHdrLen + frame_max + 63) & ~63u;
  rx_depth_ = opts.rx_depth;
  tx_depth_ = opts.tx_depth;
  mem_size_ = static_cast<size_t>(slot_size_) * (rx_depth_ + tx_depth_);
  void* m = mmap(nullptr, mem_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return ErrnoError(errno, "mmap ", mem_size_, " bytes of TAP buffers for ", name_);
  mem_ = static_cast<uint8_t*>(m);

  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE;
  // Every slot can have one operation in flight; the CQ must hold them all.
  p.cq_entries = 2u * (rx_depth_ + tx_depth_);
  int r = io_uring_queue_init_params(rx_depth_ + tx_depth_, &ring_, &p);
  if (r < 0) return ErrnoError(-r, "io_uring_queue_init for TAP ", name_);
  ring_ok_ = true;
  iovec iov{mem_, mem_size_};
  r = io_uring_register_buffers(&ring_, &iov, 1);
  if (r < 0) return ErrnoError(-r, "io_uring_register_buffers (", mem_size_, " bytes) for TAP ", name_);

  for (uint32_t i = 0; i < tx_depth_; i++) tx_free_.push_back(rx_depth_ + i);
  NPA_LOG(Info,
          "uplink %s: TAP up (%s%s, ifindex %d, mtu %u, offloads 0x%x, %u rx / %u tx slots of %u B)",
          name_.c_str(), attached_existing_ ? "attached to the existing interface" : "created",
          opts.persist ? ", persistent" : "", ifindex_, opts.mtu, opts.offloads, rx_depth_, tx_depth_,
          slot_size_);
  return absl::OkStatus();
}

TapUplink::~TapUplink() {
  // Closing the ring cancels outstanding reads before the buffers go away.
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (mem_) munmap(mem_, mem_size_);
}

void TapUplink::Reap() {
  io_uring_cqe* cqes[64];
  for (;;) {
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
    if (n == 0) break;
    for (unsigned i = 0; i < n; i++) {
      uint32_t slot = static_cast<uint32_t>(io_uring_cqe_get_data64(cqes[i]));
      int res = cqes[i]->res;
      if (slot >= rx_depth_ && slot < static_cast<uint32_t>(rx_depth_) + tx_depth_) {
        tx_free_.push_back(slot);
        if (res < 0) {
          Add(c_.tx_dropped, 1);
          NPA_LOG(Debug, "uplink %s: write failed: %s", name_.c_str(), strerror(-res));
        } else {
          Add(c_.tx_packets, 1);
          Add(c_.tx_bytes, static_cast<uint32_t>(res) - kNetHdrLen);
        }
      }
    }
    io_uring_cq_advance(&ring_, n);
    if (n < 64) break;
  }
}

uint16_t TapUplink::Receive(UplinkFrame* out, uint16_t n) {
  Reap();  // TX completions free their slots
  if (n > rx_depth_) n = rx_depth_;
  uint16_t k = 0;
  uint64_t bytes = 0;
  // Why read(2) and not io_uring reads: with several reads in flight on one
  // TAP fd, io_uring completes them in any order (measured here: 4-22 of
  // 3000 frames reordered, blocking or not, even with one io-wq worker,
  // because of its poll-retry path), and a reordered stream is a bug any
  // guest sees (TCP fast path, the demo's order check). One read per frame,
  // in the dataplane thread, keeps the kernel's order. Writes stay batched
  // on io_uring: they complete in submission order.
  for (uint32_t tries = 0; k < n && tries < 2u * n; tries++) {
    uint8_t* p = Slot(k);  // slot k lends out[k] until the next Receive
    ssize_t r = ::read(tap_.get(), p, slot_size_);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        Add(c_.rx_dropped, 1);
        NPA_LOG(Debug, "uplink %s: read failed: %s", name_.c_str(), strerror(errno));
      }
      break;
    }
    if (r <= static_cast<ssize_t>(kNetHdrLen) + 13) {  // runt: no Ethernet header
      Add(c_.rx_dropped, 1);
      continue;
    }
    memcpy(&out[k].hdr, p, kNetHdrLen);
    out[k].data = p + kNetHdrLen;
    out[k].len = static_cast<uint32_t>(r) - kNetHdrLen;
    bytes += out[k].len;
    k++;
  }
  if (k) {
    Add(c_.rx_packets, k);
    Add(c_.rx_bytes, bytes);
  }
  return k;
}

uint16_t TapUplink::Send(const PacketRef* pkts, uint16_t n) {
  uint16_t sent = 0, dropped = 0;
  for (uint16_t i = 0; i < n; i++) {
    const PacketRef& p = pkts[i];
    if (p.len + kNetHdrLen > slot_size_ || p.len < 14) {
      dropped++;
      continue;
    }
    if (tx_free_.empty()) Reap();
    if (tx_free_.empty()) {
      dropped += static_cast<uint16_t>(n - i);
      break;
    }
    uint32_t slot = tx_free_.back();
    uint8_t* dst = Slot(slot);
    if (p.hdr) memcpy(dst, p.hdr, kNetHdrLen);
    else memset(dst, 0, kNetHdrLen);
    // Copy by the segments, never past the slot: len and the segments come
    // from a guest and may disagree.
    uint32_t off = kNetHdrLen;
    for (uint16_t s = 0; s < p.nsegs && off < slot_size_; s++) {
      size_t take = std::min<size_t>(p.segs[s].iov_len, slot_size_ - off);
      memcpy(dst + off, p.segs[s].iov_base, take);
      off += static_cast<uint32_t>(take);
    }
    if (off - kNetHdrLen != p.len) {
      dropped++;
      continue;
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      unsubmitted_ = 0;
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) {
        dropped += static_cast<uint16_t>(n - i);
        break;
      }
    }
    tx_free_.pop_back();
    io_uring_prep_write_fixed(sqe, tap_.get(), dst, off, 0, 0);
    io_uring_sqe_set_data64(sqe, slot);
    unsubmitted_++;
    sent++;
  }
  if (unsubmitted_) {
    io_uring_submit(&ring_);
    unsubmitted_ = 0;
  }
  if (dropped) Add(c_.tx_dropped, dropped);
  return sent;
}

bool TapUplink::link_up() const {
  short flags = 0;
  if (!IfFlags(name_, &flags, /*set=*/false).ok()) return false;
  return (flags & IFF_UP) && (flags & IFF_RUNNING);
}

absl::Status TapUplink::SendDirect(std::span<const uint8_t> frame) {
  if (frame.size() < 14 || frame.size() > frame_room()) {
    direct_dropped_.fetch_add(1, std::memory_order_relaxed);
    return absl::InvalidArgumentError(absl::StrCat("uplink ", name_, ": a direct frame of ",
                                                   frame.size(), " bytes (14..", frame_room(), ")"));
  }
  uint8_t hdr[kNetHdrLen] = {};
  iovec iov[2] = {{hdr, kNetHdrLen}, {const_cast<uint8_t*>(frame.data()), frame.size()}};
  ssize_t n = ::writev(tap_.get(), iov, 2);
  if (n != static_cast<ssize_t>(kNetHdrLen + frame.size())) {
    int e = n < 0 ? errno : EIO;
    direct_dropped_.fetch_add(1, std::memory_order_relaxed);
    if (e == EAGAIN) return absl::UnavailableError(absl::StrCat("uplink ", name_, ": TAP queue full"));
    return ErrnoError(e, "write of a direct frame on TAP ", name_);
  }
  direct_packets_.fetch_add(1, std::memory_order_relaxed);
  direct_bytes_.fetch_add(frame.size(), std::memory_order_relaxed);
  return absl::OkStatus();
}

UplinkCounters TapUplink::counters() const {
  UplinkCounters u;
  u.rx_packets = c_.rx_packets.load(std::memory_order_relaxed);
  u.rx_bytes = c_.rx_bytes.load(std::memory_order_relaxed);
  u.rx_dropped = c_.rx_dropped.load(std::memory_order_relaxed);
  u.tx_packets = c_.tx_packets.load(std::memory_order_relaxed) +
                 direct_packets_.load(std::memory_order_relaxed);
  u.tx_bytes = c_.tx_bytes.load(std::memory_order_relaxed) +
               direct_bytes_.load(std::memory_order_relaxed);
  u.tx_dropped = c_.tx_dropped.load(std::memory_order_relaxed) +
                 direct_dropped_.load(std::memory_order_relaxed);
  return u;
}

}  // namespace npa::agent
