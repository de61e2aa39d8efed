#include "hypervisor/migration/migration_state.h"

#include <algorithm>
#include <bitset>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "common/wire_check.h"
#include "include/npa/shell.h"

namespace npa::migration {
namespace {

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("migration state: ", field, " ", what));
}

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 63) return false;
  for (char c : n) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Printable for a message: at most 64 bytes, escapes for the rest.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 64; i++) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
      out += static_cast<char>(c);
    else
      absl::StrAppendFormat(&out, "\\x%02x", c);
  }
  if (s.size() > 64) out += "...";
  return out + "\"";
}

constexpr const char* kOffloadNames[] = {"TX_CSUM",    "TSO",        "RX_CSUM",  "VLAN_INSERT",
                                         "VLAN_STRIP", "RSS_HASH", "MRG_RXBUF"};

// Names of virtio-net feature bits (VIRTIO 1.x 5.1.3) and the transport
// bits the agent's back end negotiates, for refusal messages.
const char* VirtioFeatureName(int bit) {
  switch (bit) {
    case 0: return "VIRTIO_NET_F_CSUM";
    case 1: return "VIRTIO_NET_F_GUEST_CSUM";
    case 3: return "VIRTIO_NET_F_MTU";
    case 5: return "VIRTIO_NET_F_MAC";
    case 7: return "VIRTIO_NET_F_GUEST_TSO4";
    case 8: return "VIRTIO_NET_F_GUEST_TSO6";
    case 10: return "VIRTIO_NET_F_GUEST_UFO";
    case 11: return "VIRTIO_NET_F_HOST_TSO4";
    case 12: return "VIRTIO_NET_F_HOST_TSO6";
    case 14: return "VIRTIO_NET_F_HOST_UFO";
    case 15: return "VIRTIO_NET_F_MRG_RXBUF";
    case 16: return "VIRTIO_NET_F_STATUS";
    case 17: return "VIRTIO_NET_F_CTRL_VQ";
    case 19: return "VIRTIO_NET_F_CTRL_VLAN";
    case 22: return "VIRTIO_NET_F_MQ";
    case 28: return "VIRTIO_RING_F_INDIRECT_DESC";
    case 29: return "VIRTIO_RING_F_EVENT_IDX";
    case 30: return "VHOST_USER_F_PROTOCOL_FEATURES";
    case 32: return "VIRTIO_F_VERSION_1";
    case 33: return "VIRTIO_F_ACCESS_PLATFORM";
    case 34: return "VIRTIO_F_RING_PACKED";
    case 35: return "VIRTIO_F_IN_ORDER";
    default: return nullptr;
  }
}

std::string VirtioFeatureNames(uint64_t bits) {
  std::vector<std::string> names;
  for (int b = 0; b < 64; b++) {
    if (!(bits & (1ull << b))) continue;
    const char* n = VirtioFeatureName(b);
    names.push_back(n ? std::string(n) : absl::StrCat("bit", b));
  }
  return names.empty() ? "none" : absl::StrJoin(names, "|");
}

}  // namespace

std::string OffloadNames(uint64_t offloads) {
  std::vector<std::string> names;
  for (int b = 0; b < 64; b++) {
    if (!(offloads & (1ull << b))) continue;
    names.push_back(b < static_cast<int>(std::size(kOffloadNames)) ? std::string(kOffloadNames[b])
                                                                   : absl::StrCat("bit", b));
  }
  return names.empty() ? "none" : absl::StrJoin(names, "|");
}

