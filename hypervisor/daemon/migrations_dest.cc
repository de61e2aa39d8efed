// Migrations, destination side (B): reservations for MigrationOffer, the
// committed state, late frames, Hello.resume{ticket}, the resume (RARP,
// MigrationDone, late frames, a VF offer) and the release of a reservation.
// The source side is in migrations.cc.
#include <sys/random.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/announce.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "hypervisor/daemon/migrations_parts.h"

namespace npa::agent {
namespace {

using migration::DestEvent;
using migration::DestState;
using migration::SourceEvent;
using migration::SourceState;

// How long a listener thread waits for the control thread's answer.
constexpr int kControlAnswerMs = 3000;

absl::StatusOr<std::string> NewTicket() {
  std::string t(kTicketLen, '\0');
  if (getrandom(t.data(), t.size(), 0) != static_cast<ssize_t>(t.size()))
    return absl::InternalError(absl::StrCat("getrandom for a ticket: ", strerror(errno)));
  return t;
}

// Constant time over the ticket's bytes: the ticket is the only thing that
// lets a shell take a reserved guest.
bool SameTicket(const std::string& a, const std::string& b) {
  if (a.size() != kTicketLen || b.size() != kTicketLen) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < kTicketLen; i++) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

// The vrings a shell resumes must be those committed, ring by ring.
absl::Status SameVrings(const google::protobuf::RepeatedPtrField<control::VringBase>& want,
                        const control::Resume& got) {
  if (want.size() != got.vrings_size())
    return absl::InvalidArgumentError(absl::StrCat("hello.resume has ", got.vrings_size(),
                                                   " vrings; the committed state has ", want.size()));
  for (const auto& w : want) {
    bool found = false;
    for (const auto& g : got.vrings()) {
      if (g.vring() != w.vring()) continue;
      found = true;
      if (g.next_avail() != w.next_avail() || g.used_idx() != w.used_idx())
        return absl::InvalidArgumentError(absl::StrCat(
            "hello.resume vring ", w.vring(), " at next_avail ", g.next_avail(), " used_idx ",
            g.used_idx(), "; the committed state says ", w.next_avail(), "/", w.used_idx()));
    }
    if (!found)
      return absl::InvalidArgumentError(absl::StrCat("hello.resume lacks vring ", w.vring()));
  }
  return absl::OkStatus();
}

}  // namespace

Migrations::Dest* Migrations::DestByGuest(uint64_t guest_id) {
  for (auto& [id, d] : dests_)
    if (d->guest_id == guest_id) return d.get();
  return nullptr;
}

// ---- listener threads: hop to the control thread

absl::StatusOr<control::MigrationAccept> Migrations::OnOffer(const control::MigrationState& state,
                                                            const std::string& peer_name) {
  using R = absl::StatusOr<control::MigrationAccept>;
  return CallOnControl<R>([this, state, peer_name]() -> R { return Reserve(state, peer_name); },
                          kControlAnswerMs,
                          R(absl::UnavailableError("destination agent busy: no answer in time")));
}

absl::Status Migrations::OnCommit(const control::MigrationState& state) {
  return CallOnControl<absl::Status>([this, state] { return Committed(state); }, kControlAnswerMs,
                                     absl::UnavailableError("destination agent busy: no answer in time"));
}

void Migrations::OnLateFrames(uint64_t id, std::vector<std::string> frames, uint64_t dropped,
                              bool last) {
  Post([this, id, frames = std::move(frames), dropped, last]() mutable {
    LateFrames(id, std::move(frames), dropped, last);
  });
}

void Migrations::OnChannelClosed(uint64_t id, const absl::Status& why) {
  Post([this, id, why] { ChannelClosed(id, why); });
}

// ---- control thread

absl::StatusOr<control::MigrationAccept> Migrations::Reserve(const control::MigrationState& st,
                                                             const std::string& peer) {
  if (dests_.count(st.migration_id()))
    return absl::AlreadyExistsError(absl::StrCat("migration ", st.migration_id(), " is already reserved here"));
  migration::LocalCapabilities caps;
  caps.offloads = opts_.offloads;
  caps.virtio_features = opts_.virtio_features;
  caps.max_queue_pairs = opts_.max_queue_pairs;
  caps.mtu = opts_.mtu;
  caps.max_guest_memory = opts_.max_guest_memory;
  caps.total_slots = opts_.max_guests;
  caps.free_slots = guests_->size() >= opts_.max_guests ? 0 : opts_.max_guests - guests_->size();
  caps.name_in_use = [this](const std::string& n) { return guests_->NameInUse(n); };
  caps.mac_in_use = [this](std::span<const uint8_t, 6> m) {
    MacAddr a;
    memcpy(a.data(), m.data(), 6);
    return guests_->MacInUse(a);
  };
  if (absl::Status s = migration::ValidateMigrationState(st, caps); !s.ok()) {
    NPA_LOG(Warn, "migrate: refusing guest %s from %s: %s", st.name().c_str(), peer.c_str(),
            std::string(s.message()).c_str());
    return s;
  }
  NPA_ASSIGN_OR_RETURN(std::string ticket, NewTicket());
  const uint64_t gid = guests_->NewId();
  Guest& g = guests_->Add(gid);
  g.name = st.name();
  MacAddr mac;
  memcpy(mac.data(), st.mac().data(), 6);
  g.mac = mac;
  g.queue_pairs = static_cast<uint16_t>(st.queue_pairs());
  g.offloads = st.offloads();
  g.transport = "control";
  if (absl::Status s = g.Move(GuestState::kResuming); !s.ok()) {
    guests_->Erase(gid);
    return absl::InternalError(std::string(s.message()));
  }
  auto d = std::make_unique<Dest>(st.name());
  d->id = st.migration_id();
  d->guest_id = gid;
  d->peer = peer;
  d->ticket = ticket;
  d->state = st;
  d->hold_end_ms = MonotonicMs() + opts_.hold_ms;
  d->reserved_ns = MonotonicNs();
  dests_.emplace(d->id, std::move(d));
  NPA_LOG(Info, "migrate: guest %s from %s: slot reserved (guest id %lu, hold %u ms)",
          st.name().c_str(), peer.c_str(), static_cast<unsigned long>(gid), opts_.hold_ms);
  control::MigrationAccept acc;
  acc.set_migration_id(st.migration_id());
  acc.set_ticket(ticket);
  acc.set_control_path(opts_.control_path);
  acc.set_agent_name(opts_.agent_name);
  acc.set_hold_ms(opts_.hold_ms);
  return acc;
}

absl::Status Migrations::Committed(const control::MigrationState& st) {
  auto it = dests_.find(st.migration_id());
  if (it == dests_.end())
    return absl::NotFoundError(absl::StrCat("no reservation for migration ", st.migration_id(),
                                            " (expired or never offered)"));
  Dest& d = *it->second;
  if (st.name() != d.state.name() || st.mac() != d.state.mac() ||
      st.queue_pairs() != d.state.queue_pairs())
    return absl::InvalidArgumentError(absl::StrCat("commit of guest ", st.name(),
                                                   " does not match the offer of guest ", d.state.name()));
  NPA_RETURN_IF_ERROR(d.m.Fire(DestEvent::kCommit));
  d.state = st;
  d.hold_end_ms = MonotonicMs() + opts_.hold_ms;
  NPA_LOG(Info, "migrate: guest %s: committed (%d rings); waiting for its shell", st.name().c_str(),
          st.vrings_size());
  return absl::OkStatus();
}

void Migrations::LateFrames(uint64_t id, std::vector<std::string> frames, uint64_t dropped, bool last) {
  auto it = dests_.find(id);
  if (it == dests_.end()) {
    NPA_LOG(Warn, "migrate: %zu late frames for unknown migration %lu: lost", frames.size(),
            static_cast<unsigned long>(id));
    return;
  }
  Dest& d = *it->second;
  d.late_received += frames.size();
  d.late_lost += dropped;
  d.late_last = d.late_last || last;
  Guest* g = guests_->Get(d.guest_id);
  if (d.m.state() == DestState::kRunning && g && dp_) {
    const size_t n = frames.size();
    const uint64_t lost = dp_->InjectRx(g->id, std::move(frames));
    d.late_delivered += n - lost;
    d.late_lost += lost;
    return;
  }
  for (auto& f : frames) {
    if (d.late.size() >= opts_.max_held_frames) {
      d.late_lost++;
      continue;
    }
    d.late.push_back(std::move(f));
  }
}

void Migrations::ChannelClosed(uint64_t id, const absl::Status& why) {
  auto it = dests_.find(id);
  if (it == dests_.end()) return;
  Dest& d = *it->second;
  if (absl::Status s = d.m.Fire(DestEvent::kChannelLost); !s.ok()) {
    NPA_LOG(Warn, "migrate: %s", std::string(s.message()).c_str());
    return;
  }
  if (d.m.state() == DestState::kReleased)
    Release(d, absl::StrCat("the source's channel closed before the commit: ", why.message()));
}

void Migrations::Release(Dest& d, const std::string& why) {
  const uint64_t id = d.id, gid = d.guest_id;
  // A is told only about a guest it committed and B did not resume.
  const bool committed = d.m.state() == DestState::kResuming || d.m.state() == DestState::kError;
  if (!migration::DestTerminal(d.m.state())) {
    DestEvent e = d.m.state() == DestState::kError ? DestEvent::kRelease : DestEvent::kHoldExpired;
    if (absl::Status s = d.m.Fire(e); !s.ok())
      NPA_LOG(Warn, "migrate: %s", std::string(s.message()).c_str());
  }
  NPA_LOG(Warn, "migrate: guest %s: reservation released: %s (%zu late frames lost)",
          d.state.name().c_str(), why.c_str(), d.late.size());
  if (committed && hooks_.send_done) {
    if (absl::Status s = hooks_.send_done(id, false, why); !s.ok())
      NPA_LOG(Info, "migrate: MigrationDone{resumed=false} to the source: %s",
              std::string(s.message()).c_str());
  }
  dests_.erase(id);  // d is gone
  if (Guest* g = guests_->Get(gid)) {
    if (g->lc.state() == GuestState::kResuming) hooks_.close_guest(gid, why);
  }
}

absl::StatusOr<Guest*> Migrations::ClaimTicket(const control::Hello& h) {
  const control::Resume& r = h.resume();
  // B: a reservation.
  for (auto& [id, dp] : dests_) {
    Dest& d = *dp;
    if (!SameTicket(d.ticket, r.ticket())) continue;
    Guest* g = guests_->Get(d.guest_id);
    if (!g || d.m.state() != DestState::kResuming || g->port) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ticket for guest ", d.state.name(), " is ", migration::DestStateName(d.m.state()),
          g && g->port ? " and already taken by a shell" : "", ": resume needs a committed migration"));
    }
    absl::Status bad;
    if (h.name() != d.state.name())
      bad = absl::InvalidArgumentError(absl::StrCat("hello.name '", h.name(), "' but the ticket is for guest '",
                                                    d.state.name(), "'"));
    else if (h.mac() != d.state.mac())
      bad = absl::InvalidArgumentError(absl::StrCat("hello.mac ", migration::MacString(h.mac()),
                                                    " but guest ", d.state.name(), " has ",
                                                    migration::MacString(d.state.mac())));
    else if (h.queue_pairs() < d.state.queue_pairs())
      bad = absl::InvalidArgumentError(absl::StrCat("hello.queue_pairs ", h.queue_pairs(), " but guest ",
                                                    d.state.name(), " runs ", d.state.queue_pairs()));
    else
      bad = SameVrings(d.state.vrings(), r);
    if (!bad.ok()) {
      if (absl::Status s = d.m.Fire(DestEvent::kFail); !s.ok())
        NPA_LOG(Error, "migrate: %s", std::string(s.message()).c_str());
      Release(d, absl::StrCat("the shell could not be resumed: ", bad.message()));
      return bad;
    }
    NPA_LOG(Info, "migrate: guest %s: its shell arrived with the ticket", h.name().c_str());
    return g;
  }
  // A: the shell came back because B never took it.
  for (auto& [id, sp] : sources_) {
    Source& s = *sp;
    if (!SameTicket(s.accept.ticket(), r.ticket())) continue;
    Guest* g = guests_->Get(s.guest_id);
    if (!g || g->lc.state() != GuestState::kCommitted || h.name() != g->name)
      return absl::FailedPreconditionError(absl::StrCat("ticket of guest ", s.guest, " cannot be taken by '",
                                                        h.name(), "' now (guest is ",
                                                        g ? g->lc.name() : "gone", ")"));
    NPA_RETURN_IF_ERROR(SameVrings(s.state.vrings(), r));
    if (absl::Status st = s.m.Fire(SourceEvent::kShellReturned); !st.ok()) return st;
    NPA_RETURN_IF_ERROR(g->Move(GuestState::kResuming));
    if (!s.phase.empty()) EndPhase(s, "the shell came back: the destination never took it");
    // Whatever is still held goes to the guest here once it runs again.
    if (s.holding && dp_) {
      Dataplane::HeldFrames held = dp_->ReleaseMac(s.mac);
      s.holding = false;
      s.late_lost += held.dropped;
      const uint64_t now = MonotonicMs();
      if (!held.frames.empty())
        injects_.push_back(Inject{g->id, std::move(held.frames), now, now + 5000,
                                  "held while the shell was away"});
    }
    Finish(s, absl::UnavailableError(absl::StrCat("guest ", s.guest, "'s shell could not reach ", s.to,
                                                  " and came back: it resumes on this agent")),
           "");
    NPA_LOG(Warn, "migrate: guest %s: its shell came back with the ticket; resuming it here",
            s.guest.c_str());
    EraseSource(s.id);
    return g;
  }
  return absl::NotFoundError("hello.resume.ticket matches no migration here (expired or never issued)");
}

