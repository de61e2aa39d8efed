#include "hypervisor/vf/vf_manager.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace npa::agent {
namespace {

std::string DevAttr(absl::string_view bdf, absl::string_view attr) {
  return absl::StrCat("bus/pci/devices/", bdf, "/", attr);
}

bool Has(const std::vector<std::string>& v, absl::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// npa_vf's PciFunction has no revision; sysfs has it as "0x01".
uint32_t ReadRevision(const vf::SysfsRoot& sys, absl::string_view bdf) {
  auto s = sys.Read(DevAttr(bdf, "revision"));
  uint32_t v = 0;
  if (s.ok()) {
    absl::string_view t = absl::StripAsciiWhitespace(*s);
    if (absl::ConsumePrefix(&t, "0x") && absl::SimpleHexAtoi(t, &v)) return v & 0xff;
  }
  return 0;
}

absl::Status Prefix(const absl::Status& s, absl::string_view what) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

}  // namespace

absl::StatusOr<VfPoolEntry> ParseVfPoolArg(absl::string_view arg) {
  std::vector<std::string> parts = absl::StrSplit(arg, ',');
  VfPoolEntry e;
  e.bdf = absl::AsciiStrToLower(parts[0]);
  NPA_RETURN_IF_ERROR(Prefix(vf::ValidateBdf(e.bdf), absl::StrCat("--vf '", arg, "'")));
  for (size_t i = 1; i < parts.size(); i++) {
    absl::string_view p = parts[i];
    if (absl::ConsumePrefix(&p, "reset=") && !p.empty()) {
      e.reset_method = std::string(p);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--vf '", arg, "': unknown option '", parts[i], "' (want reset=METHOD)"));
    }
  }
  return e;
}

VfManager::VfManager(vf::SysfsRoot& sys, VfioLayer& vfio, Options opts)
    : sys_(sys), vfio_(vfio), opts_(std::move(opts)), binder_(sys, opts_.bind_wait) {}

VfManager::~VfManager() {
  for (auto& [bdf, v] : vfs_) {
    if (v.unbind && v.unbind->worker.joinable()) {
      // A guest that has exited lets the unbind finish promptly; give it a
      // bounded moment so the worker never outlives the SysfsRoot it uses.
      for (int i = 0; i < 300 && !v.unbind->done.load(); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (v.unbind->done.load()) {
        v.unbind->worker.join();
      } else {
        // Still blocked in the kernel's unbind (a guest holds the fd): the
        // process outlives this object only at exit, so let it go.
        NPA_LOG(Warn, "vf %s: unbind still waiting for the guest to close the device fd", bdf.c_str());
        v.unbind->worker.detach();
        (void)v.unbind.release();  // the worker writes into it
      }
    }
    if (v.dev) (void)Teardown(v);
  }
}

VfManager::Vf* VfManager::Find(absl::string_view bdf) {
  auto it = vfs_.find(absl::AsciiStrToLower(bdf));
  return it == vfs_.end() ? nullptr : &it->second;
}
const VfManager::Vf* VfManager::Find(absl::string_view bdf) const {
  auto it = vfs_.find(absl::AsciiStrToLower(bdf));
  return it == vfs_.end() ? nullptr : &it->second;
}
VfManager::Vf* VfManager::FindOffer(uint64_t offer_id) {
  if (offer_id == 0) return nullptr;
  for (auto& [b, v] : vfs_)
    if (v.offer_id == offer_id) return &v;
  return nullptr;
}

absl::Status VfManager::Move(Vf& v, VfState to) {
  absl::Status s = v.lc.Transition(to);
  if (!s.ok()) return Prefix(s, absl::StrCat("vf ", v.cfg.bdf));
  NPA_LOG(Debug, "vf %s: %s", v.cfg.bdf.c_str(), v.lc.name());
  return s;
}

void VfManager::MoveOrFail(Vf& v, VfState to) {
  absl::Status s = Move(v, to);
  if (s.ok()) return;
  // Only a bug gets here (every caller runs where the table has the edge):
  // keep the function out of the pool rather than guess what it holds.
  v.last_error = std::string(s.message());
  const bool failed = v.lc.CanFire(VfState::kFailed) && v.lc.Fire(VfState::kFailed).ok();
  NPA_LOG(Error, "%s; %s", v.last_error.c_str(),
          failed ? "marked FAILED" : "left where it is until npactl vf reset");
}

absl::Status VfManager::Init() {
  for (const VfPoolEntry& e : opts_.pool) {
    std::string bdf = absl::AsciiStrToLower(e.bdf);
    NPA_RETURN_IF_ERROR(Prefix(vf::ValidateBdf(bdf), "VF pool entry"));
    if (vfs_.count(bdf)) return absl::InvalidArgumentError(absl::StrCat("VF pool lists ", bdf, " twice"));
    if (!sys_.Exists(absl::StrCat("bus/pci/devices/", bdf)))
      return absl::NotFoundError(absl::StrCat("VF pool entry ", bdf, ": no such PCI function"));
    if (!sys_.Exists(DevAttr(bdf, "iommu_group")))
      return absl::FailedPreconditionError(absl::StrCat(
          "VF pool entry ", bdf, ": no IOMMU group (IOMMU off? boot with intel_iommu=on)"));
    Vf& v = vfs_[bdf];
    v.cfg = e;
    v.cfg.bdf = bdf;
    NPA_LOG(Info, "vf %s: in the pool (reset method %s)", bdf.c_str(),
            e.reset_method.empty() ? "auto" : e.reset_method.c_str());
  }
  return absl::OkStatus();
}

std::string VfManager::ChooseResetMethod(const Vf& v) const {
  if (!v.cfg.reset_method.empty()) return v.cfg.reset_method;
  auto rm = sys_.Read(DevAttr(v.cfg.bdf, "reset_method"));
  if (!rm.ok()) return "";
  std::vector<std::string> methods = absl::StrSplit(*rm, ' ', absl::SkipWhitespace());
  // With FLR the kernel's order is right. Without it the kernel would try
  // "pm" first, which QEMU's e1000e acknowledges and ignores (NOTES.md), so
  // prefer a secondary bus reset when there is one.
  if (Has(methods, "flr") || Has(methods, "af_flr")) return "";
  if (Has(methods, "bus") && methods.front() != "bus") return "bus";
  return "";
}

absl::Status VfManager::BindAndOpen(Vf& v) {
  NPA_RETURN_IF_ERROR(Move(v, VfState::kBinding));
  vf::BindOptions bo;
  bo.reset_method = ChooseResetMethod(v);
  auto b = binder_.BindToVfio(v.cfg.bdf, bo);
  if (!b.ok()) {
    MoveOrFail(v, VfState::kFree);
    v.last_error = absl::StrCat("bind to vfio-pci: ", b.status().message());
    return Prefix(b.status(), absl::StrCat("vf ", v.cfg.bdf, ": bind to vfio-pci"));
  }
  if (!v.binding) v.binding = *b;  // the first record knows the original driver
  auto dev = vfio_.Open(v.cfg.bdf);
  if (!dev.ok()) {
    MoveOrFail(v, VfState::kFree);
    v.last_error = absl::StrCat("open VFIO device: ", dev.status().message());
    return Prefix(dev.status(), absl::StrCat("vf ", v.cfg.bdf, ": open VFIO container/group/device"));
  }
  v.dev = std::move(*dev);
  return Move(v, VfState::kBound);
}

absl::StatusOr<VfManager::Offer> VfManager::Attach(absl::string_view bdf, uint64_t guest_id,
                                                   const std::string& guest_name,
                                                   const GuestRegions& regions) {
  Vf* v = Find(bdf);
  if (!v)
    return absl::NotFoundError(absl::StrCat(bdf, " is not in the VF pool (start npa-agent with --vf ",
                                            bdf, ")"));
  // Attach starts with FREE -> BINDING: the table says which VF may.
  if (!v->lc.CanFire(VfState::kBinding))
    return absl::FailedPreconditionError(absl::StrCat(
        "vf ", v->cfg.bdf, " is ", v->lc.name(),
        v->guest_name.empty() ? "" : absl::StrCat(" (held by guest '", v->guest_name, "')"),
        ", not FREE"));
  if (regions.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "guest '", guest_name, "' announced no memory regions (RegionAnnounce) to DMA-map"));
  auto info = vf::DescribePciFunction(sys_, v->cfg.bdf);
  if (!info.ok()) return Prefix(info.status(), absl::StrCat("vf ", v->cfg.bdf, ": describe"));

  NPA_RETURN_IF_ERROR(BindAndOpen(*v));
  v->guest_id = guest_id;
  v->guest_name = guest_name;
  auto fail = [&](const absl::Status& s, absl::string_view step) -> absl::Status {
    absl::Status named = Prefix(s, absl::StrCat("vf ", v->cfg.bdf, ": ", step));
    v->last_error = std::string(named.message());
    NPA_LOG(Warn, "%s; rolling back", v->last_error.c_str());
    MoveOrFail(*v, VfState::kResetting);
    Finish(*v, Teardown(*v));
    return named;
  };
  for (const GuestRegion& r : regions.regions()) {
    absl::Status s = v->dev->MapDma(r.vaddr(), r.iova, r.size);
    if (!s.ok()) return fail(s, "map guest memory");
    v->mapped.emplace_back(r.iova, r.size);
  }
  if (absl::Status s = v->dev->Reset(); !s.ok()) return fail(s, "VFIO_DEVICE_RESET before the offer");
  NPA_RETURN_IF_ERROR(Move(*v, VfState::kMapped));
  auto fd = v->dev->DupDeviceFd();
  if (!fd.ok()) return fail(fd.status(), "dup the device fd");
  Offer o;
  o.device_fd = std::move(*fd);
  v->offer_id = next_offer_id_++;
  o.msg.set_pci_address(v->cfg.bdf);
  o.msg.set_vendor(info->vendor);
  o.msg.set_device(info->device);
  o.msg.set_subsystem_vendor(info->subsystem_vendor);
  o.msg.set_subsystem_device(info->subsystem_device);
  o.msg.set_class_code(info->class_code);
  o.msg.set_revision(ReadRevision(sys_, v->cfg.bdf));
  o.msg.set_offer_id(v->offer_id);
  NPA_RETURN_IF_ERROR(Move(*v, VfState::kOffered));
  v->last_error.clear();
  NPA_LOG(Info, "vf %s: offered to guest '%s' (offer %lu, %zu regions mapped)", v->cfg.bdf.c_str(),
          guest_name.c_str(), static_cast<unsigned long>(v->offer_id), v->mapped.size());
  return o;
}

absl::Status VfManager::Accepted(uint64_t offer_id) {
  Vf* v = FindOffer(offer_id);
  if (!v) return absl::NotFoundError(absl::StrCat("no VF offer ", offer_id));
  return Move(*v, VfState::kActive);
}

absl::Status VfManager::BeginRevoke(uint64_t offer_id) {
  Vf* v = FindOffer(offer_id);
  if (!v) return absl::NotFoundError(absl::StrCat("no VF offer ", offer_id));
  return Move(*v, VfState::kRevoking);
}

absl::Status VfManager::RequestRelease(uint64_t offer_id) {
  Vf* v = FindOffer(offer_id);
  if (!v) return absl::NotFoundError(absl::StrCat("no VF offer ", offer_id));
  if (!v->lc.CanFire(VfState::kRevoking) || !v->dev)
    return absl::FailedPreconditionError(
        absl::StrCat("vf ", v->cfg.bdf, " is ", v->lc.name(), ", not ACTIVE: no VFIO REQ to send"));
  NPA_RETURN_IF_ERROR(Prefix(v->dev->RequestRelease(), absl::StrCat("vf ", v->cfg.bdf, ": VFIO REQ")));
  NPA_LOG(Info, "vf %s: VFIO REQ raised for guest '%s' (offer %lu)", v->cfg.bdf.c_str(),
          v->guest_name.c_str(), static_cast<unsigned long>(offer_id));
  return Move(*v, VfState::kRevoking);
}

absl::Status VfManager::Teardown(Vf& v) {
  absl::Status first;
  if (v.dev) {
    if (absl::Status s = v.dev->Reset(); !s.ok() && first.ok())
      first = Prefix(s, "VFIO_DEVICE_RESET");
    for (auto [iova, size] : v.mapped)
      if (absl::Status s = v.dev->UnmapDma(iova, size); !s.ok() && first.ok())
        first = Prefix(s, "unmap guest memory");
  }
  v.mapped.clear();
  v.dev.reset();  // device, group, container
  return first;
}

void VfManager::Finish(Vf& v, const absl::Status& teardown) {
  v.guest_id = 0;
  v.guest_name.clear();
  v.offer_id = 0;
  if (!teardown.ok()) {
    v.last_error = absl::StrCat("teardown: ", teardown.message());
    NPA_LOG(Error, "vf %s: %s; marked FAILED", v.cfg.bdf.c_str(), v.last_error.c_str());
    MoveOrFail(v, VfState::kFailed);
    return;
  }
  if (opts_.restore_driver && v.binding && v.binding->original_driver != "vfio-pci") {
    if (absl::Status s = binder_.Restore(*v.binding); !s.ok()) {
      v.last_error = absl::StrCat("restore original driver: ", s.message());
      NPA_LOG(Error, "vf %s: %s; marked FAILED", v.cfg.bdf.c_str(), v.last_error.c_str());
      MoveOrFail(v, VfState::kFailed);
      return;
    }
    v.binding.reset();
  }
  MoveOrFail(v, VfState::kFree);
}

absl::Status VfManager::Release(uint64_t offer_id, const std::string& why, bool force_unbind) {
  Vf* v = FindOffer(offer_id);
  if (!v) return absl::NotFoundError(absl::StrCat("no VF offer ", offer_id));
  // No fd of ours to reset with, and no unbind: see the header comment.
  if (v->adopted) return Reclaim(*v, why);
  NPA_RETURN_IF_ERROR(Move(*v, VfState::kResetting));
  NPA_LOG(Info, "vf %s: released by guest '%s' (%s)%s", v->cfg.bdf.c_str(), v->guest_name.c_str(),
          why.c_str(), force_unbind ? ", forced" : "");
  absl::Status td = Teardown(*v);
  if (!force_unbind) {
    Finish(*v, td);
    return td;
  }
  v->guest_id = 0;
  v->guest_name.clear();
  v->offer_id = 0;
  if (!td.ok()) v->last_error = absl::StrCat("teardown: ", td.message());
  // The kernel's unbind waits for every device fd to close and sends the
  // holder VFIO REQ meanwhile (vfio_unregister_group_dev); it must not block
  // the control thread. drivers_probe then puts vfio-pci back (the override
  // stays), so the VF remains attachable.
  auto u = std::make_unique<Unbind>();
  Unbind* up = u.get();
  std::string bdf = v->cfg.bdf;
  u->worker = std::thread([this, up, bdf, td] {
    absl::Status s = td;
    absl::Status w = sys_.Write(DevAttr(bdf, "driver/unbind"), bdf);
    if (!w.ok() && !absl::IsNotFound(w) && s.ok()) s = Prefix(w, "unbind from vfio-pci");
    w = sys_.Write("bus/pci/drivers_probe", bdf);
    if (!w.ok() && s.ok()) s = Prefix(w, "drivers_probe");
    up->result = s;
    up->done.store(true, std::memory_order_release);
  });
  v->unbind = std::move(u);
  return td;
}

absl::Status VfManager::Adopt(absl::string_view bdf, const std::string& guest_name,
                              uint64_t offer_id) {
  Vf* v = Find(bdf);
  if (!v)
    return absl::NotFoundError(absl::StrCat(bdf, " (held by guest '", guest_name,
                                            "' before the restart) is not in the VF pool"));
  if (offer_id == 0)
    return absl::InvalidArgumentError(absl::StrCat("vf ", v->cfg.bdf, ": adopt with offer id 0"));
  for (const auto& [b, o] : vfs_)
    if (o.offer_id == offer_id)
      return absl::InvalidArgumentError(absl::StrCat("vf ", v->cfg.bdf, ": offer id ", offer_id,
                                                     " already names vf ", b));
  if (!v->lc.CanFire(VfState::kAdopted))
    return absl::FailedPreconditionError(absl::StrCat(
        "vf ", v->cfg.bdf, " is ", v->lc.name(),
        v->guest_name.empty() ? "" : absl::StrCat(" (held by guest '", v->guest_name, "')"),
        ": cannot adopt it for guest '", guest_name, "'"));
  NPA_RETURN_IF_ERROR(Move(*v, VfState::kAdopted));
  v->adopted = true;
  v->guest_id = 0;
  v->guest_name = guest_name;
  v->offer_id = offer_id;
  v->next_probe_ms = 0;
  next_offer_id_ = std::max(next_offer_id_, offer_id + 1);
  NPA_LOG(Info, "vf %s: ADOPTED: guest '%s' held it (offer %lu) before the agent restarted; "
          "not offered or reset until it is given back", v->cfg.bdf.c_str(), guest_name.c_str(),
          static_cast<unsigned long>(offer_id));
  return absl::OkStatus();
}

std::optional<VfManager::Adopted> VfManager::Rejoin(const std::string& guest_name,
                                                    uint64_t guest_id) {
  for (auto& [b, v] : vfs_) {
    if (!v.adopted || v.lc.state() != VfState::kAdopted || v.guest_id != 0 ||
        v.guest_name != guest_name)
      continue;
    v.guest_id = guest_id;
    v.last_error.clear();
    return Adopted{b, v.offer_id};
  }
  return std::nullopt;
}

bool VfManager::IsAdopted(uint64_t offer_id) const {
  for (const auto& [b, v] : vfs_)
    if (offer_id && v.offer_id == offer_id) return v.adopted;
  return false;
}

absl::Status VfManager::Reclaim(Vf& v, const std::string& why) {
  // The open is harmless while the guest holds the device fd: the group node
  // refuses a second opener (EBUSY) before anything touches the device.
  auto dev = vfio_.Open(v.cfg.bdf);
  if (!dev.ok()) {
    if (v.lc.state() == VfState::kRevoking) MoveOrFail(v, VfState::kAdopted);
    v.guest_id = 0;
    v.next_probe_ms = MonotonicMs() + opts_.adopt_probe_ms;
    v.last_error = absl::StrCat("still held by guest '", v.guest_name, "' (", why,
                                "): ", dev.status().message());
    return absl::Status(dev.status().code(),
                        absl::StrCat("vf ", v.cfg.bdf, ": ", v.last_error,
                                     "; it stays ADOPTED until its device fd closes"));
  }
  v.dev = std::move(*dev);
  v.adopted = false;
  MoveOrFail(v, VfState::kResetting);
  if (v.lc.state() != VfState::kResetting) {  // a bug (MoveOrFail logged it): hold nothing
    v.dev.reset();
    return absl::InternalError(v.last_error);
  }
  NPA_LOG(Info, "vf %s: reclaimed from guest '%s' (%s): nobody holds its device fd", v.cfg.bdf.c_str(),
          v.guest_name.c_str(), why.c_str());
  // Nothing to unmap: the guest's mappings were in the previous agent's
  // container, which the kernel dropped with the last fd of the group.
  absl::Status td = Teardown(v);
  Finish(v, td);
  if (td.ok()) v.last_error.clear();
  return Prefix(td, absl::StrCat("vf ", v.cfg.bdf));
}

void VfManager::Poll() {
  const uint64_t now = MonotonicMs();
  for (auto& [bdf, v] : vfs_) {
    if (v.lc.state() != VfState::kAdopted || v.guest_id != 0 || now < v.next_probe_ms) continue;
    // Busy: stays an orphan (last_error says so); the next try is due later.
    Reclaim(v, "its guest is not connected").IgnoreError();
  }
  for (auto& [bdf, v] : vfs_) {
    if (!v.unbind || !v.unbind->done.load(std::memory_order_acquire)) continue;
    v.unbind->worker.join();
    absl::Status s = v.unbind->result;
    v.unbind.reset();
    NPA_LOG(Info, "vf %s: forced unbind finished: %s", bdf.c_str(), s.ok() ? "ok" : std::string(s.message()).c_str());
    Finish(v, s);
  }
}

absl::Status VfManager::ResetVf(absl::string_view bdf) {
  Vf* v = Find(bdf);
  if (!v) return absl::NotFoundError(absl::StrCat(bdf, " is not in the VF pool"));
  const VfState st = v->lc.state();
  if (v->adopted)
    return absl::FailedPreconditionError(absl::StrCat(
        "vf ", v->cfg.bdf, " is ", v->lc.name(), ": guest '", v->guest_name,
        "' has held it since before the agent restarted and may still drive it; the agent holds "
        "no fd for it and does not reset it under the guest. Detach it first (npactl vf detach ",
        v->guest_name, "), or stop the guest: it is reclaimed once its device fd closes"));
  if (st != VfState::kFree && st != VfState::kFailed)
    return absl::FailedPreconditionError(absl::StrCat(
        "vf ", v->cfg.bdf, " is ", v->lc.name(),
        v->guest_name.empty() ? "" : absl::StrCat(" (attached to guest '", v->guest_name, "')"),
        "; detach it first"));
  if (v->lc.state() == VfState::kFree) {
    NPA_RETURN_IF_ERROR(BindAndOpen(*v));
  } else if (!v->dev) {
    // FAILED: try a fresh open; the route out of FAILED is RESETTING only.
    auto dev = vfio_.Open(v->cfg.bdf);
    if (!dev.ok()) {
      v->last_error = absl::StrCat("reset: open VFIO device: ", dev.status().message());
      return Prefix(dev.status(), absl::StrCat("vf ", v->cfg.bdf, ": open for reset"));
    }
    v->dev = std::move(*dev);
  }
  NPA_RETURN_IF_ERROR(Move(*v, VfState::kResetting));
  absl::Status td = Teardown(*v);
  Finish(*v, td);
  if (td.ok()) {
    v->last_error.clear();
    NPA_LOG(Info, "vf %s: reset (VFIO_DEVICE_RESET) done", v->cfg.bdf.c_str());
  }
  return Prefix(td, absl::StrCat("vf ", v->cfg.bdf));
}

absl::StatusOr<std::vector<std::string>> VfManager::EnableVfs(absl::string_view pf, int num_vfs) {
  for (const auto& [bdf, v] : vfs_) {
    auto phys = sys_.ReadLink(DevAttr(bdf, "physfn"));
    if (phys.ok() && vf::Basename(*phys) == absl::AsciiStrToLower(pf) && v.lc.state() != VfState::kFree)
      return absl::FailedPreconditionError(absl::StrCat("VF ", bdf, " of ", pf, " is ", v.lc.name(),
                                                        "; detach it before changing sriov_numvfs"));
  }
  if (num_vfs == 0) {
    NPA_RETURN_IF_ERROR(binder_.DisableVfs(pf));
    return std::vector<std::string>{};
  }
  return binder_.EnableVfs(pf, num_vfs);
}

void VfManager::FillView(const Vf* v, VfView* out) const {
  out->revision = ReadRevision(sys_, out->fn.bdf);
  out->in_pool = v != nullptr;
  if (!v) return;
  out->state = v->lc.name();
  out->guest_id = v->guest_id;
  out->guest = v->guest_name;
  out->offer_id = v->offer_id;
  out->last_error = v->last_error;
  if (v->unbind) out->last_error = "forced unbind pending: waiting for the guest to close the device fd";
  if (v->adopted && v->guest_id == 0 && out->last_error.empty())
    out->last_error = "its guest is not back since the agent restarted; reclaimed once its device fd closes";
}

absl::StatusOr<std::vector<VfView>> VfManager::List() const {
  NPA_ASSIGN_OR_RETURN(std::vector<vf::PciFunction> fns, vf::ListPciFunctions(sys_));
  std::vector<VfView> out;
  for (auto& f : fns) {
    const Vf* v = Find(f.bdf);
    if (!v && !f.is_network() && !f.sriov_capable && !f.is_vf()) continue;
    VfView view;
    view.fn = std::move(f);
    FillView(v, &view);
    out.push_back(std::move(view));
  }
  return out;
}

absl::StatusOr<VfView> VfManager::Describe(absl::string_view bdf) const {
  const Vf* v = Find(bdf);
  if (!v) return absl::NotFoundError(absl::StrCat(bdf, " is not in the VF pool"));
  VfView view;
  view.fn.bdf = v->cfg.bdf;
  if (absl::Status s = vf::FillFromSysfs(sys_, view.fn); !s.ok()) return s;
  auto full = vf::DescribePciFunction(sys_, v->cfg.bdf);
  if (full.ok()) view.fn = std::move(*full);
  FillView(v, &view);
  return view;
}

std::optional<uint64_t> VfManager::OfferOfGuest(uint64_t guest_id) const {
  if (guest_id == 0) return std::nullopt;
  for (const auto& [b, v] : vfs_)
    if (v.guest_id == guest_id && v.offer_id) return v.offer_id;
  return std::nullopt;
}

std::optional<std::string> VfManager::BdfOfOffer(uint64_t offer_id) const {
  for (const auto& [b, v] : vfs_)
    if (offer_id && v.offer_id == offer_id) return b;
  return std::nullopt;
}

std::optional<VfState> VfManager::StateOf(absl::string_view bdf) const {
  const Vf* v = Find(bdf);
  if (!v) return std::nullopt;
  return v->lc.state();
}

}  // namespace npa::agent
