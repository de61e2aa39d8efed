// shell/vf/vf_services_test.cc — VfServices and RegionDmaArena without a device:
// a fake VfioDeviceIo stands in for the VFIO device fd.
#include "shell/vf/vf_services.h"

#include <errno.h>
#include <linux/vfio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace npa::shell {
namespace {

constexpr uint64_t kCfgOffset = 7ull << 40;  // VFIO's region index << 40 layout
constexpr uint64_t kBar0Offset = 0;

class FakeDevice : public VfioDeviceIo {
 public:
  FakeDevice() {
    std::memset(cfg, 0, sizeof(cfg));
    uint32_t id = 0x10d38086, cls = 0x02000003, sub = 0xa01f8086;
    std::memcpy(cfg + 0, &id, 4);
    std::memcpy(cfg + 8, &cls, 4);
    std::memcpy(cfg + 0x2c, &sub, 4);
  }
  int Ioctl(unsigned long req, void* arg) override {
    calls.push_back(req);
    if (fail_req == req) {
      errno = EPERM;
      return -1;
    }
    if (req == VFIO_DEVICE_GET_REGION_INFO) {
      auto* ri = static_cast<vfio_region_info*>(arg);
      if (ri->argsz < sizeof(*ri)) {
        errno = EINVAL;
        return -1;
      }
      ri->flags = 0;
      ri->size = 0;
      if (ri->index == VFIO_PCI_CONFIG_REGION_INDEX) {
        ri->size = sizeof(cfg);
        ri->offset = kCfgOffset;
        ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      } else if (ri->index == VFIO_PCI_BAR0_REGION_INDEX) {
        ri->size = 0x20000;
        ri->offset = kBar0Offset;
        ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                    VFIO_REGION_INFO_FLAG_MMAP;
      } else if (ri->index == VFIO_PCI_BAR2_REGION_INDEX) {
        ri->size = 32;  // an I/O BAR: readable, not mappable
        ri->offset = 2ull << 40;
        ri->flags = VFIO_REGION_INFO_FLAG_READ;
      }
      return 0;
    }
    if (req == VFIO_DEVICE_GET_IRQ_INFO) {
      auto* ii = static_cast<vfio_irq_info*>(arg);
      ii->flags = VFIO_IRQ_INFO_EVENTFD;
      ii->count = ii->index == VFIO_PCI_MSIX_IRQ_INDEX ? msix_count
                  : (ii->index == VFIO_PCI_ERR_IRQ_INDEX || ii->index == VFIO_PCI_REQ_IRQ_INDEX)
                      ? 1
                      : 0;
      return 0;
    }
    if (req == VFIO_DEVICE_SET_IRQS) {
      auto* s = static_cast<vfio_irq_set*>(arg);
      sets.push_back({s->index, s->count, s->flags});
      if (mirror) mirror->push_back({s->index, s->count, s->flags});
      return 0;
    }
    errno = ENOTTY;
    return -1;
  }
  ssize_t Pread(void* buf, size_t len, uint64_t off) override {
    if (off < kCfgOffset || off - kCfgOffset + len > sizeof(cfg)) {
      errno = EINVAL;
      return -1;
    }
    std::memcpy(buf, cfg + (off - kCfgOffset), len);
    return static_cast<ssize_t>(len);
  }
  ssize_t Pwrite(const void* buf, size_t len, uint64_t off) override {
    if (off < kCfgOffset || off - kCfgOffset + len > sizeof(cfg)) {
      errno = EINVAL;
      return -1;
    }
    std::memcpy(cfg + (off - kCfgOffset), buf, len);
    return static_cast<ssize_t>(len);
  }
  void* Mmap(size_t len, uint64_t) override {
    maps++;
    return mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  void Munmap(void* addr, size_t len) override {
    unmaps++;
    if (unmaps_mirror) ++*unmaps_mirror;
    munmap(addr, len);
  }

  struct IrqSet {
    uint32_t index, count, flags;
  };
  uint8_t cfg[256];
  uint32_t msix_count = 5;
  unsigned long fail_req = 0;
  std::vector<unsigned long> calls;
  std::vector<IrqSet> sets;
  int maps = 0, unmaps = 0;
  // Outlive the fake, which the services own and destroy.
  std::vector<IrqSet>* mirror = nullptr;
  int* unmaps_mirror = nullptr;
};

class CountingBuffers : public BufferProvider {
 public:
  uint16_t Alloc(uint16_t qid, npa_buf** bufs, uint16_t n) override {
    last_qid = qid;
    for (uint16_t i = 0; i < n; i++) bufs[i] = &pool[i % 4];
    return n;
  }
  void Free(uint16_t qid, npa_buf**, uint16_t n) override {
    last_qid = qid;
    freed += n;
  }
  npa_buf pool[4]{};
  int last_qid = -1;
  int freed = 0;
};

struct Fixture {
  Fixture() : region(1 << 20), arena(region.data(), region.size(), 0x100000) {
    auto dev = std::make_unique<FakeDevice>();
    fake = dev.get();
    auto s = VfServices::Create(std::move(dev), "0000:01:00.0", &arena, &bufs, 2,
                                [this](int level, std::string_view line) {
                                  logs.push_back(std::to_string(level) + " " + std::string(line));
                                });
    EXPECT_TRUE(s.ok()) << s.status();
    svc = std::move(*s);
    t = svc->table();
  }
  std::vector<uint8_t> region;
  RegionDmaArena arena;
  CountingBuffers bufs;
  FakeDevice* fake = nullptr;
  std::unique_ptr<VfServices> svc;
  const npa_services* t = nullptr;
  std::vector<std::string> logs;
};

TEST(VfServices, TableIsComplete) {
  Fixture f;
  EXPECT_EQ(f.t->struct_size, sizeof(npa_services));
  EXPECT_EQ(f.t->abi_major, NPA_PLUGIN_ABI_MAJOR);
  EXPECT_NE(f.t->bar_map, nullptr);
  EXPECT_NE(f.t->sleep_us, nullptr);
  EXPECT_EQ(f.t->ctx, f.svc.get());
}

TEST(VfServices, CreateRejectsMissingPieces) {
  std::vector<uint8_t> region(4096);
  RegionDmaArena arena(region.data(), region.size(), 0);
  CountingBuffers bufs;
  EXPECT_FALSE(VfServices::Create(std::make_unique<FakeDevice>(), "x", nullptr, &bufs, 1, {}).ok());
  EXPECT_FALSE(VfServices::Create(std::make_unique<FakeDevice>(), "x", &arena, nullptr, 1, {}).ok());
  EXPECT_FALSE(VfServices::Create(std::make_unique<FakeDevice>(), "x", &arena, &bufs, 0, {}).ok());
  auto dev = std::make_unique<FakeDevice>();
  dev->fail_req = VFIO_DEVICE_GET_REGION_INFO;
  auto s = VfServices::Create(std::move(dev), "0000:09:00.0", &arena, &bufs, 1, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("VFIO_DEVICE_GET_REGION_INFO"), std::string::npos);
  EXPECT_NE(s.status().message().find("0000:09:00.0"), std::string::npos);
}

TEST(VfServices, DeviceInfoFromConfigAndVfio) {
  Fixture f;
  auto info = f.svc->DeviceInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->vendor, 0x8086);
  EXPECT_EQ(info->device, 0x10d3);
  EXPECT_EQ(info->subsystem_device, 0xa01f);
  EXPECT_EQ(info->class_code, 0x020000u);
  EXPECT_EQ(info->revision, 3);
  EXPECT_EQ(info->num_bars_mappable, 1u);  // BAR0 only; BAR2 has no MMAP flag
  EXPECT_EQ(info->msix_vectors, 5u);
  EXPECT_STREQ(info->pci_address, "0000:01:00.0");
}

TEST(VfServices, BarMapChecksAndCaches) {
  Fixture f;
  volatile void* addr = nullptr;
  uint64_t len = 0;
  EXPECT_EQ(f.t->bar_map(f.t->ctx, 6, &addr, &len), -EINVAL);
  EXPECT_EQ(f.t->bar_map(f.t->ctx, 0, nullptr, &len), -EINVAL);
  EXPECT_EQ(f.t->bar_map(f.t->ctx, 0, &addr, nullptr), -EINVAL);
  EXPECT_EQ(f.t->bar_map(f.t->ctx, 2, &addr, &len), -EINVAL);  // not mappable
  EXPECT_EQ(f.t->bar_map(f.t->ctx, 1, &addr, &len), -EINVAL);  // size 0
  ASSERT_EQ(f.t->bar_map(f.t->ctx, 0, &addr, &len), 0);
  EXPECT_NE(addr, nullptr);
  EXPECT_EQ(len, 0x20000u);
  volatile void* again = nullptr;
  ASSERT_EQ(f.t->bar_map(f.t->ctx, 0, &again, &len), 0);
  EXPECT_EQ(again, addr);
  EXPECT_EQ(f.fake->maps, 1);
}

TEST(VfServices, BarMapIoctlErrorNamesIoctlAndDevice) {
  Fixture f;
  f.fake->fail_req = VFIO_DEVICE_GET_REGION_INFO;
  volatile void* addr = nullptr;
  uint64_t len = 0;
  EXPECT_EQ(f.t->bar_map(f.t->ctx, 0, &addr, &len), -EPERM);
  ASSERT_FALSE(f.logs.empty());
  EXPECT_NE(f.logs.back().find("VFIO_DEVICE_GET_REGION_INFO(BAR0) on 0000:01:00.0"),
            std::string::npos)
      << f.logs.back();
}

TEST(VfServices, ConfigSpaceAccessIsBounded) {
  Fixture f;
  uint32_t v = 0;
  ASSERT_EQ(f.t->cfg_read(f.t->ctx, 0, 4, &v), 0);
  EXPECT_EQ(v, 0x10d38086u);
  ASSERT_EQ(f.t->cfg_read(f.t->ctx, 2, 2, &v), 0);
  EXPECT_EQ(v, 0x10d3u);
  ASSERT_EQ(f.t->cfg_read(f.t->ctx, 0, 1, &v), 0);
  EXPECT_EQ(v, 0x86u);
  EXPECT_EQ(f.t->cfg_read(f.t->ctx, 0, 3, &v), -EINVAL);
  EXPECT_EQ(f.t->cfg_read(f.t->ctx, 0, 8, &v), -EINVAL);
  EXPECT_EQ(f.t->cfg_read(f.t->ctx, 254, 4, &v), -EINVAL);
  EXPECT_EQ(f.t->cfg_read(f.t->ctx, 0xffffffffu, 4, &v), -EINVAL);
  EXPECT_EQ(f.t->cfg_read(f.t->ctx, 0, 4, nullptr), -EINVAL);
  ASSERT_EQ(f.t->cfg_write(f.t->ctx, 4, 2, 0x0006), 0);
  ASSERT_EQ(f.t->cfg_read(f.t->ctx, 4, 2, &v), 0);
  EXPECT_EQ(v, 6u);
  EXPECT_EQ(f.t->cfg_write(f.t->ctx, 4, 2, 0x10000), -EINVAL);  // value wider than len
  EXPECT_EQ(f.t->cfg_write(f.t->ctx, 255, 2, 1), -EINVAL);
}

TEST(VfServices, IrqSetupWiresAndDisables) {
  Fixture f;
  int efds[8];
  EXPECT_EQ(f.t->irq_setup(f.t->ctx, 6, efds), -EINVAL);  // device has 5
  EXPECT_EQ(f.t->irq_setup(f.t->ctx, 2, nullptr), -EINVAL);
  ASSERT_EQ(f.t->irq_setup(f.t->ctx, 2, efds), 0);
  ASSERT_EQ(f.fake->sets.size(), 1u);
  EXPECT_EQ(f.fake->sets[0].index, (uint32_t)VFIO_PCI_MSIX_IRQ_INDEX);
  EXPECT_EQ(f.fake->sets[0].count, 2u);
  EXPECT_EQ(f.fake->sets[0].flags, (uint32_t)(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER));
  EXPECT_GE(efds[0], 0);
  EXPECT_GE(efds[1], 0);
  EXPECT_EQ(f.svc->msix_eventfds().size(), 2u);
  // Re-wiring with more vectors disables first (VFIO cannot grow the block).
  ASSERT_EQ(f.t->irq_setup(f.t->ctx, 3, efds), 0);
  ASSERT_EQ(f.fake->sets.size(), 3u);
  EXPECT_EQ(f.fake->sets[1].count, 0u);
  EXPECT_EQ(f.fake->sets[2].count, 3u);
  ASSERT_EQ(f.t->irq_setup(f.t->ctx, 0, nullptr), 0);
  EXPECT_EQ(f.fake->sets.back().count, 0u);
  EXPECT_TRUE(f.svc->msix_eventfds().empty());
}

TEST(VfServices, IrqSetupFailureNamesIoctl) {
  Fixture f;
  f.fake->fail_req = VFIO_DEVICE_SET_IRQS;
  int efds[2];
  EXPECT_EQ(f.t->irq_setup(f.t->ctx, 2, efds), -EPERM);
  EXPECT_NE(f.logs.back().find("VFIO_DEVICE_SET_IRQS"), std::string::npos);
  EXPECT_TRUE(f.svc->msix_eventfds().empty());
}

TEST(VfServices, ErrAndReqInterrupts) {
  Fixture f;
  auto err = f.svc->WireErrIrq();
  auto req = f.svc->WireReqIrq();
  ASSERT_TRUE(err.ok()) << err.status();
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_NE(*err, *req);
  auto again = f.svc->WireErrIrq();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *err);
  ASSERT_GE(f.fake->sets.size(), 2u);
  EXPECT_EQ(f.fake->sets[0].index, (uint32_t)VFIO_PCI_ERR_IRQ_INDEX);
  EXPECT_EQ(f.fake->sets[1].index, (uint32_t)VFIO_PCI_REQ_IRQ_INDEX);
}

