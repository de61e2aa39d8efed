// common/announce.h — the frame that tells a learning switch where a MAC now
// lives. The shell sends it through a VF it has just switched to; the agent
// sends it on its uplink when a guest falls back to the emulated path and
// after a migration (docs/migration.md has the schedule).
//
// It is a RARP "request reverse" (RFC 903), as QEMU and VMware send after a
// migration: the source MAC is the guest's and the destination broadcast, so
// every bridge on the way learns the port, and no host answers it (nobody
// runs RARP servers), so it costs the network nothing.
//
//   std::array<uint8_t, kAnnounceFrameLen> f = BuildRarpAnnounce(mac);
//   write(tap_fd, f.data(), f.size());
//
// Pure, no allocation; any thread.
#ifndef NPA_COMMON_ANNOUNCE_H_
#define NPA_COMMON_ANNOUNCE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace npa {

// Ethernet minimum without FCS: 14 header + 28 RARP + 18 padding.
inline constexpr size_t kAnnounceFrameLen = 60;
inline constexpr uint16_t kEtherTypeRarp = 0x8035;

std::array<uint8_t, kAnnounceFrameLen> BuildRarpAnnounce(std::span<const uint8_t, 6> mac);

// True if `frame` is such an announcement; *mac gets the announced MAC.
bool ParseRarpAnnounce(std::span<const uint8_t> frame, std::array<uint8_t, 6>* mac);

}  // namespace npa

#endif  // NPA_COMMON_ANNOUNCE_H_
