// tests/demo/netproto.h — the few protocol pieces the demo guest speaks:
// Ethernet, ARP (RFC 826), IPv4 (RFC 791), ICMP echo (RFC 792), UDP (RFC 768).
// The demo guest has no kernel stack under it: it answers ARP and ping and
// runs a sequence-numbered UDP stream itself, through the shell's bursts.
#ifndef NPA_TESTS_DEMO_NETPROTO_H_
#define NPA_TESTS_DEMO_NETPROTO_H_

#include <arpa/inet.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

namespace npa::demo {

using Mac = std::array<uint8_t, 6>;

inline constexpr uint16_t kEthIpv4 = 0x0800;
inline constexpr uint16_t kEthArp = 0x0806;
inline constexpr size_t kEthHdr = 14;
inline constexpr size_t kIpHdr = 20;
inline constexpr size_t kUdpHdr = 8;
inline constexpr uint32_t kStreamMagic = 0x4e504131;  // "NPA1"

// Payload of one stream datagram: magic, sequence number, then a pattern
// derived from the sequence number so corruption is caught, not only loss.
struct StreamHeader {
  uint32_t magic;
  uint32_t reserved;
  uint64_t seq;
} __attribute__((packed));

inline uint8_t PatternByte(uint64_t seq, size_t i) {
  return static_cast<uint8_t>((seq * 131u + i * 7u) & 0xff);
}

// Ones' complement sum over data, folded (RFC 1071).
uint32_t CsumPartial(const void* data, size_t len, uint32_t sum);
uint16_t CsumFold(uint32_t sum);

std::optional<Mac> ParseMac(const std::string& s);
std::string MacToString(const Mac& m);

// Builders write a whole frame into out (>= 64 bytes) and return its length.
size_t BuildArp(uint8_t* out, uint16_t op, const Mac& src_mac, uint32_t src_ip,
                const Mac& dst_mac, uint32_t dst_ip);
// UDP datagram with a StreamHeader + pattern payload of payload_len bytes
// (>= sizeof(StreamHeader)); computes IPv4 and UDP checksums in software.
size_t BuildUdpStream(uint8_t* out, const Mac& src_mac, const Mac& dst_mac, uint32_t src_ip,
                      uint32_t dst_ip, uint16_t sport, uint16_t dport, uint64_t seq,
                      size_t payload_len);

// Stream receiver bookkeeping shared by the guest and the peer.
struct StreamStats {
  uint64_t received = 0;     // datagrams with a valid header and pattern
  uint64_t corrupt = 0;      // bad magic or pattern
  uint64_t out_of_order = 0; // seq lower than the highest seen
  uint64_t duplicates = 0;
  uint64_t highest = 0;      // highest seq + 1 seen
  // Returns false if the payload is not a stream datagram.
  bool Account(std::span<const uint8_t> payload);
  uint64_t Lost(uint64_t expected) const {
    return expected > received ? expected - received : 0;
  }

 private:
  // A bitmap of seen sequence numbers for duplicate detection (bounded).
  std::array<uint64_t, 1 << 14> seen_{};  // 1M sequence numbers
};

}  // namespace npa::demo

#endif  // NPA_TESTS_DEMO_NETPROTO_H_
