// npa-udp-peer: the demo's traffic peer, on an ordinary kernel UDP socket.
//
// Sends --count sequence-numbered datagrams to --to at --rate, receives the
// guest's stream on --bind, and checks it for loss, order and content. One
// line of counters per second; one JSON summary line at the end.
// Exit: 0 ok (no loss/reorder/corruption against --expect), 1 failed check
// or runtime error, 2 usage.
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/demo/netproto.h"

namespace {

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

bool ParseAddr(const char* s, sockaddr_in* out) {
  std::string str(s);
  size_t colon = str.rfind(':');
  if (colon == std::string::npos) return false;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(atoi(str.c_str() + colon + 1)));
  return inet_pton(AF_INET, str.substr(0, colon).c_str(), &out->sin_addr) == 1;
}

void Usage(FILE* f) {
  fprintf(f,
          "usage: npa-udp-peer --bind ADDR:PORT --to ADDR:PORT [options]\n"
          "\n"
          "The demo's traffic peer: sends a sequence-numbered UDP stream to the guest\n"
          "and checks the guest's stream for loss, order and content.\n"
          "\n"
          "  --bind ADDR:PORT   local address to receive on\n"
          "  --to ADDR:PORT     the guest\n"
          "  --count N          datagrams to send (default 10000)\n"
          "  --rate N           datagrams per second (default 5000)\n"
          "  --payload N        payload bytes, 16..1472 (default 64)\n"
          "  --expect N         datagrams the guest sends; checked at the end\n"
          "  --duration S       seconds to run (default 10)\n"
          "  --help             this text\n"
          "\n"
          "Exit: 0 ok, 1 failure or failed check, 2 usage.\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace npa::demo;
  sockaddr_in bind_addr{}, to{};
  bool have_bind = false, have_to = false;
  uint64_t count = 10000, expect = 0;
  uint32_t rate = 5000, payload = 64;
  double duration = 10;
  static const option kOpts[] = {
      {"bind", required_argument, nullptr, 'b'},   {"to", required_argument, nullptr, 't'},
      {"count", required_argument, nullptr, 'n'},  {"rate", required_argument, nullptr, 'r'},
      {"payload", required_argument, nullptr, 'l'}, {"expect", required_argument, nullptr, 'e'},
      {"duration", required_argument, nullptr, 'd'}, {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", kOpts, nullptr)) != -1) {
    switch (c) {
      case 'b': have_bind = ParseAddr(optarg, &bind_addr); break;
      case 't': have_to = ParseAddr(optarg, &to); break;
      case 'n': count = strtoull(optarg, nullptr, 0); break;
      case 'r': rate = static_cast<uint32_t>(strtoul(optarg, nullptr, 0)); break;
      case 'l': payload = static_cast<uint32_t>(strtoul(optarg, nullptr, 0)); break;
      case 'e': expect = strtoull(optarg, nullptr, 0); break;
      case 'd': duration = strtod(optarg, nullptr); break;
      case 'h': Usage(stdout); return 0;
      default: Usage(stderr); return 2;
    }
  }
  if (!have_bind || !have_to || payload < sizeof(StreamHeader) || payload > 1472 || rate == 0 ||
      duration <= 0 || expect > (1u << 20)) {
    Usage(stderr);
    return 2;
  }
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int rcvbuf = 8 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&bind_addr), sizeof bind_addr) < 0) {
    perror("npa-udp-peer: bind");
    return 1;
  }
  StreamStats rx;
  uint64_t sent = 0, send_errors = 0;
  std::vector<uint8_t> buf(2048), out(payload);
  const double t0 = Now();
  double next_report = t0 + 1;
  while (Now() - t0 < duration) {
    double now = Now();
    uint64_t due = static_cast<uint64_t>((now - t0) * rate) + 1;
    while (sent < count && sent < due) {
      StreamHeader h{kStreamMagic, 0, sent};
      memcpy(out.data(), &h, sizeof h);
      for (size_t i = sizeof h; i < payload; i++) out[i] = PatternByte(sent, i);
      if (sendto(s, out.data(), payload, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
        send_errors++;  // e.g. ARP for the guest not resolved yet: the kernel drops
        break;
      }
      sent++;
    }
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, 1) > 0) {
      for (int k = 0; k < 256; k++) {
        ssize_t n = recv(s, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n <= 0) break;
        rx.Account({buf.data(), static_cast<size_t>(n)});
      }
    }
    if (now >= next_report) {
      printf("peer  t=%4.1fs udp_tx=%" PRIu64 " udp_rx=%" PRIu64 " corrupt=%" PRIu64
             " ooo=%" PRIu64 "\n",
             now - t0, sent, rx.received, rx.corrupt, rx.out_of_order);
      fflush(stdout);
      next_report += 1;
    }
  }
  close(s);
  printf("{\"role\":\"peer\",\"udp_sent\":%" PRIu64 ",\"udp_received\":%" PRIu64
         ",\"udp_expected\":%" PRIu64 ",\"udp_lost\":%" PRIu64 ",\"udp_out_of_order\":%" PRIu64
         ",\"udp_duplicates\":%" PRIu64 ",\"udp_corrupt\":%" PRIu64 ",\"send_errors\":%" PRIu64
         "}\n",
         sent, rx.received, expect, rx.Lost(expect), rx.out_of_order, rx.duplicates, rx.corrupt,
         send_errors);
  bool ok = sent == count && (expect == 0 || (rx.Lost(expect) == 0 && rx.out_of_order == 0 &&
                                              rx.corrupt == 0 && rx.duplicates == 0));
  if (!ok) fprintf(stderr, "npa-udp-peer: checks failed (see summary)\n");
  return ok ? 0 : 1;
}
