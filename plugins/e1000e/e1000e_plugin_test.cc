// plugins/e1000e/e1000e_plugin_test.cc — the e1000e plug-in without hardware:
// loaded with dlopen like the shell does, driven through the shipped fake
// services table (npa/testing/plugin_testkit.h) whose BAR0 is a register file
// in memory. A tiny device model runs in sleep_us (reset self-clears, EEPROM
// auto-read, link, GIO master); the tests play the device's DMA side by
// writing descriptors themselves.
#include <dlfcn.h>
#include <errno.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "npa/plugin.h"
#include "npa/testing/plugin_testkit.h"

namespace {

constexpr uint32_t CTRL = 0x0, STATUS = 0x8, EECD = 0x10, ICR = 0xC0, IMS = 0xD0, IMC = 0xD8,
                   RCTL = 0x100, TCTL = 0x400, RDBAL = 0x2800, RDLEN = 0x2808, RDT = 0x2818,
                   TDLEN = 0x3808, TDT = 0x3818, MPC = 0x4010, RAL0 = 0x5400, RAH0 = 0x5404,
                   IVAR = 0xE4, RXCSUM = 0x5000, RFCTL = 0x5008, MRQC = 0x5818,
                   RETA0 = 0x5C00, RSSRK0 = 0x5C80;

// 7.1.5 extended RX descriptor. Read format: the buffer address, then zero.
// Write-back: the first quadword is MRQ (low 32 bits: RSS type 3:0) and the
// RSS hash (high 32), then status (7:0) and errors (31:24), length, VLAN.
struct RxDesc {
  uint64_t addr;
  uint32_t status_error;
  uint16_t length, vlan;
};
struct TxDesc {
  uint64_t addr;
  uint32_t lower, upper;
};

using Kit = npa::testkit::FakeServices;

// The 82574L behind the shipped fake services table: BAR0 is its register
// file and a tiny device model runs whenever the plug-in sleeps.
struct Fake {
  Kit kit;
  uint32_t last_sleep_us = 0;
  int64_t irq_off_after_sleep_us = -1;  // last sleep before irq_setup(0)
  uint32_t imc_at_irq_off = 0;

  uint32_t& R(uint32_t off) { return kit.Reg<uint32_t>(0, off); }
  void Tick() {
    if (R(CTRL) & (1u << 26)) {  // RST: self-clears, EEPROM reloads the MAC
      R(CTRL) &= ~((1u << 26) | (1u << 2) | (1u << 6));
      R(RAL0) = 0x4c005452;
      R(RAH0) = 0x0104 | (1u << 31);
      R(EECD) |= 1u << 9;
      R(RDBAL) = 0;
    }
    R(STATUS) = (R(CTRL) & (1u << 2)) ? 0 : (1u << 19);
    if (R(CTRL) & (1u << 6)) R(STATUS) |= 0x2 | 0x1 | (2u << 6);  // LU, FD, 1000
  }
  Fake() {
    kit.SetIdentity(0x8086, 0x10d3);
    kit.device_info().msix_vectors = 5;
    std::strcpy(kit.device_info().pci_address, "0000:04:00.0");
    kit.AddBar(0, 0x20000);
    R(RAL0) = 0x4c005452;
    R(RAH0) = 0x0104 | (1u << 31);
    R(STATUS) = 1u << 19;
    kit.on_sleep = [this](uint32_t us) {
      last_sleep_us = us;
      Tick();
    };
    kit.on_irq_setup = [this](uint32_t nvec) {
      if (nvec == 0) {
        irq_off_after_sleep_us = last_sleep_us;
        imc_at_irq_off = R(IMC);
      }
      return 0;
    };
  }
};

class E1000eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    so_ = npa::testkit::PluginObject::Open(NPA_E1000E_PLUGIN_PATH, &why);
    ASSERT_NE(so_, nullptr) << why;
    info_ = so_->info();
    c_ = info_->ctrl;
    x_ = info_->fast;
  }
  void TearDown() override {
    if (dev_) c_->remove(dev_);
  }
  npa_dev_config Cfg(uint16_t ring = 64) {
    npa_dev_config cfg{};
    cfg.struct_size = sizeof(cfg);
    cfg.nb_queue_pairs = 1;
    cfg.ring_size = ring;
    cfg.mtu = 1500;
    cfg.offloads = NPA_CAP_TX_CSUM | NPA_CAP_RX_CSUM;
    return cfg;
  }
  const npa_services* svc() { return fake_.kit.services(); }
  npa_device_info& dinfo() { return fake_.kit.device_info(); }
  void ProbeOk() { ASSERT_EQ(c_->probe(svc(), &dinfo(), &dev_), 0); }

  Fake fake_;
  std::unique_ptr<npa::testkit::PluginObject> so_;
  const npa_plugin_info* info_ = nullptr;
  const npa_plugin_ctrl_ops* c_ = nullptr;
  const npa_plugin_fast_ops* x_ = nullptr;
  npa_plugin_dev* dev_ = nullptr;
};

