/*
 * npa/shell.h — the guest driver's NIC: one stable device with burst RX/TX on
 * N queue pairs, whatever path (emulated virtio ring or vendor VF) is active.
 *
 * Usage:
 *
 *   npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
 *   oa.control_path = "/run/npa/guest0.ctl";       // the agent's control socket
 *   oa.name = "guest0";
 *   npa_shell *sh;
 *   int rc = npa_shell_open(&oa, &sh);             // negative errno on failure
 *   if (rc < 0) { fprintf(stderr, "%s\n", npa_shell_last_error(NULL)); return 1; }
 *
 *   npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
 *   qc.nb_queue_pairs = 2;
 *   rc = npa_shell_configure(sh, &qc);             // shares memory, sets up rings
 *   rc = npa_shell_start(sh);
 *
 *   for (;;) {                                      // one thread owns queue 0
 *     npa_buf *b[32];
 *     uint16_t n = npa_rx_burst(sh, 0, b, 32);
 *     uint16_t s = npa_tx_burst(sh, 0, b, n);      // echo them back
 *     npa_buf_free(sh, 0, b + s, n - s);
 *   }
 *   npa_shell_close(sh);
 *
 * Two ways to open:
 *   - control_path: the normal case. The shell talks to npa-agent over a UNIX
 *     control socket (npa/control.proto); the agent hands over the vhost-user
 *     connection and, later, VFs.
 *   - vhost_user_path with no control_path: standalone emulated path against
 *     any vhost-user back end (npa-agent's --vhost-user socket, DPDK net_vhost,
 *     QEMU's vhost-user-bridge...). There is no VF path then.
 *
 * Threads: every queue pair is owned by one thread at a time, its "owning
 * thread" (ownership may move to another thread with the application's own
 * synchronisation in between). The per-queue calls take no locks, so for
 * queue q they must come from q's owning thread, never from two threads at
 * once:
 *   npa_rx_burst, npa_tx_burst          the data path
 *   npa_buf_alloc, npa_buf_free         q's pool (single-owner, no atomics)
 *   npa_queue_intr_enable               may call the VF plug-in's fast op
 *   npa_queue_intr_ack                  counts into q's counters
 * Every other call may come from any thread, also while the owners burst:
 *   npa_shell_configure, npa_shell_start, npa_shell_stop (serialised with
 *   each other), npa_shell_queue_stats, npa_shell_get_info,
 *   npa_shell_event_fd, npa_shell_next_event, npa_queue_intr_fd, and
 *   npa_shell_last_error (which answers for the calling thread).
 * npa_shell_close is the exception: call it once no thread calls into the
 * shell any more. A path switch (start, stop, VF attach or revoke) is applied
 * at a burst boundary: the owning thread's next burst or intr_enable call
 * sees it (npa_shell_stop, giving a VF back, waits a bounded time for that;
 * an owner that does not burst meanwhile takes it at its next call).
 *
 * Errors: functions returning int return 0 (or a count) on success and a
 * negative errno on failure; npa_shell_last_error() then describes it in
 * words for the calling thread. Burst calls have no error channel: they
 * return how many buffers moved.
 *
 * Migration and agent restart (docs/migration.md, docs/guest-driver-guide.md):
 * the agent may move the guest to another agent. The shell stops its rings
 * on the source (npa_tx_burst keeps taking frames while the TX ring has
 * room; they wait and are sent by the destination; RX returns nothing
 * meanwhile), reconnects to the destination with the rings and buffers as
 * they are, and posts NPA_EVENT_MIGRATED. Nothing is lost or sent twice,
 * the counters go on. If the destination does not take the guest within the
 * agent's timeout (retried every 50-100 ms), the shell goes back to the
 * source with the same ticket (NPA_EVENT_RECONNECTED); if neither answers,
 * NPA_EVENT_ERROR (-EHOSTUNREACH), the rings are kept as they are and the
 * shell keeps retrying both once a second until it is closed.
 * If the control session ends (the agent crashed or restarted), the shell
 * posts NPA_EVENT_LINK_CHANGED(down) and reconnects to the same control path
 * by itself (reconnect_ms, NPA_SHELL_F_NO_RECONNECT), resuming every ring at
 * the used index in shared memory: RX buffers posted stay posted; TX frames
 * in flight are taken again by the new agent (npa_queue_stats.tx_resubmitted:
 * sent once, or twice if the dead agent had sent them; never lost); frames
 * the dead agent held for RX are lost on the host's side. Then
 * NPA_EVENT_LINK_CHANGED(up) and NPA_EVENT_RECONNECTED. A VF keeps
 * forwarding throughout, and the shell serves its VFIO requests (the agent
 * taking the VF back) while no agent runs.
 *
 * Lifetime: npa_shell_close() stops the device, disconnects and frees all
 * memory, including buffers the application still holds: free or stop using
 * them before closing.
 */