std::string MacString(const std::string& mac) {
  if (mac.size() != 6) return absl::StrCat("<", mac.size(), " bytes>");
  const auto* m = reinterpret_cast<const unsigned char*>(mac.data());
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

absl::Status CheckMigrationState(const control::MigrationState& s, StateStage stage) {
  if (s.version() != kMigrationStateVersion)
    return absl::FailedPreconditionError(absl::StrCat("migration state: version ", s.version(),
                                                      " is not supported (this agent reads ",
                                                      kMigrationStateVersion, ")"));
  if (s.migration_id() == 0) return Bad("migration_id", "0 is reserved");
  if (s.source_agent().size() > kMaxSourceAgentLen)
    return Bad("source_agent", absl::StrCat("is ", s.source_agent().size(), " bytes; at most ",
                                            kMaxSourceAgentLen));
  for (char c : s.source_agent())
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return Bad("source_agent", absl::StrCat(Quote(s.source_agent()), " has a control character"));
  if (!ValidName(s.name()))
    return Bad("name", absl::StrCat(Quote(s.name()), " is not [A-Za-z0-9_.-]{1,63}"));
  const std::string& g = s.name();
  if (s.mac().size() != 6)
    return Bad("mac", absl::StrCat("of guest ", g, " is ", s.mac().size(), " bytes, not 6"));
  if (static_cast<unsigned char>(s.mac()[0]) & 1)
    return Bad("mac", absl::StrCat(MacString(s.mac()), " of guest ", g, " is multicast"));
  if (s.mac() == std::string(6, '\0'))
    return Bad("mac", absl::StrCat("of guest ", g, " is all zero"));
  if (s.mtu() < kMinMtu || s.mtu() > kMaxMtu)
    return Bad("mtu", absl::StrCat(s.mtu(), " of guest ", g, " is outside ", kMinMtu, "..", kMaxMtu));
  const uint32_t qp = s.queue_pairs();
  if (qp < 1 || qp > kMaxQueuePairs)
    return Bad("queue_pairs", absl::StrCat(qp, " of guest ", g, " is outside 1..", kMaxQueuePairs));
  if (s.vlan_filters_size() > 4094)
    return Bad("vlan_filters", absl::StrCat("has ", s.vlan_filters_size(), " entries; at most 4094"));
  std::bitset<4096> vlans;
  for (uint32_t v : s.vlan_filters()) {
    if (v < 1 || v > 4094) return Bad("vlan_filters", absl::StrCat("id ", v, " is outside 1..4094"));
    if (vlans.test(v)) return Bad("vlan_filters", absl::StrCat("id ", v, " is listed twice"));
    vlans.set(v);
  }
  if (s.memory_bytes() > kMaxMigrationMemoryBytes)
    return Bad("memory_bytes", absl::StrCat(s.memory_bytes(), " of guest ", g, " is over ",
                                            kMaxMigrationMemoryBytes));

  const uint32_t nvr = 2 * qp;
  const uint32_t have = static_cast<uint32_t>(s.vrings_size());
  if (have != 0 && have != nvr)
    return Bad("vrings", absl::StrCat("of guest ", g, ": ", have, " entries; need 0 (offer) or ",
                                      nvr, " (2 x ", qp, " queue pairs)"));
  if (stage == StateStage::kOffer && have != 0)
    return Bad("vrings", absl::StrCat("of guest ", g, ": an offer carries none, got ", have));
  if (stage == StateStage::kCommit && have != nvr)
    return Bad("vrings", absl::StrCat("of guest ", g, ": a commit carries all ", nvr, ", got ", have));
  uint32_t seen = 0;  // bit per vring (at most 32)
  for (const control::VringBase& v : s.vrings()) {
    if (v.vring() >= nvr)
      return Bad("vrings", absl::StrCat("of guest ", g, ": vring ", v.vring(), " is outside 0..",
                                        nvr - 1));
    if (seen & (1u << v.vring()))
      return Bad("vrings", absl::StrCat("of guest ", g, ": vring ", v.vring(), " is listed twice"));
    seen |= 1u << v.vring();
    if (v.next_avail() > 0xffff)
      return Bad("vrings", absl::StrCat("of guest ", g, ": vring ", v.vring(), " next_avail ",
                                        v.next_avail(), " is over 65535"));
    if (v.used_idx() > 0xffff)
      return Bad("vrings", absl::StrCat("of guest ", g, ": vring ", v.vring(), " used_idx ",
                                        v.used_idx(), " is over 65535"));
    // Free-running 16-bit indices: the back end has taken next_avail and
    // published used_idx; it cannot have more outstanding than a ring holds.
    const uint32_t outstanding = (v.next_avail() - v.used_idx()) & 0xffff;
    if (outstanding > 32768)
      return Bad("vrings", absl::StrCat("of guest ", g, ": vring ", v.vring(), " has ", outstanding,
                                        " buffers taken but not used (next_avail ", v.next_avail(),
                                        ", used_idx ", v.used_idx(),
                                        "); a split ring holds at most 32768"));
  }

  const uint32_t nc = static_cast<uint32_t>(s.counters_size());
  if (nc != 0 && nc != qp)
    return Bad("counters", absl::StrCat("of guest ", g, ": ", nc, " entries; need 0 or ", qp,
                                        " (one per queue pair)"));
  uint32_t cseen = 0;
  for (const control::QueueCounters& c : s.counters()) {
    if (c.queue() >= qp)
      return Bad("counters", absl::StrCat("of guest ", g, ": queue ", c.queue(), " is outside 0..",
                                          qp - 1));
    if (cseen & (1u << c.queue()))
      return Bad("counters", absl::StrCat("of guest ", g, ": queue ", c.queue(), " is listed twice"));
    cseen |= 1u << c.queue();
    if (c.rx_bytes() < c.rx_packets())
      return Bad("counters", absl::StrCat("of guest ", g, ": queue ", c.queue(), " rx_bytes ",
                                          c.rx_bytes(), " < rx_packets ", c.rx_packets()));
    if (c.tx_bytes() < c.tx_packets())
      return Bad("counters", absl::StrCat("of guest ", g, ": queue ", c.queue(), " tx_bytes ",
                                          c.tx_bytes(), " < tx_packets ", c.tx_packets()));
  }
  return absl::OkStatus();
}

absl::StatusOr<control::MigrationState> DecodeMigrationState(const uint8_t* data, size_t len) {
  if (len > kMaxEncodedStateBytes)
    return Bad("encoding", absl::StrCat("is ", len, " bytes; at most ", kMaxEncodedStateBytes));
  control::MigrationState s;
  if (len > 0 && data == nullptr) return Bad("encoding", "has no data");
  // Bounded first: a length past its parent's end would make the parser
  // reserve up to 50 MB (common/wire_check.h; found by this decoder's fuzzer).
  if (absl::Status w = CheckWireLengths(data, len, "npa.control.MigrationState"); !w.ok())
    return Bad("encoding", absl::StrCat("of ", len, " bytes is not a MigrationState: ", w.message()));
  if (!s.ParseFromArray(data, static_cast<int>(len)))
    return Bad("encoding", absl::StrCat("of ", len, " bytes is not a MigrationState"));
  absl::Status st = CheckMigrationState(s, StateStage::kAny);
  if (!st.ok()) return st;
  return s;
}

std::string EncodeMigrationState(const control::MigrationState& s) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream zs(&out);
    google::protobuf::io::CodedOutputStream cs(&zs);
    cs.SetSerializationDeterministic(true);
    s.SerializeToCodedStream(&cs);
  }
  return out;
}

