#include "hypervisor/daemon/guest_registry.h"

#include "absl/strings/numbers.h"
#include "common/log.h"

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

}  // namespace npa::agent
