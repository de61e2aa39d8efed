/*
 * npa/virtio_ring.h — the VIRTIO 1.x split virtqueue and virtio-net header,
 * the one definition the shell (driver side of the emulated path), npa-agent
 * (device side, the vhost-user back end) and the virtio_net plug-in (driver
 * of a virtio-net PCI function) all use.
 *
 * What is here: the split ring structures (descriptor 2.7.5, available ring
 * 2.7.6, used ring 2.7.8), the packed ring's descriptor and event
 * suppression structure (2.8.13, 2.8.10), their flag bits, the event-index slots that follow each
 * ring (2.7.7, 2.7.10), the sizes and alignments of the three parts (2.7),
 * the feature bits those users negotiate (6, 5.1.3) and the virtio-net packet
 * header (5.1.6). Nothing else: the vhost-user wire format is npa/vhost_user.h
 * and the PCI transport lives in the plug-in; docs/architecture.md describes
 * the two paths these rings serve.
 *
 * Why not <linux/virtio_ring.h> and <linux/virtio_net.h>: the plug-in is plain
 * C11 built against include/npa/ alone (no kernel headers assumed), and the
 * UAPI headers are not valid C++ (virtio_ring.h's inline vring_init()
 * converts void* implicitly; virtio_net.h names a member `class`). Every name
 * here carries an npa_ / NPA_ prefix, so a file that also includes the kernel's
 * headers gets no clash; the byte layout is the same (the spec's), pinned by
 * the assertions at the end of this file and, against the kernel's own
 * definitions, by shell/emulated/virtio_layout_check.c at build time.
 *
 * Byte order: VIRTIO 1.x rings and headers are little-endian. Fields are
 * plain uintN_t because every npa host is little-endian (x86-64); a
 * big-endian port would need le16/le32 accessors at every use.
 *
 * Concurrency: these are the shared-memory layouts only. Who may write which
 * field and the barriers around the index stores are the users' business
 * (2.7.13 driver side, 2.7.14 / 2.7.8 device side); see shell/emulated/virtq.h,
 * hypervisor/vhost/virtqueue.h and plugins/virtio_net/vring.h.
 *
 * Usage (either side, one queue of num entries in memory the caller owns):
 *
 *   struct npa_vring_desc *desc = (struct npa_vring_desc *)mem;
 *   struct npa_vring_avail *avail =
 *       (struct npa_vring_avail *)(mem + npa_vring_desc_size(num));
 *   struct npa_vring_used *used = ...;  // NPA_VRING_USED_ALIGN-aligned
 *   desc[id].flags = NPA_VRING_DESC_F_WRITE;           // device-writable
 *   avail->ring[avail_idx & (num - 1)] = id;
 *   if (npa_vring_need_event(*npa_vring_avail_event(used, num), new_idx, old_idx))
 *     kick();                                           // with EVENT_IDX
 */
#ifndef NPA_VIRTIO_RING_H_
#define NPA_VIRTIO_RING_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Split virtqueue (VIRTIO 1.x 2.7) ----------------------------------- */

/* 2.7: Queue Size is a power of two, at most 32768. */
#define NPA_VRING_MAX_SIZE 32768

/* 2.7 "Alignment column": the device reads each part at these alignments. */
#define NPA_VRING_DESC_ALIGN 16
#define NPA_VRING_AVAIL_ALIGN 2
#define NPA_VRING_USED_ALIGN 4

/* 2.7.5: descriptor flags. */
#define NPA_VRING_DESC_F_NEXT 1     /* next is valid: the chain continues */
#define NPA_VRING_DESC_F_WRITE 2    /* device-writable (else device-readable) */
#define NPA_VRING_DESC_F_INDIRECT 4 /* buffer is a table of descriptors (2.7.5.3) */

/* 2.7.6: driver -> device, "do not interrupt me" (a hint without EVENT_IDX). */
#define NPA_VRING_AVAIL_F_NO_INTERRUPT 1
/* 2.7.8: device -> driver, "do not kick me" (a hint without EVENT_IDX). */
#define NPA_VRING_USED_F_NO_NOTIFY 1

/* 2.7.5: one buffer; addr is a guest physical address (an IOVA on a VF, the
 * shell's virtual address over vhost-user, see npa/vhost_user.h). */
typedef struct npa_vring_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags; /* NPA_VRING_DESC_F_* */
  uint16_t next;  /* with NPA_VRING_DESC_F_NEXT */
} npa_vring_desc;

/* The ring arrays below are flexible array members: standard C11, an
 * extension in C++ that GCC and Clang accept (marked as such so -Wpedantic
 * stays quiet). */
