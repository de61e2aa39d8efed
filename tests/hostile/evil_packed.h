// tests/hostile/evil_packed.h — the hostile front end's packed-ring attacks
// (VIRTIO 1.1 §2.8): a packed handshake, then one broken rule on the TX ring
// (descriptor outside memory, wrap counter flipped, a chain that never ends,
// a chain into a stale slot, a writable TX descriptor, INDIRECT, a base past
// the ring), and the legal-but-expensive chains of zero-length descriptors
// posted lap after lap. Listed by Attacks() (evil_frontend.h) after the
// split-ring ones.
#ifndef NPA_TESTS_HOSTILE_EVIL_PACKED_H_
#define NPA_TESTS_HOSTILE_EVIL_PACKED_H_

#include <span>

#include "tests/hostile/evil_frontend.h"

namespace npa::agent::evil {

std::span<const Attack> PackedAttacks();

}  // namespace npa::agent::evil

#endif  // NPA_TESTS_HOSTILE_EVIL_PACKED_H_
