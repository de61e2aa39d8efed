// shell/emulated/vhost_user_frontend.h — the vhost-user front end (QEMU
// docs/interop/vhost-user.rst) over a connected UNIX stream socket.
//
//   VhostUserFrontend fe(std::move(sock), /*timeout_ms=*/5000);
//   NPA_RETURN_IF_ERROR(fe.Negotiate(wanted_features, /*queue_pairs=*/2));
//   NPA_RETURN_IF_ERROR(fe.SetMemTable({{region.iova(), region.size(), region.fd()}}));
//   for (each vring i)
//     NPA_RETURN_IF_ERROR(fe.SetupVring(i, size, addrs, kick_fd, call_fd));
//   for (each vring i) NPA_RETURN_IF_ERROR(fe.EnableVring(i, true));
//
// Every reply is validated (request code, version and reply flags, payload
// size, values in range) and waited for with a timeout; a broken or hostile
// back end yields a status that names what was wrong, never a crash or hang.
// Errors are kDataLoss for protocol violations (-> -EPROTO at the C ABI),
// kDeadlineExceeded for timeouts, kAborted when the peer closed.
#ifndef NPA_SHELL_EMULATED_VHOST_USER_FRONTEND_H_
#define NPA_SHELL_EMULATED_VHOST_USER_FRONTEND_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "npa/vhost_user.h"
#include "shell/emulated/virtq.h"

namespace npa::shell {

struct MemRegion {
  uint64_t addr;  // guest_phys_addr == userspace_addr (our virtual address)
  uint64_t size;
  int fd;         // mapped at mmap_offset 0
};

class VhostUserFrontend {
 public:
  VhostUserFrontend(UniqueFd sock, int timeout_ms) : sock_(std::move(sock)), timeout_ms_(timeout_ms) {}

  // SET_OWNER, GET_FEATURES, protocol-feature negotiation (MQ, REPLY_ACK),
  // GET_QUEUE_NUM, SET_FEATURES. `wanted` lists the virtio bits we can use;
  // the result is wanted & offered (plus PROTOCOL_FEATURES when offered).
  // VERSION_1 is required: kFailedPrecondition if the back end lacks it.
  absl::Status Negotiate(uint64_t wanted, uint16_t queue_pairs);

  absl::Status SetMemTable(std::span<const MemRegion> regions);
  // base: where the back end starts taking avail entries (SET_VRING_BASE);
  // 0 for a new ring, the stopped index when a ring resumes (a migration,
  // an agent restart: shell/reconnect.h).
  absl::Status SetupVring(uint32_t index, uint16_t num, const VringAddrs& a, int kick_fd,
                          int call_fd, uint16_t base = 0);
  absl::Status EnableVring(uint32_t index, bool enable);
  // Stops the ring; returns the back end's next avail index.
  absl::StatusOr<uint32_t> GetVringBase(uint32_t index);

  // Pipelined: the SET_* requests that wait for REPLY_ACK one by one go out
  // back to back instead, and Sync() is the one round trip that ends the
  // batch. A resume (migration, agent restart) sends about 14 of them while
  // the guest's rings stand still; one round trip each is an agent wake-up
  // each, milliseconds on a busy host. A back end processes requests in
  // order and drops the session at the first one it refuses (ours, DPDK's,
  // QEMU's), so a refusal still fails the batch, at Sync, naming the socket
  // rather than the request; the back end's log names the request.
  void set_pipelined(bool on) { pipelined_ = on; }
  // GET_FEATURES as a barrier: its reply comes after every earlier request
  // was handled. kFailedPrecondition if the offer changed since Negotiate.
  absl::Status Sync();

  // Close the socket: the back end sees EOF and stops serving (a migration
  // leaving the source, an agent gone). Later requests fail with kAborted.
  void Close() { sock_.reset(); }

  uint64_t features() const { return features_; }
  uint64_t protocol_features() const { return protocol_features_; }
  uint16_t max_queue_pairs() const { return max_queue_pairs_; }
  int fd() const { return sock_.get(); }

  // Send one message; with need_reply (and REPLY_ACK negotiated) wait for the
  // ack. Exposed for tests.
  absl::Status Send(uint32_t request, const void* payload, uint32_t size,
                    std::span<const int> fds = {}, bool need_reply = false);
  // Receive the reply to `request` carrying exactly `size` payload bytes.
  absl::Status Receive(uint32_t request, void* payload, uint32_t size);

 private:
  absl::StatusOr<uint64_t> GetU64(uint32_t request);
  absl::Status SetU64(uint32_t request, uint64_t v, bool ack);
  absl::Status SetState(uint32_t request, uint32_t index, uint32_t num);
  bool reply_ack() const {
    return protocol_features_ & (1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK);
  }

  UniqueFd sock_;
  int timeout_ms_;
  uint64_t features_ = 0;
  uint64_t protocol_features_ = 0;
  uint16_t max_queue_pairs_ = 1;
  uint64_t offered_ = 0;  // GET_FEATURES in Negotiate, for Sync
  bool pipelined_ = false;
};

const char* VhostUserRequestName(uint32_t request);

}  // namespace npa::shell

#endif  // NPA_SHELL_EMULATED_VHOST_USER_FRONTEND_H_