TEST_F(E1000eTest, EntryVersionIdsAndExports) {
  npa_plugin_entry_fn entry = so_->entry();
  npa_plugin_query q2{sizeof(npa_plugin_query), 2, 0};
  EXPECT_EQ(entry(&q2), nullptr);
  EXPECT_EQ(entry(nullptr), nullptr);
  EXPECT_STREQ(info_->name, "e1000e");
  ASSERT_EQ(info_->id_count, 1u);
  EXPECT_EQ(info_->id_table[0].vendor, 0x8086);
  EXPECT_EQ(info_->id_table[0].device, 0x10d3);
  EXPECT_EQ(info_->struct_size, sizeof(npa_plugin_info));
  EXPECT_EQ(dlsym(so_->handle(), "e1k_rx_burst"), nullptr);  // only the entry is exported
  EXPECT_EQ(dlsym(so_->handle(), "e1k_log"), nullptr);
}

TEST_F(E1000eTest, ProbeRejectsBadInput) {
  npa_plugin_dev* d = nullptr;
  EXPECT_EQ(c_->probe(nullptr, &dinfo(), &d), -EINVAL);
  EXPECT_EQ(c_->probe(svc(), nullptr, &d), -EINVAL);
  EXPECT_EQ(c_->probe(svc(), &dinfo(), nullptr), -EINVAL);
  npa_services short_svc = *svc();
  short_svc.struct_size = 8;
  EXPECT_EQ(c_->probe(&short_svc, &dinfo(), &d), -EINVAL);
  npa_services no_dma = *svc();
  no_dma.dma_alloc = nullptr;
  EXPECT_EQ(c_->probe(&no_dma, &dinfo(), &d), -EINVAL);
  npa_device_info other = dinfo();
  other.device = 0x100e;
  EXPECT_EQ(c_->probe(svc(), &other, &d), -ENODEV);
  fake_.kit.SetConfig<uint32_t>(0, 0x100e8086);  // config space disagrees with the claim
  EXPECT_EQ(c_->probe(svc(), &dinfo(), &d), -ENODEV);
  fake_.kit.SetConfig<uint32_t>(0, 0x10d38086);
  fake_.kit.SetBarMapLength(0, 0x1000);
  EXPECT_NE(c_->probe(svc(), &dinfo(), &d), 0);
  fake_.kit.SetBarMapLength(0, 0x20000);
  std::memset(fake_.kit.bar(0), 0xff, 0x20000);  // the function fell off the bus
  EXPECT_EQ(c_->probe(svc(), &dinfo(), &d), -ENODEV);
  EXPECT_EQ(d, nullptr);
}

TEST_F(E1000eTest, ProbeResetsEnablesMasterReadsMacAndLink) {
  ProbeOk();
  EXPECT_EQ(fake_.kit.Config<uint16_t>(4) & 0x6, 0x6);  // memory + bus master
  EXPECT_FALSE(fake_.R(CTRL) & (1u << 26));
  EXPECT_TRUE(fake_.R(CTRL) & (1u << 6));  // SLU
  npa_dev_caps caps{};
  caps.struct_size = sizeof(caps);
  ASSERT_EQ(c_->get_caps(dev_, &caps), 0);
  const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x4c, 0x04, 0x01};
  EXPECT_EQ(std::memcmp(caps.perm_mac, mac, 6), 0);
  EXPECT_EQ(caps.max_queue_pairs, 2);  // RxQ0/TxQ0 and RxQ1/TxQ1
  EXPECT_TRUE(caps.offloads & NPA_CAP_MULTIQUEUE);
  EXPECT_EQ(caps.min_ring_size % 8, 0);
  EXPECT_TRUE(caps.offloads & NPA_CAP_TX_CSUM);
  npa_link_status ls{};
  ls.struct_size = sizeof(ls);
  ASSERT_EQ(c_->link_status(dev_, &ls), 0);
  EXPECT_EQ(ls.up, 1u);
  EXPECT_EQ(ls.speed_mbps, 1000u);
  npa_dev_caps small{};
  small.struct_size = 4;
  EXPECT_EQ(c_->get_caps(dev_, &small), -EINVAL);
}

