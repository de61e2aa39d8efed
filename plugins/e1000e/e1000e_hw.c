/*
 * plugins/e1000e/e1000e_hw.c — the 82574L's device-level pieces that probe,
 * stop and reset share: bounded register polling, global reset, the PHY link,
 * the EEPROM and the MAC filter, interrupt masking and the missed-packet
 * counter, and the plug-in's log line. The ops themselves are in
 * e1000e_ctrl.c (lifecycle) and e1000e_rxtx.c (bursts).
 *
 * Datasheet: "Intel 82574 GbE Controller Family Datasheet" rev 3.4.
 *   4.6      software initialisation sequence (reset, link)
 *   10.2     register reference (CTRL, STATUS, EERD, RAL/RAH, MPC)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "plugins/e1000e/e1000e.h"

/* svc->log takes a va_list; this builds one for a fixed "%s: %s" line. */
static void log_forward(const npa_services *svc, int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  svc->log(svc->ctx, level, fmt, ap);
  va_end(ap);
}

void e1k_log(const e1k_dev *d, int level, const char *fmt, ...) {
  if (d == NULL || d->svc == NULL || d->svc->log == NULL) return;
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  log_forward(d->svc, level, "%s: %s", d->name, line);
}

/* Wait until (reg & mask) == want, polling every step_us, for at most
 * timeout_us. Time comes from the shell (svc->now_ns / sleep_us). */
int e1k_wait_reg(e1k_dev *d, uint32_t reg, uint32_t mask, uint32_t want, uint32_t timeout_us,
                 uint32_t step_us) {
  const npa_services *svc = d->svc;
  uint64_t deadline = svc->now_ns(svc->ctx) + (uint64_t)timeout_us * 1000u;
  for (uint32_t i = 0;; i++) {
    uint32_t v = e1k_rd32(d->bar, reg);
    if (v == 0xffffffffu && reg != E1K_ICR) return -ENODEV; /* device fell off the bus */
    if ((v & mask) == want) return 0;
    /* The iteration bound backs up a clock that does not advance. */
    if (svc->now_ns(svc->ctx) >= deadline || i > timeout_us / (step_us ? step_us : 1) + 16)
      return -ETIMEDOUT;
    svc->sleep_us(svc->ctx, step_us);
  }
}

void e1k_irq_disable_all(e1k_dev *d) {
  /* 4.6.1: mask everything, then read ICR to drop pending causes. */
  e1k_wr32(d->bar, E1K_IMC, 0xffffffffu);
  (void)e1k_rd32(d->bar, E1K_ICR);
}

/* Fold the clear-on-read Missed Packets Count into the 64-bit total; done
 * before anything that resets the statistics (10.2.7). */
void e1k_stats_fold(e1k_dev *d) {
  uint32_t v = e1k_rd32(d->bar, E1K_MPC);
  if (v != 0xffffffffu) d->mpc_total += v;
}

/* 4.6.2 global reset: quiesce bus mastering, disable RX/TX, set CTRL.RST,
 * wait for it to clear and for the EEPROM auto-read, mask interrupts again. */
int e1k_global_reset(e1k_dev *d) {
  e1k_irq_disable_all(d);
  e1k_stats_fold(d);
  /* 5.x/10.2.2.1 GIO Master Disable: no new master requests; STATUS.
   * GIO_MASTER_ENABLE clears once none are pending. Best effort: on timeout
   * the reset below still stops everything. */
  e1k_wr32(d->bar, E1K_CTRL, e1k_rd32(d->bar, E1K_CTRL) | E1K_CTRL_GIO_MASTER_DISABLE);
  if (e1k_wait_reg(d, E1K_STATUS, E1K_STATUS_GIO_MASTER_ENABLE, 0, 80000, 100) == -ENODEV)
    return -ENODEV;
  e1k_wr32(d->bar, E1K_RCTL, 0);
  e1k_wr32(d->bar, E1K_TCTL, E1K_TCTL_PSP);
  e1k_flush(d->bar);
  d->svc->sleep_us(d->svc->ctx, 10000); /* let an in-flight frame finish */
  e1k_wr32(d->bar, E1K_CTRL, e1k_rd32(d->bar, E1K_CTRL) | E1K_CTRL_RST);
  /* 10.2.2.1: RST self-clears; the datasheet asks for >= 1 ms before the
   * next access, then the EEPROM auto-read (EECD.AUTO_RD) completes. */
  d->svc->sleep_us(d->svc->ctx, 2000);
  int rc = e1k_wait_reg(d, E1K_CTRL, E1K_CTRL_RST, 0, 100000, 500);
  if (rc == 0) rc = e1k_wait_reg(d, E1K_EECD, E1K_EECD_AUTO_RD, E1K_EECD_AUTO_RD, 100000, 500);
  if (rc != 0) {
    e1k_log(d, NPA_LOG_ERROR, "global reset did not complete (CTRL 0x%08x EECD 0x%08x): %d",
            e1k_rd32(d->bar, E1K_CTRL), e1k_rd32(d->bar, E1K_EECD), rc);
    return rc == -ENODEV ? -ENODEV : -EIO;
  }
  e1k_irq_disable_all(d); /* 4.6.1: the reset may have left causes behind */
  return 0;
}

