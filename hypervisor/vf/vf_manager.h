// hypervisor/vf/vf_manager.h — npa-agent's VF pool: which PCI functions the agent
// may hand to guests, each one's lifecycle (vf_lifecycle.h), and the steps of
// attach, revoke, forced detach and reset over npa_vf (sysfs binding) and a
// VfioLayer (container/group/device; faked in tests).
//
//   vf::SysfsRoot sys;
//   RealVfioLayer vfio(sys);
//   VfManager vfs(sys, vfio, {.pool = {{"0000:03:00.0", ""}}});
//   NPA_RETURN_IF_ERROR(vfs.Init());
//   NPA_ASSIGN_OR_RETURN(VfManager::Offer o, vfs.Attach("0000:03:00.0", guest_id, "g0", regions));
//   ... send o.msg + o.device_fd; on VfAccept{accepted}:  vfs.Accepted(o.msg.offer_id());
//   ... later: vfs.BeginRevoke(id); send Revoke; on RevokeDone: vfs.Release(id, "revoked", false);
//   ... or forced: vfs.RequestRelease(id) (VFIO REQ); on RevokeDone or the
//       grace deadline: vfs.Release(id, "forced", true);
//
// The manager is synchronous and single-threaded (the control thread); the
// control server owns the waits (VfAccept, RevokeDone) and their timeouts.
// The one exception is the unbind of a forced detach: the kernel's unbind
// blocks until every holder of the device fd lets go (it sends the holder a
// VFIO REQ interrupt meanwhile), so it runs on a worker thread and the VF
// stays RESETTING until Poll() sees it finish.
//
// Attach (FREE -> BINDING -> BOUND -> MAPPED -> OFFERED):
//   BINDING  driver_override=vfio-pci via VfBinder, with reset_method chosen
//            first: the configured one, else "bus" when the function offers no
//            FLR (QEMU's e1000e: its default "pm" reset is a silent no-op,
//            shared/lab/NOTES.md); then VfioLayer::Open (one container per
//            attachment).
//   MAPPED   every announced region MAP_DMA'd at its iova (vaddr = the agent's
//            mapping), then VFIO_DEVICE_RESET so the guest starts from a clean
//            device.
//   OFFERED  a dup of the device fd for the guest; the agent keeps its own.
// A failing step rolls back (unmap, close) and names the step and the VF.
//
// Release (-> RESETTING -> FREE): VFIO_DEVICE_RESET (quiesced first by the
// guest on a planned revoke: quiesce, then reset), unmap every region, close
// device/group/container, and if Options::restore_driver the original driver
// is bound again. A failing reset or unmap ends in FAILED (never handed out
// again until `npactl vf reset` succeeds).
//
// Adoption after an agent restart (docs/security.md "Agent restart"): the
// restart roster names the VFs guests were using; Adopt marks each FREE ->
// ADOPTED with its holder's name and offer id, and the agent holds NO fd for
// it. Rejoin ties it to the guest once that guest is back (its Hello.resume).
// It is never offered nor reset in place. It is reclaimed (ADOPTED/REVOKING
// -> RESETTING -> FREE: open the group afresh, VFIO_DEVICE_RESET, close)
// only once the group opens again: a group node opens once, and a device fd
// the guest holds keeps it open (EBUSY), so a successful open is the
// kernel's word that nobody drives the function any more. Release tries that
// (after the returned guest's RevokeDone, or when it goes away); a busy
// group leaves the VF ADOPTED with no live holder (an orphan), and Poll()
// tries again every Options::adopt_probe_ms. Nothing is unbound for an
// ADOPTED VF, forced or not: the agent cannot reset it before its holder
// lets go, and the holder's frames are its own.
#ifndef NPA_HYPERVISOR_VF_VF_MANAGER_H_
#define NPA_HYPERVISOR_VF_VF_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "hypervisor/vf/guest_regions.h"
#include "hypervisor/vf/pci_inventory.h"
#include "hypervisor/vf/sysfs.h"
#include "hypervisor/vf/vf_bind.h"
#include "hypervisor/vf/vf_lifecycle.h"
#include "hypervisor/vf/vfio_layer.h"
#include "include/npa/control.pb.h"