TEST_F(E1000eTest, ConfigureValidates) {
  ProbeOk();
  npa_dev_config cfg = Cfg();
  EXPECT_EQ(c_->configure(dev_, nullptr), -EINVAL);
  cfg.ring_size = 100;
  EXPECT_EQ(c_->configure(dev_, &cfg), -EINVAL);
  cfg.ring_size = 8192;
  EXPECT_EQ(c_->configure(dev_, &cfg), -EINVAL);
  cfg = Cfg();
  cfg.nb_queue_pairs = 3;
  EXPECT_EQ(c_->configure(dev_, &cfg), -EINVAL);
  cfg.nb_queue_pairs = 0;
  EXPECT_EQ(c_->configure(dev_, &cfg), -EINVAL);
  cfg = Cfg();
  cfg.mtu = 9000;
  EXPECT_EQ(c_->configure(dev_, &cfg), -EINVAL);
  cfg = Cfg();
  cfg.mac[0] = 0x01;  // multicast
  EXPECT_EQ(c_->configure(dev_, &cfg), -EINVAL);
  cfg = Cfg();
  cfg.offloads = NPA_CAP_TSO;
  EXPECT_EQ(c_->configure(dev_, &cfg), -ENOTSUP);
  cfg = Cfg();
  uint16_t vids[1] = {4096};
  cfg.vlan_filter = vids;
  cfg.vlan_filter_count = 1;
  EXPECT_EQ(c_->configure(dev_, &cfg), -EINVAL);
  EXPECT_EQ(c_->start(dev_), -EINVAL);  // never configured
  cfg = Cfg();
  EXPECT_EQ(c_->configure(dev_, &cfg), 0);
}

