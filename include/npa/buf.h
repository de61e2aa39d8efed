/*
 * npa/buf.h — the packet buffer shared by the shell API and the plug-in ABI.
 *
 * Usage:
 *
 *   npa_buf *b[32];
 *   uint16_t n = npa_buf_alloc(shell, qid, b, 32);   // from the queue's pool
 *   for (uint16_t i = 0; i < n; i++) {
 *     memcpy(npa_buf_data(b[i]), frame, len);
 *     b[i]->data_len = b[i]->pkt_len = len;
 *   }
 *   uint16_t sent = npa_tx_burst(shell, qid, b, n);  // ownership moves to the shell
 *   npa_buf_free(shell, qid, b + sent, n - sent);     // what was not sent stays ours
 *
 * Memory model (docs/architecture.md, "Memory": one set of buffers for both paths): every
 * buffer is a fixed-size slot inside a shared region that the shell allocated
 * (memfd, hugetlb when available). The region is mapped by the host agent for
 * the emulated path and DMA-mapped into the VF's IOMMU domain for the VF path,
 * at the same addresses: a slot's IOVA is its virtual address in the shell's
 * process, which is also the vhost-user "guest physical address". A buffer is
 * therefore valid on either path and a path switch never copies a packet.
 *
 * Slot layout (NPA_BUF_SLOT_SIZE bytes):
 *
 *   0                 64                   128                        2176
 *   | struct npa_buf  | headroom (virtio   | data room                 |
 *   | (this header)   | net hdr, VLAN tag) | NPA_BUF_DATA_ROOM bytes   |
 *
 * This struct is a per-packet layout, not a call argument, so it carries no
 * size field: its layout is pinned by the static_asserts below and versioned
 * with NPA_SHELL_ABI_MAJOR. Fields may only be appended inside `reserved`.
 *
 * Ownership: a buffer belongs to exactly one party at a time — the
 * application, the shell (after a successful tx_burst, until completion), or a
 * plug-in's RX ring. There is no reference count. Freeing a buffer returns
 * it to the pool of the queue it is freed on; it must be freed on a queue of
 * the same shell it was allocated from, by that queue's owning thread (a pool
 * has one owner and no lock: npa/shell.h, "Threads"; a plug-in's buf_free
 * follows npa/plugin.h, "Buffers").
 *
 * Frames: a frame is its first segment (the head) plus the segments chained
 * through next; pkt_len and nb_segs are meaningful on the head only. Calls
 * that take frames (tx_burst, npa_buf_free, a plug-in's buf_free) take heads
 * and act on every segment. ol_flags is one word for both directions: a
 * buffer received and sent back still carries its NPA_BUF_OL_RX_* bits, which
 * the TX side ignores.
 */
#ifndef NPA_BUF_H_
#define NPA_BUF_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NPA_BUF_META_SIZE 64u     /* sizeof(struct npa_buf) */
#define NPA_BUF_HEADROOM 64u      /* bytes between the header and the data room */
#define NPA_BUF_DATA_OFF (NPA_BUF_META_SIZE + NPA_BUF_HEADROOM) /* default data_off */
#define NPA_BUF_DATA_ROOM 2048u   /* bytes from NPA_BUF_DATA_OFF to the slot end */
#define NPA_BUF_SLOT_SIZE (NPA_BUF_DATA_OFF + NPA_BUF_DATA_ROOM)

/* Offload flags (npa_buf.ol_flags). The TX flags are requests from the
 * application; the RX flags are facts reported by the active path. They keep
 * their meaning across path switches: when the active path lacks an offload,
 * the shell does it in software (docs/architecture.md, "Data path"). */
#define NPA_BUF_OL_TX_CSUM (1u << 0)     /* fill in L4 checksum: csum_start/csum_offset */
#define NPA_BUF_OL_TX_TSO4 (1u << 1)     /* segment TCP/IPv4 to tso_segsz payload bytes */
#define NPA_BUF_OL_TX_TSO6 (1u << 2)     /* segment TCP/IPv6 to tso_segsz payload bytes */
#define NPA_BUF_OL_TX_VLAN (1u << 3)     /* insert an 802.1Q tag carrying vlan_tci */
#define NPA_BUF_OL_RX_CSUM_GOOD (1u << 8)    /* L4 checksum verified good */
#define NPA_BUF_OL_RX_CSUM_PARTIAL (1u << 9) /* checksum not computed: csum_start/offset valid */
#define NPA_BUF_OL_RX_VLAN (1u << 10)    /* a tag was stripped into vlan_tci */
#define NPA_BUF_OL_RX_RSS_HASH (1u << 11) /* rss_hash is valid */
#define NPA_BUF_OL_RX_GSO (1u << 12)     /* coalesced frame; tso_segsz is the segment size */

typedef struct npa_buf {
  uint64_t iova;          /* IOVA of the slot start (== this pointer's value) */
  struct npa_buf *next;   /* next segment of a multi-segment frame, or NULL */
  uint32_t pkt_len;       /* frame length over all segments (first segment) */
  uint16_t data_len;      /* bytes of frame in this segment */
  uint16_t data_off;      /* offset of the first frame byte from the slot start */
  uint16_t buf_len;       /* usable bytes from the slot start (NPA_BUF_SLOT_SIZE) */
  uint16_t nb_segs;       /* segments in the frame (first segment), >= 1 */
  uint32_t ol_flags;      /* NPA_BUF_OL_* */
  uint16_t csum_start;    /* offset of the checksummed span from the frame start */
  uint16_t csum_offset;   /* where to store the checksum, from csum_start */
  uint16_t tso_segsz;     /* TSO/GSO segment payload size */
  uint16_t vlan_tci;      /* VLAN tag to insert, or that was stripped */
  uint32_t rss_hash;      /* RSS hash reported by the path */
  uint32_t slot;          /* slot index inside its pool: owned by the shell */
  uint32_t pool_id;       /* owning pool: owned by the shell */
  uint32_t reserved;      /* zero; room for append-only growth */
  uint64_t user;          /* free for the application; never read by npa */
} npa_buf;

/* The frame's first byte in this segment. */
static inline void *npa_buf_data(const npa_buf *b) {
  return (char *)b + b->data_off;
}
/* The IOVA of the frame's first byte in this segment. */
static inline uint64_t npa_buf_data_iova(const npa_buf *b) {
  return b->iova + b->data_off;
}

#ifdef __cplusplus
} /* extern "C" */
static_assert(sizeof(npa_buf) == NPA_BUF_META_SIZE, "npa_buf layout is ABI");
static_assert(offsetof(npa_buf, pkt_len) == 16, "npa_buf layout is ABI");
static_assert(offsetof(npa_buf, ol_flags) == 28, "npa_buf layout is ABI");
static_assert(offsetof(npa_buf, rss_hash) == 40, "npa_buf layout is ABI");
static_assert(offsetof(npa_buf, user) == 56, "npa_buf layout is ABI");
static_assert(NPA_BUF_SLOT_SIZE % 64 == 0, "slots stay cache-line aligned");
#else
_Static_assert(sizeof(npa_buf) == NPA_BUF_META_SIZE, "npa_buf layout is ABI");
_Static_assert(offsetof(npa_buf, user) == 56, "npa_buf layout is ABI");
#endif

#endif /* NPA_BUF_H_ */
