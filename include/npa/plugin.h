/*
 * npa/plugin.h — the vendor plug-in ABI, version 1: the whole contract between
 * the npa shell and a plug-in. docs/plugin-abi.md is the reference manual and
 * docs/plugin-author-guide.md the walk-through; where they and this header
 * differ, this header is right.
 *
 * A plug-in is a shared object that drives one family of PCI NIC functions for
 * the npa shell. It is built against this header alone and exports exactly one
 * symbol, NPA_PLUGIN_ENTRY ("npa_plugin_entry"). The example between the two
 * marker lines is C that builds: tests/plugins/CMakeLists.txt cuts it out of
 * this header at build time, links it with tests/plugins/example_ops.c (a
 * small loopback device behind the my_* ops) and example_plugin_test loads the
 * result through the shell's loader and runs it on the plug-in test kit
 * (npa/testing/plugin_testkit.h). Edit it and that test tells you whether the
 * shell still accepts it.
 *
 * ---8<--- example plug-in: begin ---8<---
 * #include "npa/plugin.h"
 *
 * // Your ops, defined in your other source files (plugins/e1000e/ has a real
 * // set). Only the entry below is exported: build with -fvisibility=hidden.
 * int my_probe(const npa_services *svc, const npa_device_info *info, npa_plugin_dev **out);
 * void my_remove(npa_plugin_dev *dev);
 * int my_caps(npa_plugin_dev *dev, npa_dev_caps *caps);
 * int my_configure(npa_plugin_dev *dev, const npa_dev_config *cfg);
 * int my_start(npa_plugin_dev *dev);
 * int my_stop(npa_plugin_dev *dev);
 * npa_plugin_queue *my_queue(npa_plugin_dev *dev, uint16_t qid);
 * int my_link(npa_plugin_dev *dev, npa_link_status *out);
 * int my_stats(npa_plugin_dev *dev, uint16_t qid, npa_plugin_qstats *out);
 * uint16_t my_rx(npa_plugin_queue *q, npa_buf **bufs, uint16_t n);
 * uint16_t my_tx(npa_plugin_queue *q, npa_buf **bufs, uint16_t n);
 *
 * static const npa_pci_id ids[] = {
 *     {0x1d0f, 0x1012, NPA_PCI_ANY_ID, NPA_PCI_ANY_ID, 0, 0},  // your vendor:device
 * };
 * // Every (M) op set; the optional ones left NULL mean "not supported".
 * static const npa_plugin_ctrl_ops ctrl = {
 *     .struct_size = sizeof(npa_plugin_ctrl_ops),
 *     .probe = my_probe, .remove = my_remove, .get_caps = my_caps,
 *     .configure = my_configure, .start = my_start, .stop = my_stop,
 *     .queue = my_queue, .link_status = my_link, .queue_stats = my_stats,
 * };
 * static const npa_plugin_fast_ops fast = {
 *     .struct_size = sizeof(npa_plugin_fast_ops),
 *     .rx_burst = my_rx, .tx_burst = my_tx,
 * };
 * static const npa_plugin_info info = {
 *     .struct_size = sizeof(npa_plugin_info),
 *     .abi_major = NPA_PLUGIN_ABI_MAJOR, .abi_minor = NPA_PLUGIN_ABI_MINOR,
 *     .name = "my_nic", .vendor = "example", .version = "1.0",
 *     .id_table = ids, .id_count = sizeof(ids) / sizeof(ids[0]),
 *     .id_entry_size = sizeof(npa_pci_id),
 *     .capabilities = NPA_CAP_RX_CSUM,
 *     .ctrl = &ctrl, .fast = &fast,
 *     .flags = NPA_PLUGIN_F_TX_FREE,  // TX frames go back through buf_free_tx
 * };
 * NPA_PLUGIN_EXPORT const npa_plugin_info *npa_plugin_entry(const npa_plugin_query *q) {
 *   if (q == NULL || q->struct_size < sizeof(*q) || q->abi_major != NPA_PLUGIN_ABI_MAJOR)
 *     return NULL;  // refuse a shell of another major
 *   return &info;
 * }
 * ---8<--- example plug-in: end ---8<---
 *
 * Version rule: the shell accepts a plug-in whose abi_major equals the shell's
 * and whose abi_minor is at least the minor the shell needs (currently
 * NPA_PLUGIN_ABI_MINOR_REQUIRED). A newer plug-in minor is fine: the shell
 * only reads the fields it knows, bounded by each struct's struct_size. The
 * entry is called once per load, also for every candidate the shell only
 * inspects while it searches: it returns static data and does nothing else.
 *
 * Structs: every struct that crosses this ABI starts with uint32_t
 * struct_size, is append-only and has its layout pinned by static_assert. A
 * reader never reads past the writer's struct_size; a missing trailing field
 * reads as zero / NULL. The floor is the whole ABI 1.0 size of each struct
 * (info 72, ctrl ops 128, fast ops 48 bytes): a smaller one is rejected.
 * Names are 1..31 characters of [a-z0-9_]; id_entry_size is 16..256.
 *
 * States. The shell's wrapper (shell/vf/plugin_device.h) keeps each device in
 * one of these and refuses an op in any other before it reaches the plug-in:
 *
 *   not probed -probe-> probed -get_caps-> caps known -configure-> configured
 *   configured -start-> started -quiesce-> quiesced
 *   started | quiesced -stop-> stopped -configure-> configured
 *   probed | caps known | configured | stopped -remove-> removed
 *
 * Each op below lists the states it may be called in ("States:"). An op the
 * shell does not call in ABI 1.x is marked "Reserved": the wrapper has a
 * legal state for it, but nothing in the shell calls it, so a plug-in that
 * leaves an optional reserved op NULL loses nothing today.
 *
 * Threads. The shell calls a plug-in from two kinds of thread:
 *   - "the control thread": whichever thread runs the shell's VF control —
 *     the control session's thread (VfOffer, Revoke, VFIO REQ/ERR fallback)
 *     or an application thread inside npa_shell_stop / npa_shell_close. The
 *     shell holds one lock around all of it, so control ops of one device
 *     never run concurrently with each other (queue_stats included).
 *   - "the owning thread" of queue q: the application thread that calls
 *     npa_rx_burst / npa_tx_burst / npa_queue_intr_enable on q. The fast ops
 *     of q run there and nowhere else (get_irq_vector excepted), one at a
 *     time; different queues' owners run at once, so per-queue state is not
 *     shared without synchronisation.
 * A queue's fast ops never run concurrently with a control op except
 * queue_stats and rss_set (ABI 1.1): before quiesce and stop the shell moves every queue off the
 * device and waits for each owner to acknowledge at a burst boundary (an
 * owner that does not burst within the bound is idle, and takes the move
 * before its next burst).
 *
 * Buffers (npa/buf.h). buf_alloc and buf_free are called from the queue's
 * owning thread during bursts, and from the shell's control thread during
 * probe/configure/start/quiesce/stop (and remove), never both at once for
 * one queue: on the control thread they draw on a per-queue stash of about
 * one ring's worth, so buf_alloc may answer short there too. A buffer belongs
 * to one party at a time: RX buffers posted to a ring are the plug-in's until
 * rx_burst hands them up or it frees them; a TX frame is the plug-in's from a
 * successful tx_burst until it frees it with buf_free. The shell counts a TX
 * frame as in flight for exactly that span (what it reports as lost when it
 * has to give a VF up), so free each frame once, on the queue it was sent on,
 * when the device is done with it. buf_free takes frame heads and frees every
 * segment of each.
 *
 * RX discipline. What rx_burst hands up reaches the application as it is
 * (unless it opened the shell with NPA_SHELL_F_CHECK_PLUGIN_RX): the plug-in
 * is the one that reads the device, so it bounds what the device wrote
 * (a length past its buffer, an error or a missing end-of-packet bit: drop,
 * count, repost) before it fills the metadata in. Each frame handed up is
 * a buffer it got from buf_alloc and still holds, handed up once; every
 * segment has data_off >= NPA_BUF_META_SIZE and data_off + data_len within
 * NPA_BUF_SLOT_SIZE; pkt_len is the sum of data_len and nb_segs the chain's
 * length; ol_flags holds only NPA_BUF_OL_RX_* facts, a CSUM_PARTIAL span
 * lies inside the frame and a GSO frame has tso_segsz. npa-conform checks
 * every frame of its traffic cases against this list.
 *
 * TX completions apart (ABI 1.1): a plug-in that sets NPA_PLUGIN_F_TX_FREE in
 * npa_plugin_info.flags returns every frame it took in tx_burst through
 * buf_free_tx (sent, dropped, or unsent at stop) and only RX buffers through
 * buf_free. The shell then counts the frames a queue's device holds per
 * burst (sent minus completed) instead of marking each frame: about 20
 * instructions per frame less on the VF path (docs/PERFORMANCE.md, "VF path
 * dispatch"). The count is only as exact as the plug-in's discipline, which
 * npa-conform checks frame by frame. Without the flag (every ABI 1.0
 * plug-in) the shell marks each frame and needs no discipline but the one
 * above; buf_free_tx then behaves as buf_free. Before calling buf_free_tx, a
 * plug-in checks that the shell's services table is long enough to hold it
 * (svc->struct_size) and falls back to buf_free when it is not.
 *
 * Errors: every int-returning call returns 0 on success or a negative errno:
 * -EINVAL bad argument or wrong state, -ENOTSUP not supported, -ENOMEM,
 * -EIO device error, -ETIMEDOUT, -EAGAIN retry later, -EBUSY started,
 * -ENODEV the device is gone or not ours. Anything else (positive, or below
 * -4095) is reported as a plug-in bug. The shell turns a failed probe,
 * get_caps, configure, start or queue into a declined VF offer (the device
 * is removed and handed back; the guest stays on the emulated path) with
 * "plug-in '<name>': <op> failed: <strerror>" as the reason.
 *
 * What a plug-in may touch: only what the services table (npa_services) gives
 * it — BAR mappings, config space, DMA memory with its IOVA, MSI-X eventfds,
 * packet buffers, log, time. It never sees the VFIO container, never maps
 * memory itself for DMA, never calls exit() or abort(), and never keeps a
 * pointer from the shell beyond the lifetime documented for it.
 *
 * Call order as the shell runs it today, per VF offer:
 *
 *   probe -> get_caps -> configure -> [rss_set] -> start -> queue(q) for every q
 *         -> [get_irq_vector(q)] -> { bursts, rx_intr_enable, queue_stats, rss_set }
 *         -> [quiesce...] -> { rx_burst drain } -> queue_stats -> stop -> remove
 *
 * The wrapper also allows stop -> configure -> start (a restart) and reset
 * while stopped; the shell does neither in ABI 1.x (a new offer probes a new
 * device instance).
 */