TEST_F(E1000eTest, StartRxTxStopReclaimsEverything) {
  ProbeOk();
  npa_dev_config cfg = Cfg(64);
  const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
  std::memcpy(cfg.mac, mac, 6);
  ASSERT_EQ(c_->configure(dev_, &cfg), 0);
  ASSERT_EQ(c_->start(dev_), 0);
  npa_plugin_queue* q = c_->queue(dev_, 0);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(c_->queue(dev_, 1), nullptr);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), 64u);
  EXPECT_EQ(fake_.R(RDT), 63u);
  EXPECT_EQ(fake_.R(RDLEN), 64u * 16);
  EXPECT_EQ(fake_.R(TDLEN), 64u * 16);
  uint32_t rctl = fake_.R(RCTL);
  EXPECT_TRUE(rctl & 0x2);           // EN
  EXPECT_TRUE(rctl & (1u << 15));    // BAM
  EXPECT_TRUE(rctl & (1u << 26));    // SECRC
  EXPECT_FALSE(rctl & (0x3u << 3));  // no UPE / MPE
  EXPECT_FALSE(rctl & (3u << 16));   // BSIZE 2048
  EXPECT_EQ(fake_.R(RAL0), 0x33221102u);
  EXPECT_EQ(fake_.R(RAH0), 0x5544u | (1u << 31));
  EXPECT_TRUE(fake_.R(TCTL) & 0x2);

  // RX: the "device" completes slots 0 and 1, and slot 2 with a CRC error.
  auto* rx = reinterpret_cast<RxDesc*>(static_cast<uintptr_t>(
      uint64_t{fake_.R(RDBAL)} | uint64_t{fake_.R(RDBAL + 4)} << 32));
  EXPECT_TRUE(fake_.R(RFCTL) & (1u << 15));   // EXSTEN: extended descriptors
  EXPECT_TRUE(fake_.R(RXCSUM) & (1u << 13));  // PCSD: the hash, not the packet checksum
  EXPECT_EQ(rx[0].status_error, 0u);          // read format: the quadword after addr is zero
  npa_buf* posted0 = reinterpret_cast<npa_buf*>(rx[0].addr - NPA_BUF_DATA_OFF);
  std::memset(reinterpret_cast<void*>(rx[0].addr), 0xab, 60);
  for (int i = 0; i < 3; i++) rx[i].addr = 0;  // write-back: MRQ 0 (not hashed), hash 0
  rx[0].length = 60;
  rx[1].length = 1514;
  rx[2].length = 64;
  rx[1].status_error = 0x01 | 0x02;         // DD | EOP, no checksum indication
  rx[0].status_error = 0x01 | 0x02 | 0x20;  // DD | EOP | TCPCS
  rx[2].status_error = 0x01 | 0x02 | (1u << 24);  // CE
  npa_buf* got[8];
  ASSERT_EQ(x_->rx_burst(q, got, 8), 2);
  EXPECT_EQ(got[0], posted0);
  EXPECT_EQ(got[0]->data_len, 60);
  EXPECT_EQ(got[0]->pkt_len, 60u);
  EXPECT_EQ(static_cast<uint8_t*>(npa_buf_data(got[0]))[59], 0xab);
  EXPECT_EQ(got[0]->ol_flags, NPA_BUF_OL_RX_CSUM_GOOD);
  EXPECT_EQ(got[1]->data_len, 1514);
  EXPECT_EQ(got[1]->ol_flags, 0u);
  EXPECT_EQ(fake_.R(RDT), 2u);  // slots 0..2 re-posted, one tail write
  EXPECT_EQ(rx[0].status_error, 0u);
  EXPECT_NE(rx[0].addr, 0u);
  EXPECT_NE(rx[0].addr, reinterpret_cast<uint64_t>(npa_buf_data(posted0)));
  fake_.kit.FreeBuffers(0, got, 2);

  // TX: plain, offloaded, and a broken buffer that must not be taken.
  npa_buf* tx[3];
  ASSERT_EQ(fake_.kit.AllocBuffers(0, tx, 3), 3);
  for (npa_buf* b : tx) {
    b->data_off = NPA_BUF_DATA_OFF;
    b->buf_len = NPA_BUF_SLOT_SIZE;
    b->data_len = 60;
    b->pkt_len = 60;
    b->nb_segs = 1;
    b->next = nullptr;
    b->ol_flags = 0;
  }
  tx[1]->ol_flags = NPA_BUF_OL_TX_CSUM;
  tx[1]->csum_start = 34;
  tx[1]->csum_offset = 6;
  tx[2]->data_len = 4000;  // beyond the slot
  tx[2]->pkt_len = 4000;
  uint32_t before = fake_.kit.buffers_outstanding();
  ASSERT_EQ(x_->tx_burst(q, tx, 3), 2);
  EXPECT_EQ(fake_.R(TDT), 3u);  // legacy + context + data
  auto* td = reinterpret_cast<TxDesc*>(static_cast<uintptr_t>(
      uint64_t{fake_.R(0x3800)} | uint64_t{fake_.R(0x3804)} << 32));
  EXPECT_EQ(td[0].addr, npa_buf_data_iova(tx[0]));
  EXPECT_EQ(td[0].lower & 0xffff, 60u);
  EXPECT_TRUE(td[0].lower & (1u << 24));  // EOP
  EXPECT_TRUE(td[0].lower & (1u << 27));  // RS
  EXPECT_FALSE(td[0].lower & (1u << 29)); // legacy
  EXPECT_EQ(td[1].lower & ((1u << 29) | (0xfu << 20)), 1u << 29);  // context
  EXPECT_EQ((td[1].addr >> 32) & 0xff, 34u);                       // TUCSS
  EXPECT_EQ((td[1].addr >> 40) & 0xff, 40u);                       // TUCSO
  EXPECT_EQ(td[2].lower & ((1u << 29) | (0xfu << 20)), (1u << 29) | (1u << 20));  // data
  EXPECT_TRUE(td[2].upper & (1u << 9));                                            // TXSM
  EXPECT_EQ(x_->tx_reap(q), 0);  // nothing done yet
  for (int i = 0; i < 3; i++) td[i].upper |= 1;  // DD
  EXPECT_EQ(x_->tx_reap(q), 2);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), before - 2);
  fake_.kit.FreeBuffers(0, &tx[2], 1);

  fake_.R(MPC) = 5;
  npa_plugin_qstats st{};
  st.struct_size = sizeof(st);
  ASSERT_EQ(c_->queue_stats(dev_, 0, &st), 0);
  EXPECT_EQ(st.rx_packets, 2u);
  EXPECT_EQ(st.rx_bytes, 60u + 1514u);
  EXPECT_EQ(st.tx_packets, 2u);
  EXPECT_EQ(st.rx_dropped, 5u + 1u);  // MPC + the CRC-error frame
  fake_.R(MPC) = 0;                   // clear-on-read
  ASSERT_EQ(c_->queue_stats(dev_, 0, &st), 0);
  EXPECT_EQ(st.rx_dropped, 6u);
  EXPECT_EQ(c_->queue_stats(dev_, 1, &st), -EINVAL);

  // In flight when stopped: one more TX frame the device never completes.
  npa_buf* late;
  ASSERT_EQ(fake_.kit.AllocBuffers(0, &late, 1), 1);
  late->data_off = NPA_BUF_DATA_OFF;
  late->data_len = late->pkt_len = 60;
  late->nb_segs = 1;
  late->next = nullptr;
  late->ol_flags = 0;
  ASSERT_EQ(x_->tx_burst(q, &late, 1), 1);
  ASSERT_EQ(c_->stop(dev_), 0);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), 0u);  // every buffer came back
  EXPECT_FALSE(fake_.R(RCTL) & 0x2);
  EXPECT_FALSE(fake_.R(TCTL) & 0x2);
  EXPECT_EQ(c_->queue(dev_, 0), nullptr);
  EXPECT_EQ(x_->rx_burst(q, got, 8), 0);  // stopped queue: nothing, no crash
  ASSERT_EQ(c_->queue_stats(dev_, 0, &st), 0);
  EXPECT_EQ(st.tx_packets, 3u);  // monotonic across stop
}

