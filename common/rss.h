// common/rss.h — receive-side scaling in software: the Toeplitz hash with
// an indirection table, as NICs compute it (Microsoft's "RSS hashing
// functions" and VIRTIO 1.2 §5.1.6.4.3). Wherever a path lacks it in
// hardware, the shell or the agent computes it here, so one frame gets the
// same hash and the same queue on the emulated path and on every VF, across
// switches (NPA_OFFLOAD_RSS_HASH).
//
//   npa::RssHasher h;                                   // default key
//   npa::RssTuple t;
//   if (npa::ExtractRssTuple(frame, npa::kRssAllTypes, &t)) {
//     uint32_t hash = h.Hash(t.bytes());
//     uint16_t q = table.Queue(hash);                   // npa::RssTable
//   }
//
// The hash input is the one the specifications define: source address,
// destination address, then (TCP/UDP, not for fragments) source port and
// destination port, all in network byte order.
//
// Threads: a hasher and a table are immutable once built; share them
// freely. Building a hasher costs 36 × 256 table entries (36 KiB); Hash()
// costs one load and XOR per input byte (12 for TCP/IPv4, 36 for IPv6).
// No allocation after construction.
#ifndef NPA_COMMON_RSS_H_
#define NPA_COMMON_RSS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace npa {

// The default key of Microsoft's RSS specification, which most NICs and
// DPDK use as theirs too; the published verification vectors use it.
inline constexpr std::array<uint8_t, 40> kDefaultRssKey = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

// Longest input: two IPv6 addresses and two ports.
inline constexpr size_t kRssMaxInput = 36;
// A key must cover the longest input plus the 32-bit window: 36 + 4.
inline constexpr size_t kRssKeyLen = kRssMaxInput + 4;

// Which tuples are hashed: VIRTIO_NET_RSS_HASH_TYPE_* bit values (VIRTIO 1.2
// §5.1.6.4.3.1), so the guest's virtio-net configuration maps one to one.
enum RssHashType : uint32_t {
  kRssIpv4 = 1u << 0,
  kRssTcpv4 = 1u << 1,
  kRssUdpv4 = 1u << 2,
  kRssIpv6 = 1u << 3,
  kRssTcpv6 = 1u << 4,
  kRssUdpv6 = 1u << 5,
};
inline constexpr uint32_t kRssAllTypes =
    kRssIpv4 | kRssTcpv4 | kRssUdpv4 | kRssIpv6 | kRssTcpv6 | kRssUdpv6;

// What a frame's hash was computed over; the report a receive path gives
// (VIRTIO_NET_HASH_REPORT_* values, VIRTIO 1.2 §5.1.6.4.3.4).
enum class RssReport : uint8_t {
  kNone = 0,
  kIpv4 = 1,
  kTcpv4 = 2,
  kUdpv4 = 3,
  kIpv6 = 4,
  kTcpv6 = 5,
  kUdpv6 = 6,
};

struct RssTuple {
  std::array<uint8_t, kRssMaxInput> data{};
  uint8_t len = 0;
  RssReport report = RssReport::kNone;
  std::span<const uint8_t> bytes() const { return {data.data(), len}; }
};

// Fills *t from an Ethernet frame (one optional 802.1Q/802.1ad tag) for the
// first type in `types` that applies: TCP/UDP over IPv4 or IPv6 when the
// frame carries a whole L4 header and is not a fragment, else the
// addresses alone. IPv6 extension headers are not walked: such a frame is
// hashed over its addresses (as VIRTIO's base types define). Returns false
// (t->report = kNone) for a frame with nothing to hash: not IP, truncated,
// or no enabled type applies. Every length is checked against `frame`.
bool ExtractRssTuple(std::span<const uint8_t> frame, uint32_t types, RssTuple* t);

class RssHasher {
 public:
  // The default key.
  RssHasher();
  // key must be exactly kRssKeyLen bytes (virtio-net's maximum, 40).
  static absl::StatusOr<RssHasher> Create(std::span<const uint8_t> key);

  // input.size() <= kRssMaxInput (longer inputs are hashed over their
  // first kRssMaxInput bytes).
  uint32_t Hash(std::span<const uint8_t> input) const;

  std::span<const uint8_t> key() const { return key_; }

 private:
  void Build();
  std::array<uint8_t, kRssKeyLen> key_{};
  // table_[i][v]: the hash contribution of byte value v at input offset i.
  std::vector<std::array<uint32_t, 256>> table_;
};

// The indirection table: hash -> queue, by the hash's low bits.
class RssTable {
 public:
  static constexpr size_t kMaxEntries = 128;  // virtio-net's and most NICs'
  // queues spread round robin over kMaxEntries entries.
  explicit RssTable(uint16_t queues = 1);
  // entries.size() a power of two in [1, kMaxEntries], each < queues.
  static absl::StatusOr<RssTable> Create(std::span<const uint16_t> entries, uint16_t queues);

  uint16_t Queue(uint32_t hash) const { return entries_[hash & mask_]; }
  std::span<const uint16_t> entries() const { return {entries_.data(), mask_ + 1u}; }

 private:
  std::array<uint16_t, kMaxEntries> entries_{};
  uint32_t mask_ = 0;
};

// A whole RSS function: the key (as a hasher), the enabled hash types and
// the indirection table; what a frame hashes to and the queue that names.
// The shell (shell/rss_rx.h) and the agent (hypervisor/daemon/guest_rss.h)
// each hold one built from the same configuration, so they agree on every
// frame. Immutable; share freely.
class RssFunction {
 public:
  RssFunction(RssHasher h, RssTable t, uint32_t types)
      : hasher_(std::move(h)), table_(t), types_(types) {}
  // The frame's hash over the first enabled type that applies; false when
  // it has nothing to hash (ExtractRssTuple).
  bool Hash(std::span<const uint8_t> frame, uint32_t* hash) const {
    RssTuple t;
    if (!ExtractRssTuple(frame, types_, &t)) return false;
    *hash = hasher_.Hash(t.bytes());
    return true;
  }
  uint16_t Queue(uint32_t hash) const { return table_.Queue(hash); }
  // The frame's queue, or `fallback` when it has nothing to hash.
  uint16_t QueueOf(std::span<const uint8_t> frame, uint16_t fallback) const {
    uint32_t h;
    return Hash(frame, &h) ? Queue(h) : fallback;
  }

  const RssHasher& hasher() const { return hasher_; }
  const RssTable& table() const { return table_; }
  uint32_t types() const { return types_; }

 private:
  RssHasher hasher_;
  RssTable table_;
  uint32_t types_;
};

}  // namespace npa

#endif  // NPA_COMMON_RSS_H_
