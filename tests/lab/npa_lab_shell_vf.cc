// npa-lab-shell-vf: a guest process on libnpa_shell for the VFIO lab
// (tests/lab/scenarios/8x-shell_vf_*.sh). One binary, six roles:
//
//   dut    --socket S --name N [--pps P] [--secs T] --out FILE [--rx-out FILE]
//          [--intr]
//          Opens a shell on the agent's control socket (1 queue pair, TX
//          checksum offload configured), then sends sequence-numbered
//          broadcast frames (ethertype 0x88b5) at about P frames/s until
//          SIGTERM or T seconds, whatever path the shell is on. Prints every
//          shell event ("EVENT path=vf ...") as it comes; at the end prints
//          "DUT: sent=... tx_vf=... tx_emulated=... rx_vf=... rx_recorded=..."
//          and writes the count. With --rx-out it also records the numbered
//          frames blast sent it (ethertype 0x88b6) and writes them there.
//          --intr: between sends it sleeps on the queue's interrupt fd
//          (npa_queue_intr_enable/fd/ack) instead of polling, and counts the
//          wake-ups an interrupt caused by path (intr_wakeups_vf: the VF's
//          MSI-X through the plug-in's rx_intr_enable).
//   sink   --socket S --name N [--secs T] --out FILE
//          A second shell guest on the same agent: the emulated path's
//          receiver (the agent floods the DUT's broadcasts to it).
//   sniff  --if IFACE [--secs T] --out FILE
//          AF_PACKET receiver on a kernel NIC (the peer namespace's, on the
//          QEMU hub): the VF path's receiver. Receivers stop at SIGTERM or
//          after T seconds (default 60) and then write --out.
//   blast  --if IFACE --dst MAC [--pps P] [--secs T] [--marks FILE]
//          AF_PACKET sender on a kernel NIC (the peer namespace's): numbered
//          unicast frames to MAC (the DUT's) with ethertype 0x88b6, so sniff
//          ignores them. On SIGUSR1 it appends "MARK <frames sent so far>"
//          to FILE and stdout: the next frame it sends has that number.
//          Stops at SIGTERM or after T seconds; prints "BLAST: sent=...".
//   merge  --expect N [--allow-missing K | --expect-missing K] FILE...
//          Adds up what the receivers recorded: every number below N seen
//          at most once over all files, and at most K (or exactly K)
//          missing. Exit 0 if so.
//   range  --file FILE --from A --to B
//          One receiver's record: every number in [A, B) seen exactly once
//          and no number anywhere seen twice. Prints "RANGE: ..."; exit 0 if so.
//
// Receivers record one byte per sequence number (times seen, saturating).
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/clock.h"
#include "npa/shell.h"