// QEMU's e1000e maps each TX descriptor's buffer in one piece and drops the
// frame when that range crosses onto a discontiguous page behind a vIOMMU:
// the plug-in splits data at 4 KiB IOVA boundaries, EOP and the buffer
// reference only on the last piece.
// rss_set: the key into RSSRK in byte order (key byte 4n is RSSRK[n]'s
// low byte: the register file is what the device hashes with), 128 RETA
// entries on queue 0, MRQC with the types the 82574 has; the burst path
// then reports the hash of a frame the device hashed (MRQ type != 0).
TEST_F(E1000eTest, RssSetProgramsKeyTableAndTypes) {
  // Microsoft's verification key (common/rss.h kDefaultRssKey).
  const uint8_t key[NPA_RSS_CONF_KEY_LEN] = {
      0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
      0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
      0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
  uint16_t table[4] = {0, 0, 0, 0};
  npa_rss_conf rc{};
  rc.struct_size = sizeof(rc);
  rc.hash_types = (1u << 6) - 1;  // every type
  rc.key_len = NPA_RSS_CONF_KEY_LEN;
  rc.table_len = 4;
  rc.nb_queue_pairs = 1;
  rc.key = key;
  rc.table = table;
  ASSERT_NE(c_->rss_set, nullptr);
  EXPECT_TRUE(info_->capabilities & NPA_CAP_RSS);
  ProbeOk();
  EXPECT_EQ(c_->rss_set(dev_, &rc), -EINVAL) << "not configured";
  npa_dev_config cfg = Cfg(64);
  ASSERT_EQ(c_->configure(dev_, &cfg), 0);
  fake_.R(RETA0 + 4) = 0xdeadbeef;  // must be rewritten
  ASSERT_EQ(c_->rss_set(dev_, &rc), 0);
  EXPECT_EQ(fake_.R(RSSRK0), 0xda565a6du);
  EXPECT_EQ(fake_.R(RSSRK0 + 4), 0xc20e5b25u);
  EXPECT_EQ(fake_.R(RSSRK0 + 36), 0xfa01acbeu);
  for (uint32_t n = 0; n < 32; n++) EXPECT_EQ(fake_.R(RETA0 + 4 * n), 0u) << n;
  // RSS on (01), TcpIPv4 16, IPv4 17, TcpIPv6Ex 18, IPv6 20.
  EXPECT_EQ(fake_.R(MRQC), 0x1u | (1u << 16) | (1u << 17) | (1u << 18) | (1u << 20));
  // Malformed: an entry beyond the one queue, a table length not a power
  // of two, a key of another length, two queue pairs on a device
  // configured with one. Nothing changes.
  table[2] = 1;
  EXPECT_EQ(c_->rss_set(dev_, &rc), -EINVAL);
  table[2] = 0;
  rc.table_len = 3;
  EXPECT_EQ(c_->rss_set(dev_, &rc), -EINVAL);
  rc.table_len = 4;
  rc.key_len = 16;
  EXPECT_EQ(c_->rss_set(dev_, &rc), -EINVAL);
  rc.key_len = NPA_RSS_CONF_KEY_LEN;
  rc.nb_queue_pairs = 2;
  EXPECT_EQ(c_->rss_set(dev_, &rc), -EINVAL);
  rc.nb_queue_pairs = 1;
  EXPECT_EQ(fake_.R(RSSRK0), 0xda565a6du);

  ASSERT_EQ(c_->start(dev_), 0);
  // While started (the queue may be bursting): only TCP/IPv4 now.
  rc.hash_types = NPA_RSS_CONF_HASH_TCPV4;
  ASSERT_EQ(c_->rss_set(dev_, &rc), 0);
  EXPECT_EQ(fake_.R(MRQC), 0x1u | (1u << 16));
  npa_plugin_queue* q = c_->queue(dev_, 0);
  ASSERT_NE(q, nullptr);
  auto* rx = reinterpret_cast<RxDesc*>(static_cast<uintptr_t>(
      uint64_t{fake_.R(RDBAL)} | uint64_t{fake_.R(RDBAL + 4)} << 32));
  rx[0].addr = 1u | uint64_t{0x12345678} << 32;  // MRQ type 1 (TCP/IPv4), the hash
  rx[0].length = 60;
  rx[1].addr = 0;  // not hashed
  rx[1].length = 60;
  rx[1].status_error = 0x01 | 0x02;
  rx[0].status_error = 0x01 | 0x02;
  npa_buf* got[4];
  ASSERT_EQ(x_->rx_burst(q, got, 4), 2);
  EXPECT_EQ(got[0]->ol_flags, NPA_BUF_OL_RX_RSS_HASH);
  EXPECT_EQ(got[0]->rss_hash, 0x12345678u);
  EXPECT_EQ(got[1]->ol_flags, 0u);
  fake_.kit.FreeBuffers(0, got, 2);
  ASSERT_EQ(c_->stop(dev_), 0);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), 0u);
}

