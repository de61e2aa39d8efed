// hypervisor/daemon/vf_attachments.h — the guests' side of the VF path in
// npa-agent: RegionAnnounce, VfOffer/VfAccept, Revoke/RevokeDone, forced
// detach, and the npactl requests that wait for a guest's answer. The VF's
// own steps (bind, open, map, reset, unbind) are VfManager's (vf_manager.h);
// the protocol is docs/vf-management.md; this class ties the two to a guest
// and to the guest's lifecycle (guest_lifecycle.h).
//
//   VfAttachments vf(opts, &vf_manager, &guests, {.channel = session_by_fd,
//                                                 .answer = answer_npactl});
//   // shell frames (guest session):
//   NPA_RETURN_IF_ERROR(vf.OnRegions(ch, g, frame));      // non-OK: close the session
//   NPA_RETURN_IF_ERROR(vf.OnVfAccept(ch, g, frame.env));
//   NPA_RETURN_IF_ERROR(vf.OnRevokeDone(ch, g, frame.env));
//   vf.set_path_changed(...);  // (g, false) once a VF g used is released: the
//   // control server announces g's MAC on the uplink (Migrations::AnnounceMac)
//   // npactl (admin_service.h):
//   absl::Status st = vf.StartAttach(g, pci, 0, {admin_fd, seq});
//   // OK: answered later through answer_npactl (VfAccept or the deadline)
//   vf.CheckDeadlines();                                  // every loop turn
//   vf.OnGuestClosing(g, "peer left");                    // before erasing g
//
// Decisions are the guest table's: an attach needs the arc RUNNING ->
// VF_OFFERED (else "guest g1 is NEGOTIATING: attach needs RUNNING"), a VfAccept
// VF_OFFERED -> VF_ACTIVE, a planned detach VF_ACTIVE -> REVOKING; an
// unsolicited RevokeDone is taken while the guest could be revoked
// (VF_ACTIVE), and every release walks the table back to RUNNING. A refused
// npactl request gets the reason in its AdminReply; a guest message the table
// refuses gets Error{UNEXPECTED, reason} and its session closes. A step the
// table refuses after it was asked (a bug) breaks the guest (Guest::Break),
// which the control server then closes.
//
// The flows:
//   npactl vf attach G PCI (guest RUNNING, regions announced):
//     agent -> VfOffer{ids, offer_id} + 1 fd (dup of the VFIO device fd);
//              guest RUNNING -> VF_OFFERED
//     shell -> VfAccept{offer_id, accepted, plugin, reason} within
//              accept_timeout_ms: accepted => VF_ACTIVE (path "vf");
//              declined => teardown, RUNNING (the shell closes its fd first);
//              no answer => teardown with a forced unbind, RUNNING.
//   npactl vf detach G: agent -> Revoke{offer_id, timeout_ms, reason},
//     guest REVOKING; shell -> RevokeDone{offer_id, tx_inflight_lost} =>
//     reset, unmap, close, VF FREE, guest RUNNING. No RevokeDone in time =>
//     the same teardown plus a forced unbind (the kernel REQs the shell).
//   npactl vf detach --force G (VF_ACTIVE): the agent fires the device's
//     VFIO REQ interrupt (the signal the kernel sends on unbind), guest
//     REVOKING; a cooperating shell falls back by itself on the still-working
//     device and says RevokeDone unsolicited => teardown + forced unbind.
//     No RevokeDone within force_grace_ms (or the request's timeout), or
//     no REQ eventfd wired, or the guest was not VF_ACTIVE => teardown +
//     forced unbind at once (what the VF still held is lost, uncounted).
//   RevokeDone while VF_ACTIVE with nothing asked (the shell fell back on
//     VFIO ERR, or stopped its queues): teardown, guest RUNNING.
//   A VfAccept/RevokeDone naming an offer the agent already gave up (timeout,
//   force) is ignored; naming any other offer is UNEXPECTED.
//   A guest session that closes releases its VF (forced).
//
// After an agent restart (docs/security.md "Agent restart"):
//   AdoptFromRoster (at Listen): each VF the restart roster says a guest was
//     using is marked ADOPTED for it (VfManager::Adopt): the agent holds no
//     fd for it and never offers, resets or unbinds it under the guest.
//   Readopt (the guest RUNNING again): a shell that lost its agent says so
//     with Hello.resume without a ticket, and keeps driving its VF (shell
//     path ON_VF; shell/reconnect.h). The resume carries nothing about the
//     VF, so the roster is the record; it is cross-checked against the
//     Hello: the same name, the same MAC, a resume without ticket (a new
//     shell process, which cannot hold the fd, sends no resume). Then the
//     guest walks RUNNING -> VF_OFFERED -> VF_ACTIVE (path "vf") with the
//     roster's offer id, the one the shell accepted and answers a Revoke
//     for. RegionAnnounce is taken while the VF is adopted: the agent maps
//     nothing of it (the VF's mappings live in the dead agent's container);
//     the regions serve the next attach.
//   npactl vf detach G (planned): Revoke{the roster's offer id} as above;
//     on RevokeDone (or the shell giving it back unasked) the VF is
//     reclaimed: its group opened afresh, reset, closed, FREE. The kernel
//     has the last word: a group that is still busy (the shell kept its fd)
//     leaves the VF ADOPTED without a live holder, the npactl answer says
//     so, and VfManager::Poll reclaims it once the fd closes. The same on a
//     revoke deadline: nothing is unbound (no REQ is raised by the agent).
//   npactl vf detach --force G: refused, naming the VF and the guest: the
//     agent has no device fd to raise VFIO REQ on, and a forced unbind
//     would block until the guest let go anyway; a planned detach, or
//     stopping the guest, frees it.
//   The guest closes (or never comes back): the VF stays ADOPTED, held by
//     nobody connected, not offered, until Poll finds its group free; the
//     restart roster keeps it meanwhile (Orphans).
//
// What a guest can make the agent hold through RegionAnnounce is bounded
// (docs/security.md): at most Options::max_regions regions, at most
// Options::max_guest_memory bytes mapped in all (the same per-guest bound the
// vhost back end applies to SET_MEM_TABLE, agent flag --max-guest-memory);
// over either => Error{LIMIT} and the session closes. Each fd must be a
// memfd, hugetlbfs or tmpfs file, checked before anything that could block on
// it (CheckRegionFdType: F_GET_SEALS, which only shmem and hugetlbfs answer,
// then fstatfs), then sealed against shrinking (guest_regions.h); a new
// announce replaces the old one (its mappings go), so they never add up. The
// fds themselves are closed once mapped; the VF's device fd is the
// VfManager's, one per guest at most; stale offer ids are capped at 8.
//
// Ownership: vfs and guests must outlive this object (either may be null /
// empty: without a VfManager every VF request is refused). A parked npactl
// request names its session by fd; ForgetAdmin(fd) when that session closes.
// Threads: the control thread only.
#ifndef NPA_HYPERVISOR_DAEMON_VF_ATTACHMENTS_H_
#define NPA_HYPERVISOR_DAEMON_VF_ATTACHMENTS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/control_codec.h"
#include "hypervisor/daemon/agent_events.h"
#include "hypervisor/daemon/guest_registry.h"
#include "hypervisor/vf/vf_manager.h"

