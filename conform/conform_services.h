// conform/conform_services.h — the services npa-conform hands the
// plug-in under test: the production table (shell::VfServices, the one the
// shell gives a plug-in) over the device, decorated by FaultServices
// (fault_services.h). Around it, the harness's part of the shell: a DMA arena
// (shell::RegionDmaArena) and a packet buffer pool (SlotPool, with the
// accounting the cases check), both inside one region the device reaches at
// iova == vaddr.
//
//   NPA_ASSIGN_OR_RETURN(VfioFunction fn, VfioFunction::Open(bdf));
//   NPA_ASSIGN_OR_RETURN(DmaRegion r, fn.container().MapMemfdRegion(24 << 20, "npa-conform"));
//   NPA_ASSIGN_OR_RETURN(std::unique_ptr<ConformServices> svc,
//       ConformServices::Create(shell::MakeFdDeviceIo(fn.device().fd()), bdf,
//                               r.data(), r.size(), /*dma_bytes=*/4 << 20));
//   NPA_ASSIGN_OR_RETURN(npa_device_info info, svc->vf().DeviceInfo());
//   svc->faults().dma_fail_at = 2;                // the 3rd dma_alloc fails
//   plugin->ctrl->probe(svc->table(), &info, &dev);
//   ...
//   EXPECT(svc->bufs_outstanding() == 0 && svc->dma_outstanding() == 0);
//
// Region layout: the first dma_bytes (rounded down to 4 KiB) are the DMA
// arena, the rest NPA_BUF_SLOT_SIZE buffer slots.
// Accounting: every buffer handed out (to the plug-in through buf_alloc, or to
// the harness through Alloc) must come back exactly once, through buf_free or
// Free; freeing a buffer twice or a pointer that is not a slot is a violation,
// counted and ignored, never corrupting the pool. DMA blocks and bad DMA frees
// are the decorator's to count.
// Ownership: the region and the device io's fd belong to the caller and must
// outlive this object. Destruction tears the stack down top first (the
// decorator, then VfServices — which disables the interrupts it wired, unmaps
// BARs and returns DMA blocks — then the arena and pool).
// Threads: none; one thread drives everything (see fault_services.h).
#ifndef NPA_CONFORM_CONFORM_SERVICES_H_
#define NPA_CONFORM_CONFORM_SERVICES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "npa/plugin.h"
#include "shell/vf/vf_services.h"
#include "conform/fault_services.h"

namespace npa::conform {

// Packet buffers from fixed slots: the harness's stand-in for the shell's
// per-queue pools (one pool for every queue: the runner drives one at a time).
class SlotPool : public shell::BufferProvider {
 public:
  // Slots of NPA_BUF_SLOT_SIZE in [base, base + len); the byte at base + k
  // has IOVA iova_base + k.
  SlotPool(uint8_t* base, uint64_t len, uint64_t iova_base, Violations* violations);

  // A frame's first segment each, zeroed, data_off NPA_BUF_DATA_OFF.
  uint16_t Alloc(uint16_t qid, npa_buf** bufs, uint16_t n) override;
  // Frees each frame with all its segments (the walk is bounded).
  void Free(uint16_t qid, npa_buf** bufs, uint16_t n) override;
  // buf_free_tx: the same, for frames the harness handed to tx_burst.
  void FreeTx(uint16_t qid, npa_buf** bufs, uint16_t n) override;

  // The TX discipline of ABI 1.1 (plugin.h "TX completions apart"), checked
  // frame by frame: the harness marks what it hands to tx_burst (MarkSent)
  // and unmarks what tx_burst did not take (Unsent). Then buf_free_tx of an
  // unmarked frame is a violation, and, when the plug-in claims
  // NPA_PLUGIN_F_TX_FREE (set_tx_free), so is buf_free of a marked one: the
  // shell's count of frames in flight would be wrong.
  void set_tx_free(bool on) { tx_free_ = on; }
  void MarkSent(npa_buf** bufs, uint16_t n);
  void Unsent(npa_buf** bufs, uint16_t n);

  // The RX discipline (npa/plugin.h "RX discipline"), frame by frame, on
  // what rx_burst handed up: a pointer that is not a slot the plug-in holds
  // (foreign, free, a TX frame it holds) or that comes twice in the burst
  // is a violation and is taken out of bufs untouched; a frame whose
  // metadata is out of bounds (shell::FindRxFrameFault) or whose ol_flags
  // carry more than RX facts is a violation, freed and taken out. Returns
  // how many frames are left, in order at the front of bufs.
  uint16_t CheckRx(npa_buf** bufs, uint16_t n);

