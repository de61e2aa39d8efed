// tests/support/fake_vfio_layer.h — a VfioLayer for tests (test-only; no
// production code includes it). Each "device" is a memfd (so DupDeviceFd gives
// a real fd that can travel over SCM_RIGHTS and be fstat'ed by a fake guest).
// Every call is appended to `log` ("open B", "map IOVA SIZE", "reset B",
// "unmap IOVA SIZE", "req B", "close B"); failures are injected per operation.
#ifndef NPA_TESTS_SUPPORT_FAKE_VFIO_LAYER_H_
#define NPA_TESTS_SUPPORT_FAKE_VFIO_LAYER_H_

#include <fcntl.h>
#include <sys/mman.h>

#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hypervisor/vf/vfio_layer.h"

namespace npa::agent {

class FakeVfioLayer final : public VfioLayer {
 public:
  struct Faults {
    bool open = false;
    int map_at = -1;  // fail the Nth MapDma (0-based) of an attachment
    bool reset = false;
    bool unmap = false;
    bool dup = false;
    bool req = false;  // RequestRelease: "no REQ eventfd wired"
  };
  Faults faults;

  std::vector<std::string> Log() {
    std::lock_guard<std::mutex> l(mu_);
    return log_;
  }
  void Clear() {
    std::lock_guard<std::mutex> l(mu_);
    log_.clear();
  }
  int Count(const std::string& prefix) {
    std::lock_guard<std::mutex> l(mu_);
    int n = 0;
    for (const auto& e : log_) n += e.rfind(prefix, 0) == 0;
    return n;
  }
  int open_attachments() const { return open_; }

  absl::StatusOr<std::unique_ptr<VfioAttachment>> Open(absl::string_view bdf) override {
    Add(absl::StrCat("open ", bdf));
    if (faults.open) return absl::UnavailableError(absl::StrCat("fake: group of ", bdf, " is busy"));
    return std::unique_ptr<VfioAttachment>(new Att(this, std::string(bdf)));
  }

 private:
  class Att final : public VfioAttachment {
   public:
    Att(FakeVfioLayer* l, std::string bdf)
        : l_(l), bdf_(std::move(bdf)), fd_(memfd_create("fake-vfio-device", MFD_CLOEXEC)) {
      l_->open_++;
    }
    ~Att() override {
      l_->Add(absl::StrCat("close ", bdf_));
      l_->open_--;
    }
    absl::Status MapDma(uint64_t vaddr, uint64_t iova, uint64_t size) override {
      l_->Add(absl::StrFormat("map 0x%x 0x%x", iova, size));
      if (vaddr == 0) return absl::InvalidArgumentError("fake: vaddr 0");
      if (l_->faults.map_at == maps_++) return absl::ResourceExhaustedError("fake: MAP_DMA: ENOMEM");
      return absl::OkStatus();
    }
    absl::Status UnmapDma(uint64_t iova, uint64_t size) override {
      l_->Add(absl::StrFormat("unmap 0x%x 0x%x", iova, size));
      return l_->faults.unmap ? absl::InternalError("fake: UNMAP_DMA failed") : absl::OkStatus();
    }
    absl::Status Reset() override {
      l_->Add(absl::StrCat("reset ", bdf_));
      return l_->faults.reset ? absl::InternalError("fake: VFIO_DEVICE_RESET: EIO") : absl::OkStatus();
    }
    absl::StatusOr<UniqueFd> DupDeviceFd() override {
      l_->Add(absl::StrCat("dup ", bdf_));
      if (l_->faults.dup) return absl::ResourceExhaustedError("fake: dup: EMFILE");
      return UniqueFd(fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
    }
    absl::Status RequestRelease() override {
      l_->Add(absl::StrCat("req ", bdf_));
      if (l_->faults.req) return absl::FailedPreconditionError("fake: no VFIO REQ eventfd wired");
      return absl::OkStatus();
    }
    int group() const override { return 7; }

   private:
    FakeVfioLayer* l_;
    std::string bdf_;
    UniqueFd fd_;
    int maps_ = 0;
  };

  void Add(std::string e) {
    std::lock_guard<std::mutex> l(mu_);
    log_.push_back(std::move(e));
  }
  std::mutex mu_;
  std::vector<std::string> log_;
  int open_ = 0;
};

}  // namespace npa::agent

#endif  // NPA_TESTS_SUPPORT_FAKE_VFIO_LAYER_H_
