/*
 * dpdk_pingpong: the DPDK side of the latency benchmark
 * (scripts/bench-latency.sh, docs/PERFORMANCE.md "Latency and idle cost").
 *
 * DPDK's net_virtio_user (one queue pair) against a vhost-user back end that
 * echoes (testpmd net_vhost --forward-mode=io --port-topology=loop). Timing,
 * pacing and the report are pingpong_core's, shared with
 * npa_bench_pingpong.cc, so npa and DPDK are measured by the same code.
 *
 *   dpdk_pingpong EAL-ARGS -- [pingpong options]
 *   e.g. dpdk_pingpong --lcores 0@1 --no-pci --no-huge -m 256 --file-prefix pp \
 *          --vdev net_virtio_user0,path=/tmp/vhost.sock,queues=1,queue_size=256 \
 *          -- --mode intr --rate 10000
 *
 * --mode intr: the port is configured with intr_conf.rxq = 1; between
 * frames the lcore arms the queue (rte_eth_dev_rx_intr_enable), polls once
 * more, and sleeps on the queue's call eventfd (registered in an epoll fd of
 * ours with rte_eth_dev_rx_intr_ctl_q), which virtio-user hands to the back
 * end (VHOST_USER_SET_VRING_CALL).
 * Output: "measuring <unix_time>" after the warm-up, then one JSON line.
 * Exit: 0 ok, 1 failure, 2 usage.
 */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_interrupts.h>
#include <rte_mbuf.h>

#include "pingpong_core.h"

static volatile int g_stop = 0;
static void OnSignal(int sig) {
  (void)sig;
  g_stop = 1;
}

struct Ctx {
  uint16_t port;
  struct rte_mempool *pool;
  int epfd; /* our epoll fd holding the queue's interrupt (rte_eth_dev_rx_intr_ctl_q) */
};

static int Tx(void *c, const uint8_t *frame, uint32_t len) {
  struct Ctx *x = (struct Ctx *)c;
  struct rte_mbuf *m = rte_pktmbuf_alloc(x->pool);
  if (m == NULL) return 0;
  memcpy(rte_pktmbuf_mtod(m, uint8_t *), frame, len);
  m->data_len = (uint16_t)len;
  m->pkt_len = len;
  if (rte_eth_tx_burst(x->port, 0, &m, 1) == 1) return 1;
  rte_pktmbuf_free(m);
  return 0;
}

static int Rx(void *c, pp_frame_fn on_frame, void *st) {
  struct Ctx *x = (struct Ctx *)c;
  struct rte_mbuf *b[32];
  uint16_t n = rte_eth_rx_burst(x->port, 0, b, 32);
  for (uint16_t i = 0; i < n; i++) {
    on_frame(st, rte_pktmbuf_mtod(b[i], const uint8_t *), rte_pktmbuf_data_len(b[i]));
    rte_pktmbuf_free(b[i]);
  }
  return n;
}

static int Arm(void *c, int enable) {
  struct Ctx *x = (struct Ctx *)c;
  int rc = enable ? rte_eth_dev_rx_intr_enable(x->port, 0) : rte_eth_dev_rx_intr_disable(x->port, 0);
  return rc < 0 ? rc : 0;
}

static int Sleep(void *c, uint64_t timeout_ns) {
  struct Ctx *x = (struct Ctx *)c;
  /* rte_epoll_wait counts in milliseconds and a paced sender sleeps less
   * than one between frames: wait on our epoll fd with ppoll, then let
   * rte_epoll_wait (timeout 0) take the event. EAL's handler for
   * an RX event reads the eventfd's count (eal_intr_proc_rxtx_intr), which
   * is the acknowledgement. */
  struct pollfd p = {x->epfd, POLLIN, 0};
  const struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
  int n = ppoll(&p, 1, &ts, NULL);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  if (n == 0) return 0;
  struct rte_epoll_event ev[4];
  n = rte_epoll_wait(x->epfd, ev, 4, 0);
  if (n < 0) return errno == EINTR ? 0 : -EIO;
  return n > 0;
}