namespace {

constexpr uint16_t kEtherType = 0x88b5;    // DUT -> receivers (TX test)
constexpr uint16_t kEtherTypeRx = 0x88b6;  // blast -> DUT (RX test)
constexpr uint32_t kMagic = 0x6e706176;  // "npav"
constexpr uint64_t kMaxSeq = 1u << 24;

volatile sig_atomic_t g_stop = 0, g_mark = 0;
void OnSignal(int) { g_stop = 1; }
void OnMark(int) { g_mark = 1; }

struct Args {
  std::string role, socket, name, out, ifname, rx_out, dst, marks, file;
  bool intr = false;
  double pps = 2000, secs = 60;
  uint64_t expect = 0, allow_missing = 0, expect_missing = 0, from = 0, to = 0;
  bool has_expect_missing = false, has_from = false, has_to = false;
  std::vector<std::string> files;
};

int Usage(const char* why) {
  fprintf(stderr,
          "npa-lab-shell-vf: %s\n"
          "usage: npa-lab-shell-vf dut --socket S --name N [--pps P] [--secs T] --out FILE [--intr]\n"
          "                            [--rx-out FILE]\n"
          "       npa-lab-shell-vf sink --socket S --name N [--secs T] --out FILE\n"
          "       npa-lab-shell-vf sniff --if IFACE [--secs T] --out FILE\n"
          "       npa-lab-shell-vf blast --if IFACE --dst MAC [--pps P] [--secs T] [--marks FILE]\n"
          "                              (SIGUSR1: append \"MARK <sent>\" to FILE and stdout)\n"
          "       npa-lab-shell-vf merge --expect N [--allow-missing K | --expect-missing K] FILE...\n"
          "       npa-lab-shell-vf range --file FILE --from A --to B\n",
          why);
  return 2;
}

// Records what a receiver saw of one ethertype's numbered frames; written
// to --out at the end.
struct Seen {
  explicit Seen(uint16_t et) : ethertype(et) {}
  const uint16_t ethertype;
  std::vector<uint8_t> count = std::vector<uint8_t>(kMaxSeq, 0);
  uint64_t frames = 0, bogus = 0;
  uint64_t hi = 0;
  void Take(const uint8_t* d, size_t len) {
    if (len < 26) return;
    uint16_t et = static_cast<uint16_t>(d[12] << 8 | d[13]);
    if (et != ethertype) return;
    uint32_t magic;
    uint64_t seq;
    memcpy(&magic, d + 14, 4);
    memcpy(&seq, d + 18, 8);
    if (magic != kMagic || seq >= kMaxSeq) {
      bogus++;
      return;
    }
    frames++;
    if (count[seq] < 255) count[seq]++;
    if (seq + 1 > hi) hi = seq + 1;
  }
  bool Write(const std::string& path) const {
    FILE* f = fopen(path.c_str(), "wb");
    if (!f) return false;
    bool ok = fwrite(&hi, 8, 1, f) == 1 && (hi == 0 || fwrite(count.data(), 1, hi, f) == hi);
    return fclose(f) == 0 && ok;
  }
};

void PrintEvents(npa_shell* sh) {
  npa_event ev;
  ev.struct_size = sizeof ev;
  while (npa_shell_next_event(sh, &ev) == 1) {
    double t = ev.timestamp_ns / 1e9;
    if (ev.type == NPA_EVENT_PATH_CHANGED)
      printf("EVENT %.6f path=%s %s\n", t, ev.u.path == NPA_PATH_VF ? "vf" : "emulated", ev.detail);
    else if (ev.type == NPA_EVENT_ERROR)
      printf("EVENT %.6f error=%d %s\n", t, ev.u.error, ev.detail);
    else
      printf("EVENT %.6f type=%d %s\n", t, ev.type, ev.detail);
    fflush(stdout);
  }
}

npa_shell* OpenShell(const Args& a) {
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = a.socket.c_str();
  oa.name = a.name.c_str();
  oa.flags = NPA_SHELL_F_NO_HUGEPAGES;
  npa_shell* sh = nullptr;
  if (npa_shell_open(&oa, &sh) < 0) {
    printf("FAIL: open: %s\n", npa_shell_last_error(nullptr));
    return nullptr;
  }
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.ring_size = 256;
  qc.offloads = NPA_OFFLOAD_TX_CSUM;
  if (npa_shell_configure(sh, &qc) < 0 || npa_shell_start(sh) < 0) {
    printf("FAIL: configure/start: %s\n", npa_shell_last_error(nullptr));
    npa_shell_close(sh);
    return nullptr;
  }
  npa_shell_info in{};
  in.struct_size = sizeof in;
  npa_shell_get_info(sh, &in);
  printf("SHELL: %s mac %02x:%02x:%02x:%02x:%02x:%02x path %d\n", a.name.c_str(), in.mac[0],
         in.mac[1], in.mac[2], in.mac[3], in.mac[4], in.mac[5], in.path);
  fflush(stdout);
  return sh;
}

npa_queue_stats Stats(npa_shell* sh) {
  npa_queue_stats st{};
  st.struct_size = sizeof st;
  npa_shell_queue_stats(sh, UINT16_MAX, &st);
  return st;
}

int Dut(const Args& a) {
  npa_shell* sh = OpenShell(a);
  if (!sh) return 1;
  npa_shell_info in{};
  in.struct_size = sizeof in;
  npa_shell_get_info(sh, &in);
  const uint64_t start = npa::MonotonicNs(), end = start + static_cast<uint64_t>(a.secs * 1e9);
  const double ns_per = 1e9 / a.pps;
  uint64_t sent = 0, last_report = start;
  // What blast sent us, whichever path it came on (kept apart from anything
  // the TX test records).
  Seen rx(kEtherTypeRx);
  auto receive = [&] {
    npa_buf* r[32];
    uint16_t got = npa_rx_burst(sh, 0, r, 32);
    for (uint16_t i = 0; i < got; i++)
      rx.Take(static_cast<const uint8_t*>(npa_buf_data(r[i])), r[i]->data_len);
    if (got) npa_buf_free(sh, 0, r, got);
    return got;
  };
  // --intr: between sends, sleep on the queue's interrupt fd (shell.h's
  // arm / re-poll / sleep / ack sequence) instead of polling; count the
  // wake-ups an interrupt caused, by the path that was active.
  const int intr_fd = a.intr ? npa_queue_intr_fd(sh, 0) : -1;
  if (a.intr && intr_fd < 0) {
    printf("FAIL: npa_queue_intr_fd: %s\n", npa_shell_last_error(nullptr));
    npa_shell_close(sh);
    return 1;
  }
  uint64_t wake_vf = 0, wake_emu = 0, sleeps = 0;
  while (!g_stop && npa::MonotonicNs() < end && sent < kMaxSeq) {
    // Send what the rate allows now, in bursts of up to 8.
    const uint64_t due = static_cast<uint64_t>((npa::MonotonicNs() - start) / ns_per) + 1;
    if (due > sent) {
      npa_buf* b[8];
      uint16_t want = static_cast<uint16_t>(due - sent < 8 ? due - sent : 8);
      uint16_t n = npa_buf_alloc(sh, 0, b, want);
      for (uint16_t i = 0; i < n; i++) {
        uint8_t* d = static_cast<uint8_t*>(npa_buf_data(b[i]));
        memset(d, 0xff, 6);
        memcpy(d + 6, in.mac, 6);
        d[12] = kEtherType >> 8;
        d[13] = kEtherType & 0xff;
        uint64_t seq = sent + i;
        memcpy(d + 14, &kMagic, 4);
        memcpy(d + 18, &seq, 8);
        memset(d + 26, 0x5a, 38);
        b[i]->data_len = 64;
        b[i]->pkt_len = 64;
      }
      uint16_t s = npa_tx_burst(sh, 0, b, n);
      if (s < n) npa_buf_free(sh, 0, b + s, static_cast<uint16_t>(n - s));
      sent += s;
    }
    receive();
    PrintEvents(sh);
    if (npa::MonotonicNs() - last_report > 1000000000ull) {
      npa_queue_stats st = Stats(sh);
      npa_shell_get_info(sh, &in);
      printf("PROGRESS sent=%llu tx_vf=%llu tx_emulated=%llu rx_vf=%llu rx_recorded=%llu path=%d plugin=%s\n",
             (unsigned long long)sent, (unsigned long long)st.tx_vf_packets,
             (unsigned long long)st.tx_emulated_packets, (unsigned long long)st.rx_vf_packets,
             (unsigned long long)rx.frames, in.path, in.plugin);
      fflush(stdout);
      last_report = npa::MonotonicNs();
    }
    if (!a.intr) {
      usleep(200);
      continue;
    }
    // The next frame is due when (now - start) / ns_per reaches sent.
    const uint64_t next = start + static_cast<uint64_t>(static_cast<double>(sent) * ns_per);
    const uint64_t now = npa::MonotonicNs();
    if (next <= now + 100000) continue;
    npa_queue_intr_enable(sh, 0, 1);
    if (receive() == 0) {
      const uint64_t wait = std::min<uint64_t>(next - now, 20000000);
      timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
      pollfd p{intr_fd, POLLIN, 0};
      sleeps++;
      if (ppoll(&p, 1, &ts, nullptr) == 1) {
        npa_shell_get_info(sh, &in);
        (in.path == NPA_PATH_VF ? wake_vf : wake_emu)++;
        npa_queue_intr_ack(sh, 0);
      }
    }
    npa_queue_intr_enable(sh, 0, 0);
  }
  // A few more bursts: let the path complete what it took.
  for (int i = 0; i < 50; i++) {
    receive();
    npa_buf* none[1];
    npa_tx_burst(sh, 0, none, 0);
    usleep(2000);
  }
  PrintEvents(sh);
  npa_queue_stats st = Stats(sh);
  npa_shell_get_info(sh, &in);
  printf("DUT: sent=%llu tx_packets=%llu tx_vf=%llu tx_emulated=%llu tx_full=%llu "
         "rx_packets=%llu rx_vf=%llu rx_emulated=%llu rx_dropped=%llu rx_recorded=%llu "
         "rx_bogus=%llu rx_hi=%llu sleeps=%llu intr_wakeups_vf=%llu intr_wakeups_emulated=%llu "
         "interrupts=%llu path=%s\n",
         (unsigned long long)sent, (unsigned long long)st.tx_packets,
         (unsigned long long)st.tx_vf_packets, (unsigned long long)st.tx_emulated_packets,
         (unsigned long long)st.tx_full, (unsigned long long)st.rx_packets,
         (unsigned long long)st.rx_vf_packets, (unsigned long long)st.rx_emulated_packets,
         (unsigned long long)st.rx_dropped, (unsigned long long)rx.frames,
         (unsigned long long)rx.bogus, (unsigned long long)rx.hi, (unsigned long long)sleeps,
         (unsigned long long)wake_vf, (unsigned long long)wake_emu,
         (unsigned long long)st.interrupts, in.path == NPA_PATH_VF ? "vf" : "emulated");
  fflush(stdout);
  bool ok = st.tx_packets == sent;
  FILE* f = fopen(a.out.c_str(), "w");
  if (!f || fprintf(f, "%llu\n", (unsigned long long)sent) < 0) ok = false;
  if (f && fclose(f) != 0) ok = false;
  if (!a.rx_out.empty() && !rx.Write(a.rx_out)) {
    printf("FAIL: cannot write %s\n", a.rx_out.c_str());
    ok = false;
  }
  npa_shell_close(sh);
  return ok ? 0 : 1;
}

int Sink(const Args& a) {
  npa_shell* sh = OpenShell(a);
  if (!sh) return 1;
  Seen seen(kEtherType);
  printf("READY\n");
  fflush(stdout);
  const uint64_t end = npa::MonotonicNs() + static_cast<uint64_t>(a.secs * 1e9);
  while (!g_stop && npa::MonotonicNs() < end) {
    npa_buf* r[32];
    uint16_t got = npa_rx_burst(sh, 0, r, 32);
    for (uint16_t i = 0; i < got; i++)
      seen.Take(static_cast<const uint8_t*>(npa_buf_data(r[i])), r[i]->data_len);
    if (got) npa_buf_free(sh, 0, r, got);
    else usleep(100);
    PrintEvents(sh);
  }
  printf("SINK: frames=%llu bogus=%llu hi=%llu\n", (unsigned long long)seen.frames,
         (unsigned long long)seen.bogus, (unsigned long long)seen.hi);
  bool ok = seen.Write(a.out);
  npa_shell_close(sh);
  return ok ? 0 : 1;
}

int Sniff(const Args& a) {
  int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(kEtherType));
  if (s < 0) return perror("socket(AF_PACKET)"), 1;
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(kEtherType);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(a.ifname.c_str()));
  if (sll.sll_ifindex == 0 || bind(s, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0)
    return perror("bind"), 1;
  int rcvbuf = 8 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  Seen seen(kEtherType);
  printf("READY\n");
  fflush(stdout);
  uint8_t buf[2048];
  const uint64_t end = npa::MonotonicNs() + static_cast<uint64_t>(a.secs * 1e9);
  while (!g_stop && npa::MonotonicNs() < end) {
    pollfd p{s, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    for (int i = 0; i < 256; i++) {
      ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      seen.Take(buf, static_cast<size_t>(n));
    }
  }
  printf("SNIFF: frames=%llu hi=%llu\n", (unsigned long long)seen.frames, (unsigned long long)seen.hi);
  close(s);
  return seen.Write(a.out) ? 0 : 1;
}

// Reads a file Seen::Write made: per-number counts below its "hi".
bool ReadSeen(const std::string& path, std::vector<uint8_t>* c) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) return printf("FAIL: cannot read %s\n", path.c_str()), false;
  uint64_t hi = 0;
  bool ok = fread(&hi, 8, 1, f) == 1 && hi <= kMaxSeq;
  if (!ok) printf("FAIL: bad file %s (no header, or more than %llu numbers)\n", path.c_str(),
                  (unsigned long long)kMaxSeq);
  if (ok) {
    c->assign(hi, 0);
    ok = hi == 0 || fread(c->data(), 1, hi, f) == hi;
    if (!ok) printf("FAIL: short file %s (header says %llu numbers)\n", path.c_str(),
                    (unsigned long long)hi);
  }
  fclose(f);
  return ok;
}

