// QueueState (shell_impl.h): how a path switch reaches a queue's owner.
// The control thread stages the new ops under stage_mu and raises
// switch_pending; the owner applies them at the top of its next burst
// (ApplySwitch), so the fast path never takes a lock.
#include "shell/shell_impl.h"

#include <unistd.h>

#include <cstring>
#include <mutex>
#include <span>

#include "common/announce.h"

namespace npa::shell {

void QueueState::Publish(absl::FunctionRef<void()> set) {
  {
    std::lock_guard<std::mutex> l(stage_mu);
    set();
    // Release: what was staged is complete before the owner can see the flag.
    switch_pending.store(1, std::memory_order_release);
  }
  // An owner asleep in interrupt mode wakes, bursts once and so applies it.
  if (wake) {
    uint64_t one = 1;
    ssize_t r = ::write(wake.get(), &one, sizeof one);
    (void)r;
  }
}

void QueueState::Stage(const QueueOps& o, npa::shell::Path* intr, bool announce) {
  Publish([&] {
    staged = o;
    staged_intr = intr;
    staged_announce = announce;
  });
}

void QueueState::StageRss(const RssRx* r) {
  Publish([&] {
    staged_rss = r;
    rss_staged = true;
  });
}

void QueueState::SendAnnounce() {
  // Off the fast path: only right after a switch was applied. The frame
  // goes through the new path's own burst with scratch counters, so the
  // application's TX counters do not see it; a plug-in frees it to this
  // pool on completion like any frame.
  npa_buf* b = nullptr;
  if (pool.Alloc(&b, 1) != 1) return;
  const auto f = npa::BuildRarpAnnounce(std::span<const uint8_t, 6>(mac, 6));
  memcpy(npa_buf_data(b), f.data(), f.size());
  b->data_len = static_cast<uint16_t>(f.size());
  b->pkt_len = static_cast<uint32_t>(f.size());
  QueueCounters scratch;
  // Before the call: a plug-in that counts TX bytes itself counts these
  // inside it (shell_impl.h FoldVfTxBytes).
  announce_bytes.store(announce_bytes.load(std::memory_order_relaxed) + f.size(),
                       std::memory_order_release);
  if (ops.tx(ops.tx_ctx, &b, 1, &scratch) == 1) {
    QueueCounters::Add(announces, 1);
  } else {
    announce_bytes.store(announce_bytes.load(std::memory_order_relaxed) - f.size(),
                         std::memory_order_release);
    pool.Free(&b, 1);
  }
}

void QueueState::ApplySwitch() {
  std::lock_guard<std::mutex> l(stage_mu);
  ops = staged;
  if (rss_staged) {
    rss = staged_rss;
    rss_staged = false;
  }
  const bool announce = staged_announce;
  staged_announce = false;
  if (staged_intr != nullptr && staged_intr != intr_path) {
    intr_path = staged_intr;
    // The new path's RX interrupt follows the application's mode (the
    // plug-in's rx_intr_enable is a fast op: this thread's to call).
    if (intr_enabled) intr_path->SetInterrupt(qid, true);
  }
  // Keep about one device ring of buffers in the stash for the plug-in's
  // control-thread buf_alloc (lock order: stage_mu, then stash_mu).
  {
    std::lock_guard<std::mutex> s(stash_mu);
    if (stash.size() > stash_target) {
      size_t extra = stash.size() - stash_target;
      // One segment each: stash entries are single slots whose stale `next`
      // must not be followed.
      for (size_t i = 0; i < extra; i++) pool.FreeStashed(stash[stash_target + i]);
      stash.resize(stash_target);
    } else if (stash.size() < stash_target && pool.available() > 2 * stash_target) {
      size_t want = stash_target - stash.size();
      size_t old = stash.size();
      stash.resize(stash_target);
      uint32_t got = pool.AllocStashed(stash.data() + old, static_cast<uint32_t>(want));
      stash.resize(old + got);
    }
  }
  if (announce) SendAnnounce();
  switch_pending.store(0, std::memory_order_release);  // the owner's ack
}

}  // namespace npa::shell
