// npa-lab-story: traffic and observation for the two-host lab
// (tests/lab/scenarios/9x-*.sh, scripts/demo.sh; topology in docs/vfio-lab.md).
// One binary, four roles:
//
//   guest  --socket S --name N --ip A --peer-ip P --peer-mac M [--mac M] [--port N]
//          [--pps R] [--secs T] --out FILE [--hosts A,B] [--tick MS] [--reconnect-ms MS]
//          A guest process on libnpa_shell (no kernel stack under it): sends a
//          sequence-numbered unicast UDP stream (tests/demo/netproto.h) to
//          P:port at R datagrams/s on whatever path and agent the shell is on,
//          answers ARP for A, and records every stream datagram P sends it.
//          Every --tick ms one timeline line:
//            TL t=<s> host=<h> path=vf|emulated plugin=<p> tx=<n> rx=<n> lost_rx=<n> gap_ms=<g>
//          (host: the --hosts entry, advanced on each NPA_EVENT_MIGRATED;
//          lost_rx: numbers below the highest seen that have not arrived).
//          Every shell event: "EVENT mono=<s> path=..|migrated|error=.. <detail>".
//          Every RX gap over 20 ms: "GAP rx mono_end=<s> ms=<g>".
//          SIGUSR1: stop sending, keep receiving. SIGTERM or T seconds: finish,
//          print "GUEST: sent=.. received=.. duplicates=.. reordered=.. max_rx_gap_ms=.."
//          and write the RX record to --out. --reconnect-ms: the shell's
//          npa_shell_open_args.reconnect_ms (an agent restarted under TCG
//          takes longer than the default 3 s to listen again).
//   peer   --ip P --guest-ip A [--port N] [--pps R] [--secs T] --out FILE [--tick MS]
//          The traffic peer on a kernel UDP socket (in its own namespace):
//          starts its own stream to A when the guest's first datagram arrives
//          (so nothing is sent before the guest exists), records the guest's
//          stream. Same signals; every --tick ms "PTL sent=.. rx=.. lost_rx=..";
//          final line "PEER: sent=.. received=.. ...".
//   watch  --if IF[,IF...] --mac M [--secs T]
//          AF_PACKET on bridge ports: per port, frames the bridge sent out
//          to M (out_to), frames from M that came in (in_from), and RARP
//          announcements of M (common/announce.h) in each direction. Each
//          announcement at once: "RARP if=<if> dir=in|out mono=<s>".
//          SIGUSR1: "WATCH mono=<s> <if>:out_to=..,in_from=..,rarp_in=..,rarp_out=.. ..."
//          (cumulative). SIGTERM or T seconds: the same line, then exit.
//   check  --file F --expect N
//          A record: every number in [0, N) seen exactly once, none beyond.
//          "CHECK: expect=.. received=.. missing=.. duplicates=.. beyond=.. first_missing=..";
//          exit 0 if none missing, duplicated or beyond.
//
// Records hold one byte per sequence number (times seen, saturating at 255).
// Times: "mono" is CLOCK_MONOTONIC in seconds, which in the lab guest equals
// /proc/uptime (no suspend), so scripts line it up with their own phase marks.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "common/announce.h"
#include "common/clock.h"
#include "npa/shell.h"
#include "tests/demo/netproto.h"

