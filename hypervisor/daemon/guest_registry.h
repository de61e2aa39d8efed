// hypervisor/daemon/guest_registry.h — npa-agent's guests: one record per
// attached guest (control-socket shells and plain vhost-user connections),
// its lifecycle machine (guest_lifecycle.h), and the lookups every part of
// the control server shares (by id, by name or number, by MAC).
//
//   GuestRegistry guests("npa-agent");
//   Guest& g = guests.Add(guests.NewId());
//   g.name = "g0";
//   if (absl::Status s = g.Move(GuestState::kNegotiating); !s.ok()) ...;  // logged already
//   if (Guest* x = guests.Find("g0")) ...;         // or Find("1"), the id
//   guests.Erase(g.id);
//
// Lifecycle: every move of a guest goes through Guest::Move, which asks the
// table and, for an illegal one, logs the guest's name and both states and
// returns the error with the guest unchanged; the caller then refuses the
// request, closes the session, or calls Break() (BROKEN, which the control
// server closes: BROKEN -> CLOSING -> CLOSED). Nothing is decided on a state
// the table has not been asked about.
//
// Ownership: the registry owns the Guest records; a Guest& stays valid until
// Erase(id) (std::map nodes do not move). A Guest owns its back end (port,
// shared with the dataplane while in_dataplane) and its announced regions;
// its control session belongs to ControlServer and is named by session_fd.
// Threads: the control thread only.
#ifndef NPA_HYPERVISOR_DAEMON_GUEST_REGISTRY_H_
#define NPA_HYPERVISOR_DAEMON_GUEST_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hypervisor/daemon/guest_lifecycle.h"
#include "hypervisor/daemon/guest_port.h"
#include "hypervisor/daemon/guest_rss.h"
#include "hypervisor/daemon/mac_switch.h"
#include "hypervisor/vf/guest_regions.h"
#include "include/npa/control.pb.h"

namespace npa::agent {

struct Guest {
  uint64_t id = 0;
  std::string name;
  std::optional<MacAddr> mac;
  uint32_t pid = 0;
  uint16_t queue_pairs = 0;
  uint64_t offloads = 0;       // Hello.features (NPA_OFFLOAD_*)
  std::string transport;  // "control" | "vhost-user-socket"
  GuestLifecycle lc;
  int session_fd = -1;  // the control session, or -1 (vhost-user socket)
  std::shared_ptr<GuestPort> port;
  bool in_dataplane = false;
  std::string broken_reason;  // why Break() was called
  // RssConfig from its shell (guest_rss.h): how the dataplane spreads its RX
  // over its queues; null: by the sender's queue.
  std::shared_ptr<const GuestRss> rss;
  uint64_t rss_window_ms = 0;  // ApplyRssConfig's rate bound: the current second
  uint32_t rss_in_window = 0;  // and how many it took in it

  // VF path (vf_attachments.h).
  std::unique_ptr<GuestRegions> regions;  // RegionAnnounce, for DMA mapping
  uint64_t offer_id = 0;                  // VF held (offered/active/revoking)
  std::string vf_bdf;
  std::string vf_plugin;
  std::vector<uint64_t> stale_offers;  // given up: late answers are ignored
  // Its Hello had a resume without a ticket: a shell that lost its agent
  // and may still drive a VF it accepted there (VfAttachments::Readopt).
  bool lost_agent = false;

  // One step along the guest table. An illegal one is logged ("control:
  // guest g0: guest lifecycle: illegal transition RUNNING -> VF_ACTIVE") and
  // returned; the guest is unchanged then.
  absl::Status Move(GuestState to);
  // The guest cannot go on: BROKEN (if the table allows it from here), with
  // the reason kept for the close. ControlServer closes BROKEN guests.
  void Break(const std::string& why);
};

class GuestRegistry {
 public:
  // MACs the agent assigns are salted with its name, so a guest that
  // re-attaches to the same agent tends to get the same MAC back.
  explicit GuestRegistry(const std::string& agent_name);

  // Ids are never reused. A caller may take one and not Add it (a back end
  // that failed to come up): the id is just skipped.
  uint64_t NewId() { return next_id_++; }
  Guest& Add(uint64_t id);
  void Erase(uint64_t id) { guests_.erase(id); }

  Guest* Get(uint64_t id);
  // By name, or by decimal id.
  Guest* Find(const std::string& name_or_id);
  bool NameInUse(const std::string& name) const;
  bool MacInUse(const MacAddr& m) const;
  // A free locally administered unicast MAC (02:..), or nullopt.
  std::optional<MacAddr> AssignMac() const;

  size_t size() const { return guests_.size(); }
  std::vector<uint64_t> ids() const;  // a snapshot, for loops that close guests
  auto begin() { return guests_.begin(); }
  auto end() { return guests_.end(); }
  auto begin() const { return guests_.begin(); }
  auto end() const { return guests_.end(); }

 private:
  std::map<uint64_t, Guest> guests_;
  uint64_t next_id_ = 1;
  uint32_t mac_salt_ = 0;
};

// The restart roster: which guests an agent had, kept in a file beside its
// control socket so that an agent started again after a kill -9 or a planned
// stop knows whom to wait for (docs/security.md "Agent restart"). One line per
// shell guest that had reached RUNNING (or a VF state), "NAME MAC\n"; a
// vhost-user-socket guest has no name to come back with and is not listed.
// A guest that was using a VF (VF_ACTIVE or REVOKING: its shell holds the
// device fd and keeps forwarding when the agent dies) has two more fields,
// "NAME MAC BDF OFFER\n": the VF's PCI address and the offer id the shell
// accepted it with (the shell gives back only the offer it holds, so the
// next agent's Revoke must name it). The new agent marks that VF ADOPTED
// (vf_lifecycle.h). A VF only offered (VF_OFFERED) is not listed: had the
// shell taken it, the kernel still refuses a second open of its group.
struct RosterEntry {
  std::string name;
  MacAddr mac{};
  std::string vf_bdf;  // "" = no VF
  uint64_t vf_offer = 0;
};
// The entries of `guests` as above, in id order.
std::vector<RosterEntry> RosterOf(const GuestRegistry& guests);
// Writes them to path atomically (path.tmp, fsync-free rename: a torn file is
// never seen). Errors name the path and the call.
absl::Status SaveRoster(const std::string& path, const std::vector<RosterEntry>& entries);
// Reads a roster (two-field lines of an older agent too). NotFound: no file
// (a first start). InvalidArgument naming the line: a name that fails the
// Hello name rule, a MAC that is not unicast, a third field that is not a
// PCI address or a fourth that is not an offer id (decimal, non-zero), 3 or
// more than 4 fields,
// more than kMaxRosterEntries lines or a file over 64 KiB (the file is the
// agent's own, but it lives on disk: checked like input).
inline constexpr size_t kMaxRosterEntries = 4096;
absl::StatusOr<std::vector<RosterEntry>> LoadRoster(const std::string& path);

// One queue pair's counters as control.proto has them.
void CopyQueueCounters(uint32_t qp, const QueueCounters& c, control::QueueCounters* out);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_GUEST_REGISTRY_H_
