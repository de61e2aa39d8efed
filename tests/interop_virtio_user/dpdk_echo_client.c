/*
 * dpdk_echo_client — DPDK's net_virtio_user (an independent vhost-user front
 * end) against npa's back end. Sends sequence-numbered frames of known
 * content at each size on every queue, and checks that every echoed frame
 * comes back complete, unaltered and in order.
 *
 *   dpdk_echo_client --socket PATH [--queues N] [--mrg 0|1] [--packed 0|1] [--count N]
 *                    [--sizes 64,1500] [--prefix NAME]
 *
 * Exit 0 when every frame came back intact, 1 otherwise (with the first
 * mismatch printed). --packed 1: DPDK's packed_vq=1 (VIRTIO 1.1 2.8 rings).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#define BURST 32
#define MAX_QUEUES 4

static uint8_t Pattern(uint32_t seq, uint32_t i) { return (uint8_t)(seq * 31u + i * 7u + 3u); }

static void Fill(struct rte_mbuf* m, uint32_t seq, uint16_t q, uint32_t size) {
  uint8_t* p = rte_pktmbuf_mtod(m, uint8_t*);
  memset(p, 0xff, 6);                                       /* dst: broadcast */
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, (uint8_t)q};
  memcpy(p + 6, src, 6);
  p[12] = 0x88; p[13] = 0xb5;                               /* local experimental */
  memcpy(p + 14, &seq, 4);
  memcpy(p + 18, &size, 4);
  for (uint32_t i = 22; i < size; ++i) p[i] = Pattern(seq, i);
  m->data_len = m->pkt_len = size;
}