#ifndef NPA_SHELL_H_
#define NPA_SHELL_H_

#include <stddef.h>
#include <stdint.h>

#include "npa/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NPA_SHELL_ABI_MAJOR 1
#define NPA_SHELL_ABI_MINOR 6

typedef struct npa_shell npa_shell; /* opaque */

/* Open flags. */
#define NPA_SHELL_F_NO_HUGEPAGES (1u << 0) /* use 4K memfd pages even if hugetlb works */
#define NPA_SHELL_F_INTERRUPT (1u << 1)    /* start queues in interrupt mode */
/* Since ABI 1.2: when the control session ends (the agent died, restarted
 * or said Bye), do not reconnect: NPA_EVENT_ERROR at once, as in 1.1. */
#define NPA_SHELL_F_NO_RECONNECT (1u << 2)
/* How the shell treats the frames a vendor plug-in's rx_burst hands up on
 * the VF path. A plug-in is code in this process, installed by root (the
 * loader loads no other file) and bounded where it reads the device (plugin.h
 * "Buffers"): a check of its output contains a buggy plug-in, it cannot stop
 * a malicious one, which can write anywhere. So by default (since ABI 1.6)
 * the frames go up as the plug-in returned them, and a plug-in that counts
 * its RX bytes (NPA_PLUGIN_F_RX_BYTES) leaves the shell no per-frame RX work:
 * +4.7 instructions a frame over calling the plug-in directly
 * (docs/PERFORMANCE.md, "VF path dispatch"). npa-conform checks the RX
 * discipline of any plug-in against any device it claims. TX completions,
 * the emulated path and everything from the agent are checked either way.
 */
/* Since ABI 1.5: do not check the plug-ins' RX. The default since ABI 1.6;
 * accepted for callers built against 1.5. With NPA_SHELL_F_CHECK_PLUGIN_RX:
 * -EINVAL. */
#define NPA_SHELL_F_TRUST_PLUGIN_RX (1u << 3)
/* Since ABI 1.6: check every frame a plug-in hands up before the application
 * sees it: each buffer pointer must be one of this shell's buffers that is
 * out of its pools; lengths, segments, offsets and offload facts are bounded;
 * a bad frame is dropped and counted (rx_dropped). About 33 instructions a
 * frame more. For a plug-in under development or under suspicion. (ABI 1.5
 * checked by default.) */
#define NPA_SHELL_F_CHECK_PLUGIN_RX (1u << 4)

