#include "hypervisor/daemon/guest_rss.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "hypervisor/daemon/dataplane.h"
#include "hypervisor/daemon/guest_registry.h"

namespace npa::agent {

absl::StatusOr<std::shared_ptr<const GuestRss>> GuestRss::FromConfig(const control::RssConfig& c,
                                                                     uint16_t queue_pairs) {
  if (c.key().size() != kRssKeyLen)
    return absl::InvalidArgumentError(
        absl::StrCat("rss_config.key has ", c.key().size(), " bytes; the Toeplitz key has ", kRssKeyLen));
  if (c.hash_types() == 0 || (c.hash_types() & ~kRssAllTypes))
    return absl::InvalidArgumentError(absl::StrCat(
        "rss_config.hash_types 0x", absl::Hex(c.hash_types()), ": want at least one of 0x",
        absl::Hex(kRssAllTypes), " and nothing else"));
  const size_t n = static_cast<size_t>(c.table_size());
  if (n == 0 || n > RssTable::kMaxEntries || (n & (n - 1)) != 0)
    return absl::InvalidArgumentError(absl::StrCat("rss_config.table has ", n,
                                                   " entries; want a power of two, 1..",
                                                   RssTable::kMaxEntries));
  std::vector<uint16_t> entries(n);
  for (size_t i = 0; i < n; i++) {
    if (c.table(static_cast<int>(i)) >= queue_pairs)
      return absl::InvalidArgumentError(absl::StrCat("rss_config.table[", i, "] is queue ",
                                                     c.table(static_cast<int>(i)), "; the guest has ",
                                                     queue_pairs, " queue pairs"));
    entries[i] = static_cast<uint16_t>(c.table(static_cast<int>(i)));
  }
  const auto* k = reinterpret_cast<const uint8_t*>(c.key().data());
  absl::StatusOr<RssHasher> h = RssHasher::Create({k, kRssKeyLen});
  if (!h.ok()) return h.status();
  absl::StatusOr<RssTable> t = RssTable::Create(entries, queue_pairs);
  if (!t.ok()) return t.status();
  return std::shared_ptr<const GuestRss>(new GuestRss(RssFunction(std::move(*h), *t, c.hash_types())));
}

uint16_t GuestRss::QueueOf(std::span<const uint8_t> frame, uint16_t fallback) const {
  return fn_.QueueOf(frame, fallback);
}

uint16_t GuestRss::QueueOf(const iovec* segs, uint16_t nsegs, uint16_t fallback) const {
  uint8_t buf[kGatherBytes];
  size_t have = 0;
  for (uint16_t i = 0; i < nsegs && have < sizeof buf; i++) {
    const size_t take = std::min(segs[i].iov_len, sizeof buf - have);
    memcpy(buf + have, segs[i].iov_base, take);
    have += take;
  }
  return QueueOf({buf, have}, fallback);
}

absl::Status ApplyRssConfig(const control::RssConfig& c, Guest& g, Dataplane* dp) {
  const uint64_t now = MonotonicMs();
  if (now - g.rss_window_ms >= 1000) {
    g.rss_window_ms = now;
    g.rss_in_window = 0;
  }
  if (++g.rss_in_window > kMaxRssConfigsPerSecond)
    return absl::ResourceExhaustedError(absl::StrCat("more than ", kMaxRssConfigsPerSecond,
                                                     " rss_config messages in a second; ignored"));
  absl::StatusOr<std::shared_ptr<const GuestRss>> rss = GuestRss::FromConfig(c, g.queue_pairs);
  if (!rss.ok()) {
    NPA_LOG(Warn, "control: guest %s: rss_config refused: %s", g.name.c_str(),
            std::string(rss.status().message()).c_str());
    return rss.status();
  }
  if (dp && g.in_dataplane) {
    if (absl::Status s = dp->SetGuestRss(g.id, *rss); !s.ok()) return s;
  }
  g.rss = std::move(*rss);
  NPA_LOG(Info, "control: guest %s: RX spread by its RSS table (%zu entries over %u queue pairs)",
          g.name.c_str(), g.rss->table().entries().size(), g.queue_pairs);
  return absl::OkStatus();
}

}  // namespace npa::agent
