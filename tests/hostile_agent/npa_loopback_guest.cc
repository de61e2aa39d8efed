// npa-loopback-guest: a well-behaved guest for hostile-guest tests. It sends
// sequence-numbered frames through npa-agent in --mode loopback (the agent
// reflects a guest's frames back to it) and checks that every frame comes
// back exactly once, in order and intact. One JSON line at the end.
//
//   npa-loopback-guest --control PATH [--rate N] [--seconds S] [--name NAME]
// Exit: 0 every frame came back, 1 loss/reorder/corruption or failure, 2 usage.
#include <getopt.h>
#include <time.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "npa/shell.h"

namespace {

constexpr uint16_t kEtherType = 0x88b5;  // IEEE local experimental

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

uint8_t Pattern(uint64_t seq, size_t i) { return static_cast<uint8_t>(seq * 29 + i * 3); }

size_t FrameLen(uint64_t seq) { return 60 + (seq * 97) % 1455; }  // 60..1514

}  // namespace

int main(int argc, char** argv) {
  std::string control, name = "good-guest";
  double rate = 20000, seconds = 6, drain = 2;
  static const option kOpts[] = {{"control", required_argument, nullptr, 'c'},
                                 {"rate", required_argument, nullptr, 'r'},
                                 {"seconds", required_argument, nullptr, 's'},
                                 {"name", required_argument, nullptr, 'n'},
                                 {"drain", required_argument, nullptr, 'd'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", kOpts, nullptr)) != -1) {
    switch (c) {
      case 'c': control = optarg; break;
      case 'r': rate = strtod(optarg, nullptr); break;
      case 's': seconds = strtod(optarg, nullptr); break;
      case 'n': name = optarg; break;
      case 'd': drain = strtod(optarg, nullptr); break;
      case 'h':
        printf("usage: npa-loopback-guest --control PATH [--rate N] [--seconds S] [--drain S] [--name NAME]\n"
               "Sends sequence-numbered frames through npa-agent --mode loopback and checks\n"
               "every one comes back once, in order, intact. Exit 0 ok, 1 failed, 2 usage.\n");
        return 0;
      default: return 2;
    }
  }
  if (control.empty() || rate <= 0 || seconds <= 0) {
    fprintf(stderr, "npa-loopback-guest: --control PATH is required (see --help)\n");
    return 2;
  }
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = control.c_str();
  oa.name = name.c_str();
  npa_shell* sh = nullptr;
  int rc = npa_shell_open(&oa, &sh);
  if (rc < 0) {
    fprintf(stderr, "npa-loopback-guest: open: %s\n", npa_shell_last_error(nullptr));
    return 1;
  }
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.ring_size = 512;
  if (npa_shell_configure(sh, &qc) < 0 || npa_shell_start(sh) < 0) {
    fprintf(stderr, "npa-loopback-guest: configure/start: %s\n", npa_shell_last_error(sh));
    npa_shell_close(sh);
    return 1;
  }
  npa_shell_info info{};
  info.struct_size = sizeof info;
  npa_shell_get_info(sh, &info);

  uint64_t sent = 0, got = 0, next = 0, misordered = 0, corrupt = 0;
  const double t0 = Now(), send_end = t0 + seconds;
  double last_rx = t0;
  npa_buf* b[32];
  // Send for `seconds`, then drain until `drain` seconds pass with nothing back.
  while (Now() < send_end || (got < sent && Now() - last_rx < drain)) {
    double now = Now();
    if (now < send_end) {
      uint64_t due = static_cast<uint64_t>((now - t0) * rate);
      uint16_t want = static_cast<uint16_t>(due > sent ? (due - sent > 32 ? 32 : due - sent) : 0);
      uint16_t n = want ? npa_buf_alloc(sh, 0, b, want) : 0;
      for (uint16_t i = 0; i < n; i++) {
        uint64_t seq = sent + i;
        uint8_t* f = static_cast<uint8_t*>(npa_buf_data(b[i]));
        size_t len = FrameLen(seq);
        memcpy(f, info.mac, 6);  // to ourselves: the agent reflects it anyway
        memcpy(f + 6, info.mac, 6);
        f[12] = kEtherType >> 8;
        f[13] = kEtherType & 0xff;
        memcpy(f + 14, &seq, 8);
        for (size_t k = 22; k < len; k++) f[k] = Pattern(seq, k);
        b[i]->data_len = static_cast<uint16_t>(len);
        b[i]->pkt_len = static_cast<uint32_t>(len);
      }
      uint16_t s = npa_tx_burst(sh, 0, b, n);
      if (s < n) {  // the ring is full now; these were never sent
        npa_buf_free(sh, 0, b + s, n - s);
      }
      sent += s;
    }
    uint16_t r = npa_rx_burst(sh, 0, b, 32);
    for (uint16_t i = 0; i < r; i++) {
      const uint8_t* f = static_cast<const uint8_t*>(npa_buf_data(b[i]));
      if (b[i]->pkt_len < 22 || b[i]->nb_segs != 1 || f[12] != (kEtherType >> 8)) continue;
      uint64_t seq;
      memcpy(&seq, f + 14, 8);
      bool ok = b[i]->data_len == FrameLen(seq);
      for (size_t k = 22; ok && k < b[i]->data_len; k++) ok = f[k] == Pattern(seq, k);
      if (!ok) corrupt++;
      if (seq < next) misordered++;  // a gap is loss, counted at the end
      if (seq + 1 > next) next = seq + 1;
      got++;
    }
    if (r) {
      npa_buf_free(sh, 0, b, r);
      last_rx = Now();
    } else {
      timespec ts{0, 20000};
      nanosleep(&ts, nullptr);
    }
  }
  npa_shell_close(sh);
  printf("{\"role\":\"good-guest\",\"sent\":%" PRIu64 ",\"received\":%" PRIu64
         ",\"lost\":%" PRIu64 ",\"misordered\":%" PRIu64 ",\"corrupt\":%" PRIu64 "}\n",
         sent, got, sent > got ? sent - got : 0, misordered, corrupt);
  bool ok = sent > 0 && got == sent && misordered == 0 && corrupt == 0;
  if (!ok) fprintf(stderr, "npa-loopback-guest: traffic check failed\n");
  return ok ? 0 : 1;
}
