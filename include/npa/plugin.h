/*
 * npa/plugin.h — the vendor plug-in ABI, version 1.
 *
 * A plug-in is a shared object that drives one family of PCI NIC functions for
 * the npa shell. It is built against this header alone and exports exactly one
 * symbol, NPA_PLUGIN_ENTRY ("npa_plugin_entry"):
 *
 *   #include "npa/plugin.h"
 *
 *   static const npa_pci_id ids[] = {
 *     {0x8086, 0x10d3, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0},   // 82574L
 *   };
 *   static const npa_plugin_ctrl_ops ctrl = {
 *     .struct_size = sizeof(npa_plugin_ctrl_ops),
 *     .probe = my_probe, .remove = my_remove, .get_caps = my_caps,
 *     .configure = my_configure, .start = my_start, .stop = my_stop,
 *     .link_status = my_link, .queue_stats = my_stats,
 *   };
 *   static const npa_plugin_fast_ops fast = {
 *     .struct_size = sizeof(npa_plugin_fast_ops),
 *     .rx_burst = my_rx, .tx_burst = my_tx,
 *   };
 *   static const npa_plugin_info info = {
 *     .struct_size = sizeof(npa_plugin_info),
 *     .abi_major = NPA_PLUGIN_ABI_MAJOR, .abi_minor = NPA_PLUGIN_ABI_MINOR,
 *     .name = "e1000e", .vendor = "example", .version = "1.0",
 *     .id_table = ids, .id_count = 1, .id_entry_size = sizeof(npa_pci_id),
 *     .capabilities = NPA_CAP_TX_CSUM | NPA_CAP_RX_CSUM,
 *     .ctrl = &ctrl, .fast = &fast,
 *   };
 *   NPA_PLUGIN_EXPORT const npa_plugin_info *
 *   npa_plugin_entry(const npa_plugin_query *q) {
 *     return q->abi_major == NPA_PLUGIN_ABI_MAJOR ? &info : NULL;
 *   }
 *
 * Version rule: the shell accepts a plug-in whose abi_major equals the shell's
 * and whose abi_minor is at least the minor the shell needs (currently
 * NPA_PLUGIN_ABI_MINOR_REQUIRED). A newer plug-in minor is fine: the shell
 * only reads the fields it knows, bounded by each struct's struct_size.
 *
 * Structs: every struct that crosses this ABI starts with uint32_t
 * struct_size, is append-only and has its layout pinned by static_assert. A
 * reader never reads past the writer's struct_size; a missing trailing field
 * reads as zero / NULL. The floor is the whole ABI 1.0 size of each struct
 * (info 72, ctrl ops 128, fast ops 48 bytes): a smaller one is rejected.
 * Names are 1..31 characters of [a-z0-9_]; id_entry_size is 16..256.
 *
 * States: link_status and queue_stats are legal at any time after probe
 * (also after stop, so the shell's totals never go backwards); set_mac,
 * set_mtu and vlan_filter while configured; irq_handler while started.
 * After quiesce returns -EAGAIN the device takes no new TX work but may
 * still complete what it holds.
 *
 * Errors: every int-returning call returns 0 on success or a negative errno:
 * -EINVAL bad argument, -ENOTSUP not supported, -ENOMEM, -EIO device error,
 * -ETIMEDOUT, -EAGAIN retry later, -ENODEV the device is gone.
 *
 * What a plug-in may touch: only what the services table (npa_services) gives
 * it — BAR mappings, config space, DMA memory with its IOVA, MSI-X eventfds,
 * packet buffers, log, time. It never sees the VFIO container, never maps
 * memory itself for DMA, never calls exit() or abort(), and never keeps a
 * pointer from the shell beyond the lifetime documented for it.
 *
 * Call order, enforced by the shell's wrappers (application code never calls
 * a plug-in directly):
 *
 *   probe -> get_caps -> configure -> start -> { bursts, stats, link }
 *         -> [quiesce] -> stop -> (configure -> start ...)* -> remove
 *
 * reset may be called between stop and configure. The fast-path ops of a
 * queue are called only by that queue's owning thread, only between start and
 * stop, and never concurrently with ctrl ops on the same queue. Control ops
 * are never called concurrently with each other.
 */
#ifndef NPA_PLUGIN_H_
#define NPA_PLUGIN_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "npa/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NPA_PLUGIN_ABI_MAJOR 1
#define NPA_PLUGIN_ABI_MINOR 0
/* The oldest minor the shell accepts for its current major. */
#define NPA_PLUGIN_ABI_MINOR_REQUIRED 0