typedef struct npa_shell_open_args {
  uint32_t struct_size;         /* sizeof(npa_shell_open_args) */
  uint32_t flags;               /* NPA_SHELL_F_* */
  const char *control_path;     /* agent control socket, or NULL */
  const char *vhost_user_path;  /* standalone vhost-user socket (control_path NULL) */
  const char *name;             /* guest name shown by npactl; NULL = "guest-<pid>" */
  uint8_t mac[6];               /* requested MAC; all-zero = let the agent pick */
  uint16_t reserved0;
  uint32_t connect_timeout_ms;  /* 0 = 5000 */
  /* Since ABI 1.2 (a caller built against 1.1 passes struct_size 48 and
   * gets the defaults). How long the shell keeps reconnecting to the agent
   * after its control session ended, every 50-100 ms, before it gives up
   * with NPA_EVENT_ERROR (and then keeps retrying once a second until it is
   * closed). 0 = 3000. Also the budget of each target of a migration
   * (MigrateCommit.timeout_ms when the agent sets none). */
  uint32_t reconnect_ms;
  uint32_t reserved1;
} npa_shell_open_args;
#define NPA_SHELL_OPEN_ARGS_INIT {sizeof(npa_shell_open_args), 0, NULL, NULL, NULL, {0}, 0, 0, 0, 0}

/* Offloads the application wants to use (npa_shell_queue_config.offloads and
 * npa_shell_info.offloads). The shell keeps them stable across paths. */
#define NPA_OFFLOAD_TX_CSUM (1ull << 0)
#define NPA_OFFLOAD_TSO (1ull << 1)
#define NPA_OFFLOAD_RX_CSUM (1ull << 2)
#define NPA_OFFLOAD_VLAN_INSERT (1ull << 3)
#define NPA_OFFLOAD_VLAN_STRIP (1ull << 4)
/* RSS hash on every received frame (npa_buf.rss_hash with
 * NPA_BUF_OL_RX_RSS_HASH; since ABI 1.3). Computed by the shell in software,
 * the Toeplitz hash over the configured types (npa_shell_set_rss; default:
 * the standard key, every type), so one frame gets the same hash on the
 * emulated path and on every VF, across switches. A frame with nothing to
 * hash (not IP, truncated, no enabled type) comes without the flag. */
#define NPA_OFFLOAD_RSS_HASH (1ull << 5)
#define NPA_OFFLOAD_MRG_RXBUF (1ull << 6) /* accept multi-segment RX frames */

/* Since ABI 1.4: which virtqueue layout the emulated path uses
 * (npa_shell_queue_config.ring, npa_shell_info.ring). AUTO takes the split
 * ring (VIRTIO 1.1 2.7): measured faster than the packed ring (2.8) on both
 * sides of npa (docs/PERFORMANCE.md, "Four rings"), and what DPDK's
 * virtio-user takes by default too. PACKED asks for the packed ring, for
 * back ends where it is the faster one; SPLIT is the same as AUTO today.
 * PACKED with a back end that does not offer it fails npa_shell_configure
 * with -EPROTO. Either way the shell also takes VIRTIO_F_RING_EVENT_IDX when
 * offered (fewer kicks and interrupts). The ring kind stays for the life of
 * the queues: a reconnect (agent restart, migration) needs a back end that
 * accepts the same features. VFs are not affected. */
#define NPA_RING_AUTO 0
#define NPA_RING_SPLIT 1
#define NPA_RING_PACKED 2

typedef struct npa_shell_queue_config {
  uint32_t struct_size;      /* sizeof(npa_shell_queue_config) */
  uint16_t nb_queue_pairs;   /* 1..NPA_SHELL_MAX_QUEUES */
  uint16_t ring_size;        /* descriptors per ring, power of two, 64..32768; 0 = 1024 */
  uint32_t pool_size;        /* buffers per queue pair; 0 = 4 * ring_size */
  uint32_t reserved0;
  uint64_t offloads;         /* NPA_OFFLOAD_* the application will use */
  /* Since ABI 1.4 (a caller built against 1.3 passes struct_size 24 and
   * gets NPA_RING_AUTO). */
  uint32_t ring;             /* NPA_RING_*; 0 = AUTO */
  uint32_t reserved1;
} npa_shell_queue_config;
#define NPA_SHELL_QUEUE_CONFIG_INIT {sizeof(npa_shell_queue_config), 1, 0, 0, 0, 0, 0, 0}
#define NPA_SHELL_MAX_QUEUES 16

