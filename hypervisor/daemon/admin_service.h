// hypervisor/daemon/admin_service.h — npactl's side of npa-agent: one
// AdminReply per AdminRequest (include/npa/control.proto) on an admin
// session of the control socket.
//
//   AdminService admin("npa-agent", &guests, &dataplane, &vf_attachments, &migrations,
//                      &events);
//   absl::Status s = admin.Handle(*session.ch, frame);  // non-OK: close the session
//   ...
//   admin.Answer(*session.ch, waiter, st, message);     // a parked vf attach/detach
//   admin.PumpEvents(channel_by_fd);                    // every loop turn
//   admin.Forget(fd);                                   // the session closed
//
// Operations:
//   list_guests, guest_stats (by name or id; NOT_FOUND otherwise),
//   agent_stats (guests, switch and uplink counters): answered from the
//     guest registry and the dataplane at once.
//   vf_list, vf_reset, vf_enable: the VF pool (VfManager) at once; vf_list
//     without a pool still shows the inventory, read-only.
//   vf_attach, vf_detach: handed to VfAttachments, which either refuses at
//     once (the reason in AdminReply.error, e.g. "guest g1 is NEGOTIATING:
//     attach needs RUNNING") or parks the request until the guest answers or
//     its deadline passes; the control server then calls Answer(). A guest
//     that is migrating is refused.
//   migrate: handed to Migrations (migrations.h): NOT_FOUND for an unknown
//     guest, a refusal at once (no TLS configuration, wrong state), or the
//     reply with every phase when the move ends.
//   events: the recent lifecycle events (agent_events.h) at once; with
//     follow, the session then streams: PumpEvents() sends every new event
//     (one AdminReply with the request's seq per batch) until the session
//     closes. A following session takes no further request (MALFORMED, then
//     closed). Its events wait in a bounded subscription (kFollowQueue); while
//     its channel still holds more than kFollowBacklogFrames unsent replies
//     nothing more is queued on it, so a reader that does not keep up loses
//     the oldest events and the next reply says how many (events_missed),
//     and the control thread never waits on it.
// Errors in AdminReply.error: NOT_FOUND (no such guest or VF), MALFORMED (a
// bad argument, no op, fds attached), BUSY (wrong state, declined, timed
// out), INTERNAL (VFIO/sysfs). Only a malformed request (no op, fds) closes
// the session; the rest leave it open for the next request.
//
// Ownership: guests and vf must outlive this object; dp may be null (no
// traffic counters). Threads: the control thread only.
#ifndef NPA_HYPERVISOR_DAEMON_ADMIN_SERVICE_H_
#define NPA_HYPERVISOR_DAEMON_ADMIN_SERVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/control_codec.h"
#include "hypervisor/daemon/agent_events.h"
#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/daemon/guest_registry.h"
#include "hypervisor/daemon/migrations.h"
#include "hypervisor/daemon/vf_attachments.h"

namespace npa::agent {

class AdminService {
 public:
  // events may be null: `npactl events` is then refused (INTERNAL).
  AdminService(std::string agent_name, GuestRegistry* guests, Dataplane* dp, VfAttachments* vf,
               Migrations* mig, AgentEvents* events = nullptr);

  static constexpr size_t kFollowQueue = 1024;
  static constexpr size_t kFollowBacklogFrames = 16;

  // One AdminRequest frame from the npactl session on `ch`. Non-OK: the
  // session must be closed (the reply saying why was sent).
  absl::Status Handle(ControlChannel& ch, const ControlFrame& f);
  // The AdminReply to a parked request: error `st`, or OK with `message`
  // (st's message if empty).
  void Answer(ControlChannel& ch, const AdminWaiter& w, const absl::Status& st,
              const std::string& message);

  // Sends the new events to every following session; channel(fd) finds a
  // session's channel (null: gone, it is forgotten).
  void PumpEvents(const std::function<ControlChannel*(int)>& channel);
  // A's side of a move ended (Migrations' done hook, also when the npactl
  // that asked has left): publishes migration_out with the time since the
  // request and the outcome (the source state's name or "failed: ...").
  void OnMigrationEnded(uint64_t guest_id, const std::string& guest, uint64_t duration_ns,
                        const std::string& outcome);
  // The session on fd closed (no-op if it was not following).
  void Forget(int fd);
  bool following(int fd) const { return followers_.count(fd) != 0; }

  // AdminReply error codes by what the operator has to do about it.
  static control::Error::Code CodeFor(const absl::Status& s);
  // One row of `npactl guests`.
  static void FillGuestInfo(const Guest& g, bool with_queues, control::GuestInfo* out);

 private:
  control::Envelope NewReply(uint64_t seq) const;
  absl::Status HandleVf(ControlChannel& ch, const control::Envelope& req);
  absl::Status HandleEvents(ControlChannel& ch, const ControlFrame& f, control::Envelope rep);

  struct Follower {
    std::shared_ptr<EventSubscription> sub;
    uint64_t seq = 0;        // the request's: every streamed reply carries it
    uint64_t last_sent = 0;  // the last event seq sent (the Recent() overlap)
  };

  const std::string agent_name_;
  const uint64_t start_ms_;
  GuestRegistry* guests_;
  Dataplane* dp_;
  VfAttachments* vf_;
  Migrations* mig_;
  AgentEvents* events_;
  std::map<int, Follower> followers_;  // by session fd
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_ADMIN_SERVICE_H_
