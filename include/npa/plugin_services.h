/*
 * npa/plugin_services.h — the services table of the vendor plug-in ABI
 * (npa/plugin.h, which includes this header and is the contract as a whole:
 * its "Threads" and "Buffers" sections rule these calls too). A plug-in
 * reaches its device and memory only through this table: BARs, config space,
 * DMA memory with its IOVA, MSI-X eventfds, packet buffers, log and time.
 * It never sees the VFIO container and never memory it did not get here.
 *
 * Ownership: the shell owns the table and everything behind ctx; the table
 * is valid from probe until remove returns. What dma_alloc and bar_map hand
 * out is valid until dma_free or remove; the eventfds of irq_setup are the
 * shell's (poll them, never close them).
 */
#ifndef NPA_PLUGIN_SERVICES_H_
#define NPA_PLUGIN_SERVICES_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "npa/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Services: what the shell gives the plug-in. Valid from probe until remove
 * returns. ctx is passed back as the first argument of every call. Every
 * service checks its arguments and returns -EINVAL for bad ones. Threads: the
 * device-level services (bar_map, cfg_*, dma_*, irq_setup, sleep_us) are for
 * control ops only; buf_* follow the rule under "Buffers" in npa/plugin.h; log and
 * now_ns may be called from any thread, though never per packet. A BAR
 * mapping, once returned, may be read and written from any thread. */

typedef struct npa_dma_mem {
  uint32_t struct_size;
  uint32_t reserved0;
  void *vaddr;    /* CPU address, zero-filled */
  uint64_t iova;  /* device address (IOMMU-mapped): program the device with this */
  uint64_t size;  /* bytes, >= the size asked for */
  uint64_t handle; /* shell-private; pass back to dma_free */
} npa_dma_mem;

enum npa_log_level { NPA_LOG_ERROR = 0, NPA_LOG_WARN = 1, NPA_LOG_INFO = 2, NPA_LOG_DEBUG = 3 };

typedef struct npa_services {
  uint32_t struct_size;
  uint16_t abi_major, abi_minor; /* the shell's plug-in ABI version */
  void *ctx;

  /* Map BAR bar (0..5) of the device. *addr and *len receive the mapping, which
   * stays valid until remove; map each BAR once and keep it. -EINVAL: no such
   * BAR or not mappable. */
  int (*bar_map)(void *ctx, uint32_t bar, volatile void **addr, uint64_t *len);
  /* Read or write len (1, 2 or 4) bytes of config space at off; a written
   * value must fit in len bytes. -EINVAL otherwise, -EIO when the access
   * fails. */
  int (*cfg_read)(void *ctx, uint32_t off, uint32_t len, uint32_t *val);
  int (*cfg_write)(void *ctx, uint32_t off, uint32_t len, uint32_t val);
  /* DMA memory for rings and the like: size bytes aligned to align (power of
   * two, <= 2 MB), inside the guest's shared, IOMMU-mapped regions (a 4 MB
   * reserve per shell). -ENOMEM when exhausted, -EINVAL for a bad size or
   * alignment. Freed by dma_free (which zeroes *mem) or at remove. */
  int (*dma_alloc)(void *ctx, uint64_t size, uint64_t align, npa_dma_mem *out);
  void (*dma_free)(void *ctx, npa_dma_mem *mem);
  /* Wire MSI-X vectors 0..nvec-1 to eventfds that the shell owns; efds[i]
   * receives vector i's fd (read-only for the plug-in: it may poll it, never
   * close it). A second call replaces the first; nvec = 0 disables MSI-X.
   * -EINVAL: more vectors than the device has (npa_device_info.msix_vectors).
   * May be NULL in a services table: then offer no NPA_CAP_RX_INTR. */
  int (*irq_setup)(void *ctx, uint32_t nvec, int *efds);
  /* Packet buffers from queue qid's pool, with npa_buf_alloc / npa_buf_free
   * semantics: alloc returns how many it got (possibly fewer than n, also 0)
   * with headers reset; free takes frame heads and frees all their segments.
   * Threads: "Buffers" in npa/plugin.h. A qid beyond the configured queues gets 0 /
   * is logged and leaked. */
  uint16_t (*buf_alloc)(void *ctx, uint16_t qid, npa_buf **bufs, uint16_t n);
  void (*buf_free)(void *ctx, uint16_t qid, npa_buf **bufs, uint16_t n);
  /* printf-style log line, prefixed by the shell with the plug-in name. */
  void (*log)(void *ctx, int level, const char *fmt, va_list ap);
  /* CLOCK_MONOTONIC nanoseconds, and a bounded sleep (clamped to 1 s). Use
   * these, not the libc calls: a test's fake device (npa/testing/
   * plugin_testkit.h) advances in sleep_us. Never sleep in a fast op. */
  uint64_t (*now_ns)(void *ctx);
  void (*sleep_us)(void *ctx, uint32_t us);
  /* ABI 1.1. TX frames the plug-in took in tx_burst and is done with (the
   * device sent or dropped them, or stop found them unsent): frame heads,
   * every segment freed, as buf_free. Threads: as buf_free. See "TX
   * completions apart" in npa/plugin.h; only a plug-in with NPA_PLUGIN_F_TX_FREE gains
   * from it. Present when struct_size covers it. */
  void (*buf_free_tx)(void *ctx, uint16_t qid, npa_buf **bufs, uint16_t n);
} npa_services;

/* The free call for TX completions, chosen once (at probe): buf_free_tx when
 * the shell's table has it (ABI 1.1 and later), else buf_free. */
typedef void (*npa_buf_free_fn)(void *ctx, uint16_t qid, npa_buf **bufs, uint16_t n);
static inline npa_buf_free_fn npa_services_tx_free(const npa_services *svc) {
  if (svc->struct_size >= offsetof(npa_services, buf_free_tx) + sizeof(svc->buf_free_tx) &&
      svc->buf_free_tx != NULL)
    return svc->buf_free_tx;
  return svc->buf_free;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

/* Every ABI struct is pinned: append only. */
#ifndef NPA_ABI_ASSERT
#ifdef __cplusplus
#define NPA_ABI_ASSERT(t, sz) static_assert(sizeof(t) == (sz), #t " is ABI: append only")
#else
#define NPA_ABI_ASSERT(t, sz) _Static_assert(sizeof(t) == (sz), #t " is ABI: append only")
#endif
#endif
NPA_ABI_ASSERT(npa_dma_mem, 40);
NPA_ABI_ASSERT(npa_services, 112);

#endif /* NPA_PLUGIN_SERVICES_H_ */
