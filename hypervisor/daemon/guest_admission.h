// hypervisor/daemon/guest_admission.h — who may become a guest of npa-agent,
// and when the traffic of a restarted agent may flow: the checks a Hello
// passes before the control server creates a guest for it, and the restart
// gate that holds every frame until the previous agent's guests are back.
// Split out of control_server.cc, which calls both (control_server.h).
//
//   // a Hello on the control socket (session undecided):
//   HelloVerdict v = CheckHelloFrame(hello, frame.fds.size());
//   if (!v.ok()) { SendError(ch, v.code, v.problem, seq); close; }
//   if (hello has a ticket) -> Migrations::ClaimTicket (migrations.h)
//   v = CheckNewGuestHello(hello, guests, max_queue_pairs);
//   if (!v.ok()) { SendError(ch, v.code, v.problem, seq); close; }
//   guest.mac = v.mac;                   // the one asked for, or one assigned
//
//   RestartGate gate(roster_path, 1000, &dataplane);
//   gate.Load();                         // at Listen: holds traffic if the file names guests
//   vf.AdoptFromRoster(gate.loaded());   // the VFs they used (vf_attachments.h)
//   gate.Save(guests);                   // whenever a guest comes or goes
//   gate.OnGuestRunning(g.name);         // opens once every listed guest is back
//   gate.Tick(MonotonicMs());            // every loop turn: opens when the grace is over
//   gate.Stop();                         // shutdown: the file stays for the next agent
//
// Hello checks (every refusal names what was wrong; docs/operator-guide.md):
//   CheckHelloFrame:    no fds (MALFORMED); the name [A-Za-z0-9_.-]{1,63}
//                       (MALFORMED).
//   CheckNewGuestHello: the name not in use (BUSY); mac empty (the agent
//                       assigns a 02:xx locally administered one; BUSY if
//                       none is free) or 6 bytes, unicast, non-zero
//                       (MALFORMED) and not in use (BUSY); queue_pairs in
//                       1..max_queue_pairs (MALFORMED); a Hello.resume
//                       without ticket (a shell whose agent went away) with
//                       ring indices that CheckResumeVrings accepts (MALFORMED).
//
// Restart gate (docs/security.md "Agent restart"): states OPEN (no roster,
// an empty one, or released) and HOLDING (Load found guests; the dataplane
// holds all traffic, Dataplane::HoldTraffic). HOLDING -> OPEN when the last
// listed guest is RUNNING again or restart_grace_ms after Load, whichever is
// first; the release is logged with the guests that did not come back. A
// roster that cannot be read is logged and ignored (OPEN): a first start
// has none.
//
// Errors: Save's failures are logged (the running agent goes on). Threads:
// the control thread only. Ownership: the dataplane (may be null: tests)
// outlives the gate.
#ifndef NPA_HYPERVISOR_DAEMON_GUEST_ADMISSION_H_
#define NPA_HYPERVISOR_DAEMON_GUEST_ADMISSION_H_

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "common/control_codec.h"
#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/daemon/guest_registry.h"

namespace npa::agent {

// "" if acceptable, else the problem (also used by tests).
std::string CheckGuestName(const std::string& name);

// A Hello check's answer: ok(), or the Error code and the problem to send.
struct HelloVerdict {
  control::Error::Code code = control::Error::UNSPECIFIED;
  std::string problem;  // "" when ok
  MacAddr mac{};        // CheckNewGuestHello: the guest's MAC when ok
  bool ok() const { return problem.empty(); }
};

// The checks every Hello passes, with or without a ticket.
HelloVerdict CheckHelloFrame(const control::Hello& h, size_t num_fds);
// The checks of a Hello that makes a new guest (no ticket), and its MAC.
HelloVerdict CheckNewGuestHello(const control::Hello& h, const GuestRegistry& guests,
                                uint16_t max_queue_pairs);

class RestartGate {
 public:
  // roster_path "" = no roster: Load and Save do nothing.
  RestartGate(std::string roster_path, uint32_t grace_ms, Dataplane* dp)
      : path_(std::move(roster_path)), grace_ms_(grace_ms), dp_(dp) {}

  void Load();
  // The roster of `guests` (RosterOf), then `orphans`: VFs still ADOPTED
  // for a guest that is not connected (VfAttachments::Orphans), so that the
  // next agent keeps them too.
  void Save(const GuestRegistry& guests, const std::vector<RosterEntry>& orphans = {});
  void OnGuestRunning(const std::string& name);
  // Opens the gate if its grace is over at now_ms.
  void Tick(uint64_t now_ms);
  // Ms until the grace ends (0 if due), -1 when open: the loop's wait bound.
  int MsUntilDeadline(uint64_t now_ms) const;
  // From now on Save leaves the file as it is (the agent is stopping).
  void Stop() { stopping_ = true; }

  bool holding() const { return deadline_ms_ != 0; }
  const std::set<std::string>& awaited() const { return awaited_; }
  // What Load read (empty without a roster): the VFs the guests held are
  // re-adopted from it (VfAttachments::AdoptFromRoster).
  const std::vector<RosterEntry>& loaded() const { return loaded_; }

 private:
  void Open(const char* why);

  const std::string path_;
  const uint32_t grace_ms_;
  Dataplane* dp_;
  std::set<std::string> awaited_;
  std::vector<RosterEntry> loaded_;
  uint64_t deadline_ms_ = 0;  // 0: open
  bool stopping_ = false;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_GUEST_ADMISSION_H_
