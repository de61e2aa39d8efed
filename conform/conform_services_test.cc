// conform_services_test.cc — the services npa-conform hands a plug-in, without
// hardware: the production VfServices over a fake VFIO device
// (tests/support/fake_vfio_test_util.h), decorated by FaultServices, with the
// harness's DMA arena and slot pool. DMA (alignment, coalescing, fault
// injection), buffer pool (accounting, double free and foreign pointers
// caught), and a device that is gone.
#include "conform/conform_services.h"

#include <sys/mman.h>

#include <cerrno>

#include "gtest/gtest.h"
#include "tests/support/fake_vfio_test_util.h"

namespace npa::conform {
namespace {

// A device that went away after the services took it (surprise removal):
// VFIO answers ENODEV for its regions. It has no MSI-X, so disabling
// interrupts (nvec 0) still succeeds.
class GoneDevice : public shell::FakeVfioDevice {
 public:
  GoneDevice() : FakeVfioDevice(0x8086, 0x10d3) {}
  int Ioctl(unsigned long req, void* arg) override {
    if (gone && req == VFIO_DEVICE_GET_REGION_INFO) return errno = ENODEV, -1;
    return FakeVfioDevice::Ioctl(req, arg);
  }
  ssize_t Pread(void* buf, size_t len, uint64_t off) override {
    if (gone) return errno = ENODEV, -1;
    return FakeVfioDevice::Pread(buf, len, off);
  }
  bool gone = false;
};

class ConformServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    len_ = 2u << 20;
    mem_ = static_cast<uint8_t*>(
        mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(mem_, MAP_FAILED);
    auto dev = std::make_unique<GoneDevice>();
    dev_ = dev.get();
    auto s = ConformServices::Create(std::move(dev), "0000:01:00.0", mem_, len_, 1u << 20);
    ASSERT_TRUE(s.ok()) << s.status();
    svc_ = std::move(*s);
    t_ = svc_->table();
  }
  void TearDown() override {
    svc_.reset();
    munmap(mem_, len_);
  }
  uint8_t* mem_;
  uint64_t len_;
  GoneDevice* dev_ = nullptr;  // owned by svc_
  std::unique_ptr<ConformServices> svc_;
  const npa_services* t_;
};

TEST_F(ConformServicesTest, TheTableIsTheDecoratedProductionOne) {
  EXPECT_EQ(t_->struct_size, sizeof(npa_services));
  EXPECT_EQ(t_->abi_major, NPA_PLUGIN_ABI_MAJOR);
  EXPECT_NE(t_->ctx, svc_->vf().table()->ctx);  // the decorator's, not VfServices'
  // Device access reaches the device through VfServices.
  uint32_t v = 0;
  ASSERT_EQ(t_->cfg_read(t_->ctx, 0, 4, &v), 0);
  EXPECT_EQ(v, 0x10d38086u);
  auto info = svc_->vf().DeviceInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->vendor, 0x8086);
  EXPECT_STREQ(info->pci_address, "0000:01:00.0");
}

TEST_F(ConformServicesTest, DmaAllocAlignsAndCoalesces) {
  npa_dma_mem a{}, b{}, c{}, d{};
  ASSERT_EQ(t_->dma_alloc(t_->ctx, 100, 4096, &a), 0);
  ASSERT_EQ(t_->dma_alloc(t_->ctx, 5000, 65536, &b), 0);
  EXPECT_EQ(a.iova % 4096, 0u);
  EXPECT_EQ(b.iova % 65536, 0u);
  EXPECT_EQ(a.iova, reinterpret_cast<uint64_t>(a.vaddr));
  EXPECT_EQ(svc_->dma_outstanding(), 2u);
  t_->dma_free(t_->ctx, &a);
  t_->dma_free(t_->ctx, &b);
  EXPECT_EQ(svc_->dma_outstanding(), 0u);
  // Everything coalesced back: the whole arena is one block again.
  ASSERT_EQ(t_->dma_alloc(t_->ctx, 1u << 20, 4096, &c), 0);
  // ... and with it taken, the arena is exhausted.
  EXPECT_EQ(t_->dma_alloc(t_->ctx, 64, 64, &d), -ENOMEM);
  t_->dma_free(t_->ctx, &c);
  EXPECT_EQ(t_->dma_alloc(t_->ctx, 100, 3, &c), -EINVAL);
  // More than the whole arena is a bad size to the production table (as
  // shell/vf/vf_services_test.cc checks), not an exhausted arena.
  EXPECT_EQ(t_->dma_alloc(t_->ctx, (1u << 20) + 1, 64, &c), -EINVAL);
  EXPECT_EQ(svc_->violations(), 0);
}