static int Check(struct rte_mbuf* m, uint32_t want_seq, uint16_t q, uint32_t size) {
  if (m->nb_segs != 1 || m->pkt_len != size) {
    fprintf(stderr, "q%u seq %u: got %u bytes in %u segs, want %u\n", q, want_seq, m->pkt_len, m->nb_segs, size);
    return -1;
  }
  const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t seq, sz;
  memcpy(&seq, p + 14, 4);
  memcpy(&sz, p + 18, 4);
  if (seq != want_seq || sz != size || p[13] != 0xb5 || p[11] != q) {
    fprintf(stderr, "q%u: got seq %u size %u (src q %u), want seq %u size %u\n", q, seq, sz, p[11], want_seq, size);
    return -1;
  }
  for (uint32_t i = 22; i < size; ++i) {
    if (p[i] != Pattern(seq, i)) {
      fprintf(stderr, "q%u seq %u: byte %u is 0x%02x, want 0x%02x\n", q, seq, i, p[i], Pattern(seq, i));
      return -1;
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  const char* sock = NULL;
  const char* prefix = "npa-echo";
  int queues = 1, mrg = 1, packed = 0;
  uint32_t count = 2000;
  uint32_t sizes[8] = {64, 1500};
  int nsizes = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--socket")) sock = argv[i + 1];
    else if (!strcmp(argv[i], "--queues")) queues = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--mrg")) mrg = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--packed")) packed = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--count")) count = (uint32_t)atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--prefix")) prefix = argv[i + 1];
    else if (!strcmp(argv[i], "--sizes")) {
      nsizes = 0;
      for (char* t = strtok(argv[i + 1], ","); t && nsizes < 8; t = strtok(NULL, ",")) sizes[nsizes++] = (uint32_t)atoi(t);
    } else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
  }
  if (!sock || queues < 1 || queues > MAX_QUEUES) {
    fprintf(stderr, "usage: %s --socket PATH [--queues 1..4] [--mrg 0|1] [--packed 0|1] [--count N] [--sizes a,b] [--prefix P]\n", argv[0]);
    return 2;
  }
  char vdev[512], fp[300];
  snprintf(vdev, sizeof(vdev), "net_virtio_user0,path=%s,queues=%d,mrg_rxbuf=%d,queue_size=256,packed_vq=%d", sock, queues, mrg, packed);
  snprintf(fp, sizeof(fp), "--file-prefix=%s", prefix);
  char* eal[] = {argv[0], "--no-pci", "--no-huge", "-m", "256", "--vdev", vdev, fp, "-l", "0",
                 "--log-level", "pmd.net.virtio.*:info", "--no-telemetry"};
  if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])), eal) < 0) { fprintf(stderr, "rte_eal_init failed\n"); return 1; }
  struct rte_mempool* mp = rte_pktmbuf_pool_create("mp", 4095, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  if (!mp) { fprintf(stderr, "mempool failed\n"); return 1; }
  const uint16_t port = 0;
  struct rte_eth_conf conf;
  memset(&conf, 0, sizeof(conf));
  if (rte_eth_dev_configure(port, queues, queues, &conf) < 0) { fprintf(stderr, "configure failed\n"); return 1; }
  for (int q = 0; q < queues; ++q) {
    if (rte_eth_rx_queue_setup(port, q, 256, 0, NULL, mp) < 0 || rte_eth_tx_queue_setup(port, q, 256, 0, NULL) < 0) {
      fprintf(stderr, "queue %d setup failed\n", q);
      return 1;
    }
  }
  if (rte_eth_dev_start(port) < 0) { fprintf(stderr, "start failed\n"); return 1; }

  int rc = 0;
  uint64_t total = 0;
  for (int s = 0; s < nsizes && rc == 0; ++s) {
    if (s > 0) {
      /* A port restart between sizes: the back end sees GET_VRING_BASE (ring
       * stop) and a new ring bring-up that resumes from the returned base. */
      if (rte_eth_dev_stop(port) != 0 || rte_eth_dev_start(port) != 0) {
        fprintf(stderr, "port restart failed\n");
        rc = 1;
        break;
      }
    }
    for (int q = 0; q < queues && rc == 0; ++q) {
      uint32_t sent = 0, got = 0;
      const uint64_t deadline = rte_get_timer_cycles() + 20 * rte_get_timer_hz();
      while (got < count && rc == 0) {
        if (rte_get_timer_cycles() > deadline) {
          fprintf(stderr, "size %u q%d: timeout with %u/%u echoed (%u sent)\n", sizes[s], q, got, count, sent);
          rc = 1;
          break;
        }
        /* Keep at most one burst in flight: the echo must never need to drop. */
        if (sent == got && sent < count) {
          struct rte_mbuf* tx[BURST];
          uint32_t n = count - sent < BURST ? count - sent : BURST;
          if (rte_pktmbuf_alloc_bulk(mp, tx, n) != 0) { fprintf(stderr, "alloc failed\n"); rc = 1; break; }
          for (uint32_t i = 0; i < n; ++i) Fill(tx[i], sent + i, (uint16_t)q, sizes[s]);
          uint16_t k = rte_eth_tx_burst(port, q, tx, (uint16_t)n);
          for (uint16_t i = k; i < n; ++i) rte_pktmbuf_free(tx[i]);
          sent += k;
        }
        struct rte_mbuf* rx[BURST];
        uint16_t r = rte_eth_rx_burst(port, q, rx, BURST);
        for (uint16_t i = 0; i < r; ++i) {
          if (rc == 0 && Check(rx[i], got, (uint16_t)q, sizes[s]) != 0) rc = 1;
          ++got;
          rte_pktmbuf_free(rx[i]);
        }
      }
      if (rc == 0) printf("size %u queue %d: %u/%u frames echoed intact\n", sizes[s], q, got, count);
      total += got;
    }
  }
  struct rte_eth_stats st;
  if (rte_eth_stats_get(port, &st) == 0) {
    printf("port stats: ipackets %llu opackets %llu ierrors %llu\n", (unsigned long long)st.ipackets,
           (unsigned long long)st.opackets, (unsigned long long)st.ierrors);
  }
  rte_eth_dev_stop(port);
  rte_eth_dev_close(port);
  rte_eal_cleanup();
  printf("%s: %llu frames verified\n", rc == 0 ? "PASS" : "FAIL", (unsigned long long)total);
  return rc;
}
