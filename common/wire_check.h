// common/wire_check.h — a bound on what a protobuf parse of peer bytes may
// allocate, checked before the parse.
//
// Why: protobuf 3.21 (Debian 12's) reserves up to 50 MB for a string or
// bytes field whose declared length runs past the end of the input when it
// sits inside a sub-message whose own declared length already did (the
// parser's limit is then beyond the buffer). A 15-byte control frame from a
// guest made npa-agent map and unmap 50 MB (found by the migration_state
// fuzzer, as a timeout: 48 ms a parse under ASan, 0.3 ms without). A parse
// of such bytes fails anyway; this check fails it first, naming the field.
//
//   absl::Status s = CheckWireLengths(data, len, "npa.control.Envelope");
//   if (!s.ok()) return s;          // "field 10 (length 268435455) ..."
//   env.ParseFromArray(data, len);   // every length fits its parent
//
// What it checks, walking the wire format (protobuf encoding spec) with the
// schema of include/npa/control.proto (control_wire_schema.inc, generated
// at build time from protoc's descriptor set; the lite runtime has no
// descriptors): every tag and varint is well formed (at most 10 bytes);
// fixed 32/64-bit values and every length-delimited field fit inside their
// parent; the fields the schema says are messages are checked the same way,
// to a depth of kMaxWireDepth (control.proto has no recursive type, so no
// input of it nests that deep: the bound is for a schema that one day
// does); groups (wire types 3 and 4, unused by npa)
// are refused. Unknown fields are skipped by their wire type, their length
// bounded like any other. It does not decide whether the bytes are a valid
// message: the parse that follows does.
//
// Errors: InvalidArgument naming the message type, the field number and the
// byte offset. Thread-safe (no state). Cost: one pass over the bytes.
#ifndef NPA_COMMON_WIRE_CHECK_H_
#define NPA_COMMON_WIRE_CHECK_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace npa {

// Protobuf's own default recursion limit.
inline constexpr int kMaxWireDepth = 100;

// root: the full name of the message type the bytes claim to be
// ("npa.control.Envelope"); an unknown name is InvalidArgument too.
absl::Status CheckWireLengths(const uint8_t* data, size_t len, absl::string_view root);

}  // namespace npa

#endif  // NPA_COMMON_WIRE_CHECK_H_
