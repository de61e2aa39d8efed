#include "shell/reconnect.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "npa/virtio_ring.h"
#include "shell/shell_impl.h"

namespace npa::shell {
namespace {

// Where RECONNECTING may go: a control socket and what it is, for logs and
// events ("destination 'b'", "the source (return path)", "the agent").
struct Target {
  std::string path;
  std::string what;
};

// Why one run of RECONNECTING started, and what it carries over.
struct ResumeRun {
  std::string ticket;             // 32 bytes after MigrateCommit, else empty
  // next_avail per vring: split, the avail index; packed, slot | wrap << 15
  // (npa_vring_packed_base, what GET/SET_VRING_BASE carry), so a resume
  // starts on the right lap.
  std::vector<uint16_t> base;
  uint32_t budget_ms = 0;         // per target
  uint64_t t0 = 0;                // MonotonicNs when the rings stopped
  bool migration = false;
  std::string agent_name;         // MigrateCommit.agent_name, for the event
};

constexpr control::Error::Code kRefused = control::Error::UNEXPECTED;

control::Resume MakeResume(npa_shell* sh, const ResumeRun& r) {
  control::Resume res;
  res.set_ticket(r.ticket);
  for (uint32_t v = 0; v < r.base.size(); v++) {
    auto* vb = res.add_vrings();
    vb->set_vring(v);
    vb->set_next_avail(r.base[v]);
    vb->set_used_idx(sh->emulated->used_idx(v));
  }
  for (auto& c : CollectCounters(sh)) *res.add_counters() = c;
  return res;
}

// One attempt at `path`: Hello.resume, then the vhost-user setup on the new
// fd over the same regions and rings at r.base, then RegionAnnounce. On
// failure the shell is left disconnected (the next attempt starts over).
absl::Status ResumeOnce(npa_shell* sh, const std::string& path, const ResumeRun& r,
                        int timeout_ms) {
  ControlClient::Hello h;
  h.name = sh->name;
  memcpy(h.mac.data(), sh->mac, 6);
  h.queue_pairs = sh->nb_queue_pairs;
  h.features = sh->guest_offloads;
  h.resume = MakeResume(sh, r);
  std::array<uint8_t, 6> mac;
  memcpy(mac.data(), sh->mac, 6);
  NPA_RETURN_IF_ERROR(sh->control->Reconnect(path, h, timeout_ms, mac));
  const ControlClient::Welcome& w = sh->control->welcome();
  if (w.max_queue_pairs != 0 && w.max_queue_pairs < sh->nb_queue_pairs) {
    sh->control->Disconnect();
    return absl::FailedPreconditionError(absl::StrCat("agent '", w.agent_name, "' at ", path,
                                                      " allows ", w.max_queue_pairs,
                                                      " queue pairs, the guest runs ",
                                                      sh->nb_queue_pairs));
  }
  if (w.mtu != sh->mtu)
    NPA_LOG(Warn, "shell '%s': agent '%s' says MTU %u, the guest keeps %u", sh->name.c_str(),
            w.agent_name.c_str(), w.mtu, sh->mtu);
  auto fe = std::make_unique<VhostUserFrontend>(sh->control->TakeVhostFd(), sh->timeout_ms);
  // The rings stand still until they are enabled again: the SET_* requests
  // go out back to back and one round trip (Sync, below) ends them, not one
  // each (4 round trips in all, the GETs included, instead of 17).
  fe->set_pipelined(true);
  // The rings were laid out for these features (header size, mergeable
  // RX): the new back end must take exactly them.
  const uint64_t proto = 1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES;
  const uint64_t want = sh->fe->features() & ~proto;
  absl::Status s = fe->Negotiate(want, sh->nb_queue_pairs);
  if (s.ok() && (fe->features() & ~proto) != want)
    s = absl::FailedPreconditionError(absl::StrFormat(
        "vhost-user back end at %s accepts features 0x%x, the rings run with 0x%x", path,
        fe->features() & ~proto, want));
  if (s.ok()) {
    MemRegion mr{sh->region.iova(), sh->region.size(), sh->region.fd()};
    s = fe->SetMemTable({&mr, 1});
  }
  if (s.ok()) {
    std::lock_guard<std::mutex> l(sh->mu);
    s = sh->emulated->Resume(fe.get(), r.base);
    if (s.ok()) s = fe->Sync();
    fe->set_pipelined(false);
    // The path points at the new front end from here on, even on failure
    // (the old one is closed); the next attempt replaces it again.
    sh->fe = std::move(fe);
  }
  if (s.ok()) s = AnnounceRegions(sh->control.get(), sh->region);
  if (s.ok()) {
    std::shared_ptr<const RssRx> rss;
    {
      std::lock_guard<std::mutex> l(sh->mu);
      rss = sh->rss;
    }
    s = SendRssConfig(sh, rss.get());  // the new agent spreads RX as the old one did
  }
  if (!s.ok()) {
    sh->control->Disconnect();
    std::lock_guard<std::mutex> l(sh->mu);
    if (sh->fe) sh->fe->Close();
  }
  return s;
}

// The pause before the next attempt: 50-100 ms, spread by the clock and
// the attempt number so that the guests of one restarted agent do not
// knock in step.
int RetryPauseMs(uint64_t now_ns, uint32_t attempt) {
  return 50 + static_cast<int>((now_ns / 1000 + attempt * 17) % 51);
}

// Tries `t` every 50-100 ms until budget_ms has passed (at least once).
// Holds vf_mu only while an attempt runs. kCancelled when the shell closes.
absl::Status TryTarget(npa_shell* sh, const Target& t, const ResumeRun& r, uint32_t budget_ms,
                       std::unique_lock<std::mutex>& vl) {
  const uint64_t end = MonotonicNs() + static_cast<uint64_t>(budget_ms) * 1000000ull;
  absl::Status last;
  for (uint32_t attempt = 1;; attempt++) {
    const uint64_t now = MonotonicNs();
    const int left = static_cast<int>(std::max<uint64_t>((end > now ? end - now : 0) / 1000000, 50));
    last = ResumeOnce(sh, t.path, r, std::min(left, sh->timeout_ms));
    if (last.ok()) return last;
    NPA_LOG(Info, "shell '%s': resume at %s (%s), attempt %u: %s", sh->name.c_str(),
            t.path.c_str(), t.what.c_str(), attempt, std::string(last.message()).c_str());
    if (MonotonicNs() >= end || attempt >= 100000) break;
    const int wait = RetryPauseMs(MonotonicNs(), attempt);
    vl.unlock();
    const bool stop = sh->control->WaitForStop(wait);
    vl.lock();
    if (stop) return absl::CancelledError("the shell is closing");
  }
  return last;
}

// A session serves the rings again (at t, for run r): the log line and
// the events. `migrated`: the planned move's destination took them.
void AnnounceResumed(npa_shell* sh, const Target& t, const ResumeRun& r, bool migrated,
                     const std::string& why) {
  uint64_t resub = 0;
  for (uint16_t q = 0; q < sh->nb_queue_pairs; q++) resub += sh->queues[q].tx_resubmitted.load();
  const std::string agent = sh->control->welcome().agent_name;
  const uint64_t us = (MonotonicNs() - r.t0) / 1000;
  std::string detail;
  if (migrated) {
    detail = absl::StrFormat("migrated to agent '%s': rings resumed %llu us after they stopped",
                             r.agent_name.empty() ? agent : r.agent_name,
                             static_cast<unsigned long long>(us));
    NPA_LOG(Info, "shell '%s': %s", sh->name.c_str(), detail.c_str());
    sh->events.Push(NPA_EVENT_MIGRATED, 0, detail);
    return;
  }
  detail = absl::StrFormat("resumed on agent '%s' (%s) after %llu us%s%s", agent, t.what,
                           static_cast<unsigned long long>(us), why.empty() ? "" : "; ", why);
  NPA_LOG(Info, "shell '%s': %s; TX resubmitted so far %llu", sh->name.c_str(), detail.c_str(),
          static_cast<unsigned long long>(resub));
  sh->events.Push(NPA_EVENT_LINK_CHANGED, sh->control->link_up() ? 1 : 0,
                  sh->control->link_up() ? "link up" : "link down");
  sh->events.Push(NPA_EVENT_RECONNECTED, 0, detail);
}

// RECONNECTING's step: the targets in order, each for r.budget_ms. Fires
// kResumed or kResumeFailed when the machine is in RECONNECTING (on a VF
// it stays ON_VF either way). true: a session serves the rings again.
bool RunReconnect(npa_shell* sh, const std::vector<Target>& targets, const ResumeRun& r,
                  std::unique_lock<std::mutex>& vl) {
  std::string why;
  for (const Target& t : targets) {
    if (t.path.empty()) continue;
    absl::Status s = TryTarget(sh, t, r, r.budget_ms, vl);
    if (absl::IsCancelled(s)) return false;
    if (!s.ok()) {
      absl::StrAppend(&why, why.empty() ? "" : "; ", t.what, " at ", t.path, ": ", s.message());
      continue;
    }
    sh->control_path = t.path;
    if (sh->path.state() == PathState::kReconnecting) {
      if (absl::Status f = sh->path.Fire(PathEvent::kResumed); !f.ok()) {
        NPA_LOG(Error, "shell '%s': %s", sh->name.c_str(), std::string(f.message()).c_str());
        return false;
      }
    }
    AnnounceResumed(sh, t, r, r.migration && &t == &targets.front(), why);
    return true;
  }
  // On a VF the guest keeps forwarding and nothing retries the emulated
  // rings' session (the table stays ON_VF); otherwise DETACHED retries.
  const bool on_vf = sh->path.state() == PathState::kOnVf;
  const std::string msg =
      absl::StrCat("no agent took the rings back (", why, "); rings kept, ",
                   on_vf ? "the VF keeps forwarding" : "retrying every second");
  NPA_LOG(Error, "shell '%s': %s", sh->name.c_str(), msg.c_str());
  sh->events.Push(NPA_EVENT_ERROR, static_cast<uint32_t>(-EHOSTUNREACH), msg);
  if (sh->path.state() == PathState::kReconnecting) {
    if (absl::Status f = sh->path.Fire(PathEvent::kResumeFailed); !f.ok())
      NPA_LOG(Error, "shell '%s': %s", sh->name.c_str(), std::string(f.message()).c_str());
  }
  return false;
}

// DETACHED: one attempt at each target a second, until one takes the rings
// or the shell closes.
bool RetryDetached(npa_shell* sh, const std::vector<Target>& targets, ResumeRun r,
                   std::unique_lock<std::mutex>& vl) {
  r.budget_ms = 0;  // one attempt per target per round
  r.migration = false;
  while (sh->path.state() == PathState::kDetached) {
    vl.unlock();
    const bool stop = sh->control->WaitForStop(1000);
    vl.lock();
    if (stop) return false;
    if (absl::Status s = sh->path.Fire(PathEvent::kSessionLost); !s.ok()) {
      NPA_LOG(Error, "shell '%s': %s", sh->name.c_str(), std::string(s.message()).c_str());
      return false;
    }
    std::string why;
    for (const Target& t : targets) {
      if (t.path.empty()) continue;
      absl::Status s = ResumeOnce(sh, t.path, r, std::min(sh->timeout_ms, 1000));
      if (s.ok()) {
        sh->control_path = t.path;
        if (absl::Status f = sh->path.Fire(PathEvent::kResumed); !f.ok()) return false;
        const std::string detail = absl::StrFormat("resumed on agent '%s' (%s) after being detached",
                                                   sh->control->welcome().agent_name, t.what);
        NPA_LOG(Info, "shell '%s': %s", sh->name.c_str(), detail.c_str());
        sh->events.Push(NPA_EVENT_LINK_CHANGED, sh->control->link_up() ? 1 : 0, "link up");
        sh->events.Push(NPA_EVENT_RECONNECTED, 0, detail);
        return true;
      }
      absl::StrAppend(&why, why.empty() ? "" : "; ", t.what, ": ", s.message());
    }
    NPA_LOG(Debug, "shell '%s': still detached: %s", sh->name.c_str(), why.c_str());
    if (absl::Status f = sh->path.Fire(PathEvent::kResumeFailed); !f.ok()) return false;
  }
  return false;
}

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

// ON_VF after a lost session: the VF forwards and its REQ and ERR eventfds
// are watched by the control thread, so the resume is retried from a timer
// that thread also watches, never from a loop that would hold it: a VFIO
// REQ while no agent runs is served at once. Attempts come 50-100 ms apart
// for reconnect_ms, then once a second until an agent takes the rings back
// or the shell closes (the VF never stops a guest from getting its rings
// served again). If the VF goes away meanwhile (REQ, ERR), the rings are
// the path again: the next tick continues as after any loss (RECONNECTING,
// then DETACHED).
struct VfResumeRetry {
  UniqueFd timer;        // timerfd, one-shot, re-armed after each attempt
  ResumeRun run;
  Target target;
  uint64_t fast_until = 0;  // MonotonicNs: reconnect_ms after the loss
  uint32_t attempts = 0;
  bool told = false;        // the EHOSTUNREACH event for the fast phase went out
};

bool ArmRetry(const VfResumeRetry& st, int ms) {
  itimerspec its{};
  its.it_value.tv_sec = ms / 1000;
  its.it_value.tv_nsec = static_cast<long>(ms % 1000) * 1000000L;
  return timerfd_settime(st.timer.get(), 0, &its, nullptr) == 0;
}

void OnVfRetryTick(npa_shell* sh, const std::shared_ptr<VfResumeRetry>& st) {
  uint64_t expired;
  if (::read(st->timer.get(), &expired, sizeof expired) < 0 && errno == EAGAIN) return;
  std::unique_lock<std::mutex> vl(sh->vf_mu);
  const uint64_t now = MonotonicNs();
  if (sh->path.state() != PathState::kOnVf) {
    // The VF left while no agent ran (REQ, ERR): the emulated rings carry
    // the traffic again and nothing else needs this thread, so the resume
    // goes on as after a loss on EMULATED, with what is left of the budget.
    sh->control->Unwatch(st->timer.get());  // `st` lives on in this call's copy
    if (absl::Status f = sh->path.Fire(PathEvent::kSessionLost); !f.ok()) {
      NPA_LOG(Error, "shell '%s': %s", sh->name.c_str(), std::string(f.message()).c_str());
      sh->events.Push(NPA_EVENT_ERROR, static_cast<uint32_t>(-ECONNRESET),
                      absl::StrCat("resume after the VF left: ", f.message()));
      return;
    }
    ResumeRun r = st->run;
    r.budget_ms = st->fast_until > now ? static_cast<uint32_t>((st->fast_until - now) / 1000000) : 0;
    const std::vector<Target> targets = {st->target};
    if (RunReconnect(sh, targets, r, vl)) return;
    if (sh->path.state() == PathState::kDetached) (void)RetryDetached(sh, targets, r, vl);
    return;
  }
  st->attempts++;
  absl::Status s = ResumeOnce(sh, st->target.path, st->run, std::min(sh->timeout_ms, 1000));
  if (s.ok()) {
    sh->control->Unwatch(st->timer.get());
    AnnounceResumed(sh, st->target, st->run, false, "");
    return;
  }
  const bool fast = now < st->fast_until;
  if (fast || st->attempts % 60 == 0)
    NPA_LOG(Info, "shell '%s': resume at %s (%s), attempt %u: %s; the VF keeps forwarding",
            sh->name.c_str(), st->target.path.c_str(), st->target.what.c_str(), st->attempts,
            std::string(s.message()).c_str());
  if (!fast && !st->told) {
    st->told = true;
    // The reason last: an event's detail keeps only its first bytes.
    const std::string msg = absl::StrCat(
        "no agent took the rings back; the VF keeps forwarding, retrying every second (",
        st->target.what, " at ", st->target.path, ": ", s.message(), "; rings kept)");
    NPA_LOG(Error, "shell '%s': %s", sh->name.c_str(), msg.c_str());
    sh->events.Push(NPA_EVENT_ERROR, static_cast<uint32_t>(-EHOSTUNREACH), msg);
  }
  // RetryPauseMs while fast, then a second.
  const int wait = fast ? RetryPauseMs(now, st->attempts) : 1000;
  if (!ArmRetry(*st, wait)) {
    NPA_LOG(Error, "shell '%s': timerfd_settime for the resume: %s; no more attempts",
            sh->name.c_str(), strerror(errno));
    sh->control->Unwatch(st->timer.get());
  }
}

// Starts the retries of VfResumeRetry; the first attempt comes at once.
// false: no timer could be made (the caller retries the old way).
bool StartVfRetry(npa_shell* sh, const Target& t, const ResumeRun& r) {
  auto st = std::make_shared<VfResumeRetry>();
  st->timer.reset(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!st->timer) {
    NPA_LOG(Warn, "shell '%s': timerfd_create: %s", sh->name.c_str(), strerror(errno));
    return false;
  }
  st->run = r;
  st->target = t;
  st->fast_until = r.t0 + static_cast<uint64_t>(r.budget_ms) * 1000000ull;
  const int fd = st->timer.get();
  if (!ArmRetry(*st, 1)) return false;
  absl::Status s = sh->control->Watch(fd, [sh, st] { OnVfRetryTick(sh, st); });
  if (!s.ok()) {
    NPA_LOG(Warn, "shell '%s': %s", sh->name.c_str(), std::string(s.message()).c_str());
    return false;
  }
  sh->control->AwaitReconnect();
  return true;
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