namespace npa::agent {

struct VfPoolEntry {
  std::string bdf;
  std::string reset_method;  // "" = automatic (see the header comment)
};

// Parses the agent's --vf argument: "BDF" or "BDF,reset=METHOD".
absl::StatusOr<VfPoolEntry> ParseVfPoolArg(absl::string_view arg);

// One row of `npactl vf list`: inventory plus pool state.
struct VfView {
  vf::PciFunction fn;
  uint32_t revision = 0;
  bool in_pool = false;
  std::string state;       // VfStateName, "" if not in the pool
  uint64_t guest_id = 0;   // 0: none
  std::string guest;       // holder's name, "" if none
  uint64_t offer_id = 0;
  std::string last_error;
};

class VfManager {
 public:
  struct Options {
    std::vector<VfPoolEntry> pool;
    bool restore_driver = false;  // rebind the original driver when a VF goes FREE
    absl::Duration bind_wait = absl::Seconds(5);
    // How often Poll() tries to open the group of an ADOPTED VF whose guest
    // is not (or no longer) connected; 0: every Poll.
    uint32_t adopt_probe_ms = 1000;
  };
  // An ADOPTED VF as Rejoin hands it to its returned guest.
  struct Adopted {
    std::string bdf;
    uint64_t offer_id = 0;
  };
  struct Offer {
    control::VfOffer msg;
    UniqueFd device_fd;  // for the guest (SCM_RIGHTS); the agent keeps its own
  };

  // sys and vfio must outlive the manager.
  VfManager(vf::SysfsRoot& sys, VfioLayer& vfio, Options opts);
  ~VfManager();
  VfManager(const VfManager&) = delete;
  VfManager& operator=(const VfManager&) = delete;

  // Checks every pool entry: a valid, existing function with an IOMMU group.
  // Errors name the entry. Duplicate entries are kInvalidArgument.
  absl::Status Init();

  // FREE -> OFFERED for guest `guest_id`. kNotFound if `bdf` is not in the
  // pool; kFailedPrecondition if it is not FREE (naming its state and
  // holder); other codes from the failing step.
  absl::StatusOr<Offer> Attach(absl::string_view bdf, uint64_t guest_id,
                               const std::string& guest_name, const GuestRegions& regions);
  // OFFERED -> ACTIVE.
  absl::Status Accepted(uint64_t offer_id);
  // ACTIVE -> REVOKING.
  absl::Status BeginRevoke(uint64_t offer_id);
  // ACTIVE -> REVOKING by way of the device, for a forced detach: fires the
  // VFIO REQ interrupt the guest wired (VfioAttachment::RequestRelease), so a
  // cooperating guest quiesces and drains the still-working device, closes
  // its fd and says RevokeDone; the agent resets only after that (or after
  // its grace period). kFailedPrecondition, state unchanged, if the guest
  // wired no REQ eventfd or the VF is not ACTIVE.
  absl::Status RequestRelease(uint64_t offer_id);
  // OFFERED/ACTIVE/REVOKING -> RESETTING -> FREE (or FAILED): see the header
  // comment. force_unbind additionally unbinds the function from vfio-pci on a
  // worker thread (the kernel then REQs a guest still holding the fd); the VF
  // stays RESETTING until Poll() sees the unbind finish. The returned status
  // is the teardown's (the VF is released either way). For an adopted VF
  // (IsAdopted) it is Reclaim instead, forced or not: kUnavailable (the
  // group's open error) when its group is still busy, and the VF stays
  // ADOPTED without a live holder.
  absl::Status Release(uint64_t offer_id, const std::string& why, bool force_unbind);
  // FREE -> ADOPTED: the restart roster says guest `guest_name` held `bdf`
  // under `offer_id` when the previous agent stopped. kNotFound if not in the
  // pool; kFailedPrecondition if not FREE (two roster lines naming one VF);
  // kInvalidArgument for offer id 0. Later offers get ids above offer_id.
  absl::Status Adopt(absl::string_view bdf, const std::string& guest_name, uint64_t offer_id);
  // The guest named `guest_name` (id guest_id) is back: the ADOPTED VF it
  // held, now tied to guest_id (OfferOfGuest finds it), or nullopt if it
  // held none that is still waiting for it.
  std::optional<Adopted> Rejoin(const std::string& guest_name, uint64_t guest_id);
  // The VF of offer_id was adopted (ADOPTED, or REVOKING from there): the
  // agent has no fd for it.
  bool IsAdopted(uint64_t offer_id) const;
  // npactl vf reset: a FREE or FAILED pooled VF is bound (if needed), opened,
  // reset and closed. kFailedPrecondition "... detach it first" if a guest
  // holds it (for an ADOPTED one: naming the holder and that the agent has
  // no fd for it); kNotFound if not in the pool.
  absl::Status ResetVf(absl::string_view bdf);
  // npactl vf enable: sriov_numvfs on a PF (VfBinder::EnableVfs).
  absl::StatusOr<std::vector<std::string>> EnableVfs(absl::string_view pf, int num_vfs);

