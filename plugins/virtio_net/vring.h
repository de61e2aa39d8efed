/*
 * vring.h — one split virtqueue (VIRTIO 1.x section 2.7) in shell DMA memory.
 *
 *   vring vq;
 *   vring_init(&vq, &mem, 256, notify_addr);        // mem from svc->dma_alloc
 *   int head = vring_add(&vq, segs, 2, cookie);     // chain of 2 descriptors
 *   vring_publish(&vq);                             // avail->idx, release fence
 *   if (vring_kick_needed(&vq)) vring_kick(&vq);    // one doorbell per burst
 *   void *c; uint32_t len;
 *   while ((c = vring_get_used(&vq, &len))) ...     // completions, in order used
 *
 * The descriptor table, avail and used rings live in one DMA allocation laid
 * out by vring_layout(). Everything the driver needs to remember (free list,
 * chain lengths, cookies) is kept in private memory: a device that scribbles
 * over the rings can make a queue "broken" (vring.broken, logged once by the
 * caller), never make the plug-in read out of bounds or free a buffer twice.
 */
#ifndef NPA_PLUGINS_VIRTIO_NET_VRING_H_
#define NPA_PLUGINS_VIRTIO_NET_VRING_H_

#include <stdint.h>

#include "npa/plugin.h"
#include "npa/virtio_ring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The ring layout, flags and sizes are npa/virtio_ring.h's (the definition
 * the shell and npa-agent use too). The plug-in's own names below are what
 * vring_seg.flags and the queue-size checks in vnet_*.c are written in. */
#define VRING_MAX_SIZE NPA_VRING_MAX_SIZE /* 2.7: Queue Size is at most 32768 */
#define VRING_DESC_F_WRITE NPA_VRING_DESC_F_WRITE

typedef struct vring_seg {
  uint64_t addr;
  uint32_t len;
  uint16_t flags; /* VRING_DESC_F_WRITE for device-writable, else 0 */
} vring_seg;

typedef struct vring {
  uint16_t size, mask;
  npa_vring_desc *desc;
  npa_vring_avail *avail;
  npa_vring_used *used;
  uint64_t desc_iova, avail_iova, used_iova;
  volatile uint16_t *notify;
  uint16_t qidx;       /* virtqueue index, written to the doorbell */
  uint16_t avail_idx;  /* shadow of avail->idx */
  uint16_t last_used;  /* next used->ring entry to consume */
  uint16_t kicked_idx; /* avail_idx at the last doorbell */
  uint16_t num_free, free_head;
  uint16_t *free_next; /* private free list over descriptor ids */
  uint16_t *chain_len; /* descriptors in the chain headed by id, 0 if free */
  void **cookie;       /* caller's cookie per chain head */
  int broken;          /* device handed back something impossible */
} vring;

/* Bytes of DMA memory for a queue of size entries (align 4096). */
uint64_t vring_layout(uint16_t size, uint64_t *avail_off, uint64_t *used_off);
/* Lay the rings out in mem (zero-filled by the shell) and reset the state.
 * The private arrays are malloc'ed here: 0 or -ENOMEM. */
int vring_init(vring *vq, const npa_dma_mem *mem, uint16_t size, uint16_t qidx);
void vring_fini(vring *vq);
/* Re-arm after a device reset: forget the indices, rebuild the free list
 * (cookies must have been taken back with vring_take_all first). */
void vring_rewind(vring *vq);

/* Put a chain of n segments on the avail ring (not yet visible to the device:
 * vring_publish). Returns the head id, or -1 when fewer than n are free. */
int vring_add(vring *vq, const vring_seg *segs, uint16_t n, void *cookie);
/* Make every vring_add so far visible: release fence, then avail->idx. */
void vring_publish(vring *vq);
/* After publish: does the device want a doorbell? (2.7.10, NO_NOTIFY) */
int vring_kick_needed(vring *vq);
void vring_kick(vring *vq);

/* Used entries the device has returned and the driver not yet consumed; sets
 * broken when the device claims more than the ring holds. */
uint16_t vring_used_pending(vring *vq);
/* Peek at the k-th pending used entry (k < vring_used_pending) without
 * consuming it: its cookie and len. NULL and broken if the id is bogus. */
void *vring_peek_used(vring *vq, uint16_t k, uint32_t *len);
/* Consume the next used entry: frees its chain, returns its cookie (NULL when
 * nothing is pending or the queue is broken). */
void *vring_get_used(vring *vq, uint32_t *len);
/* After a device reset only: hand every outstanding cookie to cb and free all
 * descriptors. Returns how many cookies were handed back. */
uint32_t vring_take_all(vring *vq, void (*cb)(void *arg, void *cookie), void *arg);
/* Suppress (1) or request (0) used-buffer notifications (2.7.7). */
void vring_set_no_interrupt(vring *vq, int no_intr);
static inline uint16_t vring_in_flight(const vring *vq) {
  return (uint16_t)(vq->size - vq->num_free);
}

#ifdef __cplusplus
}
#endif
#endif /* NPA_PLUGINS_VIRTIO_NET_VRING_H_ */