#if defined(__cplusplus) && defined(__GNUC__)
#define NPA_VRING_FLEX_ __extension__
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wc99-extensions"
#endif
#else
#define NPA_VRING_FLEX_
#endif

/* 2.7.6: written by the driver only. With VIRTIO_F_RING_EVENT_IDX, ring[num]
 * is used_event (npa_vring_used_event). */
typedef struct npa_vring_avail {
  uint16_t flags; /* NPA_VRING_AVAIL_F_* */
  uint16_t idx;   /* where the driver puts the next entry (mod num); free-running */
  NPA_VRING_FLEX_ uint16_t ring[];
} npa_vring_avail;

/* 2.7.8: id is the head of a descriptor chain the device is done with; len
 * the bytes it wrote into the chain's device-writable buffers. */
typedef struct npa_vring_used_elem {
  uint32_t id;
  uint32_t len;
} npa_vring_used_elem;

/* 2.7.8: written by the device only. With VIRTIO_F_RING_EVENT_IDX, the u16
 * after ring[num - 1] is avail_event (npa_vring_avail_event). */
typedef struct npa_vring_used {
  uint16_t flags; /* NPA_VRING_USED_F_* */
  uint16_t idx;   /* where the device puts the next entry (mod num); free-running */
  NPA_VRING_FLEX_ npa_vring_used_elem ring[];
} npa_vring_used;
#if defined(__cplusplus) && defined(__clang__)
#pragma clang diagnostic pop
#endif
#undef NPA_VRING_FLEX_

/* 2.7 table "Virtqueue Part Sizes": bytes of each part for num entries, the
 * event-index slot included (it is there whether or not EVENT_IDX is used). */
static inline size_t npa_vring_desc_size(uint32_t num) { return (size_t)16 * num; }
static inline size_t npa_vring_avail_size(uint32_t num) { return 6 + (size_t)2 * num; }
static inline size_t npa_vring_used_size(uint32_t num) { return 6 + (size_t)8 * num; }

/* 2.7.7 / 2.7.10: the event-index slots. used_event (driver-written) follows
 * the avail ring and says "interrupt me once used->idx passes this";
 * avail_event (device-written) follows the used ring and says "kick me once
 * avail->idx passes this". Only meaningful with VIRTIO_F_RING_EVENT_IDX. */
static inline uint16_t *npa_vring_used_event(npa_vring_avail *avail, uint32_t num) {
  return &avail->ring[num];
}
static inline uint16_t *npa_vring_avail_event(npa_vring_used *used, uint32_t num) {
  return (uint16_t *)(void *)&used->ring[num];
}
/* 2.7.7.2 / 2.7.10.1: moving an index from old_idx to new_idx crossed
 * event_idx (modulo 2^16), so the other side asked to be notified. */
static inline int npa_vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/* ---- Packed virtqueue (VIRTIO 1.1+ 2.8) ---------------------------------- */

/* 2.8.1 / 2.8.21: one ring of descriptors both sides write, no separate
 * available and used rings. The driver makes a descriptor available by
 * writing AVAIL = its driver wrap counter and USED = its inverse; the device
 * marks it used by writing AVAIL = USED = its device wrap counter. Each side's
 * wrap counter starts at 1 and flips whenever its index wraps past num - 1.
 * The queue size need not be a power of two (2.8.2), at most 32768. */
#define NPA_VRING_PACKED_DESC_F_AVAIL 7 /* bit numbers, as in the spec */
#define NPA_VRING_PACKED_DESC_F_USED 15
#define NPA_VRING_PACKED_F_AVAIL (1u << NPA_VRING_PACKED_DESC_F_AVAIL)
#define NPA_VRING_PACKED_F_USED (1u << NPA_VRING_PACKED_DESC_F_USED)

/* 2.8.10 "Event Suppression Structure Format": flags values. */
#define NPA_VRING_PACKED_EVENT_FLAG_ENABLE 0x0
#define NPA_VRING_PACKED_EVENT_FLAG_DISABLE 0x1
#define NPA_VRING_PACKED_EVENT_FLAG_DESC 0x2 /* only with VIRTIO_F_RING_EVENT_IDX */
/* off_wrap: bits 0..14 the descriptor offset, bit 15 the wrap counter. */
#define NPA_VRING_PACKED_EVENT_F_WRAP_CTR 15

/* 2.8.13: a descriptor. With NEXT the chain continues in the next ring slot
 * (not through a next field); the id of a chain is in its last descriptor;
 * the device writes id and len into the first slot it marks used (len: bytes
 * written into device-writable buffers). Alignment 16, like the split table. */
