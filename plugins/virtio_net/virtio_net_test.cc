// virtio_net_test.cc — the virtio_net plug-in against an in-memory fake
// device on the shipped fake services table (npa/testing/plugin_testkit.h):
// PCI config space with the VIRTIO 1.x capability list and a BAR in ordinary
// memory (common config, ISR, device config, notify). The test plays the
// device for the data path by reading the avail ring and writing the used
// ring itself (IOVA == virtual address here). Only the plug-in ABI is used.
#include <errno.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "npa/plugin.h"
#include "npa/testing/plugin_testkit.h"

extern "C" const npa_plugin_ctrl_ops vnet_ctrl_ops;
extern "C" const npa_plugin_fast_ops vnet_fast_ops;

namespace {

constexpr uint32_t kBarSize = 0x4000;
constexpr uint32_t kCommon = 0x0, kIsr = 0x1000, kDevCfg = 0x2000, kNotify = 0x3000;
constexpr uint16_t kQueueSize = 256;

using Kit = npa::testkit::FakeServices;

Kit::Options KitOptions() {
  Kit::Options o;
  o.buffers = 1024;
  return o;
}

// The device behind the shipped fake services table: its config space (the
// VIRTIO capability list) and BAR0 (common config, ISR, device config,
// notify) are the kit's memory.
struct Fake {
  Kit kit{KitOptions()};
  int irq_fail = 0;

  void put8(uint32_t o, uint8_t v) { kit.SetConfig<uint8_t>(o, v); }
  void put32(uint32_t o, uint32_t v) { kit.SetConfig<uint32_t>(o, v); }
  void cap(uint8_t at, uint8_t next, uint8_t len, uint8_t type, uint32_t off, uint32_t length) {
    put8(at, 0x09);
    put8(at + 1, next);
    put8(at + 2, len);
    put8(at + 3, type);
    put8(at + 4, 0);
    put32(at + 8, off);
    put32(at + 12, length);
  }
  template <typename T>
  T& reg(uint32_t off) { return kit.Reg<T>(0, off); }
  // device_feature reads the same 32 bits for either select (plain memory):
  // bit 0/1 = CSUM/GUEST_CSUM in the low word, VERSION_1/ACCESS_PLATFORM in
  // the high word.
  void set_features(uint32_t both) { reg<uint32_t>(kCommon + 4) = both; }

