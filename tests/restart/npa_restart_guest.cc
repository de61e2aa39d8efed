// npa-restart-guest: two guests in one process, each a real shell
// (libnpa_shell) on the same agent, streaming sequence-numbered frames to
// each other through the agent's MAC switch while the agent is killed or
// stopped and started again (tests/restart/run_restart.sh). Both directions
// cross the restart: a frame lost on the sender's TX, in the switch or on
// the receiver's RX is missing; one the shell re-sent after the dead agent
// had already delivered it arrives twice (a duplicate, which the receiver
// drops and counts; bounded by the sender's tx_resubmitted).
//
//   npa-restart-guest --control PATH [--rate N] [--seconds S] [--drain S] [--name NAME]
//
// SIGUSR1 ends the sending early (then the drain, then the result line).
// The guests are NAME-a and NAME-b. Last line on stdout, one JSON object:
//   {"role":"restart-guest","sent":..,"received":..,"lost":..,"duplicated":..,
//    "reordered":..,"corrupt":..,"resubmitted":..,"rx_gap_ms":..,"tx_gap_ms":..,
//    "reconnected":N,"ab":{..},"ba":{..}}
// Each direction (ab, ba) also names its first missing sequence numbers
// ("lost_seq":"first-last,..."). At most kWindow frames of a direction are
// in flight (see there).
// rx_gap_ms: the longest time a receiver got nothing while frames were due
// (the blackout the restart caused, from the last frame before it to the
// first after it); tx_gap_ms: likewise for npa_tx_burst accepting nothing.
// reconnected: NPA_EVENT_RECONNECTED events over both shells.
// Exit 0 if nothing was lost or corrupted, 1 otherwise, 2 usage.
#include <getopt.h>
#include <signal.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/clock.h"
#include "npa/shell.h"