int Merge(const Args& a) {
  std::vector<uint32_t> total(a.expect, 0);
  uint64_t beyond = 0;
  for (const auto& path : a.files) {
    std::vector<uint8_t> c;
    if (!ReadSeen(path, &c)) return 1;
    const uint64_t hi = c.size();
    uint64_t here = 0;
    for (uint64_t i = 0; i < hi; i++) {
      here += c[i];
      if (i < a.expect) total[i] += c[i];
      else beyond += c[i];
    }
    printf("MERGE: %s: %llu frames\n", path.c_str(), (unsigned long long)here);
  }
  uint64_t missing = 0, dups = 0, first_missing = UINT64_MAX;
  for (uint64_t i = 0; i < a.expect; i++) {
    if (total[i] == 0) {
      missing++;
      if (first_missing == UINT64_MAX) first_missing = i;
    }
    if (total[i] > 1) dups += total[i] - 1;
  }
  printf("MERGE: expect=%llu received=%llu missing=%llu duplicates=%llu beyond=%llu first_missing=%lld\n",
         (unsigned long long)a.expect, (unsigned long long)(a.expect - missing),
         (unsigned long long)missing, (unsigned long long)dups, (unsigned long long)beyond,
         first_missing == UINT64_MAX ? -1LL : (long long)first_missing);
  const bool missing_ok =
      a.has_expect_missing ? missing == a.expect_missing : missing <= a.allow_missing;
  if (a.has_expect_missing && !missing_ok)
    printf("MERGE: missing=%llu but expected exactly %llu\n", (unsigned long long)missing,
           (unsigned long long)a.expect_missing);
  return (missing_ok && dups == 0 && beyond == 0) ? 0 : 1;
}