namespace {

using npa::demo::Mac;
using npa::demo::StreamHeader;

constexpr uint64_t kMaxSeq = 1u << 22;
constexpr size_t kPayload = 64;

volatile sig_atomic_t g_stop = 0, g_usr1 = 0;
void OnStop(int) { g_stop = 1; }
void OnUsr1(int) { g_usr1 = 1; }

double Mono() { return static_cast<double>(npa::MonotonicNs()) / 1e9; }

struct Args {
  std::string role, socket, name, out, file, hosts = "A", ifs;
  uint32_t ip = 0, peer_ip = 0;
  Mac peer_mac{}, mac{};
  bool has_peer_mac = false, has_mac = false;
  uint16_t port = 9000;
  double pps = 300, secs = 60, tick_ms = 250, reconnect_ms = 0;
  uint64_t expect = 0;
  bool has_expect = false;
};

int Usage(const char* why) {
  fprintf(stderr,
          "npa-lab-story: %s\n"
          "usage: npa-lab-story guest --socket S --name N --ip A --peer-ip P --peer-mac M [--mac M]\n"
          "                           [--port N] [--pps R] [--secs T] --out FILE [--hosts A,B] [--tick MS]\n"
          "                           [--reconnect-ms MS]\n"
          "       npa-lab-story peer --ip P --guest-ip A [--port N] [--pps R] [--secs T] --out FILE [--tick MS]\n"
          "       npa-lab-story watch --if IF[,IF...] --mac M [--secs T]\n"
          "       npa-lab-story check --file F --expect N\n",
          why);
  return 2;
}

// What one receiver saw of a stream, and how it arrived.
struct Record {
  std::vector<uint8_t> count = std::vector<uint8_t>(kMaxSeq, 0);
  uint64_t received = 0, distinct = 0, dups = 0, reordered = 0, corrupt = 0, hi = 0;
  uint64_t last_ns = 0, max_gap_ns = 0;
  // Takes one UDP payload; false if it is not a stream datagram.
  bool Take(std::span<const uint8_t> p, const char* who) {
    StreamHeader h;
    if (p.size() < sizeof h) return false;
    memcpy(&h, p.data(), sizeof h);
    if (h.magic != npa::demo::kStreamMagic) return false;
    if (h.seq >= kMaxSeq) {
      corrupt++;
      return true;
    }
    for (size_t i = sizeof h; i < p.size(); i++)
      if (p[i] != npa::demo::PatternByte(h.seq, i)) {
        corrupt++;
        return true;
      }
    const uint64_t now = npa::MonotonicNs();
    if (last_ns && now - last_ns > max_gap_ns) max_gap_ns = now - last_ns;
    if (last_ns && now - last_ns > 20000000ull) {
      printf("GAP %s mono_end=%.6f ms=%.1f\n", who, static_cast<double>(now) / 1e9,
             static_cast<double>(now - last_ns) / 1e6);
      fflush(stdout);
    }
    last_ns = now;
    received++;
    if (count[h.seq]) dups++;
    else distinct++;
    if (count[h.seq] < 255) count[h.seq]++;
    if (h.seq + 1 < hi) reordered++;
    if (h.seq + 1 > hi) hi = h.seq + 1;
    return true;
  }
  uint64_t LostSoFar() const { return hi - distinct; }
  bool Write(const std::string& path) const {
    FILE* f = fopen(path.c_str(), "wb");
    if (!f) return false;
    bool ok = fwrite(&hi, 8, 1, f) == 1 && (hi == 0 || fwrite(count.data(), 1, hi, f) == hi);
    return fclose(f) == 0 && ok;
  }
};

void FillPayload(uint8_t* p, uint64_t seq) {
  StreamHeader h{npa::demo::kStreamMagic, 0, seq};
  memcpy(p, &h, sizeof h);
  for (size_t i = sizeof h; i < kPayload; i++) p[i] = npa::demo::PatternByte(seq, i);
}

// ---------------------------------------------------------------- guest
struct Guest {
  explicit Guest(const Args& args) : a(args) {}
  const Args& a;
  npa_shell* sh = nullptr;
  Mac mac{};
  Record rx;
  std::vector<std::string> hosts;
  size_t host = 0;
  // Frames built but not yet taken by the TX ring, in order; stream[i]
  // tells a stream datagram from an ARP reply.
  npa_buf* out[64];
  bool stream[64];
  uint16_t nout = 0;
  uint64_t next_seq = 0, sent = 0, arp_answered = 0;

