#include "hypervisor/daemon/guest_port.h"

#include "common/status_macros.h"

namespace npa::agent {
namespace {

class VhostPort final : public GuestPort {
 public:
  explicit VhostPort(std::unique_ptr<VhostDevice> d) : d_(std::move(d)) {}
  int fd() const override { return d_->fd(); }
  absl::Status OnReadable() override { return d_->OnReadable(); }
  uint16_t num_queue_pairs() const override { return d_->num_queue_pairs(); }
  bool QueueReady(uint16_t qp) const override { return d_->QueueReady(qp); }
  bool broken() const override { return d_->broken(); }
  std::string broken_reason() const override { return d_->broken_reason(); }
  QueueCounters counters(uint16_t qp) const override { return d_->counters(qp); }
  uint64_t generation() const override { return d_->generation(); }
  uint16_t PeekTx(uint16_t qp, GuestFrame* out, uint16_t n) override { return d_->PeekTx(qp, out, n); }
  uint16_t PeekTxBudget(uint16_t qp, GuestFrame* out, uint16_t n, uint32_t* descs) override {
    return d_->PeekTx(qp, out, n, descs);
  }
  void ReleaseTx(uint16_t qp, uint16_t n) override { d_->ReleaseTx(qp, n); }
  uint16_t EnqueueRx(uint16_t qp, const PacketRef* p, uint16_t n, RxFull full) override {
    return d_->EnqueueRx(qp, p, n, full);
  }
  std::vector<UniqueFd> DupNotifyFds() override { return d_->NotifyFds(); }
  void SetIdleNotify(bool w) override { d_->SetIdleNotify(w); }

 private:
  std::unique_ptr<VhostDevice> d_;
};

}  // namespace

PortFactory VhostPortFactory() {
  return [](UniqueFd conn, const VhostDevice::Options& opts)
             -> absl::StatusOr<std::unique_ptr<GuestPort>> {
    NPA_ASSIGN_OR_RETURN(std::unique_ptr<VhostDevice> d, VhostDevice::Create(std::move(conn), opts));
    return std::unique_ptr<GuestPort>(new VhostPort(std::move(d)));
  };
}

}  // namespace npa::agent
