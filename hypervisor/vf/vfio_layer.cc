#include "hypervisor/vf/vfio_layer.h"

#include <linux/vfio.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "hypervisor/vf/vfio.h"

namespace npa::agent {
namespace {

class RealAttachment final : public VfioAttachment {
 public:
  RealAttachment(vf::VfioContainer c, vf::VfioGroup g, vf::VfioDevice d)
      : container_(std::move(c)), group_(std::move(g)), device_(std::move(d)) {}
  ~RealAttachment() override {
    // Members die in reverse order: device, then group, then container, which
    // is the order the kernel wants them released.
  }
  absl::Status MapDma(uint64_t vaddr, uint64_t iova, uint64_t size) override {
    return container_.MapDma(vaddr, iova, size);
  }
  absl::Status UnmapDma(uint64_t iova, uint64_t size) override {
    return container_.UnmapDma(iova, size);
  }
  absl::Status Reset() override { return device_.Reset(); }
  absl::StatusOr<UniqueFd> DupDeviceFd() override { return device_.Dup(); }
  absl::Status RequestRelease() override {
    absl::Status s = device_.TriggerIrq(VFIO_PCI_REQ_IRQ_INDEX, 0);
    // vfio_pci_set_ctx_trigger_single: DATA_NONE with no eventfd is EINVAL.
    if (absl::IsInvalidArgument(s))
      return absl::FailedPreconditionError(absl::StrCat(
          "the guest wired no VFIO REQ eventfd on ", device_.name(), " (", s.message(), ")"));
    return s;
  }
  int group() const override { return group_.id(); }

 private:
  vf::VfioContainer container_;
  vf::VfioGroup group_;
  vf::VfioDevice device_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<VfioAttachment>> RealVfioLayer::Open(absl::string_view bdf) {
  NPA_ASSIGN_OR_RETURN(int gid, vf::VfioGroup::GroupOf(sys_, bdf));
  NPA_ASSIGN_OR_RETURN(vf::VfioContainer c, vf::VfioContainer::Open(dev_dir_ + "/vfio"));
  auto g = vf::VfioGroup::Open(gid, dev_dir_);
  if (!g.ok())
    return absl::Status(g.status().code(),
                        absl::StrCat("open IOMMU group ", gid, " of ", bdf, ": ", g.status().message(),
                                     // EBUSY: a group node opens once; a guest that was
                                     // force-detached may still hold the device fd.
                                     absl::IsUnavailable(g.status())
                                         ? " (group busy: a previous holder still has it open)"
                                         : ""));
  NPA_RETURN_IF_ERROR(g->AttachTo(c));
  NPA_ASSIGN_OR_RETURN(vf::VfioDevice d, g->OpenDevice(bdf));
  return std::unique_ptr<VfioAttachment>(
      new RealAttachment(std::move(c), std::move(*g), std::move(d)));
}

}  // namespace npa::agent
