/* pingpong_core: see pingpong_core.h. */
#define _GNU_SOURCE
#include "pingpong_core.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Round trips in a row with no echo before the run is given up: a back end
 * that is gone would otherwise cost echo_timeout_ms per remaining frame. */
#define PP_MAX_LOST_IN_A_ROW 20u
/* Paced: how far (in periods) the sender may fall behind its schedule and
 * still catch up. */
#define PP_MAX_BEHIND 10u
/* The most samples kept (8 bytes each). */
#define PP_MAX_COUNT 20000000ull

const char pp_options_help[] =
    "  --mode poll|intr      busy-poll RX, or sleep on the queue's interrupt fd\n"
    "                        between frames (default poll)\n"
    "  --rate PPS            paced: one frame every 1/PPS s (default 0: back to back)\n"
    "  --count N             round trips kept (default 100000)\n"
    "  --warmup N            round trips first, not kept (default 2000)\n"
    "  --seconds S           end the kept part after S s even if short of --count\n"
    "                        (default 0: no limit)\n"
    "  --size N              frame bytes, 60..1514 (default 64)\n"
    "  --echo-timeout-ms N   an echo later than this is lost (default 1000)\n";

static uint64_t MonoNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double RealS(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double CpuS(uint64_t *vol_cs) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru); /* every thread: the shell's and EAL's too */
  if (vol_cs) *vol_cs = (uint64_t)ru.ru_nvcsw;
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void pp_options_default(pp_options *o) {
  memset(o, 0, sizeof *o);
  o->count = 100000;
  o->warmup = 2000;
  o->size = 64;
  o->echo_timeout_ms = 1000;
  o->src_mac[0] = 0x02;
}

static int ParseU64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int ParseDouble(const char *s, double lo, double hi, double *out) {
  char *end = NULL;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

int pp_parse_option(const char *prog, int argc, char **argv, int *i, pp_options *o) {
  const char *a = argv[*i];
  static const char *const kWithValue[] = {"--mode", "--rate", "--count", "--warmup",
                                           "--seconds", "--size", "--echo-timeout-ms"};
  size_t k, n = sizeof kWithValue / sizeof kWithValue[0];
  for (k = 0; k < n; k++)
    if (strcmp(a, kWithValue[k]) == 0) break;
  if (k == n) return 0;
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: %s needs a value\n", prog, a);
    return -1;
  }
  const char *v = argv[++*i];
  uint64_t u = 0;
  int bad = 0;
  if (k == 0) {
    if (strcmp(v, "poll") == 0) o->intr = 0;
    else if (strcmp(v, "intr") == 0) o->intr = 1;
    else bad = 1;
  } else if (k == 1) {
    bad = ParseDouble(v, 0, 10e6, &o->rate);
  } else if (k == 2) {
    bad = ParseU64(v, 1, PP_MAX_COUNT, &o->count);
  } else if (k == 3) {
    bad = ParseU64(v, 0, PP_MAX_COUNT, &o->warmup);
  } else if (k == 4) {
    bad = ParseDouble(v, 0, 3600, &o->seconds);
  } else if (k == 5) {
    bad = ParseU64(v, 60, 1514, &u);
    o->size = (uint32_t)u;
  } else {
    bad = ParseU64(v, 1, 60000, &u);
    o->echo_timeout_ms = (uint32_t)u;
  }
  if (bad) {
    static const char *const kWant[] = {"poll or intr", "0..10e6", "1..20000000", "0..20000000",
                                        "0..3600", "60..1514", "1..60000"};
    fprintf(stderr, "%s: %s '%s': want %s\n", prog, a, v, kWant[k]);
    return -1;
  }
  return 1;
}

int pp_pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : -errno;
}

/* Bookkeeping of the echoes, shared by both loops through the RX callback. */
typedef struct {
  const pp_options *o;
  uint64_t timeout_ns;
  uint64_t last_seq;   /* highest sequence number sent */
  uint64_t want_seq;   /* closed loop: the echo waited for */
  int matched;         /* closed loop: want_seq came back */
  uint8_t *seen;       /* one bit per sequence number: echoes counted once */
  uint64_t *samples;   /* one-way ns of the kept frames */
  uint64_t kept, sum, stale, foreign;
} Book;