TEST_F(E1000eTest, TxSplitsAtPageBoundaries) {
  ProbeOk();
  npa_dev_config cfg = Cfg(64);
  ASSERT_EQ(c_->configure(dev_, &cfg), 0);
  ASSERT_EQ(c_->start(dev_), 0);
  npa_plugin_queue* q = c_->queue(dev_, 0);
  auto* td = reinterpret_cast<TxDesc*>(static_cast<uintptr_t>(
      uint64_t{fake_.R(0x3800)} | uint64_t{fake_.R(0x3804)} << 32));
  // Two frames in one page-aligned area: the first ends exactly at a page
  // boundary (one descriptor), the second starts 200 bytes before the next
  // boundary (two descriptors, 200 + 1314 bytes).
  void* area = aligned_alloc(4096, 3 * 4096);
  ASSERT_NE(area, nullptr);
  auto* base = static_cast<uint8_t*>(area);
  // Headers stay 8-byte aligned (npa_buf's ABI alignment); data_off places
  // a's frame so it ends exactly at the page boundary.
  auto* a = reinterpret_cast<npa_buf*>(base + 4096 - 2048);
  auto* b = reinterpret_cast<npa_buf*>(base + 2 * 4096 - NPA_BUF_DATA_OFF - 200);
  for (npa_buf* x : {a, b}) {
    std::memset(x, 0, sizeof(*x));
    x->iova = reinterpret_cast<uint64_t>(x);
    x->data_off = x == a ? static_cast<uint16_t>(2048 - 1514) : NPA_BUF_DATA_OFF;
    x->buf_len = NPA_BUF_SLOT_SIZE;
    x->data_len = 1514;
    x->pkt_len = 1514;
    x->nb_segs = 1;
  }
  npa_buf* tx[2] = {a, b};
  ASSERT_EQ(x_->tx_burst(q, tx, 2), 2);
  EXPECT_EQ(fake_.R(TDT), 3u);
  EXPECT_EQ(td[0].addr, npa_buf_data_iova(a));
  EXPECT_EQ(td[0].lower & 0xffff, 1514u);
  EXPECT_TRUE(td[0].lower & (1u << 24));  // EOP
  EXPECT_EQ(td[1].addr, npa_buf_data_iova(b));
  EXPECT_EQ(td[1].lower & 0xffff, 200u);
  EXPECT_FALSE(td[1].lower & (1u << 24));  // not the end of the frame
  EXPECT_TRUE(td[1].lower & (1u << 27));   // RS on every piece
  EXPECT_EQ(td[2].addr, npa_buf_data_iova(b) + 200);
  EXPECT_EQ(td[2].addr % 4096, 0u);
  EXPECT_EQ(td[2].lower & 0xffff, 1314u);
  EXPECT_TRUE(td[2].lower & (1u << 24));
  // The frame comes back once, when its last piece is done. Not pool slots:
  // the kit keeps them apart, in the order they were freed.
  ASSERT_EQ(fake_.kit.foreign_frees().size(), 0u);
  td[0].upper |= 1;
  td[1].upper |= 1;
  EXPECT_EQ(x_->tx_reap(q), 1);
  td[2].upper |= 1;
  EXPECT_EQ(x_->tx_reap(q), 1);
  const std::vector<npa_buf*> back = fake_.kit.foreign_frees();
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0], a);
  EXPECT_EQ(back[1], b);
  npa_plugin_qstats st{};
  st.struct_size = sizeof(st);
  ASSERT_EQ(c_->queue_stats(dev_, 0, &st), 0);
  EXPECT_EQ(st.tx_packets, 2u);  // frames, not descriptors
  ASSERT_EQ(c_->stop(dev_), 0);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), 0u);
  free(area);
}

TEST_F(E1000eTest, RxInterruptRouting) {
  ProbeOk();
  npa_dev_config cfg = Cfg(64);
  cfg.offloads |= NPA_CAP_RX_INTR;
  cfg.rx_intr = 1;
  for (uint32_t v = 0; v < 5; v++) fake_.R(0xE8 + 4 * v) = 0x1234;  // a previous owner's EITR
  ASSERT_EQ(c_->configure(dev_, &cfg), 0);
  ASSERT_EQ(fake_.kit.irq_vectors(), 3u);
  for (uint32_t v = 0; v < 5; v++) EXPECT_EQ(fake_.R(0xE8 + 4 * v), 0u) << "EITR" << v;
  ASSERT_EQ(c_->start(dev_), 0);
  npa_plugin_queue* q = c_->queue(dev_, 0);
  // RxQ0 -> 0, RxQ1 -> 1 (routed whether or not it runs), Other -> 2.
  EXPECT_EQ(fake_.R(IVAR), (0x8u << 0) | (0x9u << 4) | (0xAu << 16));
  EXPECT_EQ(x_->get_irq_vector(q), 0);
  ASSERT_EQ(x_->rx_intr_enable(q, 1), 0);
  EXPECT_TRUE(fake_.R(IMS) & (1u << 20));
  ASSERT_EQ(x_->rx_intr_enable(q, 0), 0);
  EXPECT_EQ(fake_.R(IMC), 1u << 20);
  EXPECT_EQ(c_->irq_handler(dev_, 1), 0);  // a queue vector: nothing to do
  EXPECT_EQ(c_->irq_handler(dev_, 2), 0);  // Other
  EXPECT_EQ(fake_.R(IMS) & (1u << 24), 1u << 24) << "Other re-enabled";
  EXPECT_EQ(c_->irq_handler(dev_, 7), -EINVAL);
  ASSERT_EQ(c_->stop(dev_), 0);
  // Teardown: everything masked, then a settle sleep past QEMU's 128 us
  // throttling window, then MSI-X off.
  c_->remove(dev_);
  dev_ = nullptr;
  EXPECT_EQ(fake_.imc_at_irq_off, 0xffffffffu);
  EXPECT_GE(fake_.irq_off_after_sleep_us, 500);
}

