// npa-guest-demo: a tiny guest driver on libnpa_shell for the live demo.
//
// It owns an IPv4 address with no kernel stack underneath: it answers ARP
// and ICMP echo, resolves its peer, sends a sequence-numbered UDP stream to
// it, and checks the peer's stream for loss, order and content. One line of
// counters per second; one JSON summary line at the end.
//
// Exit codes: 0 the run completed (and, with --expect, no loss, reordering
// or corruption); 1 a runtime failure (shell, peer never resolved) or a
// failed check; 2 usage.
#include <arpa/inet.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "npa/shell.h"
#include "tests/demo/netproto.h"

namespace npa::demo {
namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

struct Options {
  std::string control;
  std::string vhost_user;
  uint32_t ip = 0, peer_ip = 0;
  uint16_t port = 9000;
  uint64_t count = 10000;     // datagrams to send
  uint64_t expect = 0;        // datagrams expected from the peer (0 = don't check)
  uint32_t rate = 5000;       // datagrams per second
  uint32_t payload = 64;
  double duration = 10;       // seconds
  bool interrupt = false;
  bool wait_peer = true;      // start sending when the peer's stream arrives
};

void Usage(FILE* f) {
  fprintf(f,
          "usage: npa-guest-demo (--control PATH | --vhost-user PATH) --ip A.B.C.D\n"
          "                      --peer-ip A.B.C.D [options]\n"
          "\n"
          "A demo guest driver on libnpa_shell: answers ARP and ping for --ip, sends a\n"
          "sequence-numbered UDP stream to --peer-ip, and checks the peer's stream.\n"
          "\n"
          "  --control PATH      npa-agent control socket (normal mode)\n"
          "  --vhost-user PATH   standalone vhost-user back end instead of an agent\n"
          "  --ip ADDR           this guest's IPv4 address\n"
          "  --peer-ip ADDR      the traffic peer's IPv4 address\n"
          "  --port N            UDP port on both sides (default 9000)\n"
          "  --count N           datagrams to send (default 10000; 0 = none)\n"
          "  --rate N            datagrams per second (default 5000)\n"
          "  --payload N         UDP payload bytes, 16..1472 (default 64)\n"
          "  --expect N          datagrams the peer will send; checked at the end\n"
          "  --duration S        seconds to run (default 10)\n"
          "  --interrupt         sleep on the queue's interrupt fd when idle\n"
          "  --no-wait-peer      send at once instead of after the peer's first datagram\n"
          "  --help              this text\n"
          "\n"
          "Exit: 0 ok, 1 failure or failed check, 2 usage.\n");
}

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

class Guest {
 public:
  Guest(npa_shell* sh, const Options& o, Mac mac) : sh_(sh), o_(o), mac_(mac) {}

  int Run();

 private:
  void HandleFrame(npa_buf* b);
  void HandleArp(const uint8_t* f, size_t len);
  void HandleIpv4(const uint8_t* f, size_t len);
  // Queue one frame built by fn into a pool buffer; sent at the next flush.
  template <typename Fn>
  bool Emit(Fn&& fn);
  void Flush();
  void Report(double t, bool final);

  npa_shell* sh_;
  Options o_;
  Mac mac_;
  Mac peer_mac_{};
  bool peer_known_ = false;
  npa_buf* out_[64];
  uint16_t nout_ = 0;