static void OnFrame(void *p, const uint8_t *d, uint32_t len) {
  Book *b = (Book *)p;
  uint32_t magic;
  uint64_t seq, tx_ns;
  if (len < PP_HDR_LEN || d[12] != (PP_ETHERTYPE >> 8) || d[13] != (PP_ETHERTYPE & 0xff)) {
    b->foreign++; /* not ours (e.g. an announcement): ignored */
    return;
  }
  memcpy(&magic, d + 14, 4);
  memcpy(&seq, d + 18, 8);
  memcpy(&tx_ns, d + 26, 8);
  if (magic != PP_MAGIC) {
    b->foreign++;
    return;
  }
  const uint64_t now = MonoNs(); /* before anything else of the burst is looked at */
  if (seq == 0 || seq > b->last_seq || (b->seen[seq >> 3] & (1u << (seq & 7)))) {
    b->stale++; /* never sent, or a second echo */
    return;
  }
  b->seen[seq >> 3] |= (uint8_t)(1u << (seq & 7));
  if (now - tx_ns > b->timeout_ns) {
    b->stale++; /* already counted lost */
    return;
  }
  if (seq == b->want_seq) b->matched = 1;
  if (seq > b->o->warmup && b->kept < b->o->count) {
    const uint64_t one_way = (now - tx_ns) / 2;
    b->samples[b->kept++] = one_way;
    b->sum += one_way;
  }
}

static void BuildFrame(uint8_t *f, const pp_options *o, uint64_t seq, uint64_t tx_ns) {
  /* dst: a locally administered unicast address nobody has; the loopback
   * back ends echo whatever they get. */
  static const uint8_t kDst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};
  const uint32_t magic = PP_MAGIC;
  memcpy(f, kDst, 6);
  memcpy(f + 6, o->src_mac, 6);
  f[12] = (uint8_t)(PP_ETHERTYPE >> 8);
  f[13] = (uint8_t)(PP_ETHERTYPE & 0xff);
  memcpy(f + 14, &magic, 4);
  memcpy(f + 18, &seq, 8);
  memcpy(f + 26, &tx_ns, 8);
}

static int CmpU64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least p of them <= it. */
static uint64_t Rank(const uint64_t *s, uint64_t n, double p) {
  uint64_t k = (uint64_t)(p * (double)n + 0.999999);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return s[k - 1];
}

/* State of one run besides the book: the measured window. */
typedef struct {
  const pp_io *io;
  const pp_options *o;
  pp_result *r;
  Book *b;
  uint8_t frame[1514];
  uint64_t t0_ns, t_end_ns, vcs0;
  double cpu0;
  int measuring;
  int woke; /* the last sleep ended by an interrupt */
} Run;

/* The kept part starts with frame warmup + 1: the script samples the back
 * end's CPU from the "measuring" line on. */
static void StartMeasuring(Run *x) {
  if (x->measuring) return;
  printf("measuring %.6f\n", RealS());
  fflush(stdout);
  x->measuring = 1;
  x->cpu0 = CpuS(&x->vcs0);
  x->t0_ns = MonoNs();
  x->t_end_ns = x->o->seconds > 0 ? x->t0_ns + (uint64_t)(x->o->seconds * 1e9) : 0;
  x->r->wakeups = x->r->spurious = x->r->tx_full_spins = x->r->late_sends = 0;
}

static void StopMeasuring(Run *x) {
  if (x->measuring != 1) return;
  uint64_t vcs1 = 0;
  x->r->wall_s = (double)(MonoNs() - x->t0_ns) / 1e9;
  const double cpu = CpuS(&vcs1) - x->cpu0;
  x->r->cpu_pct = x->r->wall_s > 0 ? 100.0 * cpu / x->r->wall_s : 0;
  x->r->vol_ctx_switches = vcs1 - x->vcs0;
  x->measuring = 2;
}

/* Sends frame seq (spinning while the ring is full, at most the echo
 * timeout). 0 or -errno. */
