#include "shell/offload.h"

#include <cstring>

namespace npa::shell {

uint64_t CsumPartial(const void* data, size_t len, uint64_t sum, bool odd_start) {
  const auto* p = static_cast<const uint8_t*>(data);
  // Bytes are summed as big-endian 16-bit words. A span that starts at an
  // odd frame offset has its bytes swapped relative to the frame's words:
  // sum it as is and byte-swap the 16-bit result (RFC 1071, 2.(B)).
  uint64_t s = 0;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    s += w;
    if (s < w) s++;  // end-around carry
    p += 8;
    len -= 8;
  }
  s = (s & 0xffffffffu) + (s >> 32);  // headroom for the 16-bit adds below
  s = (s & 0xffffffffu) + (s >> 32);
  while (len >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    s += w;
    p += 2;
    len -= 2;
  }
  if (len) s += *p;  // little-endian host: a lone byte is the low byte
  // Fold to 16 bits (host order of little-endian words == byte-swapped BE).
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  if (odd_start) s = ((s & 0xff) << 8) | (s >> 8);
  return sum + s;
}

uint16_t CsumFold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

bool SoftwareChecksum(npa_buf* b) {
  const uint32_t start = b->csum_start;
  const uint32_t field = start + b->csum_offset;
  if (field + 2 > b->pkt_len || start >= b->pkt_len) return false;
  uint64_t sum = 0;
  uint32_t off = 0;  // frame offset of the current segment's first byte
  uint8_t* field_ptr[2] = {nullptr, nullptr};
  uint32_t guard = 0;
  for (npa_buf* s = b; s != nullptr && guard < 4096; s = s->next, guard++) {
    auto* d = static_cast<uint8_t*>(npa_buf_data(s));
    uint32_t len = s->data_len;
    for (uint32_t k = 0; k < 2; k++)
      if (field + k >= off && field + k < off + len) field_ptr[k] = d + (field + k - off);
    if (off + len > start) {
      uint32_t from = start > off ? start - off : 0;
      sum = CsumPartial(d + from, len - from, sum, ((off + from - start) & 1) != 0);
    }
    off += len;
  }
  if (field_ptr[0] == nullptr || field_ptr[1] == nullptr) return false;
  // The field held the pseudo-header sum and was included above: the folded
  // complement is the final checksum (stored big-endian, as summed).
  uint16_t c = CsumFold(sum);
  // UDP (RFC 768): a computed 0 is sent as 0xffff. TCP accepts either.
  *field_ptr[0] = static_cast<uint8_t>(c & 0xff);
  *field_ptr[1] = static_cast<uint8_t>(c >> 8);
  return true;
}

bool EncodeTxHdr(npa_buf* b, uint64_t f, virtio_net_hdr_mrg_rxbuf* h) {
  memset(h, 0, sizeof *h);
  const uint32_t ol = b->ol_flags;
  const bool tso = (ol & (NPA_BUF_OL_TX_TSO4 | NPA_BUF_OL_TX_TSO6)) != 0;
  if (tso) {
    const bool v4 = (ol & NPA_BUF_OL_TX_TSO4) != 0;
    const uint64_t need = 1ull << (v4 ? VIRTIO_NET_F_HOST_TSO4 : VIRTIO_NET_F_HOST_TSO6);
    // Software TSO is not implemented: configure() refuses NPA_OFFLOAD_TSO
    // when the device lacks it, so this is an application error.
    if (!(f & need) || !(f & (1ull << VIRTIO_NET_F_CSUM))) return false;
    // hdr_len covers L2+L3+L4 headers: csum_start + TCP data offset.
    uint32_t doff_at = b->csum_start + 12u;
    if (doff_at >= b->data_len || b->tso_segsz == 0) return false;
    uint32_t tcp_hlen = (static_cast<const uint8_t*>(npa_buf_data(b))[doff_at] >> 4) * 4u;
    if (tcp_hlen < 20) return false;
    h->hdr.gso_type = v4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
    h->hdr.gso_size = b->tso_segsz;
    h->hdr.hdr_len = static_cast<uint16_t>(b->csum_start + tcp_hlen);
  }
  if ((ol & NPA_BUF_OL_TX_CSUM) || tso) {
    if (static_cast<uint32_t>(b->csum_start) + b->csum_offset + 2 > b->pkt_len) return false;
    if (f & (1ull << VIRTIO_NET_F_CSUM)) {
      h->hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      h->hdr.csum_start = b->csum_start;
      h->hdr.csum_offset = b->csum_offset;
    } else if (!SoftwareChecksum(b)) {
      return false;
    }
  }
  return true;
}

