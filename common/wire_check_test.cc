#include "common/wire_check.h"

#include <string>

#include "common/control_codec.h"
#include "gtest/gtest.h"
#include "npa/control.pb.h"

namespace npa {
namespace {

absl::Status Check(const std::string& b, absl::string_view root = "npa.control.Envelope") {
  return CheckWireLengths(reinterpret_cast<const uint8_t*>(b.data()), b.size(), root);
}

std::string Bytes(std::initializer_list<int> v) {
  std::string s;
  for (int c : v) s.push_back(static_cast<char>(c));
  return s;
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// What our encoder writes passes, nested messages and all, including
// strings and bytes that would read as broken messages if they were parsed
// as ones (only the schema's message fields are walked into).
TEST(WireCheck, AcceptsWhatTheEncoderWrites) {
  control::Envelope e;
  e.set_major(1);
  e.set_seq(77);
  control::Hello* h = e.mutable_hello();
  h->set_name("bz");  // 'b' 'z': field 12, length 122, were it a message
  h->set_mac(std::string("\x02\xff\xff\xff\xff\x7f", 6));
  h->mutable_resume()->set_ticket(std::string(32, '\xff'));
  const std::string b = e.SerializeAsString();
  EXPECT_TRUE(Check(b).ok()) << Check(b);
  EXPECT_TRUE(Check("").ok());

  control::MigrationState m;
  m.set_name("g1");
  m.set_queue_pairs(1);
  m.add_vlan_filters(5);  // packed: a length-delimited scalar field
  m.add_vrings()->set_next_avail(3);
  m.add_counters()->set_rx_bytes(64);
  EXPECT_TRUE(Check(m.SerializeAsString(), "npa.control.MigrationState").ok());
}

// The inputs that made protobuf 3.21 reserve 50 MB: a sub-message whose
// length runs past the end, at the top (Envelope.hello) and one level down
// (Hello.resume), and the migration fuzzer's reproducer.
TEST(WireCheck, RefusesALengthPastItsParentsEnd) {
  absl::Status s = Check(Bytes({0x08, 0x01, 0x52, 0xff, 0xff, 0xff, 0xff, 0x00, 0x30, 0x67, 0x62,
                                0xff, 0xff, 0xff, 0x23}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Msg(s), "npa.control.Envelope at byte 2: field 10: length 268435455 runs past its "
                    "end (7 bytes left)");
  // Hello is 13 bytes and fits; its resume (field 6) claims 268435455.
  s = Check(Bytes({0x08, 0x01, 0x52, 0x0d, 0x32, 0xff, 0xff, 0xff, 0xff, 0x00, 0x30, 0x67, 0x62,
                   0xff, 0xff, 0xff, 0x23}));
  EXPECT_EQ(Msg(s), "npa.control.Hello at byte 4: field 6: length 268435455 runs past its end "
                    "(7 bytes left)");
  s = Check(Bytes({0x08, 0x01, 0x62, 0x02, 0x08, 0x02, 0x10, 0x05, 0x62, 0xff, 0xff, 0xff, 0xff,
                   0x00, 0x30, 0x67, 0x62, 0xff, 0xff, 0xff, 0x23}),
            "npa.control.MigrationState");
  EXPECT_EQ(Msg(s), "npa.control.MigrationState at byte 8: field 12: length 268435455 runs past "
                    "its end (7 bytes left)");
}

TEST(WireCheck, RefusesMalformedWireFormat) {
  EXPECT_NE(Msg(Check(Bytes({0x08}))).find("field 1: a malformed varint"), std::string::npos);
  EXPECT_NE(Msg(Check(Bytes({0x80, 0x80}))).find("a malformed tag"), std::string::npos);
  EXPECT_NE(Msg(Check(Bytes({0x00}))).find("field number 0"), std::string::npos);
  EXPECT_NE(Msg(Check(Bytes({0x09, 1, 2, 3}))).find("8 bytes past the end"), std::string::npos);
  EXPECT_NE(Msg(Check(Bytes({0x0b, 0x0c}))).find("wire type 3"), std::string::npos);
  EXPECT_NE(Msg(Check(Bytes({0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                             0x01})))
                .find("a malformed length"),
            std::string::npos);
  // Unknown fields are skipped by wire type, their length bounded.
  EXPECT_TRUE(Check(Bytes({0xf8, 0x07, 0x01, 0xfa, 0x07, 0x01, 0x41})).ok());
  EXPECT_FALSE(Check(Bytes({0xfa, 0x07, 0x05, 0x41})).ok());
  EXPECT_EQ(Check("", "npa.control.NoSuchThing").code(), absl::StatusCode::kInvalidArgument);
}

// DecodeEnvelope runs the check first and says so.
TEST(WireCheck, DecodeEnvelopeRefusesBeforeParsing) {
  const std::string b = Bytes({0x08, 0x01, 0x52, 0xff, 0xff, 0xff, 0xff, 0x00, 0x30, 0x67, 0x62,
                               0xff, 0xff, 0xff, 0x23});
  auto e = DecodeEnvelope(reinterpret_cast<const uint8_t*>(b.data()), b.size());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(Msg(e.status()).find("field 10: length 268435455 runs past its end"), std::string::npos)
      << e.status();
}

}  // namespace
}  // namespace npa