static int Send(Run *x, uint64_t seq) {
  const uint64_t t = MonoNs();
  BuildFrame(x->frame, x->o, seq, t);
  x->b->last_seq = seq;
  for (;;) {
    int k = x->io->tx(x->io->ctx, x->frame, x->o->size);
    if (k < 0) return k;
    if (k > 0) break;
    x->r->tx_full_spins++;
    if (MonoNs() - t > x->b->timeout_ns) return -EBUSY;
  }
  if (seq > x->o->warmup) x->r->sent++;
  return 0;
}

/* Polls RX once; in interrupt mode, if there was nothing, arms, polls again
 * (a frame that came before the arm raised no interrupt: shell.h), and
 * sleeps until the interrupt or until_ns. Returns frames seen or -errno. */
static int PollOrSleep(Run *x, uint64_t until_ns) {
  int n = x->io->rx(x->io->ctx, OnFrame, x->b);
  if (n < 0) return n;
  if (x->woke && n == 0) x->r->spurious++; /* woken, and nothing was there */
  x->woke = 0;
  if (n > 0 || !x->o->intr) return n;
  int rc = x->io->arm(x->io->ctx, 1);
  if (rc < 0) return rc;
  n = x->io->rx(x->io->ctx, OnFrame, x->b);
  if (n == 0) {
    const uint64_t now = MonoNs();
    if (until_ns > now) {
      int w = x->io->sleep(x->io->ctx, until_ns - now);
      if (w < 0) n = w;
      else if (w > 0 && x->measuring == 1) x->r->wakeups++;
      x->woke = w > 0;
    }
  }
  rc = x->io->arm(x->io->ctx, 0);
  return n < 0 ? n : rc < 0 ? rc : n;
}

/* Back to back: one frame in flight. */
static int ClosedLoop(Run *x, volatile int *stop) {
  const pp_options *o = x->o;
  uint64_t lost_in_a_row = 0;
  /* warmup + count frames at most: a lost frame is counted, not replaced
   * (and the seen bitmap has one bit per frame that can be sent). */
  for (uint64_t seq = 1; !*stop && seq <= o->warmup + o->count; seq++) {
    if (seq == o->warmup + 1) StartMeasuring(x);
    if (x->t_end_ns && MonoNs() >= x->t_end_ns) break;
    x->b->want_seq = seq;
    x->b->matched = 0;
    int rc = Send(x, seq);
    if (rc < 0) return rc;
    const uint64_t deadline = MonoNs() + x->b->timeout_ns;
    while (!x->b->matched && !*stop && MonoNs() < deadline) {
      rc = PollOrSleep(x, deadline);
      if (rc < 0) return rc;
    }
    if (x->b->matched) {
      lost_in_a_row = 0;
    } else if (++lost_in_a_row >= PP_MAX_LOST_IN_A_ROW) {
      fprintf(stderr, "pingpong: %u echoes in a row never came back: is the back end gone?\n",
              PP_MAX_LOST_IN_A_ROW);
      return -ETIMEDOUT;
    }
  }
  StopMeasuring(x);
  return 0;
}

/* Paced: frame i leaves at t0 + i / rate, echoes or not. */
static int OpenLoop(Run *x, volatile int *stop) {
  const pp_options *o = x->o;
  const uint64_t period = (uint64_t)(1e9 / o->rate);
  uint64_t seq = 0, next = MonoNs(), kept_before = 0, checked_at = next;
  for (;;) {
    if (*stop) break;
    uint64_t now = MonoNs();
    if (now >= next) {
      if (seq == o->warmup) StartMeasuring(x);
      if (x->measuring == 1 &&
          (x->r->sent >= o->count || (x->t_end_ns && now >= x->t_end_ns)))
        break;
      int rc = Send(x, ++seq);
      if (rc < 0) return rc;
      /* The schedule is absolute, so the offered load is the rate even when
       * a wake-up comes late (late_sends counts those); past
       * PP_MAX_BEHIND periods behind (a long stall) it starts again from
       * now rather than send a burst. */
      if (now > next + period && x->measuring == 1) x->r->late_sends++;
      next = now > next + PP_MAX_BEHIND * period ? now + period : next + period;
      continue;
    }
    int rc = PollOrSleep(x, next);
    if (rc < 0) return rc;
    /* A back end that is gone: nothing came back for a whole second. */
    if (now - checked_at > 1000000000ull) {
      if (x->b->kept == kept_before && x->measuring == 1 && x->r->sent > 0) {
        fprintf(stderr, "pingpong: no echo for a second: is the back end gone?\n");
        return -ETIMEDOUT;
      }
      kept_before = x->b->kept;
      checked_at = now;
    }
  }
  StopMeasuring(x);
  /* Drain: the echoes of the last frames, for at most the echo timeout
   * (not measured; polling). */
  const uint64_t until = MonoNs() + x->b->timeout_ns;
  while (!*stop && x->b->kept < x->r->sent && MonoNs() < until) {
    int n = x->io->rx(x->io->ctx, OnFrame, x->b);
    if (n < 0) return n;
  }
  return 0;
}

