// tests/lab/npa_lab_vf_probe.cc — drives the VF library (hypervisor/vf: sysfs
// inventory and binding, and the VFIO host library vfio.h) inside the lab
// guest. One subcommand per check; each prints "OK ..."/"INFO ..."
// lines, "FAIL: <why>" on failure, and exits 0 only if the check passed.
//
//   npa-lab-vf-probe inventory [--expect BDF=VVVV:DDDD:CCCCCC:DRIVER]...
//   npa-lab-vf-probe bind-cycle BDF [--reset-method M]
//   npa-lab-vf-probe dma BDF [--fault]          map a memfd, device DMA, unmapped IOVA
//   npa-lab-vf-probe tx BDF MARKER              one frame through the VFIO-bound NIC
//   npa-lab-vf-probe reset BDF                  VFIO_DEVICE_RESET, state read back
//   npa-lab-vf-probe sniff IFNAME MARKER MS     AF_PACKET: wait for a frame with MARKER
//   npa-lab-vf-probe sriov PF                   VF -> vfio-pci -> VFIO_DEVICE_RESET
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/vfio.h>
#include <net/if.h>
#include <poll.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "hypervisor/vf/pci_inventory.h"
#include "hypervisor/vf/vf_bind.h"
#include "hypervisor/vf/vfio.h"
#include "tests/lab/lab_nic.h"

namespace npa::lab {
namespace {
using agent::vf::BindOptions;
using agent::vf::Binding;
using agent::vf::PciFunction;
using agent::vf::SysfsRoot;
using agent::vf::VfBinder;
using agent::vf::VfioFunction;


#define OK(...) std::printf("OK %s\n", absl::StrFormat(__VA_ARGS__).c_str())
#define INFO(...) std::printf("INFO %s\n", absl::StrFormat(__VA_ARGS__).c_str())

// A function bound to vfio-pci and opened; Close() restores the driver.
struct Opened {
  SysfsRoot sys;
  VfBinder binder{sys};
  std::optional<Binding> binding;
  std::optional<VfioFunction> vfio;
  PciFunction fn;

  agent::vf::VfioContainer& container() { return vfio->container(); }
  agent::vf::VfioDevice& device() { return vfio->device(); }

  absl::Status Open(const std::string& bdf) {
    NPA_ASSIGN_OR_RETURN(fn, agent::vf::DescribePciFunction(sys, bdf));
    BindOptions opts;
    // QEMU's e1000e ignores the kernel's preferred "pm" reset (docs/vfio-lab.md, Pitfalls).
    if (KindOf(fn.vendor, fn.device) == NicKind::kE1000e) opts.reset_method = "bus";
    NPA_ASSIGN_OR_RETURN(Binding b, binder.BindToVfio(bdf, opts));
    binding = b;
    OK("%s bound to vfio-pci (was '%s')", bdf, b.original_driver);
    NPA_ASSIGN_OR_RETURN(VfioFunction f, VfioFunction::Open(bdf, {"/dev/vfio", sys.root()}));
    vfio.emplace(std::move(f));
    OK("container %s (iommu type %d), group %d viable+attached, device fd %d: regions=%u irqs=%u%s",
       container().path(), container().iommu_type(), vfio->group().id(), device().fd(),
       device().num_regions(), device().num_irqs(), device().can_reset() ? " RESET" : "");
    return absl::OkStatus();
  }
  absl::Status Close() {
    vfio.reset();  // device, group, container, in that order
    if (!binding) return absl::OkStatus();
    NPA_RETURN_IF_ERROR(binder.Restore(*binding));
    OK("%s restored to '%s'", binding->bdf, binding->original_driver);
    binding.reset();
    return absl::OkStatus();
  }
};

// The agent's memory convention: the guest shell maps a memfd (view A), the
// agent maps the same memfd itself (view B) and DMA-maps B with iova == A.
struct SharedRegion {
  UniqueFd memfd;
  uint8_t* shell_view = nullptr;
  uint8_t* agent_view = nullptr;
  uint64_t size = 0;
  ~SharedRegion() {
    if (shell_view) munmap(shell_view, size);
    if (agent_view) munmap(agent_view, size);
  }
};

absl::Status MakeShared(SharedRegion& r, uint64_t size) {
  r.size = size;
  r.memfd.reset(memfd_create("npa-lab-dma", MFD_CLOEXEC));
  if (!r.memfd) return ErrnoError(errno, "memfd_create");
  if (ftruncate(r.memfd.get(), static_cast<off_t>(size)) != 0) return ErrnoError(errno, "ftruncate memfd");
  for (uint8_t** v : {&r.shell_view, &r.agent_view}) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, r.memfd.get(), 0);
    if (p == MAP_FAILED) return ErrnoError(errno, "mmap memfd");
    *v = static_cast<uint8_t*>(p);
  }
  return absl::OkStatus();
}

