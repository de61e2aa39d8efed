// Software offloads on a VF that lacks them (vf_switch_fixture.h: the
// loopback plug-in has neither TX checksum nor VLAN insert/strip): the guest
// configured them, so the VF path does them in software, exactly as the
// emulated path would (the offload set is stable across paths).
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "npa/shell.h"
#include "common/rss.h"
#include "shell/offload.h"
#include "shell/shell_impl.h"
#include "shell/vf/vf_switch_fixture.h"

namespace npa::shell {
namespace {

// Ethernet + IPv4 + UDP with 8 payload bytes into b, asking for the UDP
// checksum (NPA_BUF_OL_TX_CSUM): the field holds the pseudo-header sum, as
// for CHECKSUM_PARTIAL.
constexpr uint8_t kUdpPseudoTail[4] = {0, 17, 0, 16};  // zero, proto 17, UDP length 16
void FillUdpPartialCsum(npa_buf* b, const char (&payload)[9]) {
  uint8_t* d = static_cast<uint8_t*>(npa_buf_data(b));
  const uint8_t hdr[42] = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00,
      0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
      0x30, 0x39, 0x00, 0x35, 0, 16, 0, 0};
  memcpy(d, hdr, sizeof hdr);
  memcpy(d + sizeof hdr, payload, 8);
  uint64_t ph = CsumPartial(d + 26, 8, 0, false);  // source and destination
  ph = CsumPartial(kUdpPseudoTail, 4, ph, false);
  uint16_t folded = static_cast<uint16_t>(~CsumFold(ph));
  memcpy(d + 40, &folded, 2);
  b->data_len = b->pkt_len = sizeof hdr + 8;
  b->ol_flags = NPA_BUF_OL_TX_CSUM;
  b->csum_start = 34;
  b->csum_offset = 6;
}

// The received datagram's checksum over pseudo header + datagram: 0 if valid.
uint16_t UdpCsumFold(const uint8_t* rd) {
  uint64_t s = CsumPartial(rd + 26, 8, 0, false);
  s = CsumPartial(kUdpPseudoTail, 4, s, false);
  s = CsumPartial(rd + 34, 16, s, false);
  return CsumFold(s);
}

// The loopback device has no TX checksum; the guest configured the offload,
// so the VF path computes it in software (the offload set is stable).
TEST_F(VfSwitchTest, TxChecksumDoneInSoftwareOnAVfWithoutIt) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  // This thread owns queue 0 and is not bursting: the attach is applied at
  // its next burst (the accept says the queue was idle).
  control::VfAccept a = Offer(21, kLbVendor, kLbDevice);
  ASSERT_TRUE(a.accepted()) << a.reason();
  EXPECT_NE(a.reason().find("software TX checksum"), std::string::npos) << a.reason();
  npa_buf* b;
  ASSERT_EQ(npa_buf_alloc(sh_, 0, &b, 1), 1);
  FillUdpPartialCsum(b, "checksum");
  ASSERT_EQ(npa_tx_burst(sh_, 0, &b, 1), 1);
  EXPECT_EQ(Info().path, NPA_PATH_VF);
  npa_buf* r = nullptr;
  ASSERT_TRUE(WaitFor([&] { return npa_rx_burst(sh_, 0, &r, 1) == 1; }, 3000));
  const uint8_t* rd = static_cast<const uint8_t*>(npa_buf_data(r));
  EXPECT_EQ(UdpCsumFold(rd), 0) << "checksum field " << std::hex << int(rd[40]) << int(rd[41]);
  EXPECT_FALSE(rd[40] == 0 && rd[41] == 0);
  EXPECT_EQ(Stats(sh_).tx_vf_packets, 1u);
  EXPECT_EQ(Stats(sh_).rx_vf_packets, 1u);
  npa_buf_free(sh_, 0, &r, 1);
}