#ifndef NPA_PLUGIN_H_
#define NPA_PLUGIN_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "npa/buf.h"
#include "npa/plugin_services.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NPA_PLUGIN_ABI_MAJOR 1
#define NPA_PLUGIN_ABI_MINOR 1
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
#define NPA_CAP_RSS (1ull << 6)        /* RSS with hash report; rss_set (ABI 1.1) */
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
struct npa_rss_conf;                              /* rss_set's argument, below */
typedef struct npa_plugin_queue npa_plugin_queue; /* opaque, owned by the plug-in */

/* Services: what the shell gives the plug-in (npa_services, npa_dma_mem,
 * npa_services_tx_free): npa/plugin_services.h, included above. */

/* What the shell knows about the device when it calls probe: the identity
 * the host agent offered, checked against the device's config space. */
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

/* What the device can do, filled in by get_caps. The shell checks it: at
 * least one queue pair, min/max ring sizes powers of two with min <= max;
 * offloads beyond npa_plugin_info.capabilities are masked off with a
 * warning. The shell then declines a device with fewer queue pairs than the
 * guest uses, a max_mtu (if not 0) below the guest's MTU, or no NPA_CAP_TSO
 * when the guest configured TSO. */
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

/* The guest's configuration, replayed into the plug-in by the shell and
 * checked against the caps first (queue pairs, ring size, offloads). In ABI
 * 1.x the shell sets nb_queue_pairs, ring_size (the guest's clamped to the
 * device's range), mtu, mac (the agent's), rx_intr, and offloads from
 * TX_CSUM, RX_CSUM, TSO, VLAN_INSERT, VLAN_STRIP (each only when both the
 * guest configured it and the device offers it; TSO whenever the guest
 * configured it), MULTIQUEUE (more than one queue pair) and MAC_FILTER (when
 * offered). It sends no VLAN filter and no RSS key (count 0, NULL): the RSS
 * configuration goes through rss_set (ABI 1.1), which can also change it
 * while started. */
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

