// npa_bench_guest: the guest half of the emulated-path benchmark.
//
// Opens libnpa_shell in standalone mode on a vhost-user socket (npa-agent's
// --vhost-user listener, or DPDK's net_vhost), one queue pair, and either
//   --tx  transmits frames of --size bytes as fast as the ring takes them, or
//   --rx  receives and frees whatever the back end sends.
// It pins itself to --cpu, runs --seconds, prints one line per second and a
// final JSON line (scripts/bench-emulated.sh parses both):
//
//   sample <unix_time> <interval_s> <packets> <pps>
//   {"guest":"npa_bench_guest","mode":"tx",...,"mpps":31.2,...}
//
// What counts as delivered (--tx): the frames npa_tx_burst() accepted. Once
// accepted, a frame sits in the avail ring until the back end consumes it,
// so over any interval the accepted count equals the back end's consumption
// within one ring (--ring-size entries) of slack; the script cross-checks the
// total against the agent's own counters. After the run the guest lingers
// (--linger-ms) so a polling back end drains the ring, prints the JSON line,
// and stays connected --hold-ms more so the back end's counters can be read.
//
// Per-packet work mirrors DPDK testpmd's txonly engine, the other side of the
// comparison: the payload is written once into every pool buffer up front;
// each burst allocates from the pool, writes the 42-byte Ethernet/IPv4/UDP
// header and the lengths into every frame, transmits, and frees what the
// ring did not take (tx_burst moves ownership of what it took).
//
// Exit: 0 ran to the end, 1 shell or runtime failure, 2 usage.
#include <arpa/inet.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "npa/shell.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

constexpr size_t kHdrLen = 14 + 20 + 8;  // Ethernet + IPv4 + UDP, as testpmd txonly

struct Options {
  std::string vhost_user;
  bool tx = false, rx = false;
  uint32_t size = 64;
  int cpu = -1;
  double seconds = 10;
  uint16_t burst = 32;
  uint16_t ring = 0;  // 0 = the shell's default
  uint32_t ring_kind = NPA_RING_AUTO;
  bool no_huge = false;
  uint32_t linger_ms = 200;
  uint32_t hold_ms = 0;
  uint32_t connect_timeout_ms = 10000;
};

void Usage(FILE* f) {
  fprintf(f,
          "usage: npa_bench_guest --vhost-user PATH (--tx | --rx) [options]\n"
          "\n"
          "The guest side of scripts/bench-emulated.sh: libnpa_shell in standalone\n"
          "mode, one queue pair, busy-polling bursts.\n"
          "\n"
          "  --vhost-user PATH   vhost-user back end socket (npa-agent, DPDK net_vhost)\n"
          "  --tx                transmit --size byte frames as fast as the ring takes them\n"
          "  --rx                receive and free frames from the back end\n"
          "  --size N            frame bytes without FCS, 60..1514 (default 64)\n"
          "  --burst N           frames per burst call, 1..256 (default 32)\n"
          "  --ring KIND         split, packed or auto (default): the virtqueue layout,\n"
          "                      forced (npa_shell_queue_config.ring); the JSON says which ran\n"
          "  --ring-size N       descriptors per ring (power of two, 64..32768; default: shell's);\n"
          "                      --ring N (a number) is the same, as before\n"
          "  --cpu N             pin to this CPU\n"
          "  --seconds S         run time (default 10)\n"
          "  --no-huge           4K pages for the shared regions (NPA_SHELL_F_NO_HUGEPAGES)\n"
          "  --linger-ms N       after the run, keep the connection N ms so the back end\n"
          "                      drains the ring (default 200)\n"
          "  --hold-ms N         after printing the JSON line, stay connected N ms (the\n"
          "                      script reads the back end's counters then; default 0)\n"
          "  --connect-timeout-ms N   (default 10000)\n"
          "  --help              this text\n"
          "\n"
          "Output: 'sample <unix_time> <interval_s> <packets> <pps>' once a second, then\n"
          "one JSON line. Exit: 0 ok, 1 failure, 2 usage.\n");
}

