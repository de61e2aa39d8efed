// npa-migration-guest: the guest side of the migration measurement
// (scripts/bench-migration.sh, docs/migration.md). A real shell
// (libnpa_shell) sends sequence-numbered frames at a fixed rate through an
// agent in --mode loopback (it reflects each frame into the guest's RX)
// while the operator moves it to another agent; every frame must come back
// exactly once. Both directions of the guest's data path are crossed by the
// move: a frame lost on TX or on RX is missing, one sent twice is duplicated.
//
//   npa-migration-guest --control PATH [--rate N] [--seconds S] [--drain S] [--name NAME]
//
// Last line on stdout, one JSON object:
//   {"role":"migration-guest","sent":..,"received":..,"lost":..,"duplicated":..,
//    "reordered":..,"corrupt":..,"rx_gap_ms":..,"tx_gap_ms":..,"rx_gap_from_s":..,
//    "rx_gap_to_s":..,"mig_rx_gap_ms":..,"mig_tx_gap_ms":..,"migrated":0|1,
//    "migrated_at_ms":..,"events":[..]}
// mig_rx_gap_ms/mig_tx_gap_ms: the RX and TX gaps that contain the MIGRATED
// event's stamp (the shell resumed on B inside them): the move's blackout,
// apart from stalls elsewhere in the run (0 if the move left no gap over
// 200 us).
// rx_gap_from_s/_to_s: CLOCK_MONOTONIC seconds at the two ends of the longest
// RX gap, the clock of the agents' and the shell's log stamps, so a timeline
// of the blackout can be read off the logs (bench-migration.sh --keep).
// rx_gap_ms: the longest time between two received frames while frames were
// due (the RX blackout); tx_gap_ms: the longest time npa_tx_burst accepted
// nothing while frames were due (the TX blackout). Exit 0 if nothing was
// lost, duplicated or corrupted, 1 otherwise, 2 usage.
#include <getopt.h>

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

uint8_t Fill(uint64_t seq, size_t i) { return static_cast<uint8_t>(seq * 7 + i); }

}  // namespace

