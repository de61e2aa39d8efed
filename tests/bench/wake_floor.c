/*
 * wake_floor: what one sleep/wake-up round trip between two CPUs costs on
 * this machine, with no network stack at all (docs/PERFORMANCE.md, "Latency
 * and idle cost"). Two threads, each pinned to its CPU, each asleep in
 * read(2) on an eventfd until the other writes it: the sender wakes at a
 * paced rate (clock_nanosleep), wakes the echo thread, sleeps until woken
 * back. This is the least a pair of sides that both sleep between frames
 * can cost per frame (a guest in interrupt mode and a back end that sleeps
 * when idle), so it bounds the light-load CPU figures of bench-latency.sh.
 *
 *   wake_floor [--rate N] [--count N] [--cpus A,B]
 *
 * Prints one JSON line: per round trip, each thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID), the mean round trip, and how long the write(2)
 * that wakes the other CPU takes the writer (the cost of a kick or of an
 * interrupt to a sleeping peer); and each thread's CPU in % of a core at the
 * achieved rate. Exit 0 ok, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int g_to_echo = -1, g_to_sender = -1;
static long g_count = 20000;
static int g_cpu_sender = 1, g_cpu_echo = 0;
static double g_echo_cpu_s;
static int g_echo_failed;

static double ThreadCpuS(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t MonoNs(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int Pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  return pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *Echo(void *arg) {
  (void)arg;
  if (Pin(g_cpu_echo) != 0) g_echo_failed = 1;
  const double c0 = ThreadCpuS();
  uint64_t v;
  for (long i = 0; i < g_count && !g_echo_failed; i++) {
    v = 1;
    if (read(g_to_echo, &v, sizeof v) != sizeof v || write(g_to_sender, &v, sizeof v) != sizeof v)
      g_echo_failed = 1;
  }
  g_echo_cpu_s = ThreadCpuS() - c0;
  return NULL;
}

static int Usage(FILE *f, int rc) {
  fprintf(f, "usage: wake_floor [--rate N (10000)] [--count N (20000)] [--cpus SENDER,ECHO (1,0)]\n");
  return rc;
}

int main(int argc, char **argv) {
  double rate = 10000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0) return Usage(stdout, 0);
    if (i + 1 >= argc) return Usage(stderr, 2);
    const char *v = argv[++i];
    char *end = NULL;
    if (strcmp(argv[i - 1], "--rate") == 0) {
      rate = strtod(v, &end);
      if (end == v || *end || !(rate >= 1 && rate <= 1e6)) return Usage(stderr, 2);
    } else if (strcmp(argv[i - 1], "--count") == 0) {
      g_count = strtol(v, &end, 10);
      if (end == v || *end || g_count < 100 || g_count > 10000000) return Usage(stderr, 2);
    } else if (strcmp(argv[i - 1], "--cpus") == 0) {
      if (sscanf(v, "%d,%d", &g_cpu_sender, &g_cpu_echo) != 2 || g_cpu_sender < 0 || g_cpu_echo < 0)
        return Usage(stderr, 2);
    } else {
      return Usage(stderr, 2);
    }
  }
  g_to_echo = eventfd(0, EFD_CLOEXEC);
  g_to_sender = eventfd(0, EFD_CLOEXEC);
  if (g_to_echo < 0 || g_to_sender < 0 || Pin(g_cpu_sender) != 0) {
    fprintf(stderr, "wake_floor: eventfd or pinning to CPU %d failed: %s\n", g_cpu_sender, strerror(errno));
    return 1;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, Echo, NULL) != 0) return 1;
  struct timespec settle = {0, 100 * 1000 * 1000};
  nanosleep(&settle, NULL); /* the echo thread is asleep in read */
  const uint64_t period = (uint64_t)(1e9 / rate), t0 = MonoNs();
  uint64_t next = t0, rtt_sum = 0, write_sum = 0;
  const double c0 = ThreadCpuS();
  long done = 0;
  for (; done < g_count && !g_echo_failed; done++) {
    next += period;
    struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
    uint64_t v = 1, s = MonoNs();
    if (write(g_to_echo, &v, sizeof v) != sizeof v) break;
    const uint64_t w = MonoNs(); /* the write woke a sleeping thread on the other CPU */
    if (read(g_to_sender, &v, sizeof v) != sizeof v) break;
    write_sum += w - s;
    rtt_sum += MonoNs() - s;
  }
  const double sender_cpu = ThreadCpuS() - c0, wall = (double)(MonoNs() - t0) / 1e9;
  if (done < g_count) {
    /* Let the echo thread go (it may be waiting for the rest) and report. */
    g_echo_failed = 1;
    uint64_t v = 1;
    if (write(g_to_echo, &v, sizeof v) < 0) { /* nothing more to do */ }
    fprintf(stderr, "wake_floor: stopped after %ld of %ld round trips\n", done, g_count);
    pthread_join(t, NULL);
    return 1;
  }
  pthread_join(t, NULL);
  printf("{\"bench\":\"wake_floor\",\"rate\":%.0f,\"achieved_rate\":%.0f,\"round_trips\":%ld,"
         "\"sender_cpu_us_per_rt\":%.2f,\"echo_cpu_us_per_rt\":%.2f,\"mean_rtt_us\":%.2f,"
         "\"waking_write_us\":%.2f,"
         "\"sender_cpu_pct\":%.1f,\"echo_cpu_pct\":%.1f}\n",
         rate, (double)done / wall, done, sender_cpu / (double)done * 1e6,
         g_echo_cpu_s / (double)done * 1e6, (double)rtt_sum / (double)done / 1e3,
         (double)write_sum / (double)done / 1e3,
         100 * sender_cpu / wall, 100 * g_echo_cpu_s / wall);
  return 0;
}
