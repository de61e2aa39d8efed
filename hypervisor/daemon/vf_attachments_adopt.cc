// npa-agent after a restart: the VFs guests kept driving while no agent ran
// are re-adopted from the restart roster (vf_attachments.h "After an agent
// restart"; docs/security.md "Agent restart"). Split from vf_attachments.cc.
#include "hypervisor/daemon/vf_attachments.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace npa::agent {

void VfAttachments::AdoptFromRoster(const std::vector<RosterEntry>& roster) {
  for (const RosterEntry& e : roster) {
    if (e.vf_bdf.empty()) continue;
    LogScope log_scope(e.name, e.vf_bdf);
    absl::Status st = vfs_ ? vfs_->Adopt(e.vf_bdf, e.name, e.vf_offer)
                           : absl::FailedPreconditionError("this agent has no VF pool (--vf)");
    if (!st.ok()) {
      NPA_LOG(Warn, "control: restart: guest %s used VF %s before the restart; not adopted: %s",
              e.name.c_str(), e.vf_bdf.c_str(), std::string(st.message()).c_str());
      continue;
    }
    adopted_[e.name] = e;
  }
}

std::vector<RosterEntry> VfAttachments::Orphans() const {
  std::vector<RosterEntry> out;
  for (const auto& [name, e] : adopted_)
    if (vfs_ && vfs_->IsAdopted(e.vf_offer)) out.push_back(e);
  return out;
}

void VfAttachments::Readopt(Guest& g) {
  auto it = adopted_.find(g.name);
  if (it == adopted_.end() || !vfs_) return;
  const RosterEntry e = it->second;
  LogScope log_scope(g.name, e.vf_bdf);
  // Only the shell that held it can still hold it: one that lost its agent
  // (Hello.resume without a ticket) under the same MAC. Any other (a new
  // process of the same name) leaves the VF to Poll's probe.
  if (!g.lost_agent || !g.mac || *g.mac != e.mac) {
    NPA_LOG(Warn, "control: guest %s: not re-adopting VF %s: %s", g.name.c_str(), e.vf_bdf.c_str(),
            !g.lost_agent ? "its hello did not resume after losing its agent"
                          : "its MAC differs from the roster's");
    return;
  }
  if (!g.lc.CanFire(GuestState::kVfOffered)) return;  // not RUNNING: a later call
  std::optional<VfManager::Adopted> a = vfs_->Rejoin(g.name, g.id);
  adopted_.erase(it);
  if (!a) return;  // reclaimed meanwhile (the shell had let go)
  g.offer_id = a->offer_id;
  g.vf_bdf = a->bdf;
  g.vf_plugin.clear();  // the shell does not say again
  // The offer and its acceptance happened before the restart: the table's
  // route RUNNING -> VF_OFFERED -> VF_ACTIVE.
  std::vector<GuestState> path;
  absl::Status walk = ShortestPath(g.lc.state(), GuestState::kVfActive, &path);
  for (GuestState n : path) {
    if (!walk.ok()) break;
    walk = g.Move(n);
  }
  if (!walk.ok()) {
    // Asked above, so only a bug gets here; the close leaves the VF ADOPTED.
    g.Break(absl::StrCat("re-adopting VF ", a->bdf, ": ", walk.message()));
    return;
  }
  NPA_LOG(Info, "control: guest %s: VF %s re-adopted (offer %lu): it kept the VF across the agent "
          "restart", g.name.c_str(), a->bdf.c_str(), static_cast<unsigned long>(a->offer_id));
  Emit(EventKind::kVfAccept, g, a->bdf, "re-adopted after an agent restart");
  if (path_changed_) path_changed_(g, /*on_vf=*/true);
}

}  // namespace npa::agent