bool InsertVlan(npa_buf* b) {
  // The virtio-net header still has to fit in front of the frame.
  if (b->data_len < 12 || b->data_off < NPA_BUF_META_SIZE + kNetHdrLen + 4) return false;
  b->data_off = static_cast<uint16_t>(b->data_off - 4);
  auto* d = static_cast<uint8_t*>(npa_buf_data(b));
  memmove(d, d + 4, 12);
  d[12] = 0x81;
  d[13] = 0x00;
  d[14] = static_cast<uint8_t>(b->vlan_tci >> 8);
  d[15] = static_cast<uint8_t>(b->vlan_tci);
  b->data_len = static_cast<uint16_t>(b->data_len + 4);
  b->pkt_len += 4;
  if (b->ol_flags & (NPA_BUF_OL_TX_CSUM | NPA_BUF_OL_TX_TSO4 | NPA_BUF_OL_TX_TSO6))
    b->csum_start = static_cast<uint16_t>(b->csum_start + 4);
  b->ol_flags &= ~NPA_BUF_OL_TX_VLAN;
  return true;
}

bool StripVlan(npa_buf* b) {
  auto* d = static_cast<uint8_t*>(npa_buf_data(b));
  if (b->data_len < 18 || d[12] != 0x81 || d[13] != 0x00) return false;
  b->vlan_tci = static_cast<uint16_t>(d[14] << 8 | d[15]);
  memmove(d + 4, d, 12);
  b->data_off = static_cast<uint16_t>(b->data_off + 4);
  b->data_len = static_cast<uint16_t>(b->data_len - 4);
  b->pkt_len -= 4;
  if (b->ol_flags & NPA_BUF_OL_RX_CSUM_PARTIAL) {
    if (b->csum_start >= kMinCsumStart + 4) b->csum_start = static_cast<uint16_t>(b->csum_start - 4);
    else b->ol_flags &= ~NPA_BUF_OL_RX_CSUM_PARTIAL;  // it started inside the tag
  }
  b->ol_flags |= NPA_BUF_OL_RX_VLAN;
  return true;
}

// VIRTIO 1.2 5.1.6: VIRTIO_NET_HDR_GSO_UDP_L4 (not in npa/virtio_ring.h).
constexpr uint8_t kGsoUdpL4 = 5;

bool DecodeRxHdr(const virtio_net_hdr_mrg_rxbuf& h, uint32_t frame_len, npa_buf* b) {
  uint32_t ol = 0;
  if (h.hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    // 5.1.6.4: the checksum goes at csum_start + csum_offset; both come
    // from the back end and the application would write there.
    const uint32_t start = h.hdr.csum_start;
    if (start < kMinCsumStart || start + h.hdr.csum_offset + 2u > frame_len) return false;
    ol |= NPA_BUF_OL_RX_CSUM_PARTIAL;
    b->csum_start = h.hdr.csum_start;
    b->csum_offset = h.hdr.csum_offset;
  } else if (h.hdr.flags & VIRTIO_NET_HDR_F_DATA_VALID) {
    ol |= NPA_BUF_OL_RX_CSUM_GOOD;
  }
  switch (h.hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) {
    case VIRTIO_NET_HDR_GSO_NONE:
      break;
    case VIRTIO_NET_HDR_GSO_TCPV4:
    case NPA_VIRTIO_NET_HDR_GSO_UDP:
    case VIRTIO_NET_HDR_GSO_TCPV6:
    case kGsoUdpL4:
      if (h.hdr.gso_size == 0) return false;
      ol |= NPA_BUF_OL_RX_GSO;
      b->tso_segsz = h.hdr.gso_size;
      break;
    default:
      return false;  // a type 5.1.6.4 does not define
  }
  b->ol_flags = ol;
  return true;
}

}  // namespace npa::shell