int Fail(const absl::Status& st) {
  std::printf("FAIL: %s\n", std::string(st.message()).c_str());
  return 1;
}

// ------------------------------------------------------------------ commands

int Inventory(const std::vector<std::string>& args) {
  SysfsRoot sys;
  auto fns = agent::vf::ListPciFunctions(sys);
  if (!fns.ok()) return Fail(fns.status());
  std::printf("%s\n", agent::vf::PciFunctionsToJson(*fns).c_str());
  int checked = 0;
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    if (args[i] != "--expect") return Fail(absl::InvalidArgumentError("inventory: want --expect BDF=V:D:C:DRV"));
    std::vector<std::string> kv = absl::StrSplit(args[i + 1], absl::MaxSplits('=', 1));
    std::vector<std::string> f = absl::StrSplit(kv.size() == 2 ? kv[1] : "", ':');
    if (kv.size() != 2 || f.size() != 4) return Fail(absl::InvalidArgumentError("bad --expect " + args[i + 1]));
    const PciFunction* fn = nullptr;
    for (const auto& x : *fns) if (x.bdf == kv[0]) fn = &x;
    if (fn == nullptr) return Fail(absl::NotFoundError(kv[0] + " not in the inventory"));
    std::string got = absl::StrFormat("%04x:%04x:%06x:%s", fn->vendor, fn->device, fn->class_code, fn->driver);
    if (got != kv[1]) return Fail(absl::InternalError(absl::StrCat(kv[0], ": got ", got, ", want ", kv[1])));
    if (!fn->iommu_group) return Fail(absl::InternalError(kv[0] + " has no IOMMU group"));
    OK("%s = %s, iommu_group %d, reset_methods [%s]", kv[0], got, *fn->iommu_group,
       absl::StrJoin(fn->reset_methods, " "));
    ++checked;
  }
  OK("inventory: %u functions, %d checked", fns->size(), checked);
  return 0;
}

int BindCycle(const std::string& bdf) {
  Opened o;
  absl::Status st = o.Open(bdf);
  if (st.ok()) {
    auto dup = o.device().Dup();
    auto cfg = o.device().GetRegionInfo(VFIO_PCI_CONFIG_REGION_INDEX);
    st = dup.ok() ? cfg.status() : dup.status();
    if (st.ok()) {
      // The dup (what a guest gets) reaches the same device: read its ids.
      uint32_t id = 0;
      if (pread(dup->get(), &id, 4, static_cast<off_t>(cfg->offset)) != 4)
        st = ErrnoError(errno, "pread config through the dup'ed device fd");
      else if ((id & 0xffff) != o.fn.vendor || (id >> 16) != o.fn.device)
        st = absl::InternalError(absl::StrFormat("config via dup fd reads %08x", id));
      else
        OK("dup'ed device fd %d reads vendor:device %04x:%04x", dup->get(), id & 0xffff, id >> 16);
    }
  }
  absl::Status cs = o.Close();
  if (!st.ok()) return Fail(st);
  if (!cs.ok()) return Fail(cs);
  return 0;
}