bool ParseUint(const char* s, uint64_t lo, uint64_t hi, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

int ParseArgs(int argc, char** argv, Options* o) {
  enum { kVhost = 1, kTx, kRx, kSize, kBurst, kRing, kRingSize, kCpu, kSeconds, kNoHuge, kLinger, kHold,
         kConn, kHelp };
  static const option kLong[] = {
      {"vhost-user", required_argument, nullptr, kVhost},
      {"tx", no_argument, nullptr, kTx},
      {"rx", no_argument, nullptr, kRx},
      {"size", required_argument, nullptr, kSize},
      {"burst", required_argument, nullptr, kBurst},
      {"ring", required_argument, nullptr, kRing},
      {"ring-size", required_argument, nullptr, kRingSize},
      {"cpu", required_argument, nullptr, kCpu},
      {"seconds", required_argument, nullptr, kSeconds},
      {"no-huge", no_argument, nullptr, kNoHuge},
      {"linger-ms", required_argument, nullptr, kLinger},
      {"hold-ms", required_argument, nullptr, kHold},
      {"connect-timeout-ms", required_argument, nullptr, kConn},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  uint64_t v;
  while ((c = getopt_long(argc, argv, "", kLong, nullptr)) != -1) {
    switch (c) {
      case kVhost: o->vhost_user = optarg; break;
      case kTx: o->tx = true; break;
      case kRx: o->rx = true; break;
      case kSize:
        if (!ParseUint(optarg, 60, 1514, &v)) {
          fprintf(stderr, "npa_bench_guest: --size '%s': want 60..1514\n", optarg);
          return 2;
        }
        o->size = static_cast<uint32_t>(v);
        break;
      case kBurst:
        if (!ParseUint(optarg, 1, 256, &v)) {
          fprintf(stderr, "npa_bench_guest: --burst '%s': want 1..256\n", optarg);
          return 2;
        }
        o->burst = static_cast<uint16_t>(v);
        break;
      case kRing:
        if (strcmp(optarg, "split") == 0) {
          o->ring_kind = NPA_RING_SPLIT;
          break;
        }
        if (strcmp(optarg, "packed") == 0) {
          o->ring_kind = NPA_RING_PACKED;
          break;
        }
        if (strcmp(optarg, "auto") == 0) {
          o->ring_kind = NPA_RING_AUTO;
          break;
        }
        [[fallthrough]];  // a number: the ring size, as --ring meant before --ring-size
      case kRingSize:
        if (!ParseUint(optarg, 64, 32768, &v) || (v & (v - 1)) != 0) {
          fprintf(stderr, "npa_bench_guest: --ring '%s': want split, packed, auto or a size (a power "
                  "of two, 64..32768)\n", optarg);
          return 2;
        }
        o->ring = static_cast<uint16_t>(v);
        break;
      case kCpu:
        if (!ParseUint(optarg, 0, CPU_SETSIZE - 1, &v)) {
          fprintf(stderr, "npa_bench_guest: --cpu '%s': not a CPU number\n", optarg);
          return 2;
        }
        o->cpu = static_cast<int>(v);
        break;
      case kSeconds: {
        char* end = nullptr;
        double d = strtod(optarg, &end);
        if (end == optarg || *end != '\0' || !(d > 0 && d <= 3600)) {
          fprintf(stderr, "npa_bench_guest: --seconds '%s': want 0 < S <= 3600\n", optarg);
          return 2;
        }
        o->seconds = d;
        break;
      }
      case kNoHuge: o->no_huge = true; break;
      case kLinger:
        if (!ParseUint(optarg, 0, 60000, &v)) {
          fprintf(stderr, "npa_bench_guest: --linger-ms '%s': want 0..60000\n", optarg);
          return 2;
        }
        o->linger_ms = static_cast<uint32_t>(v);
        break;
      case kHold:
        if (!ParseUint(optarg, 0, 60000, &v)) {
          fprintf(stderr, "npa_bench_guest: --hold-ms '%s': want 0..60000\n", optarg);
          return 2;
        }
        o->hold_ms = static_cast<uint32_t>(v);
        break;
      case kConn:
        if (!ParseUint(optarg, 1, 600000, &v)) {
          fprintf(stderr, "npa_bench_guest: --connect-timeout-ms '%s': want 1..600000\n", optarg);
          return 2;
        }
        o->connect_timeout_ms = static_cast<uint32_t>(v);
        break;
      case kHelp: Usage(stdout); exit(0);
      default: Usage(stderr); return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "npa_bench_guest: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (o->vhost_user.empty() || o->tx == o->rx) {
    fprintf(stderr, "npa_bench_guest: need --vhost-user PATH and exactly one of --tx, --rx\n");
    Usage(stderr);
    return 2;
  }
  return 0;
}

double Mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}
double Real() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

uint16_t Csum16(const uint8_t* p, size_t n) {
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < n; i += 2) s += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) s += static_cast<uint32_t>(p[n - 1] << 8);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

// The Ethernet/IPv4/UDP header template, testpmd-txonly style: addresses
// 198.18.0.1 -> 198.18.0.2 (RFC 2544 benchmark range), ports 9 -> 9 (discard).
void BuildHeader(uint8_t* h, const uint8_t src_mac[6], uint32_t frame_len) {
  static const uint8_t kDst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0xfe};
  memcpy(h, kDst, 6);
  memcpy(h + 6, src_mac, 6);
  h[12] = 0x08;
  h[13] = 0x00;
  uint8_t* ip = h + 14;
  uint16_t ip_len = static_cast<uint16_t>(frame_len - 14);
  memset(ip, 0, 20);
  ip[0] = 0x45;
  ip[2] = static_cast<uint8_t>(ip_len >> 8);
  ip[3] = static_cast<uint8_t>(ip_len);
  ip[8] = 64;
  ip[9] = 17;
  const uint8_t kSrc[4] = {198, 18, 0, 1}, kDstIp[4] = {198, 18, 0, 2};
  memcpy(ip + 12, kSrc, 4);
  memcpy(ip + 16, kDstIp, 4);
  uint16_t c = Csum16(ip, 20);
  ip[10] = static_cast<uint8_t>(c >> 8);
  ip[11] = static_cast<uint8_t>(c);
  uint8_t* udp = ip + 20;
  uint16_t udp_len = static_cast<uint16_t>(ip_len - 20);
  udp[0] = 0, udp[1] = 9, udp[2] = 0, udp[3] = 9;
  udp[4] = static_cast<uint8_t>(udp_len >> 8);
  udp[5] = static_cast<uint8_t>(udp_len);
  udp[6] = udp[7] = 0;  // no UDP checksum (allowed for IPv4)
}