  uint64_t arp_replies_ = 0, arp_requests_ = 0, icmp_echo_ = 0, other_ = 0;
  uint64_t udp_sent_ = 0, tx_dropped_ = 0;
  StreamStats rx_stream_;
};

template <typename Fn>
bool Guest::Emit(Fn&& fn) {
  if (nout_ == 64) Flush();
  npa_buf* b;
  if (npa_buf_alloc(sh_, 0, &b, 1) != 1) {
    tx_dropped_++;
    return false;
  }
  size_t len = fn(static_cast<uint8_t*>(npa_buf_data(b)));
  b->data_len = static_cast<uint16_t>(len);
  b->pkt_len = static_cast<uint32_t>(len);
  out_[nout_++] = b;
  return true;
}

void Guest::Flush() {
  uint16_t done = 0;
  // Bounded retry: the ring may be momentarily full while the agent drains it.
  for (int tries = 0; done < nout_ && tries < 1000; tries++) {
    done += npa_tx_burst(sh_, 0, out_ + done, nout_ - done);
    if (done < nout_) {
      timespec ts{0, 20000};
      nanosleep(&ts, nullptr);
    }
  }
  if (done < nout_) {
    tx_dropped_ += nout_ - done;
    npa_buf_free(sh_, 0, out_ + done, nout_ - done);
  }
  nout_ = 0;
}

void Guest::HandleArp(const uint8_t* f, size_t len) {
  if (len < kEthHdr + 28) return;
  const uint8_t* a = f + kEthHdr;
  uint16_t op = static_cast<uint16_t>((a[6] << 8) | a[7]);
  Mac sha;
  memcpy(sha.data(), a + 8, 6);
  uint32_t spa, tpa;
  memcpy(&spa, a + 14, 4);
  memcpy(&tpa, a + 24, 4);
  if (spa == o_.peer_ip) {  // learn the peer from any ARP it sends
    peer_mac_ = sha;
    peer_known_ = true;
  }
  if (op == 1 && tpa == o_.ip) {
    arp_requests_++;
    Emit([&](uint8_t* out) { return BuildArp(out, 2, mac_, o_.ip, sha, spa); });
  } else if (op == 2) {
    arp_replies_++;
  }
}

void Guest::HandleIpv4(const uint8_t* f, size_t len) {
  if (len < kEthHdr + kIpHdr) return;
  const uint8_t* ip = f + kEthHdr;
  size_t ihl = (ip[0] & 0x0f) * 4u;
  uint16_t tot = static_cast<uint16_t>((ip[2] << 8) | ip[3]);
  if ((ip[0] >> 4) != 4 || ihl < kIpHdr || tot < ihl || kEthHdr + tot > len) return;
  uint32_t dst;
  memcpy(&dst, ip + 16, 4);
  if (dst != o_.ip) return;
  const uint8_t* l4 = ip + ihl;
  size_t l4len = tot - ihl;
  if (ip[9] == 1 && l4len >= 8 && l4[0] == 8) {  // ICMP echo request -> reply
    icmp_echo_++;
    Emit([&](uint8_t* out) {
      size_t n = kEthHdr + tot;
      memcpy(out, f, n);
      memcpy(out, f + 6, 6);  // swap MACs
      memcpy(out + 6, mac_.data(), 6);
      uint8_t* rip = out + kEthHdr;
      memcpy(rip + 12, ip + 16, 4);  // swap addresses
      memcpy(rip + 16, ip + 12, 4);
      rip[8] = 64;
      rip[10] = rip[11] = 0;
      uint16_t c = htons(CsumFold(CsumPartial(rip, ihl, 0)));
      memcpy(rip + 10, &c, 2);
      uint8_t* icmp = rip + ihl;
      icmp[0] = 0;  // echo reply
      icmp[2] = icmp[3] = 0;
      c = htons(CsumFold(CsumPartial(icmp, l4len, 0)));
      memcpy(icmp + 2, &c, 2);
      return n;
    });
  } else if (ip[9] == 17 && l4len >= kUdpHdr) {
    uint16_t dport = static_cast<uint16_t>((l4[2] << 8) | l4[3]);
    if (dport == o_.port) {
      rx_stream_.Account({l4 + kUdpHdr, l4len - kUdpHdr});
    } else {
      other_++;
    }
  } else {
    other_++;
  }
}

void Guest::HandleFrame(npa_buf* b) {
  // The demo's frames fit one segment; a chained frame is linearised here.
  uint8_t tmp[9216];
  const uint8_t* f = static_cast<const uint8_t*>(npa_buf_data(b));
  size_t len = b->data_len;
  if (b->nb_segs > 1) {
    len = 0;
    for (npa_buf* s = b; s != nullptr && len + s->data_len <= sizeof tmp; s = s->next) {
      memcpy(tmp + len, npa_buf_data(s), s->data_len);
      len += s->data_len;
    }
    f = tmp;
  }
  if (len < kEthHdr) return;
  uint16_t type = static_cast<uint16_t>((f[12] << 8) | f[13]);
  if (type == kEthArp)
    HandleArp(f, len);
  else if (type == kEthIpv4)
    HandleIpv4(f, len);
  else
    other_++;
}

void Guest::Report(double t, bool final) {
  npa_queue_stats qs{};
  qs.struct_size = sizeof qs;
  npa_shell_queue_stats(sh_, UINT16_MAX, &qs);
  if (!final) {
    printf("guest t=%4.1fs rx=%" PRIu64 " tx=%" PRIu64 " arp_req=%" PRIu64 " icmp_echo=%" PRIu64
           " udp_tx=%" PRIu64 " udp_rx=%" PRIu64 " udp_corrupt=%" PRIu64 " udp_ooo=%" PRIu64
           "\n",
           t, qs.rx_packets, qs.tx_packets, arp_requests_, icmp_echo_, udp_sent_,
           rx_stream_.received, rx_stream_.corrupt, rx_stream_.out_of_order);
    fflush(stdout);
    return;
  }
  printf("{\"role\":\"guest\",\"rx_packets\":%" PRIu64 ",\"tx_packets\":%" PRIu64
         ",\"arp_requests\":%" PRIu64 ",\"icmp_echo\":%" PRIu64 ",\"udp_sent\":%" PRIu64
         ",\"udp_received\":%" PRIu64 ",\"udp_expected\":%" PRIu64 ",\"udp_lost\":%" PRIu64
         ",\"udp_out_of_order\":%" PRIu64 ",\"udp_duplicates\":%" PRIu64
         ",\"udp_corrupt\":%" PRIu64 ",\"tx_dropped\":%" PRIu64 ",\"peer_resolved\":%s}\n",
         qs.rx_packets, qs.tx_packets, arp_requests_, icmp_echo_, udp_sent_,
         rx_stream_.received, o_.expect, rx_stream_.Lost(o_.expect), rx_stream_.out_of_order,
         rx_stream_.duplicates, rx_stream_.corrupt, tx_dropped_, peer_known_ ? "true" : "false");
  fflush(stdout);
}

int Guest::Run() {
  const double t0 = Now();
  double next_report = t0 + 1, next_arp = t0, send_start = 0;
  npa_buf* in[32];
  bool intr_armed = false;
  while (!g_stop) {
    double now = Now();
    if (now - t0 >= o_.duration) break;
    uint16_t n = npa_rx_burst(sh_, 0, in, 32);
    for (uint16_t i = 0; i < n; i++) HandleFrame(in[i]);
    if (n) npa_buf_free(sh_, 0, in, n);

    if (!peer_known_ && now >= next_arp) {  // resolve the peer, 5 tries a second
      Emit([&](uint8_t* out) { return BuildArp(out, 1, mac_, o_.ip, Mac{}, o_.peer_ip); });
      next_arp = now + 0.2;
    }
    // The stream starts once the peer's own stream is heard: then the peer's
    // socket is certainly bound and nothing we send meets a closed port.
    bool peer_listening = !o_.wait_peer || rx_stream_.received > 0;
    if (peer_known_ && peer_listening && udp_sent_ < o_.count) {
      if (send_start == 0) send_start = now;
      // Pace to --rate: send what the schedule says is due, a burst at most.
      uint64_t due = static_cast<uint64_t>((now - send_start) * o_.rate) + 1;
      for (int k = 0; k < 32 && udp_sent_ < due && udp_sent_ < o_.count; k++) {
        uint64_t seq = udp_sent_;
        if (!Emit([&](uint8_t* out) {
              return BuildUdpStream(out, mac_, peer_mac_, o_.ip, o_.peer_ip, o_.port, o_.port,
                                    seq, o_.payload);
            }))
          break;
        udp_sent_++;
      }
    }
    Flush();
    if (now >= next_report) {
      Report(now - t0, false);
      next_report += 1;
    }
    if (n == 0 && o_.interrupt && (udp_sent_ >= o_.count || !peer_known_)) {
      // Interrupt mode: arm, re-poll once (closes the race with a frame that
      // arrived before arming), then sleep on the queue's fd.
      if (!intr_armed) {
        npa_queue_intr_enable(sh_, 0, 1);
        intr_armed = true;
        continue;
      }
      pollfd p{npa_queue_intr_fd(sh_, 0), POLLIN, 0};
      if (poll(&p, 1, 50) > 0) npa_queue_intr_ack(sh_, 0);
      npa_queue_intr_enable(sh_, 0, 0);
      intr_armed = false;
    } else if (n == 0) {
      timespec ts{0, 50000};  // a demo need not burn a core while idle
      nanosleep(&ts, nullptr);
    }
  }
  Report(Now() - t0, false);
  Report(Now() - t0, true);
  bool ok = peer_known_ || o_.count == 0;
  if (o_.expect) {
    ok = ok && rx_stream_.Lost(o_.expect) == 0 && rx_stream_.out_of_order == 0 &&
         rx_stream_.corrupt == 0 && rx_stream_.duplicates == 0;
  }
  ok = ok && tx_dropped_ == 0;
  if (!ok) fprintf(stderr, "npa-guest-demo: checks failed (see summary)\n");
  return ok ? 0 : 1;
}

bool ParseIp(const char* s, uint32_t* out) { return inet_pton(AF_INET, s, out) == 1; }

}  // namespace
}  // namespace npa::demo

