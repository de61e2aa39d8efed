#include "common/rss.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace npa {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100, kEthQinQ = 0x88a8;
constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

void Put(RssTuple* t, const uint8_t* p, size_t n) {
  memcpy(t->data.data() + t->len, p, n);
  t->len = static_cast<uint8_t>(t->len + n);
}

}  // namespace

bool ExtractRssTuple(std::span<const uint8_t> frame, uint32_t types, RssTuple* t) {
  *t = RssTuple{};
  const uint8_t* f = frame.data();
  const size_t n = frame.size();
  if (n < 14) return false;
  size_t l3 = 14;
  uint16_t type = Be16(f + 12);
  if (type == kEthVlan || type == kEthQinQ) {
    if (n < 18) return false;
    type = Be16(f + 16);
    l3 = 18;
  }
  if (type == kEthIpv4) {
    if (!(types & (kRssIpv4 | kRssTcpv4 | kRssUdpv4)) || n < l3 + 20) return false;
    const uint8_t* ip = f + l3;
    const size_t ihl = (ip[0] & 0x0f) * 4u;
    if ((ip[0] >> 4) != 4 || ihl < 20 || n < l3 + ihl) return false;
    // Any fragment (MF set or a non-zero offset) has no ports to hash, or
    // only in its first piece: hashing those would split one datagram's
    // pieces over queues. RFC 791 §3.1.
    const bool fragment = (Be16(ip + 6) & 0x3fff) != 0;
    const uint8_t proto = ip[9];
    const size_t l4 = l3 + ihl;
    Put(t, ip + 12, 8);  // source, destination
    if (!fragment && proto == kProtoTcp && (types & kRssTcpv4) && n >= l4 + 20) {
      Put(t, f + l4, 4);
      t->report = RssReport::kTcpv4;
    } else if (!fragment && proto == kProtoUdp && (types & kRssUdpv4) && n >= l4 + 8) {
      Put(t, f + l4, 4);
      t->report = RssReport::kUdpv4;
    } else if (types & kRssIpv4) {
      t->report = RssReport::kIpv4;
    } else {
      *t = RssTuple{};
      return false;
    }
    return true;
  }
  if (type == kEthIpv6) {
    if (!(types & (kRssIpv6 | kRssTcpv6 | kRssUdpv6)) || n < l3 + 40) return false;
    const uint8_t* ip = f + l3;
    if ((ip[0] >> 4) != 6) return false;
    const uint8_t next = ip[6];
    const size_t l4 = l3 + 40;
    Put(t, ip + 8, 32);
    if (next == kProtoTcp && (types & kRssTcpv6) && n >= l4 + 20) {
      Put(t, f + l4, 4);
      t->report = RssReport::kTcpv6;
    } else if (next == kProtoUdp && (types & kRssUdpv6) && n >= l4 + 8) {
      Put(t, f + l4, 4);
      t->report = RssReport::kUdpv6;
    } else if (types & kRssIpv6) {
      t->report = RssReport::kIpv6;
    } else {
      *t = RssTuple{};
      return false;
    }
    return true;
  }
  return false;
}

RssHasher::RssHasher() {
  std::copy(kDefaultRssKey.begin(), kDefaultRssKey.end(), key_.begin());
  Build();
}

absl::StatusOr<RssHasher> RssHasher::Create(std::span<const uint8_t> key) {
  if (key.size() != kRssKeyLen)
    return absl::InvalidArgumentError(absl::StrCat("RSS key of ", key.size(), " bytes; it must be ",
                                                   kRssKeyLen, " (virtio-net's and the NICs' size)"));
  RssHasher h;
  std::copy(key.begin(), key.end(), h.key_.begin());
  h.Build();
  return h;
}

// The Toeplitz hash XORs, for every set input bit k (MSB first), the 32
// key bits starting at bit k. The bits of one input byte at offset i see
// the windows at 8i .. 8i+7, so a byte's whole contribution depends only on
// (i, value): precomputed once, Hash() is one lookup per byte.
void RssHasher::Build() {
  table_.assign(kRssMaxInput, {});
  for (size_t i = 0; i < kRssMaxInput; ++i) {
    // Key bits 8i .. 8i+39 as a 40-bit number in a 64-bit word.
    uint64_t w = 0;
    for (size_t b = 0; b < 5; ++b) w = (w << 8) | key_[i + b];
    uint32_t bit_window[8];
    for (int b = 0; b < 8; ++b) bit_window[b] = static_cast<uint32_t>(w >> (8 - b));
    for (uint32_t v = 0; v < 256; ++v) {
      uint32_t h = 0;
      for (int b = 0; b < 8; ++b)
        if (v & (0x80u >> b)) h ^= bit_window[b];
      table_[i][v] = h;
    }
  }
}

uint32_t RssHasher::Hash(std::span<const uint8_t> input) const {
  const size_t n = std::min(input.size(), kRssMaxInput);
  uint32_t h = 0;
  for (size_t i = 0; i < n; ++i) h ^= table_[i][input[i]];
  return h;
}

RssTable::RssTable(uint16_t queues) {
  const uint16_t q = queues == 0 ? 1 : queues;
  for (size_t i = 0; i < kMaxEntries; ++i) entries_[i] = static_cast<uint16_t>(i % q);
  mask_ = kMaxEntries - 1;
}

absl::StatusOr<RssTable> RssTable::Create(std::span<const uint16_t> entries, uint16_t queues) {
  const size_t n = entries.size();
  if (n == 0 || n > kMaxEntries || (n & (n - 1)) != 0)
    return absl::InvalidArgumentError(absl::StrCat("RSS indirection table of ", n,
                                                   " entries; it must be a power of two from 1 to ",
                                                   kMaxEntries));
  for (size_t i = 0; i < n; ++i)
    if (entries[i] >= queues)
      return absl::InvalidArgumentError(absl::StrCat("RSS indirection entry ", i, " names queue ",
                                                     entries[i], " of ", queues));
  RssTable t(1);
  std::copy(entries.begin(), entries.end(), t.entries_.begin());
  t.mask_ = static_cast<uint32_t>(n - 1);
  return t;
}

}  // namespace npa
