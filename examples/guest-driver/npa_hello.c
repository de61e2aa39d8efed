/* npa_hello — the smallest complete guest driver on npa: a starting point
 * for a driver writer (docs/sdk.md). Built out of tree against an installed
 * npa, with CMake (find_package(npa), CMakeLists.txt beside this file) or
 * with pkg-config:
 *
 *   cc -O2 npa_hello.c $(pkg-config --cflags --libs npa-shell) -o npa_hello
 *
 * It opens the NIC through the agent's control socket, configures one queue
 * pair, starts, sends COUNT broadcast frames (a real driver would send its
 * stack's frames), then echoes back whatever it receives for LINGER_MS,
 * prints its counters as one JSON line and exits 0 if every frame was taken.
 *
 *   npa_hello CONTROL_SOCKET [NAME] [COUNT] [LINGER_MS]   (1000, 1000)
 * Exit: 0 done, 1 the agent or the shell failed, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "npa/shell.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A 64-byte broadcast frame from our MAC with a local experimental
 * EtherType (IEEE 802 0x88b5): nobody on the segment will act on it. */
static void fill_frame(npa_buf *b, const uint8_t mac[6], uint32_t seq) {
  uint8_t *f = npa_buf_data(b);
  memset(f, 0xff, 6);
  memcpy(f + 6, mac, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  memset(f + 14, 0, 50);
  memcpy(f + 14, &seq, sizeof seq);
  b->data_len = 64;
  b->pkt_len = 64;
}

/* Receive a burst on queue 0 and send it back; returns how many came in. */
static uint16_t echo(npa_shell *sh) {
  npa_buf *b[32];
  uint16_t n = npa_rx_burst(sh, 0, b, 32);
  uint16_t e = npa_tx_burst(sh, 0, b, n);
  npa_buf_free(sh, 0, b + e, (uint16_t)(n - e));
  return n;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 5 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fprintf(stderr, "usage: %s CONTROL_SOCKET [NAME] [COUNT] [LINGER_MS]\n", argv[0]);
    return argc == 2 ? 0 : 2;
  }
  const char *name = argc > 2 ? argv[2] : "hello";
  const uint32_t count = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 1000;
  const double linger_s = (argc > 4 ? strtoul(argv[4], NULL, 10) : 1000) / 1000.0;

  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = argv[1];
  oa.name = name;
  npa_shell *sh = NULL;
  if (npa_shell_open(&oa, &sh) < 0) {
    fprintf(stderr, "npa_hello: open %s: %s\n", argv[1], npa_shell_last_error(NULL));
    return 1;
  }
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.nb_queue_pairs = 1;
  if (npa_shell_configure(sh, &qc) < 0 || npa_shell_start(sh) < 0) {
    fprintf(stderr, "npa_hello: configure/start: %s\n", npa_shell_last_error(sh));
    npa_shell_close(sh);
    return 1;
  }
  npa_shell_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (npa_shell_get_info(sh, &info) < 0) {
    fprintf(stderr, "npa_hello: info: %s\n", npa_shell_last_error(sh));
    npa_shell_close(sh);
    return 1;
  }

  /* Send: a burst at a time, from queue 0's pool; bounded in time. */
  uint32_t sent = 0;
  const double deadline = now_s() + 10.0;
  while (sent < count && now_s() < deadline) {
    npa_buf *b[32];
    uint16_t want = (uint16_t)(count - sent < 32 ? count - sent : 32);
    uint16_t got = npa_buf_alloc(sh, 0, b, want);
    for (uint16_t i = 0; i < got; i++) fill_frame(b[i], info.mac, sent + i);
    uint16_t s = npa_tx_burst(sh, 0, b, got);
    npa_buf_free(sh, 0, b + s, (uint16_t)(got - s)); /* not taken: ring full, retry */
    sent += s;
    echo(sh);
  }
  /* Then be an echo driver for a while: anything received goes back out. */
  const double end = now_s() + linger_s;
  while (now_s() < end) {
    if (echo(sh) == 0) {
      struct timespec pause = {0, 1000000};  /* a real driver sleeps on npa_queue_intr_fd */
      nanosleep(&pause, NULL);
    }
  }

  npa_queue_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  npa_shell_queue_stats(sh, UINT16_MAX, &st);
  printf("{\"driver\":\"npa_hello\",\"name\":\"%s\",\"mac\":\"%02x:%02x:%02x:%02x:%02x:%02x\","
         "\"sent\":%u,\"tx_packets\":%llu,\"rx_packets\":%llu}\n",
         name, info.mac[0], info.mac[1], info.mac[2], info.mac[3], info.mac[4], info.mac[5], sent,
         (unsigned long long)st.tx_packets, (unsigned long long)st.rx_packets);
  npa_shell_close(sh);
  return sent == count ? 0 : 1;
}