  Fake() {
    kit.SetIdentity(0x1af4, 0x1041);
    kit.device_info().msix_vectors = 4;
    std::snprintf(kit.device_info().pci_address, sizeof(kit.device_info().pci_address),
                  "0000:00:03.0");
    kit.AddBar(0, kBarSize);
    put8(0x06, 0x10);
    put8(0x34, 0x40);
    cap(0x40, 0x50, 16, 1, kCommon, 0x100);
    cap(0x50, 0x64, 20, 2, kNotify, 0x1000);
    put32(0x50 + 16, 4);
    cap(0x64, 0x74, 16, 3, kIsr, 4);
    cap(0x74, 0, 16, 4, kDevCfg, 0x100);
    set_features(0x3u | (1u << 5) | (1u << 15) | (1u << 16));
    reg<uint16_t>(kCommon + 18) = 2;           // num_queues
    reg<uint16_t>(kCommon + 24) = kQueueSize;  // queue_size (every queue)
    const uint8_t mac[6] = {0x52, 0x54, 0, 0x4c, 0, 0x01};
    std::memcpy(kit.bar(0) + kDevCfg, mac, 6);
    reg<uint16_t>(kDevCfg + 6) = 1;  // link up
    kit.on_irq_setup = [this](uint32_t nvec) { return nvec && irq_fail ? -EIO : 0; };
  }
  npa_device_info info() { return kit.device_info(); }
  bool logged(const char* needle) const { return kit.Logged(needle); }
};

npa_dev_config Cfg(uint16_t ring = 64) {
  npa_dev_config c{};
  c.struct_size = sizeof(c);
  c.nb_queue_pairs = 1;
  c.ring_size = ring;
  c.mtu = 1500;
  return c;
}

// The ring memory the plug-in laid out (vring.c: desc, avail, used at 64).
struct Ring {
  uint8_t* base;
  uint16_t size;
  struct Desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
  Desc* desc() { return reinterpret_cast<Desc*>(base); }
  uint16_t* avail() { return reinterpret_cast<uint16_t*>(base + 16 * size); }
  uint8_t* used() { return base + (((16u * size + 4 + 2u * size + 2) + 63) & ~63u); }
  uint16_t avail_idx() { return avail()[1]; }
  uint16_t avail_ring(uint16_t i) { return avail()[2 + (i & (size - 1))]; }
  uint16_t& used_idx() { return *reinterpret_cast<uint16_t*>(used() + 2); }
  void push_used(uint32_t id, uint32_t len) {
    uint32_t* e = reinterpret_cast<uint32_t*>(used() + 4 + 8 * (used_idx() & (size - 1)));
    e[0] = id;
    e[1] = len;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    used_idx()++;
  }
};

class VirtioNetTest : public ::testing::Test {
 protected:
  Fake f;
  npa_plugin_dev* dev = nullptr;
  void TearDown() override {
    if (dev) vnet_ctrl_ops.remove(dev);
    EXPECT_EQ(f.kit.buffers_outstanding(), 0u) << "buffers not handed back";
    EXPECT_EQ(f.kit.dma_outstanding(), 0u) << "DMA memory leaked";
    EXPECT_EQ(f.kit.bad_dma_frees(), 0u) << "dma_free of unknown handle";
  }
  int Probe() {
    npa_device_info i = f.info();
    return vnet_ctrl_ops.probe(f.kit.services(), &i, &dev);
  }
  Ring RxRing(uint16_t size) { return Ring{static_cast<uint8_t*>(f.kit.dma_blocks()[0].vaddr), size}; }
  Ring TxRing(uint16_t size) { return Ring{static_cast<uint8_t*>(f.kit.dma_blocks()[1].vaddr), size}; }
};

TEST_F(VirtioNetTest, ProbeNegotiatesAndReadsConfig) {
  ASSERT_EQ(Probe(), 0);
  npa_dev_caps c{};
  c.struct_size = sizeof(c);
  ASSERT_EQ(vnet_ctrl_ops.get_caps(dev, &c), 0);
  EXPECT_EQ(c.max_queue_pairs, 1);
  EXPECT_EQ(c.max_ring_size, kQueueSize);
  EXPECT_EQ(c.offloads & (NPA_CAP_TX_CSUM | NPA_CAP_RX_CSUM),
            NPA_CAP_TX_CSUM | NPA_CAP_RX_CSUM);
  EXPECT_EQ(c.offloads & NPA_CAP_TSO, 0u);
  EXPECT_EQ(c.perm_mac[5], 0x01);
  // Driver features written: VERSION_1 and ACCESS_PLATFORM in the high word.
  EXPECT_EQ(f.reg<uint32_t>(kCommon + 12) & 0x3u, 0x3u);
  EXPECT_EQ(f.reg<uint8_t>(kCommon + 20), 1 | 2 | 8);  // ACK|DRIVER|FEATURES_OK
  npa_link_status l{};
  l.struct_size = sizeof(l);
  ASSERT_EQ(vnet_ctrl_ops.link_status(dev, &l), 0);
  EXPECT_EQ(l.up, 1u);
  f.reg<uint16_t>(kDevCfg + 6) = 0;
  ASSERT_EQ(vnet_ctrl_ops.link_status(dev, &l), 0);
  EXPECT_EQ(l.up, 0u);
}

TEST_F(VirtioNetTest, WrongIdIsNotOurs) {
  npa_device_info i = f.info();
  i.device = 0x1000;
  EXPECT_EQ(vnet_ctrl_ops.probe(f.kit.services(), &i, &dev), -ENODEV);
  EXPECT_EQ(dev, nullptr);
}

TEST_F(VirtioNetTest, RequiresAccessPlatform) {
  f.set_features(0x1u | (1u << 5));  // VERSION_1 only (bit 33 clear)
  EXPECT_EQ(Probe(), -ENODEV);
  EXPECT_TRUE(f.logged("VIRTIO_F_ACCESS_PLATFORM"));
}

TEST_F(VirtioNetTest, RejectsBadQueueSize) {
  f.reg<uint16_t>(kCommon + 24) = 0;
  EXPECT_EQ(Probe(), -EIO);
  f.reg<uint16_t>(kCommon + 24) = 100;
  EXPECT_EQ(Probe(), -EIO);
  EXPECT_TRUE(f.logged("queue_size 100"));
}

TEST_F(VirtioNetTest, RejectsCapabilityOutsideBar) {
  f.put32(0x40 + 8, kBarSize - 0x10);  // common cfg runs past the BAR
  EXPECT_EQ(Probe(), -EIO);
  EXPECT_TRUE(f.logged("outside BAR"));
}

TEST_F(VirtioNetTest, RejectsCapabilityLoopAndMissingCaps) {
  f.put8(0x74 + 1, 0x40);  // last cap points back to the first
  EXPECT_EQ(Probe(), -EIO);
  f.put8(0x74 + 1, 0);
  f.put8(0x64 + 1, 0);  // drop the device-config capability
  EXPECT_EQ(Probe(), -EIO);
  EXPECT_TRUE(f.logged("device-cfg"));
}

TEST_F(VirtioNetTest, RejectsBadNotifyOffset) {
  ASSERT_EQ(Probe(), 0);
  f.reg<uint16_t>(kCommon + 30) = 0x800;  // 0x800 * 4 > the 4 KiB region
  npa_dev_config c = Cfg();
  EXPECT_EQ(vnet_ctrl_ops.configure(dev, &c), -EIO);
  EXPECT_EQ(f.kit.dma_outstanding(), 0u);
}

TEST_F(VirtioNetTest, ConfigureValidatesArguments) {
  ASSERT_EQ(Probe(), 0);
  npa_dev_config c = Cfg(100);
  EXPECT_EQ(vnet_ctrl_ops.configure(dev, &c), -EINVAL);
  c = Cfg(512);
  EXPECT_EQ(vnet_ctrl_ops.configure(dev, &c), -EINVAL);
  c = Cfg();
  c.nb_queue_pairs = 2;
  EXPECT_EQ(vnet_ctrl_ops.configure(dev, &c), -EINVAL);
  c = Cfg();
  c.offloads = NPA_CAP_TSO;
  EXPECT_EQ(vnet_ctrl_ops.configure(dev, &c), -ENOTSUP);
  c = Cfg();
  c.struct_size = 8;
  EXPECT_EQ(vnet_ctrl_ops.configure(dev, &c), -EINVAL);
  EXPECT_EQ(vnet_ctrl_ops.start(dev), -EINVAL);  // not configured
}

TEST_F(VirtioNetTest, DmaFailureAtEveryStepLeaksNothing) {
  ASSERT_EQ(Probe(), 0);
  for (int n = 0; n < 2; n++) {
    f.kit.FailDmaAllocAt(static_cast<int64_t>(f.kit.dma_alloc_calls()) + n);
    npa_dev_config c = Cfg();
    EXPECT_EQ(vnet_ctrl_ops.configure(dev, &c), -ENOMEM) << "failing call " << n;
    EXPECT_EQ(f.kit.dma_outstanding(), 0u);
  }
  f.kit.FailDmaAllocAt(-1);
  npa_dev_config c = Cfg();
  EXPECT_EQ(vnet_ctrl_ops.configure(dev, &c), 0);
}

TEST_F(VirtioNetTest, IrqSetupFailureIsAnError) {
  ASSERT_EQ(Probe(), 0);
  f.irq_fail = 1;
  npa_dev_config c = Cfg();
  c.rx_intr = 1;
  EXPECT_EQ(vnet_ctrl_ops.configure(dev, &c), -EIO);
  EXPECT_EQ(f.kit.dma_outstanding(), 0u);
  f.irq_fail = 0;
  // With vectors: 0 = config, 1 = rxq0, 2 = txq0 (4 available).
  ASSERT_EQ(vnet_ctrl_ops.configure(dev, &c), 0);
  ASSERT_EQ(vnet_ctrl_ops.start(dev), 0);
  npa_plugin_queue* q = vnet_ctrl_ops.queue(dev, 0);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(vnet_fast_ops.get_irq_vector(q), 1);
  EXPECT_EQ(vnet_fast_ops.rx_intr_enable(q, 1), 0);
  EXPECT_EQ(RxRing(64).avail()[0], 0);  // NO_INTERRUPT cleared
  EXPECT_EQ(vnet_fast_ops.rx_intr_enable(q, 0), 0);
  EXPECT_EQ(RxRing(64).avail()[0], 1);
  EXPECT_EQ(vnet_ctrl_ops.stop(dev), 0);
}

TEST_F(VirtioNetTest, StartFillsRxAndStopReturnsEverything) {
  ASSERT_EQ(Probe(), 0);
  for (int round = 0; round < 3; round++) {
    npa_dev_config c = Cfg();
    ASSERT_EQ(vnet_ctrl_ops.configure(dev, &c), 0);
    ASSERT_EQ(vnet_ctrl_ops.start(dev), 0);
    EXPECT_EQ(f.kit.buffers_outstanding(), 64u);
    EXPECT_EQ(RxRing(64).avail_idx(), 64);
    EXPECT_EQ(f.reg<uint8_t>(kCommon + 20) & 4, 4);  // DRIVER_OK
    npa_plugin_queue* q = vnet_ctrl_ops.queue(dev, 0);
    ASSERT_NE(q, nullptr);
    npa_buf* b[8];
    ASSERT_EQ(f.kit.AllocBuffers(0, b, 8), 8);
    for (auto* x : b) x->data_len = x->pkt_len = 60;
    EXPECT_EQ(vnet_fast_ops.tx_burst(q, b, 8), 8);
    EXPECT_EQ(vnet_ctrl_ops.quiesce(dev, 100), -EAGAIN);  // fake device is slow
    ASSERT_EQ(vnet_ctrl_ops.stop(dev), 0);
    EXPECT_EQ(f.kit.buffers_outstanding(), 0u);
    EXPECT_EQ(f.reg<uint8_t>(kCommon + 20), 0);  // reset
  }
}

TEST_F(VirtioNetTest, ShortBufAllocDegrades) {
  ASSERT_EQ(Probe(), 0);
  f.kit.SetBufAllocLimit(5);
  npa_dev_config c = Cfg();
  ASSERT_EQ(vnet_ctrl_ops.configure(dev, &c), 0);
  ASSERT_EQ(vnet_ctrl_ops.start(dev), 0);
  EXPECT_GT(f.kit.buffers_outstanding(), 0u);
  EXPECT_LE(f.kit.buffers_outstanding(), 64u);
  ASSERT_EQ(vnet_ctrl_ops.stop(dev), 0);
}

TEST_F(VirtioNetTest, TxCompletesAndRxDelivers) {
  ASSERT_EQ(Probe(), 0);
  npa_dev_config c = Cfg();
  c.offloads = NPA_CAP_TX_CSUM;
  ASSERT_EQ(vnet_ctrl_ops.configure(dev, &c), 0);
  ASSERT_EQ(vnet_ctrl_ops.start(dev), 0);
  npa_plugin_queue* q = vnet_ctrl_ops.queue(dev, 0);
  Ring tx = TxRing(64), rx = RxRing(64);

  npa_buf* b[2];
  ASSERT_EQ(f.kit.AllocBuffers(0, b, 2), 2);
  for (int i = 0; i < 2; i++) {
    b[i]->data_len = b[i]->pkt_len = 64;
    std::memset(npa_buf_data(b[i]), 0xa0 + i, 64);
  }
  b[1]->ol_flags = NPA_BUF_OL_TX_CSUM;
  b[1]->csum_start = 34;
  b[1]->csum_offset = 6;
  ASSERT_EQ(vnet_fast_ops.tx_burst(q, b, 2), 2);
  ASSERT_EQ(tx.avail_idx(), 2);
  for (uint16_t i = 0; i < 2; i++) {
    Ring::Desc& d = tx.desc()[tx.avail_ring(i)];
    ASSERT_EQ(d.len, 64u + 12u);
    const uint8_t* h = reinterpret_cast<const uint8_t*>(d.addr);
    EXPECT_EQ(h[0], i == 1 ? 1 : 0);  // NEEDS_CSUM
    EXPECT_EQ(h[12], 0xa0 + i);       // frame right after the header
    tx.push_used(tx.avail_ring(i), 0);
  }
  uint32_t before = f.kit.buffers_outstanding();
  EXPECT_EQ(vnet_fast_ops.tx_reap(q), 2);
  EXPECT_EQ(f.kit.buffers_outstanding(), before - 2);

  // Device receives a 100-byte frame into the first posted buffer.
  uint16_t id = rx.avail_ring(0);
  uint8_t* dst = reinterpret_cast<uint8_t*>(rx.desc()[id].addr);
  std::memset(dst, 0, 12);
  dst[0] = 2;   // DATA_VALID
  dst[10] = 1;  // num_buffers
  for (int i = 0; i < 100; i++) dst[12 + i] = static_cast<uint8_t>(i);
  rx.push_used(id, 112);
  npa_buf* r[4];
  ASSERT_EQ(vnet_fast_ops.rx_burst(q, r, 4), 1);
  EXPECT_EQ(r[0]->pkt_len, 100u);
  EXPECT_EQ(r[0]->data_len, 100);
  EXPECT_EQ(static_cast<uint8_t*>(npa_buf_data(r[0]))[99], 99);
  EXPECT_TRUE(r[0]->ol_flags & NPA_BUF_OL_RX_CSUM_GOOD);
  f.kit.FreeBuffers(0, r, 1);
  EXPECT_EQ(rx.avail_idx(), 65);  // refilled the consumed slot

  npa_plugin_qstats s{};
  s.struct_size = sizeof(s);
  ASSERT_EQ(vnet_ctrl_ops.queue_stats(dev, 0, &s), 0);
  EXPECT_EQ(s.tx_packets, 2u);
  EXPECT_EQ(s.rx_packets, 1u);
  EXPECT_EQ(s.rx_bytes, 100u);
  ASSERT_EQ(vnet_ctrl_ops.stop(dev), 0);
}

TEST_F(VirtioNetTest, MergeableRxBuildsChain) {
  ASSERT_EQ(Probe(), 0);
  npa_dev_config c = Cfg();
  ASSERT_EQ(vnet_ctrl_ops.configure(dev, &c), 0);
  ASSERT_EQ(vnet_ctrl_ops.start(dev), 0);
  npa_plugin_queue* q = vnet_ctrl_ops.queue(dev, 0);
  Ring rx = RxRing(64);
  uint16_t id0 = rx.avail_ring(0), id1 = rx.avail_ring(1);
  uint8_t* d0 = reinterpret_cast<uint8_t*>(rx.desc()[id0].addr);
  uint8_t* d1 = reinterpret_cast<uint8_t*>(rx.desc()[id1].addr);
  std::memset(d0, 0, 12);
  d0[10] = 2;  // num_buffers = 2
  std::memset(d0 + 12, 0x11, 2000);
  std::memset(d1, 0x22, 500);
  rx.push_used(id0, 2012);
  npa_buf* r[4];
  EXPECT_EQ(vnet_fast_ops.rx_burst(q, r, 4), 0);  // second half not there yet
  rx.push_used(id1, 500);
  ASSERT_EQ(vnet_fast_ops.rx_burst(q, r, 4), 1);
  EXPECT_EQ(r[0]->pkt_len, 2500u);
  EXPECT_EQ(r[0]->nb_segs, 2);
  ASSERT_NE(r[0]->next, nullptr);
  EXPECT_EQ(r[0]->next->data_len, 500);
  EXPECT_EQ(static_cast<uint8_t*>(npa_buf_data(r[0]->next))[0], 0x22);
  f.kit.FreeBuffers(0, r, 1);
  ASSERT_EQ(vnet_ctrl_ops.stop(dev), 0);
}

TEST_F(VirtioNetTest, HostileUsedRingStopsQueueWithoutCrash) {
  ASSERT_EQ(Probe(), 0);
  npa_dev_config c = Cfg();
  ASSERT_EQ(vnet_ctrl_ops.configure(dev, &c), 0);
  ASSERT_EQ(vnet_ctrl_ops.start(dev), 0);
  npa_plugin_queue* q = vnet_ctrl_ops.queue(dev, 0);
  Ring rx = RxRing(64);
  rx.push_used(9999, 60);  // id out of range
  npa_buf* r[4];
  EXPECT_EQ(vnet_fast_ops.rx_burst(q, r, 4), 0);
  EXPECT_TRUE(f.logged("impossible RX"));
  rx.used_idx() = 500;  // more used than ever given
  EXPECT_EQ(vnet_fast_ops.rx_burst(q, r, 4), 0);
  ASSERT_EQ(vnet_ctrl_ops.stop(dev), 0);  // still reclaims all 64
}

TEST_F(VirtioNetTest, NullArgumentsAreRejected) {
  npa_device_info i = f.info();
  EXPECT_EQ(vnet_ctrl_ops.probe(nullptr, &i, &dev), -EINVAL);
  EXPECT_EQ(vnet_ctrl_ops.probe(f.kit.services(), nullptr, &dev), -EINVAL);
  ASSERT_EQ(Probe(), 0);
  EXPECT_EQ(vnet_ctrl_ops.configure(dev, nullptr), -EINVAL);
  EXPECT_EQ(vnet_ctrl_ops.get_caps(dev, nullptr), -EINVAL);
  EXPECT_EQ(vnet_ctrl_ops.queue(dev, 0), nullptr);
  EXPECT_EQ(vnet_fast_ops.rx_burst(nullptr, nullptr, 4), 0);
  npa_plugin_qstats s{};
  s.struct_size = sizeof(s);
  EXPECT_EQ(vnet_ctrl_ops.queue_stats(dev, 7, &s), -EINVAL);
}

}  // namespace
