// hypervisor/vhost/vhost_session.h — the vhost-user back-end session state
// machine, apart from socket I/O (VhostDevice does the framing), so unit
// tests and the fuzzer can drive it message by message.
//
// Which request is legal in which session state, how big its payload must be
// and which fds it carries is DATA (the request table in vhost_session_requests.cc),
// not nested ifs. The session's own lifecycle is a second, smaller table on
// the one transition-table template (common/state_machine.h,
// VhostSessionTraits below): three states, and the three requests that change
// them as its events.
//
//   kNoOwner --SET_OWNER--> kOwned --SET_MEM_TABLE--> kMemReady
//      ^                      |  ^                      |  (SET_MEM_TABLE again
//      +-----RESET_OWNER------+  +-----------------------+   stays in kMemReady)
//
// Every other request leaves the state as it is (it fires no event). A
// state-changing request the request table allows in the current state but
// the session table has no arc for is refused before its handler runs
// (kFailedPrecondition "vhost-user session: SET_OWNER is illegal in state
// owned"), so the two tables can never disagree silently.
//
// Per vring: configured by SET_VRING_NUM/ADDR/BASE while stopped, started by
// SET_VRING_KICK, stopped by GET_VRING_BASE; enabled by SET_VRING_ENABLE when
// VHOST_USER_F_PROTOCOL_FEATURES was negotiated, else enabled on start.
// SET_VRING_ENABLE is accepted once SET_PROTOCOL_FEATURES was sent, even
// before SET_FEATURES acks the bit: QEMU enables its rings at device reset,
// long before the guest's driver sets the features (docs/vm.md).
//
//   VhostSession s(opts);
//   VhostMessage m = ...;     // decoded header + payload + fds
//   VhostReply r;
//   absl::Status st = s.Handle(std::move(m), &r);   // send r if r.send
//   if (!st.ok()) close();                          // already logged
//
// Threads: Handle/CheckHeader and the state on the control thread; the data
// plane calls (PeekTx, EnqueueRx, ...) from the dataplane thread under mu_.
#ifndef NPA_HYPERVISOR_VHOST_VHOST_SESSION_H_
#define NPA_HYPERVISOR_VHOST_VHOST_SESSION_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/state_machine.h"
#include "hypervisor/vhost/guest_memory.h"
#include "hypervisor/vhost/vhost_device.h"
#include "hypervisor/vhost/virtqueue.h"

namespace npa::agent {

// Protocol features offered: MQ, REPLY_ACK, MTU, STATUS. (No CONFIG, no
// CONFIGURE_MEM_SLOTS, no LOG_SHMFD, no BACKEND_REQ.)
inline constexpr uint64_t kOfferedProtocolFeatures =
    (1ull << NPA_VHOST_USER_PROTOCOL_F_MQ) | (1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK) |
    (1ull << NPA_VHOST_USER_PROTOCOL_F_MTU) | (1ull << NPA_VHOST_USER_PROTOCOL_F_STATUS);

// Largest payload accepted on the wire (the payload union).
inline constexpr uint32_t kMaxPayload = sizeof(npa_vhost_user_payload);

enum class VhostSessionState : uint8_t { kNoOwner = 0, kOwned = 1, kMemReady = 2 };
// The requests that move the session; the rest fire nothing.
enum class VhostSessionEvent : uint8_t { kSetOwner, kSetMemTable, kResetOwner };

struct VhostSessionTraits {
  using State = VhostSessionState;
  using Event = VhostSessionEvent;
  static constexpr const char* kName = "vhost-user session";
  static constexpr size_t kNumStates = 3, kNumEvents = 3;
  static const char* StateName(VhostSessionState s);  // "no-owner", "owned", "mem-ready"
  static const char* EventName(VhostSessionEvent e);  // "SET_OWNER", ...

  using S = VhostSessionState;
  using E = VhostSessionEvent;
  static constexpr Arc<S, E> kArcs[] = {
      {S::kNoOwner, E::kSetOwner, S::kOwned},
      {S::kOwned, E::kSetMemTable, S::kMemReady},
      {S::kMemReady, E::kSetMemTable, S::kMemReady},  // a new table replaces the old
      {S::kOwned, E::kResetOwner, S::kNoOwner},
      {S::kMemReady, E::kResetOwner, S::kNoOwner},
  };
};
using VhostSessionTable = TransitionTable<VhostSessionTraits>;

struct VhostMessage {
  npa_vhost_user_hdr hdr{};
  npa_vhost_user_payload payload{};
  std::vector<UniqueFd> fds;
};

struct VhostReply {
  bool send = false;
  npa_vhost_user_hdr hdr{};
  npa_vhost_user_payload payload{};
};

class VhostSession {
 public:
  using State = VhostSessionState;
  using enum VhostSessionState;  // VhostSession::kOwned, ...

  // opts must be valid (VhostDevice::Create checks them).
  explicit VhostSession(VhostDevice::Options opts);
  ~VhostSession();

  // Checks a header on its own: version bits == 1, no reply flag, no
  // unknown flag, a known request, size <= kMaxPayload. The reader calls it
  // before reading the payload, so a bad size never drives a read.
  absl::Status CheckHeader(const npa_vhost_user_hdr& hdr) const;
  // Handles one complete message. *reply is filled when something must be
  // sent back (the request's own reply, or the REPLY_ACK u64), also when the
  // returned status is an error (a REPLY_ACK nack goes out before closing).
  // Non-OK => close the session; the reason is logged with guest and message.
  absl::Status Handle(VhostMessage msg, VhostReply* reply);