#define NPA_PLUGIN_ENTRY npa_plugin_entry
#define NPA_PLUGIN_ENTRY_NAME "npa_plugin_entry"
#define NPA_PLUGIN_EXPORT __attribute__((visibility("default")))

#define NPA_PCI_ANY_ID 0xffffu

/* Capability bits (npa_plugin_info.capabilities, npa_dev_caps.offloads). */
#define NPA_CAP_TX_CSUM (1ull << 0)    /* TCP/UDP checksum insertion (csum_start/offset) */
#define NPA_CAP_RX_CSUM (1ull << 1)    /* RX checksum validation */
#define NPA_CAP_TSO (1ull << 2)        /* TCP segmentation, IPv4 and IPv6 */
#define NPA_CAP_VLAN_INSERT (1ull << 3)
#define NPA_CAP_VLAN_STRIP (1ull << 4)
#define NPA_CAP_VLAN_FILTER (1ull << 5)
#define NPA_CAP_RSS (1ull << 6)        /* RSS with hash report */
#define NPA_CAP_MULTIQUEUE (1ull << 7) /* more than one queue pair */
#define NPA_CAP_RX_INTR (1ull << 8)    /* per-queue MSI-X RX interrupts */
#define NPA_CAP_MAC_FILTER (1ull << 9) /* unicast MAC filter */
#define NPA_CAP_ALL_V1 ((1ull << 10) - 1)

/* One entry of a plug-in's ID table. A field equal to NPA_PCI_ANY_ID matches
 * anything; class_mask selects which bits of class_code must match (0 =
 * ignore the class). Entries are laid out id_entry_size apart. */
typedef struct npa_pci_id {
  uint16_t vendor;
  uint16_t device;
  uint16_t subsystem_vendor;
  uint16_t subsystem_device;
  uint32_t class_code; /* 24-bit base/sub/prog-if */
  uint32_t class_mask;
} npa_pci_id;

typedef struct npa_plugin_dev npa_plugin_dev;     /* opaque, owned by the plug-in */
typedef struct npa_plugin_queue npa_plugin_queue; /* opaque, owned by the plug-in */

/* ------------------------------------------------------------------------ */
/* Services: what the shell gives the plug-in. Valid from probe until remove
 * returns. ctx is passed back as the first argument of every call. */

typedef struct npa_dma_mem {
  uint32_t struct_size;
  uint32_t reserved0;
  void *vaddr;    /* CPU address, zero-filled */
  uint64_t iova;  /* device address (IOMMU-mapped) */
  uint64_t size;  /* bytes, >= the size asked for */
  uint64_t handle; /* shell-private; pass back to dma_free */
} npa_dma_mem;

enum npa_log_level { NPA_LOG_ERROR = 0, NPA_LOG_WARN = 1, NPA_LOG_INFO = 2, NPA_LOG_DEBUG = 3 };

typedef struct npa_services {
  uint32_t struct_size;
  uint16_t abi_major, abi_minor; /* the shell's plug-in ABI version */
  void *ctx;

  /* Map BAR bar (0..5) of the device. *addr and *len receive the mapping, which
   * stays valid until remove. -EINVAL: no such BAR or not mappable. */
  int (*bar_map)(void *ctx, uint32_t bar, volatile void **addr, uint64_t *len);
  /* Read or write len (1, 2 or 4) bytes of config space at off. */
  int (*cfg_read)(void *ctx, uint32_t off, uint32_t len, uint32_t *val);
  int (*cfg_write)(void *ctx, uint32_t off, uint32_t len, uint32_t val);
  /* DMA memory for rings and the like: size bytes aligned to align (power of
   * two, <= 2 MB), inside the guest's shared, IOMMU-mapped regions.
   * -ENOMEM when exhausted. Freed by dma_free or at remove. */
  int (*dma_alloc)(void *ctx, uint64_t size, uint64_t align, npa_dma_mem *out);
  void (*dma_free)(void *ctx, npa_dma_mem *mem);
  /* Wire MSI-X vectors 0..nvec-1 to eventfds that the shell owns; efds[i]
   * receives vector i's fd (read-only for the plug-in: it may poll it).
   * nvec = 0 disables MSI-X. -EINVAL: more vectors than the device has. */
  int (*irq_setup)(void *ctx, uint32_t nvec, int *efds);
  /* Packet buffers for RX rings, from queue qid's pool. Same semantics as
   * npa_buf_alloc / npa_buf_free; callable from qid's owning thread. */
  uint16_t (*buf_alloc)(void *ctx, uint16_t qid, npa_buf **bufs, uint16_t n);
  void (*buf_free)(void *ctx, uint16_t qid, npa_buf **bufs, uint16_t n);
  /* printf-style log line, prefixed by the shell with the plug-in name. */
  void (*log)(void *ctx, int level, const char *fmt, va_list ap);
  /* CLOCK_MONOTONIC nanoseconds, and a bounded sleep (<= 1 s). */
  uint64_t (*now_ns)(void *ctx);
  void (*sleep_us)(void *ctx, uint32_t us);
} npa_services;