int pp_run(const pp_io *io, const pp_options *o, volatile int *stop, pp_result *r) {
  memset(r, 0, sizeof *r);
  if (o->intr && (io->arm == NULL || io->sleep == NULL)) return -ENOTSUP;
  const uint64_t max_seq = o->warmup + o->count + 1;
  Book b;
  memset(&b, 0, sizeof b);
  b.o = o;
  b.timeout_ns = (uint64_t)o->echo_timeout_ms * 1000000ull;
  b.samples = (uint64_t *)malloc(o->count * sizeof *b.samples);
  b.seen = (uint8_t *)calloc(max_seq / 8 + 1, 1);
  Run x;
  memset(&x, 0, sizeof x);
  x.io = io;
  x.o = o;
  x.r = r;
  x.b = &b;
  int rc = -ENOMEM;
  if (b.samples != NULL && b.seen != NULL) {
    for (uint32_t i = PP_HDR_LEN; i < o->size; i++) x.frame[i] = (uint8_t)i;
    if (o->warmup == 0) StartMeasuring(&x);
    rc = o->rate > 0 ? OpenLoop(&x, stop) : ClosedLoop(&x, stop);
    StopMeasuring(&x);
  }
  r->kept = b.kept;
  r->stale = b.stale;
  r->lost = r->sent > b.kept ? r->sent - b.kept : 0;
  if (b.kept) {
    qsort(b.samples, b.kept, sizeof *b.samples, CmpU64);
    r->min_ns = b.samples[0];
    r->max_ns = b.samples[b.kept - 1];
    r->mean_ns = b.sum / b.kept;
    r->p50_ns = Rank(b.samples, b.kept, 0.50);
    r->p90_ns = Rank(b.samples, b.kept, 0.90);
    r->p99_ns = Rank(b.samples, b.kept, 0.99);
    r->p999_ns = Rank(b.samples, b.kept, 0.999);
  }
  free(b.samples);
  free(b.seen);
  return rc;
}

void pp_print_json(FILE *f, const char *impl, const pp_options *o, const pp_result *r) {
#define US(x) ((double)(x) / 1000.0)
  fprintf(f,
          "{\"bench\":\"pingpong\",\"impl\":\"%s\",\"mode\":\"%s\",\"rate\":%.0f,\"size\":%u,"
          "\"sent\":%" PRIu64 ",\"kept\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"stale\":%" PRIu64
          ",\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"min_us\":%.2f,"
          "\"max_us\":%.2f,\"mean_us\":%.2f,\"wall_s\":%.3f,\"cpu_pct\":%.2f,"
          "\"wakeups\":%" PRIu64 ",\"spurious_wakeups\":%" PRIu64 ",\"late_sends\":%" PRIu64
          ",\"tx_full_spins\":%" PRIu64 ",\"vol_ctx_switches\":%" PRIu64 "}\n",
          impl, o->intr ? "intr" : "poll", o->rate, o->size, r->sent, r->kept, r->lost, r->stale,
          US(r->p50_ns), US(r->p90_ns), US(r->p99_ns), US(r->p999_ns), US(r->min_ns),
          US(r->max_ns), US(r->mean_ns), r->wall_s, r->cpu_pct, r->wakeups, r->spurious,
          r->late_sends, r->tx_full_spins, r->vol_ctx_switches);
  fflush(f);
#undef US
}
