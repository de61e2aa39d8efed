// tests/lab/lab_nic.cc — see lab_nic.h.
#include "tests/lab/lab_nic.h"

#include <linux/vfio.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace npa::lab {
namespace {

// 82574L datasheet, section 10.2 register summary.
constexpr uint64_t kCtrl = 0x0000, kStatus = 0x0008, kImc = 0x00d8, kTctl = 0x0400;
constexpr uint64_t kTdbal = 0x3800, kTdbah = 0x3804, kTdlen = 0x3808, kTdh = 0x3810, kTdt = 0x3818;
constexpr uint64_t kRal0 = 0x5400, kRah0 = 0x5404;
constexpr uint32_t kTctlEn = 1u << 1, kTctlPsp = 1u << 3;

// Legacy transmit descriptor (82574L 7.2.10.1).
struct TxDesc {
  uint64_t addr;
  uint16_t length;
  uint8_t cso, cmd, status, css;
  uint16_t special;
};
static_assert(sizeof(TxDesc) == 16);
constexpr uint8_t kCmdEop = 0x01, kCmdIfcs = 0x02, kCmdRs = 0x08, kStaDd = 0x01;

// virtio_pci_common_cfg (VIRTIO 1.2, 4.1.4.3).
constexpr uint64_t kDfSelect = 0x00, kDf = 0x04, kGfSelect = 0x08, kGf = 0x0c, kMsixCfg = 0x10;
constexpr uint64_t kStatusV = 0x14, kQSelect = 0x16, kQSize = 0x18, kQMsix = 0x1a, kQEnable = 0x1c,
                   kQNotifyOff = 0x1e, kQDesc = 0x20, kQDriver = 0x28, kQDevice = 0x30;
constexpr uint8_t kAck = 1, kDriver = 2, kDriverOk = 4, kFeaturesOk = 8;
// Feature bits 32 (VERSION_1) and 33 (ACCESS_PLATFORM: DMA goes through the
// IOMMU; without it QEMU treats our IOVAs as guest-physical addresses).
constexpr uint32_t kFeatHiVersion1 = 1u << 0, kFeatHiAccessPlatform = 1u << 1;
constexpr uint16_t kTxQueue = 1;  // transmitq1 of the first queue pair
struct VringDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};
static_assert(sizeof(VringDesc) == 16);

}  // namespace

NicKind KindOf(uint16_t vendor, uint16_t device) {
  if (vendor == 0x8086 && device == 0x10d3) return NicKind::kE1000e;
  if (vendor == 0x1af4 && device == 0x1041) return NicKind::kVirtioNet;
  return NicKind::kOther;
}

uint32_t LabNic::Rd32(int bar, uint64_t off) const {
  return *reinterpret_cast<volatile uint32_t*>(bars_[bar].data() + off);
}
void LabNic::Wr32(int bar, uint64_t off, uint32_t v) {
  *reinterpret_cast<volatile uint32_t*>(bars_[bar].data() + off) = v;
}
uint16_t LabNic::Rd16(int bar, uint64_t off) const {
  return *reinterpret_cast<volatile uint16_t*>(bars_[bar].data() + off);
}
void LabNic::Wr16(int bar, uint64_t off, uint16_t v) {
  *reinterpret_cast<volatile uint16_t*>(bars_[bar].data() + off) = v;
}
uint8_t LabNic::Rd8(int bar, uint64_t off) const { return bars_[bar].data()[off]; }
void LabNic::Wr8(int bar, uint64_t off, uint8_t v) { bars_[bar].data()[off] = v; }

absl::StatusOr<LabNic> LabNic::Open(agent::vf::VfioDevice& dev, NicKind kind) {
  if (kind == NicKind::kOther) return absl::UnimplementedError(dev.name() + ": no lab NIC model for this device");
  LabNic nic(dev, kind);
  uint16_t cmd = 0;
  NPA_RETURN_IF_ERROR(dev.ReadConfig(4, &cmd, 2));
  cmd |= 0x6;  // PCI_COMMAND memory space + bus master
  NPA_RETURN_IF_ERROR(dev.WriteConfig(4, &cmd, 2));
  if (kind == NicKind::kE1000e) {
    NPA_ASSIGN_OR_RETURN(nic.bars_[0], dev.MapRegion(VFIO_PCI_BAR0_REGION_INDEX));
  } else {
    NPA_RETURN_IF_ERROR(nic.FindVirtioCaps());
  }
  return nic;
}

