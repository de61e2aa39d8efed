#include "shell/rss_rx.h"

#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace npa::shell {

// The API's hash-type bits are VIRTIO's, which common/rss.h uses as well.
static_assert(NPA_RSS_HASH_IPV4 == kRssIpv4 && NPA_RSS_HASH_TCPV4 == kRssTcpv4 &&
              NPA_RSS_HASH_UDPV4 == kRssUdpv4 && NPA_RSS_HASH_IPV6 == kRssIpv6 &&
              NPA_RSS_HASH_TCPV6 == kRssTcpv6 && NPA_RSS_HASH_UDPV6 == kRssUdpv6);
static_assert(NPA_RSS_KEY_LEN == kRssKeyLen && NPA_RSS_TABLE_MAX == RssTable::kMaxEntries);

absl::StatusOr<std::unique_ptr<const RssRx>> RssRx::Create(const npa_rss_config* cfg,
                                                           uint16_t nqp) {
  if (nqp == 0) return absl::InvalidArgumentError("RSS: no queues");
  if (cfg == nullptr)
    return std::unique_ptr<const RssRx>(new RssRx(RssFunction(RssHasher(), RssTable(nqp), kRssAllTypes)));
  if (cfg->struct_size < sizeof(npa_rss_config))
    return absl::InvalidArgumentError(absl::StrCat("RSS: struct_size ", cfg->struct_size, " < ",
                                                   sizeof(npa_rss_config)));
  if (cfg->hash_types & ~kRssAllTypes)
    return absl::InvalidArgumentError(
        absl::StrCat("RSS: unknown hash_types bits 0x", absl::Hex(cfg->hash_types & ~kRssAllTypes)));
  if (cfg->reserved0 != 0) return absl::InvalidArgumentError("RSS: reserved0 must be zero");
  const uint32_t types = cfg->hash_types ? cfg->hash_types : kRssAllTypes;

  RssHasher hasher;
  if (cfg->key_len != 0 || cfg->key != nullptr) {
    if (cfg->key == nullptr || cfg->key_len != NPA_RSS_KEY_LEN)
      return absl::InvalidArgumentError(absl::StrCat(
          "RSS: key_len ", cfg->key_len, " with key ", cfg->key ? "set" : "NULL", " (want ",
          NPA_RSS_KEY_LEN, " bytes and a key, or 0 and NULL for the default key)"));
    auto h = RssHasher::Create(std::span<const uint8_t>(cfg->key, cfg->key_len));
    if (!h.ok()) return h.status();
    hasher = std::move(*h);
  }

  RssTable table(nqp);
  if (cfg->table_len != 0 || cfg->table != nullptr) {
    if (cfg->table == nullptr || cfg->table_len == 0 || cfg->table_len > NPA_RSS_TABLE_MAX ||
        (cfg->table_len & (cfg->table_len - 1)) != 0)
      return absl::InvalidArgumentError(absl::StrCat(
          "RSS: table_len ", cfg->table_len, " with table ", cfg->table ? "set" : "NULL",
          " (want a power of two in 1..", NPA_RSS_TABLE_MAX, " and a table, or 0 and NULL)"));
    for (uint16_t i = 0; i < cfg->table_len; i++)
      if (cfg->table[i] >= nqp)
        return absl::InvalidArgumentError(absl::StrCat("RSS: table[", i, "] = ", cfg->table[i],
                                                       ", not a queue (", nqp, " queue pairs)"));
    auto t = RssTable::Create(std::span<const uint16_t>(cfg->table, cfg->table_len), nqp);
    if (!t.ok()) return t.status();
    table = *t;
  }
  return std::unique_ptr<const RssRx>(new RssRx(RssFunction(std::move(hasher), table, types)));
}

void RssRx::Apply(npa_buf** bufs, uint16_t n) const {
  for (uint16_t i = 0; i < n; i++) {
    npa_buf* b = bufs[i];
    // The headers are in the first segment on every path (a device or back
    // end that split them would give a frame with nothing to hash here).
    const std::span<const uint8_t> frame(static_cast<const uint8_t*>(npa_buf_data(b)), b->data_len);
    if (fn_.Hash(frame, &b->rss_hash)) {
      b->ol_flags |= NPA_BUF_OL_RX_RSS_HASH;
    } else {
      b->rss_hash = 0;
      b->ol_flags &= ~NPA_BUF_OL_RX_RSS_HASH;
    }
  }
}

}  // namespace npa::shell