  void Events() {
    npa_event ev;
    ev.struct_size = sizeof ev;
    while (npa_shell_next_event(sh, &ev) == 1) {
      const double t = static_cast<double>(ev.timestamp_ns) / 1e9;
      if (ev.type == NPA_EVENT_PATH_CHANGED) {
        printf("EVENT mono=%.6f path=%s %s\n", t, ev.u.path == NPA_PATH_VF ? "vf" : "emulated",
               ev.detail);
      } else if (ev.type == NPA_EVENT_MIGRATED) {
        if (host + 1 < hosts.size()) host++;
        printf("EVENT mono=%.6f migrated host=%s %s\n", t, hosts[host].c_str(), ev.detail);
      } else if (ev.type == NPA_EVENT_ERROR) {
        printf("EVENT mono=%.6f error=%d %s\n", t, ev.u.error, ev.detail);
      } else {
        printf("EVENT mono=%.6f type=%d %s\n", t, ev.type, ev.detail);
      }
      fflush(stdout);
    }
  }
  // Returns how many frames the ring took; what it did not take now is
  // kept, in order, for the next round (never dropped, never reordered).
  uint16_t Flush() {
    const uint16_t s = nout ? npa_tx_burst(sh, 0, out, nout) : 0;
    for (uint16_t i = 0; i < s; i++) sent += stream[i];
    memmove(out, out + s, (nout - s) * sizeof out[0]);
    memmove(stream, stream + s, (nout - s) * sizeof stream[0]);
    nout = static_cast<uint16_t>(nout - s);
    return s;
  }
  void Frame(const uint8_t* f, size_t len) {
    using namespace npa::demo;
    if (len < kEthHdr) return;
    const uint16_t type = static_cast<uint16_t>(f[12] << 8 | f[13]);
    if (type == kEthArp && len >= kEthHdr + 28) {
      const uint8_t* p = f + kEthHdr;
      uint32_t spa, tpa;
      memcpy(&spa, p + 14, 4);
      memcpy(&tpa, p + 24, 4);
      if (p[7] == 1 && tpa == a.ip && nout < 64) {
        npa_buf* b;
        if (npa_buf_alloc(sh, 0, &b, 1) != 1) return;
        Mac sha;
        memcpy(sha.data(), p + 8, 6);
        const size_t n = BuildArp(static_cast<uint8_t*>(npa_buf_data(b)), 2, mac, a.ip, sha, spa);
        b->data_len = static_cast<uint16_t>(n);
        b->pkt_len = static_cast<uint32_t>(n);
        stream[nout] = false;
        out[nout++] = b;
        arp_answered++;
      }
      return;
    }
    if (type != kEthIpv4 || len < kEthHdr + kIpHdr + kUdpHdr) return;
    const uint8_t* ip = f + kEthHdr;
    const size_t ihl = (ip[0] & 0x0f) * 4u;
    const size_t tot = static_cast<size_t>(ip[2] << 8 | ip[3]);
    uint32_t dst;
    memcpy(&dst, ip + 16, 4);
    if (ip[9] != 17 || dst != a.ip || ihl < kIpHdr || tot < ihl + kUdpHdr || kEthHdr + tot > len)
      return;
    const uint8_t* u = ip + ihl;
    if (static_cast<uint16_t>(u[2] << 8 | u[3]) != a.port) return;
    rx.Take({u + kUdpHdr, tot - ihl - kUdpHdr}, "rx");
  }
  int Run() {
    npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
    oa.control_path = a.socket.c_str();
    oa.name = a.name.c_str();
    oa.flags = NPA_SHELL_F_NO_HUGEPAGES;
    if (a.has_mac) memcpy(oa.mac, a.mac.data(), 6);
    oa.reconnect_ms = static_cast<uint32_t>(a.reconnect_ms);
    if (npa_shell_open(&oa, &sh) < 0) {
      printf("FAIL: open: %s\n", npa_shell_last_error(nullptr));
      return 1;
    }
    npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
    qc.ring_size = 256;
    if (npa_shell_configure(sh, &qc) < 0 || npa_shell_start(sh) < 0) {
      printf("FAIL: configure/start: %s\n", npa_shell_last_error(nullptr));
      npa_shell_close(sh);
      return 1;
    }
    npa_shell_info in{};
    in.struct_size = sizeof in;
    npa_shell_get_info(sh, &in);
    memcpy(mac.data(), in.mac, 6);
    printf("SHELL: %s mac %s host %s\n", a.name.c_str(), npa::demo::MacToString(mac).c_str(),
           hosts[0].c_str());
    fflush(stdout);
    const uint64_t start = npa::MonotonicNs(), end = start + static_cast<uint64_t>(a.secs * 1e9);
    const uint64_t tick = static_cast<uint64_t>(a.tick_ms * 1e6);
    uint64_t next_tick = start + tick, tx_gap_ns = 0, last_tx = 0;
    bool sending = true;
    while (!g_stop && npa::MonotonicNs() < end) {
      if (g_usr1) sending = false;
      npa_buf* r[32];
      const uint16_t got = npa_rx_burst(sh, 0, r, 32);
      for (uint16_t i = 0; i < got; i++)
        if (r[i]->nb_segs == 1) Frame(static_cast<const uint8_t*>(npa_buf_data(r[i])), r[i]->data_len);
      if (got) npa_buf_free(sh, 0, r, got);
      const uint64_t now = npa::MonotonicNs();
      const uint64_t due = sending ? static_cast<uint64_t>(static_cast<double>(now - start) * a.pps / 1e9) + 1 : 0;
      const uint16_t want =
          static_cast<uint16_t>(std::min<uint64_t>(due > next_seq ? due - next_seq : 0, 64 - nout));
      if (want) {
        npa_buf* b[64];
        const uint16_t n = npa_buf_alloc(sh, 0, b, want);
        for (uint16_t i = 0; i < n; i++) {
          const size_t len = npa::demo::BuildUdpStream(static_cast<uint8_t*>(npa_buf_data(b[i])), mac,
                                                       a.peer_mac, a.ip, a.peer_ip, a.port, a.port,
                                                       next_seq++, kPayload);
          b[i]->data_len = static_cast<uint16_t>(len);
          b[i]->pkt_len = static_cast<uint32_t>(len);
          stream[nout] = true;
          out[nout++] = b[i];
        }
      }
      // The longest time the TX ring took nothing while frames waited.
      if (Flush() || !nout) {
        if (last_tx && now - last_tx > tx_gap_ns) tx_gap_ns = now - last_tx;
        last_tx = now;
      }
      Events();
      if (now >= next_tick) {
        npa_shell_get_info(sh, &in);
        printf("TL t=%.2f host=%s path=%s plugin=%s tx=%llu rx=%llu lost_rx=%llu gap_ms=%.1f\n",
               static_cast<double>(now - start) / 1e9, hosts[host].c_str(),
               in.path == NPA_PATH_VF ? "vf" : "emulated", in.plugin[0] ? in.plugin : "-",
               (unsigned long long)sent, (unsigned long long)rx.distinct,
               (unsigned long long)rx.LostSoFar(),
               rx.last_ns ? static_cast<double>(now - rx.last_ns) / 1e6 : 0.0);
        fflush(stdout);
        next_tick += tick;
      }
      if (!got) usleep(300);
    }
    // Let the path complete what it took.
    for (int i = 0; i < 50 && nout; i++) {
      Flush();
      usleep(2000);
    }
    if (nout) npa_buf_free(sh, 0, out, nout);
    Events();
    npa_shell_get_info(sh, &in);
    printf("GUEST: sent=%llu received=%llu distinct=%llu duplicates=%llu reordered=%llu corrupt=%llu "
           "max_rx_gap_ms=%.1f max_tx_gap_ms=%.1f arp_answered=%llu host=%s path=%s plugin=%s\n",
           (unsigned long long)sent, (unsigned long long)rx.received,
           (unsigned long long)rx.distinct, (unsigned long long)rx.dups,
           (unsigned long long)rx.reordered, (unsigned long long)rx.corrupt,
           static_cast<double>(rx.max_gap_ns) / 1e6, static_cast<double>(tx_gap_ns) / 1e6,
           (unsigned long long)arp_answered, hosts[host].c_str(),
           in.path == NPA_PATH_VF ? "vf" : "emulated", in.plugin[0] ? in.plugin : "-");
    fflush(stdout);
    const bool ok = rx.Write(a.out);
    npa_shell_close(sh);
    return ok ? 0 : 1;
  }
};

// ----------------------------------------------------------------- peer
int Peer(const Args& a) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return perror("socket"), 1;
  int buf = 4 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
  sockaddr_in me{}, to{};
  me.sin_family = to.sin_family = AF_INET;
  me.sin_port = to.sin_port = htons(a.port);
  me.sin_addr.s_addr = a.peer_ip;
  to.sin_addr.s_addr = a.ip;
  if (bind(s, reinterpret_cast<sockaddr*>(&me), sizeof me) < 0) return perror("bind"), 1;
  printf("READY\n");
  fflush(stdout);
  Record rx;
  uint64_t sent = 0, start = 0, send_errors = 0;
  const uint64_t end = npa::MonotonicNs() + static_cast<uint64_t>(a.secs * 1e9);
  uint8_t b[2048];
  const uint64_t tick = static_cast<uint64_t>(a.tick_ms * 1e6);
  uint64_t next_tick = npa::MonotonicNs() + tick;
  while (!g_stop && npa::MonotonicNs() < end) {
    if (npa::MonotonicNs() >= next_tick) {
      printf("PTL sent=%llu rx=%llu lost_rx=%llu\n", (unsigned long long)sent,
             (unsigned long long)rx.distinct, (unsigned long long)rx.LostSoFar());
      fflush(stdout);
      next_tick += tick;
    }
    pollfd p{s, POLLIN, 0};
    poll(&p, 1, 1);
    for (int i = 0; i < 256; i++) {
      ssize_t n = recv(s, b, sizeof b, MSG_DONTWAIT);
      if (n <= 0) break;
      rx.Take({b, static_cast<size_t>(n)}, "peer_rx");
    }
    if (!start && rx.received) start = npa::MonotonicNs();
    if (!start || g_usr1) continue;
    const uint64_t due = static_cast<uint64_t>(static_cast<double>(npa::MonotonicNs() - start) * a.pps / 1e9) + 1;
    for (int k = 0; k < 32 && sent < due; k++) {
      FillPayload(b, sent);
      if (sendto(s, b, kPayload, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) != static_cast<ssize_t>(kPayload)) {
        send_errors++;  // ENOBUFS/EAGAIN: the same number goes again next round
        break;
      }
      sent++;
    }
  }
  printf("PEER: sent=%llu received=%llu distinct=%llu duplicates=%llu reordered=%llu corrupt=%llu "
         "max_rx_gap_ms=%.1f send_retries=%llu\n",
         (unsigned long long)sent, (unsigned long long)rx.received, (unsigned long long)rx.distinct,
         (unsigned long long)rx.dups, (unsigned long long)rx.reordered, (unsigned long long)rx.corrupt,
         static_cast<double>(rx.max_gap_ns) / 1e6, (unsigned long long)send_errors);
  fflush(stdout);
  close(s);
  return rx.Write(a.out) ? 0 : 1;
}