/* TX byte counts (ABI 1.1, NPA_PLUGIN_F_TX_BYTES in npa_plugin_info.flags):
 * the plug-in promises that tx_bytes of queue q is exactly the sum of
 * pkt_len over every frame its tx_burst on q took (returned as taken), since
 * probe, whatever became of the frame afterwards (sent, dropped by the
 * device, unsent at stop), and that queue_stats may be read as described
 * there (whole aligned 64-bit values, a burst old at most). The shell then
 * takes its TX byte count on the VF from queue_stats (read when the VF is
 * attached, at every npa_shell_queue_stats and when it is released) instead
 * of summing every frame's length in the TX burst, as DPDK's ethdev leaves
 * counting to the PMD: a load and an add per frame less on the VF path
 * (docs/PERFORMANCE.md, "VF path dispatch"). A plug-in that keeps its
 * counters per queue in software for the frames it takes meets this for
 * free; one whose hardware counts per port, or counts bytes the way the
 * wire sees them (with padding, FCS or a tag the device inserts), does not,
 * and leaves the flag clear. Without the flag (every ABI 1.0 plug-in) the
 * shell counts the bytes itself and tx_bytes is only informational.
 * npa-conform checks the promise.
 *
 * RX byte counts (ABI 1.1, NPA_PLUGIN_F_RX_BYTES): likewise, rx_bytes of
 * queue q is exactly the sum of pkt_len over every frame its rx_burst on q
 * returned, since probe (counted when it is handed up, not when the device
 * wrote it). The shell uses it unless the application asked it to check
 * every frame (npa/shell.h NPA_SHELL_F_CHECK_PLUGIN_RX, which may drop some
 * between the plug-in and the application) or a software VLAN strip shrinks
 * the frames; then it counts the bytes of what it delivers itself.
 * npa-conform checks this promise too. */
