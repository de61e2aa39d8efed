// tests/lab/lab_nic.h — just enough of two NICs, driven through the VFIO host
// library (hypervisor/vf/vfio.h) inside the lab guest, to make them DMA:
// QEMU's e1000e (Intel 82574L) and a modern virtio-net PCI function
// (VIRTIO 1.x, 4.1 "Virtio Over PCI Bus"). Not a driver: one TX descriptor,
// polled, to prove DMA through the IOMMU.
//
//   NPA_ASSIGN_OR_RETURN(LabNic nic, LabNic::Open(fn.device(), KindOf(vendor, device)));
//   NPA_ASSIGN_OR_RETURN(double ms, nic.TransmitOne(DmaArea{cpu, iova, size}, src_mac, "marker"));
//   NPA_ASSIGN_OR_RETURN(bool live, nic.HasLiveState());   // false after a reset
//
// Ownership: a LabNic borrows the VfioDevice (which must outlive it) and owns
// the BAR mappings it made. Errors are Status naming the device; a DMA that
// does not complete is kDeadlineExceeded after 2 s. One thread.
#ifndef NPA_TESTS_LAB_LAB_NIC_H_
#define NPA_TESTS_LAB_LAB_NIC_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "hypervisor/vf/vfio.h"

namespace npa::lab {

// Device memory as the device sees it: `cpu` is where this process reads and
// writes it, `iova` is what the device is told (the agent's convention maps
// the shell's virtual address as the IOVA, so the two views differ).
struct DmaArea {
  uint8_t* cpu = nullptr;
  uint64_t iova = 0;
  uint64_t size = 0;
  uint64_t Iova(const void* p) const { return iova + (static_cast<const uint8_t*>(p) - cpu); }
};

// Milliseconds since t0_ns (an npa::MonotonicNs reading), with the fraction:
// a DMA round trip in the lab takes well under a millisecond.
inline double MsSince(uint64_t t0_ns) { return static_cast<double>(MonotonicNs() - t0_ns) / 1e6; }

enum class NicKind { kE1000e, kVirtioNet, kOther };
NicKind KindOf(uint16_t vendor, uint16_t device);

class LabNic {
 public:
  // Maps the BARs it needs and enables memory + bus mastering.
  static absl::StatusOr<LabNic> Open(agent::vf::VfioDevice& dev, NicKind kind);
  // Transmits one Ethernet frame (broadcast dst, `src` MAC, ethertype 0x88b5,
  // `payload`) from `dma` and waits (bounded) for the device to report it
  // done: e1000e descriptor DD write-back, virtio used-ring update. Returns
  // the milliseconds it took.
  absl::StatusOr<double> TransmitOne(const DmaArea& dma, const uint8_t src[6], const std::string& payload);
  // e1000e only: point the TX ring at `bad_iova` and kick.
  absl::Status KickUnmappedRing(uint64_t bad_iova);
  // Something only a reset clears: e1000e TDBAL/TDT, virtio status/queue desc.
  absl::StatusOr<bool> HasLiveState();
  absl::StatusOr<std::string> ReadMac();  // e1000e RAL0/RAH0
  std::string Describe() const;

 private:
  LabNic(agent::vf::VfioDevice& dev, NicKind kind) : dev_(&dev), kind_(kind) {}
  uint32_t Rd32(int bar, uint64_t off) const;
  void Wr32(int bar, uint64_t off, uint32_t v);
  uint16_t Rd16(int bar, uint64_t off) const;
  void Wr16(int bar, uint64_t off, uint16_t v);
  uint8_t Rd8(int bar, uint64_t off) const;
  void Wr8(int bar, uint64_t off, uint8_t v);
  absl::Status FindVirtioCaps();
  absl::StatusOr<double> TxE1000e(const DmaArea& dma, const uint8_t* frame, size_t len);
  absl::StatusOr<double> TxVirtio(const DmaArea& dma, const uint8_t* frame, size_t len);

  agent::vf::VfioDevice* dev_;
  NicKind kind_;
  agent::vf::MappedRegion bars_[6];
  struct Cap {
    int bar = -1;
    uint32_t off = 0;
  } common_, notify_;
  uint32_t notify_mult_ = 0;
};

}  // namespace npa::lab

#endif  // NPA_TESTS_LAB_LAB_NIC_H_
