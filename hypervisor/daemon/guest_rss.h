// hypervisor/daemon/guest_rss.h — the agent's side of NPA_OFFLOAD_RSS_HASH:
// a guest's RSS configuration (control::RssConfig, sent by its shell) turned
// into the RX queue each frame for that guest goes to. The hash and table
// are the shell's own (common/rss.h), so the queue the agent picks is the
// queue the guest's table names for the frame's flow, on every path and
// across switches and migrations (the shell sends the configuration again
// after each reconnect).
//
//   auto rss = GuestRss::FromConfig(env.rss_config(), guest_queue_pairs);
//   if (!rss.ok()) reply MALFORMED with rss.status().message();
//   dp->SetGuestRss(guest_id, *rss);
//   ...                                              // dataplane thread
//   uint16_t q = rss->QueueOf(frame_bytes, fallback_q);
//
// Errors (kInvalidArgument) name the field: key (length), hash_types (none,
// or unknown bits), table (size, or an entry >= queue_pairs).
// Threads: immutable once built; the dataplane reads it while the control
// thread may publish a newer one (Dataplane::SetGuestRss, a snapshot).
#ifndef NPA_HYPERVISOR_DAEMON_GUEST_RSS_H_
#define NPA_HYPERVISOR_DAEMON_GUEST_RSS_H_

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "common/rss.h"
#include "include/npa/control.pb.h"

namespace npa::agent {

class GuestRss {
 public:
  static absl::StatusOr<std::shared_ptr<const GuestRss>> FromConfig(const control::RssConfig& c,
                                                                    uint16_t queue_pairs);

  // The queue for a frame whose first bytes are `frame` (at least the
  // headers ExtractRssTuple reads; fewer is fine, it checks). `fallback`
  // when the frame has nothing to hash (not IP, or no enabled type).
  uint16_t QueueOf(std::span<const uint8_t> frame, uint16_t fallback) const;
  // The same over a frame in segments (the switch's checked segments): the
  // first kGatherBytes are gathered into a local copy first.
  static constexpr size_t kGatherBytes = 14 + 4 + 40 + 4;  // Ethernet, a VLAN tag, IPv6, ports
  uint16_t QueueOf(const iovec* segs, uint16_t nsegs, uint16_t fallback) const;

  const RssTable& table() const { return fn_.table(); }
  uint32_t types() const { return fn_.types(); }

 private:
  explicit GuestRss(RssFunction fn) : fn_(std::move(fn)) {}
  RssFunction fn_;  // the shell's own function (common/rss.h), from its configuration
};

struct Guest;
class Dataplane;

// The control thread's handling of a guest's RssConfig: validated against
// the guest's queue pairs (its Hello), kept on the guest (g.rss, given to
// the dataplane whenever the guest is added to it) and, if the guest is in
// the dataplane now, published to it. kInvalidArgument naming the field
// (the caller answers MALFORMED), or kResourceExhausted past
// kMaxRssConfigsPerSecond (LIMIT: each one builds a 36 KiB hasher on the
// control thread that every guest shares); either way nothing changes.
inline constexpr uint32_t kMaxRssConfigsPerSecond = 16;
absl::Status ApplyRssConfig(const control::RssConfig& c, Guest& g, Dataplane* dp);

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_GUEST_RSS_H_