TEST_F(ConformServicesTest, DmaFaultAndBadFree) {
  svc_->faults().dma_fail_at = 1;
  npa_dma_mem a{}, b{};
  EXPECT_EQ(t_->dma_alloc(t_->ctx, 64, 64, &a), 0);
  EXPECT_EQ(t_->dma_alloc(t_->ctx, 64, 64, &b), -ENOMEM);
  EXPECT_EQ(t_->dma_alloc(t_->ctx, 64, 64, &b), 0);
  EXPECT_EQ(svc_->dma_calls(), 3);
  t_->dma_free(t_->ctx, &a);
  t_->dma_free(t_->ctx, &a);  // twice
  EXPECT_EQ(svc_->violations(), 1);
  t_->dma_free(t_->ctx, &b);
  EXPECT_EQ(svc_->dma_outstanding(), 0u);
}

TEST_F(ConformServicesTest, BufferAccounting) {
  npa_buf* b[8];
  ASSERT_EQ(t_->buf_alloc(t_->ctx, 0, b, 8), 8);
  EXPECT_EQ(svc_->bufs_outstanding(), 8);
  EXPECT_EQ(b[0]->data_off, NPA_BUF_DATA_OFF);
  EXPECT_EQ(b[0]->iova, reinterpret_cast<uint64_t>(b[0]));
  b[0]->next = b[1];  // a two-segment frame frees both
  t_->buf_free(t_->ctx, 0, b, 1);
  EXPECT_EQ(svc_->bufs_outstanding(), 6);
  t_->buf_free(t_->ctx, 0, b + 1, 1);  // already freed with the chain
  EXPECT_EQ(svc_->violations(), 1);
  npa_buf* bogus = reinterpret_cast<npa_buf*>(mem_ + 8);
  t_->buf_free(t_->ctx, 0, &bogus, 1);
  EXPECT_EQ(svc_->violations(), 2);
  t_->buf_free(t_->ctx, 0, b + 2, 6);
  EXPECT_EQ(svc_->bufs_outstanding(), 0);
  // The harness's own buffers come from the same pool and count the same.
  ASSERT_EQ(svc_->Alloc(b, 2), 2);
  EXPECT_EQ(svc_->bufs_outstanding(), 2);
  svc_->Free(b, 2);
  EXPECT_EQ(svc_->bufs_outstanding(), 0);
}

// ABI 1.1: a plug-in with NPA_PLUGIN_F_TX_FREE returns exactly the frames
// it took in tx_burst through buf_free_tx, and RX buffers through buf_free.
TEST_F(ConformServicesTest, TxCompletionDisciplineIsCheckedFrameByFrame) {
  svc_->set_tx_free(true);
  npa_buf* tx[4];
  ASSERT_EQ(svc_->Alloc(tx, 4), 4);
  svc_->MarkSent(tx, 4);
  svc_->Unsent(tx + 3, 1);            // tx_burst took 3
  svc_->Free(tx + 3, 1);              // the harness frees what it kept: fine
  ASSERT_NE(t_->buf_free_tx, nullptr);
  t_->buf_free_tx(t_->ctx, 0, tx, 2);  // completions: fine
  EXPECT_EQ(svc_->violations(), 0);
  t_->buf_free(t_->ctx, 0, tx + 2, 1);  // a TX frame through the RX call
  EXPECT_EQ(svc_->violations(), 1);
  npa_buf* rx[1];
  ASSERT_EQ(t_->buf_alloc(t_->ctx, 0, rx, 1), 1);
  t_->buf_free_tx(t_->ctx, 0, rx, 1);  // an RX buffer through the TX call
  EXPECT_EQ(svc_->violations(), 2);
  EXPECT_EQ(svc_->bufs_outstanding(), 0);
  // A 1.0 plug-in (no flag) may return TX frames through buf_free.
  svc_->set_tx_free(false);
  ASSERT_EQ(svc_->Alloc(tx, 1), 1);
  svc_->MarkSent(tx, 1);
  t_->buf_free(t_->ctx, 0, tx, 1);
  EXPECT_EQ(svc_->violations(), 2);
}