typedef struct npa_vring_packed_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t id;
  uint16_t flags; /* NPA_VRING_DESC_F_NEXT/WRITE/INDIRECT | F_AVAIL | F_USED */
} npa_vring_packed_desc;

/* 2.8.10: the driver's area tells the device when to interrupt; the device's
 * area tells the driver when to kick. Alignment 4. */
typedef struct npa_vring_packed_desc_event {
  uint16_t off_wrap;
  uint16_t flags; /* NPA_VRING_PACKED_EVENT_FLAG_* */
} npa_vring_packed_desc_event;

static inline size_t npa_vring_packed_desc_size(uint32_t num) { return (size_t)16 * num; }

/* vhost-user GET/SET_VRING_BASE on a packed ring (as QEMU and DPDK encode
 * it): bits 0..14 the last available index, bit 15 its wrap counter; since
 * the back end serves in order, the used side is the same pair. */
static inline uint32_t npa_vring_packed_base(uint16_t idx, int wrap) {
  return (uint32_t)(idx & 0x7fff) | ((uint32_t)(wrap ? 1 : 0) << 15);
}

/* ---- Feature bits (VIRTIO 1.x 6 "Reserved Feature Bits", 5.1.3) ---------- */

#define NPA_VIRTIO_F_RING_INDIRECT_DESC 28 /* 2.7.5.3 indirect descriptors */
#define NPA_VIRTIO_F_RING_EVENT_IDX 29     /* 2.7.7.2 / 2.7.10.1 event index */
#define NPA_VIRTIO_F_VERSION_1 32          /* 1.x device: little-endian, 12-byte net header */
#define NPA_VIRTIO_F_ACCESS_PLATFORM 33    /* device addresses go through an IOMMU */
#define NPA_VIRTIO_F_RING_PACKED 34        /* 2.8 packed virtqueues */
#define NPA_VIRTIO_F_IN_ORDER 35
#define NPA_VIRTIO_F_NOTIFICATION_DATA 38 /* 4.1.5.2: doorbell carries more than the index */

#define NPA_VIRTIO_NET_F_CSUM 0        /* device checksums TX (NEEDS_CSUM) */
#define NPA_VIRTIO_NET_F_GUEST_CSUM 1  /* driver accepts partial checksums on RX */
#define NPA_VIRTIO_NET_F_MTU 3
#define NPA_VIRTIO_NET_F_MAC 5
#define NPA_VIRTIO_NET_F_GUEST_TSO4 7
#define NPA_VIRTIO_NET_F_GUEST_TSO6 8
#define NPA_VIRTIO_NET_F_HOST_TSO4 11  /* device segments TCPv4 */
#define NPA_VIRTIO_NET_F_HOST_TSO6 12  /* device segments TCPv6 */
#define NPA_VIRTIO_NET_F_MRG_RXBUF 15  /* a received frame may span buffers */
#define NPA_VIRTIO_NET_F_STATUS 16
#define NPA_VIRTIO_NET_F_CTRL_VQ 17
#define NPA_VIRTIO_NET_F_MQ 22
#define NPA_VIRTIO_NET_F_CTRL_MAC_ADDR 23
#define NPA_VIRTIO_NET_F_SPEED_DUPLEX 63

/* ---- virtio-net packet header (VIRTIO 1.x 5.1.6) ------------------------ */

#define NPA_VIRTIO_NET_HDR_F_NEEDS_CSUM 1 /* TX/RX: checksum from csum_start */
#define NPA_VIRTIO_NET_HDR_F_DATA_VALID 2 /* RX: checksum already verified */
#define NPA_VIRTIO_NET_HDR_GSO_NONE 0
#define NPA_VIRTIO_NET_HDR_GSO_TCPV4 1
#define NPA_VIRTIO_NET_HDR_GSO_UDP 3
#define NPA_VIRTIO_NET_HDR_GSO_TCPV6 4
#define NPA_VIRTIO_NET_HDR_GSO_ECN 0x80

/* 5.1.6: the header before every frame, without num_buffers: what a legacy
 * device without MRG_RXBUF uses, and the first 10 bytes of the other two. */
typedef struct npa_virtio_net_hdr {
  uint8_t flags;    /* NPA_VIRTIO_NET_HDR_F_* */
  uint8_t gso_type; /* NPA_VIRTIO_NET_HDR_GSO_* */
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
} npa_virtio_net_hdr;