typedef struct npa_plugin_qstats {
  uint32_t struct_size;
  uint32_t reserved0;
  uint64_t rx_packets, rx_bytes, rx_dropped;
  uint64_t tx_packets, tx_bytes;
} npa_plugin_qstats;

/* ------------------------------------------------------------------------ */
/* Control ops: configuration and lifecycle. Mandatory ops are marked (M); a
 * NULL mandatory op makes the shell reject the plug-in at load. A NULL
 * optional op means "not supported". Unless an op says otherwise it is called
 * from the control thread (see "Threads" above). */
typedef struct npa_plugin_ctrl_ops {
  uint32_t struct_size;
  uint32_t reserved0;
  /* (M) Take the device: map BARs, check it is what the ID table promised
   * (re-read the IDs from config space), enable memory space and bus
   * mastering, bring it to a known state. On success *out is the plug-in's
   * device. svc stays valid until remove returns.
   * States: not probed. Called: once per VF offer.
   * Errors: -ENODEV not a device we drive or not responding, -EINVAL bad
   * arguments or services, -ENOMEM, -EIO, -ETIMEDOUT (reset never finished). */
  int (*probe)(const npa_services *svc, const npa_device_info *info, npa_plugin_dev **out);
  /* (M) Release everything probe and later calls took: DMA memory, MSI-X
   * (irq_setup(0)), private memory. Never fails.
   * States: probed, caps known, configured, stopped (never started: the
   * shell stops first). Called: once per successful probe, also after a
   * later step failed. */
  void (*remove)(npa_plugin_dev *dev);
  /* (M) Fill caps (write no further than caps->struct_size).
   * States: probed, caps known, configured, stopped. Called: once, after
   * probe. Errors: -EINVAL (caps->struct_size too small). */
  int (*get_caps)(npa_plugin_dev *dev, npa_dev_caps *caps);
  /* (M) Apply cfg while not started: rings (dma_alloc), MAC, MTU, offloads,
   * filters, MSI-X wiring when cfg->rx_intr. All or nothing: on failure
   * nothing changed.
   * States: caps known, configured, stopped. Called: once, after get_caps
   * (the wrapper allows it again while configured or stopped).
   * Errors: -EINVAL bad value, -ENOTSUP an offload it cannot enable,
   * -ENOMEM, -EIO, -EBUSY while started. */
  int (*configure)(npa_plugin_dev *dev, const npa_dev_config *cfg);
  /* (M) Fill the RX rings (buf_alloc) and enable RX/TX. After start,
   * queue(dev, q) must return each configured queue.
   * States: configured. Called: once, after configure.
   * Errors: -ENOMEM no buffers (hand back what was taken), -EIO, -EINVAL
   * not configured, -EBUSY already started. */
  int (*start)(npa_plugin_dev *dev);
  /* (M) Disable RX/TX, make sure the device does no more DMA, then hand
   * every buffer it held (RX posted, TX not yet freed) back with
   * svc->buf_free. After stop no DMA is in flight and the plug-in holds no
   * buffer. No fast op of this device runs during or after it.
   * States: started, quiesced (return 0 if not started). Called: once per
   * revoke, fallback, npa_shell_stop or npa_shell_close, after quiesce and
   * queue_stats, and after a start whose queue() failed. Errors: logged;
   * the shell removes the device anyway. */
  int (*stop)(npa_plugin_dev *dev);
  /* (M) The per-queue context passed to the fast ops, valid start..stop;
   * NULL for a qid not configured or a device not started.
   * States: started. Called: for every configured qid right after start
   * returns; NULL for one of them makes the shell stop, remove and decline. */
  npa_plugin_queue *(*queue)(npa_plugin_dev *dev, uint16_t qid);
  /* (M) Link up, speed and duplex now.
   * Reserved: the shell does not call this in ABI 1.x (the guest's link
   * state comes from the host agent), but the loader still requires it and
   * npa-conform calls it to wait for link, so implement it.
   * States: configured, started, quiesced, stopped. Errors: -EINVAL,
   * -ENODEV (device gone). */
  int (*link_status)(npa_plugin_dev *dev, npa_link_status *out);
  /* (M) Counters of queue qid since probe; they never go backwards, also
   * across stop and configure (the shell's totals must not either).
   * States: configured, started, quiesced, stopped.
   * Threads: the control thread (once per queue on the way out, before
   * stop), and any application thread inside npa_shell_queue_stats while the
   * VF is attached: never concurrently with another control op, but
   * concurrently with the queue's bursts. So read counters the owning thread
   * writes as whole aligned 64-bit values (a value a burst old is fine, a
   * torn one is not), and touch no burst state.
   * Errors: -EINVAL bad qid or struct_size (the shell then counts 0). */
  int (*queue_stats)(npa_plugin_dev *dev, uint16_t qid, npa_plugin_qstats *out);
  /* Stop taking new TX work and wait up to timeout_us for the device to
   * finish what it holds, reaping (buf_free) what completes. 0: idle.
   * -EAGAIN: still busy, call again; the device counts as quiesced either
   * way, and tx_burst is not called again. No fast op runs during it.
   * States: started, quiesced. Called: on every revoke/fallback, repeatedly
   * with timeout_us = 1000 until 0 or about half of the revoke's time bound
   * (0.25 s at npa_shell_stop, up to 30 s for an agent's Revoke) has passed;
   * then rx_burst drains the RX ring and stop follows.
   * NULL: the shell goes straight to the drain and stop. Errors: -EAGAIN;
   * anything else is logged and the shell stops the device. */
  int (*quiesce)(npa_plugin_dev *dev, uint32_t timeout_us);
  /* Device-level reset (register reset, not FLR: the agent owns FLR); a
   * configure must follow before start.
   * Reserved: the shell does not call this in ABI 1.x; implement it or
   * leave it NULL. States: stopped. Errors: -EBUSY while started, -EIO. */
  int (*reset)(npa_plugin_dev *dev);
  /* Runtime changes of MAC, MTU and the VLAN filter.
   * Reserved: the shell does not call these in ABI 1.x (it replays the
   * guest's MAC and MTU through configure); implement them or leave them
   * NULL. States: configured, started, stopped. Errors: -EINVAL (multicast
   * MAC, MTU out of range, vid > 4095), -ENOTSUP. */
  int (*set_mac)(npa_plugin_dev *dev, const uint8_t mac[6]);
  int (*set_mtu)(npa_plugin_dev *dev, uint32_t mtu);
  int (*vlan_filter)(npa_plugin_dev *dev, uint16_t vid, int on);
  /* Handle MSI-X vector vec (non-queue causes: link, errors); 0 for a queue
   * vector.
   * Reserved: the shell does not call this in ABI 1.x (it watches no
   * non-queue vector); implement it or leave it NULL. States: probed through
   * stopped. Errors: -EINVAL (vector not wired), -ENODEV. */
  int (*irq_handler)(npa_plugin_dev *dev, uint32_t vec);
  /* ABI 1.1, optional. Program the device's RSS from conf (npa_rss_conf
   * below): the Toeplitz key, the hash types and the indirection table, all
   * as the guest set them through npa_shell_set_rss (or the defaults). Read
   * conf during the call only. Present when struct_size covers it; offer it
   * only with NPA_CAP_RSS.
   * What the shell does with it: it calls rss_set when the guest configured
   * NPA_OFFLOAD_RSS_HASH and the device offers NPA_CAP_RSS — once right
   * after configure (before start, before any queue moves to the VF) and
   * again after every npa_shell_set_rss while the VF is attached. A failure
   * is logged and nothing else: the shell hashes every received frame in
   * software either way (its hash overwrites the device's, so a frame has
   * the same hash on every path), so rss_set decides only which queue the
   * device puts a frame on.
   * Rule: the device places a frame on table[hash & (table_len - 1)] where
   * hash is the Toeplitz hash of the first type in hash_types that applies
   * (npa/shell.h NPA_OFFLOAD_RSS_HASH; VIRTIO 1.2 §5.1.6.4.3). With more than
   * one configured queue, a device that cannot hash a requested type that
   * way returns -ENOTSUP rather than spread frames by another hash; with one
   * queue it may program the types it has (the queue is the same) and
   * report its own hash in rss_hash, which the shell replaces.
   * States: configured, started, quiesced. Threads: the control thread;
   * while started it MAY run concurrently with every queue's fast ops (the
   * shell does not move the queues off the VF to change RSS): touch only
   * the RSS registers, which the bursts do not. A frame received during the
   * change may land by the old or the new table.
   * Errors: -EINVAL (a bad conf: struct_size, key_len, table_len not a power
   * of two or above the device's table, an entry >= the configured queue
   * pairs), -ENOTSUP (see the rule), -EIO. */
  int (*rss_set)(npa_plugin_dev *dev, const struct npa_rss_conf *conf);
} npa_plugin_ctrl_ops;