namespace npa::agent {

// An npactl request that waits for a guest: its session fd (-1: nobody
// waits) and the seq its AdminReply must carry.
struct AdminWaiter {
  int fd = -1;
  uint64_t seq = 0;
};

// RegionAnnounce against the per-guest bounds: kResourceExhausted naming the
// count or the total (which cannot wrap) and the bound; OK otherwise. Pure.
absl::Status CheckRegionBounds(const control::RegionAnnounce& a, size_t max_regions,
                               uint64_t max_guest_memory);
// fd is a memfd, hugetlbfs or tmpfs file. Asks F_GET_SEALS first: the kernel
// answers it from the inode for shmem and hugetlbfs files and refuses it
// (EINVAL) for every other file without calling into its file system, so a
// FUSE- or NFS-backed fd is refused before fstat/fstatfs/mmap, any of which
// could wait on a hostile server. Then fstatfs confirms TMPFS_MAGIC or
// HUGETLBFS_MAGIC. kInvalidArgument naming region `index`.
absl::Status CheckRegionFdType(int fd, int index);

class VfAttachments {
 public:
  struct Options {
    uint32_t accept_timeout_ms = 10000;  // default wait for VfAccept
    uint32_t revoke_timeout_ms = 5000;   // default Revoke.timeout_ms
    uint32_t force_grace_ms = 3000;      // forced detach: wait after VFIO REQ
    size_t max_regions = kMaxRegions;    // regions per RegionAnnounce (<= kMaxRegions)
    uint64_t max_guest_memory = 4ull << 30;  // bytes a guest's regions may map
  };
  // What the control server lends: the channel of the session on fd (null
  // if it is gone), and the AdminReply of a parked request (error `st`, or
  // OK with `message`; dropped if the npactl session is gone).
  struct Hooks {
    std::function<ControlChannel*(int fd)> channel;
    std::function<void(const AdminWaiter& w, const absl::Status& st, const std::string& message)>
        answer;
  };
  // The guest's frames now take another path: on_vf after it accepted a VF
  // (the shell announces its MAC through the VF itself); !on_vf when a
  // revoke begins (Revoke sent, or VFIO REQ raised: the shell reads its
  // emulated ring throughout the switch, so frames may come by the uplink
  // from then on) and again after a VF it was using (VF_ACTIVE or REVOKING)
  // was released and the guest is RUNNING on the emulated path: planned
  // revoke, forced detach, a deadline, or the shell's own fallback. The
  // control server has Migrations announce the MAC on the uplink then (AnnounceMac: one RARP
  // at once, then the --rarp-schedule gaps), so a learning switch stops
  // sending the guest's frames to the VF's port. Not called for a guest
  // that is closing. Unset: nothing is called.
  using PathChanged = std::function<void(const Guest& g, bool on_vf)>;
  void set_path_changed(PathChanged f) { path_changed_ = std::move(f); }
  // Lifecycle events (agent_events.h), published where the tables decided:
  // vf_attach (VfOffer sent), vf_accept (VF_ACTIVE), revoke_begin (Revoke
  // sent or VFIO REQ raised; detail "planned"/"forced"), and on every
  // release of a VF the guest used: revoke_done (duration since
  // revoke_begin, 0 if the guest gave it back unasked; detail: why), then
  // vf_released (the VF back to the pool; any release), then fallback (the
  // guest RUNNING on the emulated path; not when it is closing). Null: none.
  void set_events(AgentEvents* events) { events_ = events; }

