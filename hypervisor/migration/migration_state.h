// hypervisor/migration/migration_state.h — the versioned state a guest's
// attachment carries from the source agent (A) to the destination (B):
// decoding and checking it (every byte of it comes from another host and is
// hostile until checked), encoding it, and the destination's "can I serve
// this guest?" decision. docs/migration.md has the sequence; the message is
// control::MigrationState in include/npa/control.proto.
//
//   // A, building the offer (no rings yet) and later the commit:
//   control::MigrationState st;
//   st.set_version(kMigrationStateVersion);
//   st.set_migration_id(id);
//   st.set_name("g1"); ...
//   std::string bytes = EncodeMigrationState(st);
//
//   // B, on a MigrationOffer (the channel already ran CheckMigrationState):
//   LocalCapabilities caps = ...;                 // from the agent's config
//   absl::Status ok = ValidateMigrationState(offer.state(), caps);
//   // ok = FailedPrecondition("destination cannot serve guest g1: offload TSO
//   //      not supported (this agent offers TX_CSUM|RX_CSUM)")
//
//   // Anyone holding raw bytes (the fuzz target, tests/fuzz):
//   absl::StatusOr<control::MigrationState> s = DecodeMigrationState(data, len);
//
// What the structural check (CheckMigrationState, and so DecodeMigrationState)
// refuses, each error naming the field and the value:
//   version     not kMigrationStateVersion (nothing older is read yet)
//   migration_id 0 (reserved: "no migration")
//   source_agent longer than 255 bytes or with control characters
//   name        not [A-Za-z0-9_.-]{1,63} (the control protocol's guest names)
//   mac         not 6 bytes, multicast, or all zero
//   mtu         outside 68..9000
//   queue_pairs outside 1..16
//   vlan_filters an id outside 1..4094 or listed twice
//   memory_bytes over kMaxMigrationMemoryBytes (1 TiB)
//   vrings      neither 0 (an offer) nor exactly 2*queue_pairs (a commit);
//               a vring number >= 2*queue_pairs or listed twice; next_avail or
//               used_idx over 65535; next_avail - used_idx (mod 2^16) over
//               32768, the largest split ring (VIRTIO 1.x 2.7: the back end
//               cannot have taken more than a ring's worth it did not use).
//               Packed rings (VIRTIO 1.1 2.8): both values are the vhost-user
//               base npa_vring_packed_base(slot, wrap), bit 15 the lap's wrap
//               counter, carried unchanged so the destination resumes at the
//               same slot and lap; the same modular check accepts every legal
//               pair (same lap, or next_avail a lap ahead at a lower slot).
//               The state does not record the ring kind (no proto change),
//               so a packed pair is only bounded as a split one; the
//               destination's back end checks the slot against the ring
//               size when the shell sets the base.
//   counters    neither 0 nor exactly queue_pairs entries; a queue number
//               >= queue_pairs or listed twice; bytes < packets (every frame
//               is at least one byte)
// The stage argument says which of the two shapes is expected (an offer has
// no rings; a commit has all of them).
//
// Threads: pure functions, any thread. ValidateMigrationState calls the
// callbacks in LocalCapabilities on the caller's thread.
#ifndef NPA_HYPERVISOR_MIGRATION_MIGRATION_STATE_H_
#define NPA_HYPERVISOR_MIGRATION_MIGRATION_STATE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "include/npa/control.pb.h"

namespace npa::migration {

// The one version this agent writes and reads. Fields of MigrationState are
// only ever appended; a new version is needed only when a field's meaning
// changes, and then the reader lists every version it still reads.
inline constexpr uint32_t kMigrationStateVersion = 1;

inline constexpr uint32_t kMaxQueuePairs = 16;
inline constexpr uint32_t kMinMtu = 68;    // IPv4's minimum (RFC 791)
inline constexpr uint32_t kMaxMtu = 9000;  // the agent's jumbo limit
inline constexpr uint64_t kMaxMigrationMemoryBytes = 1ull << 40;
inline constexpr size_t kMaxSourceAgentLen = 255;
// An encoded state must fit in one control frame with room for the envelope.
inline constexpr size_t kMaxEncodedStateBytes = 60 * 1024;

enum class StateStage {
  kAny,     // either shape (the decoder, the fuzz target)
  kOffer,   // MigrationOffer: no vrings
  kCommit,  // MigrationCommit: every vring, once
};

// Structural check of a parsed state; see the list above. kInvalidArgument
// naming the field, or kFailedPrecondition for an unknown version.
absl::Status CheckMigrationState(const control::MigrationState& s,
                                 StateStage stage = StateStage::kAny);

// Parse (at most kMaxEncodedStateBytes) and CheckMigrationState(kAny).
// Pure: no I/O, no globals; the fuzz target's entry point.
absl::StatusOr<control::MigrationState> DecodeMigrationState(const uint8_t* data, size_t len);

// Deterministic serialization (the same state gives the same bytes).
std::string EncodeMigrationState(const control::MigrationState& s);

// What the destination can offer a guest, from its configuration and its
// current load. The callbacks answer for this agent's guests and for
// reservations it holds for other migrations (both count as "in use").
struct LocalCapabilities {
  uint64_t offloads = 0;         // NPA_OFFLOAD_* it can serve (hardware or software)
  uint64_t virtio_features = 0;  // virtio-net feature bits its back end offers
  uint32_t max_queue_pairs = 0;
  uint32_t mtu = 0;              // the largest MTU its uplink carries
  uint64_t max_guest_memory = 0; // --max-guest-memory
  size_t free_slots = 0;
  std::function<bool(const std::string&)> name_in_use;     // may be empty: none
  std::function<bool(std::span<const uint8_t, 6>)> mac_in_use;  // may be empty: none
  size_t total_slots = 0;        // for the message only ("16 of 16 in use"); 0 = unknown
};

// What B checks before it answers MigrationAccept: the state is well formed,
// and B can serve it (offloads, virtio features, queue pairs, MTU, memory, a
// free slot, the name and the MAC are free here). OK, or one status whose
// message lists every reason, each naming the guest, e.g.
//   "destination cannot serve guest g1: offload TSO not supported (this agent
//    offers TX_CSUM|RX_CSUM); no free guest slot (16 of 16 in use)"
// Code: that of the first reason — kResourceExhausted (slot, memory),
// kAlreadyExists (name, MAC), kFailedPrecondition (features, sizes),
// kInvalidArgument (malformed state).
absl::Status ValidateMigrationState(const control::MigrationState& s, const LocalCapabilities& caps);

// "TX_CSUM|TSO", "none" for 0; unknown bits as "bit7".
std::string OffloadNames(uint64_t offloads);
// "aa:bb:cc:dd:ee:ff" (or "<n bytes>" when not 6 bytes long).
std::string MacString(const std::string& mac);

}  // namespace npa::migration

#endif  // NPA_HYPERVISOR_MIGRATION_MIGRATION_STATE_H_