// Two queue pairs: each has its own rings (queue 1's registers 0x100 above
// queue 0's), its own tails, its own RX cause and vector; RSS's table puts
// entries on queue 1 with bit 7; stop hands back every buffer of both; and
// a one-queue configuration afterwards turns RSS off, so no frame is sent
// to a queue without a ring.
TEST_F(E1000eTest, TwoQueuePairsRunApartAndRssSpreadsThem) {
  constexpr uint32_t kQ1 = 0x100;
  ProbeOk();
  npa_dev_config cfg = Cfg(64);
  cfg.nb_queue_pairs = 2;
  cfg.offloads |= NPA_CAP_RX_INTR | NPA_CAP_MULTIQUEUE;
  cfg.rx_intr = 1;
  ASSERT_EQ(c_->configure(dev_, &cfg), 0);
  const uint8_t key[NPA_RSS_CONF_KEY_LEN] = {1, 2, 3};
  uint16_t table[8] = {0, 1, 0, 1, 1, 1, 0, 0};
  npa_rss_conf rc{};
  rc.struct_size = sizeof(rc);
  rc.hash_types = NPA_RSS_CONF_HASH_IPV4;
  rc.key_len = NPA_RSS_CONF_KEY_LEN;
  rc.table_len = 8;
  rc.nb_queue_pairs = 2;
  rc.key = key;
  rc.table = table;
  ASSERT_EQ(c_->rss_set(dev_, &rc), 0);
  // Entry 4n in RETA[n]'s low byte; the table of 8 repeats over 128.
  EXPECT_EQ(fake_.R(RETA0), 0x80008000u);
  EXPECT_EQ(fake_.R(RETA0 + 4), 0x00008080u);
  EXPECT_EQ(fake_.R(RETA0 + 8), 0x80008000u);
  table[3] = 2;
  EXPECT_EQ(c_->rss_set(dev_, &rc), -EINVAL) << "a queue beyond the two";
  table[3] = 1;
  // The 82574 hashes UDP over the addresses, not the ports: over two queues
  // a frame would land elsewhere than the shell's hash says (plugin.h).
  rc.hash_types = NPA_RSS_CONF_HASH_IPV4 | NPA_RSS_CONF_HASH_UDPV4;
  EXPECT_EQ(c_->rss_set(dev_, &rc), -ENOTSUP);
  EXPECT_EQ(fake_.R(RETA0), 0x80008000u) << "nothing changed";
  rc.hash_types = NPA_RSS_CONF_HASH_IPV4;
  ASSERT_EQ(c_->start(dev_), 0);
  npa_plugin_queue* q0 = c_->queue(dev_, 0);
  npa_plugin_queue* q1 = c_->queue(dev_, 1);
  ASSERT_NE(q0, nullptr);
  ASSERT_NE(q1, nullptr);
  EXPECT_NE(q0, q1);
  EXPECT_EQ(c_->queue(dev_, 2), nullptr);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), 128u);
  EXPECT_EQ(fake_.R(RDT), 63u);
  EXPECT_EQ(fake_.R(RDT + kQ1), 63u);
  EXPECT_EQ(fake_.R(RDLEN + kQ1), 64u * 16);
  EXPECT_EQ(fake_.R(TDLEN + kQ1), 64u * 16);
  EXPECT_NE(fake_.R(RDBAL + kQ1), fake_.R(RDBAL));
  EXPECT_TRUE(fake_.R(0x3840 + kQ1) & (1u << 10)) << "TARC1 enabled";
  EXPECT_EQ(x_->get_irq_vector(q0), 0);
  EXPECT_EQ(x_->get_irq_vector(q1), 1);

  // RX on queue 1 only: the frame comes up there, RDT1 moves, RDT0 not.
  auto* rx1 = reinterpret_cast<RxDesc*>(static_cast<uintptr_t>(
      uint64_t{fake_.R(RDBAL + kQ1)} | uint64_t{fake_.R(RDBAL + kQ1 + 4)} << 32));
  npa_buf* posted = reinterpret_cast<npa_buf*>(rx1[0].addr - NPA_BUF_DATA_OFF);
  rx1[0].addr = 2u | uint64_t{0xcafe0001} << 32;  // MRQ type 2 (IPv4), the hash
  rx1[0].length = 60;
  rx1[0].status_error = 0x01 | 0x02;
  npa_buf* got[4];
  EXPECT_EQ(x_->rx_burst(q0, got, 4), 0);
  ASSERT_EQ(x_->rx_burst(q1, got, 4), 1);
  EXPECT_EQ(got[0], posted);
  EXPECT_EQ(got[0]->rss_hash, 0xcafe0001u);
  EXPECT_EQ(fake_.R(RDT + kQ1), 0u);
  EXPECT_EQ(fake_.R(RDT), 63u);
  fake_.kit.FreeBuffers(1, got, 1);
  // Queue 1's interrupt: its own cause (RxQ1, bit 21).
  ASSERT_EQ(x_->rx_intr_enable(q1, 1), 0);
  EXPECT_TRUE(fake_.R(IMS) & (1u << 21));
  ASSERT_EQ(x_->rx_intr_enable(q1, 0), 0);
  EXPECT_EQ(fake_.R(IMC), 1u << 21);

  // TX on queue 1: its tail (TDT1), its ring.
  npa_buf* tx = fake_.kit.AllocFrame(1, 60, 0x5a);
  ASSERT_NE(tx, nullptr);
  ASSERT_EQ(x_->tx_burst(q1, &tx, 1), 1);
  EXPECT_EQ(fake_.R(TDT + kQ1), 1u);
  EXPECT_EQ(fake_.R(TDT), 0u);
  npa_plugin_qstats st{};
  st.struct_size = sizeof(st);
  ASSERT_EQ(c_->queue_stats(dev_, 1, &st), 0);
  EXPECT_EQ(st.rx_packets, 1u);
  EXPECT_EQ(st.tx_packets, 1u);
  ASSERT_EQ(c_->queue_stats(dev_, 0, &st), 0);
  EXPECT_EQ(st.rx_packets, 0u);
  EXPECT_EQ(c_->queue_stats(dev_, 2, &st), -EINVAL);

  // Stop: both queues' buffers back, the frame in flight on queue 1 too.
  ASSERT_EQ(c_->stop(dev_), 0);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), 0u);
  EXPECT_EQ(fake_.R(RDLEN + kQ1), 0u);
  EXPECT_EQ(fake_.R(TDLEN + kQ1), 0u);

  // One queue pair again: RSS is off until rss_set, which now refuses
  // queue 1.
  cfg.nb_queue_pairs = 1;
  ASSERT_EQ(c_->configure(dev_, &cfg), 0);
  EXPECT_EQ(fake_.R(MRQC), 0u);
  EXPECT_EQ(c_->rss_set(dev_, &rc), -EINVAL);
  rc.nb_queue_pairs = 1;
  EXPECT_EQ(c_->rss_set(dev_, &rc), -EINVAL) << "entries on queue 1";
  ASSERT_EQ(c_->start(dev_), 0);
  EXPECT_EQ(c_->queue(dev_, 1), nullptr);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), 64u);
  ASSERT_EQ(c_->stop(dev_), 0);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), 0u);
}