  State state() const { return machine_.state(); }
  const std::string& name() const { return opts_.name; }
  uint64_t acked_features() const { return acked_features_.load(std::memory_order_relaxed); }
  uint64_t acked_protocol_features() const { return acked_protocol_; }
  uint32_t mtu() const { return mtu_.load(std::memory_order_relaxed); }

  // ---- data plane (see VhostDevice) ----
  uint16_t num_queue_pairs() const;
  bool QueueReady(uint16_t qp) const;
  uint16_t PeekTx(uint16_t qp, GuestFrame* out, uint16_t n, uint32_t* desc_budget = nullptr);
  void ReleaseTx(uint16_t qp, uint16_t n);
  uint16_t EnqueueRx(uint16_t qp, const PacketRef* pkts, uint16_t n, RxFull full);
  bool broken() const { return broken_.load(std::memory_order_acquire); }
  std::string broken_reason() const;
  QueueCounters counters(uint16_t qp) const;
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  std::vector<UniqueFd> NotifyFds();  // duplicates; see VhostDevice::NotifyFds
  void SetIdleNotify(bool want_kicks);

 private:
  struct RequestSpec;
  static const RequestSpec kRequests[];
  static const size_t kNumRequests;
  struct Vring {
    uint32_t num = 0;
    npa_vhost_vring_addr addr{};
    bool addr_set = false;
    uint16_t base = 0;
    UniqueFd kick, call, err;
    bool started = false;
    bool enabled = false;
    std::atomic<bool> live{false};  // started && enabled && configured, for QueueReady
    VirtQueue vq;                   // guarded by mu_
  };

  static const RequestSpec* FindSpec(uint32_t request);
  absl::Status Dispatch(const RequestSpec& spec, VhostMessage& msg, VhostReply* reply);
  absl::StatusOr<Vring*> RingFromIndex(uint32_t index);
  absl::StatusOr<RingLayout> Translate(const GuestMemory& mem, const Vring& r) const;
  // Starts the ring's VirtQueue if it is complete. Caller holds mu_.
  void UpdateLiveLocked(uint32_t index);
  void MarkBrokenLocked(const std::string& why);
  void ResetLocked();
  absl::Status ValidateEventFd(int fd, const char* what) const;

  // Handlers, one per request (table entries point at them).
  absl::Status OnGetFeatures(VhostMessage& m, VhostReply* r);
  absl::Status OnSetFeatures(VhostMessage& m, VhostReply* r);
  absl::Status OnSetOwner(VhostMessage& m, VhostReply* r);
  absl::Status OnResetOwner(VhostMessage& m, VhostReply* r);
  absl::Status OnGetProtocolFeatures(VhostMessage& m, VhostReply* r);
  absl::Status OnSetProtocolFeatures(VhostMessage& m, VhostReply* r);
  absl::Status OnGetQueueNum(VhostMessage& m, VhostReply* r);
  absl::Status OnSetMemTable(VhostMessage& m, VhostReply* r);
  absl::Status OnSetVringNum(VhostMessage& m, VhostReply* r);
  absl::Status OnSetVringAddr(VhostMessage& m, VhostReply* r);
  absl::Status OnSetVringBase(VhostMessage& m, VhostReply* r);
  absl::Status OnGetVringBase(VhostMessage& m, VhostReply* r);
  absl::Status OnSetVringFd(VhostMessage& m, VhostReply* r);  // KICK, CALL, ERR
  absl::Status OnSetVringEnable(VhostMessage& m, VhostReply* r);
  absl::Status OnNetSetMtu(VhostMessage& m, VhostReply* r);
  absl::Status OnSetStatus(VhostMessage& m, VhostReply* r);
  absl::Status OnGetStatus(VhostMessage& m, VhostReply* r);

  const VhostDevice::Options opts_;
  StateMachine<VhostSessionTraits> machine_{kNoOwner};  // control thread only
  std::atomic<uint64_t> acked_features_{0};
  uint64_t acked_protocol_ = 0;
  bool protocol_set_ = false;  // SET_PROTOCOL_FEATURES seen (control thread)
  std::atomic<uint32_t> mtu_;
  uint8_t status_ = 0;
  std::shared_ptr<const GuestMemory> mem_;  // written under mu_

  // Dataplane vs control thread: taken once per burst call by the
  // dataplane, and by the control thread around every change to what the
  // dataplane reads (vq, mem_, call fds, counters). Never held across I/O
  // on the vhost-user socket.
  mutable std::mutex mu_;
  // GET_VRING_BASE on a TX ring waits (at most opts_.stop_release_wait_ms)
  // for the frames the dataplane peeked to be released; ReleaseTx signals
  // while a stop waits. Both guarded by mu_.
  std::condition_variable tx_released_;
  uint32_t stop_waiters_ = 0;
  std::vector<std::unique_ptr<Vring>> vrings_;  // 2 * max_queue_pairs; fixed size
  std::vector<QueueCounters> counters_;          // per qp, guarded by mu_
  std::atomic<bool> broken_{false};
  std::string broken_reason_;  // guarded by mu_
  std::atomic<uint64_t> generation_{0};
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_VHOST_VHOST_SESSION_H_
