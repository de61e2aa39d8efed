// Migrations, the machinery around both sides: the source's TLS peer and
// its worker thread (the blocking calls), the posting of their results back
// to the control thread, and the timers (deadlines, late-frame forwarding,
// holds, the RARP schedule). The source side is in migrations.cc, the
// destination in migrations_dest.cc; the records in migrations_parts.h.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "hypervisor/daemon/migrations.h"
#include "hypervisor/daemon/migrations_parts.h"

namespace npa::agent {

using migration::SourceEvent;
using migration::SourceState;
// ---------------------------------------------------------------- TLS peer

namespace {
class TlsPeer final : public MigrationPeer {
 public:
  explicit TlsPeer(std::unique_ptr<migration::MigrationClient> c) : c_(std::move(c)) {}
  absl::StatusOr<control::MigrationAccept> Offer(const control::MigrationState& s, int t) override {
    return c_->Offer(s, t);
  }
  absl::Status Commit(const control::MigrationState& s, int t) override { return c_->Commit(s, t); }
  absl::StatusOr<uint64_t> SendLateFrames(uint64_t id, std::vector<std::string> frames,
                                          uint64_t dropped, bool last) override {
    return c_->SendLateFrames(id, std::move(frames), dropped, last);
  }
  absl::StatusOr<control::MigrationDone> AwaitDone(int t) override { return c_->AwaitDone(t); }

 private:
  std::unique_ptr<migration::MigrationClient> c_;
};
}  // namespace

PeerConnector TlsPeerConnector(const migration::TlsConfig& tls) {
  return [tls](const std::string& to, int timeout_ms) -> absl::StatusOr<std::unique_ptr<MigrationPeer>> {
    auto c = migration::MigrationClient::Connect(to, tls, timeout_ms);
    if (!c.ok()) return c.status();
    return std::unique_ptr<MigrationPeer>(new TlsPeer(std::move(*c)));
  };
}

// ---------------------------------------------------------------- worker

Migrations::Worker::Worker(std::string name) : name_(std::move(name)) {
  thread_ = std::thread([this] { Run(); });
}

Migrations::Worker::~Worker() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void Migrations::Worker::Post(Job job) {
  std::lock_guard<std::mutex> l(mu_);
  if (stop_) return;
  jobs_.push_back(std::move(job));
  cv_.notify_one();
}

void Migrations::Worker::Stop() {
  std::lock_guard<std::mutex> l(mu_);
  stop_ = true;
  jobs_.clear();
  cv_.notify_one();
}

void Migrations::Worker::Run() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) break;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job(peer_);
  }
  peer_.reset();  // closes the channel: B sees OnChannelClosed
  finished_ = true;
}

// ---------------------------------------------------------------- posting

Migrations::Migrations(Options opts, GuestRegistry* guests, Dataplane* dp, PeerConnector connector,
                       Hooks hooks)
    : opts_(std::move(opts)),
      guests_(guests),
      dp_(dp),
      connector_(std::move(connector)),
      hooks_(std::move(hooks)) {}

Migrations::~Migrations() {
  for (auto& [id, s] : sources_)
    if (s->worker) s->worker->Stop();
  sources_.clear();  // joins each worker
  retired_.clear();
}

absl::Status Migrations::Open() {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("migrations: eventfd: ", strerror(errno)));
  wake_ = UniqueFd(fd);
  return absl::OkStatus();
}

void Migrations::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(post_mu_);
    posted_.push_back(std::move(fn));
  }
  const uint64_t one = 1;
  if (wake_.valid()) (void)!write(wake_.get(), &one, sizeof(one));
}

void Migrations::OnWake() {
  uint64_t n;
  if (wake_.valid()) (void)!read(wake_.get(), &n, sizeof(n));
  std::deque<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> l(post_mu_);
    work.swap(posted_);
  }
  for (auto& fn : work) fn();
}

// ---------------------------------------------------------------- timers