  int outstanding() const { return out_; }
  uint32_t slots() const { return static_cast<uint32_t>(slots_.size()); }

 private:
  bool FreeOne(npa_buf* b);  // false: not a busy slot (a violation)
  // The slot index of a frame head of ours, or -1.
  int64_t SlotOf(const npa_buf* b) const;
  void FreeFrames(npa_buf** bufs, uint16_t n);

  uint8_t* base_;
  uint64_t len_;
  uint64_t iova_base_;
  Violations* violations_;
  std::vector<npa_buf*> slots_;
  std::vector<uint8_t> busy_;
  std::vector<uint32_t> free_;  // LIFO of slot indexes
  std::vector<uint8_t> sent_;   // per slot: a TX frame the plug-in holds
  std::vector<uint32_t> rx_seen_;  // per slot: the CheckRx call that last saw it
  uint32_t rx_epoch_ = 0;
  bool tx_free_ = false;
  int out_ = 0;
};

class ConformServices {
 public:
  // io: the device (shell::MakeFdDeviceIo over a VFIO device fd, or a test's
  // fake); bdf names it in log lines. nb_queues: the queue pairs the cases
  // configure, as the shell gives VfServices the guest's count (buf_alloc
  // on a qid beyond them gets nothing). Fails when VfServices does (no
  // config region: not a vfio-pci device).
  static absl::StatusOr<std::unique_ptr<ConformServices>> Create(
      std::unique_ptr<shell::VfioDeviceIo> io, const std::string& bdf, uint8_t* region,
      uint64_t region_len, uint64_t dma_bytes, uint16_t nb_queues = 1);
  ConformServices(const ConformServices&) = delete;
  ConformServices& operator=(const ConformServices&) = delete;

  // What the plug-in gets: the decorated production table.
  const npa_services* table() const { return faults_->table(); }
  // The production services underneath (device info, MSI-X eventfds, and an
  // undecorated table for the harness's own device access).
  shell::VfServices& vf() { return *vf_; }
  Faults& faults() { return faults_->faults(); }
  void reset_counters() { faults_->reset_counters(); }
  int64_t dma_calls() const { return faults_->dma_calls(); }

  // The harness's own buffers (TX frames, RX frames it got back), from the
  // plug-in's pool, so the accounting covers both.
  uint16_t Alloc(npa_buf** b, uint16_t n) { return pool_->Alloc(0, b, n); }
  void Free(npa_buf** b, uint16_t n) { pool_->Free(0, b, n); }
  // After every rx_burst of the harness (SlotPool::CheckRx).
  uint16_t CheckRx(npa_buf** b, uint16_t n) { return pool_->CheckRx(b, n); }
  // Around the harness's tx_burst calls (SlotPool::MarkSent).
  void MarkSent(npa_buf** b, uint16_t n) { pool_->MarkSent(b, n); }
  void Unsent(npa_buf** b, uint16_t n) { pool_->Unsent(b, n); }
  void set_tx_free(bool on) { pool_->set_tx_free(on); }

  int bufs_outstanding() const { return pool_->outstanding(); }
  size_t dma_outstanding() const { return faults_->dma_outstanding(); }
  uint32_t slots() const { return pool_->slots(); }
  int violations() const { return violations_.count(); }
  const std::vector<std::string>& violation_log() const { return violations_.log(); }
  // The MSI-X eventfds the last successful irq_setup wired (vector i at i).
  std::vector<int> irq_fds() const { return vf_->msix_eventfds(); }

  // Plug-in (and services) log lines go to stderr when verbose.
  bool verbose = false;
  std::vector<std::string> last_logs;  // the most recent 64 lines

 private:
  ConformServices() = default;

  // Declaration order is teardown order, reversed: the decorator goes first,
  // VfServices next (it returns blocks to the arena), the arena and pool last.
  Violations violations_;
  std::unique_ptr<shell::RegionDmaArena> arena_;
  std::unique_ptr<SlotPool> pool_;
  std::unique_ptr<shell::VfServices> vf_;
  std::unique_ptr<FaultServices> faults_;
};

}  // namespace npa::conform

#endif  // NPA_CONFORM_CONFORM_SERVICES_H_