TEST_F(E1000eTest, HostileCallsFailCleanly) {
  ProbeOk();
  npa_buf* b[4] = {};
  EXPECT_EQ(x_->rx_burst(nullptr, b, 4), 0);
  EXPECT_EQ(x_->tx_burst(nullptr, b, 4), 0);
  EXPECT_EQ(x_->tx_reap(nullptr), 0);
  EXPECT_EQ(x_->rx_intr_enable(nullptr, 1), -EINVAL);
  EXPECT_EQ(c_->irq_handler(dev_, 0), -EINVAL);  // no MSI-X wired
  const uint8_t mcast[6] = {0x01, 0, 0x5e, 0, 0, 1};
  EXPECT_EQ(c_->set_mac(dev_, mcast), -EINVAL);
  EXPECT_EQ(c_->set_mac(dev_, nullptr), -EINVAL);
  EXPECT_EQ(c_->vlan_filter(dev_, 4096, 1), -EINVAL);
  EXPECT_EQ(c_->vlan_filter(dev_, 100, 1), 0);
  EXPECT_EQ(c_->set_mtu(dev_, 9000), -EINVAL);
  EXPECT_EQ(c_->link_status(dev_, nullptr), -EINVAL);
  EXPECT_EQ(c_->quiesce(dev_, 10), -EINVAL);  // not started
  EXPECT_EQ(c_->reset(dev_), 0);
  npa_dev_config cfg = Cfg(64);
  ASSERT_EQ(c_->configure(dev_, &cfg), 0);
  ASSERT_EQ(c_->start(dev_), 0);
  npa_plugin_queue* q = c_->queue(dev_, 0);
  EXPECT_EQ(x_->tx_burst(q, nullptr, 4), 0);
  npa_buf* null_bufs[2] = {nullptr, nullptr};
  EXPECT_EQ(x_->tx_burst(q, null_bufs, 2), 0);
  EXPECT_EQ(c_->start(dev_), -EBUSY);
  EXPECT_EQ(c_->configure(dev_, &cfg), -EBUSY);
  EXPECT_EQ(c_->reset(dev_), -EBUSY);
  EXPECT_EQ(c_->quiesce(dev_, 1000), 0);
  ASSERT_EQ(c_->stop(dev_), 0);
  EXPECT_EQ(fake_.kit.buffers_outstanding(), 0u);
}

}  // namespace