static void Usage(FILE *f) {
  fprintf(f,
          "usage: dpdk_pingpong EAL-ARGS -- [options]\n"
          "\n"
          "Ping-pong over DPDK's net_virtio_user (the first port; pass --vdev\n"
          "net_virtio_user0,path=SOCK,...) through a back end that echoes.\n"
          "\n"
          "%s"
          "  --help                this text\n"
          "\n"
          "Output: 'measuring <unix_time>' after the warm-up, then one JSON line.\n"
          "Exit: 0 ok, 1 failure, 2 usage.\n",
          pp_options_help);
}

int main(int argc, char **argv) {
  static const char kProg[] = "dpdk_pingpong";
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "--help") == 0) {
      Usage(stdout);
      return 0;
    }
  }
  int used = rte_eal_init(argc, argv);
  if (used < 0) {
    fprintf(stderr, "%s: rte_eal_init: %s\n", kProg, rte_strerror(rte_errno));
    return 2;
  }
  argc -= used;
  argv += used;
  pp_options o;
  pp_options_default(&o);
  for (int i = 1; i < argc; i++) {
    int r = pp_parse_option(kProg, argc, argv, &i, &o);
    if (r < 0) return 2;
    if (r > 0) continue;
    if (strcmp(argv[i], "--help") == 0) {
      Usage(stdout);
      return 0;
    }
    fprintf(stderr, "%s: unknown argument '%s' (see --help)\n", kProg, argv[i]);
    return 2;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  if (rte_eth_dev_count_avail() < 1) {
    fprintf(stderr, "%s: no port (pass --vdev net_virtio_user0,path=...)\n", kProg);
    return 1;
  }
  struct Ctx x = {0, NULL, -1};
  int rc = 1;
  x.pool = rte_pktmbuf_pool_create("pp_pool", 4095, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   (int)rte_socket_id());
  if (x.pool == NULL) {
    fprintf(stderr, "%s: mbuf pool: %s\n", kProg, rte_strerror(rte_errno));
    goto done;
  }
  struct rte_eth_conf conf;
  memset(&conf, 0, sizeof conf);
  conf.intr_conf.rxq = o.intr ? 1 : 0;
  int r;
  if ((r = rte_eth_dev_configure(x.port, 1, 1, &conf)) < 0 ||
      (r = rte_eth_rx_queue_setup(x.port, 0, 256, rte_eth_dev_socket_id(x.port), NULL, x.pool)) < 0 ||
      (r = rte_eth_tx_queue_setup(x.port, 0, 256, rte_eth_dev_socket_id(x.port), NULL)) < 0 ||
      (r = rte_eth_dev_start(x.port)) < 0) {
    fprintf(stderr, "%s: port setup: %s\n", kProg, rte_strerror(-r));
    goto done;
  }
  if (o.intr) {
    x.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (x.epfd < 0) {
      fprintf(stderr, "%s: epoll_create1: %s\n", kProg, strerror(errno));
      goto stop;
    }
    if ((r = rte_eth_dev_rx_intr_ctl_q(x.port, 0, x.epfd, RTE_INTR_EVENT_ADD, NULL)) < 0) {
      fprintf(stderr, "%s: RX interrupt on the port: %s\n", kProg, rte_strerror(-r));
      goto stop;
    }
  }
  struct rte_ether_addr mac;
  if (rte_eth_macaddr_get(x.port, &mac) == 0) memcpy(o.src_mac, mac.addr_bytes, 6);
  fprintf(stderr, "%s: %s mode, %u B, rate %.0f (0 = back to back), lcore %u\n", kProg,
          o.intr ? "interrupt" : "polling", o.size, o.rate, rte_lcore_id());
  pp_io io = {&x, Tx, Rx, o.intr ? Arm : NULL, o.intr ? Sleep : NULL};
  pp_result res;
  int run = pp_run(&io, &o, &g_stop, &res);
  if (run < 0) {
    fprintf(stderr, "%s: stopped: %s\n", kProg, strerror(-run));
  } else if (res.kept == 0) {
    fprintf(stderr, "%s: no round trip kept\n", kProg);
  } else {
    pp_print_json(stdout, "dpdk", &o, &res);
    rc = 0;
  }
stop:
  if (x.epfd >= 0) {
    rte_eth_dev_rx_intr_ctl_q(x.port, 0, x.epfd, RTE_INTR_EVENT_DEL, NULL);
    close(x.epfd);
  }
  rte_eth_dev_stop(x.port);
  rte_eth_dev_close(x.port);
done:
  rte_eal_cleanup();
  return rc;
}