/* 5.1.6.1: with VIRTIO_F_VERSION_1 (always, in npa) or MRG_RXBUF the header
 * is 12 bytes: num_buffers follows, and the driver sets it to 0 on TX. Two
 * spellings of the same bytes, as the users need them: the nested one (the
 * shell's offload code works on the 10-byte part) and the spec's flat one
 * (the agent and the plug-in). */
typedef struct npa_virtio_net_hdr_mrg_rxbuf {
  npa_virtio_net_hdr hdr;
  uint16_t num_buffers; /* RX with MRG_RXBUF: used entries this frame spans */
} npa_virtio_net_hdr_mrg_rxbuf;

typedef struct npa_virtio_net_hdr_v1 {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
} npa_virtio_net_hdr_v1;

/* ---- Layout pins: the spec's byte offsets, checked by the compiler -------- */

#ifdef __cplusplus
#define NPA_VRING_ASSERT_(cond, msg) static_assert(cond, msg)
#else
#define NPA_VRING_ASSERT_(cond, msg) _Static_assert(cond, msg)
#endif
NPA_VRING_ASSERT_(sizeof(npa_vring_desc) == 16 && offsetof(npa_vring_desc, addr) == 0 &&
                      offsetof(npa_vring_desc, len) == 8 && offsetof(npa_vring_desc, flags) == 12 &&
                      offsetof(npa_vring_desc, next) == 14,
                  "VIRTIO 1.x 2.7.5: struct virtq_desc");
NPA_VRING_ASSERT_(sizeof(npa_vring_avail) == 4 && offsetof(npa_vring_avail, idx) == 2 &&
                      offsetof(npa_vring_avail, ring) == 4,
                  "VIRTIO 1.x 2.7.6: struct virtq_avail");
NPA_VRING_ASSERT_(sizeof(npa_vring_used_elem) == 8 && offsetof(npa_vring_used_elem, len) == 4,
                  "VIRTIO 1.x 2.7.8: struct virtq_used_elem");
NPA_VRING_ASSERT_(sizeof(npa_vring_used) == 4 && offsetof(npa_vring_used, idx) == 2 &&
                      offsetof(npa_vring_used, ring) == 4,
                  "VIRTIO 1.x 2.7.8: struct virtq_used");
NPA_VRING_ASSERT_(sizeof(npa_virtio_net_hdr) == 10 && offsetof(npa_virtio_net_hdr, gso_type) == 1 &&
                      offsetof(npa_virtio_net_hdr, hdr_len) == 2 &&
                      offsetof(npa_virtio_net_hdr, gso_size) == 4 &&
                      offsetof(npa_virtio_net_hdr, csum_start) == 6 &&
                      offsetof(npa_virtio_net_hdr, csum_offset) == 8,
                  "VIRTIO 1.x 5.1.6: struct virtio_net_hdr (legacy part)");
NPA_VRING_ASSERT_(sizeof(npa_virtio_net_hdr_mrg_rxbuf) == 12 &&
                      offsetof(npa_virtio_net_hdr_mrg_rxbuf, num_buffers) == 10,
                  "VIRTIO 1.x 5.1.6: 12-byte header with num_buffers");
NPA_VRING_ASSERT_(sizeof(npa_virtio_net_hdr_v1) == 12 &&
                      offsetof(npa_virtio_net_hdr_v1, csum_start) ==
                          offsetof(npa_virtio_net_hdr, csum_start) &&
                      offsetof(npa_virtio_net_hdr_v1, csum_offset) ==
                          offsetof(npa_virtio_net_hdr, csum_offset) &&
                      offsetof(npa_virtio_net_hdr_v1, num_buffers) == 10,
                  "VIRTIO 1.x 5.1.6: struct virtio_net_hdr (flat, same bytes)");
NPA_VRING_ASSERT_(sizeof(npa_vring_packed_desc) == 16 &&
                      offsetof(npa_vring_packed_desc, len) == 8 &&
                      offsetof(npa_vring_packed_desc, id) == 12 &&
                      offsetof(npa_vring_packed_desc, flags) == 14,
                  "VIRTIO 1.1 2.8.13: struct pvirtq_desc");
NPA_VRING_ASSERT_(sizeof(npa_vring_packed_desc_event) == 4 &&
                      offsetof(npa_vring_packed_desc_event, flags) == 2,
                  "VIRTIO 1.1 2.8.10: struct pvirtq_event_suppress");
#undef NPA_VRING_ASSERT_

#ifdef __cplusplus
}
#endif
#endif /* NPA_VIRTIO_RING_H_ */