void Migrations::SendRarp(const MacAddr& mac, const std::string& guest) {
  if (!dp_) return;
  const auto f = BuildRarpAnnounce(std::span<const uint8_t, 6>(mac.data(), 6));
  if (absl::Status s = dp_->SendOnUplink(f); !s.ok() && !absl::IsFailedPrecondition(s))
    NPA_LOG(Warn, "migrate: guest %s: RARP on the uplink: %s", guest.c_str(),
            std::string(s.message()).c_str());
}

void Migrations::AnnounceMac(const Guest& g) {
  if (!g.mac || !dp_) return;
  CancelAnnounce(g);
  // The switch learns the new port first: one RARP now, the rest on schedule.
  SendRarp(*g.mac, g.name);
  uint64_t t = MonotonicMs();
  for (uint32_t gap : opts_.rarp_gaps_ms) {
    t += gap;
    rarps_.push_back(Rarp{*g.mac, t, g.name, g.id});
  }
}

void Migrations::CancelAnnounce(const Guest& g) {
  std::erase_if(rarps_, [&](const Rarp& r) { return r.guest_id == g.id; });
}

migration::ListenerOptions Migrations::listener_options() const {
  migration::ListenerOptions o;
  o.handshake_timeout_ms = static_cast<int>(opts_.handshake_timeout_ms);
  return o;
}