/* ABI 1.1: the argument of rss_set. Hash types are VIRTIO 1.2's
 * VIRTIO_NET_RSS_HASH_TYPE_* bits (§5.1.6.4.3.1), the same values as
 * npa/shell.h's NPA_RSS_HASH_*: */
#define NPA_RSS_CONF_HASH_IPV4 (1u << 0)
#define NPA_RSS_CONF_HASH_TCPV4 (1u << 1)
#define NPA_RSS_CONF_HASH_UDPV4 (1u << 2)
#define NPA_RSS_CONF_HASH_IPV6 (1u << 3)
#define NPA_RSS_CONF_HASH_TCPV6 (1u << 4)
#define NPA_RSS_CONF_HASH_UDPV6 (1u << 5)
#define NPA_RSS_CONF_KEY_LEN 40u    /* Toeplitz key bytes, in the order hashed */
#define NPA_RSS_CONF_TABLE_MAX 128u /* indirection table entries at most */
typedef struct npa_rss_conf {
  uint32_t struct_size;
  uint32_t hash_types;    /* NPA_RSS_CONF_HASH_*, never 0 (the shell resolves "all") */
  uint16_t key_len;       /* NPA_RSS_CONF_KEY_LEN */
  uint16_t table_len;     /* power of two, 1..NPA_RSS_CONF_TABLE_MAX */
  uint16_t nb_queue_pairs; /* as configured; every table entry is below it */
  uint16_t reserved0;
  const uint8_t *key;     /* key[0] is the first (leftmost) key byte */
  const uint16_t *table;  /* queue of entry i = table[i] */
} npa_rss_conf;