// Writes the payload pattern into every buffer of queue 0's pool once, so
// the per-burst work is only the header (as testpmd txonly). Returns the
// number of buffers the pool handed out.
uint32_t PrefillPool(npa_shell* sh, uint32_t frame_len) {
  constexpr uint32_t kMax = 1u << 16;  // more than any pool the shell makes
  npa_buf** all = static_cast<npa_buf**>(calloc(kMax, sizeof(npa_buf*)));
  if (all == nullptr) return 0;
  uint32_t n = 0;
  while (n < kMax) {
    uint16_t want = static_cast<uint16_t>(kMax - n < 256 ? kMax - n : 256);
    uint16_t got = npa_buf_alloc(sh, 0, all + n, want);
    n += got;
    if (got < want) break;
  }
  for (uint32_t i = 0; i < n; i++) {
    uint8_t* d = static_cast<uint8_t*>(npa_buf_data(all[i]));
    for (uint32_t k = kHdrLen; k < frame_len; k++) d[k] = static_cast<uint8_t>(k);
  }
  for (uint32_t i = 0; i < n; i += 256) {
    npa_buf_free(sh, 0, all + i, static_cast<uint16_t>(n - i < 256 ? n - i : 256));
  }
  free(all);
  return n;
}

void SleepMs(uint32_t ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L};
  while (ms && nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop) {
  }
}

