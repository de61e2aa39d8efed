#include "hypervisor/daemon/guest_admission.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "hypervisor/daemon/migrations.h"

namespace npa::agent {

using control::Error;

std::string CheckGuestName(const std::string& name) {
  if (name.empty() || name.size() > 63)
    return absl::StrCat("guest name is ", name.size(), " characters; want 1..63");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok)
      return absl::StrCat("guest name contains byte 0x", absl::Hex(static_cast<uint8_t>(c)),
                          "; allowed: A-Z a-z 0-9 _ . -");
  }
  return "";
}

namespace {
HelloVerdict Refuse(Error::Code code, std::string problem) {
  HelloVerdict v;
  v.code = code;
  v.problem = std::move(problem);
  return v;
}
}  // namespace

HelloVerdict CheckHelloFrame(const control::Hello& h, size_t num_fds) {
  if (num_fds != 0)
    return Refuse(Error::MALFORMED, absl::StrCat("hello carries ", num_fds, " fds; it takes none"));
  if (std::string p = CheckGuestName(h.name()); !p.empty()) return Refuse(Error::MALFORMED, p);
  return {};
}

HelloVerdict CheckNewGuestHello(const control::Hello& h, const GuestRegistry& guests,
                                uint16_t max_queue_pairs) {
  for (const auto& [id, g] : guests)
    if (g.name == h.name())
      return Refuse(Error::BUSY, absl::StrCat("guest name '", h.name(), "' is in use (guest id ", id, ")"));
  HelloVerdict v;
  if (h.mac().size() == 6) {
    MacAddr m;
    memcpy(m.data(), h.mac().data(), 6);
    if (IsMulticast(m) || IsZeroMac(m))
      return Refuse(Error::MALFORMED, absl::StrCat("hello.mac ", MacToString(m), " is not a unicast address"));
    if (guests.MacInUse(m))
      return Refuse(Error::BUSY, absl::StrCat("MAC ", MacToString(m), " is in use by another guest"));
    v.mac = m;
  } else if (!h.mac().empty()) {
    return Refuse(Error::MALFORMED, absl::StrCat("hello.mac is ", h.mac().size(), " bytes; want 0 or 6"));
  } else {
    std::optional<MacAddr> m = guests.AssignMac();
    if (!m) return Refuse(Error::BUSY, "no free MAC address to assign");
    v.mac = *m;
  }
  if (h.queue_pairs() < 1 || h.queue_pairs() > max_queue_pairs)
    return Refuse(Error::MALFORMED, absl::StrCat("hello.queue_pairs ", h.queue_pairs(), " outside 1..",
                                                 max_queue_pairs));
  if (h.has_resume()) {
    if (absl::Status st = CheckResumeVrings(h.resume(), h.queue_pairs()); !st.ok())
      return Refuse(Error::MALFORMED, std::string(st.message()));
  }
  return v;
}

// ---- agent restart (docs/security.md "Agent restart")

void RestartGate::Load() {
  if (path_.empty()) return;
  auto r = LoadRoster(path_);
  if (!r.ok()) {
    if (!absl::IsNotFound(r.status()))
      NPA_LOG(Warn, "control: %s; not waiting for any guest", std::string(r.status().message()).c_str());
    return;
  }
  loaded_ = *r;
  for (const RosterEntry& e : *r) awaited_.insert(e.name);
  if (awaited_.empty()) return;
  deadline_ms_ = MonotonicMs() + std::max<uint32_t>(grace_ms_, 1);
  if (dp_) dp_->HoldTraffic(true);
  NPA_LOG(Info, "control: restart: the previous agent had %zu guests (%s); traffic held until they "
          "are back or %u ms", awaited_.size(), path_.c_str(), grace_ms_);
}

void RestartGate::Save(const GuestRegistry& guests, const std::vector<RosterEntry>& orphans) {
  if (path_.empty() || stopping_) return;
  std::vector<RosterEntry> all = RosterOf(guests);
  all.insert(all.end(), orphans.begin(), orphans.end());
  if (absl::Status s = SaveRoster(path_, all); !s.ok())
    NPA_LOG(Warn, "control: %s", std::string(s.message()).c_str());
}

void RestartGate::OnGuestRunning(const std::string& name) {
  if (awaited_.erase(name) && awaited_.empty()) Open("every guest is back");
}

void RestartGate::Tick(uint64_t now_ms) {
  if (deadline_ms_ && now_ms >= deadline_ms_) Open("grace over");
}

int RestartGate::MsUntilDeadline(uint64_t now_ms) const {
  if (!deadline_ms_) return -1;
  return deadline_ms_ > now_ms ? static_cast<int>(deadline_ms_ - now_ms) : 0;
}

void RestartGate::Open(const char* why) {
  if (!deadline_ms_) return;
  deadline_ms_ = 0;
  std::string missing;
  for (const std::string& n : awaited_) absl::StrAppend(&missing, missing.empty() ? "" : ", ", n);
  awaited_.clear();
  if (dp_) dp_->HoldTraffic(false);
  NPA_LOG(Info, "control: restart: traffic released (%s)%s%s", why,
          missing.empty() ? "" : "; not back: ", missing.c_str());
}

}  // namespace npa::agent
