/*
 * plugins/e1000e/e1000e.h — the plug-in's private device and queue state,
 * shared by the control path (e1000e_ctrl.c), the device-level steps it
 * shares with stop and reset (e1000e_hw.c) and the burst path
 * (e1000e_rxtx.c). Nothing here is ABI: the shell sees only opaque pointers.
 * Every function declared here has hidden visibility (the build's preset):
 * the plug-in exports npa_plugin_entry alone.
 */
#ifndef NPA_PLUGINS_E1000E_H_
#define NPA_PLUGINS_E1000E_H_

#include <stdint.h>

#include "npa/plugin.h"
#include "plugins/e1000e/e1000e_regs.h"

#define E1K_MIN_RING 64u
#define E1K_MAX_RING 4096u
#define E1K_MAX_MTU 1500u
#define E1K_MAX_TX_SEGS 16u
/* RCTL.BSIZE 2048: every RX buffer must offer this much room at data_off. */
#define E1K_RX_BUF_SIZE 2048u
/* The 82574 has two queue pairs (RSS spreads RX over them). */
#define E1K_MAX_QP 2u
/* MSI-X: one vector per RX queue, then Other (link): 0 RxQ0, 1 RxQ1, 2 Other. */
#define E1K_NUM_VECTORS (E1K_MAX_QP + 1u)
#define E1K_OFFLOADS (NPA_CAP_TX_CSUM | NPA_CAP_RX_CSUM | NPA_CAP_VLAN_FILTER | \
                      NPA_CAP_RX_INTR | NPA_CAP_MAC_FILTER | NPA_CAP_RSS | NPA_CAP_MULTIQUEUE)

typedef struct e1k_dev e1k_dev;

/* One queue pair: RxQn and TxQn. */
struct npa_plugin_queue {
  e1k_dev *dev;
  uint16_t qid;
  uint32_t rdt, tdt; /* this queue's tail registers (E1K_Q(E1K_RDT, qid), ...) */
  uint32_t vec;      /* its RX MSI-X vector */
  npa_dma_mem rx_mem, tx_mem;
  int rx_mem_ok, tx_mem_ok;
  uint16_t nb_desc; /* ring size, a power of two */
  uint16_t mask;    /* nb_desc - 1 */
  int running;      /* between start and stop */
  int tx_stopped;   /* quiesce: take no new TX */

  volatile e1k_rx_desc *rx_ring;
  npa_buf **rx_bufs; /* the buffer posted in each RX slot */
  uint16_t rx_next;  /* next slot the device completes */

  volatile e1k_tx_desc *tx_ring;
  npa_buf **tx_bufs; /* frame head at its last descriptor, else NULL */
  uint16_t tx_tail;  /* next free slot (mirror of TDT) */
  uint16_t tx_clean; /* oldest slot not yet reaped */
  /* The TCP/IP context the device holds (7.2: a context stays in force until
   * the next context descriptor), so it is only re-sent when it changes. */
  int ctx_valid;
  uint16_t ctx_css, ctx_cso;

  /* Software counters since probe: written only by the queue's owning
   * thread; queue_stats may read them from another thread while it bursts
   * (npa/plugin.h, queue_stats), so each stays one aligned 64-bit word: a
   * read sees a whole value, at most a burst old. */
  uint64_t rx_packets, rx_bytes, rx_errors, tx_packets, tx_bytes;
};

struct e1k_dev {
  const npa_services *svc;
  npa_buf_free_fn free_tx; /* buf_free_tx when the shell has it (ABI 1.1), else buf_free */
  volatile uint8_t *bar;
  uint64_t bar_len;
  char name[40];
  uint32_t msix_vectors;
  uint8_t perm_mac[6];
  uint8_t mac[6];

  /* configuration */
  int configured;
  int started;
  uint16_t nqp; /* queue pairs configured, 1..E1K_MAX_QP */
  uint16_t ring_size;
  uint32_t mtu;
  uint64_t offloads;
  int rx_intr;
  uint32_t vfta[E1K_NUM_VFTA];
  /* RSS programmed (rss_set): the burst path reports the device's hash.
   * Written by the control thread while the owner bursts: __atomic. */
  int rss_on;

  /* MSI-X */
  int irq_wired;
  int efds[E1K_NUM_VECTORS];
  uint32_t other_vec;

  npa_plugin_queue q[E1K_MAX_QP];
  uint64_t mpc_total; /* Missed Packets, accumulated from the clear-on-read MPC */
  uint32_t link_up_last;
};

/* e1000e_hw.c: log, bounded polling, reset, link, MAC. */
void e1k_log(const e1k_dev *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Wait until (reg & mask) == want, polling every step_us, for at most
 * timeout_us of svc->now_ns time (and a matching iteration count). 0,
 * -ETIMEDOUT, or -ENODEV when the register reads all-ones. */
int e1k_wait_reg(e1k_dev *d, uint32_t reg, uint32_t mask, uint32_t want, uint32_t timeout_us,
                 uint32_t step_us);
/* Mask every interrupt cause and drop the pending ones. */
void e1k_irq_disable_all(e1k_dev *d);
/* Fold the clear-on-read MPC into mpc_total. */
void e1k_stats_fold(e1k_dev *d);
/* 4.6.2 global reset; 0, -EIO or -ENODEV. */
int e1k_global_reset(e1k_dev *d);
/* 4.6.3 link up (SLU), waiting at most wait_us for STATUS.LU (logged if not). */
void e1k_link_setup(e1k_dev *d, uint32_t wait_us);
/* A unicast, non-zero MAC. */
int e1k_mac_valid(const uint8_t m[6]);
/* perm_mac from RAL0/RAH0 or the EEPROM; -EIO when neither holds a valid one. */
int e1k_read_perm_mac(e1k_dev *d);
/* m into receive address 0 (AV cleared while it changes). */
void e1k_write_mac_filter(e1k_dev *d, const uint8_t m[6]);

/* The rss_set op (e1000e_hw.c): RSSRK, RETA and MRQC from conf. */
int e1k_rss_set(npa_plugin_dev *pd, const struct npa_rss_conf *conf);

/* e1000e_rxtx.c: the fast ops, and the reclaim used by stop/quiesce. */
uint16_t e1k_rx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n);
uint16_t e1k_tx_burst(npa_plugin_queue *q, npa_buf **bufs, uint16_t n);
uint16_t e1k_tx_reap(npa_plugin_queue *q);
int e1k_rx_intr_enable(npa_plugin_queue *q, int enable);
int e1k_get_irq_vector(npa_plugin_queue *q);
/* Post a buffer in every RX slot; -ENOMEM if the pool ran dry. */
int e1k_rx_fill(npa_plugin_queue *q);
/* Hand every buffer still in the rings back (after the device stopped). */
void e1k_release_all(npa_plugin_queue *q);

#endif /* NPA_PLUGINS_E1000E_H_ */
