// hypervisor/daemon/guest_port.h — what the agent's control server and dataplane need
// from one guest's emulated-path back end, as an interface.
//
// The production implementation wraps VhostDevice (hypervisor/vhost/) one to
// one (VhostPortFactory). Tests substitute an in-memory port, so the control
// server and the dataplane are tested without a vhost-user front end
// (a test seam: tests/support/fake_guest_port.h). The methods and their thread
// rules are VhostDevice's; see hypervisor/vhost/vhost_device.h. One virtual
// call per burst, never per packet.
#ifndef NPA_HYPERVISOR_DAEMON_GUEST_PORT_H_
#define NPA_HYPERVISOR_DAEMON_GUEST_PORT_H_

#include <fcntl.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "hypervisor/vhost/vhost_device.h"

namespace npa::agent {

class GuestPort {
 public:
  virtual ~GuestPort() = default;
  // Control thread.
  virtual int fd() const = 0;  // -1: nothing to poll
  virtual absl::Status OnReadable() = 0;
  // Any thread.
  virtual uint16_t num_queue_pairs() const = 0;
  virtual bool QueueReady(uint16_t qp) const = 0;
  virtual bool broken() const = 0;
  virtual std::string broken_reason() const = 0;
  virtual QueueCounters counters(uint16_t qp) const = 0;
  virtual uint64_t generation() const = 0;
  // Dataplane thread.
  virtual uint16_t PeekTx(uint16_t qp, GuestFrame* out, uint16_t n) = 0;
  // PeekTx within a descriptor budget (the dataplane's per-guest fairness):
  // *descs goes down by the descriptors walked, and no new chain is started
  // once it is 0. The default (test doubles) charges one per frame.
  virtual uint16_t PeekTxBudget(uint16_t qp, GuestFrame* out, uint16_t n, uint32_t* descs) {
    if (*descs == 0) return 0;
    const uint16_t k = PeekTx(qp, out, n < *descs ? n : static_cast<uint16_t>(*descs));
    *descs -= k;
    return k;
  }
  virtual void ReleaseTx(uint16_t qp, uint16_t n) = 0;
  // VhostDevice::EnqueueRx: returns the prefix of pkts taken; `full` says
  // whether the rest (no room) is dropped and counted or left to the caller.
  virtual uint16_t EnqueueRx(uint16_t qp, const PacketRef* pkts, uint16_t n, RxFull full) = 0;
  // Kick eventfds to sleep on, as duplicates the caller owns (closes after
  // removing them from its epoll set): the port may close its own copies at
  // any time (a guest replacing a kick fd), so the back end never has to
  // keep retired fds alive for the dataplane. The default dups NotifyFds().
  virtual std::vector<UniqueFd> DupNotifyFds() {
    std::vector<UniqueFd> out;
    for (int fd : NotifyFds()) {
      UniqueFd d(fcntl(fd, F_DUPFD_CLOEXEC, 0));
      if (d.valid()) out.push_back(std::move(d));
    }
    return out;
  }
  // Test doubles' kick fds (they stay open while the double lives).
  virtual std::vector<int> NotifyFds() { return {}; }
  virtual void SetIdleNotify(bool want_kicks) = 0;
};

// Makes the back end for one accepted/socketpair vhost-user connection.
using PortFactory = std::function<absl::StatusOr<std::unique_ptr<GuestPort>>(
    UniqueFd conn, const VhostDevice::Options& opts)>;

// The production factory: VhostDevice::Create.
PortFactory VhostPortFactory();

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_GUEST_PORT_H_
