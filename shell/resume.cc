#include "shell/resume.h"

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
#include "shell/reconnect.h"

namespace npa::shell {
namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

}  // namespace npa::shell