TEST(VfServices, DestructorDisablesWhatItWired) {
  Fixture f;
  std::vector<FakeDevice::IrqSet> sets;
  int unmaps = 0;
  f.fake->mirror = &sets;
  f.fake->unmaps_mirror = &unmaps;
  int efds[2];
  ASSERT_EQ(f.t->irq_setup(f.t->ctx, 2, efds), 0);
  ASSERT_TRUE(f.svc->WireReqIrq().ok());
  volatile void* addr;
  uint64_t len;
  ASSERT_EQ(f.t->bar_map(f.t->ctx, 0, &addr, &len), 0);
  npa_dma_mem m{};
  ASSERT_EQ(f.t->dma_alloc(f.t->ctx, 4096, 4096, &m), 0);
  EXPECT_LT(f.arena.bytes_free(), f.region.size());
  sets.clear();
  f.svc.reset();
  // MSI-X and REQ disabled (count 0), the BAR unmapped, the DMA block back.
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0].index, (uint32_t)VFIO_PCI_MSIX_IRQ_INDEX);
  EXPECT_EQ(sets[0].count, 0u);
  EXPECT_EQ(sets[1].index, (uint32_t)VFIO_PCI_REQ_IRQ_INDEX);
  EXPECT_EQ(sets[1].count, 0u);
  EXPECT_EQ(unmaps, 1);
  EXPECT_EQ(f.arena.bytes_free(), f.region.size());
}