int Dma(const std::string& bdf, bool fault, const std::string& marker) {
  Opened o;
  absl::Status st = [&]() -> absl::Status {
    NPA_RETURN_IF_ERROR(o.Open(bdf));
    NPA_ASSIGN_OR_RETURN(auto irqs, o.device().GetIrqCounts());
    INFO("irqs: MSI-X %u, ERR %u, REQ %u", irqs.msix, irqs.err, irqs.req);
    if (irqs.msix == 0) return absl::InternalError("no MSI-X vectors reported");
    SharedRegion r;
    NPA_RETURN_IF_ERROR(MakeShared(r, 2u << 20));
    const uint64_t iova = reinterpret_cast<uintptr_t>(r.shell_view);
    const uint64_t t0 = MonotonicNs();
    NPA_RETURN_IF_ERROR(o.container().MapDma(reinterpret_cast<uintptr_t>(r.agent_view), iova, r.size));
    OK("MAP_DMA memfd: agent vaddr %p at iova %#x (= shell vaddr), 2 MiB, %.2f ms", r.agent_view, iova, MsSince(t0));
    NPA_ASSIGN_OR_RETURN(LabNic nic, LabNic::Open(o.device(), KindOf(o.fn.vendor, o.fn.device)));
    INFO("%s", nic.Describe());
    const NicKind kind = KindOf(o.fn.vendor, o.fn.device);
    if (kind == NicKind::kE1000e) {
      NPA_ASSIGN_OR_RETURN(std::string mac, nic.ReadMac());
      OK("MAC from BAR0 RAL0/RAH0: %s", mac);
    }
    // The device is told shell-view IOVAs; we write and check through the
    // shell view: the same pages, reached by the device via the IOMMU.
    DmaArea area{r.shell_view, iova, r.size};
    const uint8_t src[6] = {0x02, 0, 0, 0x4c, 0, 0x10};
    NPA_ASSIGN_OR_RETURN(double ms, nic.TransmitOne(area, src, marker));
    OK("device DMA-read the frame and wrote completion back via IOVA %#x in %.2f ms", iova, ms);
    if (fault) {
      const uint64_t bad = 0x40000000;  // never mapped in this container
      NPA_RETURN_IF_ERROR(nic.KickUnmappedRing(bad));
      usleep(200 * 1000);
      std::vector<char> klog(1 << 18);
      int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, klog.data(), static_cast<int>(klog.size()) - 1);
      std::string text(klog.data(), n > 0 ? static_cast<size_t>(n) : 0);
      const std::string want = absl::StrFormat("fault addr 0x%x", bad);
      size_t at = text.find(want);
      if (at == std::string::npos)
        return absl::InternalError(absl::StrCat("no DMAR fault logged for unmapped IOVA ", want));
      size_t ls = text.rfind('\n', at);
      size_t le = text.find('\n', at);
      OK("unmapped IOVA blocked by the IOMMU: %s",
         text.substr(ls == std::string::npos ? 0 : ls + 1, le == std::string::npos ? std::string::npos : le - ls - 1));
    }
    NPA_RETURN_IF_ERROR(o.container().UnmapDma(iova, r.size));
    OK("UNMAP_DMA %#x", iova);
    return absl::OkStatus();
  }();
  absl::Status cs = o.Close();
  if (!st.ok()) return Fail(st);
  if (!cs.ok()) return Fail(cs);
  return 0;
}

int Reset(const std::string& bdf) {
  Opened o;
  absl::Status st = [&]() -> absl::Status {
    NPA_RETURN_IF_ERROR(o.Open(bdf));
    SharedRegion r;
    NPA_RETURN_IF_ERROR(MakeShared(r, 2u << 20));
    const uint64_t iova = reinterpret_cast<uintptr_t>(r.shell_view);
    NPA_RETURN_IF_ERROR(o.container().MapDma(reinterpret_cast<uintptr_t>(r.agent_view), iova, r.size));
    NPA_ASSIGN_OR_RETURN(LabNic nic, LabNic::Open(o.device(), KindOf(o.fn.vendor, o.fn.device)));
    const uint8_t src[6] = {0x02, 0, 0, 0x4c, 0, 0x11};
    NPA_RETURN_IF_ERROR(nic.TransmitOne(DmaArea{r.shell_view, iova, r.size}, src, "npa-lab reset").status());
    NPA_ASSIGN_OR_RETURN(bool live, nic.HasLiveState());
    if (!live) return absl::InternalError("device shows no programmed state before the reset");
    const uint64_t t0 = MonotonicNs();
    NPA_RETURN_IF_ERROR(o.device().Reset());
    const double ms = MsSince(t0);
    NPA_ASSIGN_OR_RETURN(live, nic.HasLiveState());
    if (live) return absl::InternalError("state survived VFIO_DEVICE_RESET: the reset was a no-op");
    SysfsRoot sys;
    auto rm = sys.Read("bus/pci/devices/" + bdf + "/reset_method");
    OK("VFIO_DEVICE_RESET in %.1f ms (reset_method '%s'); programmed state cleared", ms, rm.ok() ? *rm : "?");
    return absl::OkStatus();
  }();
  absl::Status cs = o.Close();
  if (!st.ok()) return Fail(st);
  if (!cs.ok()) return Fail(cs);
  return 0;
}