namespace {

constexpr uint16_t kEtherType = 0x88b5;  // IEEE 802 local experimental
constexpr size_t kLen = 128;
// At most this many frames of one direction are sent and not yet received.
// The switch drops a frame for a guest whose RX ring is full (counted in
// that guest's rx_dropped, npactl stats), as any switch port does. While
// no agent runs, a sender's TX ring fills up (1024 entries), and when the
// new agent takes it, all of it arrives at a receiver that has at most
// 1024 RX buffers posted, fewer while a refill batch (32) is pending. Without
// the window that overflow is a counted drop, not a restart loss, and this
// test is about the restart: with it, every frame in flight fits.
constexpr uint64_t kWindow = 512;

// SIGUSR1: stop sending now and drain (the script's "the restart is over").
volatile sig_atomic_t g_stop = 0;
void OnUsr1(int) { g_stop = 1; }

uint8_t Fill(uint64_t seq, size_t i) { return static_cast<uint8_t>(seq * 13 + i); }

struct Dir {  // one direction: frames sent by `from`, received by `to`
  uint64_t total = 0, sent = 0, got = 0, dup = 0, reordered = 0, corrupt = 0, highest = 0;
  uint64_t last_rx = 0, last_tx = 0, rx_gap = 0, tx_gap = 0;
  std::vector<uint8_t> seen;
  uint64_t lost() const {
    uint64_t n = 0;
    for (uint64_t s = 0; s < sent; s++) n += seen[s] == 0;
    return n;
  }
  // The first missing sequence numbers, as "a-b" ranges (at most 8), so a
  // failure says where the frames went missing: at the restart, or at the
  // end (still in flight when the drain gave up).
  std::string LostRanges() const {
    std::string out;
    int ranges = 0;
    for (uint64_t s = 0; s < sent && ranges < 8; s++) {
      if (seen[s]) continue;
      uint64_t e = s;
      while (e + 1 < sent && !seen[e + 1]) e++;
      out += (out.empty() ? "" : ",") + std::to_string(s) + "-" + std::to_string(e);
      ranges++;
      s = e;
    }
    return out;
  }
};

struct Guest {
  npa_shell* sh = nullptr;
  uint8_t mac[6] = {};
  int reconnected = 0;
};

bool Open(const std::string& control, const std::string& name, Guest* g) {
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = control.c_str();
  oa.name = name.c_str();
  if (npa_shell_open(&oa, &g->sh) < 0) {
    fprintf(stderr, "npa-restart-guest: open %s as %s: %s\n", control.c_str(), name.c_str(),
            npa_shell_last_error(nullptr));
    return false;
  }
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.ring_size = 1024;
  if (npa_shell_configure(g->sh, &qc) < 0 || npa_shell_start(g->sh) < 0) {
    fprintf(stderr, "npa-restart-guest: %s: configure/start: %s\n", name.c_str(),
            npa_shell_last_error(g->sh));
    return false;
  }
  npa_shell_info info{};
  info.struct_size = sizeof info;
  npa_shell_get_info(g->sh, &info);
  memcpy(g->mac, info.mac, 6);
  return true;
}

// Sends what is due from `from` to `to`'s MAC. A frame tx_burst did not take
// is freed and sent again later under the same number.
void Send(Guest& from, const Guest& to, Dir& d, uint64_t due, uint64_t now) {
  npa_buf* b[32];
  due = std::min(due, d.got + kWindow);
  const uint16_t want = static_cast<uint16_t>(due > d.sent ? std::min<uint64_t>(32, due - d.sent) : 0);
  const uint16_t n = want ? npa_buf_alloc(from.sh, 0, b, want) : 0;
  for (uint16_t i = 0; i < n; i++) {
    const uint64_t seq = d.sent + i;
    auto* f = static_cast<uint8_t*>(npa_buf_data(b[i]));
    memcpy(f, to.mac, 6);
    memcpy(f + 6, from.mac, 6);
    f[12] = kEtherType >> 8;
    f[13] = kEtherType & 0xff;
    memcpy(f + 14, &seq, 8);
    for (size_t k = 22; k < kLen; k++) f[k] = Fill(seq, k);
    b[i]->data_len = kLen;
    b[i]->pkt_len = kLen;
  }
  const uint16_t s = n ? npa_tx_burst(from.sh, 0, b, n) : 0;
  if (s < n) npa_buf_free(from.sh, 0, b + s, n - s);
  d.sent += s;
  if (s > 0 || want == 0) {
    if (want && now - d.last_tx > d.tx_gap) d.tx_gap = now - d.last_tx;
    d.last_tx = now;
  }
}

// Receives on `to`; frames of another kind (a RARP announcement) are not ours
// and not counted.
uint16_t Receive(Guest& to, Dir& d, bool sending) {
  npa_buf* b[32];
  const uint16_t r = npa_rx_burst(to.sh, 0, b, 32);
  const uint64_t now = npa::MonotonicNs();
  uint16_t ours = 0;
  for (uint16_t i = 0; i < r; i++) {
    const auto* f = static_cast<const uint8_t*>(npa_buf_data(b[i]));
    if (b[i]->pkt_len < 14 || f[12] != (kEtherType >> 8) || f[13] != (kEtherType & 0xff)) continue;
    ours++;
    uint64_t seq = UINT64_MAX;
    if (b[i]->pkt_len == kLen && b[i]->nb_segs == 1) memcpy(&seq, f + 14, 8);
    if (seq >= d.total) {
      d.corrupt++;
      continue;
    }
    bool ok = true;
    for (size_t k = 22; ok && k < kLen; k++) ok = f[k] == Fill(seq, k);
    if (!ok) d.corrupt++;
    if (d.seen[seq]++) {
      d.dup++;
      continue;
    }
    if (seq + 1 < d.highest) d.reordered++;
    if (seq + 1 > d.highest) d.highest = seq + 1;
    d.got++;
  }
  if (r) npa_buf_free(to.sh, 0, b, r);
  if (ours) {
    if (sending && now - d.last_rx > d.rx_gap) d.rx_gap = now - d.last_rx;
    d.last_rx = now;
  }
  return r;
}

void Events(Guest& g) {
  npa_event ev{};
  ev.struct_size = sizeof ev;
  while (npa_shell_next_event(g.sh, &ev) == 1)
    if (ev.type == NPA_EVENT_RECONNECTED) g.reconnected++;
}

uint64_t Resubmitted(Guest& g) {
  npa_queue_stats st{};
  st.struct_size = sizeof st;
  return npa_shell_queue_stats(g.sh, 0, &st) == 0 ? st.tx_resubmitted : 0;
}

std::string DirJson(const Dir& d) {
  char s[320];
  snprintf(s, sizeof s,
           "{\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64
           ",\"reordered\":%" PRIu64 ",\"corrupt\":%" PRIu64 ",\"rx_gap_ms\":%.3f,\"tx_gap_ms\":%.3f",
           d.sent, d.got, d.lost(), d.dup, d.reordered, d.corrupt, d.rx_gap / 1e6, d.tx_gap / 1e6);
  return std::string(s) + ",\"lost_seq\":\"" + d.LostRanges() + "\"}";
}

}  // namespace