TEST(VfServices, DmaThroughArenaAndHandles) {
  Fixture f;
  npa_dma_mem a{}, b{};
  EXPECT_EQ(f.t->dma_alloc(f.t->ctx, 1000, 3, &a), -EINVAL);
  EXPECT_EQ(f.t->dma_alloc(f.t->ctx, 0, 64, &a), -EINVAL);
  EXPECT_EQ(f.t->dma_alloc(f.t->ctx, 64, 64, nullptr), -EINVAL);
  EXPECT_EQ(f.t->dma_alloc(f.t->ctx, 2 << 20, 64, &a), -EINVAL);  // larger than the region
  ASSERT_EQ(f.t->dma_alloc(f.t->ctx, 1000, 4096, &a), 0);
  EXPECT_EQ(a.iova % 4096, 0u);
  EXPECT_EQ(a.iova - 0x100000, static_cast<uint64_t>(static_cast<uint8_t*>(a.vaddr) - f.region.data()));
  EXPECT_GE(a.size, 1000u);
  ASSERT_EQ(f.t->dma_alloc(f.t->ctx, 64, 128, &b), 0);
  EXPECT_NE(a.handle, b.handle);
  npa_dma_mem bogus = a;
  bogus.handle = 999;
  uint64_t free_before = f.arena.bytes_free();
  f.t->dma_free(f.t->ctx, &bogus);  // rejected and logged
  EXPECT_EQ(f.arena.bytes_free(), free_before);
  f.t->dma_free(f.t->ctx, &a);
  f.t->dma_free(f.t->ctx, &a);  // double free: handle now unknown, ignored
  f.t->dma_free(f.t->ctx, &b);
  EXPECT_EQ(f.arena.bytes_free(), f.region.size());
}

