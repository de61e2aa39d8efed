#include "hypervisor/daemon/mac_switch.h"

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace npa::agent {

std::string MacToString(const MacAddr& m) {
  char s[18];
  snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return s;
}

std::optional<MacAddr> ParseMac(const std::string& s) {
  if (s.size() != 17) return std::nullopt;
  MacAddr m;
  for (int i = 0; i < 6; i++) {
    if (i > 0 && s[i * 3 - 1] != ':') return std::nullopt;
    unsigned v = 0;
    for (int j = 0; j < 2; j++) {
      char c = s[i * 3 + j];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return std::nullopt;
    }
    m[i] = static_cast<uint8_t>(v);
  }
  return m;
}

MacSwitch::MacSwitch(Options opts) : opts_(opts) {
  if (opts_.max_entries == 0) opts_.max_entries = 1;
}

uint64_t MacSwitch::Key(const uint8_t* mac) {
  uint64_t k = 0;
  memcpy(&k, mac, 6);
  return k;
}

absl::Status MacSwitch::PinMac(const MacAddr& mac, PortId port) {
  if (port == kNoPort) return absl::InvalidArgumentError("pin MAC: no port given");
  if (IsMulticast(mac) || IsZeroMac(mac))
    return absl::InvalidArgumentError(
        absl::StrCat("pin MAC ", MacToString(mac), ": not a unicast address"));
  uint64_t k = Key(mac.data());
  auto it = table_.find(k);
  if (it != table_.end()) {
    if (it->second.pinned && it->second.port != port)
      return absl::AlreadyExistsError(absl::StrCat("pin MAC ", MacToString(mac),
                                                   ": already pinned to port ", it->second.port));
    if (!it->second.pinned) learned_entries_--;
    it->second = Entry{port, true, 0};
  } else {
    table_.emplace(k, Entry{port, true, 0});
  }
  c_.entries.store(table_.size(), std::memory_order_relaxed);
  return absl::OkStatus();
}

void MacSwitch::RemovePort(PortId port) {
  for (auto it = table_.begin(); it != table_.end();) {
    if (it->second.port == port) {
      if (!it->second.pinned) learned_entries_--;
      table_.erase(it++);
    } else {
      ++it;
    }
  }
  c_.entries.store(table_.size(), std::memory_order_relaxed);
}

bool MacSwitch::Learn(uint64_t key, PortId in, uint64_t now_ns) {
  auto it = table_.find(key);
  if (it != table_.end()) {
    Entry& e = it->second;
    if (e.pinned) {
      if (e.port != in) {
        Bump(c_.dropped_spoofed);
        return false;
      }
      return true;
    }
    if (e.port != in) {
      e.port = in;
      Bump(c_.moved);
    }
    e.last_seen_ns = now_ns;
    return true;
  }
  if (learned_entries_ >= opts_.max_entries && Age(now_ns) == 0) {
    Bump(c_.table_full);
    return true;  // forward anyway; replies to it get flooded
  }
  table_.emplace(key, Entry{in, false, now_ns});
  learned_entries_++;
  Bump(c_.learned);
  c_.entries.store(table_.size(), std::memory_order_relaxed);
  return true;
}

Decision MacSwitch::Forward(const uint8_t* frame, size_t len, PortId in, uint64_t now_ns) {
  Decision d;
  if (len < 14) {
    Bump(c_.dropped_runt);
    d.reason = Decision::kRunt;
    return d;
  }
  const uint8_t* dst = frame;
  const uint8_t* src = frame + 6;
  uint64_t src_key = Key(src);
  if ((src[0] & 1) || src_key == 0) {
    Bump(c_.dropped_bad_source);
    d.reason = Decision::kBadSource;
    return d;
  }
  if (!Learn(src_key, in, now_ns)) {
    d.reason = Decision::kSpoofed;
    return d;
  }
  if (dst[0] & 1) {
    Bump(c_.flooded);
    d.kind = Decision::kFlood;
    return d;
  }
  auto it = table_.find(Key(dst));
  if (it == table_.end() ||
      (!it->second.pinned && now_ns - it->second.last_seen_ns >= opts_.aging_ns)) {
    Bump(c_.flooded);
    d.kind = Decision::kFlood;
    return d;
  }
  if (it->second.port == in) {
    Bump(c_.dropped_same_port);
    d.reason = Decision::kSamePort;
    return d;
  }
  Bump(c_.unicast);
  d.kind = Decision::kUnicast;
  d.port = it->second.port;
  return d;
}

PortId MacSwitch::Lookup(const MacAddr& mac, uint64_t now_ns) const {
  auto it = table_.find(Key(mac.data()));
  if (it == table_.end()) return kNoPort;
  if (!it->second.pinned && now_ns - it->second.last_seen_ns >= opts_.aging_ns) return kNoPort;
  return it->second.port;
}

size_t MacSwitch::Age(uint64_t now_ns) {
  size_t n = 0;
  for (auto it = table_.begin(); it != table_.end();) {
    const Entry& e = it->second;
    if (!e.pinned && now_ns - e.last_seen_ns >= opts_.aging_ns) {
      table_.erase(it++);
      learned_entries_--;
      n++;
    } else {
      ++it;
    }
  }
  if (n) {
    c_.aged.store(c_.aged.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    c_.entries.store(table_.size(), std::memory_order_relaxed);
  }
  return n;
}

SwitchCounters MacSwitch::counters() const {
  SwitchCounters s;
  s.unicast = c_.unicast.load(std::memory_order_relaxed);
  s.flooded = c_.flooded.load(std::memory_order_relaxed);
  s.dropped_runt = c_.dropped_runt.load(std::memory_order_relaxed);
  s.dropped_bad_source = c_.dropped_bad_source.load(std::memory_order_relaxed);
  s.dropped_spoofed = c_.dropped_spoofed.load(std::memory_order_relaxed);
  s.dropped_same_port = c_.dropped_same_port.load(std::memory_order_relaxed);
  s.learned = c_.learned.load(std::memory_order_relaxed);
  s.moved = c_.moved.load(std::memory_order_relaxed);
  s.aged = c_.aged.load(std::memory_order_relaxed);
  s.table_full = c_.table_full.load(std::memory_order_relaxed);
  s.entries = c_.entries.load(std::memory_order_relaxed);
  return s;
}

}  // namespace npa::agent
