// npa_bench_pingpong: the npa side of the latency benchmark
// (scripts/bench-latency.sh, docs/PERFORMANCE.md "Latency and idle cost").
//
// A guest on libnpa_shell's public API (one queue pair) sends one frame at a
// time to a back end that echoes it (npa-agent --mode loopback), waits for
// the echo, and reports one-way latency (round trip / 2) percentiles and its
// own CPU time. The timing, pacing and report are pingpong_core's, shared
// with dpdk_pingpong.c, so both sides are measured by the same code.
//
//   npa_bench_pingpong (--vhost-user PATH | --control PATH) [--cpu N]
//                      [--ring N] [--no-huge] [pingpong options]
//
// --mode intr sleeps in poll(2) on npa_queue_intr_fd() between frames, as
// shell.h prescribes (arm, re-poll, sleep, ack); --mode poll busy-polls
// npa_rx_burst. Output: "measuring <unix_time>" when the warm-up is over,
// then one JSON line. Exit: 0 ok, 1 failure (including a lost back end),
// 2 usage.
#include <poll.h>
#include <time.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "npa/shell.h"
#include "pingpong_core.h"

namespace {

volatile int g_stop = 0;
void OnSignal(int) { g_stop = 1; }

struct Ctx {
  npa_shell* sh = nullptr;
  int intr_fd = -1;
};

int Tx(void* c, const uint8_t* frame, uint32_t len) {
  Ctx* x = static_cast<Ctx*>(c);
  npa_buf* b = nullptr;
  if (npa_buf_alloc(x->sh, 0, &b, 1) != 1) {
    npa_tx_burst(x->sh, 0, nullptr, 0);  // reclaims completed TX buffers
    return 0;
  }
  memcpy(npa_buf_data(b), frame, len);
  b->data_len = static_cast<uint16_t>(len);
  b->pkt_len = len;
  if (npa_tx_burst(x->sh, 0, &b, 1) == 1) return 1;
  npa_buf_free(x->sh, 0, &b, 1);
  return 0;
}

int Rx(void* c, pp_frame_fn on_frame, void* st) {
  Ctx* x = static_cast<Ctx*>(c);
  npa_buf* b[32];
  uint16_t n = npa_rx_burst(x->sh, 0, b, 32);
  for (uint16_t i = 0; i < n; i++)
    on_frame(st, static_cast<const uint8_t*>(npa_buf_data(b[i])), b[i]->data_len);
  if (n) npa_buf_free(x->sh, 0, b, n);
  return n;
}

int Arm(void* c, int enable) {
  Ctx* x = static_cast<Ctx*>(c);
  return npa_queue_intr_enable(x->sh, 0, enable);
}

int Sleep(void* c, uint64_t timeout_ns) {
  Ctx* x = static_cast<Ctx*>(c);
  pollfd p{x->intr_fd, POLLIN, 0};
  const timespec ts{static_cast<time_t>(timeout_ns / 1000000000u),
                    static_cast<long>(timeout_ns % 1000000000u)};
  int n = ppoll(&p, 1, &ts, nullptr);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  if (n == 0) return 0;
  int rc = npa_queue_intr_ack(x->sh, 0);
  return rc < 0 ? rc : 1;
}

void Usage(FILE* f) {
  fprintf(f,
          "usage: npa_bench_pingpong (--vhost-user PATH | --control PATH) [options]\n"
          "\n"
          "Ping-pong through a back end that echoes (npa-agent --mode loopback):\n"
          "one frame in flight, one-way latency = round trip / 2.\n"
          "\n"
          "  --vhost-user PATH     standalone vhost-user socket (npa-agent --vhost-user)\n"
          "  --control PATH        the agent's control socket (npa shell protocol)\n"
          "  --cpu N               pin to CPU N\n"
          "  --ring N              descriptors per ring, power of two (default 256)\n"
          "  --no-huge             4K pages for the shared regions\n"
          "%s"
          "  --help                this text\n"
          "\n"
          "Output: 'measuring <unix_time>' after the warm-up, then one JSON line.\n"
          "Exit: 0 ok, 1 failure, 2 usage.\n",
          pp_options_help);
}

int Main(int argc, char** argv) {
  static const char kProg[] = "npa_bench_pingpong";
  std::string vhost, control;
  int cpu = -1;
  unsigned long ring = 256;
  bool no_huge = false;
  pp_options o;
  pp_options_default(&o);
  for (int i = 1; i < argc; i++) {
    int r = pp_parse_option(kProg, argc, argv, &i, &o);
    if (r < 0) return 2;
    if (r > 0) continue;
    std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--help" || a == "-h") {
      Usage(stdout);
      return 0;
    } else if (a == "--no-huge") {
      no_huge = true;
    } else if ((a == "--vhost-user" || a == "--control" || a == "--cpu" || a == "--ring") &&
               has_value) {
      const char* v = argv[++i];
      if (a == "--vhost-user") vhost = v;
      else if (a == "--control") control = v;
      else {
        char* end = nullptr;
        unsigned long n = strtoul(v, &end, 10);
        bool ok = end != v && *end == '\0' && v[0] != '-';
        if (a == "--cpu" && ok && n < 1024) cpu = static_cast<int>(n);
        else if (a == "--ring" && ok && n >= 64 && n <= 32768 && (n & (n - 1)) == 0) ring = n;
        else {
          fprintf(stderr, "%s: %s '%s': want %s\n", kProg, a.c_str(), v,
                  a == "--cpu" ? "a CPU number" : "a power of two, 64..32768");
          return 2;
        }
      }
    } else {
      fprintf(stderr, "%s: unknown argument or missing value: '%s' (see --help)\n", kProg,
              a.c_str());
      return 2;
    }
  }
  if (vhost.empty() == control.empty()) {
    fprintf(stderr, "%s: need exactly one of --vhost-user PATH, --control PATH\n", kProg);
    return 2;
  }
  if (cpu >= 0 && pp_pin(cpu) < 0) {
    fprintf(stderr, "%s: cannot pin to CPU %d: %s\n", kProg, cpu, strerror(errno));
    return 1;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);

  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  if (!vhost.empty()) oa.vhost_user_path = vhost.c_str();
  else oa.control_path = control.c_str();
  oa.name = "pingpong";
  oa.flags = (no_huge ? NPA_SHELL_F_NO_HUGEPAGES : 0) | NPA_SHELL_F_NO_RECONNECT;
  oa.connect_timeout_ms = 10000;
  Ctx x;
  int rc = npa_shell_open(&oa, &x.sh);
  if (rc < 0) {
    fprintf(stderr, "%s: open %s: %s\n", kProg, vhost.empty() ? control.c_str() : vhost.c_str(),
            npa_shell_last_error(nullptr));
    return 1;
  }
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.ring_size = static_cast<uint16_t>(ring);
  npa_shell_info info{};
  info.struct_size = sizeof info;
  if ((rc = npa_shell_configure(x.sh, &qc)) < 0 || (rc = npa_shell_start(x.sh)) < 0 ||
      (rc = npa_shell_get_info(x.sh, &info)) < 0 || (rc = x.intr_fd = npa_queue_intr_fd(x.sh, 0)) < 0) {
    fprintf(stderr, "%s: configure/start: %s\n", kProg, npa_shell_last_error(x.sh));
    npa_shell_close(x.sh);
    return 1;
  }
  memcpy(o.src_mac, info.mac, 6);
  fprintf(stderr, "%s: %s, %s mode, %u B, rate %s, ring %lu, %s pages\n", kProg,
          vhost.empty() ? "control socket" : "vhost-user", o.intr ? "interrupt" : "polling", o.size,
          o.rate > 0 ? std::to_string(static_cast<long>(o.rate)).c_str() : "back-to-back", ring,
          info.hugepages ? "2 MB" : "4 KiB");
  pp_io io{&x, Tx, Rx, o.intr ? Arm : nullptr, o.intr ? Sleep : nullptr};
  pp_result r;
  rc = pp_run(&io, &o, &g_stop, &r);
  npa_queue_stats qs{};
  qs.struct_size = sizeof qs;
  npa_shell_queue_stats(x.sh, 0, &qs);
  fprintf(stderr, "%s: shell counters: rx %llu tx %llu kicks %llu interrupts %llu rx_dropped %llu\n",
          kProg, static_cast<unsigned long long>(qs.rx_packets),
          static_cast<unsigned long long>(qs.tx_packets), static_cast<unsigned long long>(qs.kicks),
          static_cast<unsigned long long>(qs.interrupts),
          static_cast<unsigned long long>(qs.rx_dropped));
  npa_shell_close(x.sh);
  if (rc < 0) {
    fprintf(stderr, "%s: stopped: %s\n", kProg, strerror(-rc));
    return 1;
  }
  if (r.kept == 0) {
    fprintf(stderr, "%s: no round trip kept\n", kProg);
    return 1;
  }
  pp_print_json(stdout, "npa", &o, &r);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
