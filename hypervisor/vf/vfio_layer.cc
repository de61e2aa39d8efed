// hypervisor/vf/vfio_layer.cc — RealVfioLayer over the VFIO host library.
#include "hypervisor/vf/vfio_layer.h"

#include <linux/vfio.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "hypervisor/vf/vfio.h"

namespace npa::agent {
namespace {

class RealAttachment final : public VfioAttachment {
 public:
  explicit RealAttachment(vf::VfioFunction f) : fn_(std::move(f)) {}
  // fn_ releases device, group and container in that order.
  absl::Status MapDma(uint64_t vaddr, uint64_t iova, uint64_t size) override {
    return fn_.container().MapDma(vaddr, iova, size);
  }
  absl::Status UnmapDma(uint64_t iova, uint64_t size) override {
    return fn_.container().UnmapDma(iova, size);
  }
  absl::Status Reset() override { return fn_.device().Reset(); }
  absl::StatusOr<UniqueFd> DupDeviceFd() override { return fn_.device().Dup(); }
  absl::Status RequestRelease() override {
    absl::Status s = fn_.device().TriggerIrq(VFIO_PCI_REQ_IRQ_INDEX, 0);
    // vfio_pci_set_ctx_trigger_single: DATA_NONE with no eventfd is EINVAL.
    if (absl::IsInvalidArgument(s))
      return absl::FailedPreconditionError(absl::StrCat(
          "the guest wired no VFIO REQ eventfd on ", fn_.device().name(), " (", s.message(), ")"));
    return s;
  }
  int group() const override { return fn_.group().id(); }

 private:
  vf::VfioFunction fn_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<VfioAttachment>> RealVfioLayer::Open(absl::string_view bdf) {
  NPA_ASSIGN_OR_RETURN(vf::VfioFunction f,
                       vf::VfioFunction::Open(bdf, vf::VfioOpenOptions{dev_dir_, sys_.root()}));
  return std::unique_ptr<VfioAttachment>(new RealAttachment(std::move(f)));
}

}  // namespace npa::agent