int Range(const Args& a) {
  std::vector<uint8_t> c;
  if (!ReadSeen(a.file, &c)) return 1;
  uint64_t missing = 0, dups = 0, dup_numbers = 0, received = 0;
  uint64_t first_missing = UINT64_MAX, first_dup = UINT64_MAX;
  for (uint64_t i = a.from; i < a.to; i++) {
    if (i >= c.size() || c[i] == 0) {
      missing++;
      if (first_missing == UINT64_MAX) first_missing = i;
    } else {
      received++;
    }
  }
  // Duplicates count everywhere: outside the window too, a frame delivered
  // twice is a bug (e.g. an RX ring handed over without being drained).
  for (uint64_t i = 0; i < c.size(); i++) {
    if (c[i] > 1) {
      dups += c[i] - 1;
      dup_numbers++;
      if (first_dup == UINT64_MAX) first_dup = i;
    }
  }
  printf("RANGE: file=%s from=%llu to=%llu expect=%llu received=%llu missing=%llu "
         "duplicates=%llu (%llu numbers, first %lld) first_missing=%lld\n",
         a.file.c_str(), (unsigned long long)a.from, (unsigned long long)a.to,
         (unsigned long long)(a.to - a.from), (unsigned long long)received,
         (unsigned long long)missing, (unsigned long long)dups, (unsigned long long)dup_numbers,
         first_dup == UINT64_MAX ? -1LL : (long long)first_dup,
         first_missing == UINT64_MAX ? -1LL : (long long)first_missing);
  return missing == 0 && dups == 0 ? 0 : 1;
}