/* Which path carries a queue's packets. */
typedef enum npa_path {
  NPA_PATH_NONE = 0,     /* not started */
  NPA_PATH_EMULATED = 1, /* virtio rings over vhost-user, served by the agent */
  NPA_PATH_VF = 2,       /* a VF through a vendor plug-in */
} npa_path;

typedef struct npa_shell_info {
  uint32_t struct_size;      /* set by the caller to sizeof(npa_shell_info) */
  uint32_t abi_major, abi_minor;
  uint8_t mac[6];
  uint16_t mtu;
  uint16_t nb_queue_pairs;
  uint16_t link_up;          /* 1 if the active path reports link */
  npa_path path;
  uint64_t offloads;         /* NPA_OFFLOAD_* available (hardware or software) */
  char plugin[64];           /* active plug-in name, "" on the emulated path */
  uint8_t hugepages;         /* 1 if the shared regions use 2 MB hugepages */
  uint8_t ring;              /* since ABI 1.4: NPA_RING_SPLIT or _PACKED in use (0 before configure) */
  uint8_t reserved[6];
} npa_shell_info;

/* Counters are monotonic for the life of the shell: across path switches,
 * resets and migrations they never go backwards. */
typedef struct npa_queue_stats {
  uint32_t struct_size;      /* set by the caller to sizeof(npa_queue_stats) */
  uint32_t reserved0;
  uint64_t rx_packets, rx_bytes;
  uint64_t tx_packets, tx_bytes;
  uint64_t rx_dropped;       /* frames the path dropped for lack of buffers */
  uint64_t tx_full;          /* tx_burst calls that could not take every buffer */
  uint64_t rx_emulated_packets, tx_emulated_packets; /* share carried by each path */
  uint64_t rx_vf_packets, tx_vf_packets;
  uint64_t kicks;            /* doorbells rung (emulated: kick eventfd writes) */
  uint64_t interrupts;       /* interrupts taken in interrupt mode */
  /* Since ABI 1.1: TX frames a VF had accepted and not completed when the
   * shell had to give it up (VFIO REQ/ERR, a timed-out quiesce). They are
   * in tx_packets/tx_vf_packets but may never have reached the wire. 0 on
   * every planned switch. */
  uint64_t tx_vf_lost;
  /* Since ABI 1.2. TX frames that were in flight on an emulated TX ring when
   * the agent serving it went away without stopping it (crash, kill -9):
   * the restarted agent takes them again from the ring, so each was sent
   * once or, if the dead agent had already put it on the wire, twice. Never
   * lost. 0 after a planned migration (the rings were stopped cleanly). */
  uint64_t tx_resubmitted;
  /* Since ABI 1.2. RARP announcements (common/announce.h) the shell sent
   * through a VF it had just switched to, so a learning switch moves the
   * MAC at once. Not in tx_packets or any other TX counter. */
  uint64_t announces;
} npa_queue_stats;

typedef enum npa_event_type {
  NPA_EVENT_PATH_CHANGED = 1, /* u.path: new path; plugin name in info */
  NPA_EVENT_LINK_CHANGED = 2, /* u.link_up */
  NPA_EVENT_MIGRATED = 3,     /* the attachment moved to another agent; its
                               * name in detail. Rings and counters go on. */
  NPA_EVENT_ERROR = 4,        /* the control session failed; u.error = -errno */
  /* Since ABI 1.2: the control session was re-established with the rings
   * intact (after the agent restarted, or back on the source after a
   * migration's destination never answered); detail says where and what
   * was resubmitted. Follows NPA_EVENT_LINK_CHANGED(up). */
  NPA_EVENT_RECONNECTED = 5,
} npa_event_type;

typedef struct npa_event {
  uint32_t struct_size;       /* set by the caller to sizeof(npa_event) */
  npa_event_type type;
  uint64_t timestamp_ns;      /* CLOCK_MONOTONIC */
  union {
    npa_path path;
    uint32_t link_up;
    int32_t error;
  } u;
  char detail[96];            /* human-readable detail, NUL-terminated */
} npa_event;

