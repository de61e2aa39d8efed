#include "tests/demo/netproto.h"

#include <cstdio>

namespace npa::demo {

uint32_t CsumPartial(const void* data, size_t len, uint32_t sum) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (len >= 2) {
    sum += (static_cast<uint32_t>(p[0]) << 8) | p[1];
    p += 2;
    len -= 2;
  }
  if (len) sum += static_cast<uint32_t>(p[0]) << 8;  // odd byte padded with zero
  return sum;
}

uint16_t CsumFold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

std::optional<Mac> ParseMac(const std::string& s) {
  Mac m;
  unsigned v[6];
  char tail;
  if (sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
             &tail) != 6)
    return std::nullopt;
  for (int i = 0; i < 6; i++) {
    if (v[i] > 0xff) return std::nullopt;
    m[i] = static_cast<uint8_t>(v[i]);
  }
  return m;
}

std::string MacToString(const Mac& m) {
  char b[18];
  snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

namespace {

void PutEth(uint8_t* out, const Mac& dst, const Mac& src, uint16_t type) {
  memcpy(out, dst.data(), 6);
  memcpy(out + 6, src.data(), 6);
  uint16_t t = htons(type);
  memcpy(out + 12, &t, 2);
}

}  // namespace

size_t BuildArp(uint8_t* out, uint16_t op, const Mac& src_mac, uint32_t src_ip,
                const Mac& dst_mac, uint32_t dst_ip) {
  static constexpr Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  PutEth(out, op == 1 ? kBroadcast : dst_mac, src_mac, kEthArp);
  uint8_t* a = out + kEthHdr;
  const uint8_t hdr[8] = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, static_cast<uint8_t>(op)};
  memcpy(a, hdr, 8);
  memcpy(a + 8, src_mac.data(), 6);
  memcpy(a + 14, &src_ip, 4);  // addresses are kept in network order
  if (op == 1)
    memset(a + 18, 0, 6);
  else
    memcpy(a + 18, dst_mac.data(), 6);
  memcpy(a + 24, &dst_ip, 4);
  size_t len = kEthHdr + 28;
  memset(out + len, 0, 60 - len);  // pad to the Ethernet minimum (no FCS)
  return 60;
}

size_t BuildUdpStream(uint8_t* out, const Mac& src_mac, const Mac& dst_mac, uint32_t src_ip,
                      uint32_t dst_ip, uint16_t sport, uint16_t dport, uint64_t seq,
                      size_t payload_len) {
  PutEth(out, dst_mac, src_mac, kEthIpv4);
  uint8_t* ip = out + kEthHdr;
  uint16_t tot = static_cast<uint16_t>(kIpHdr + kUdpHdr + payload_len);
  ip[0] = 0x45;
  ip[1] = 0;
  uint16_t v = htons(tot);
  memcpy(ip + 2, &v, 2);
  v = htons(static_cast<uint16_t>(seq));
  memcpy(ip + 4, &v, 2);
  v = htons(0x4000);  // DF
  memcpy(ip + 6, &v, 2);
  ip[8] = 64;
  ip[9] = 17;
  memset(ip + 10, 0, 2);
  memcpy(ip + 12, &src_ip, 4);
  memcpy(ip + 16, &dst_ip, 4);
  v = htons(CsumFold(CsumPartial(ip, kIpHdr, 0)));
  memcpy(ip + 10, &v, 2);

  uint8_t* udp = ip + kIpHdr;
  uint16_t ulen = static_cast<uint16_t>(kUdpHdr + payload_len);
  v = htons(sport);
  memcpy(udp, &v, 2);
  v = htons(dport);
  memcpy(udp + 2, &v, 2);
  v = htons(ulen);
  memcpy(udp + 4, &v, 2);
  memset(udp + 6, 0, 2);
  uint8_t* pl = udp + kUdpHdr;
  StreamHeader h{kStreamMagic, 0, seq};
  memcpy(pl, &h, sizeof h);
  for (size_t i = sizeof h; i < payload_len; i++) pl[i] = PatternByte(seq, i);

  // UDP checksum over the pseudo-header (RFC 768): src, dst, proto, length.
  uint32_t sum = CsumPartial(ip + 12, 8, 0);
  sum += 17 + ulen;
  sum = CsumPartial(udp, ulen, sum);
  uint16_t c = CsumFold(sum);
  if (c == 0) c = 0xffff;  // 0 means "no checksum" in UDP over IPv4
  v = htons(c);
  memcpy(udp + 6, &v, 2);
  return kEthHdr + tot;
}

bool StreamStats::Account(std::span<const uint8_t> payload) {
  if (payload.size() < sizeof(StreamHeader)) return false;
  StreamHeader h;
  memcpy(&h, payload.data(), sizeof h);
  if (h.magic != kStreamMagic) return false;
  for (size_t i = sizeof h; i < payload.size(); i++) {
    if (payload[i] != PatternByte(h.seq, i)) {
      corrupt++;
      return true;
    }
  }
  if (h.seq < seen_.size() * 64) {
    uint64_t& w = seen_[h.seq / 64];
    uint64_t bit = 1ull << (h.seq % 64);
    if (w & bit) {
      duplicates++;
      return true;
    }
    w |= bit;
  }
  if (h.seq + 1 < highest) out_of_order++;
  if (h.seq + 1 > highest) highest = h.seq + 1;
  received++;
  return true;
}

}  // namespace npa::demo
