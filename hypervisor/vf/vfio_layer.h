// hypervisor/vf/vfio_layer.h — what the VF manager needs from VFIO, as an
// interface, so its attach/detach/reset sequences are tested without devices
// (a test seam; tests/support/fake_vfio_layer.h). The production
// implementation (RealVfioLayer) is a thin wrapper over the VFIO host library
// (hypervisor/vf/vfio.h, npa_vfio): one VfioFunction per guest attachment —
// its own type1 container, the function's IOMMU group attached, the device.
//
//   RealVfioLayer vfio(sys);
//   NPA_ASSIGN_OR_RETURN(std::unique_ptr<VfioAttachment> a, vfio.Open("0000:03:00.0"));
//   NPA_RETURN_IF_ERROR(a->MapDma(vaddr, iova, size));
//   NPA_RETURN_IF_ERROR(a->Reset());
//   NPA_ASSIGN_OR_RETURN(UniqueFd for_guest, a->DupDeviceFd());
//   a.reset();    // closes device, group, container; the kernel unmaps the rest
#ifndef NPA_HYPERVISOR_VF_VFIO_LAYER_H_
#define NPA_HYPERVISOR_VF_VFIO_LAYER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"
#include "hypervisor/vf/sysfs.h"

namespace npa::agent {

// One open device in its own container. Destruction closes device, group and
// container in that order.
class VfioAttachment {
 public:
  virtual ~VfioAttachment() = default;
  // DMA map / unmap in the attachment's container (VfioContainer::MapDma).
  virtual absl::Status MapDma(uint64_t vaddr, uint64_t iova, uint64_t size) = 0;
  virtual absl::Status UnmapDma(uint64_t iova, uint64_t size) = 0;
  // VFIO_DEVICE_RESET on the agent's own device fd.
  virtual absl::Status Reset() = 0;
  // A new fd for the same device (for SCM_RIGHTS to the guest).
  virtual absl::StatusOr<UniqueFd> DupDeviceFd() = 0;
  // Asks the guest holding the device to let go: fires the device's VFIO REQ
  // interrupt from the agent's fd (VFIO_DEVICE_SET_IRQS, DATA_NONE|TRIGGER on
  // VFIO_PCI_REQ_IRQ_INDEX, the loop-back vfio-pci supports), i.e. the same
  // signal the kernel sends when the function is unbound, but while the
  // device still works and the agent can still reset it afterwards (a
  // pending unbind holds the device lock, so VFIO_DEVICE_RESET would fail
  // with EAGAIN until it finishes). kFailedPrecondition when nobody wired a
  // REQ eventfd (vfio-pci answers EINVAL).
  virtual absl::Status RequestRelease() = 0;
  virtual int group() const = 0;
};

class VfioLayer {
 public:
  virtual ~VfioLayer() = default;
  // VfioFunction::Open: container + group (viability check, attach, IOMMU
  // model) + device. The function must already be bound to vfio-pci.
  virtual absl::StatusOr<std::unique_ptr<VfioAttachment>> Open(absl::string_view bdf) = 0;
};

class RealVfioLayer final : public VfioLayer {
 public:
  // dev_dir: where the group nodes and the container live ("/dev/vfio").
  explicit RealVfioLayer(const vf::SysfsRoot& sys, std::string dev_dir = "/dev/vfio")
      : sys_(sys), dev_dir_(std::move(dev_dir)) {}
  absl::StatusOr<std::unique_ptr<VfioAttachment>> Open(absl::string_view bdf) override;

 private:
  const vf::SysfsRoot& sys_;
  std::string dev_dir_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VF_VFIO_LAYER_H_