  VfAttachments(Options opts, VfManager* vfs, GuestRegistry* guests, Hooks hooks);

  VfManager* vfs() const { return vfs_; }

  // ---- the guest's messages (its session `ch`); non-OK: close the session,
  // the Error (if any) was sent.
  absl::Status OnRegions(ControlChannel& ch, Guest& g, ControlFrame& f);
  absl::Status OnVfAccept(ControlChannel& ch, Guest& g, const control::Envelope& env);
  absl::Status OnRevokeDone(ControlChannel& ch, Guest& g, const control::Envelope& env);

  // ---- npactl. A non-OK status is the refusal (nothing pending); OK means
  // the answer comes through Hooks::answer, unless StartDetach set
  // *done_message (answer now). timeout_ms 0: the Options default.
  absl::Status StartAttach(Guest& g, const std::string& pci, uint32_t timeout_ms, AdminWaiter w);
  absl::Status StartDetach(Guest& g, bool force, uint32_t timeout_ms, AdminWaiter w,
                           std::string* done_message);

  // ---- agent restart (see the header comment). At Listen: every roster
  // entry that names a VF; refusals (not in the pool, listed twice) are
  // logged and that VF is left as it is.
  void AdoptFromRoster(const std::vector<RosterEntry>& roster);
  // g became RUNNING: if it lost its agent and the roster's entry for it
  // matches, its ADOPTED VF is tied to it and g goes VF_ACTIVE.
  void Readopt(Guest& g);
  // The VFs still ADOPTED that no connected guest holds (not back yet, or
  // released while its group was busy), as roster lines: the restart
  // roster keeps them, so a second restart does not forget them. A line may
  // outlive its VF's reclaim until the next save; the next agent's probe
  // then reclaims it at once.
  std::vector<RosterEntry> Orphans() const;

  // Offers and revokes whose deadline passed: teardown (forced), answers.
  void CheckDeadlines();
  // g is closing: its waiting requests are answered, its VF released (forced).
  void OnGuestClosing(Guest& g, const std::string& why);
  // The npactl session on fd closed: nobody is left to answer.
  void ForgetAdmin(int fd);
  size_t num_pending() const { return pending_.size(); }

 private:
  struct Pending {
    enum Kind { kAttach, kRevoke } kind;
    uint64_t guest_id = 0;
    uint64_t offer_id = 0;
    uint64_t deadline_ms = 0;
    AdminWaiter waiter;
    bool forced = false;  // kRevoke by VFIO REQ (npactl vf detach --force)
    uint64_t start_ms = 0;
  };

  // Tears down g's VF (VfManager::Release) and walks g back to RUNNING along
  // its table; if g was using the VF, path_changed(g, false) unless
  // `closing`. Returns the teardown's status.
  absl::Status Release(Guest& g, const std::string& why, bool force, bool closing = false);
  // A revoke of g's VF began: path_changed(g, false) (why: vf_attachments.cc).
  void AnnounceRevoke(const Guest& g, const char* how);
  void Emit(EventKind k, const Guest& g, const std::string& vf, const std::string& detail,
            uint64_t duration_ns = 0);
  // Takes the VF at once (forced), answering whoever waits on the offer.
  absl::Status TakeAtOnce(Guest& g, const std::string& why);
  void Answer(const Pending& p, const absl::Status& st, const std::string& message);
  std::vector<Pending>::iterator FindPending(Pending::Kind kind, uint64_t guest_id,
                                             uint64_t offer_id);
  bool IsStale(const Guest& g, uint64_t offer_id) const;

  Options opts_;
  VfManager* vfs_;
  GuestRegistry* guests_;
  Hooks hooks_;
  PathChanged path_changed_;
  AgentEvents* events_ = nullptr;
  std::map<uint64_t, uint64_t> revoke_start_ns_;  // guest id -> revoke_begin time
  std::vector<Pending> pending_;
  // By guest name: the roster's VFs until Readopt, and VFs released while
  // their group was busy (orphans until Poll reclaims them).
  std::map<std::string, RosterEntry> adopted_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_VF_ATTACHMENTS_H_