struct Sampler {
  double t0 = 0, next = 0, last_real = 0;
  uint64_t last_count = 0;
  void Start() {
    t0 = Mono();
    next = t0 + 1.0;
    last_real = Real();
  }
  // Prints a sample when a second has passed; returns the monotonic time.
  double Tick(uint64_t count) {
    double now = Mono();
    if (now >= next) {
      double real = Real();
      double dt = real - last_real;
      uint64_t d = count - last_count;
      printf("sample %.3f %.4f %" PRIu64 " %.0f\n", real, dt, d, dt > 0 ? d / dt : 0.0);
      fflush(stdout);
      last_real = real;
      last_count = count;
      next += 1.0;
      if (next < now) next = now + 1.0;  // we were descheduled: don't burst out samples
    }
    return now;
  }
};

// Time is checked every kCheckEvery bursts: a vDSO clock read costs ~20 ns,
// about 2 % of a 32-frame burst at 30 Mpps if done every time.
constexpr uint32_t kCheckEvery = 64;

uint64_t RunTx(npa_shell* sh, const Options& o, const uint8_t hdr[kHdrLen], double* elapsed,
              uint64_t* bursts) {
  npa_buf* b[256];
  uint64_t sent = 0;
  const uint16_t burst = o.burst;
  const uint32_t len = o.size;
  Sampler s;
  s.Start();
  const double end = s.t0 + o.seconds;
  uint64_t iter = 1;
  for (; !g_stop; iter++) {
    uint16_t n = npa_buf_alloc(sh, 0, b, burst);
    for (uint16_t i = 0; i < n; i++) {
      memcpy(npa_buf_data(b[i]), hdr, kHdrLen);
      b[i]->data_len = static_cast<uint16_t>(len);
      b[i]->pkt_len = len;
    }
    // Called even with n == 0: the burst call also reclaims completions.
    uint16_t k = npa_tx_burst(sh, 0, b, n);
    if (k < n) npa_buf_free(sh, 0, b + k, static_cast<uint16_t>(n - k));
    sent += k;
    if (iter % kCheckEvery == 0 && s.Tick(sent) >= end) break;
  }
  *bursts = iter;
  *elapsed = Mono() - s.t0;
  return sent;
}

uint64_t RunRx(npa_shell* sh, const Options& o, double* elapsed, uint64_t* bursts) {
  npa_buf* b[256];
  uint64_t got = 0;
  const uint16_t burst = o.burst;
  Sampler s;
  s.Start();
  const double end = s.t0 + o.seconds;
  uint64_t iter = 1;
  for (; !g_stop; iter++) {
    uint16_t n = npa_rx_burst(sh, 0, b, burst);
    if (n) npa_buf_free(sh, 0, b, n);
    got += n;
    if (iter % kCheckEvery == 0 && s.Tick(got) >= end) break;
  }
  *bursts = iter;
  *elapsed = Mono() - s.t0;
  return got;
}

