// tests/support/fake_vfio_test_util.h — a stand-in for the VFIO device behind an
// offered fd (the VfioDeviceIo seam of vf_services.h), for tests and
// benchmarks only: config space with the offered IDs, no BARs, no MSI-X; with
// a FakeVfioShared, ERR and REQ interrupts whose eventfds the test can fire.
//
//   auto shared = std::make_shared<FakeVfioShared>();
//   SetVfDeviceIoFactoryForTest([shared](int, const control::VfOffer& o) {
//     return std::make_unique<FakeVfioDevice>(o.vendor(), o.device(), shared);
//   });
//   ... uint64_t one = 1; write(shared->req_efd, &one, 8);   // "the agent wants it back"
#ifndef NPA_TESTS_SUPPORT_FAKE_VFIO_TEST_UTIL_H_
#define NPA_TESTS_SUPPORT_FAKE_VFIO_TEST_UTIL_H_

#include <errno.h>
#include <linux/vfio.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>

#include "shell/vf/vf_services.h"

namespace npa::shell {

// What a fake device shares with the test after the shell took it over.
struct FakeVfioShared {
  std::atomic<int> req_efd{-1}, err_efd{-1};
  std::atomic<int> created{0}, destroyed{0};
};

class FakeVfioDevice : public VfioDeviceIo {
 public:
  static constexpr uint64_t kCfgOffset = 7ull << 40;

  // shared == nullptr: no interrupts at all (what a null plug-in needs).
  FakeVfioDevice(uint16_t ven, uint16_t dev, std::shared_ptr<FakeVfioShared> shared = nullptr)
      : sh_(std::move(shared)) {
    memset(cfg_, 0, sizeof cfg_);
    uint32_t id = static_cast<uint32_t>(dev) << 16 | ven, cls = 0x02000001;
    memcpy(cfg_, &id, 4);
    memcpy(cfg_ + 8, &cls, 4);
    if (sh_) sh_->created++;
  }
  ~FakeVfioDevice() override {
    if (sh_) sh_->destroyed++;
  }
  int Ioctl(unsigned long req, void* arg) override {
    if (req == VFIO_DEVICE_GET_REGION_INFO) {
      auto* ri = static_cast<vfio_region_info*>(arg);
      ri->flags = 0;
      ri->size = 0;
      if (ri->index == VFIO_PCI_CONFIG_REGION_INDEX) {
        ri->size = sizeof cfg_;
        ri->offset = kCfgOffset;
        ri->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
      }
      return 0;
    }
    if (req == VFIO_DEVICE_GET_IRQ_INFO) {
      auto* ii = static_cast<vfio_irq_info*>(arg);
      ii->flags = VFIO_IRQ_INFO_EVENTFD;
      const bool err_req = ii->index == VFIO_PCI_ERR_IRQ_INDEX || ii->index == VFIO_PCI_REQ_IRQ_INDEX;
      ii->count = sh_ && err_req ? 1 : 0;
      return 0;
    }
    if (req == VFIO_DEVICE_SET_IRQS) {
      auto* s = static_cast<vfio_irq_set*>(arg);
      if (!sh_) return 0;  // disabling what it lacks
      int fd = -1;
      if ((s->flags & VFIO_IRQ_SET_DATA_EVENTFD) && s->count == 1) memcpy(&fd, s->data, 4);
      if (s->index == VFIO_PCI_REQ_IRQ_INDEX) sh_->req_efd = fd;
      if (s->index == VFIO_PCI_ERR_IRQ_INDEX) sh_->err_efd = fd;
      return 0;
    }
    errno = ENOTTY;
    return -1;
  }
  ssize_t Pread(void* buf, size_t len, uint64_t off) override {
    if (off < kCfgOffset || off - kCfgOffset + len > sizeof cfg_) return errno = EINVAL, -1;
    memcpy(buf, cfg_ + (off - kCfgOffset), len);
    return static_cast<ssize_t>(len);
  }
  ssize_t Pwrite(const void*, size_t len, uint64_t) override { return static_cast<ssize_t>(len); }
  void* Mmap(size_t, uint64_t) override { return errno = EINVAL, MAP_FAILED; }
  void Munmap(void*, size_t) override {}

 private:
  std::shared_ptr<FakeVfioShared> sh_;
  uint8_t cfg_[256];
};

}  // namespace npa::shell

#endif  // NPA_TESTS_SUPPORT_FAKE_VFIO_TEST_UTIL_H_