uint64_t Migrations::SinceReservedNs(uint64_t guest_id) {
  const Dest* d = DestByGuest(guest_id);
  return d == nullptr || d->reserved_ns == 0 ? 0 : MonotonicNs() - d->reserved_ns;
}

void Migrations::OnResumed(Guest& g) {
  if (!g.mac) return;
  AnnounceMac(g);
  Dest* d = DestByGuest(g.id);
  if (!d) return;  // A: a shell that came back (its frames are in injects_)
  if (absl::Status s = d->m.Fire(DestEvent::kResumed); !s.ok())
    NPA_LOG(Error, "migrate: %s", std::string(s.message()).c_str());
  if (hooks_.send_done) {
    if (absl::Status s = hooks_.send_done(d->id, true, "resumed"); !s.ok())
      NPA_LOG(Warn, "migrate: guest %s: MigrationDone to %s: %s", g.name.c_str(), d->peer.c_str(),
              std::string(s.message()).c_str());
  }
  if (!d->late.empty()) {
    const size_t n = d->late.size();
    const uint64_t lost = dp_ ? dp_->InjectRx(g.id, std::move(d->late)) : n;
    d->late.clear();
    d->late_delivered += n - lost;
    d->late_lost += lost;
  }
  NPA_LOG(Info, "migrate: guest %s from %s resumed here: late frames %lu received, %lu delivered, %lu lost so far",
          g.name.c_str(), d->peer.c_str(), static_cast<unsigned long>(d->late_received),
          static_cast<unsigned long>(d->late_delivered), static_cast<unsigned long>(d->late_lost));
  // Later late frames (until A's grace ends) go straight to its RX
  // (LateFrames). The record stays until then or the hold.
  d->hold_end_ms = MonotonicMs() + opts_.hold_ms;
  if (hooks_.offer_vf) hooks_.offer_vf(g);
}

}  // namespace npa::agent