int main(int argc, char** argv) {
  using namespace npa::demo;
  Options o;
  static const option kOpts[] = {
      {"control", required_argument, nullptr, 'c'}, {"vhost-user", required_argument, nullptr, 'v'},
      {"ip", required_argument, nullptr, 'i'},      {"peer-ip", required_argument, nullptr, 'p'},
      {"port", required_argument, nullptr, 'P'},    {"count", required_argument, nullptr, 'n'},
      {"rate", required_argument, nullptr, 'r'},    {"payload", required_argument, nullptr, 'l'},
      {"expect", required_argument, nullptr, 'e'},  {"duration", required_argument, nullptr, 'd'},
      {"interrupt", no_argument, nullptr, 'I'},     {"help", no_argument, nullptr, 'h'},
      {"no-wait-peer", no_argument, nullptr, 'W'},
      {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", kOpts, nullptr)) != -1) {
    switch (c) {
      case 'c': o.control = optarg; break;
      case 'v': o.vhost_user = optarg; break;
      case 'i':
        if (!ParseIp(optarg, &o.ip)) { fprintf(stderr, "npa-guest-demo: bad --ip '%s'\n", optarg); return 2; }
        break;
      case 'p':
        if (!ParseIp(optarg, &o.peer_ip)) { fprintf(stderr, "npa-guest-demo: bad --peer-ip '%s'\n", optarg); return 2; }
        break;
      case 'P': o.port = static_cast<uint16_t>(strtoul(optarg, nullptr, 0)); break;
      case 'n': o.count = strtoull(optarg, nullptr, 0); break;
      case 'r': o.rate = static_cast<uint32_t>(strtoul(optarg, nullptr, 0)); break;
      case 'l': o.payload = static_cast<uint32_t>(strtoul(optarg, nullptr, 0)); break;
      case 'e': o.expect = strtoull(optarg, nullptr, 0); break;
      case 'd': o.duration = strtod(optarg, nullptr); break;
      case 'I': o.interrupt = true; break;
      case 'W': o.wait_peer = false; break;
      case 'h': Usage(stdout); return 0;
      default: Usage(stderr); return 2;
    }
  }
  if ((o.control.empty() == o.vhost_user.empty()) || o.ip == 0 || o.peer_ip == 0 ||
      o.payload < sizeof(StreamHeader) || o.payload > 1472 || o.rate == 0 || o.duration <= 0 ||
      o.expect > (1u << 20)) {
    Usage(stderr);
    return 2;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);

  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = o.control.empty() ? nullptr : o.control.c_str();
  oa.vhost_user_path = o.vhost_user.empty() ? nullptr : o.vhost_user.c_str();
  oa.name = "demo-guest";
  if (o.interrupt) oa.flags |= NPA_SHELL_F_INTERRUPT;
  npa_shell* sh = nullptr;
  int rc = npa_shell_open(&oa, &sh);
  if (rc < 0) {
    fprintf(stderr, "npa-guest-demo: open shell: %s (%s)\n", strerror(-rc), npa_shell_last_error(nullptr));
    return 1;
  }
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.nb_queue_pairs = 1;
  qc.ring_size = 256;
  if ((rc = npa_shell_configure(sh, &qc)) < 0 || (rc = npa_shell_start(sh)) < 0) {
    fprintf(stderr, "npa-guest-demo: configure/start: %s (%s)\n", strerror(-rc), npa_shell_last_error(sh));
    npa_shell_close(sh);
    return 1;
  }
  npa_shell_info info{};
  info.struct_size = sizeof info;
  npa_shell_get_info(sh, &info);
  Mac mac;
  memcpy(mac.data(), info.mac, 6);
  char ipbuf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &o.ip, ipbuf, sizeof ipbuf);
  printf("guest up: mac %s ip %s path %s hugepages %s\n", MacToString(mac).c_str(), ipbuf,
         info.path == NPA_PATH_EMULATED ? "emulated" : info.path == NPA_PATH_VF ? "vf" : "none",
         info.hugepages ? "yes" : "no");
  fflush(stdout);
  Guest g(sh, o, mac);
  int ret = g.Run();
  npa_shell_close(sh);
  return ret;
}