TEST(VfServices, BuffersPerQueue) {
  Fixture f;
  npa_buf* b[4];
  EXPECT_EQ(f.t->buf_alloc(f.t->ctx, 2, b, 4), 0);  // 2 queues: qid 2 is out of range
  EXPECT_EQ(f.t->buf_alloc(f.t->ctx, 0, nullptr, 4), 0);
  EXPECT_EQ(f.t->buf_alloc(f.t->ctx, 1, b, 4), 4);
  EXPECT_EQ(f.bufs.last_qid, 1);
  f.t->buf_free(f.t->ctx, 5, b, 4);
  EXPECT_EQ(f.bufs.freed, 0);
  f.t->buf_free(f.t->ctx, 1, b, 4);
  EXPECT_EQ(f.bufs.freed, 4);
}

TEST(VfServices, LogAndTime) {
  Fixture f;
  uint64_t t0 = f.t->now_ns(f.t->ctx);
  f.t->sleep_us(f.t->ctx, 1000);
  EXPECT_GE(f.t->now_ns(f.t->ctx) - t0, 1000000u);
  EXPECT_EQ(VfServices::ClampSleepUs(5000000), VfServices::kMaxSleepUs);
  EXPECT_EQ(VfServices::ClampSleepUs(10), 10u);
  // log through a va_list, as plug-ins call it
  auto call = [&](int level, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    f.t->log(f.t->ctx, level, fmt, ap);
    va_end(ap);
  };
  call(NPA_LOG_INFO, "link %s at %d", "up", 1000);
  ASSERT_FALSE(f.logs.empty());
  EXPECT_EQ(f.logs.back(), "2 link up at 1000");
  call(99, "clamped");
  EXPECT_EQ(f.logs.back(), "3 clamped");
}

