// shell/emulated/emulated_path.h — the emulated data path: virtio-net rings (split,
// or packed when VIRTIO_F_RING_PACKED was negotiated: virtq.h) in the
// shell's shared region, served by a vhost-user back end.
//
//   EmulatedPath::Params p{...};                     // rings, pools, fds
//   NPA_ASSIGN_OR_RETURN(auto emu, EmulatedPath::Create(p, &frontend));
//   NPA_RETURN_IF_ERROR(emu->Start());               // post RX buffers, enable vrings
//   QueueOps ops = emu->ops(q);                      // what the bursts call
//
// Vring numbering is virtio-net's (VIRTIO 1.x 5.1.2): 2q = receiveq of queue
// pair q, 2q+1 = transmitq.
#ifndef NPA_SHELL_EMULATED_EMULATED_PATH_H_
#define NPA_SHELL_EMULATED_EMULATED_PATH_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "shell/buf_pool.h"
#include "shell/path.h"
#include "shell/emulated/vhost_user_frontend.h"
#include "shell/emulated/virtq.h"

namespace npa::shell {

class EmulatedPath : public Path {
 public:
  struct Params {
    uint16_t nb_queue_pairs = 1;
    uint16_t ring_size = 1024;
    // Per queue pair: where its RX and TX rings live (VringBytes each).
    std::vector<uint8_t*> rx_ring_mem, tx_ring_mem;
    std::vector<BufPool*> pools;
    bool vlan_strip = false;  // NPA_OFFLOAD_VLAN_STRIP configured: in software
  };

  // Builds the rings and tells the back end about them (SET_VRING_*). The
  // front end must have negotiated features and sent the memory table.
  static absl::StatusOr<std::unique_ptr<EmulatedPath>> Create(const Params& p,
                                                              VhostUserFrontend* fe);
  ~EmulatedPath() override;

  npa_path kind() const override { return NPA_PATH_EMULATED; }
  uint64_t offloads() const override;
  absl::Status Start() override;
  absl::Status Stop() override;
  QueueOps ops(uint16_t qid) override;
  int intr_eventfd(uint16_t qid) const override { return queues_[qid]->rx_call.get(); }
  void SetInterrupt(uint16_t qid, bool enable) override { queues_[qid]->rx.SetInterrupt(enable); }
  bool link_up() const override { return started_; }

  // ---- Moving the rings between back ends (shell/reconnect.h). Control
  // thread, with the shell's control lock; the owners keep bursting: a
  // stopped ring takes TX while it has room (frames wait) and yields no
  // new RX, because nobody serves it.
  //
  // vring: virtio-net numbering (2q RX, 2q+1 TX); vrings() of them.
  uint32_t vrings() const { return static_cast<uint32_t>(2 * queues_.size()); }
  // The used index the back end last published, read from the ring in
  // shared memory (acquire): the truth after the back end stopped or died.
  // Packed rings: the device's used slot with its wrap counter in bit 15
  // (npa_vring_packed_base), the value SET_VRING_BASE takes.
  uint16_t used_idx(uint32_t vring) const;
  // The stop itself is GET_VRING_BASE per vring on the front end
  // (shell/reconnect.cc). Resume serves the rings from `fe` (the same front
  // end after an abort, a new one after a reconnect), each starting at
  // next_avail[vring]: SET_VRING_NUM,
  // SET_VRING_BASE, SET_VRING_ADDR, KICK, CALL, then ENABLE if started, and
  // a kick on every ring so the back end looks at what waited. Nothing is
  // posted again: the rings' contents are untouched.
  absl::Status Resume(VhostUserFrontend* fe, std::span<const uint16_t> next_avail);
  // In flight on a TX ring: avail entries the back end has not completed
  // (used_idx .. our avail index). Control thread; a bound, not exact,
  // while the owner bursts.
  uint16_t tx_in_flight(uint16_t q) const;

  // Tests and benchmarks reach the rings directly.
  RxVirtq& rx(uint16_t q) { return queues_[q]->rx; }
  TxVirtq& tx(uint16_t q) { return queues_[q]->tx; }

 private:
  struct alignas(64) Queue {
    RxVirtq rx;
    TxVirtq tx;
    UniqueFd rx_kick, rx_call, tx_kick, tx_call;
  };
  explicit EmulatedPath(VhostUserFrontend* fe) : fe_(fe) {}

  VhostUserFrontend* fe_;
  std::vector<std::unique_ptr<Queue>> queues_;
  bool started_ = false;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_EMULATED_EMULATED_PATH_H_
