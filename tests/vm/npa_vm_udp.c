// npa-vm-udp: a sequence-numbered UDP stream between two kernel sockets, one
// inside the QEMU VM (tests/vm/run_vm_test.sh) and one in the peer namespace.
// Both ends run this same program: each sends --count datagrams to the other
// at --rate and counts what arrives, so loss and duplicates are measured in
// both directions at once.
//
// Why a handshake: the two ends start at different times (the VM's end only
// once the guest booted). Datagrams sent before the far socket is bound would
// be lost for a reason that is not the network's. So each end first sends
// SYNC every 20 ms; a SYNC says whether its sender has heard the other end.
// An end starts its DATA once it knows the other end has heard it (a SYNC with
// heard=1, or the other end's DATA): the far socket is then bound for sure.
//
// End of stream: after its last DATA an end sends FIN (the count) every 50 ms.
// A receiver stops when it holds every sequence number, or when it saw FIN and
// nothing came for --quiet-ms, or at --timeout; whatever is missing then is
// lost. Every loop is bounded by --timeout.
//
// Output: one line, "VMUDP name=... sent=N received=R expected=N lost=L
// dup=D ooo=O corrupt=C send_err=E sync_ms=S stream_ms=T". Exit 0 only if every
// datagram was sent, none was lost, duplicated or corrupt; 1 otherwise; 2 on
// usage. Static (see CMakeLists.txt): the VM's initramfs has no libc.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kMagic = 0x4e50564du /* "NPVM" */, kSync = 1, kData = 2, kFin = 3 };
enum { kPayload = 64, kMaxCount = 1 << 20 };

struct Msg {
  uint32_t magic;
  uint32_t type;
  uint64_t seq;    // DATA: sequence number; FIN: the count sent
  uint32_t heard;  // SYNC: 1 once the sender has heard the other end
  uint32_t pad;
};

static uint64_t NowMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint8_t Pattern(uint64_t seq, size_t i) { return (uint8_t)((seq * 131u + i * 7u) & 0xff); }

static int ParseAddr(const char* s, struct sockaddr_in* out) {
  char host[64];
  const char* colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host) return 0;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  char* end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (*end || port == 0 || port > 65535) return 0;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, host, &out->sin_addr) == 1;
}

static void Usage(FILE* f) {
  fprintf(f,
          "usage: npa-vm-udp --bind IP:PORT --peer IP:PORT [--count N] [--rate PPS]\n"
          "                  [--timeout S] [--quiet-ms MS] [--name NAME]\n"
          "Sends N sequence-numbered datagrams to the peer (another npa-vm-udp) after\n"
          "a SYNC handshake, counts the peer's, prints one VMUDP line.\n"
          "Defaults: --count 2000 --rate 500 --timeout 60 --quiet-ms 1500.\n"
          "Exit: 0 nothing lost, duplicated or corrupt; 1 otherwise; 2 usage.\n");
}

static int Send(int s, const struct sockaddr_in* to, uint32_t type, uint64_t seq, uint32_t heard) {
  uint8_t buf[kPayload];
  struct Msg m = {kMagic, type, seq, heard, 0};
  memcpy(buf, &m, sizeof m);
  for (size_t i = sizeof m; i < sizeof buf; i++) buf[i] = Pattern(seq, i);
  // An error (no ARP reply yet, ENOBUFS) is a datagram not sent: DATA is
  // retried by the caller, SYNC and FIN repeat anyway.
  const size_t len = type == kData ? sizeof buf : sizeof m;
  return sendto(s, buf, len, 0, (const struct sockaddr*)to, sizeof *to) == (ssize_t)len;
}