int main(int argc, char** argv) {
  std::string control, name = "mig-guest";
  double rate = 20000, seconds = 6, drain = 2;
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
        printf("usage: npa-migration-guest --control PATH [--rate N] [--seconds S] [--drain S] "
               "[--name NAME]\n");
        return 0;
      default: return 2;
    }
  }
  if (control.empty() || rate <= 0 || rate > 1e6 || seconds <= 0 || seconds > 3600) {
    fprintf(stderr, "npa-migration-guest: --control PATH is required; rate 1..1e6, seconds 1..3600\n");
    return 2;
  }
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = control.c_str();
  oa.name = name.c_str();
  npa_shell* sh = nullptr;
  if (npa_shell_open(&oa, &sh) < 0) {
    fprintf(stderr, "npa-migration-guest: open %s: %s\n", control.c_str(), npa_shell_last_error(nullptr));
    return 1;
  }
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.ring_size = 1024;
  if (npa_shell_configure(sh, &qc) < 0 || npa_shell_start(sh) < 0) {
    fprintf(stderr, "npa-migration-guest: configure/start: %s\n", npa_shell_last_error(sh));
    npa_shell_close(sh);
    return 1;
  }
  npa_shell_info info{};
  info.struct_size = sizeof info;
  npa_shell_get_info(sh, &info);

  const uint64_t total = static_cast<uint64_t>(rate * seconds);
  std::vector<uint8_t> seen(total, 0);  // times each sequence number came back
  uint64_t sent = 0, got = 0, dup = 0, reordered = 0, corrupt = 0, highest = 0;
  const uint64_t t0 = npa::MonotonicNs(), send_end = t0 + static_cast<uint64_t>(seconds * 1e9);
  uint64_t last_rx = t0, last_tx = t0, rx_gap = 0, tx_gap = 0, migrated_at = 0;
  uint64_t rx_gap_from = 0, rx_gap_to = 0;  // CLOCK_MONOTONIC ns: where the longest RX gap lies
  // Every gap over 200 us (at most 4096 of each), to find the one the move
  // caused: the gap around the MIGRATED event's stamp. On a loaded machine
  // the longest gap of a run can be a scheduling stall anywhere else.
  struct Gap {
    uint64_t from, to;
  };
  std::vector<Gap> rx_gaps, tx_gaps;
  uint64_t migrated_ns = 0;  // the event's CLOCK_MONOTONIC stamp
  auto note_gap = [](std::vector<Gap>& v, uint64_t from, uint64_t to) {
    if (to - from > 200000 && v.size() < 4096) v.push_back({from, to});
  };
  bool migrated = false;
  std::string events;
  npa_buf* b[32];
  for (;;) {
    const uint64_t now = npa::MonotonicNs();
    const bool sending = now < send_end && sent < total;
    if (!sending && (got >= sent || now - last_rx > static_cast<uint64_t>(drain * 1e9))) break;
    if (sending) {
      const uint64_t due = std::min<uint64_t>(total, static_cast<uint64_t>((now - t0) / 1e9 * rate));
      const uint16_t want = static_cast<uint16_t>(due > sent ? std::min<uint64_t>(32, due - sent) : 0);
      const uint16_t n = want ? npa_buf_alloc(sh, 0, b, want) : 0;
      for (uint16_t i = 0; i < n; i++) {
        const uint64_t seq = sent + i;
        auto* f = static_cast<uint8_t*>(npa_buf_data(b[i]));
        memcpy(f, info.mac, 6);
        memcpy(f + 6, info.mac, 6);
        f[12] = kEtherType >> 8;
        f[13] = kEtherType & 0xff;
        memcpy(f + 14, &seq, 8);
        for (size_t k = 22; k < kLen; k++) f[k] = Fill(seq, k);
        b[i]->data_len = kLen;
        b[i]->pkt_len = kLen;
      }
      const uint16_t s = n ? npa_tx_burst(sh, 0, b, n) : 0;
      if (s < n) npa_buf_free(sh, 0, b + s, n - s);  // never sent: sent again later
      sent += s;
      if (s > 0 || want == 0) {
        if (want && now - last_tx > tx_gap) tx_gap = now - last_tx;
        if (want) note_gap(tx_gaps, last_tx, now);
        last_tx = now;
      }
    }
    const uint16_t r = npa_rx_burst(sh, 0, b, 32);
    const uint64_t after = npa::MonotonicNs();
    for (uint16_t i = 0; i < r; i++) {
      const auto* f = static_cast<const uint8_t*>(npa_buf_data(b[i]));
      uint64_t seq = UINT64_MAX;
      if (b[i]->pkt_len == kLen && b[i]->nb_segs == 1 && f[12] == (kEtherType >> 8)) memcpy(&seq, f + 14, 8);
      if (seq >= total) {
        corrupt++;
        continue;
      }
      bool ok = true;
      for (size_t k = 22; ok && k < kLen; k++) ok = f[k] == Fill(seq, k);
      if (!ok) corrupt++;
      if (seen[seq]++) dup++;
      if (seq + 1 < highest) reordered++;
      if (seq + 1 > highest) highest = seq + 1;
      got++;
    }
    if (r) {
      npa_buf_free(sh, 0, b, r);
      if (sending && after - last_rx > rx_gap) {
        rx_gap = after - last_rx;
        rx_gap_from = last_rx;
        rx_gap_to = after;
      }
      if (sending) note_gap(rx_gaps, last_rx, after);
      last_rx = after;
    }
    npa_event ev{};
    ev.struct_size = sizeof ev;
    while (npa_shell_next_event(sh, &ev) == 1) {
      if (ev.type == NPA_EVENT_MIGRATED) {
        migrated = true;
        migrated_at = ev.timestamp_ns > t0 ? ev.timestamp_ns - t0 : 0;
        migrated_ns = ev.timestamp_ns;
      }
      char e[160];
      snprintf(e, sizeof e, "%s{\"type\":%d,\"at_ms\":%.3f}", events.empty() ? "" : ",",
               static_cast<int>(ev.type), ev.timestamp_ns > t0 ? (ev.timestamp_ns - t0) / 1e6 : 0.0);
      events += e;
    }
    if (!r) {
      timespec ts{0, 20000};
      nanosleep(&ts, nullptr);
    }
  }
  npa_shell_close(sh);
  auto around = [&](const std::vector<Gap>& v) -> uint64_t {
    for (const Gap& g : v)
      if (migrated_ns && g.from <= migrated_ns && migrated_ns <= g.to) return g.to - g.from;
    return 0;
  };
  const uint64_t mig_rx_gap = around(rx_gaps), mig_tx_gap = around(tx_gaps);
  uint64_t lost = 0;
  for (uint64_t s = 0; s < sent; s++) lost += seen[s] == 0;
  printf("{\"role\":\"migration-guest\",\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64
         ",\"duplicated\":%" PRIu64 ",\"reordered\":%" PRIu64 ",\"corrupt\":%" PRIu64
         ",\"rx_gap_ms\":%.3f,\"tx_gap_ms\":%.3f,\"rx_gap_from_s\":%.6f,\"rx_gap_to_s\":%.6f,"
         "\"mig_rx_gap_ms\":%.3f,\"mig_tx_gap_ms\":%.3f,"
         "\"migrated\":%d,\"migrated_at_ms\":%.3f,\"events\":[%s]}\n",
         sent, got, lost, dup, reordered, corrupt, rx_gap / 1e6, tx_gap / 1e6, rx_gap_from / 1e9,
         rx_gap_to / 1e9, mig_rx_gap / 1e6, mig_tx_gap / 1e6, migrated ? 1 : 0, migrated_at / 1e6,
         events.c_str());
  return sent > 0 && lost == 0 && dup == 0 && corrupt == 0 ? 0 : 1;
}