/* 4.6.3 link setup for the internal copper PHY: SLU with speed/duplex from
 * auto-negotiation (no forcing), then wait a bounded time for STATUS.LU. A
 * link that stays down is reported, not an error. */
void e1k_link_setup(e1k_dev *d, uint32_t wait_us) {
  uint32_t ctrl = e1k_rd32(d->bar, E1K_CTRL);
  ctrl &= ~(E1K_CTRL_FRCSPD | E1K_CTRL_FRCDPLX | E1K_CTRL_PHY_RST | E1K_CTRL_GIO_MASTER_DISABLE |
            E1K_CTRL_VME);
  ctrl |= E1K_CTRL_SLU;
  e1k_wr32(d->bar, E1K_CTRL, ctrl);
  if (e1k_wait_reg(d, E1K_STATUS, E1K_STATUS_LU, E1K_STATUS_LU, wait_us, 1000) != 0)
    e1k_log(d, NPA_LOG_WARN, "link still down after %u ms (STATUS 0x%08x)", wait_us / 1000,
            e1k_rd32(d->bar, E1K_STATUS));
}

/* 10.2.2.4 EERD: read one EEPROM word. */
static int eeprom_read(e1k_dev *d, uint32_t word, uint16_t *out) {
  e1k_wr32(d->bar, E1K_EERD, (word << E1K_EERD_ADDR_SHIFT) | E1K_EERD_START);
  int rc = e1k_wait_reg(d, E1K_EERD, E1K_EERD_DONE, E1K_EERD_DONE, 10000, 5);
  if (rc != 0) return rc;
  *out = (uint16_t)(e1k_rd32(d->bar, E1K_EERD) >> E1K_EERD_DATA_SHIFT);
  return 0;
}

int e1k_mac_valid(const uint8_t m[6]) {
  static const uint8_t zero[6] = {0};
  return !(m[0] & 1) && memcmp(m, zero, 6) != 0;
}

/* The permanent MAC: the EEPROM auto-read loads it into RAL0/RAH0 (with AV)
 * at reset; words 0-2 of the EEPROM hold it otherwise. */
int e1k_read_perm_mac(e1k_dev *d) {
  uint32_t ral = e1k_rd32(d->bar, E1K_RAL(0)), rah = e1k_rd32(d->bar, E1K_RAH(0));
  if (rah & E1K_RAH_AV) {
    for (int i = 0; i < 4; i++) d->perm_mac[i] = (uint8_t)(ral >> (8 * i));
    d->perm_mac[4] = (uint8_t)rah;
    d->perm_mac[5] = (uint8_t)(rah >> 8);
    if (e1k_mac_valid(d->perm_mac)) return 0;
  }
  for (uint32_t w = 0; w < 3; w++) {
    uint16_t v;
    if (eeprom_read(d, w, &v) != 0) return -EIO;
    d->perm_mac[2 * w] = (uint8_t)v;
    d->perm_mac[2 * w + 1] = (uint8_t)(v >> 8);
  }
  return e1k_mac_valid(d->perm_mac) ? 0 : -EIO;
}