// VLAN insert and strip on a VF without them (the loopback plug-in): done
// in software as on the emulated path; the tag moves csum_start, so the
// software checksum must still land in the right place.
TEST_F(VfSwitchTest, VlanInsertAndStripDoneInSoftwareOnAVfWithoutThem) {
  offloads_ = NPA_OFFLOAD_TX_CSUM | NPA_OFFLOAD_VLAN_INSERT | NPA_OFFLOAD_VLAN_STRIP;
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  EXPECT_NE(Info().offloads & NPA_OFFLOAD_VLAN_INSERT, 0u);
  ASSERT_TRUE(Offer(23, kLbVendor, kLbDevice).accepted());
  npa_buf* b;
  ASSERT_EQ(npa_buf_alloc(sh_, 0, &b, 1), 1);
  FillUdpPartialCsum(b, "vlantag!");
  std::vector<uint8_t> frame(static_cast<uint8_t*>(npa_buf_data(b)),
                             static_cast<uint8_t*>(npa_buf_data(b)) + b->data_len);
  b->ol_flags |= NPA_BUF_OL_TX_VLAN;
  b->vlan_tci = 0x2123;  // PCP 1, VID 0x123
  ASSERT_EQ(npa_tx_burst(sh_, 0, &b, 1), 1);
  EXPECT_EQ(Info().path, NPA_PATH_VF);
  npa_buf* r = nullptr;
  ASSERT_TRUE(WaitFor([&] { return npa_rx_burst(sh_, 0, &r, 1) == 1; }, 3000));
  EXPECT_NE(r->ol_flags & NPA_BUF_OL_RX_VLAN, 0u);
  EXPECT_EQ(r->vlan_tci, 0x2123);
  ASSERT_EQ(r->data_len, frame.size()) << "the tag went on the wire and came off again";
  const uint8_t* rd = static_cast<const uint8_t*>(npa_buf_data(r));
  EXPECT_EQ(memcmp(rd, frame.data(), 40), 0);
  EXPECT_EQ(UdpCsumFold(rd), 0) << "the checksum followed the tag's shift";
  npa_buf_free(sh_, 0, &r, 1);
}

// NPA_OFFLOAD_RSS_HASH on a VF without hardware RSS: the frame that comes
// back carries the shell's software hash, the one the emulated path gives
// (npa_rx_burst hashes after whichever path's burst; rss_rx.h).
TEST_F(VfSwitchTest, RssHashOnAVfIsTheShellsOwn) {
  offloads_ = NPA_OFFLOAD_TX_CSUM | NPA_OFFLOAD_RSS_HASH;
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  EXPECT_NE(Info().offloads & NPA_OFFLOAD_RSS_HASH, 0u);
  ASSERT_TRUE(Offer(24, kLbVendor, kLbDevice).accepted());
  npa_buf* b;
  ASSERT_EQ(npa_buf_alloc(sh_, 0, &b, 1), 1);
  FillUdpPartialCsum(b, "rsshash!");
  std::vector<uint8_t> frame(static_cast<uint8_t*>(npa_buf_data(b)),
                             static_cast<uint8_t*>(npa_buf_data(b)) + b->data_len);
  ASSERT_EQ(npa_tx_burst(sh_, 0, &b, 1), 1);
  EXPECT_EQ(Info().path, NPA_PATH_VF);
  npa_buf* r = nullptr;
  ASSERT_TRUE(WaitFor([&] { return npa_rx_burst(sh_, 0, &r, 1) == 1; }, 3000));
  RssTuple t;
  ASSERT_TRUE(ExtractRssTuple(frame, kRssAllTypes, &t));
  EXPECT_NE(r->ol_flags & NPA_BUF_OL_RX_RSS_HASH, 0u);
  EXPECT_EQ(r->rss_hash, RssHasher().Hash(t.bytes()));
  EXPECT_EQ(npa_rss_queue(sh_, r->rss_hash), 0) << "one queue pair";
  npa_buf_free(sh_, 0, &r, 1);
}

// NPA_SHELL_F_CHECK_PLUGIN_RX, and a plug-in that hands up foreign buffers
// and frames whose checksum field lies past their end (tests/plugins
// test_good.c LB_HOSTILE_RX): the VF path drops and counts them; the
// application sees only its own frames, each once, and every frame not
// delivered is one the shell counted as dropped.
TEST_F(VfSwitchTest, HostilePluginRxIsCheckedBeforeTheApplicationSeesIt) {
  SetPluginDir("hostile_rx");
  ASSERT_NO_FATAL_FAILURE(OpenShell(NPA_SHELL_F_CHECK_PLUGIN_RX));
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  control::VfAccept a = Offer(31, kLbVendor, kLbDevice);
  ASSERT_TRUE(a.accepted()) << a.reason();
  ASSERT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > 1000; }, 10000));
  control::RevokeDone d = Revoke(31, 2000);
  EXPECT_EQ(d.offer_id(), 31u);
  guest_->Finish();
  const npa_queue_stats st = Stats(sh_);
  EXPECT_GT(st.rx_dropped, 0u) << "out-of-bounds checksum frames were dropped";
  // rx_bad is internal (QueueCounters): every refused buffer or frame.
  EXPECT_GT(sh_->queues[0].c.rx_bad.load(), st.rx_dropped) << "foreign buffers were refused too";
  EXPECT_EQ(guest_->dups(), 0u);
  EXPECT_EQ(guest_->missing(), st.rx_dropped) << "each frame delivered once or counted dropped";
}

}  // namespace
}  // namespace npa::shell