/* Open a shell. On success *out owns the connection; close it with
 * npa_shell_close(). Errors: -EINVAL (bad args, struct_size too small),
 * -ENOENT/-ECONNREFUSED (no agent at the path), -EPROTO (the peer spoke a
 * protocol we cannot accept), -ETIMEDOUT. */
int npa_shell_open(const npa_shell_open_args *args, npa_shell **out);

/* Stop, disconnect and free everything. NULL is a no-op. */
void npa_shell_close(npa_shell *sh);

/* Allocate shared memory, buffer pools and rings for qc->nb_queue_pairs queue
 * pairs, and set them up on the current path. Call once, before start.
 * Errors: -EINVAL, -ENOMEM, -EBUSY (already configured), -ENOTSUP (offload
 * that no path can provide, even in software). */
int npa_shell_configure(npa_shell *sh, const npa_shell_queue_config *qc);

/* Start/stop the data path. After stop, bursts return 0. */
int npa_shell_start(npa_shell *sh);
int npa_shell_stop(npa_shell *sh);

/* Receive up to n frames from queue qid into bufs. Returns how many. The
 * buffers now belong to the caller (free or transmit them). */
uint16_t npa_rx_burst(npa_shell *sh, uint16_t qid, npa_buf **bufs, uint16_t n);

/* Queue up to n frames for transmission on queue qid. Returns how many were
 * taken; those belong to the shell from now on. The rest stay the caller's.
 * One doorbell per call. */
uint16_t npa_tx_burst(npa_shell *sh, uint16_t qid, npa_buf **bufs, uint16_t n);

/* Take up to n buffers from queue qid's pool (data_off/len reset). Returns
 * how many; fewer when the pool runs low. Owning thread of qid only. */
uint16_t npa_buf_alloc(npa_shell *sh, uint16_t qid, npa_buf **bufs, uint16_t n);

/* Return n buffers (each frame with all its segments) to qid's pool. Owning
 * thread of qid only; a buffer may go back on any queue of this shell. */
void npa_buf_free(npa_shell *sh, uint16_t qid, npa_buf **bufs, uint16_t n);

/* Interrupt mode. npa_queue_intr_fd() returns an fd that becomes readable
 * (poll/epoll) when queue qid may have RX frames or TX room; the shell owns
 * it. npa_queue_intr_enable(sh, q, 1) arms it: call it, then re-poll rx_burst
 * once, then sleep on the fd (the re-poll closes the race with a frame that
 * arrived before arming). npa_queue_intr_enable(sh, q, 0) returns to polling.
 * The fd stays valid across path switches. On the emulated path the host
 * agent may moderate interrupts (its operator's --coalesce-us): the fd then
 * fires at most once per interval, with every frame that arrived in it.
 * npa_queue_intr_fd: any thread;
 * npa_queue_intr_enable and npa_queue_intr_ack: qid's owning thread only. */
int npa_queue_intr_fd(npa_shell *sh, uint16_t qid);
int npa_queue_intr_enable(npa_shell *sh, uint16_t qid, int enable);
/* Acknowledge a wake-up (drains the fd). Returns 0 or -errno. */
int npa_queue_intr_ack(npa_shell *sh, uint16_t qid);

/* Stats of queue qid, or the sum of all queues when qid == UINT16_MAX. Any
 * thread: the counters are read while the owners keep writing them. */
int npa_shell_queue_stats(npa_shell *sh, uint16_t qid, npa_queue_stats *out);
int npa_shell_get_info(npa_shell *sh, npa_shell_info *out);

/* Events. npa_shell_event_fd() is readable when npa_shell_next_event() has
 * something. next_event returns 1 and fills *ev, 0 if none, -errno. */
int npa_shell_event_fd(npa_shell *sh);
int npa_shell_next_event(npa_shell *sh, npa_event *ev);