/* 10.2.5.x RAL/RAH: clear AV first so the filter never matches half a MAC. */
void e1k_write_mac_filter(e1k_dev *d, const uint8_t m[6]) {
  e1k_wr32(d->bar, E1K_RAH(0), 0);
  e1k_flush(d->bar);
  e1k_wr32(d->bar, E1K_RAL(0),
           (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24);
  e1k_wr32(d->bar, E1K_RAH(0), (uint32_t)m[4] | (uint32_t)m[5] << 8 | E1K_RAH_AV);
}

/* rss_set (npa/plugin.h ABI 1.1). The 82574 hashes TCP/IPv4, IPv4, IPv6
 * and TCP/IPv6 (its "Ex" form) with Toeplitz over the key in RSSRK, and
 * puts a frame on the queue bit (7) of RETA[hash & 127]: queue 0 or 1 of
 * the queue pairs configured. UDP is hashed over the addresses when
 * IPv4/IPv6 is on, so UDP types are refused over two queues (below). Only RSS registers are written, which the burst path
 * never touches, so it may run while the queues burst. */
int e1k_rss_set(npa_plugin_dev *pd, const struct npa_rss_conf *c) {
  e1k_dev *d = (e1k_dev *)pd;
  if (d == NULL || c == NULL || c->struct_size < sizeof(*c) || !d->configured) return -EINVAL;
  if (c->key == NULL || c->key_len != NPA_RSS_CONF_KEY_LEN || c->table == NULL ||
      c->table_len == 0 || c->table_len > NPA_RSS_CONF_TABLE_MAX ||
      (c->table_len & (c->table_len - 1)) != 0 || c->nb_queue_pairs == 0 ||
      c->nb_queue_pairs > d->nqp)
    return -EINVAL;
  /* Every entry names a queue that has a ring now. */
  for (uint32_t i = 0; i < c->table_len; i++)
    if (c->table[i] >= c->nb_queue_pairs) return -EINVAL;
  /* plugin.h's rule: over more than one queue, a frame must land where the
   * shell's hash of its first applicable type says. The 82574 has no UDP
   * hash (a UDP frame is hashed over its addresses), so a UDP type asked
   * for is refused there, and the frames stay on queue 0. */
  if (c->nb_queue_pairs > 1 && (c->hash_types & (NPA_RSS_CONF_HASH_UDPV4 | NPA_RSS_CONF_HASH_UDPV6)))
    return -ENOTSUP;
  /* Key byte 4n is RSSRK[n]'s low byte (the register file holds the key in
   * byte order, as the device reads it for the hash). */
  for (uint32_t n = 0; n < E1K_NUM_RSSRK; n++) {
    const uint8_t *k = c->key + 4u * n;
    e1k_wr32(d->bar, E1K_RSSRK(n),
             (uint32_t)k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24);
  }
  /* 128 one-byte entries, four per register, entry 4n lowest; a shorter
   * table repeats (its length divides 128, so hash & (len - 1) picks the
   * same entry). Bit 7 set: queue 1. */
  for (uint32_t n = 0; n < E1K_NUM_RETA; n++) {
    uint32_t v = 0;
    for (uint32_t b = 0; b < 4; b++) {
      uint32_t q = c->table[(4u * n + b) & (c->table_len - 1u)];
      v |= (q ? 0x80u : 0u) << (8u * b);
    }
    e1k_wr32(d->bar, E1K_RETA(n), v);
  }
  uint32_t mrqc = E1K_MRQC_RSS;
  if (c->hash_types & NPA_RSS_CONF_HASH_TCPV4) mrqc |= E1K_MRQC_TCPIPV4;
  if (c->hash_types & (NPA_RSS_CONF_HASH_IPV4 | NPA_RSS_CONF_HASH_UDPV4)) mrqc |= E1K_MRQC_IPV4;
  if (c->hash_types & NPA_RSS_CONF_HASH_TCPV6) mrqc |= E1K_MRQC_TCPIPV6EX;
  if (c->hash_types & (NPA_RSS_CONF_HASH_IPV6 | NPA_RSS_CONF_HASH_UDPV6)) mrqc |= E1K_MRQC_IPV6;
  /* Key and table before the enable, so the device never hashes with half
   * of them (it may still mix old and new across this call: plugin.h). */
  e1k_wr32(d->bar, E1K_MRQC, mrqc);
  __atomic_store_n(&d->rss_on, 1, __ATOMIC_RELEASE);
  return 0;
}