// The RX discipline (npa/plugin.h): what rx_burst hands up is checked frame
// by frame. Each bad frame is one violation naming it; the good ones stay,
// in order; what is not the plug-in's is not touched, its own bad frames
// are freed.
TEST_F(ConformServicesTest, RxDisciplineIsCheckedFrameByFrame) {
  npa_buf* rx[6];
  ASSERT_EQ(t_->buf_alloc(t_->ctx, 0, rx, 6), 6);  // the plug-in's RX buffers
  for (npa_buf* b : rx) b->data_len = b->pkt_len = 60;
  npa_buf* freed;
  ASSERT_EQ(t_->buf_alloc(t_->ctx, 0, &freed, 1), 1);
  npa_buf* sent;
  ASSERT_EQ(svc_->Alloc(&sent, 1), 1);
  svc_->MarkSent(&sent, 1);  // a TX frame the plug-in holds
  t_->buf_free(t_->ctx, 0, &freed, 1);
  rx[1]->data_off = NPA_BUF_SLOT_SIZE - 10;  // data past the slot
  rx[2]->pkt_len = 61;                        // not the segments' sum
  rx[3]->ol_flags = NPA_BUF_OL_TX_CSUM;       // a TX request on an RX frame
  npa_buf* bogus = reinterpret_cast<npa_buf*>(mem_ + 8);
  npa_buf* up[10] = {rx[0], bogus, rx[1], freed, rx[2], sent, rx[3], rx[4], rx[4], rx[5]};
  EXPECT_EQ(svc_->CheckRx(up, 10), 3);
  EXPECT_EQ(up[0], rx[0]);
  EXPECT_EQ(up[1], rx[4]);
  EXPECT_EQ(up[2], rx[5]);
  ASSERT_EQ(svc_->violations(), 7);
  const auto& log = svc_->violation_log();
  EXPECT_NE(log[0].find("not a buffer slot"), std::string::npos) << log[0];
  EXPECT_NE(log[1].find("outside the slot"), std::string::npos) << log[1];
  EXPECT_NE(log[2].find("a buffer that is free"), std::string::npos) << log[2];
  EXPECT_NE(log[3].find("pkt_len"), std::string::npos) << log[3];
  EXPECT_NE(log[4].find("a TX frame the plug-in holds"), std::string::npos) << log[4];
  EXPECT_NE(log[5].find("are not RX facts"), std::string::npos) << log[5];
  EXPECT_NE(log[6].find("twice in one burst"), std::string::npos) << log[6];
  // rx[1..3] were freed; the next burst may hand rx[4] up again.
  EXPECT_EQ(svc_->bufs_outstanding(), 4);  // rx[0], rx[4], rx[5], sent
  EXPECT_EQ(svc_->CheckRx(&rx[4], 1), 1);
  EXPECT_EQ(svc_->violations(), 7);
  svc_->Free(up, 3);
  svc_->Unsent(&sent, 1);
  svc_->Free(&sent, 1);
  EXPECT_EQ(svc_->bufs_outstanding(), 0);
  EXPECT_EQ(svc_->violations(), 7);
}

TEST_F(ConformServicesTest, BufferFaults) {
  npa_buf* b[8];
  svc_->faults().buf_max = 3;
  EXPECT_EQ(t_->buf_alloc(t_->ctx, 0, b, 8), 3);
  t_->buf_free(t_->ctx, 0, b, 3);
  svc_->faults().buf_empty = true;
  EXPECT_EQ(t_->buf_alloc(t_->ctx, 0, b, 8), 0);
  EXPECT_EQ(svc_->bufs_outstanding(), 0);
}

TEST_F(ConformServicesTest, GoneDeviceMeansErrors) {
  dev_->gone = true;
  volatile void* a;
  uint64_t l;
  uint32_t v;
  int efd[2];
  EXPECT_EQ(t_->bar_map(t_->ctx, 0, &a, &l), -ENODEV);
  EXPECT_EQ(t_->cfg_read(t_->ctx, 0, 4, &v), -ENODEV);
  svc_->faults().irq_fail = true;
  EXPECT_EQ(t_->irq_setup(t_->ctx, 2, efd), -EIO);
  EXPECT_EQ(t_->irq_setup(t_->ctx, 0, nullptr), 0);
}

}  // namespace
}  // namespace npa::conform