void Migrations::Tick() {
  const uint64_t now = MonotonicMs();
  std::vector<uint64_t> ids;
  for (auto& [id, s] : sources_) ids.push_back(id);
  for (uint64_t id : ids) {
    Source* s = SourceById(id);
    if (!s) continue;
    const SourceState st = s->m.state();
    if (st == SourceState::kStopping && now >= s->prepare_deadline_ms) {
      Abort(*s, absl::StrCat("the shell did not answer migrate_prepare within ",
                             opts_.prepare_timeout_ms, " ms"));
      continue;
    }
    if (migration::SourceCanAbort(st) && now >= s->deadline_ms) {
      Abort(*s, absl::StrCat("timed out after ", s->timeout_ms, " ms in ",
                             migration::SourceStateName(st)));
      continue;
    }
    if ((st == SourceState::kCommitted || st == SourceState::kError) && !s->late_last_sent) {
      if (now >= s->grace_end_ms) ForwardLate(*s, true);
      else if (now >= s->next_take_ms) ForwardLate(*s, false);
    }
    if ((st == SourceState::kCommitted || st == SourceState::kError) && now >= s->hold_end_ms) {
      if (absl::Status r = s->m.Fire(SourceEvent::kHoldExpired); !r.ok())
        NPA_LOG(Error, "migrate: guest %s: %s", s->guest.c_str(), std::string(r.message()).c_str());
      const uint64_t gid = s->guest_id;
      if (!s->phase.empty()) EndPhase(*s, "hold ended without MigrationDone or the shell");
      Finish(*s, absl::DeadlineExceededError(absl::StrCat(
                     "guest ", s->guest, ": no MigrationDone from ", s->to,
                     " and the shell did not come back within the hold")),
             "");
      EraseSource(id);
      hooks_.close_guest(gid, "migration hold ended");
    }
  }
  // Destinations: reservations whose hold ended.
  std::vector<uint64_t> dids;
  for (auto& [id, d] : dests_) dids.push_back(id);
  for (uint64_t id : dids) {
    auto it = dests_.find(id);
    if (it == dests_.end()) continue;
    Dest& d = *it->second;
    if (d.m.state() == migration::DestState::kRunning && (d.late_last || now >= d.hold_end_ms)) {
      NPA_LOG(Info, "migrate: guest %s from %s done: late frames %lu received, %lu delivered, %lu lost",
              d.state.name().c_str(), d.peer.c_str(), static_cast<unsigned long>(d.late_received),
              static_cast<unsigned long>(d.late_delivered), static_cast<unsigned long>(d.late_lost));
      dests_.erase(it);
      continue;
    }
    if (!migration::DestTerminal(d.m.state()) && now >= d.hold_end_ms) {
      if (absl::Status r = d.m.Fire(migration::DestEvent::kHoldExpired); !r.ok())
        NPA_LOG(Error, "migrate: %s", std::string(r.message()).c_str());
      Release(d, "the hold ended without the shell");
    }
  }
  // RARP schedule.
  for (size_t i = 0; i < rarps_.size();) {
    if (now < rarps_[i].due_ms) {
      i++;
      continue;
    }
    SendRarp(rarps_[i].mac, rarps_[i].guest);
    rarps_.erase(rarps_.begin() + static_cast<long>(i));
  }
  // Frames to deliver to a guest that runs again.
  for (size_t i = 0; i < injects_.size();) {
    Inject& in = injects_[i];
    Guest* g = guests_->Get(in.guest_id);
    const bool ready = g && g->lc.state() == GuestState::kRunning && g->in_dataplane && g->port &&
                       g->port->QueueReady(0);
    if (now < in.not_before_ms || (!ready && now < in.deadline_ms && g)) {
      i++;
      continue;
    }
    const size_t n = in.frames.size();
    uint64_t lost = n;
    if (ready && dp_) lost = dp_->InjectRx(in.guest_id, std::move(in.frames));
    NPA_LOG(Info, "migrate: guest %s: %zu frames %s: %zu delivered, %lu lost",
            g ? g->name.c_str() : "(gone)", n, in.what.c_str(), n - static_cast<size_t>(lost),
            static_cast<unsigned long>(lost));
    injects_.erase(injects_.begin() + static_cast<long>(i));
  }
  std::erase_if(retired_, [](const std::unique_ptr<Worker>& w) { return w->finished(); });
}

int Migrations::MsUntilNextDeadline() const {
  const uint64_t now = MonotonicMs();
  uint64_t next = UINT64_MAX;
  auto at = [&](uint64_t t) { next = std::min(next, t); };
  for (const auto& [id, s] : sources_) {
    at(s->deadline_ms);
    if (s->m.state() == SourceState::kStopping) at(s->prepare_deadline_ms);
    if (s->grace_end_ms && !s->late_last_sent) at(std::min(s->grace_end_ms, s->next_take_ms));
    if (s->hold_end_ms) at(s->hold_end_ms);
  }
  for (const auto& [id, d] : dests_) at(d->hold_end_ms);
  for (const auto& r : rarps_) at(r.due_ms);
  for (const auto& i : injects_) at(i.not_before_ms);
  if (next == UINT64_MAX) return -1;
  return next <= now ? 0 : static_cast<int>(std::min<uint64_t>(next - now, 1000));
}

}  // namespace npa::agent