  // Finishes forced unbinds whose worker is done, and tries to reclaim the
  // ADOPTED VFs nobody connected holds (adopt_probe_ms apart). Control
  // thread, periodic.
  void Poll();

  // Network-class functions, SR-IOV PFs, VFs and pooled functions, by BDF.
  absl::StatusOr<std::vector<VfView>> List() const;
  // One pooled VF's view, or kNotFound.
  absl::StatusOr<VfView> Describe(absl::string_view bdf) const;

  // The offer a guest holds (any held state), if any.
  std::optional<uint64_t> OfferOfGuest(uint64_t guest_id) const;
  std::optional<std::string> BdfOfOffer(uint64_t offer_id) const;
  std::optional<VfState> StateOf(absl::string_view bdf) const;
  size_t pool_size() const { return vfs_.size(); }

 private:
  struct Unbind {
    std::thread worker;
    std::atomic<bool> done{false};
    absl::Status result;  // written by the worker before `done`
  };
  struct Vf {
    VfPoolEntry cfg;
    VfLifecycle lc;
    std::optional<vf::Binding> binding;  // the first bind's record (original driver)
    std::unique_ptr<VfioAttachment> dev;
    std::vector<std::pair<uint64_t, uint64_t>> mapped;  // iova, size
    uint64_t guest_id = 0;
    std::string guest_name;
    uint64_t offer_id = 0;
    std::string last_error;
    std::unique_ptr<Unbind> unbind;
    bool adopted = false;        // ADOPTED, or REVOKING from there: no fd held
    uint64_t next_probe_ms = 0;  // Poll's next try at the group of an orphan
  };

  Vf* Find(absl::string_view bdf);
  const Vf* Find(absl::string_view bdf) const;
  Vf* FindOffer(uint64_t offer_id);
  // One step along the VF's table; an illegal one is kFailedPrecondition
  // naming the VF and both states, with the state unchanged.
  absl::Status Move(Vf& v, VfState to);
  // Move for the rollback and teardown steps, which have no caller to refuse
  // to: an illegal step is logged with the VF's name and both states, kept in
  // last_error, and the VF goes to FAILED where the table allows it.
  void MoveOrFail(Vf& v, VfState to);
  // BINDING -> BOUND: vfio-pci + VfioLayer::Open. On failure back to FREE.
  absl::Status BindAndOpen(Vf& v);
  // Reset, unmap, close (any order-safe subset of what is held). Returns the
  // first failure; the rest still runs.
  absl::Status Teardown(Vf& v);
  void Finish(Vf& v, const absl::Status& teardown);
  // An adopted VF: open its group afresh; only if that succeeds (nobody
  // holds a device fd) RESETTING -> reset, close -> FREE. A busy group:
  // REVOKING -> ADOPTED, guest_id 0 (an orphan Poll retries), the open's
  // error returned.
  absl::Status Reclaim(Vf& v, const std::string& why);
  std::string ChooseResetMethod(const Vf& v) const;
  void FillView(const Vf* v, VfView* out) const;

  vf::SysfsRoot& sys_;
  VfioLayer& vfio_;
  Options opts_;
  vf::VfBinder binder_;
  std::map<std::string, Vf> vfs_;  // by lower-case BDF
  uint64_t next_offer_id_ = 1;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VF_VF_MANAGER_H_
