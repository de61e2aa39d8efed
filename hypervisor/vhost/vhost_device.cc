// Placeholder so dependents link; the real implementation follows.
#include "hypervisor/vhost/vhost_device.h"

namespace npa::agent {

class VhostDevice::Impl {};

absl::StatusOr<std::unique_ptr<VhostDevice>> VhostDevice::Create(UniqueFd, Options) {
  return absl::UnimplementedError("vhost back end not implemented yet");
}
VhostDevice::VhostDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VhostDevice::~VhostDevice() = default;
int VhostDevice::fd() const { return -1; }
absl::Status VhostDevice::OnReadable() { return absl::UnimplementedError("todo"); }
const std::string& VhostDevice::name() const { static const std::string n; return n; }
uint16_t VhostDevice::num_queue_pairs() const { return 0; }
bool VhostDevice::QueueReady(uint16_t) const { return false; }
uint16_t VhostDevice::PeekTx(uint16_t, GuestFrame*, uint16_t) { return 0; }
void VhostDevice::ReleaseTx(uint16_t, uint16_t) {}
uint16_t VhostDevice::EnqueueRx(uint16_t, const PacketRef*, uint16_t) { return 0; }
bool VhostDevice::broken() const { return false; }
std::string VhostDevice::broken_reason() const { return {}; }
QueueCounters VhostDevice::counters(uint16_t) const { return {}; }
uint64_t VhostDevice::generation() const { return 0; }
std::vector<int> VhostDevice::NotifyFds() { return {}; }
void VhostDevice::SetIdleNotify(bool) {}
uint64_t VhostDevice::features() const { return 0; }
uint32_t VhostDevice::mtu() const { return 0; }

}  // namespace npa::agent
