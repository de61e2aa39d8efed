// npa_bench_c2c: how far apart are two vCPUs right now?
//
// On the 2-vCPU KVM guests we benchmark on, a cache-line round trip between
// the vCPUs is either ~80 ns ("near": the host runs them on one CCX) or
// ~400 ns ("far"), and the hypervisor flips between the two at will, even in
// the middle of a run. Any two-core ring benchmark follows that by 2-5x, so
// every throughput sample has to be labelled with the placement it ran in.
//
//   npa_bench_c2c once [--cpus A,B]
//       one measurement (median of 7 x 100k round trips), prints "<ns>"
//   npa_bench_c2c monitor SECONDS [--period-ms 500] [--rounds 2000] [--cpus A,B]
//       every period both threads wake at the same absolute time, do
//       `rounds` round trips and print "<unix_time> <ns>" ("NA" when the
//       thread on the other CPU did not get to run within 5 ms, which is
//       normal next to two busy-polling processes). Duty ~0.1 %.
//
// Exit: 0 ok, 1 runtime failure, 2 usage.
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct alignas(64) Line {
  std::atomic<int64_t> v{0};
};
Line g_ball;   // the ping-pong cache line
Line g_epoch;  // monitor: which probe the peer has woken up for

int64_t NowNs(clockid_t c = CLOCK_MONOTONIC) {
  timespec ts;
  clock_gettime(c, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool Pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  return pthread_setaffinity_np(pthread_self(), sizeof(s), &s) == 0;
}

// Spin until *p == want; false after timeout_ns (0 = never). The clock is
// read only every 1024 spins so the wait itself stays a tight loop.
bool WaitFor(const std::atomic<int64_t>& p, int64_t want, int64_t timeout_ns) {
  int64_t deadline = 0;
  for (uint32_t n = 1; p.load(std::memory_order_acquire) != want; n++) {
    if (timeout_ns == 0 || (n & 1023) != 0) continue;
    int64_t t = NowNs();
    if (deadline == 0) {
      deadline = t + timeout_ns;
    } else if (t > deadline) {
      return false;
    }
  }
  return true;
}

// One ping-pong session: the initiator writes odd values, the responder
// answers with the next even one. base keeps sessions apart.
bool Ping(int64_t base, int64_t rounds, int64_t timeout_ns) {
  for (int64_t i = 0; i < rounds; i++) {
    g_ball.v.store(base + 2 * i + 1, std::memory_order_release);
    if (!WaitFor(g_ball.v, base + 2 * i + 2, timeout_ns)) return false;
  }
  return true;
}
bool Pong(int64_t base, int64_t rounds, int64_t timeout_ns) {
  for (int64_t i = 0; i < rounds; i++) {
    if (!WaitFor(g_ball.v, base + 2 * i + 1, timeout_ns)) return false;
    g_ball.v.store(base + 2 * i + 2, std::memory_order_release);
  }
  return true;
}

struct Config {
  int cpu_a = 0, cpu_b = 1;
  double seconds = 0;
  int64_t period_ns = 500'000'000;
  int64_t rounds = 2000;
};

constexpr int64_t kTimeoutNs = 5'000'000;

void SleepUntil(int64_t t_ns) {
  timespec ts{static_cast<time_t>(t_ns / 1000000000), static_cast<long>(t_ns % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

int Once(const Config& c) {
  constexpr int kReps = 7;
  constexpr int64_t kRounds = 100000;
  struct Arg {
    int cpu;
  } arg{c.cpu_b};
  pthread_t t;
  auto body = [](void* p) -> void* {
    if (!Pin(static_cast<Arg*>(p)->cpu)) return nullptr;
    for (int k = 0; k < kReps; k++) Pong(2 * kRounds * k, kRounds, 0);
    return nullptr;
  };
  if (!Pin(c.cpu_a) || pthread_create(&t, nullptr, body, &arg) != 0) {
    fprintf(stderr, "npa_bench_c2c: cannot pin/start threads\n");
    return 1;
  }
  std::vector<double> ns;
  for (int k = 0; k < kReps; k++) {
    int64_t a = NowNs();
    Ping(2 * kRounds * k, kRounds, 0);
    ns.push_back(static_cast<double>(NowNs() - a) / kRounds);
  }
  pthread_join(t, nullptr);
  std::sort(ns.begin(), ns.end());
  printf("%.0f\n", ns[kReps / 2]);
  return 0;
}

int Monitor(const Config& c) {
  const int64_t probes = static_cast<int64_t>(c.seconds * 1e9 / c.period_ns);
  const int64_t t0 = NowNs();
  struct Shared {
    const Config* c;
    int64_t probes, t0;
  } sh{&c, probes, t0};
  auto body = [](void* p) -> void* {
    auto* s = static_cast<Shared*>(p);
    Pin(s->c->cpu_b);
    for (int64_t k = 1; k <= s->probes; k++) {
      SleepUntil(s->t0 + k * s->c->period_ns);
      g_epoch.v.store(k, std::memory_order_release);
      Pong(2 * s->c->rounds * k, s->c->rounds, kTimeoutNs);
    }
    return nullptr;
  };
  pthread_t t;
  if (!Pin(c.cpu_a) || pthread_create(&t, nullptr, body, &sh) != 0) {
    fprintf(stderr, "npa_bench_c2c: cannot pin/start threads\n");
    return 1;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  for (int64_t k = 1; k <= probes; k++) {
    SleepUntil(t0 + k * c.period_ns);
    bool ok = WaitFor(g_epoch.v, k, kTimeoutNs);
    int64_t a = NowNs();
    ok = ok && Ping(2 * c.rounds * k, c.rounds, kTimeoutNs);
    int64_t b = NowNs();
    double real = static_cast<double>(NowNs(CLOCK_REALTIME)) / 1e9;
    if (ok) {
      printf("%.3f %.0f\n", real, static_cast<double>(b - a) / c.rounds);
    } else {
      printf("%.3f NA\n", real);
    }
  }
  pthread_join(t, nullptr);
  return 0;
}

void Usage(FILE* f) {
  fprintf(f,
          "usage: npa_bench_c2c once [--cpus A,B]\n"
          "       npa_bench_c2c monitor SECONDS [--period-ms N] [--rounds N] [--cpus A,B]\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage(stderr);
    return 2;
  }
  Config c;
  std::string mode = argv[1];
  int i = 2;
  if (mode == "monitor") {
    if (argc < 3 || (c.seconds = atof(argv[2])) <= 0 || c.seconds > 86400) {
      Usage(stderr);
      return 2;
    }
    i = 3;
  } else if (mode != "once") {
    Usage(stderr);
    return 2;
  }
  for (; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--cpus" && sscanf(v, "%d,%d", &c.cpu_a, &c.cpu_b) == 2 && c.cpu_a >= 0 &&
        c.cpu_b >= 0 && c.cpu_a != c.cpu_b && c.cpu_a < CPU_SETSIZE && c.cpu_b < CPU_SETSIZE) {
      continue;
    }
    if (k == "--period-ms" && atoi(v) >= 10 && atoi(v) <= 60000) {
      c.period_ns = static_cast<int64_t>(atoi(v)) * 1000000;
      continue;
    }
    if (k == "--rounds" && atol(v) >= 10 && atol(v) <= 10000000) {
      c.rounds = atol(v);
      continue;
    }
    fprintf(stderr, "npa_bench_c2c: bad option '%s %s'\n", argv[i], v);
    return 2;
  }
  if (i != argc) {
    Usage(stderr);
    return 2;
  }
  return mode == "once" ? Once(c) : Monitor(c);
}