/* Fast-path ops: the burst calls, per queue, from the queue's owning thread
 * (get_irq_vector excepted), between start and stop. No locks, no
 * allocation, no sleeping, no per-packet logging in them: the shell calls
 * rx_burst and tx_burst directly from npa_rx_burst / npa_tx_burst. */
typedef struct npa_plugin_fast_ops {
  uint32_t struct_size;
  uint32_t reserved0;
  /* (M) Up to n received frames into bufs, as frame heads; returns the
   * count (<= n; no error channel), at most one doorbell per call. Set
   * data_off, data_len, pkt_len, nb_segs, next and ol_flags on every buffer
   * handed up; a frame larger than one buffer may be a chain. RX ol_flags
   * report facts, only for offloads configure enabled (NPA_BUF_OL_RX_*; the
   * shell strips VLAN tags in software when NPA_CAP_VLAN_STRIP is off).
   * Refill the ring from buf_alloc here.
   * States: started, and quiesced (the shell drains RX after quiesce until a
   * burst comes back empty). */
  uint16_t (*rx_burst)(npa_plugin_queue *q, npa_buf **bufs, uint16_t n);
  /* (M) Take the first k <= n frames of bufs and return k; the caller keeps
   * bufs[k..n-1]. Stop at the first frame it cannot take (ring full, a frame
   * it cannot send): never skip one and take the next. At most one doorbell
   * per call. Reap completed TX here (lazily): the shell never calls
   * tx_reap, so tx_burst, quiesce and stop are the only places a completed
   * frame goes back through buf_free.
   * What reaches it: frames as the application built them, unchecked by the
   * shell (validate each whole frame before writing a descriptor), and they
   * may be multi-segment (next, nb_segs; pkt_len on the head). ol_flags:
   *   NPA_BUF_OL_TX_CSUM only when configure enabled NPA_CAP_TX_CSUM (else
   *     the shell has filled in the checksum and cleared the flag);
   *   NPA_BUF_OL_TX_VLAN only when NPA_CAP_VLAN_INSERT is enabled (else the
   *     shell has inserted the tag and cleared the flag), except on a frame
   *     the shell could not tag (too short, no headroom): it is counted bad
   *     and handed on as it is;
   *   NPA_BUF_OL_TX_TSO4/TSO6 as the application set them: NPA_CAP_TSO is
   *     enabled whenever the guest configured TSO;
   *   NPA_BUF_OL_RX_* bits left on a buffer the application received and
   *     sends back: ignore them.
   * A flag for an offload configure did not enable: send the frame without
   * it or stop the burst before it. States: started. */
  uint16_t (*tx_burst)(npa_plugin_queue *q, npa_buf **bufs, uint16_t n);
  /* Reclaim completed TX buffers without sending; returns how many.
   * Reserved: the shell does not call this in ABI 1.x; implement it or
   * leave it NULL (npa-conform calls it when present). States: started,
   * quiesced. */
  uint16_t (*tx_reap)(npa_plugin_queue *q);
  /* Arm (1) or disarm (0) the queue's RX interrupt; arming must not lose a
   * frame already waiting (the application re-polls once after arming).
   * Called: from the owning thread (npa_queue_intr_enable, and when the
   * queue moves onto the VF in interrupt mode), only if configure had
   * rx_intr = 1. States: started. Errors: -EINVAL, -ENOTSUP (logged only). */
  int (*rx_intr_enable)(npa_plugin_queue *q, int enable);
  /* The MSI-X vector index queue q's RX interrupt uses (an index into the
   * efds irq_setup returned), or -ENOTSUP when it has none.
   * Called: from the control thread, once per queue right after start, only
   * if configure had rx_intr = 1 (the shell adds that eventfd to the queue's
   * npa_queue_intr_fd). States: started. */
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
  /* ABI 1.1: NPA_PLUGIN_F_*. Reads as 0 from a 1.0 plug-in. */
  uint64_t flags;
} npa_plugin_info;

