// hypervisor/migration/migration_table.h — the two lifecycles of a
// migration as tables (common/state_machine.h), in the manner of VFIO
// migration v2's device-state arcs: the table is the one place that says
// which step is legal; docs/migration.md has the sequence they follow.
//
// Source (A), one machine per migration of one guest:
//
//   RUNNING --revoke--> REVOKING_VF --offer--> OFFERED --accepted--> STOPPING
//      `------------------offer-----------------^                       |
//                                                                    ready
//   DONE <--done-- COMMITTED <--committed-- STOP_COPY <------------------'
//
//   RUNNING      the guest is served by A; no migration in flight (also where
//                an aborted migration ends: the guest never left A)
//   REVOKING_VF  the guest was on a VF: Revoke sent, waiting for RevokeDone
//   OFFERED      MigrationOffer sent, waiting for MigrationAccept
//   STOPPING     accepted: MigratePrepare sent, waiting for MigrateReady (the
//                shell stops every ring with GET_VRING_BASE)
//   STOP_COPY    MigrationCommit (state with the ring indices) sent, waiting
//                for MigrationCommitted; A holds the guest's late frames
//   COMMITTED    MigrateCommit sent to the shell: it moves to B. A keeps the
//                guest's slot until the hold ends (the shell may come back)
//   DONE         B reported MigrationDone{resumed}, or the hold ended: A
//                frees the slot. Terminal.
//   ERROR        after the commit, B was lost (channel closed, or
//                MigrationDone{resumed=false}): where the guest is, is not
//                known until the shell comes back to A or A's hold ends.
//
//   abort (REVOKING_VF, OFFERED, STOPPING, STOP_COPY -> RUNNING): any
//     failure before the commit — B refused, the channel broke, a timeout,
//     the guest went away. A sends MigrateAbort (the shell restarts its rings
//     at the indices it stopped at) and the guest carries on on A with
//     nothing lost (late frames held by A go to its RX).
//   shell_returned (COMMITTED or ERROR -> RUNNING): the shell came back to A
//     with the ticket (B never took it); A resumes it.
//   fail (COMMITTED -> ERROR).
//   hold_expired (COMMITTED or ERROR -> DONE): the recovery of ERROR. A's
//     hold ended without the shell: A frees the slot and counts the late
//     frames it still held as lost. The guest is then B's (or gone); if its
//     shell comes back later it is a new guest (Hello.resume without ticket,
//     as after an agent restart).
//
// Destination (B), one machine per accepted offer:
//
//   RESERVED --commit--> RESUMING --resumed--> RUNNING
//      |                    |
//   hold_expired,        hold_expired, fail --> ERROR --release--> RELEASED
//   channel_lost            |                                         ^
//      `--------------------+---------------------------------------->'
//
//   RESERVED  MigrationAccept sent: the slot, the name and the MAC are held
//             for the ticket
//   RESUMING  MigrationCommitted sent: waiting for the shell's
//             Hello{resume{ticket}} and every ring resumed
//   RUNNING   the shell resumed; MigrationDone{resumed=true} sent. Terminal
//             for the migration (the guest is now an ordinary guest of B).
//   RELEASED  the reservation is gone (hold expired, or A went away before
//             the commit; after RESUMING: MigrationDone{resumed=false}).
//             Terminal.
//   ERROR     the shell arrived but could not be resumed (its rings or
//             regions were refused): B closes its sessions (the shell goes
//             back to A with the ticket) and releases (release).
//   channel_lost after the commit (RESUMING, RUNNING) stays put: the shell is
//   on its way and does not need A's channel; B then cannot send
//   MigrationDone, and A learns the outcome from the shell or its hold.
//
// An event the table does not list is refused with kFailedPrecondition naming
// the machine, the event and the state ("source migration: ready is illegal
// in state OFFERED"), the state unchanged; the caller handles it (refuses the
// request, aborts, or closes the channel), never drops it.
//
//   SourceMigration m("g1");                        // RUNNING
//   NPA_RETURN_IF_ERROR(m.Fire(SourceEvent::kOffer));     // -> OFFERED
//   absl::Status s = m.Fire(SourceEvent::kCommitted);
//   // s: "migration of guest g1: source migration: committed is illegal in
//   //     state OFFERED"; still OFFERED
//
// Threads: none of their own; the owner serializes access.
#ifndef NPA_HYPERVISOR_MIGRATION_MIGRATION_TABLE_H_
#define NPA_HYPERVISOR_MIGRATION_MIGRATION_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/state_machine.h"

namespace npa::migration {

enum class SourceState : uint8_t {
  kRunning,
  kRevokingVf,
  kOffered,
  kStopping,
  kStopCopy,
  kCommitted,
  kDone,
  kError,
};
inline constexpr size_t kNumSourceStates = 8;

enum class SourceEvent : uint8_t {
  kRevoke,         // the guest is on a VF: Revoke sent
  kOffer,          // MigrationOffer sent (after RevokeDone, if a VF was revoked)
  kAccepted,       // MigrationAccept received; MigratePrepare sent
  kReady,          // MigrateReady received; MigrationCommit sent
  kCommitted,      // MigrationCommitted received; MigrateCommit sent to the shell
  kDone,           // MigrationDone{resumed=true} received
  kAbort,          // any failure before the commit
  kFail,           // B lost after the commit
  kShellReturned,  // the shell came back to A with the ticket
  kHoldExpired,    // A's hold on the guest's slot ended
};
inline constexpr size_t kNumSourceEvents = 10;

const char* SourceStateName(SourceState s);
const char* SourceEventName(SourceEvent e);

struct SourceMigrationTraits {
  using State = SourceState;
  using Event = SourceEvent;
  static constexpr const char* kName = "source migration";
  static constexpr size_t kNumStates = kNumSourceStates, kNumEvents = kNumSourceEvents;
  static const char* StateName(SourceState s) { return SourceStateName(s); }
  static const char* EventName(SourceEvent e) { return SourceEventName(e); }