/* Since ABI 1.3: receive-side scaling (docs/guest-driver-guide.md, "RSS").
 * Hash types are VIRTIO 1.2's VIRTIO_NET_RSS_HASH_TYPE_* bits. */
#define NPA_RSS_HASH_IPV4 (1u << 0)
#define NPA_RSS_HASH_TCPV4 (1u << 1)
#define NPA_RSS_HASH_UDPV4 (1u << 2)
#define NPA_RSS_HASH_IPV6 (1u << 3)
#define NPA_RSS_HASH_TCPV6 (1u << 4)
#define NPA_RSS_HASH_UDPV6 (1u << 5)
#define NPA_RSS_KEY_LEN 40u        /* the Toeplitz key: 40 bytes */
#define NPA_RSS_TABLE_MAX 128u     /* indirection table entries at most */

typedef struct npa_rss_config {
  uint32_t struct_size;      /* sizeof(npa_rss_config) */
  uint32_t hash_types;       /* NPA_RSS_HASH_*; 0 = all of them */
  uint16_t key_len;          /* NPA_RSS_KEY_LEN, or 0 with key NULL: the default key */
  uint16_t table_len;        /* power of two, 1..NPA_RSS_TABLE_MAX; 0 with table
                              * NULL: NPA_RSS_TABLE_MAX entries round robin */
  uint32_t reserved0;        /* zero */
  const uint8_t *key;        /* read during the call only */
  const uint16_t *table;     /* queue of each entry, < nb_queue_pairs; read
                              * during the call only */
} npa_rss_config;
#define NPA_RSS_CONFIG_INIT {sizeof(npa_rss_config), 0, 0, 0, 0, NULL, NULL}

/* Set the RSS key, hash types and indirection table. The shell must be
 * configured with NPA_OFFLOAD_RSS_HASH (-EINVAL otherwise). Any thread, also
 * while the owners burst: each queue takes the new configuration at its
 * owning thread's next burst (a frame is hashed wholly under one
 * configuration). Hashes are the shell's own, the same on every path; the
 * table says which queue a hash belongs to (npa_rss_queue). The agent
 * spreads the emulated path's RX by it (the shell sends it after configure,
 * after each call here and after each reconnect), and a VF plug-in with
 * hardware RSS (NPA_CAP_RSS and rss_set, npa/plugin.h ABI 1.1) is given it
 * at attach and after each call here, so the device fills the queue the
 * table names; the hash on every frame stays the shell's. This call may
 * wait for a VF switch in progress (bounded). Errors: -EINVAL (a bad field, named by npa_shell_last_error), -EBUSY
 * (the owners have not applied the last 8 changes yet: they apply them at
 * their next burst). */
int npa_shell_set_rss(npa_shell *sh, const npa_rss_config *cfg);

/* The queue the current indirection table gives a hash (any thread), or
 * -EINVAL without NPA_OFFLOAD_RSS_HASH. */
int npa_rss_queue(npa_shell *sh, uint32_t hash);

/* A description of the last failure on the calling thread ("" if none). The
 * string lives until the thread's next npa call. sh may be NULL. */
const char *npa_shell_last_error(npa_shell *sh);

#ifdef __cplusplus
} /* extern "C" */
static_assert(sizeof(npa_shell_open_args) == 56, "ABI struct: append only");
static_assert(sizeof(npa_shell_queue_config) == 32, "ABI struct: append only");
static_assert(offsetof(npa_shell_queue_config, ring) == 24, "ABI 1.4 field after the 1.3 struct");
static_assert(offsetof(npa_shell_info, ring) == 105, "ABI 1.4 field in what was reserved");
static_assert(sizeof(npa_shell_info) == 112, "ABI struct: append only");
static_assert(sizeof(npa_queue_stats) == 128, "ABI struct: append only");
static_assert(sizeof(npa_event) == 120, "ABI struct: append only");
static_assert(sizeof(npa_rss_config) == 32, "ABI struct: append only");
#endif

#endif /* NPA_SHELL_H_ */
