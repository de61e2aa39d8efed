#include "hypervisor/migration/migration_state.h"

#include <functional>
#include <string>

#include "gtest/gtest.h"
#include "npa/virtio_ring.h"
#include "include/npa/shell.h"

namespace npa::migration {
namespace {

control::MigrationState OfferState() {
  control::MigrationState s;
  s.set_version(kMigrationStateVersion);
  s.set_migration_id(42);
  s.set_source_agent("agent-a");
  s.set_name("g1");
  s.set_mac(std::string("\x02\x00\x00\x00\x00\x01", 6));
  s.set_mtu(1500);
  s.set_queue_pairs(2);
  s.set_offloads(NPA_OFFLOAD_TX_CSUM | NPA_OFFLOAD_TSO);
  s.set_virtio_features((1ull << 32) | (1ull << 0) | (1ull << 11));
  s.add_vlan_filters(10);
  s.add_vlan_filters(20);
  s.set_memory_bytes(64ull << 20);
  return s;
}

control::MigrationState CommitState() {
  control::MigrationState s = OfferState();
  for (uint32_t v = 0; v < 4; v++) {
    auto* r = s.add_vrings();
    r->set_vring(3 - v);  // any order
    r->set_next_avail(65530 + v);
    r->set_used_idx(65530 + v);
  }
  for (uint32_t q = 0; q < 2; q++) {
    auto* c = s.add_counters();
    c->set_queue(q);
    c->set_rx_packets(10);
    c->set_rx_bytes(640);
    c->set_tx_packets(5);
    c->set_tx_bytes(320);
  }
  return s;
}

LocalCapabilities RoomyCaps() {
  LocalCapabilities c;
  c.offloads = NPA_OFFLOAD_TX_CSUM | NPA_OFFLOAD_TSO | NPA_OFFLOAD_RX_CSUM;
  c.virtio_features = ~0ull;
  c.max_queue_pairs = 16;
  c.mtu = 9000;
  c.max_guest_memory = 4ull << 30;
  c.free_slots = 3;
  c.total_slots = 16;
  return c;
}

absl::Status DecodeBytes(const std::string& b) {
  return DecodeMigrationState(reinterpret_cast<const uint8_t*>(b.data()), b.size()).status();
}

// Expect `mutate` to make the commit state invalid with a message naming `field`.
void ExpectRefused(const std::function<void(control::MigrationState*)>& mutate, const std::string& field,
                   const std::string& also = "") {
  control::MigrationState s = CommitState();
  mutate(&s);
  absl::Status st = CheckMigrationState(s);
  ASSERT_FALSE(st.ok()) << field;
  EXPECT_NE(st.message().find(field), std::string::npos) << st;
  if (!also.empty()) {
    EXPECT_NE(st.message().find(also), std::string::npos) << st;
  }
  // The decoder refuses the same bytes the same way.
  absl::Status d = DecodeBytes(EncodeMigrationState(s));
  EXPECT_EQ(d, st);
}

TEST(MigrationStateTest, RoundTripOfferAndCommit) {
  for (const control::MigrationState& s : {OfferState(), CommitState()}) {
    const std::string bytes = EncodeMigrationState(s);
    auto d = DecodeMigrationState(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->SerializeAsString(), s.SerializeAsString());
    EXPECT_EQ(EncodeMigrationState(*d), bytes);  // deterministic
  }
  EXPECT_TRUE(CheckMigrationState(OfferState(), StateStage::kOffer).ok());
  EXPECT_TRUE(CheckMigrationState(CommitState(), StateStage::kCommit).ok());
}

TEST(MigrationStateTest, StageDecidesWhetherRingsBelong) {
  absl::Status a = CheckMigrationState(CommitState(), StateStage::kOffer);
  EXPECT_NE(a.message().find("an offer carries none"), std::string::npos) << a;
  absl::Status b = CheckMigrationState(OfferState(), StateStage::kCommit);
  EXPECT_NE(b.message().find("a commit carries all 4"), std::string::npos) << b;
}

TEST(MigrationStateTest, EveryFieldIsChecked) {
  ExpectRefused([](auto* s) { s->set_version(2); }, "version 2 is not supported");
  ExpectRefused([](auto* s) { s->set_version(0); }, "version 0");
  ExpectRefused([](auto* s) { s->set_migration_id(0); }, "migration_id");
  ExpectRefused([](auto* s) { s->set_source_agent(std::string(256, 'a')); }, "source_agent");
  ExpectRefused([](auto* s) { s->set_source_agent("a\nb"); }, "source_agent", "control character");
  ExpectRefused([](auto* s) { s->set_name(""); }, "name");
  ExpectRefused([](auto* s) { s->set_name(std::string(64, 'g')); }, "name");
  ExpectRefused([](auto* s) { s->set_name("g/1"); }, "name \"g/1\"");
  ExpectRefused([](auto* s) { s->set_name(std::string("g\0", 2)); }, "name \"g\\x00\"");
  ExpectRefused([](auto* s) { s->set_mac(std::string("\x02\x00", 2)); }, "mac", "2 bytes, not 6");
  ExpectRefused([](auto* s) { s->set_mac(std::string("\x01\x00\x5e\x00\x00\x01", 6)); }, "mac",
                "multicast");
  ExpectRefused([](auto* s) { s->set_mac(std::string(6, '\0')); }, "mac", "all zero");
  ExpectRefused([](auto* s) { s->set_mtu(67); }, "mtu 67");
  ExpectRefused([](auto* s) { s->set_mtu(9001); }, "mtu 9001");
  ExpectRefused([](auto* s) { s->set_queue_pairs(0); }, "queue_pairs 0");
  ExpectRefused([](auto* s) { s->set_queue_pairs(17); }, "queue_pairs 17");
  ExpectRefused([](auto* s) { s->add_vlan_filters(0); }, "vlan_filters", "id 0");
  ExpectRefused([](auto* s) { s->add_vlan_filters(4095); }, "vlan_filters", "id 4095");
  ExpectRefused([](auto* s) { s->add_vlan_filters(10); }, "vlan_filters", "listed twice");
  ExpectRefused([](auto* s) { s->set_memory_bytes((1ull << 40) + 1); }, "memory_bytes");
  // vrings: count, numbering, uniqueness, range, sanity of the pair.
  ExpectRefused([](auto* s) { s->mutable_vrings()->RemoveLast(); }, "vrings", "3 entries");
  ExpectRefused([](auto* s) { s->set_queue_pairs(1); }, "vrings", "need 0 (offer) or 2");
  ExpectRefused([](auto* s) { s->mutable_vrings(0)->set_vring(4); }, "vrings", "vring 4 is outside");
  ExpectRefused([](auto* s) { s->mutable_vrings(0)->set_vring(2); }, "vrings", "listed twice");
  ExpectRefused([](auto* s) { s->mutable_vrings(1)->set_next_avail(65536); }, "next_avail 65536");
  ExpectRefused([](auto* s) { s->mutable_vrings(1)->set_used_idx(70000); }, "used_idx 70000");
  ExpectRefused(
      [](auto* s) {
        s->mutable_vrings(1)->set_next_avail(40000);
        s->mutable_vrings(1)->set_used_idx(1000);
      },
      "vrings", "39000 buffers taken");
  // counters: count, numbering, uniqueness, bytes vs packets.
  ExpectRefused([](auto* s) { s->mutable_counters()->RemoveLast(); }, "counters", "1 entries");
  ExpectRefused([](auto* s) { s->mutable_counters(1)->set_queue(2); }, "counters", "queue 2");
  ExpectRefused([](auto* s) { s->mutable_counters(1)->set_queue(0); }, "counters", "listed twice");
  ExpectRefused([](auto* s) { s->mutable_counters(0)->set_rx_bytes(1); }, "counters", "rx_bytes 1");
  ExpectRefused([](auto* s) { s->mutable_counters(0)->set_tx_bytes(1); }, "counters", "tx_bytes 1");
}

TEST(MigrationStateTest, WrappedIndicesAreFine) {
  control::MigrationState s = CommitState();
  s.mutable_vrings(0)->set_next_avail(5);  // wrapped past 65535: 11 outstanding
  s.mutable_vrings(0)->set_used_idx(65530);
  EXPECT_TRUE(CheckMigrationState(s, StateStage::kCommit).ok());
}

// Packed rings (VIRTIO 1.1 2.8): next_avail and used_idx are the vhost-user
// base encoding npa_vring_packed_base(slot, wrap), bit 15 the lap's wrap
// counter, and travel unchanged, so the destination's SET_VRING_BASE resumes
// at the same slot and lap. Every legal pair passes the outstanding check:
// same lap, or next_avail one lap ahead at a lower slot.
TEST(MigrationStateTest, PackedRingBasesWithTheWrapCounterAreCarried) {
  struct Pair {
    uint32_t next, used;
  };
  const Pair ok[] = {
      {npa_vring_packed_base(3, 0), npa_vring_packed_base(3, 0)},    // clean stop, odd lap
      {npa_vring_packed_base(9, 1), npa_vring_packed_base(2, 1)},    // 7 in flight, same lap
      {npa_vring_packed_base(2, 0), npa_vring_packed_base(250, 1)},  // across the wrap
      {npa_vring_packed_base(2, 1), npa_vring_packed_base(250, 0)},  // the next lap pair
      {npa_vring_packed_base(0, 0), npa_vring_packed_base(0, 1)},    // a full 32768-slot ring
  };
  for (const Pair& p : ok) {
    control::MigrationState s = CommitState();
    s.mutable_vrings(1)->set_next_avail(p.next);
    s.mutable_vrings(1)->set_used_idx(p.used);
    EXPECT_TRUE(CheckMigrationState(s, StateStage::kCommit).ok()) << p.next << "/" << p.used;
    const std::string bytes = EncodeMigrationState(s);
    auto d = DecodeMigrationState(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->vrings(1).next_avail(), p.next);  // the wrap bit survives the trip
    EXPECT_EQ(d->vrings(1).used_idx(), p.used);
  }
  // What the structural check cannot see: the state does not say which
  // ring kind a vring is, so a packed pair is bounded as a split one (the
  // destination's back end checks the slot against the ring size when the
  // shell sets the base).
}

TEST(MigrationStateTest, DecoderRefusesGarbageAndHugeInput) {
  const std::string junk = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
  absl::Status a = DecodeBytes(junk);
  EXPECT_EQ(a.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(a.message().find("not a MigrationState"), std::string::npos) << a;
  absl::Status b = DecodeBytes(std::string(kMaxEncodedStateBytes + 1, '\0'));
  EXPECT_NE(b.message().find("at most"), std::string::npos) << b;
  absl::Status c = DecodeBytes("");  // parses as all defaults: version 0
  EXPECT_NE(c.message().find("version 0"), std::string::npos) << c;
  EXPECT_FALSE(DecodeMigrationState(nullptr, 0).ok());
}

TEST(MigrationStateTest, UnknownAppendedFieldsAreSkipped) {
  std::string bytes = EncodeMigrationState(OfferState());
  bytes += std::string("\xa0\x06\x07", 3);  // field 100, varint 7: a later minor's field
  EXPECT_TRUE(DecodeBytes(bytes).ok()) << DecodeBytes(bytes);
}

TEST(MigrationStateTest, DestinationAcceptsWhatItCanServe) {
  EXPECT_TRUE(ValidateMigrationState(OfferState(), RoomyCaps()).ok());
  EXPECT_TRUE(ValidateMigrationState(CommitState(), RoomyCaps()).ok());
}

TEST(MigrationStateTest, DestinationRefusalsNameTheGuestAndTheReason) {
  struct Case {
    std::function<void(LocalCapabilities*)> change;
    absl::StatusCode code;
    std::string text;
  };
  const Case cases[] = {
      {[](auto* c) { c->offloads = NPA_OFFLOAD_TX_CSUM; }, absl::StatusCode::kFailedPrecondition,
       "destination cannot serve guest g1: offload TSO not supported (this agent offers TX_CSUM)"},
      {[](auto* c) { c->virtio_features = 1ull << 32; }, absl::StatusCode::kFailedPrecondition,
       "virtio feature VIRTIO_NET_F_CSUM|VIRTIO_NET_F_HOST_TSO4 not supported"},
      {[](auto* c) { c->max_queue_pairs = 1; }, absl::StatusCode::kFailedPrecondition,
       "2 queue pairs; this agent serves at most 1"},
      {[](auto* c) { c->mtu = 1400; }, absl::StatusCode::kFailedPrecondition, "MTU 1500 over this agent's 1400"},
      {[](auto* c) { c->max_guest_memory = 1 << 20; }, absl::StatusCode::kResourceExhausted,
       "guest memory 67108864 bytes over this agent's limit of 1048576"},
      {[](auto* c) { c->free_slots = 0; }, absl::StatusCode::kResourceExhausted,
       "destination cannot serve guest g1: no free guest slot (16 of 16 in use)"},
      {[](auto* c) { c->name_in_use = [](const std::string& n) { return n == "g1"; }; },
       absl::StatusCode::kAlreadyExists, "a guest named g1 already exists here"},
      {[](auto* c) { c->mac_in_use = [](std::span<const uint8_t, 6> m) { return m[5] == 1; }; },
       absl::StatusCode::kAlreadyExists, "MAC 02:00:00:00:00:01 is already in use here"},
  };
  for (const Case& k : cases) {
    LocalCapabilities caps = RoomyCaps();
    k.change(&caps);
    absl::Status s = ValidateMigrationState(OfferState(), caps);
    EXPECT_EQ(s.code(), k.code) << s;
    EXPECT_NE(s.message().find(k.text), std::string::npos) << s;
  }
}

TEST(MigrationStateTest, EveryReasonIsListedFirstCodeWins) {
  LocalCapabilities caps = RoomyCaps();
  caps.free_slots = 0;
  caps.total_slots = 0;
  caps.offloads = 0;
  absl::Status s = ValidateMigrationState(OfferState(), caps);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "destination cannot serve guest g1: offload TX_CSUM, TSO not supported (this agent offers "
            "none); no free guest slot");
}

TEST(MigrationStateTest, MalformedStateIsRefusedBeforeCapabilities) {
  control::MigrationState s = OfferState();
  s.set_mtu(10);
  absl::Status st = ValidateMigrationState(s, RoomyCaps());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("destination cannot serve guest \"g1\": migration state: mtu 10"),
            std::string::npos)
      << st;
}

TEST(MigrationStateTest, Names) {
  EXPECT_EQ(OffloadNames(0), "none");
  EXPECT_EQ(OffloadNames(NPA_OFFLOAD_RX_CSUM | (1ull << 9)), "RX_CSUM|bit9");
  EXPECT_EQ(MacString(std::string("\x02\xab\x00\x00\x00\xff", 6)), "02:ab:00:00:00:ff");
  EXPECT_EQ(MacString("xy"), "<2 bytes>");
}

}  // namespace
}  // namespace npa::migration