/* What the shell knows about the device when it calls probe. */
typedef struct npa_device_info {
  uint32_t struct_size;
  uint16_t vendor, device, subsystem_vendor, subsystem_device;
  uint32_t class_code;
  uint8_t revision;
  uint8_t reserved0[3];
  uint32_t num_bars_mappable; /* bitmask of BARs bar_map can map */
  uint32_t msix_vectors;      /* vectors irq_setup can wire, 0 if no MSI-X */
  char pci_address[32];       /* "0000:00:03.0", for logs */
} npa_device_info;

/* What the device can do, filled in by get_caps. */
typedef struct npa_dev_caps {
  uint32_t struct_size;
  uint16_t max_queue_pairs;
  uint16_t min_ring_size, max_ring_size; /* power-of-two descriptors */
  uint16_t reserved0;
  uint32_t max_mtu;
  uint64_t offloads;          /* NPA_CAP_* this device supports */
  uint8_t perm_mac[6];        /* permanent MAC, zero if none */
  uint16_t reserved1;
} npa_dev_caps;

/* The guest's configuration, replayed into the plug-in by the shell. */
typedef struct npa_dev_config {
  uint32_t struct_size;
  uint16_t nb_queue_pairs;    /* <= caps.max_queue_pairs */
  uint16_t ring_size;         /* within the caps' range */
  uint32_t mtu;
  uint8_t mac[6];
  uint16_t reserved0;
  uint64_t offloads;          /* NPA_CAP_* to enable (subset of caps.offloads) */
  uint32_t rx_intr;           /* 1: arm per-queue RX interrupts (irq_setup done) */
  uint32_t reserved1;
  const uint16_t *vlan_filter; /* VLAN IDs to accept, valid during the call */
  uint32_t vlan_filter_count;
  uint32_t rss_key_len;
  const uint8_t *rss_key;     /* valid during the call; NULL = device default */
} npa_dev_config;

typedef struct npa_link_status {
  uint32_t struct_size;
  uint32_t up;
  uint32_t speed_mbps;
  uint32_t full_duplex;
} npa_link_status;

typedef struct npa_plugin_qstats {
  uint32_t struct_size;
  uint32_t reserved0;
  uint64_t rx_packets, rx_bytes, rx_dropped;
  uint64_t tx_packets, tx_bytes;
} npa_plugin_qstats;

/* ------------------------------------------------------------------------ */
/* Control ops: configuration and lifecycle. Mandatory ops are marked (M); a
 * NULL mandatory op makes the shell reject the plug-in at load. A NULL
 * optional op means "not supported". */
typedef struct npa_plugin_ctrl_ops {
  uint32_t struct_size;
  uint32_t reserved0;
  /* (M) Take the device: map BARs, check it is what the ID table promised,
   * bring it to a known state. On success *out is the plug-in's device.
   * svc stays valid until remove returns. -ENODEV: not a device we drive. */
  int (*probe)(const npa_services *svc, const npa_device_info *info, npa_plugin_dev **out);
  /* (M) Release everything probe and later calls took. Never fails. */
  void (*remove)(npa_plugin_dev *dev);
  /* (M) */
  int (*get_caps)(npa_plugin_dev *dev, npa_dev_caps *caps);
  /* (M) Apply cfg while stopped: rings, MAC, MTU, offloads, filters. */
  int (*configure)(npa_plugin_dev *dev, const npa_dev_config *cfg);
  /* (M) Enable RX/TX. After start, queue(dev, q) must return each queue. */
  int (*start)(npa_plugin_dev *dev);
  /* (M) Disable RX/TX, reclaim every buffer the device held, hand them back
   * with svc->buf_free. After stop no DMA is in flight. */
  int (*stop)(npa_plugin_dev *dev);
  /* (M) The per-queue context passed to the fast ops, valid start..stop. */
  npa_plugin_queue *(*queue)(npa_plugin_dev *dev, uint16_t qid);
  /* (M) */
  int (*link_status)(npa_plugin_dev *dev, npa_link_status *out);
  /* (M) Counters of queue qid since probe; they never go backwards. */
  int (*queue_stats)(npa_plugin_dev *dev, uint16_t qid, npa_plugin_qstats *out);
  /* Stop taking new TX work and wait up to timeout_us for the device to
   * finish what it holds. 0: idle. -EAGAIN: still busy, call again. */
  int (*quiesce)(npa_plugin_dev *dev, uint32_t timeout_us);
  /* Device-level reset (register reset, not FLR: the agent owns FLR). */
  int (*reset)(npa_plugin_dev *dev);
  int (*set_mac)(npa_plugin_dev *dev, const uint8_t mac[6]);
  int (*set_mtu)(npa_plugin_dev *dev, uint32_t mtu);
  int (*vlan_filter)(npa_plugin_dev *dev, uint16_t vid, int on);
  /* Handle MSI-X vector vec (non-queue causes: link, errors). */
  int (*irq_handler)(npa_plugin_dev *dev, uint32_t vec);
} npa_plugin_ctrl_ops;