bool ParseMac(const std::string& s, uint8_t m[6]) {
  unsigned v[6];
  char tail;
  if (s.size() != 17 ||
      sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
             &tail) != 6)
    return false;
  for (int i = 0; i < 6; i++) m[i] = static_cast<uint8_t>(v[i]);
  return true;
}

// Written from the main loop, never from the handler: stdio is not
// async-signal-safe.
void WriteMark(FILE* marks, uint64_t sent) {
  printf("MARK %llu\n", (unsigned long long)sent);
  fflush(stdout);
  if (marks) {
    fprintf(marks, "MARK %llu\n", (unsigned long long)sent);
    fflush(marks);
  }
}

int Blast(const Args& a) {
  uint8_t dst[6], src[6];
  if (!ParseMac(a.dst, dst)) return Usage(("--dst: not a MAC (aa:bb:cc:dd:ee:ff): " + a.dst).c_str());
  // No SA_RESTART: a send() blocked on a full socket buffer must return at
  // SIGTERM/SIGUSR1 so the loop can stop or write the mark.
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sa.sa_handler = OnMark;
  sigaction(SIGUSR1, &sa, nullptr);
  FILE* marks = nullptr;
  if (!a.marks.empty() && !(marks = fopen(a.marks.c_str(), "a")))
    return perror(("open " + a.marks).c_str()), 1;
  // Protocol 0: this socket only sends; it never queues received frames.
  int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (s < 0) return perror("socket(AF_PACKET)"), 1;
  ifreq ifr{};
  if (a.ifname.size() >= sizeof ifr.ifr_name) return Usage("--if: name too long");
  memcpy(ifr.ifr_name, a.ifname.c_str(), a.ifname.size());
  if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) return perror(("SIOCGIFHWADDR " + a.ifname).c_str()), 1;
  memcpy(src, ifr.ifr_hwaddr.sa_data, 6);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = static_cast<int>(if_nametoindex(a.ifname.c_str()));
  sll.sll_halen = 6;
  memcpy(sll.sll_addr, dst, 6);
  if (sll.sll_ifindex == 0) return perror(("if_nametoindex " + a.ifname).c_str()), 1;
  uint8_t f[64];
  memcpy(f, dst, 6);
  memcpy(f + 6, src, 6);
  f[12] = kEtherTypeRx >> 8;
  f[13] = kEtherTypeRx & 0xff;
  memcpy(f + 14, &kMagic, 4);
  memset(f + 26, 0xa5, sizeof f - 26);
  printf("READY\n");
  fflush(stdout);
  const uint64_t start = npa::MonotonicNs(), end = start + static_cast<uint64_t>(a.secs * 1e9);
  const double ns_per = 1e9 / a.pps;
  uint64_t sent = 0, errors = 0;
  int last_errno = 0;
  while (!g_stop && npa::MonotonicNs() < end && sent < kMaxSeq) {
    if (g_mark) {
      g_mark = 0;
      WriteMark(marks, sent);
    }
    const uint64_t due = static_cast<uint64_t>((npa::MonotonicNs() - start) / ns_per) + 1;
    for (int burst = 0; burst < 16 && sent < due && sent < kMaxSeq && !g_mark && !g_stop; burst++) {
      memcpy(f + 18, &sent, 8);
      if (sendto(s, f, sizeof f, 0, reinterpret_cast<sockaddr*>(&sll), sizeof sll) !=
          static_cast<ssize_t>(sizeof f)) {
        // Not sent: the number is used again by the next try, so the
        // receiver's record stays gap-free for what blast counts as sent.
        errors++;
        last_errno = errno;
        break;
      }
      sent++;
    }
    usleep(500);
  }
  if (g_mark) WriteMark(marks, sent);
  printf("BLAST: sent=%llu errors=%llu%s%s\n", (unsigned long long)sent,
         (unsigned long long)errors, errors ? " last_error=" : "", errors ? strerror(last_errno) : "");
  fflush(stdout);
  if (marks) fclose(marks);
  close(s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage("no role");
  Args a;
  a.role = argv[1];
  // Numbers: decimal, whole string, no sign (strtoull alone takes "-1").
  auto num = [](const char* v, uint64_t* out) {
    if (!v || !*v || *v < '0' || *v > '9') return false;
    char* e = nullptr;
    errno = 0;
    *out = strtoull(v, &e, 10);
    return errno == 0 && *e == 0;
  };
  auto real = [](const char* v, double* out) {
    char* e = nullptr;
    if (!v || !*v) return false;
    *out = strtod(v, &e);
    return *e == 0;
  };
  for (int i = 2; i < argc; i++) {
    std::string k = argv[i];
    auto val = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (k == "--socket" && (v = val())) a.socket = v;
    else if (k == "--name" && (v = val())) a.name = v;
    else if (k == "--out" && (v = val())) a.out = v;
    else if (k == "--rx-out" && (v = val())) a.rx_out = v;
    else if (k == "--intr" && a.role == "dut") a.intr = true;
    else if (k == "--if" && (v = val())) a.ifname = v;
    else if (k == "--dst" && (v = val())) a.dst = v;
    else if (k == "--marks" && (v = val())) a.marks = v;
    else if (k == "--file" && (v = val())) a.file = v;
    else if (k == "--pps" && real(val(), &a.pps)) continue;
    else if (k == "--secs" && real(val(), &a.secs)) continue;
    else if (k == "--expect" && num(val(), &a.expect)) continue;
    else if (k == "--allow-missing" && num(val(), &a.allow_missing)) continue;
    else if (k == "--expect-missing" && num(val(), &a.expect_missing)) a.has_expect_missing = true;
    else if (k == "--from" && num(val(), &a.from)) a.has_from = true;
    else if (k == "--to" && num(val(), &a.to)) a.has_to = true;
    else if (k.rfind("--", 0) != 0 && a.role == "merge") a.files.push_back(k);
    else return Usage(("bad argument, or its value missing or not a number: " + k).c_str());
  }
  if (!(a.pps >= 1 && a.pps <= 1e6 && a.secs > 0 && a.secs <= 3600)) return Usage("--pps or --secs out of range");
  if (a.expect > kMaxSeq) return Usage("--expect too large");
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (a.role == "dut") return a.socket.empty() || a.name.empty() || a.out.empty() ? Usage("dut needs --socket --name --out") : Dut(a);
  if (a.role == "sink") return a.socket.empty() || a.name.empty() || a.out.empty() ? Usage("sink needs --socket --name --out") : Sink(a);
  if (a.role == "sniff") return a.ifname.empty() || a.out.empty() ? Usage("sniff needs --if --out") : Sniff(a);
  if (a.role == "blast") return a.ifname.empty() || a.dst.empty() ? Usage("blast needs --if --dst") : Blast(a);
  if (a.role == "merge") return a.files.empty() ? Usage("merge needs files") : Merge(a);
  if (a.role == "range") {
    if (a.file.empty() || !a.has_from || !a.has_to) return Usage("range needs --file --from --to");
    if (a.from > a.to || a.to > kMaxSeq) return Usage("range: need --from <= --to <= 2^24");
    return Range(a);
  }
  return Usage("unknown role");
}