/* npa_plugin_info.flags. TX_FREE: every TX frame comes back through
 * svc->buf_free_tx, and nothing else does (see "TX completions apart").
 * TX_BYTES: queue_stats' tx_bytes is exact per queue, see "TX byte counts"
 * at npa_plugin_qstats. */
#define NPA_PLUGIN_F_TX_FREE (1ull << 0)
#define NPA_PLUGIN_F_TX_BYTES (1ull << 1)
#define NPA_PLUGIN_F_RX_BYTES (1ull << 2)
#define NPA_PLUGIN_F_ALL_V1_1 ((1ull << 3) - 1)

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
#endif
NPA_ABI_ASSERT(npa_pci_id, 16);
NPA_ABI_ASSERT(npa_device_info, 60);
NPA_ABI_ASSERT(npa_dev_caps, 32);
NPA_ABI_ASSERT(npa_dev_config, 64);
NPA_ABI_ASSERT(npa_link_status, 16);
NPA_ABI_ASSERT(npa_plugin_qstats, 48);
NPA_ABI_ASSERT(npa_plugin_ctrl_ops, 136);
NPA_ABI_ASSERT(npa_rss_conf, 32);
NPA_ABI_ASSERT(npa_plugin_fast_ops, 48);
NPA_ABI_ASSERT(npa_plugin_info, 80);
NPA_ABI_ASSERT(npa_plugin_query, 8);

#endif /* NPA_PLUGIN_H_ */
