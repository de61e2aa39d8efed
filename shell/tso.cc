#include "shell/tso.h"

#include <algorithm>
#include <cstring>

#include "shell/offload.h"

namespace npa::shell {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86dd, kEthVlan = 0x8100;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint32_t Be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
void PutBe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

// Copies len bytes of frame b from frame offset off into dst (b's chain).
void CopyOut(const npa_buf* b, uint32_t off, uint8_t* dst, uint32_t len) {
  for (uint32_t guard = 0; b != nullptr && len > 0 && guard < 4096; b = b->next, guard++) {
    if (off >= b->data_len) {
      off -= b->data_len;
      continue;
    }
    const uint32_t k = std::min<uint32_t>(len, b->data_len - off);
    memcpy(dst, static_cast<const uint8_t*>(npa_buf_data(const_cast<npa_buf*>(b))) + off, k);
    dst += k;
    len -= k;
    off = 0;
  }
}

}  // namespace

bool PlanTso(const npa_buf* b, TsoPlan* p) {
  const bool want6 = (b->ol_flags & NPA_BUF_OL_TX_TSO6) != 0;
  const auto* d = static_cast<const uint8_t*>(npa_buf_data(const_cast<npa_buf*>(b)));
  const uint32_t first = b->data_len;  // headers must be in the first buffer
  if (b->tso_segsz == 0 || first < 14 || b->pkt_len < first) return false;
  uint32_t l2 = 14;
  uint16_t et = Be16(d + 12);
  if (et == kEthVlan) {
    if (first < 18) return false;
    et = Be16(d + 16);
    l2 = 18;
  }
  uint32_t l3;
  if (!want6) {
    if (et != kEthIpv4 || first < l2 + 20) return false;
    const uint8_t* ip = d + l2;
    l3 = (ip[0] & 0x0f) * 4u;
    if ((ip[0] >> 4) != 4 || l3 < 20 || first < l2 + l3 || ip[9] != kTcp) return false;
    if ((Be16(ip + 6) & 0x3fff) != 0) return false;  // MF or a fragment offset
  } else {
    if (et != kEthIpv6 || first < l2 + 40) return false;
    const uint8_t* ip = d + l2;
    if ((ip[0] >> 4) != 6 || ip[6] != kTcp) return false;  // no extension headers
    l3 = 40;
  }
  if (first < l2 + l3 + 20) return false;
  const uint32_t l4 = (d[l2 + l3 + 12] >> 4) * 4u;
  const uint32_t hdr = l2 + l3 + l4;
  if (l4 < 20 || first < hdr || b->pkt_len <= hdr) return false;
  if (hdr + b->tso_segsz > NPA_BUF_DATA_ROOM) return false;
  const uint32_t payload = b->pkt_len - hdr;
  const uint32_t nseg = (payload + b->tso_segsz - 1) / b->tso_segsz;
  if (nseg > kMaxTsoSegments) return false;
  p->l2_len = static_cast<uint16_t>(l2);
  p->l3_len = static_cast<uint16_t>(l3);
  p->l4_len = static_cast<uint16_t>(l4);
  p->ipv6 = want6;
  p->payload = payload;
  p->mss = b->tso_segsz;
  p->nseg = static_cast<uint16_t>(nseg);
  return true;
}

void SegmentTso(const npa_buf* b, const TsoPlan& p, npa_buf* const* out) {
  const auto* src = static_cast<const uint8_t*>(npa_buf_data(const_cast<npa_buf*>(b)));
  const uint32_t hdr = p.hdr_len();
  const uint32_t seq0 = Be32(src + p.l2_len + p.l3_len + 4);
  const uint8_t flags0 = src[p.l2_len + p.l3_len + 13];
  const uint16_t id0 = p.ipv6 ? 0 : Be16(src + p.l2_len + 4);
  for (uint16_t i = 0; i < p.nseg; i++) {
    npa_buf* s = out[i];
    const uint32_t off = static_cast<uint32_t>(i) * p.mss;
    const uint32_t len = std::min<uint32_t>(p.mss, p.payload - off);
    s->next = nullptr;
    s->nb_segs = 1;
    s->data_off = NPA_BUF_DATA_OFF;
    s->ol_flags = b->ol_flags & NPA_BUF_OL_TX_VLAN;  // what the path still does
    s->vlan_tci = b->vlan_tci;
    s->tso_segsz = 0;
    s->data_len = static_cast<uint16_t>(hdr + len);
    s->pkt_len = hdr + len;
    auto* d = static_cast<uint8_t*>(npa_buf_data(s));
    memcpy(d, src, hdr);
    CopyOut(b, hdr + off, d + hdr, len);
    uint8_t* ip = d + p.l2_len;
    uint8_t* tcp = ip + p.l3_len;
    const uint16_t tcp_len = static_cast<uint16_t>(p.l4_len + len);
    uint64_t pseudo;
    if (!p.ipv6) {
      PutBe16(ip + 2, static_cast<uint16_t>(p.l3_len + tcp_len));
      PutBe16(ip + 4, static_cast<uint16_t>(id0 + i));
      ip[10] = ip[11] = 0;
      const uint16_t ipc = CsumFold(CsumPartial(ip, p.l3_len, 0, false));
      memcpy(ip + 10, &ipc, 2);  // CsumFold's result is already in wire order
      // Pseudo-header (RFC 793 3.1): addresses, zero + protocol, TCP length.
      uint8_t ph[4] = {0, kTcp, 0, 0};
      PutBe16(ph + 2, tcp_len);
      pseudo = CsumPartial(ip + 12, 8, 0, false);
      pseudo = CsumPartial(ph, 4, pseudo, false);
    } else {
      PutBe16(ip + 4, tcp_len);
      // RFC 8200 8.1: addresses, 32-bit upper-layer length, 3 zero bytes, next header.
      uint8_t ph[8] = {0, 0, 0, 0, 0, 0, 0, kTcp};
      PutBe32(ph, tcp_len);
      pseudo = CsumPartial(ip + 8, 32, 0, false);
      pseudo = CsumPartial(ph, 8, pseudo, false);
    }
    PutBe32(tcp + 4, seq0 + off);
    uint8_t fl = flags0;
    if (i + 1 < p.nseg) fl &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (i > 0) fl &= static_cast<uint8_t>(~kTcpCwr);
    tcp[13] = fl;
    tcp[16] = tcp[17] = 0;
    const uint16_t c = CsumFold(CsumPartial(tcp, tcp_len, pseudo, false));
    memcpy(tcp + 16, &c, 2);
  }
}

}  // namespace npa::shell
