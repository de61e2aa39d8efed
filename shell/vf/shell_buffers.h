// shell/vf/shell_buffers.h — the packet buffers a VF's plug-in gets
// (npa_services buf_alloc/buf_free, through the BufferProvider of
// vf_services.h), over the shell's per-queue pools.
//
// Where a buffer comes from depends on who calls:
//   - queue qid's owning thread, in a fast op during npa_*_burst: qid's
//     pool, which only that thread touches — no lock, no atomic RMW;
//   - the control path, inside a plug-in control op: qid's stash (under
//     stash_mu, shell_impl.h), because the pool belongs to the owner, which
//     may be bursting on the emulated path at that very moment. The owner
//     keeps the stash at about one device ring (QueueState::ApplySwitch).
// The control path says which by opening a ControlCall for exactly the span
// of its control ops; while one is open every call uses the stash. The
// switch protocol makes that span one in which no fast op of the plug-in
// runs (the queues are off the VF, or not yet on it), so the owner thread
// does not call in then; if it did, the stash would serve it correctly,
// only slower.
//
//   ShellBuffers bufs(sh->queues.get(), nqp);        // npa_shell_configure
//   {
//     ShellBuffers::ControlCall call(bufs);          // the control thread
//     NPA_RETURN_IF_ERROR(vf->Start());              // RX rings filled from the stash
//   }
//
// A TX frame coming back through Free is cleared from the queue's TxTracker
// either way; FreeTx (buf_free_tx) lowers the tracker's count instead when
// the plug-in is a counted one (NPA_PLUGIN_F_TX_FREE), else is Free. Every freed segment is checked against the pools' state map
// (shell/buf_pool.h) either way: a buffer freed twice is counted (the
// pool's bad_frees on the owner thread, bad_frees() here on the control
// path) and is never on a free stack or in a stash twice; stash entries are
// kStashed, so the pool refuses them as well.
//
// Threads: Alloc/Free from queue qid's owning thread (fast ops) and from
// the control path (control ops, under npa_shell::vf_mu; vf_switch.h says
// which thread that is); ControlCalls are opened only by the control path.
// Ownership: the queues (npa_shell::queues) must outlive this object; one
// per shell with a control session, made by npa_shell_configure.
#ifndef NPA_SHELL_VF_SHELL_BUFFERS_H_
#define NPA_SHELL_VF_SHELL_BUFFERS_H_

#include <atomic>
#include <cstdint>

#include "npa/buf.h"
#include "shell/vf/vf_services.h"

namespace npa::shell {

struct QueueState;  // shell_impl.h

class ShellBuffers final : public BufferProvider {
 public:
  ShellBuffers(QueueState* queues, uint16_t nb_queue_pairs)
      : queues_(queues), nqp_(nb_queue_pairs) {}

  // Scope of a plug-in control op called by the control path. Nests.
  class [[nodiscard]] ControlCall {
   public:
    explicit ControlCall(ShellBuffers& b) : b_(b) {
      b_.control_calls_.fetch_add(1, std::memory_order_relaxed);
    }
    ~ControlCall() { b_.control_calls_.fetch_sub(1, std::memory_order_relaxed); }
    ControlCall(const ControlCall&) = delete;
    ControlCall& operator=(const ControlCall&) = delete;

   private:
    ShellBuffers& b_;
  };

  bool in_control_call() const { return control_calls_.load(std::memory_order_relaxed) != 0; }

  uint16_t Alloc(uint16_t qid, npa_buf** bufs, uint16_t n) override;
  void Free(uint16_t qid, npa_buf** bufs, uint16_t n) override;
  void FreeTx(uint16_t qid, npa_buf** bufs, uint16_t n) override;

  // Segments the control path refused to stash (not a buffer of the shell,
  // not at a slot start, or not out of the pools: a double free). The owner
  // thread's refusals are in its pool's bad_frees().
  uint64_t bad_frees() const { return bad_frees_.load(std::memory_order_relaxed); }

 private:
  QueueState* const queues_;
  const uint16_t nqp_;
  // Open ControlCalls. Relaxed: the control thread reads its own writes, and
  // an owner thread that saw a stale value would still be served correctly
  // (pool: its own; stash: locked).
  std::atomic<uint32_t> control_calls_{0};
  std::atomic<uint64_t> bad_frees_{0};

  // Into qid's pool (owner thread) or its stash (control path). The pool
  // case is inlined into Free and FreeTx (every completion on the fast
  // path); the stash case is a call.
  void Release(QueueState& q, npa_buf** bufs, uint16_t n);
  void Stash(QueueState& q, npa_buf** bufs, uint16_t n);
};

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_SHELL_BUFFERS_H_
