// shell/rss_rx.h — NPA_OFFLOAD_RSS_HASH: the shell hashes every received
// frame itself, after the active path's RX burst, with one configuration
// (key, hash types, indirection table) for all paths. A frame therefore gets
// the same hash on the emulated path and on every VF, and across switches,
// whatever each device would compute (a plug-in's hardware hash, when it
// has one, is overwritten: the point is one answer everywhere). A VF
// plug-in with hardware RSS is given this configuration too (VfPath::SetRss,
// npa/plugin.h rss_set), which decides only the queue the device fills.
//
//   NPA_ASSIGN_OR_RETURN(auto rss, RssRx::Create(&cfg, nb_queue_pairs));
//   uint16_t n = ops.rx(ctx, bufs, 32, &c);
//   if (n) rss->Apply(bufs, n);          // sets rss_hash + NPA_BUF_OL_RX_RSS_HASH
//   uint16_t q = rss->Queue(bufs[0]->rss_hash);
//
// Cost: the tuple parse plus one table load and XOR per input byte (12 for
// UDP/TCP over IPv4, 36 over IPv6; common/rss.h), about 180 instructions
// per UDP/IPv4 frame in all, only on queues whose shell was configured with
// the offload; without it the burst pays one load and a predicted branch
// per call (npa_rx_burst).
//
// Threads and lifetime: immutable once created. The shell publishes a new
// one to each queue through the queue's staging (shell_impl.h: a queue takes
// it at its owner's next burst) and keeps the ones it replaced until every
// queue has acknowledged a later staging, so an owner never reads a freed
// configuration.
#ifndef NPA_SHELL_RSS_RX_H_
#define NPA_SHELL_RSS_RX_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "common/rss.h"
#include "npa/buf.h"
#include "npa/shell.h"

namespace npa::shell {

class RssRx {
 public:
  // cfg NULL: the defaults (standard key, every type, NPA_RSS_TABLE_MAX
  // entries round robin over nb_queue_pairs). kInvalidArgument names the
  // field that is wrong: struct_size, hash_types, reserved0, key_len/key,
  // table_len/table, or an entry >= nb_queue_pairs.
  static absl::StatusOr<std::unique_ptr<const RssRx>> Create(const npa_rss_config* cfg,
                                                             uint16_t nb_queue_pairs);

  // Owner thread, right after an RX burst: hash each frame's first segment.
  void Apply(npa_buf** bufs, uint16_t n) const;

  uint16_t Queue(uint32_t hash) const { return fn_.Queue(hash); }
  const RssTable& table() const { return fn_.table(); }
  uint32_t types() const { return fn_.types(); }
  const RssHasher& hasher() const { return fn_.hasher(); }

 private:
  explicit RssRx(RssFunction fn) : fn_(std::move(fn)) {}
  RssFunction fn_;
};

}  // namespace npa::shell

#endif  // NPA_SHELL_RSS_RX_H_
