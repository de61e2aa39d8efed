#include "hypervisor/daemon/guest_registry.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "hypervisor/vf/pci_inventory.h"

namespace npa::agent {

absl::Status Guest::Move(GuestState to) {
  const GuestState from = lc.state();
  absl::Status s = lc.Transition(to);
  if (!s.ok()) {
    NPA_LOG(Error, "control: guest %s (id %lu): %s", name.c_str(), static_cast<unsigned long>(id),
            std::string(s.message()).c_str());
    return s;
  }
  NPA_LOG(Debug, "control: guest %s: %s -> %s", name.c_str(), GuestStateName(from), lc.name());
  return s;
}

void Guest::Break(const std::string& why) {
  if (broken_reason.empty()) broken_reason = why;
  if (lc.state() == GuestState::kBroken) return;
  if (lc.CanFire(GuestState::kBroken)) {
    if (Move(GuestState::kBroken).ok()) return;
  }
  // CLOSING/CLOSED have no way to BROKEN: the close under way is the end.
  NPA_LOG(Warn, "control: guest %s is %s; not marked BROKEN (%s)", name.c_str(), lc.name(),
          why.c_str());
}

GuestRegistry::GuestRegistry(const std::string& agent_name) {
  for (char c : agent_name) mac_salt_ = mac_salt_ * 131 + static_cast<uint8_t>(c);
}

Guest& GuestRegistry::Add(uint64_t id) {
  Guest& g = guests_[id];
  g.id = id;
  return g;
}

Guest* GuestRegistry::Get(uint64_t id) {
  auto it = guests_.find(id);
  return it == guests_.end() ? nullptr : &it->second;
}

Guest* GuestRegistry::Find(const std::string& want) {
  uint64_t want_id = 0;
  const bool numeric = absl::SimpleAtoi(want, &want_id);
  for (auto& [id, g] : guests_)
    if (g.name == want || (numeric && id == want_id)) return &g;
  return nullptr;
}

bool GuestRegistry::NameInUse(const std::string& name) const {
  for (const auto& [id, g] : guests_)
    if (g.name == name) return true;
  return false;
}

bool GuestRegistry::MacInUse(const MacAddr& m) const {
  for (const auto& [id, g] : guests_)
    if (g.mac && *g.mac == m) return true;
  return false;
}

std::optional<MacAddr> GuestRegistry::AssignMac() const {
  for (uint32_t i = 0; i < 1024; i++) {
    const uint32_t n = static_cast<uint32_t>(next_id_) + i;
    // 02: locally administered, unicast (IEEE 802 §8.4).
    MacAddr m = {0x02, static_cast<uint8_t>(mac_salt_ >> 8), static_cast<uint8_t>(mac_salt_),
                 static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8),
                 static_cast<uint8_t>(n)};
    if (!MacInUse(m)) return m;
  }
  return std::nullopt;
}

std::vector<uint64_t> GuestRegistry::ids() const {
  std::vector<uint64_t> out;
  out.reserve(guests_.size());
  for (const auto& [id, g] : guests_) out.push_back(id);
  return out;
}

void CopyQueueCounters(uint32_t qp, const QueueCounters& c, control::QueueCounters* out) {
  out->set_queue(qp);
  out->set_rx_packets(c.rx_packets);
  out->set_rx_bytes(c.rx_bytes);
  out->set_rx_dropped(c.rx_dropped);
  out->set_tx_packets(c.tx_packets);
  out->set_tx_bytes(c.tx_bytes);
  out->set_tx_dropped(c.tx_dropped);
}

namespace {

bool RosterNameOk(const std::string& n) {
  if (n.empty() || n.size() > 63) return false;
  for (char c : n)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  return true;
}

}  // namespace

std::vector<RosterEntry> RosterOf(const GuestRegistry& guests) {
  std::vector<RosterEntry> out;
  for (const auto& [id, g] : guests) {
    const GuestState s = g.lc.state();
    const bool served = s == GuestState::kRunning || s == GuestState::kVfOffered ||
                        s == GuestState::kVfActive || s == GuestState::kRevoking;
    if (g.transport != "control" || !g.mac || !served) continue;
    RosterEntry e{g.name, *g.mac, "", 0};
    if ((s == GuestState::kVfActive || s == GuestState::kRevoking) && g.offer_id &&
        !g.vf_bdf.empty()) {
      e.vf_bdf = g.vf_bdf;
      e.vf_offer = g.offer_id;
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::Status SaveRoster(const std::string& path, const std::vector<RosterEntry>& entries) {
  std::string text;
  for (const RosterEntry& e : entries) {
    absl::StrAppend(&text, e.name, " ", MacToString(e.mac));
    if (!e.vf_bdf.empty()) absl::StrAppend(&text, " ", e.vf_bdf, " ", e.vf_offer);
    absl::StrAppend(&text, "\n");
  }
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("restart roster: open ", tmp, ": ", strerror(errno)));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat("restart roster: write ", tmp, ": ", strerror(e)));
    }
    off += static_cast<size_t>(n);
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) < 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("restart roster: rename ", tmp, " to ", path, ": ", strerror(e)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RosterEntry>> LoadRoster(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("restart roster ", path, ": no such file"));
    return absl::InternalError(absl::StrCat("restart roster: open ", path, ": ", strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 65536) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("restart roster ", path, ": not a regular file of at most 65536 bytes"));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = read(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(fd);
  text.resize(off);
  std::vector<RosterEntry> out;
  size_t line = 0;
  for (absl::string_view l : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    line++;
    std::vector<std::string> parts = absl::StrSplit(l, ' ');
    std::optional<MacAddr> mac;
    if (parts.size() == 2 || parts.size() == 4) mac = ParseMac(parts[1]);
    if ((parts.size() != 2 && parts.size() != 4) || !RosterNameOk(parts[0]) || !mac ||
        IsMulticast(*mac) || IsZeroMac(*mac))
      return absl::InvalidArgumentError(absl::StrCat(
          "restart roster ", path, " line ", line,
          ": want 'NAME MAC [BDF OFFER]' with a guest name and a unicast MAC"));
    if (out.size() >= kMaxRosterEntries)
      return absl::InvalidArgumentError(
          absl::StrCat("restart roster ", path, ": more than ", kMaxRosterEntries, " guests"));
    RosterEntry e{parts[0], *mac, "", 0};
    if (parts.size() == 4) {
      // The VF the guest held: the new agent will refuse to touch it, so a
      // damaged entry must not name some other function or offer.
      if (absl::Status b = vf::ValidateBdf(parts[2]); !b.ok())
        return absl::InvalidArgumentError(absl::StrCat("restart roster ", path, " line ", line,
                                                       ": VF field: ", b.message()));
      if (!absl::SimpleAtoi(parts[3], &e.vf_offer) || e.vf_offer == 0)
        return absl::InvalidArgumentError(absl::StrCat(
            "restart roster ", path, " line ", line, ": offer field '", parts[3].substr(0, 24),
            "' is not a non-zero decimal offer id"));
      e.vf_bdf = parts[2];
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace npa::agent
