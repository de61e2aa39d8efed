// hypervisor/daemon/mac_switch.h — the MAC-learning switch between the ports of one
// npa-agent: one port per guest, plus the uplink.
//
//   MacSwitch sw({.max_entries = 4096, .aging_ns = 300'000'000'000});
//   sw.PinMac(guest_mac, /*port=*/1);             // a guest's assigned MAC
//   Decision d = sw.Forward(frame, len, /*in=*/1, now_ns);
//   switch (d.kind) {
//     case Decision::kUnicast: deliver to d.port; break;
//     case Decision::kFlood:   deliver to every port except 1; break;
//     case Decision::kDrop:    count d.reason; break;
//   }
//
// Semantics (an 802.1D bridge, simplified):
//  - Forward learns the frame's source MAC on the ingress port, then looks up
//    the destination. Broadcast/multicast and unknown unicast are flooded; a
//    destination that lives on the ingress port is filtered (never hairpinned).
//  - A pinned MAC (a guest's agent-assigned address) is owned by its port:
//    frames from any other port carrying it as source are dropped as spoofed,
//    and they never move the entry. Pins never age.
//  - Learned entries age out after aging_ns without traffic from them. The
//    table holds at most max_entries learned entries; when full, an aging
//    sweep runs, and if nothing expired the new source is not learned (its
//    replies get flooded instead, which is correct, just slower).
//
// Threading: one thread (the dataplane) calls Forward/Learn/Age/PinMac/
// RemovePort. counters() may be read from any thread (relaxed atomics).
#ifndef NPA_HYPERVISOR_DAEMON_MAC_SWITCH_H_
#define NPA_HYPERVISOR_DAEMON_MAC_SWITCH_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace npa::agent {

using MacAddr = std::array<uint8_t, 6>;
using PortId = uint32_t;
inline constexpr PortId kNoPort = UINT32_MAX;

inline bool IsMulticast(const MacAddr& m) { return (m[0] & 1) != 0; }
inline bool IsZeroMac(const MacAddr& m) { return (m[0] | m[1] | m[2] | m[3] | m[4] | m[5]) == 0; }
std::string MacToString(const MacAddr& m);
// "02:00:00:00:00:01" (case-insensitive hex, ':' separated).
std::optional<MacAddr> ParseMac(const std::string& s);

struct Decision {
  enum Kind { kUnicast, kFlood, kDrop };
  enum Reason { kNone, kRunt, kBadSource, kSpoofed, kSamePort };
  Kind kind = kDrop;
  PortId port = kNoPort;  // kUnicast only
  Reason reason = kNone;  // kDrop only
};

struct SwitchCounters {
  uint64_t unicast = 0;
  uint64_t flooded = 0;
  uint64_t dropped_runt = 0;
  uint64_t dropped_bad_source = 0;  // multicast or all-zero source MAC
  uint64_t dropped_spoofed = 0;     // source pinned to another port
  uint64_t dropped_same_port = 0;   // destination lives on the ingress port
  uint64_t learned = 0;
  uint64_t moved = 0;               // a learned MAC showed up on another port
  uint64_t aged = 0;
  uint64_t table_full = 0;          // sources not learned for lack of room
  uint64_t entries = 0;
};

class MacSwitch {
 public:
  struct Options {
    size_t max_entries = 4096;
    uint64_t aging_ns = 300ull * 1000 * 1000 * 1000;  // 802.1D default, 300 s
  };

  explicit MacSwitch(Options opts);
  MacSwitch(const MacSwitch&) = delete;
  MacSwitch& operator=(const MacSwitch&) = delete;

  // Pin mac to port. kInvalidArgument for a multicast/zero MAC or kNoPort;
  // kAlreadyExists if another port has it pinned.
  absl::Status PinMac(const MacAddr& mac, PortId port);
  // Forget every entry (learned or pinned) that points at port.
  void RemovePort(PortId port);

  // Learn the source, look up the destination. frame is the Ethernet frame
  // (no virtio header); only its first 12 bytes are read.
  Decision Forward(const uint8_t* frame, size_t len, PortId in, uint64_t now_ns);

  // Look up without learning (tests, diagnostics). kNoPort if unknown/expired.
  PortId Lookup(const MacAddr& mac, uint64_t now_ns) const;

  // Remove learned entries idle for aging_ns. Returns how many went.
  size_t Age(uint64_t now_ns);

  SwitchCounters counters() const;
  size_t size() const { return table_.size(); }

 private:
  struct Entry {
    PortId port;
    bool pinned;
    uint64_t last_seen_ns;
  };
  static uint64_t Key(const uint8_t* mac);
  // Returns false when the source must not be forwarded (spoofed).
  bool Learn(uint64_t key, PortId in, uint64_t now_ns);
  void Bump(std::atomic<uint64_t>& c) { c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

  Options opts_;
  absl::flat_hash_map<uint64_t, Entry> table_;
  size_t learned_entries_ = 0;
  struct AtomicCounters {
    std::atomic<uint64_t> unicast{0}, flooded{0}, dropped_runt{0}, dropped_bad_source{0},
        dropped_spoofed{0}, dropped_same_port{0}, learned{0}, moved{0}, aged{0}, table_full{0},
        entries{0};
  } c_;
};

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_MAC_SWITCH_H_
