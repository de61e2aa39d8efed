// shell/emulated/emulated_path.h — the emulated data path: virtio-net split rings in
// the shell's shared region, served by a vhost-user back end.
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