int Sniff(const std::string& ifname, const std::string& marker, int ms) {
  UniqueFd s(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
  if (!s) return Fail(ErrnoError(errno, "socket(AF_PACKET)"));
  struct sockaddr_ll sll = {};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (sll.sll_ifindex == 0) return Fail(ErrnoError(errno, "if_nametoindex ", ifname));
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) return Fail(ErrnoError(errno, "bind"));
  std::printf("READY\n");
  std::fflush(stdout);
  const uint64_t t0 = MonotonicNs();
  int seen = 0;
  while (MsSince(t0) < ms) {
    struct pollfd p = {s.get(), POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    uint8_t buf[2048];
    ssize_t n = recv(s.get(), buf, sizeof(buf), 0);
    if (n < 14) continue;
    ++seen;
    std::string frame(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    if (frame.find(marker) != std::string::npos) {
      OK("frame with marker '%s' from %02x:%02x:%02x:%02x:%02x:%02x, ethertype %02x%02x, %zd bytes", marker, buf[6],
         buf[7], buf[8], buf[9], buf[10], buf[11], buf[12], buf[13], n);
      return 0;
    }
  }
  return Fail(absl::DeadlineExceededError(
      absl::StrFormat("no frame with marker '%s' on %s within %d ms (%d other frames)", marker, ifname, ms, seen)));
}

int Sriov(const std::string& pf) {
  SysfsRoot sys;
  VfBinder binder(sys);
  auto vfs = binder.EnableVfs(pf, 1);
  if (!vfs.ok()) return Fail(vfs.status());
  OK("%s: sriov_numvfs=1 -> virtfn0 = %s", pf, (*vfs)[0]);
  const std::string vf = (*vfs)[0];
  Opened o;
  absl::Status st = [&]() -> absl::Status {
    NPA_ASSIGN_OR_RETURN(PciFunction f, agent::vf::DescribePciFunction(sys, vf));
    if (f.physfn != pf) return absl::InternalError(absl::StrCat(vf, " physfn is '", f.physfn, "'"));
    OK("VF %s %04x:%04x physfn %s, reset_methods [%s]", vf, f.vendor, f.device, f.physfn,
       absl::StrJoin(f.reset_methods, " "));
    NPA_RETURN_IF_ERROR(o.Open(vf));
    uint32_t id = 0;
    NPA_RETURN_IF_ERROR(o.device().ReadConfig(0, &id, 4));
    // A VF's vendor/device in config space read as 0xffff (SR-IOV 3.4.1.1);
    // the kernel fills sysfs from the PF's SR-IOV capability.
    INFO("VF config dword 0 via VFIO: %08x", id);
    const uint64_t t0 = MonotonicNs();
    NPA_RETURN_IF_ERROR(o.device().Reset());
    OK("VFIO_DEVICE_RESET of VF in %.1f ms", MsSince(t0));
    return absl::OkStatus();
  }();
  absl::Status cs = o.Close();
  absl::Status ds = binder.DisableVfs(pf);
  if (!st.ok()) return Fail(st);
  if (!cs.ok()) return Fail(cs);
  if (!ds.ok()) return Fail(ds);
  OK("%s: VFs disabled", pf);
  return 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: npa-lab-vf-probe inventory [--expect BDF=V:D:C:DRV]... | bind-cycle BDF | dma BDF [--fault] |\n"
               "       tx BDF MARKER | reset BDF | sniff IF MARKER MS | sriov PF\n");
  return 2;
}

}  // namespace
}  // namespace npa::lab

int main(int argc, char** argv) {
  using namespace npa::lab;
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) return Usage();
  std::string cmd = argv[1];
  std::vector<std::string> a(argv + 2, argv + argc);
  if (cmd == "inventory") return Inventory(a);
  if (cmd == "bind-cycle" && a.size() == 1) return BindCycle(a[0]);
  if (cmd == "dma" && !a.empty()) return Dma(a[0], a.size() > 1 && a[1] == "--fault", "npa-lab dma test");
  if (cmd == "tx" && a.size() == 2) return Dma(a[0], false, a[1]);
  if (cmd == "reset" && a.size() == 1) return Reset(a[0]);
  if (cmd == "sniff" && a.size() == 3) {
    int ms = 0;
    if (!absl::SimpleAtoi(a[2], &ms) || ms <= 0 || ms > 60000) return Usage();
    return Sniff(a[0], a[1], ms);
  }
  if (cmd == "sriov" && a.size() == 1) return Sriov(a[0]);
  return Usage();
}