int main(int argc, char** argv) {
  struct sockaddr_in bind_addr, peer;
  int have_bind = 0, have_peer = 0;
  unsigned long count = 2000, rate = 500, timeout_s = 60, quiet_ms = 1500;
  const char* name = "vm-udp";
  static const struct option kOpts[] = {
      {"bind", required_argument, 0, 'b'},    {"peer", required_argument, 0, 'p'},
      {"count", required_argument, 0, 'n'},   {"rate", required_argument, 0, 'r'},
      {"timeout", required_argument, 0, 't'}, {"quiet-ms", required_argument, 0, 'q'},
      {"name", required_argument, 0, 'N'},    {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", kOpts, NULL)) != -1) {
    switch (c) {
      case 'b': have_bind = ParseAddr(optarg, &bind_addr); break;
      case 'p': have_peer = ParseAddr(optarg, &peer); break;
      case 'n': count = strtoul(optarg, NULL, 10); break;
      case 'r': rate = strtoul(optarg, NULL, 10); break;
      case 't': timeout_s = strtoul(optarg, NULL, 10); break;
      case 'q': quiet_ms = strtoul(optarg, NULL, 10); break;
      case 'N': name = optarg; break;
      case 'h': Usage(stdout); return 0;
      default: Usage(stderr); return 2;
    }
  }
  if (!have_bind || !have_peer || count == 0 || count > kMaxCount || rate == 0 || rate > 1000000 ||
      timeout_s == 0 || timeout_s > 3600 || quiet_ms == 0 || quiet_ms > 60000) {
    fprintf(stderr, "npa-vm-udp: --bind and --peer (IP:PORT) are required; count 1..%d, "
                    "rate 1..1000000, timeout 1..3600, quiet-ms 1..60000\n", kMaxCount);
    Usage(stderr);
    return 2;
  }
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int rcvbuf = 4 << 20;
  if (s < 0 || setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0 ||
      bind(s, (struct sockaddr*)&bind_addr, sizeof bind_addr) < 0) {
    fprintf(stderr, "npa-vm-udp[%s]: socket/bind: %s\n", name, strerror(errno));
    return 1;
  }
  uint8_t* seen = calloc(count, 1);
  if (!seen) return 1;
  const uint64_t t0 = NowMs(), deadline = t0 + timeout_s * 1000u;
  uint64_t sent = 0, send_errors = 0, received = 0, dup = 0, ooo = 0, corrupt = 0, highest = 0;
  uint64_t next_sync = t0, next_fin = 0, last_rx = 0, t_stream = 0;
  int heard = 0, go = 0, fin_seen = 0;
  for (;;) {
    const uint64_t now = NowMs();
    if (now >= deadline) break;
    if (received == count && sent == count) break;
    if (sent == count && fin_seen && now - last_rx >= quiet_ms && received < count) break;
    if (!go && now >= next_sync) {
      Send(s, &peer, kSync, 0, (uint32_t)heard);
      next_sync = now + 20;
    }
    if (go) {
      // Paced: as many as are due by now, at most 64 per pass.
      uint64_t due = (now - t_stream) * rate / 1000u + 1;
      for (int k = 0; k < 64 && sent < count && sent < due; k++) {
        if (!Send(s, &peer, kData, sent, 1)) { send_errors++; break; }
        sent++;
      }
      if (sent == count && now >= next_fin) {
        Send(s, &peer, kFin, count, 1);
        next_fin = now + 50;
      }
    }
    struct pollfd p = {s, POLLIN, 0};
    if (poll(&p, 1, 1) <= 0) continue;
    for (int k = 0; k < 256; k++) {
      uint8_t buf[2048];
      ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      struct Msg m;
      if ((size_t)n < sizeof m) { corrupt++; continue; }
      memcpy(&m, buf, sizeof m);
      if (m.magic != kMagic) { corrupt++; continue; }
      if (m.type == kSync) {
        // The other end is bound and heard from; tell it so, and go once it
        // has heard us too.
        if (!heard) { heard = 1; next_sync = 0; }
        if (m.heard && !go) { go = 1; t_stream = NowMs(); }
        // Answer only a SYNC that has not heard us: answers carry heard=1 and
        // are never answered, so two running ends do not ping-pong.
        if (go && !m.heard) Send(s, &peer, kSync, 0, 1);
        continue;
      }
      if (!go) { go = 1; heard = 1; t_stream = NowMs(); }  // its DATA/FIN: it heard us
      if (m.type == kFin) { fin_seen = 1; continue; }
      if (m.type != kData || n != kPayload || m.seq >= count) { corrupt++; continue; }
      int bad = 0;
      for (size_t i = sizeof m; i < (size_t)n; i++) bad |= buf[i] != Pattern(m.seq, i);
      if (bad) { corrupt++; continue; }
      last_rx = NowMs();
      if (seen[m.seq]) { dup++; continue; }
      seen[m.seq] = 1;
      received++;
      if (m.seq + 1 < highest) ooo++;
      if (m.seq + 1 > highest) highest = m.seq + 1;
    }
  }
  // The other end may still wait for our FIN to stop early: a few more.
  for (int k = 0; k < 3 && sent == count; k++) Send(s, &peer, kFin, count, 1);
  const uint64_t end = NowMs();
  printf("VMUDP name=%s sent=%llu received=%llu expected=%lu lost=%llu dup=%llu ooo=%llu corrupt=%llu "
         "send_err=%llu sync_ms=%llu stream_ms=%llu\n",
         name, (unsigned long long)sent, (unsigned long long)received, count,
         (unsigned long long)(count - received), (unsigned long long)dup, (unsigned long long)ooo,
         (unsigned long long)corrupt, (unsigned long long)send_errors,
         (unsigned long long)(go ? t_stream - t0 : end - t0),
         (unsigned long long)(go ? end - t_stream : 0));
  fflush(stdout);
  free(seen);
  close(s);
  return sent == count && received == count && dup == 0 && corrupt == 0 ? 0 : 1;
}