int Run(const Options& o) {
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      fprintf(stderr, "npa_bench_guest: cannot pin to CPU %d: %s\n", o.cpu, strerror(errno));
      return 1;
    }
  }
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.vhost_user_path = o.vhost_user.c_str();
  oa.name = "bench";
  oa.flags = o.no_huge ? NPA_SHELL_F_NO_HUGEPAGES : 0;
  oa.connect_timeout_ms = o.connect_timeout_ms;
  npa_shell* sh = nullptr;
  int rc = npa_shell_open(&oa, &sh);
  if (rc < 0) {
    fprintf(stderr, "npa_bench_guest: open %s: %s (%s)\n", o.vhost_user.c_str(),
            npa_shell_last_error(nullptr), strerror(-rc));
    return 1;
  }
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.nb_queue_pairs = 1;
  qc.ring_size = o.ring;
  qc.ring = o.ring_kind;
  if ((rc = npa_shell_configure(sh, &qc)) < 0 || (rc = npa_shell_start(sh)) < 0) {
    fprintf(stderr, "npa_bench_guest: configure/start: %s (%s)\n", npa_shell_last_error(sh),
            strerror(-rc));
    npa_shell_close(sh);
    return 1;
  }
  npa_shell_info info{};
  info.struct_size = sizeof(info);
  if ((rc = npa_shell_get_info(sh, &info)) < 0) {
    fprintf(stderr, "npa_bench_guest: get_info: %s\n", npa_shell_last_error(sh));
    npa_shell_close(sh);
    return 1;
  }
  uint8_t hdr[kHdrLen];
  BuildHeader(hdr, info.mac, o.size);
  uint32_t pool = o.tx ? PrefillPool(sh, o.size) : 0;
  if (o.tx && pool < o.burst) {
    fprintf(stderr, "npa_bench_guest: the pool gave only %u buffers\n", pool);
    npa_shell_close(sh);
    return 1;
  }
  const char* ring = info.ring == NPA_RING_PACKED ? "packed" : "split";
  fprintf(stderr, "npa_bench_guest: %s %u B burst %u on %s, %s pages, pool %u, %s ring\n",
          o.tx ? "tx" : "rx", o.size, o.burst, o.vhost_user.c_str(),
          info.hugepages ? "2M huge" : "4K", pool, ring);

  double elapsed = 0;
  uint64_t bursts = 0;  // burst calls made (tx_full of them found the ring full)
  uint64_t count = o.tx ? RunTx(sh, o, hdr, &elapsed, &bursts) : RunRx(sh, o, &elapsed, &bursts);

  // Let a polling back end drain what is still in the avail ring, so its
  // counters can be compared with ours exactly.
  SleepMs(o.linger_ms);
  npa_queue_stats st{};
  st.struct_size = sizeof(st);
  rc = npa_shell_queue_stats(sh, 0, &st);
  if (rc < 0) fprintf(stderr, "npa_bench_guest: stats: %s\n", npa_shell_last_error(sh));
  printf("{\"guest\":\"npa_bench_guest\",\"mode\":\"%s\",\"ring\":\"%s\",\"size\":%u,\"burst\":%u,"
         "\"hugepages\":%s,\"seconds\":%.3f,\"packets\":%" PRIu64 ",\"mpps\":%.3f,"
         "\"shell_tx_packets\":%" PRIu64 ",\"shell_rx_packets\":%" PRIu64
         ",\"bursts\":%" PRIu64 ",\"tx_full\":%" PRIu64 ",\"rx_dropped\":%" PRIu64 ",\"kicks\":%" PRIu64
         ",\"interrupted\":%s}\n",
         o.tx ? "tx" : "rx", ring, o.size, o.burst, info.hugepages ? "true" : "false", elapsed, count,
         elapsed > 0 ? count / elapsed / 1e6 : 0.0, st.tx_packets, st.rx_packets, bursts, st.tx_full,
         st.rx_dropped, st.kicks, g_stop ? "true" : "false");
  fflush(stdout);
  // Still connected: a back end that drops a guest's counters on disconnect
  // (npa-agent) can be read now and compared with the line above.
  if (!g_stop) SleepMs(o.hold_ms);
  npa_shell_close(sh);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (int rc = ParseArgs(argc, argv, &o); rc != 0) return rc;
  struct sigaction sa{};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return Run(o);
}
