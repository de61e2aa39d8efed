#include "common/wire_check.h"

#include "absl/strings/str_cat.h"

namespace npa {
namespace {

struct WireMessage {
  const char* name;
  uint32_t first, count;  // its message-typed fields in kWireSubs
};
struct WireSub {
  uint32_t field;    // field number
  uint32_t message;  // index into kWireMessages
};

#include "npa/control_wire_schema.inc"

constexpr uint32_t kNotAMessage = ~0u;

uint32_t SubMessage(uint32_t msg, uint64_t field) {
  const WireMessage& m = kWireMessages[msg];
  for (uint32_t i = m.first; i < m.first + m.count; i++)
    if (kWireSubs[i].field == field) return kWireSubs[i].message;
  return kNotAMessage;
}

// A varint of at most 10 bytes inside [p, end); false if it runs past end
// or is longer.
bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t* v) {
  uint64_t r = 0;
  for (int i = 0; i < 10 && p < end; i++) {
    const uint8_t b = *p++;
    r |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

absl::Status Bad(uint32_t msg, size_t off, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat(kWireMessages[msg].name, " at byte ", off, ": ", what));
}

absl::Status Walk(const uint8_t* base, const uint8_t* p, const uint8_t* end, uint32_t msg,
                  int depth) {
  if (depth > kMaxWireDepth)
    return Bad(msg, p - base, absl::StrCat("nested deeper than ", kMaxWireDepth));
  while (p < end) {
    const size_t at = p - base;
    uint64_t tag;
    if (!ReadVarint(p, end, &tag)) return Bad(msg, at, "a malformed tag");
    const uint64_t field = tag >> 3;
    if (field == 0) return Bad(msg, at, "field number 0");
    switch (tag & 7) {
      case 0: {  // varint
        uint64_t v;
        if (!ReadVarint(p, end, &v))
          return Bad(msg, at, absl::StrCat("field ", field, ": a malformed varint"));
        break;
      }
      case 1:  // fixed64
      case 5: {  // fixed32
        const size_t n = (tag & 7) == 1 ? 8 : 4;
        if (static_cast<size_t>(end - p) < n)
          return Bad(msg, at, absl::StrCat("field ", field, ": ", n, " bytes past the end"));
        p += n;
        break;
      }
      case 2: {  // length-delimited
        uint64_t n;
        if (!ReadVarint(p, end, &n))
          return Bad(msg, at, absl::StrCat("field ", field, ": a malformed length"));
        if (n > static_cast<uint64_t>(end - p))
          return Bad(msg, at, absl::StrCat("field ", field, ": length ", n, " runs past its end (",
                                           end - p, " bytes left)"));
        if (const uint32_t sub = SubMessage(msg, field); sub != kNotAMessage) {
          if (absl::Status s = Walk(base, p, p + n, sub, depth + 1); !s.ok()) return s;
        }
        p += n;
        break;
      }
      default:  // 3, 4: groups (npa uses none); 6, 7: not wire types
        return Bad(msg, at, absl::StrCat("field ", field, ": wire type ", tag & 7,
                                         " (groups and unknown types are refused)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckWireLengths(const uint8_t* data, size_t len, absl::string_view root) {
  uint32_t msg = kNotAMessage;
  for (uint32_t i = 0; i < sizeof kWireMessages / sizeof kWireMessages[0]; i++)
    if (root == kWireMessages[i].name) msg = i;
  if (msg == kNotAMessage)
    return absl::InvalidArgumentError(absl::StrCat("no message type '", root, "' in control.proto"));
  if (len > 0 && data == nullptr) return absl::InvalidArgumentError("no data");
  return Walk(data, data, data + len, msg, 0);
}

}  // namespace npa