int main(int argc, char** argv) {
  std::string control, name = "restart";
  double rate = 5000, seconds = 6, drain = 3;
  static const option kOpts[] = {{"control", required_argument, nullptr, 'c'},
                                 {"rate", required_argument, nullptr, 'r'},
                                 {"seconds", required_argument, nullptr, 's'},
                                 {"drain", required_argument, nullptr, 'd'},
                                 {"name", required_argument, nullptr, 'n'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {nullptr, 0, nullptr, 0}};
  for (int c; (c = getopt_long(argc, argv, "h", kOpts, nullptr)) != -1;) {
    switch (c) {
      case 'c': control = optarg; break;
      case 'r': rate = strtod(optarg, nullptr); break;
      case 's': seconds = strtod(optarg, nullptr); break;
      case 'd': drain = strtod(optarg, nullptr); break;
      case 'n': name = optarg; break;
      case 'h':
        printf("usage: npa-restart-guest --control PATH [--rate N] [--seconds S] [--drain S] [--name NAME]\n");
        return 0;
      default: return 2;
    }
  }
  if (control.empty() || rate <= 0 || rate > 1e6 || seconds <= 0 || seconds > 3600 || drain <= 0 ||
      drain > 60) {
    fprintf(stderr, "npa-restart-guest: --control PATH is required; rate 1..1e6, seconds 1..3600, drain 1..60\n");
    return 2;
  }
  signal(SIGUSR1, OnUsr1);
  Guest a, b;
  if (!Open(control, name + "-a", &a) || !Open(control, name + "-b", &b)) {
    if (a.sh) npa_shell_close(a.sh);
    if (b.sh) npa_shell_close(b.sh);
    return 1;
  }
  Dir ab, ba;
  ab.total = ba.total = static_cast<uint64_t>(rate * seconds);
  ab.seen.assign(ab.total, 0);
  ba.seen.assign(ba.total, 0);
  const uint64_t t0 = npa::MonotonicNs();
  uint64_t send_end = t0 + static_cast<uint64_t>(seconds * 1e9);
  const uint64_t drain_ns = static_cast<uint64_t>(drain * 1e9);
  ab.last_rx = ab.last_tx = ba.last_rx = ba.last_tx = t0;
  // Bounded: sending stops at send_end, draining at most drain_ns after the
  // last frame that came in.
  for (;;) {
    const uint64_t now = npa::MonotonicNs();
    const bool sending = now < send_end && !g_stop;
    if (!sending && send_end > now) send_end = now;  // stopped early: drain from here
    if (!sending && ((ab.got >= ab.sent && ba.got >= ba.sent) ||
                     now - std::max(ab.last_rx, ba.last_rx) > drain_ns ||
                     now - send_end > 4 * drain_ns))
      break;
    if (sending) {
      const uint64_t due = std::min<uint64_t>(ab.total, static_cast<uint64_t>((now - t0) / 1e9 * rate));
      Send(a, b, ab, due, now);
      Send(b, a, ba, due, now);
    }
    const uint16_t r = Receive(b, ab, sending) + Receive(a, ba, sending);
    Events(a);
    Events(b);
    if (!r) {
      timespec ts{0, 20000};
      nanosleep(&ts, nullptr);
    }
  }
  const uint64_t resub = Resubmitted(a) + Resubmitted(b);
  npa_shell_close(a.sh);
  npa_shell_close(b.sh);
  const uint64_t sent = ab.sent + ba.sent, got = ab.got + ba.got, lost = ab.lost() + ba.lost();
  const uint64_t dup = ab.dup + ba.dup, corrupt = ab.corrupt + ba.corrupt;
  printf("{\"role\":\"restart-guest\",\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64
         ",\"duplicated\":%" PRIu64 ",\"reordered\":%" PRIu64 ",\"corrupt\":%" PRIu64
         ",\"resubmitted\":%" PRIu64 ",\"rx_gap_ms\":%.3f,\"tx_gap_ms\":%.3f,\"reconnected\":%d,"
         "\"ab\":%s,\"ba\":%s}\n",
         sent, got, lost, dup, ab.reordered + ba.reordered, corrupt, resub,
         std::max(ab.rx_gap, ba.rx_gap) / 1e6, std::max(ab.tx_gap, ba.tx_gap) / 1e6,
         a.reconnected + b.reconnected, DirJson(ab).c_str(), DirJson(ba).c_str());
  return sent > 0 && lost == 0 && corrupt == 0 ? 0 : 1;
}