TEST(RegionDmaArena, AlignmentExhaustionAndCoalescing) {
  std::vector<uint8_t> mem(64 * 1024);
  RegionDmaArena arena(mem.data(), mem.size(), 0x40000000);
  EXPECT_FALSE(arena.Alloc(100, 3).ok());
  EXPECT_FALSE(arena.Alloc(100, 4ull << 20).ok());
  EXPECT_FALSE(arena.Alloc(0, 64).ok());
  auto a = arena.Alloc(100, 64);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, 128u);  // rounded to cache lines
  auto b = arena.Alloc(4096, 4096);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->iova % 4096, 0u);
  std::memset(b->vaddr, 0xab, 4096);
  std::vector<npa_dma_mem> blocks;
  for (int i = 0; i < 64; i++) {
    auto c = arena.Alloc(4096, 64);
    if (!c.ok()) {
      EXPECT_TRUE(absl::IsResourceExhausted(c.status())) << c.status();
      break;
    }
    blocks.push_back(*c);
  }
  EXPECT_LT(blocks.size(), 16u);
  EXPECT_TRUE(absl::IsResourceExhausted(arena.Alloc(4096, 64).status()));
  EXPECT_FALSE(arena.Free(npa_dma_mem{sizeof(npa_dma_mem), 0, mem.data() + 8, 0, 64, 8}).ok());
  ASSERT_TRUE(arena.Free(*b).ok());
  EXPECT_FALSE(arena.Free(*b).ok());  // double free
  auto again = arena.Alloc(4096, 4096);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(static_cast<uint8_t*>(again->vaddr)[100], 0);  // zero-filled
  ASSERT_TRUE(arena.Free(*again).ok());
  ASSERT_TRUE(arena.Free(*a).ok());
  for (auto& c : blocks) ASSERT_TRUE(arena.Free(c).ok());
  EXPECT_EQ(arena.bytes_free(), mem.size());
  auto whole = arena.Alloc(mem.size(), 64);  // everything coalesced back into one block
  EXPECT_TRUE(whole.ok()) << whole.status();
}

}  // namespace
}  // namespace npa::shell
