/*
 * pingpong_core: the measuring half of the latency benchmark
 * (scripts/bench-latency.sh), shared by its two front ends so that npa and
 * DPDK are timed by the same code:
 *   tests/bench/npa_bench_pingpong.cc   libnpa_shell (emulated path)
 *   tests/bench/dpdk_pingpong.c         DPDK net_virtio_user
 * A front end only moves frames (pp_io); this file builds the timestamped
 * frames, paces them, waits for each echo (busy polling, or sleeping on the
 * queue's interrupt fd), and reports percentiles and its own CPU time.
 *
 * Method. Back to back (rate 0, closed loop): one frame in flight; frame i
 * is sent as soon as echo i-1 came back; its echo is matched by sequence
 * number. Paced (rate > 0, open loop): frame i leaves at t0 + i/rate whether
 * or not earlier echoes are back (a late wake-up sends at once and keeps
 * the schedule), so the offered load is the rate even when a wake-up is
 * slow; between sends the front end polls, or sleeps on its
 * interrupt fd until an echo or the next send time. Either way each frame
 * carries its send time and one-way latency = round trip / 2. The first
 * `warmup` frames are not kept. An echo that does not come back within
 * echo_timeout_ms is lost; an echo that comes back after that, or twice,
 * is counted stale and dropped, so every frame sent is accounted for.
 *
 * C, so that the DPDK front end (C, built against DPDK's headers) and the
 * npa one (C++) link the same object.
 */
#ifndef NPA_TESTS_BENCH_PINGPONG_CORE_H_
#define NPA_TESTS_BENCH_PINGPONG_CORE_H_

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ethernet (14) + magic (4) + sequence (8) + send time (8), padded to size. */
#define PP_HDR_LEN 34u
#define PP_ETHERTYPE 0x88b5u /* IEEE local experimental */
#define PP_MAGIC 0x6e706170u /* "npap" */

/* Called by pp_io.rx for every frame it received; the frame is only valid
 * during the call. */
typedef void (*pp_frame_fn)(void *st, const uint8_t *data, uint32_t len);

typedef struct pp_io {
  void *ctx;
  /* Transmit one frame of len bytes (copy it into a buffer of yours).
   * 1 sent, 0 ring full (try again), < 0 -errno. */
  int (*tx)(void *ctx, const uint8_t *frame, uint32_t len);
  /* Poll RX once: on_frame(st, ...) for each frame, then free them.
   * Returns frames seen (>= 0) or -errno. */
  int (*rx)(void *ctx, pp_frame_fn on_frame, void *st);
  /* Interrupt mode only (NULL otherwise): arm (1) or disarm (0) the RX
   * interrupt; sleep until it fires or timeout_ns passes (1 woken, 0
   * timeout, < 0 -errno), acknowledging it. Nanoseconds: a paced sender
   * sleeps for less than a millisecond between frames. */
  int (*arm)(void *ctx, int enable);
  int (*sleep)(void *ctx, uint64_t timeout_ns);
} pp_io;

typedef struct pp_options {
  int intr;                 /* 0 busy-poll, 1 sleep on the interrupt fd */
  double rate;              /* frames/s when paced; 0 = back to back */
  uint64_t count;           /* round trips to keep (after warm-up); paced: frames to send */
  uint64_t warmup;          /* round trips not kept */
  double seconds;           /* stop the kept part after this long (0 = no limit) */
  uint32_t size;            /* frame bytes, PP_HDR_LEN..1514 */
  uint32_t echo_timeout_ms; /* an echo later than this is lost */
  uint8_t src_mac[6];
} pp_options;

typedef struct pp_result {
  /* wakeups: sleeps ended by the interrupt (also when it fired before the
   * sleep began: vol_ctx_switches tells how often the thread really slept);
   * late_sends: paced frames sent more than a period after their time. */
  uint64_t sent, kept, lost, stale, tx_full_spins, wakeups, spurious, late_sends;
  uint64_t p50_ns, p90_ns, p99_ns, p999_ns, min_ns, max_ns, mean_ns; /* one-way */
  double wall_s;            /* the kept part */
  double cpu_pct;           /* this process's user+sys time over wall_s, % of one CPU */
  uint64_t vol_ctx_switches;
} pp_result;

/* Option parsing shared by both front ends: returns 1 if argv[*i] was one of
 * --mode poll|intr, --rate, --count, --warmup, --seconds, --size,
 * --echo-timeout-ms (advancing *i past its value), 0 if not ours, -1 on a
 * bad value (message printed, prefixed with prog). */
int pp_parse_option(const char *prog, int argc, char **argv, int *i, pp_options *o);
void pp_options_default(pp_options *o);
extern const char pp_options_help[];

/* Runs the benchmark. Prints "measuring <unix_time>" on stdout when the
 * warm-up is over. Returns 0, or -errno when the I/O failed (the partial
 * result is still filled). stop: checked every round trip (signal flag). */
int pp_run(const pp_io *io, const pp_options *o, volatile int *stop, pp_result *r);

/* One JSON object on one line (the script's input), with "impl" and the
 * options, e.g. {"bench":"pingpong","impl":"npa","mode":"poll",...}. */
void pp_print_json(FILE *f, const char *impl, const pp_options *o, const pp_result *r);

/* Pins the calling thread to cpu (>= 0). 0 or -errno. */
int pp_pin(int cpu);

#ifdef __cplusplus
}
#endif

#endif /* NPA_TESTS_BENCH_PINGPONG_CORE_H_ */