absl::Status LabNic::FindVirtioCaps() {
  uint8_t p = 0;
  NPA_RETURN_IF_ERROR(dev_->ReadConfig(0x34, &p, 1));
  for (int guard = 0; p != 0 && guard < 48; ++guard) {
    uint8_t hdr[20] = {};
    NPA_RETURN_IF_ERROR(dev_->ReadConfig(p & ~3u, hdr, sizeof(hdr)));
    if (hdr[0] == 0x09) {  // vendor-specific: struct virtio_pci_cap
      Cap c{hdr[4], 0};
      std::memcpy(&c.off, hdr + 8, 4);
      if (hdr[3] == 1) common_ = c;
      if (hdr[3] == 2) {
        notify_ = c;
        std::memcpy(&notify_mult_, hdr + 16, 4);
      }
    }
    p = hdr[1];
  }
  if (common_.bar < 0 || notify_.bar < 0 || common_.bar > 5 || notify_.bar > 5)
    return absl::NotFoundError(dev_->name() + ": virtio common/notify capabilities not found (legacy device?)");
  for (int b : {common_.bar, notify_.bar}) {
    if (bars_[b].size() == 0) {
      NPA_ASSIGN_OR_RETURN(bars_[b], dev_->MapRegion(VFIO_PCI_BAR0_REGION_INDEX + b));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LabNic::ReadMac() {
  if (kind_ != NicKind::kE1000e) return absl::UnimplementedError("ReadMac: e1000e only");
  uint32_t lo = Rd32(0, kRal0), hi = Rd32(0, kRah0);
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", lo & 0xff, (lo >> 8) & 0xff, (lo >> 16) & 0xff,
                         lo >> 24, hi & 0xff, (hi >> 8) & 0xff);
}

std::string LabNic::Describe() const {
  if (kind_ == NicKind::kE1000e)
    return absl::StrFormat("e1000e CTRL=0x%08x STATUS=0x%08x", Rd32(0, kCtrl), Rd32(0, kStatus));
  return absl::StrFormat("virtio-net common cfg BAR%d+0x%x, notify BAR%d+0x%x x%u", common_.bar, common_.off,
                         notify_.bar, notify_.off, notify_mult_);
}

absl::StatusOr<double> LabNic::TransmitOne(const DmaArea& dma, const uint8_t src[6], const std::string& payload) {
  if (dma.size < 0x20000) return absl::InvalidArgumentError("DMA area below 128 KiB");
  uint8_t frame[128] = {};
  std::memset(frame, 0xff, 6);
  std::memcpy(frame + 6, src, 6);
  frame[12] = 0x88;  // IEEE 802 local experimental ethertype 0x88b5
  frame[13] = 0xb5;
  size_t n = std::min(payload.size(), sizeof(frame) - 14);
  std::memcpy(frame + 14, payload.data(), n);
  const size_t len = std::max<size_t>(60, 14 + n);
  return kind_ == NicKind::kE1000e ? TxE1000e(dma, frame, len) : TxVirtio(dma, frame, len);
}

absl::StatusOr<double> LabNic::TxE1000e(const DmaArea& dma, const uint8_t* frame, size_t len) {
  auto* ring = reinterpret_cast<volatile TxDesc*>(dma.cpu);
  uint8_t* buf = dma.cpu + 0x1000;
  std::memset(dma.cpu, 0, 0x2000);
  std::memcpy(buf, frame, len);
  ring[0].addr = dma.Iova(buf);
  ring[0].length = static_cast<uint16_t>(len);
  ring[0].cmd = kCmdEop | kCmdIfcs | kCmdRs;
  Wr32(0, kImc, 0xffffffff);  // polled: no interrupts
  Wr32(0, kTctl, 0);
  const uint64_t rb = dma.Iova(dma.cpu);
  Wr32(0, kTdbal, static_cast<uint32_t>(rb));
  Wr32(0, kTdbah, static_cast<uint32_t>(rb >> 32));
  Wr32(0, kTdlen, 16 * sizeof(TxDesc));
  Wr32(0, kTdh, 0);
  Wr32(0, kTdt, 0);
  Wr32(0, kTctl, kTctlEn | kTctlPsp);
  // Descriptor stores must be visible before the tail write hands it over.
  std::atomic_thread_fence(std::memory_order_release);
  const uint64_t t0 = MonotonicNs();
  Wr32(0, kTdt, 1);
  while (MsSince(t0) < 2000) {
    if (ring[0].status & kStaDd) return MsSince(t0);
    usleep(100);
  }
  return absl::DeadlineExceededError(
      absl::StrFormat("%s: e1000e did not write back DD within 2 s (TDH=%u)", dev_->name(), Rd32(0, kTdh)));
}

absl::StatusOr<double> LabNic::TxVirtio(const DmaArea& dma, const uint8_t* frame, size_t len) {
  const int b = common_.bar;
  const uint64_t co = common_.off;
  Wr8(b, co + kStatusV, 0);  // reset; the device reads back 0 when done
  for (int i = 0; i < 1000 && Rd8(b, co + kStatusV) != 0; ++i) usleep(100);
  Wr8(b, co + kStatusV, kAck);
  Wr8(b, co + kStatusV, kAck | kDriver);
  Wr32(b, co + kDfSelect, 1);
  const uint32_t hi = Rd32(b, co + kDf);
  if ((hi & (kFeatHiVersion1 | kFeatHiAccessPlatform)) != (kFeatHiVersion1 | kFeatHiAccessPlatform))
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: virtio device features[63:32]=0x%x lack VERSION_1/ACCESS_PLATFORM (iommu_platform=on?)", dev_->name(), hi));
  Wr32(b, co + kGfSelect, 0);
  Wr32(b, co + kGf, 0);
  Wr32(b, co + kGfSelect, 1);
  Wr32(b, co + kGf, kFeatHiVersion1 | kFeatHiAccessPlatform);
  Wr8(b, co + kStatusV, kAck | kDriver | kFeaturesOk);
  if (!(Rd8(b, co + kStatusV) & kFeaturesOk))
    return absl::FailedPreconditionError(dev_->name() + ": virtio device rejected FEATURES_OK");
  Wr16(b, co + kMsixCfg, 0xffff);  // VIRTIO_MSI_NO_VECTOR: polled
  uint8_t* desc = dma.cpu + 0x10000;
  uint8_t* avail = dma.cpu + 0x11000;
  uint8_t* used = dma.cpu + 0x12000;
  uint8_t* buf = dma.cpu + 0x13000;
  std::memset(desc, 0, 0x4000);
  Wr16(b, co + kQSelect, kTxQueue);
  uint16_t qsz = Rd16(b, co + kQSize);
  if (qsz == 0) return absl::FailedPreconditionError(dev_->name() + ": virtio tx queue 1 absent");
  if (qsz > 16) qsz = 16;
  Wr16(b, co + kQSize, qsz);
  Wr16(b, co + kQMsix, 0xffff);
  auto wr64 = [&](uint64_t off, uint64_t v) {
    Wr32(b, co + off, static_cast<uint32_t>(v));
    Wr32(b, co + off + 4, static_cast<uint32_t>(v >> 32));
  };
  wr64(kQDesc, dma.Iova(desc));
  wr64(kQDriver, dma.Iova(avail));
  wr64(kQDevice, dma.Iova(used));
  const uint16_t notify_off = Rd16(b, co + kQNotifyOff);
  Wr16(b, co + kQEnable, 1);
  Wr8(b, co + kStatusV, kAck | kDriver | kFeaturesOk | kDriverOk);
  // virtio_net_hdr_v1 (12 bytes, all zero: no offloads) then the frame.
  std::memset(buf, 0, 12);
  std::memcpy(buf + 12, frame, len);
  auto* d = reinterpret_cast<volatile VringDesc*>(desc);
  d[0].addr = dma.Iova(buf);
  d[0].len = static_cast<uint32_t>(12 + len);
  d[0].flags = 0;
  auto* av = reinterpret_cast<volatile uint16_t*>(avail);  // flags, idx, ring[]
  av[0] = 0;
  av[2] = 0;
  // The ring entry must be visible before idx publishes it (2.7.13).
  std::atomic_thread_fence(std::memory_order_release);
  av[1] = 1;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint64_t t0 = MonotonicNs();
  Wr16(notify_.bar, notify_.off + static_cast<uint64_t>(notify_off) * notify_mult_, kTxQueue);
  auto* us = reinterpret_cast<volatile uint16_t*>(used);  // flags, idx, {id, len}[]
  while (MsSince(t0) < 2000) {
    if (us[1] == 1) return MsSince(t0);
    usleep(100);
  }
  return absl::DeadlineExceededError(absl::StrFormat("%s: virtio used.idx still %u after 2 s (status 0x%x)",
                                                     dev_->name(), us[1], Rd8(b, co + kStatusV)));
}

absl::Status LabNic::KickUnmappedRing(uint64_t bad_iova) {
  if (kind_ != NicKind::kE1000e) return absl::UnimplementedError("KickUnmappedRing: e1000e only");
  Wr32(0, kTctl, 0);
  Wr32(0, kTdbal, static_cast<uint32_t>(bad_iova));
  Wr32(0, kTdbah, static_cast<uint32_t>(bad_iova >> 32));
  Wr32(0, kTdlen, 16 * sizeof(TxDesc));
  Wr32(0, kTdh, 0);
  Wr32(0, kTdt, 0);
  Wr32(0, kTctl, kTctlEn | kTctlPsp);
  Wr32(0, kTdt, 1);
  return absl::OkStatus();
}

absl::StatusOr<bool> LabNic::HasLiveState() {
  if (kind_ == NicKind::kE1000e) return Rd32(0, kTdbal) != 0 || Rd32(0, kTdt) != 0 || (Rd32(0, kTctl) & kTctlEn);
  const int b = common_.bar;
  const uint64_t co = common_.off;
  Wr16(b, co + kQSelect, kTxQueue);
  const uint64_t qd = Rd32(b, co + kQDesc) | (static_cast<uint64_t>(Rd32(b, co + kQDesc + 4)) << 32);
  return Rd8(b, co + kStatusV) != 0 || qd != 0;
}

}  // namespace npa::lab
