#include "shell/tso.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "shell/offload.h"

namespace npa::shell {
namespace {

// Slots laid out as the shell's pool does (buf.h), from plain memory.
class Slots {
 public:
  explicit Slots(int n) : mem_(static_cast<uint8_t*>(std::aligned_alloc(64, n * NPA_BUF_SLOT_SIZE))) {
    for (int i = 0; i < n; i++) {
      auto* b = reinterpret_cast<npa_buf*>(mem_.get() + i * NPA_BUF_SLOT_SIZE);
      memset(b, 0, sizeof *b);
      b->iova = reinterpret_cast<uint64_t>(b);
      b->data_off = NPA_BUF_DATA_OFF;
      b->buf_len = NPA_BUF_SLOT_SIZE;
      b->nb_segs = 1;
      bufs_.push_back(b);
    }
  }
  npa_buf* operator[](int i) { return bufs_[i]; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> mem_;
  std::vector<npa_buf*> bufs_;
};

uint8_t* Data(npa_buf* b) { return static_cast<uint8_t*>(npa_buf_data(b)); }

// Ethernet + IPv4/IPv6 + TCP (20 B + `opt` option bytes) + payload bytes
// i % 251, spread over buffers of at most `chunk` bytes; returns the head.
npa_buf* BuildFrame(Slots& s, bool v6, uint32_t payload, uint32_t chunk, uint16_t mss,
                    uint8_t tcp_flags = 0x18 | 0x01 | 0x80, uint32_t opt = 12) {
  std::vector<uint8_t> f;
  const uint8_t mac[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};
  f.insert(f.end(), mac, mac + 12);
  const uint32_t l4 = 20 + opt;
  if (!v6) {
    f.insert(f.end(), {0x08, 0x00});
    const uint16_t tot = static_cast<uint16_t>(20 + l4 + payload);
    uint8_t ip[20] = {0x45, 0, static_cast<uint8_t>(tot >> 8), static_cast<uint8_t>(tot), 0x12, 0x34,
                      0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
    f.insert(f.end(), ip, ip + 20);
  } else {
    f.insert(f.end(), {0x86, 0xdd});
    uint8_t ip[40] = {0x60, 0, 0, 0, 0, 0, 6, 64};
    ip[8] = 0xfd;
    ip[23] = 1;
    ip[24] = 0xfd;
    ip[39] = 2;
    f.insert(f.end(), ip, ip + 40);
  }
  uint8_t tcp[20] = {0x30, 0x39, 0x00, 0x50, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 1,
                     static_cast<uint8_t>((l4 / 4) << 4), tcp_flags, 0xff, 0xff, 0x12, 0x34, 0, 0};
  f.insert(f.end(), tcp, tcp + 20);
  for (uint32_t i = 0; i < opt; i++) f.push_back(1);  // NOPs
  for (uint32_t i = 0; i < payload; i++) f.push_back(static_cast<uint8_t>(i % 251));
  npa_buf* head = s[0];
  npa_buf* prev = nullptr;
  uint32_t off = 0;
  for (int k = 0; off < f.size(); k++) {
    npa_buf* b = s[k];
    const uint32_t n = std::min<uint32_t>(chunk, static_cast<uint32_t>(f.size()) - off);
    memcpy(Data(b), f.data() + off, n);
    b->data_len = static_cast<uint16_t>(n);
    if (prev) prev->next = b;
    prev = b;
    off += n;
    head->nb_segs = static_cast<uint16_t>(k + 1);
  }
  head->pkt_len = static_cast<uint32_t>(f.size());
  head->ol_flags = v6 ? NPA_BUF_OL_TX_TSO6 : NPA_BUF_OL_TX_TSO4;
  head->tso_segsz = mss;
  return head;
}

// The checksum of a span that includes its checksum field folds to 0.
bool SumsToZero(uint64_t sum) { return CsumFold(sum) == 0; }

void CheckSegments(bool v6, uint32_t payload, uint32_t chunk, uint16_t mss) {
  Slots in(64), out(kMaxTsoSegments);
  npa_buf* f = BuildFrame(in, v6, payload, chunk, mss);
  const uint32_t l3 = v6 ? 40 : 20, hdr = 14 + l3 + 32;
  TsoPlan p;
  ASSERT_TRUE(PlanTso(f, &p));
  EXPECT_EQ(p.hdr_len(), hdr);
  EXPECT_EQ(p.nseg, (payload + mss - 1) / mss);
  std::vector<npa_buf*> segs;
  for (int i = 0; i < p.nseg; i++) segs.push_back(out[i]);
  SegmentTso(f, p, segs.data());
  uint32_t seen = 0;
  for (int i = 0; i < p.nseg; i++) {
    SCOPED_TRACE("segment " + std::to_string(i));
    npa_buf* s = segs[i];
    const uint8_t* d = Data(s);
    const uint32_t len = std::min<uint32_t>(mss, payload - seen);
    ASSERT_EQ(s->pkt_len, hdr + len);
    EXPECT_EQ(s->data_len, hdr + len);
    EXPECT_EQ(s->next, nullptr);
    EXPECT_EQ(s->ol_flags & (NPA_BUF_OL_TX_TSO4 | NPA_BUF_OL_TX_TSO6 | NPA_BUF_OL_TX_CSUM), 0u);
    EXPECT_EQ(memcmp(d, Data(f), 14), 0) << "Ethernet header copied";
    const uint8_t* ip = d + 14;
    const uint8_t* tcp = ip + l3;
    uint64_t pseudo;
    const uint16_t tcp_len = static_cast<uint16_t>(32 + len);
    if (!v6) {
      EXPECT_EQ((ip[2] << 8 | ip[3]), 20 + tcp_len);
      EXPECT_EQ((ip[4] << 8 | ip[5]), 0x1234 + i) << "IPv4 id increments";
      EXPECT_TRUE(SumsToZero(CsumPartial(ip, 20, 0, false))) << "IPv4 header checksum";
      uint8_t ph[4] = {0, 6, static_cast<uint8_t>(tcp_len >> 8), static_cast<uint8_t>(tcp_len)};
      pseudo = CsumPartial(ph, 4, CsumPartial(ip + 12, 8, 0, false), false);
    } else {
      EXPECT_EQ((ip[4] << 8 | ip[5]), tcp_len);
      uint8_t ph[8] = {0, 0, static_cast<uint8_t>(tcp_len >> 8), static_cast<uint8_t>(tcp_len), 0, 0, 0, 6};
      pseudo = CsumPartial(ph, 8, CsumPartial(ip + 8, 32, 0, false), false);
    }
    const uint32_t seq = static_cast<uint32_t>(tcp[4]) << 24 | tcp[5] << 16 | tcp[6] << 8 | tcp[7];
    EXPECT_EQ(seq, 0xaabbccddu + seen);
    const bool last = i + 1 == p.nseg;
    EXPECT_EQ((tcp[13] & 0x01) != 0, last) << "FIN only on the last";
    EXPECT_EQ((tcp[13] & 0x08) != 0, last) << "PSH only on the last";
    EXPECT_EQ((tcp[13] & 0x80) != 0, i == 0) << "CWR only on the first";
    EXPECT_TRUE(SumsToZero(CsumPartial(tcp, tcp_len, pseudo, false))) << "TCP checksum";
    for (uint32_t k = 0; k < len; k++)
      ASSERT_EQ(d[hdr + k], static_cast<uint8_t>((seen + k) % 251)) << "payload byte " << seen + k;
    seen += len;
  }
  EXPECT_EQ(seen, payload);
}

TEST(Tso, Ipv4AcrossBufferBoundaries) { CheckSegments(false, 5000, 1000, 1448); }
TEST(Tso, Ipv6AcrossBufferBoundaries) { CheckSegments(true, 9000, 2048, 1440); }
TEST(Tso, PayloadAMultipleOfMss) { CheckSegments(false, 4 * 1000, 2048, 1000); }
TEST(Tso, SingleSegment) { CheckSegments(true, 100, 2048, 1440); }
TEST(Tso, OddMssAndOddPayload) { CheckSegments(false, 3001, 777, 999); }

TEST(Tso, RefusesWhatItCannotSegment) {
  Slots s(64);
  TsoPlan p;
  npa_buf* f = BuildFrame(s, false, 3000, 2048, 1448);
  f->tso_segsz = 0;
  EXPECT_FALSE(PlanTso(f, &p)) << "no MSS";
  f->tso_segsz = 2000;
  EXPECT_FALSE(PlanTso(f, &p)) << "a segment larger than one buffer";
  f->tso_segsz = 1448;
  f->ol_flags = NPA_BUF_OL_TX_TSO6;
  EXPECT_FALSE(PlanTso(f, &p)) << "TSO6 on an IPv4 frame";
  f->ol_flags = NPA_BUF_OL_TX_TSO4;
  Data(f)[14 + 6] |= 0x20;  // MF: a fragment
  EXPECT_FALSE(PlanTso(f, &p));
  Data(f)[14 + 6] &= 0x1f;
  Data(f)[14 + 9] = 17;  // UDP
  EXPECT_FALSE(PlanTso(f, &p));
  Data(f)[14 + 9] = 6;
  EXPECT_TRUE(PlanTso(f, &p));
  f->tso_segsz = 40;  // 3000 / 40 = 75 segments
  EXPECT_FALSE(PlanTso(f, &p)) << "more than kMaxTsoSegments";

  Slots s6(64);
  npa_buf* g = BuildFrame(s6, true, 3000, 2048, 1440);
  Data(g)[14 + 6] = 0;  // hop-by-hop extension header
  EXPECT_FALSE(PlanTso(g, &p));
  // Headers split over two buffers.
  Slots s2(128);  // 3000 B in 40-byte buffers
  npa_buf* h = BuildFrame(s2, false, 3000, 40, 1448);
  EXPECT_FALSE(PlanTso(h, &p));
}

}  // namespace
}  // namespace npa::shell