absl::Status ValidateMigrationState(const control::MigrationState& s, const LocalCapabilities& caps) {
  absl::Status structural = CheckMigrationState(s, StateStage::kAny);
  if (!structural.ok())
    return absl::Status(structural.code(), absl::StrCat("destination cannot serve guest ",
                                                        Quote(s.name()), ": ", structural.message()));
  std::vector<std::string> why;
  absl::StatusCode first = absl::StatusCode::kOk;
  auto refuse = [&](absl::StatusCode code, std::string msg) {
    if (first == absl::StatusCode::kOk) first = code;
    why.push_back(std::move(msg));
  };
  const uint64_t missing_off = s.offloads() & ~caps.offloads;
  if (missing_off) {
    std::vector<std::string> each;
    for (int b = 0; b < 64; b++)
      if (missing_off & (1ull << b)) each.push_back(OffloadNames(1ull << b));
    refuse(absl::StatusCode::kFailedPrecondition,
           absl::StrCat("offload ", absl::StrJoin(each, ", "), " not supported (this agent offers ",
                        OffloadNames(caps.offloads), ")"));
  }
  const uint64_t missing_feat = s.virtio_features() & ~caps.virtio_features;
  if (missing_feat)
    refuse(absl::StatusCode::kFailedPrecondition,
           absl::StrCat("virtio feature ", VirtioFeatureNames(missing_feat),
                        " not supported by this agent's back end"));
  if (s.queue_pairs() > caps.max_queue_pairs)
    refuse(absl::StatusCode::kFailedPrecondition,
           absl::StrCat(s.queue_pairs(), " queue pairs; this agent serves at most ",
                        caps.max_queue_pairs));
  if (s.mtu() > caps.mtu)
    refuse(absl::StatusCode::kFailedPrecondition,
           absl::StrCat("MTU ", s.mtu(), " over this agent's ", caps.mtu));
  if (s.memory_bytes() > caps.max_guest_memory)
    refuse(absl::StatusCode::kResourceExhausted,
           absl::StrCat("guest memory ", s.memory_bytes(), " bytes over this agent's limit of ",
                        caps.max_guest_memory, " (--max-guest-memory)"));
  if (caps.free_slots == 0)
    refuse(absl::StatusCode::kResourceExhausted,
           caps.total_slots ? absl::StrCat("no free guest slot (", caps.total_slots, " of ",
                                           caps.total_slots, " in use)")
                            : std::string("no free guest slot"));
  if (caps.name_in_use && caps.name_in_use(s.name()))
    refuse(absl::StatusCode::kAlreadyExists,
           absl::StrCat("a guest named ", s.name(), " already exists here"));
  if (caps.mac_in_use) {
    std::span<const uint8_t, 6> mac(reinterpret_cast<const uint8_t*>(s.mac().data()), 6);
    if (caps.mac_in_use(mac))
      refuse(absl::StatusCode::kAlreadyExists,
             absl::StrCat("MAC ", MacString(s.mac()), " is already in use here"));
  }
  if (why.empty()) return absl::OkStatus();
  return absl::Status(first, absl::StrCat("destination cannot serve guest ", s.name(), ": ",
                                          absl::StrJoin(why, "; ")));
}

}  // namespace npa::migration