/* Fast-path ops: the burst calls. Per queue, from its owning thread. */
typedef struct npa_plugin_fast_ops {
  uint32_t struct_size;
  uint32_t reserved0;
  /* (M) rx_burst and (M) tx_burst: same contract as npa_rx_burst /
   * npa_tx_burst: return a count <= n, no error channel, at most one
   * doorbell per call. TX buffers completed by the device go back through
   * svc->buf_free. */
  uint16_t (*rx_burst)(npa_plugin_queue *q, npa_buf **bufs, uint16_t n);
  uint16_t (*tx_burst)(npa_plugin_queue *q, npa_buf **bufs, uint16_t n);
  /* Reclaim completed TX buffers without sending; returns how many. */
  uint16_t (*tx_reap)(npa_plugin_queue *q);
  /* Arm (1) or disarm (0) the queue's RX interrupt. The MSI-X vector of
   * queue q is the one get_irq_vector reports. */
  int (*rx_intr_enable)(npa_plugin_queue *q, int enable);
  /* The MSI-X vector index queue q's interrupt uses, or -ENOTSUP. */
  int (*get_irq_vector)(npa_plugin_queue *q);
} npa_plugin_fast_ops;

/* What the entry symbol returns. Static storage: valid while the object is
 * loaded. */
typedef struct npa_plugin_info {
  uint32_t struct_size;
  uint16_t abi_major, abi_minor;
  const char *name;        /* short, [a-z0-9_]+, e.g. "e1000e" */
  const char *vendor;
  const char *version;
  const npa_pci_id *id_table;
  uint32_t id_count;       /* >= 1 */
  uint32_t id_entry_size;  /* sizeof(npa_pci_id) the plug-in was built with */
  uint64_t capabilities;   /* NPA_CAP_* the plug-in may offer */
  const npa_plugin_ctrl_ops *ctrl;
  const npa_plugin_fast_ops *fast;
} npa_plugin_info;

/* What the shell tells the entry symbol about itself. */
typedef struct npa_plugin_query {
  uint32_t struct_size;
  uint16_t abi_major, abi_minor; /* the shell's */
} npa_plugin_query;

/* The one exported symbol. Return NULL to refuse the shell's version.
 * Declared here, inside extern "C", so a C++ plug-in exports the unmangled
 * name and its definition is type-checked against this prototype. */
typedef const npa_plugin_info *(*npa_plugin_entry_fn)(const npa_plugin_query *q);
NPA_PLUGIN_EXPORT const npa_plugin_info *npa_plugin_entry(const npa_plugin_query *q);

#ifdef __cplusplus
} /* extern "C" */
#define NPA_ABI_ASSERT(t, sz) static_assert(sizeof(t) == (sz), #t " is ABI: append only")
#else
#define NPA_ABI_ASSERT(t, sz) _Static_assert(sizeof(t) == (sz), #t " is ABI: append only")
#endif
NPA_ABI_ASSERT(npa_pci_id, 16);
NPA_ABI_ASSERT(npa_dma_mem, 40);
NPA_ABI_ASSERT(npa_services, 104);
NPA_ABI_ASSERT(npa_device_info, 60);
NPA_ABI_ASSERT(npa_dev_caps, 32);
NPA_ABI_ASSERT(npa_dev_config, 64);
NPA_ABI_ASSERT(npa_link_status, 16);
NPA_ABI_ASSERT(npa_plugin_qstats, 48);
NPA_ABI_ASSERT(npa_plugin_ctrl_ops, 128);
NPA_ABI_ASSERT(npa_plugin_fast_ops, 48);
NPA_ABI_ASSERT(npa_plugin_info, 72);
NPA_ABI_ASSERT(npa_plugin_query, 8);

#endif /* NPA_PLUGIN_H_ */