// ---------------------------------------------------------------- watch
struct Port {
  std::string name;
  int fd = -1;
  uint64_t out_to = 0, in_from = 0, rarp_in = 0, rarp_out = 0;
};

void PrintWatch(const std::vector<Port>& ports) {
  printf("WATCH mono=%.6f", Mono());
  for (const Port& p : ports)
    printf(" %s:out_to=%llu,in_from=%llu,rarp_in=%llu,rarp_out=%llu", p.name.c_str(),
           (unsigned long long)p.out_to, (unsigned long long)p.in_from,
           (unsigned long long)p.rarp_in, (unsigned long long)p.rarp_out);
  printf("\n");
  fflush(stdout);
}

int Watch(const Args& a) {
  std::vector<Port> ports;
  for (size_t pos = 0; pos <= a.ifs.size();) {
    size_t c = a.ifs.find(',', pos);
    if (c == std::string::npos) c = a.ifs.size();
    if (c > pos) ports.push_back(Port{a.ifs.substr(pos, c - pos)});
    pos = c + 1;
  }
  if (ports.empty() || ports.size() > 16) return Usage("--if needs 1..16 interfaces");
  std::vector<pollfd> pfd;
  for (Port& p : ports) {
    p.fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(if_nametoindex(p.name.c_str()));
    if (p.fd < 0 || sll.sll_ifindex == 0 || bind(p.fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) {
      printf("FAIL: cannot watch %s: %s\n", p.name.c_str(), strerror(errno));
      return 1;
    }
    int rcv = 4 << 20;
    setsockopt(p.fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    pfd.push_back({p.fd, POLLIN, 0});
  }
  printf("READY\n");
  fflush(stdout);
  const uint64_t end = npa::MonotonicNs() + static_cast<uint64_t>(a.secs * 1e9);
  uint8_t f[2048];
  while (!g_stop && npa::MonotonicNs() < end) {
    if (g_usr1) {
      g_usr1 = 0;
      PrintWatch(ports);
    }
    if (poll(pfd.data(), pfd.size(), 50) <= 0) continue;
    for (size_t i = 0; i < ports.size(); i++) {
      Port& p = ports[i];
      for (int k = 0; k < 256; k++) {
        sockaddr_ll from{};
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(p.fd, f, sizeof f, 0, reinterpret_cast<sockaddr*>(&from), &fl);
        if (n < 14) break;
        const bool out = from.sll_pkttype == PACKET_OUTGOING;
        std::array<uint8_t, 6> m;
        if (npa::ParseRarpAnnounce({f, static_cast<size_t>(n)}, &m) && memcmp(m.data(), a.mac.data(), 6) == 0) {
          (out ? p.rarp_out : p.rarp_in)++;
          printf("RARP if=%s dir=%s mono=%.6f\n", p.name.c_str(), out ? "out" : "in", Mono());
          fflush(stdout);
        }
        if (out && memcmp(f, a.mac.data(), 6) == 0) p.out_to++;
        if (!out && memcmp(f + 6, a.mac.data(), 6) == 0) p.in_from++;
      }
    }
  }
  PrintWatch(ports);
  for (Port& p : ports) close(p.fd);
  return 0;
}

// ---------------------------------------------------------------- check
int Check(const Args& a) {
  FILE* f = fopen(a.file.c_str(), "rb");
  uint64_t hi = 0;
  if (!f || fread(&hi, 8, 1, f) != 1 || hi > kMaxSeq) {
    printf("FAIL: cannot read record %s\n", a.file.c_str());
    if (f) fclose(f);
    return 1;
  }
  std::vector<uint8_t> c(hi);
  const bool ok = hi == 0 || fread(c.data(), 1, hi, f) == hi;
  fclose(f);
  if (!ok) return printf("FAIL: short record %s\n", a.file.c_str()), 1;
  uint64_t missing = 0, dups = 0, beyond = 0, first = UINT64_MAX;
  for (uint64_t i = 0; i < std::max(hi, a.expect); i++) {
    const uint8_t n = i < hi ? c[i] : 0;
    if (i >= a.expect) beyond += n;
    else if (n == 0 && missing++ == 0) first = i;
    else if (n > 1) dups += n - 1u;
  }
  printf("CHECK: expect=%llu received=%llu missing=%llu duplicates=%llu beyond=%llu first_missing=%lld\n",
         (unsigned long long)a.expect, (unsigned long long)(a.expect - missing),
         (unsigned long long)missing, (unsigned long long)dups, (unsigned long long)beyond,
         first == UINT64_MAX ? -1LL : (long long)first);
  return missing == 0 && dups == 0 && beyond == 0 ? 0 : 1;
}

bool Ip(const char* s, uint32_t* out) { return inet_pton(AF_INET, s, out) == 1; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage("no role");
  Args a;
  a.role = argv[1];
  for (int i = 2; i < argc; i++) {
    const std::string k = argv[i];
    if (i + 1 >= argc) return Usage(("missing value for " + k).c_str());
    const char* v = argv[++i];
    auto num = [&](double* d) { char* e; *d = strtod(v, &e); return *e == 0 && *d > 0; };
    bool ok = true;
    if (k == "--socket") a.socket = v;
    else if (k == "--name") a.name = v;
    else if (k == "--out") a.out = v;
    else if (k == "--file") a.file = v;
    else if (k == "--hosts") a.hosts = v;
    else if (k == "--if") a.ifs = v;
    else if (k == "--ip") ok = Ip(v, a.role == "peer" ? &a.peer_ip : &a.ip);
    else if (k == "--peer-ip") ok = Ip(v, &a.peer_ip);
    else if (k == "--guest-ip") ok = Ip(v, &a.ip);
    else if (k == "--peer-mac" || k == "--mac") {
      auto m = npa::demo::ParseMac(v);
      ok = m.has_value();
      if (ok) (k == "--mac" ? a.mac : a.peer_mac) = *m;
      (k == "--mac" ? a.has_mac : a.has_peer_mac) = ok;
    } else if (k == "--port") {
      double d;
      ok = num(&d) && d < 65536;
      a.port = static_cast<uint16_t>(d);
    } else if (k == "--pps") ok = num(&a.pps) && a.pps <= 100000;
    else if (k == "--secs") ok = num(&a.secs) && a.secs <= 3600;
    else if (k == "--tick") ok = num(&a.tick_ms) && a.tick_ms >= 10;
    else if (k == "--reconnect-ms") ok = num(&a.reconnect_ms) && a.reconnect_ms <= 600000;
    else if (k == "--expect") {
      double d;
      ok = num(&d) && d <= kMaxSeq;
      a.expect = static_cast<uint64_t>(d);
      a.has_expect = true;
    } else return Usage(("unknown option " + k).c_str());
    if (!ok) return Usage(("bad value for " + k + ": " + v).c_str());
  }
  signal(SIGTERM, OnStop);
  signal(SIGINT, OnStop);
  signal(SIGUSR1, OnUsr1);
  if (a.role == "guest") {
    if (a.socket.empty() || a.name.empty() || !a.ip || !a.peer_ip || !a.has_peer_mac || a.out.empty())
      return Usage("guest needs --socket --name --ip --peer-ip --peer-mac --out");
    Guest g(a);
    for (size_t pos = 0; pos <= a.hosts.size();) {
      size_t c = a.hosts.find(',', pos);
      if (c == std::string::npos) c = a.hosts.size();
      if (c > pos) g.hosts.push_back(a.hosts.substr(pos, c - pos));
      pos = c + 1;
    }
    if (g.hosts.empty()) return Usage("--hosts needs a name");
    return g.Run();
  }
  if (a.role == "peer") {
    if (!a.ip || !a.peer_ip || a.out.empty()) return Usage("peer needs --ip --guest-ip --out");
    return Peer(a);
  }
  if (a.role == "watch") {
    if (a.ifs.empty() || !a.has_mac) return Usage("watch needs --if and --mac");
    return Watch(a);
  }
  if (a.role == "check") {
    if (a.file.empty() || !a.has_expect) return Usage("check needs --file and --expect");
    return Check(a);
  }
  return Usage(("unknown role " + a.role).c_str());
}