  using S = SourceState;
  using E = SourceEvent;
  static constexpr Arc<SourceState, SourceEvent> kArcs[] = {
      {S::kRunning, E::kRevoke, S::kRevokingVf},
      {S::kRunning, E::kOffer, S::kOffered},
      {S::kRevokingVf, E::kOffer, S::kOffered},
      {S::kOffered, E::kAccepted, S::kStopping},
      {S::kStopping, E::kReady, S::kStopCopy},
      {S::kStopCopy, E::kCommitted, S::kCommitted},
      {S::kCommitted, E::kDone, S::kDone},
      // Before the commit every failure aborts: the guest stays on A.
      {S::kRevokingVf, E::kAbort, S::kRunning},
      {S::kOffered, E::kAbort, S::kRunning},
      {S::kStopping, E::kAbort, S::kRunning},
      {S::kStopCopy, E::kAbort, S::kRunning},
      // After it: B lost, the shell comes back, or the hold ends.
      {S::kCommitted, E::kFail, S::kError},
      {S::kCommitted, E::kShellReturned, S::kRunning},
      {S::kCommitted, E::kHoldExpired, S::kDone},
      {S::kError, E::kShellReturned, S::kRunning},
      {S::kError, E::kHoldExpired, S::kDone},
  };
};

enum class DestState : uint8_t {
  kReserved,
  kResuming,
  kRunning,
  kReleased,
  kError,
};
inline constexpr size_t kNumDestStates = 5;

enum class DestEvent : uint8_t {
  kCommit,       // MigrationCommit accepted; MigrationCommitted sent
  kResumed,      // the shell resumed every ring; MigrationDone{resumed} sent
  kHoldExpired,  // the hold ended without the shell
  kChannelLost,  // A's channel closed (or A aborted)
  kFail,         // the shell arrived but could not be resumed
  kRelease,      // ERROR's recovery: sessions closed, reservation freed
};
inline constexpr size_t kNumDestEvents = 6;

const char* DestStateName(DestState s);
const char* DestEventName(DestEvent e);

struct DestMigrationTraits {
  using State = DestState;
  using Event = DestEvent;
  static constexpr const char* kName = "destination migration";
  static constexpr size_t kNumStates = kNumDestStates, kNumEvents = kNumDestEvents;
  static const char* StateName(DestState s) { return DestStateName(s); }
  static const char* EventName(DestEvent e) { return DestEventName(e); }

  using S = DestState;
  using E = DestEvent;
  static constexpr Arc<DestState, DestEvent> kArcs[] = {
      {S::kReserved, E::kCommit, S::kResuming},
      {S::kResuming, E::kResumed, S::kRunning},
      {S::kReserved, E::kHoldExpired, S::kReleased},
      {S::kReserved, E::kChannelLost, S::kReleased},
      {S::kResuming, E::kHoldExpired, S::kReleased},
      {S::kResuming, E::kChannelLost, S::kResuming},  // the shell is on its way
      {S::kRunning, E::kChannelLost, S::kRunning},    // nothing left to tell A
      {S::kResuming, E::kFail, S::kError},
      {S::kError, E::kRelease, S::kReleased},
  };
};

using SourceMigrationTable = TransitionTable<SourceMigrationTraits>;
using DestMigrationTable = TransitionTable<DestMigrationTraits>;

// True before the commit, when an abort still leaves the guest on A.
inline bool SourceCanAbort(SourceState s) { return SourceMigrationTable::Legal(s, SourceEvent::kAbort); }
// True while the shell's rings are stopped on A (A holds its late frames).
inline bool SourceRingsStopped(SourceState s) {
  return s == SourceState::kStopCopy || s == SourceState::kCommitted || s == SourceState::kError;
}
inline bool SourceTerminal(SourceState s) { return s == SourceState::kDone; }
inline bool DestTerminal(DestState s) { return s == DestState::kRunning || s == DestState::kReleased; }

// A machine that names its guest in every refusal:
// "migration of guest g1: source migration: ready is illegal in state OFFERED".
template <typename Traits>
class NamedMigration : public StateMachine<Traits> {
 public:
  NamedMigration(std::string guest, typename Traits::State initial)
      : StateMachine<Traits>(initial), guest_(std::move(guest)) {}
  const std::string& guest() const { return guest_; }
  [[nodiscard]] absl::Status Fire(typename Traits::Event e) {
    absl::Status s = StateMachine<Traits>::Fire(e);
    if (s.ok()) return s;
    return absl::Status(s.code(), absl::StrCat("migration of guest ", guest_, ": ", s.message()));
  }

 private:
  std::string guest_;
};

class SourceMigration : public NamedMigration<SourceMigrationTraits> {
 public:
  explicit SourceMigration(std::string guest)
      : NamedMigration(std::move(guest), SourceState::kRunning) {}
};

class DestMigration : public NamedMigration<DestMigrationTraits> {
 public:
  explicit DestMigration(std::string guest)
      : NamedMigration(std::move(guest), DestState::kReserved) {}
};

}  // namespace npa::migration

#endif  // NPA_HYPERVISOR_MIGRATION_MIGRATION_TABLE_H_
