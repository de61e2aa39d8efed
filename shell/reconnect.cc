#include "shell/reconnect.h"

#include <algorithm>
#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "shell/resume.h"
#include "shell/shell_impl.h"

namespace npa::shell {
namespace {

constexpr control::Error::Code kRefused = control::Error::UNEXPECTED;

control::MigrateReady OnPrepare(npa_shell* sh, const control::MigratePrepare& p) {
  control::MigrateReady r;
  r.set_migration_id(p.migration_id());
  auto refuse = [&](const std::string& why) {
    NPA_LOG(Warn, "shell '%s': migrate prepare %llu refused: %s", sh->name.c_str(),
            static_cast<unsigned long long>(p.migration_id()), why.c_str());
    r.mutable_error()->set_code(kRefused);
    r.mutable_error()->set_message(absl::StrCat("shell '", sh->name, "': ", why));
    return r;
  };
  std::lock_guard<std::mutex> vl(sh->vf_mu);
  if (absl::Status s = sh->path.Check(PathEvent::kMigratePrepare); !s.ok())
    return refuse(std::string(s.message()));
  if (!sh->emulated) return refuse("the guest has not configured its queues (npa_shell_configure)");
  const uint64_t t0 = MonotonicNs();
  // TX rings first (every pair), then RX: the back end takes no new guest
  // frame once TX stopped, and a frame it is already forwarding to this
  // guest (a loopback, a local switch) can still land in an RX ring that
  // runs. A ring that did not stop (an error) resumes at its used index.
  const uint32_t nv = sh->emulated->vrings();
  std::vector<uint16_t> base(nv);
  uint32_t stopped = 0, failed_at = 0;
  absl::Status s;
  {
    std::lock_guard<std::mutex> l(sh->mu);
    for (uint32_t i = 0; i < nv; i++) {
      const uint32_t v = i < nv / 2 ? 2 * i + 1 : 2 * (i - nv / 2);
      if (s.ok()) {
        absl::StatusOr<uint32_t> b = sh->fe->GetVringBase(v);
        if (b.ok()) {
          base[v] = static_cast<uint16_t>(*b);
          stopped++;
          continue;
        }
        s = b.status();
        failed_at = v;
      }
      base[v] = sh->emulated->used_idx(v);
    }
  }
  if (!s.ok() && stopped == 0) return refuse(absl::StrCat("GET_VRING_BASE: ", s.message()));
  // Some rings stopped: MIGRATE_STOPPED all the same, so that MigrateAbort
  // (which the source sends after this error) restarts them.
  if (absl::Status f = sh->path.Fire(PathEvent::kMigratePrepare); !f.ok())
    return refuse(std::string(f.message()));
  sh->stopped_base = base;
  sh->migration_id = p.migration_id();
  sh->migrate_t0 = t0;
  for (uint32_t v = 0; v < base.size(); v++) {
    auto* vb = r.add_vrings();
    vb->set_vring(v);
    vb->set_next_avail(base[v]);
    vb->set_used_idx(sh->emulated->used_idx(v));
  }
  for (auto& c : CollectCounters(sh)) *r.add_counters() = c;
  if (!s.ok()) {
    r.mutable_error()->set_code(control::Error::INTERNAL);
    r.mutable_error()->set_message(absl::StrCat("shell '", sh->name, "': stopping vring ",
                                                failed_at, ": ", s.message()));
  }
  NPA_LOG(Info, "shell '%s': rings stopped for migration %llu in %llu us", sh->name.c_str(),
          static_cast<unsigned long long>(p.migration_id()),
          static_cast<unsigned long long>((MonotonicNs() - t0) / 1000));
  return r;
}

bool ReconnectAfterLoss(npa_shell* sh, const std::string& why, std::unique_lock<std::mutex>& vl);

bool OnAbort(npa_shell* sh, const control::MigrateAbort& a) {
  std::unique_lock<std::mutex> vl(sh->vf_mu);
  if (absl::Status s = sh->path.Check(PathEvent::kMigrateAbort); !s.ok()) {
    // Idempotent: a prepare that was refused stopped nothing.
    NPA_LOG(Info, "shell '%s': migrate abort %llu: nothing to restart (%s)", sh->name.c_str(),
            static_cast<unsigned long long>(a.migration_id()), std::string(s.message()).c_str());
    return true;
  }
  absl::Status s;
  {
    std::lock_guard<std::mutex> l(sh->mu);
    s = sh->emulated->Resume(sh->fe.get(), sh->stopped_base);
  }
  if (s.ok()) {
    if (absl::Status f = sh->path.Fire(PathEvent::kMigrateAbort); !f.ok()) {
      NPA_LOG(Error, "shell '%s': %s", sh->name.c_str(), std::string(f.message()).c_str());
      return false;
    }
    NPA_LOG(Info, "shell '%s': migration %llu aborted (%s): rings restarted on the source",
            sh->name.c_str(), static_cast<unsigned long long>(a.migration_id()),
            a.reason().substr(0, 200).c_str());
    return true;
  }
  // The source cannot restart them: as if it were gone.
  return ReconnectAfterLoss(
      sh, absl::StrCat("restarting the rings after migrate abort: ", s.message()), vl);
}

bool OnCommit(npa_shell* sh, const control::MigrateCommit& c) {
  std::unique_lock<std::mutex> vl(sh->vf_mu);
  std::string bad;
  if (c.control_path().empty() || c.control_path().size() > 107)
    bad = "control_path is empty or longer than a UNIX socket path";
  else if (c.ticket().size() != 32)
    bad = absl::StrCat("ticket has ", c.ticket().size(), " bytes, want 32");
  else if (c.return_path().size() > 107)
    bad = "return_path is longer than a UNIX socket path";
  else if (c.migration_id() != sh->migration_id)
    bad = absl::StrCat("migration ", c.migration_id(), " was not prepared (", sh->migration_id,
                       " was)");
  if (bad.empty()) {
    if (absl::Status s = sh->path.Check(PathEvent::kMigrateCommit); !s.ok())
      bad = std::string(s.message());
  }
  if (!bad.empty()) {
    NPA_LOG(Warn, "shell '%s': migrate commit refused: %s", sh->name.c_str(), bad.c_str());
    control::Envelope e;
    e.mutable_error()->set_code(sh->path.state() == PathState::kMigrateStopped
                                    ? control::Error::MALFORMED
                                    : control::Error::UNEXPECTED);
    e.mutable_error()->set_message(absl::StrCat("shell '", sh->name, "': migrate_commit: ", bad));
    (void)sh->control->Send(std::move(e));  // the session goes on either way
    return true;
  }
  if (absl::Status f = sh->path.Fire(PathEvent::kMigrateCommit); !f.ok()) {
    NPA_LOG(Error, "shell '%s': %s", sh->name.c_str(), std::string(f.message()).c_str());
    return false;
  }
  ResumeRun r;
  r.ticket = c.ticket();
  r.base = sh->stopped_base;
  r.budget_ms = c.timeout_ms() ? std::min<uint32_t>(c.timeout_ms(), 600000) : sh->reconnect_ms;
  r.t0 = sh->migrate_t0;
  r.migration = true;
  r.agent_name = c.agent_name().substr(0, 64);
  // Leave the source: its control session and its vhost-user session (its
  // back end already stopped every ring).
  sh->control->Disconnect();
  {
    std::lock_guard<std::mutex> l(sh->mu);
    sh->fe->Close();
  }
  NPA_LOG(Info, "shell '%s': migration %llu committed: to '%s' at %s, return path %s",
          sh->name.c_str(), static_cast<unsigned long long>(c.migration_id()),
          r.agent_name.c_str(), c.control_path().c_str(),
          c.return_path().empty() ? "(none)" : c.return_path().c_str());
  const std::vector<Target> targets = {
      {c.control_path(), absl::StrCat("destination '", r.agent_name, "'")},
      {c.return_path(), "the source (return path)"}};
  if (RunReconnect(sh, targets, r, vl)) return true;
  return RetryDetached(sh, targets, r, vl);
}

// The session ended under EMULATED, MIGRATE_STOPPED or ON_VF: resume at
// the same control path. vf_mu held.
bool ReconnectAfterLoss(npa_shell* sh, const std::string& why, std::unique_lock<std::mutex>& vl) {
  const PathState was = sh->path.state();
  if (absl::Status s = sh->path.Fire(PathEvent::kSessionLost); !s.ok()) {
    sh->events.Push(NPA_EVENT_ERROR, static_cast<uint32_t>(-ECONNRESET),
                    absl::StrCat(why, "; ", s.message()));
    return false;
  }
  sh->control->Disconnect();
  ResumeRun r;
  {
    std::lock_guard<std::mutex> l(sh->mu);
    // Close the old vhost-user session first: an agent that is only half
    // gone stops serving the rings before their indices are read.
    if (sh->fe) sh->fe->Close();
    if (was == PathState::kMigrateStopped) {
      r.base = sh->stopped_base;  // stopped cleanly: nothing in flight
    } else {
      for (uint32_t v = 0; v < sh->emulated->vrings(); v++)
        r.base.push_back(sh->emulated->used_idx(v));
      for (uint16_t q = 0; q < sh->nb_queue_pairs; q++)
        QueueCounters::Add(sh->queues[q].tx_resubmitted, sh->emulated->tx_in_flight(q));
    }
  }
  r.budget_ms = sh->reconnect_ms;
  r.t0 = MonotonicNs();
  const std::vector<Target> targets = {{sh->control_path, "the agent"}};
  if (sh->path.state() == PathState::kOnVf && StartVfRetry(sh, targets.front(), r)) return true;
  if (RunReconnect(sh, targets, r, vl)) return true;
  if (sh->path.state() != PathState::kDetached) return false;
  return RetryDetached(sh, targets, r, vl);
}

bool OnLost(npa_shell* sh, const std::string& why) {
  if (sh->flags & NPA_SHELL_F_NO_RECONNECT) {
    sh->events.Push(NPA_EVENT_ERROR, static_cast<uint32_t>(-ECONNRESET), why);
    return false;
  }
  sh->control->set_link_up(false);
  sh->events.Push(NPA_EVENT_LINK_CHANGED, 0, absl::StrCat("link down: ", why));
  std::unique_lock<std::mutex> vl(sh->vf_mu);
  bool configured;
  {
    std::lock_guard<std::mutex> l(sh->mu);  // npa_shell_configure sets emulated under mu
    configured = sh->emulated != nullptr;
  }
  if (!configured || sh->control_path.empty()) {
    // No rings to resume yet (not configured): nothing to carry over.
    sh->events.Push(NPA_EVENT_ERROR, static_cast<uint32_t>(-ECONNRESET),
                    absl::StrCat(why, "; not configured, so not reconnecting"));
    return false;
  }
  return ReconnectAfterLoss(sh, why, vl);
}

}  // namespace

std::vector<control::QueueCounters> CollectCounters(npa_shell* sh) {
  std::vector<control::QueueCounters> v;
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) {
    const QueueState& qs = sh->queues[q];
    const QueueCounters& c = qs.c;
    control::QueueCounters qc;
    qc.set_queue(q);
    qc.set_rx_packets(c.rx_packets.load(std::memory_order_relaxed));
    qc.set_rx_bytes(c.rx_bytes.load(std::memory_order_relaxed) + qs.vf_rx_bytes.load());
    qc.set_tx_packets(c.tx_packets.load(std::memory_order_relaxed));
    qc.set_tx_bytes(c.tx_bytes.load(std::memory_order_relaxed) + qs.vf_tx_bytes.load());
    qc.set_rx_dropped(c.rx_dropped.load(std::memory_order_relaxed) +
                      qs.vf_dropped_base.load(std::memory_order_relaxed) +
                      qs.vf_dropped_live.load(std::memory_order_relaxed));
    qc.set_tx_dropped(c.tx_bad.load(std::memory_order_relaxed));
    v.push_back(qc);
  }
  return v;
}

