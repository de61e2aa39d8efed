/*
 * npa/shell.hpp — header-only C++ RAII wrapper over npa/shell.h.
 *
 * Usage:
 *
 *   npa::Shell sh;
 *   npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
 *   oa.control_path = "/run/npa/guest0.ctl";
 *   if (int rc = npa::Shell::Open(oa, &sh); rc < 0) {
 *     fprintf(stderr, "open: %s\n", sh.last_error());   // or npa_shell_last_error(NULL)
 *     return 1;
 *   }
 *   npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
 *   qc.nb_queue_pairs = 2;
 *   if (sh.Configure(qc) < 0 || sh.Start() < 0) { ... sh.last_error() ... }
 *   npa_buf* b[32];
 *   uint16_t n = sh.RxBurst(0, b, 32);
 *   uint16_t s = sh.TxBurst(0, b, n);
 *   sh.Free(0, b + s, n - s);
 *   // ~Shell() closes the shell (npa_shell_close).
 *
 * Depends only on npa/shell.h and the standard library, so guest drivers do
 * not need Abseil. Errors are the C API's: a negative errno from the call,
 * and last_error() for the words (valid until this thread's next npa call).
 * The burst calls are inline forwards: no cost over the C API.
 *
 * Threads: those of npa/shell.h. RxBurst, TxBurst, Alloc, Free, IntrEnable
 * and IntrAck for queue q from q's owning thread only; the other calls from
 * any thread. The Shell object itself is a handle, not a lock: do not move,
 * Reset or destroy it while another thread still uses it (destroying it is
 * npa_shell_close).
 */
#ifndef NPA_SHELL_HPP_
#define NPA_SHELL_HPP_

#include <cstdint>
#include <utility>

#include "npa/shell.h"

namespace npa {

class Shell {
 public:
  Shell() = default;
  // Takes ownership of an already open handle.
  explicit Shell(npa_shell* sh) : sh_(sh) {}
  Shell(Shell&& o) noexcept : sh_(std::exchange(o.sh_, nullptr)) {}
  Shell& operator=(Shell&& o) noexcept {
    if (this != &o) Reset(std::exchange(o.sh_, nullptr));
    return *this;
  }
  Shell(const Shell&) = delete;
  Shell& operator=(const Shell&) = delete;
  ~Shell() { Reset(); }

  // Opens a shell into *out (closing what *out held). 0 or -errno.
  static int Open(const npa_shell_open_args& args, Shell* out) {
    npa_shell* sh = nullptr;
    int rc = npa_shell_open(&args, &sh);
    if (rc == 0) out->Reset(sh);
    return rc;
  }

  int Configure(const npa_shell_queue_config& qc) { return npa_shell_configure(sh_, &qc); }
  int Start() { return npa_shell_start(sh_); }
  int Stop() { return npa_shell_stop(sh_); }

  uint16_t RxBurst(uint16_t q, npa_buf** b, uint16_t n) { return npa_rx_burst(sh_, q, b, n); }
  uint16_t TxBurst(uint16_t q, npa_buf** b, uint16_t n) { return npa_tx_burst(sh_, q, b, n); }
  uint16_t Alloc(uint16_t q, npa_buf** b, uint16_t n) { return npa_buf_alloc(sh_, q, b, n); }
  void Free(uint16_t q, npa_buf** b, uint16_t n) { npa_buf_free(sh_, q, b, n); }

  int IntrFd(uint16_t q) { return npa_queue_intr_fd(sh_, q); }
  int IntrEnable(uint16_t q, bool on) { return npa_queue_intr_enable(sh_, q, on ? 1 : 0); }
  int IntrAck(uint16_t q) { return npa_queue_intr_ack(sh_, q); }

  // Stats of one queue, or of all queues with q == UINT16_MAX.
  int Stats(uint16_t q, npa_queue_stats* out) {
    out->struct_size = sizeof *out;
    return npa_shell_queue_stats(sh_, q, out);
  }
  int Info(npa_shell_info* out) {
    out->struct_size = sizeof *out;
    return npa_shell_get_info(sh_, out);
  }
  int EventFd() { return npa_shell_event_fd(sh_); }
  // 1: *ev filled; 0: none; -errno.
  int NextEvent(npa_event* ev) {
    ev->struct_size = sizeof *ev;
    return npa_shell_next_event(sh_, ev);
  }

  const char* last_error() const { return npa_shell_last_error(sh_); }
  npa_shell* get() const { return sh_; }
  explicit operator bool() const { return sh_ != nullptr; }
  // Gives up ownership without closing.
  npa_shell* release() { return std::exchange(sh_, nullptr); }
  void Reset(npa_shell* sh = nullptr) {
    if (sh_ != nullptr) npa_shell_close(sh_);
    sh_ = sh;
  }

 private:
  npa_shell* sh_ = nullptr;
};

}  // namespace npa

#endif  /* NPA_SHELL_HPP_ */
