// libFuzzer target: the migration state decoder
// (hypervisor/migration/migration_state.h DecodeMigrationState), which reads
// what another host's agent sent. Any input: an error or a state that passes
// the structural check; an accepted state re-encodes to bytes that decode to
// the same state (the encoder is deterministic).
#include <cstdint>
#include <string>

#include "hypervisor/migration/migration_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<npa::control::MigrationState> s = npa::migration::DecodeMigrationState(data, size);
  if (!s.ok()) return 0;
  if (!npa::migration::CheckMigrationState(*s).ok()) __builtin_trap();
  const std::string again = npa::migration::EncodeMigrationState(*s);
  auto d = npa::migration::DecodeMigrationState(reinterpret_cast<const uint8_t*>(again.data()),
                                                again.size());
  if (!d.ok() || d->SerializeAsString() != s->SerializeAsString()) __builtin_trap();
  return 0;
}