absl::Status AnnounceRegions(ControlClient* cc, const Region& region) {
  control::Envelope env;
  auto* r = env.mutable_regions()->add_regions();
  r->set_iova(region.iova());
  r->set_size(region.size());
  r->set_fd_offset(0);
  const int rfd = region.fd();
  return cc->Send(std::move(env), {&rfd, 1});
}

absl::Status SendRssConfig(npa_shell* sh, const RssRx* rss) {
  if (!rss || sh->nb_queue_pairs < 2 || !sh->control || !sh->control->welcome().rss_spread)
    return absl::OkStatus();
  control::Envelope env;
  auto* c = env.mutable_rss_config();
  const std::span<const uint8_t> key = rss->hasher().key();
  c->set_key(reinterpret_cast<const char*>(key.data()), key.size());
  c->set_hash_types(rss->types());
  for (uint16_t q : rss->table().entries()) c->add_table(q);
  return sh->control->Send(std::move(env), {});
}

void InstallSessionHooks(npa_shell* sh) {
  ControlClient::SessionHooks h;
  h.prepare = [sh](const control::MigratePrepare& p) { return OnPrepare(sh, p); };
  h.abort = [sh](const control::MigrateAbort& a) { return OnAbort(sh, a); };
  h.commit = [sh](const control::MigrateCommit& c) { return OnCommit(sh, c); };
  h.lost = [sh](const std::string& why) { return OnLost(sh, why); };
  sh->control->SetSessionHooks(std::move(h));
}

}  // namespace npa::shell