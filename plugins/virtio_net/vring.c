/* vring.c — split virtqueue (see vring.h). Barrier names follow the spec's
 * 2.7.13 "Supplying Buffers to The Device" and 2.7.14 "Receiving Used Buffers
 * From The Device" steps. */
#include "vring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* x86 keeps stores ordered with stores and loads with loads, so the write and
 * read barriers compile to compiler fences; the store->load ordering needed
 * before checking NO_NOTIFY is a real mfence. Spelled as C11 fences so other
 * architectures get the right instruction. */
#define vr_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define vr_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define vr_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

uint64_t vring_layout(uint16_t size, uint64_t *avail_off, uint64_t *used_off) {
  /* 2.7 alignment: desc 16, avail 2, used 4. Used gets its own cache line so
   * device writes do not share a line with driver writes. The part sizes
   * include each ring's trailing event-index slot (2.7.7, 2.7.10). */
  uint64_t a = npa_vring_desc_size(size);
  uint64_t u = align_up(a + npa_vring_avail_size(size), 64);
  *avail_off = a;
  *used_off = u;
  return align_up(u + npa_vring_used_size(size), 4096);
}

int vring_init(vring *vq, const npa_dma_mem *mem, uint16_t size, uint16_t qidx) {
  uint64_t ao, uo;
  uint64_t need = vring_layout(size, &ao, &uo);
  memset(vq, 0, sizeof(*vq));
  if (size == 0 || (size & (size - 1)) || mem->size < need) return -EINVAL;
  vq->size = size;
  vq->mask = (uint16_t)(size - 1);
  vq->qidx = qidx;
  vq->desc = (npa_vring_desc *)mem->vaddr;
  vq->avail = (npa_vring_avail *)((char *)mem->vaddr + ao);
  vq->used = (npa_vring_used *)((char *)mem->vaddr + uo);
  vq->desc_iova = mem->iova;
  vq->avail_iova = mem->iova + ao;
  vq->used_iova = mem->iova + uo;
  vq->free_next = calloc(size, sizeof(uint16_t));
  vq->chain_len = calloc(size, sizeof(uint16_t));
  vq->cookie = calloc(size, sizeof(void *));
  if (!vq->free_next || !vq->chain_len || !vq->cookie) {
    vring_fini(vq);
    return -ENOMEM;
  }
  vring_rewind(vq);
  return 0;
}

void vring_fini(vring *vq) {
  free(vq->free_next);
  free(vq->chain_len);
  free(vq->cookie);
  vq->free_next = vq->chain_len = NULL;
  vq->cookie = NULL;
  vq->size = 0;
}

void vring_rewind(vring *vq) {
  memset(vq->desc, 0, (size_t)vq->size * sizeof(npa_vring_desc));
  vq->avail->flags = 0;
  vq->avail->idx = 0;
  vq->used->flags = 0;
  vq->used->idx = 0;
  vq->avail_idx = vq->last_used = vq->kicked_idx = 0;
  for (uint16_t i = 0; i < vq->size; i++) {
    vq->free_next[i] = (uint16_t)(i + 1);
    vq->chain_len[i] = 0;
    vq->cookie[i] = NULL;
  }
  vq->free_head = 0;
  vq->num_free = vq->size;
  vq->broken = 0;
}

int vring_add(vring *vq, const vring_seg *segs, uint16_t n, void *cookie) {
  if (n == 0 || n > vq->num_free || vq->broken) return -1;
  uint16_t head = vq->free_head, id = head;
  for (uint16_t i = 0; i < n; i++) {
    npa_vring_desc *d = &vq->desc[id];
    d->addr = segs[i].addr;
    d->len = segs[i].len;
    d->flags = (uint16_t)(segs[i].flags | (i + 1 < n ? NPA_VRING_DESC_F_NEXT : 0));
    id = vq->free_next[id];
    d->next = i + 1 < n ? id : 0;
  }
  vq->free_head = id;
  vq->num_free = (uint16_t)(vq->num_free - n);
  vq->chain_len[head] = n;
  vq->cookie[head] = cookie;
  /* 2.7.13.2: the head goes into the next free avail slot; the device does
   * not look at it until avail->idx moves (vring_publish). */
  vq->avail->ring[vq->avail_idx & vq->mask] = head;
  vq->avail_idx++;
  return head;
}

void vring_publish(vring *vq) {
  /* 2.7.13.3.1: descriptors and ring entries must be visible before idx. */
  vr_wmb();
  __atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELAXED);
}

int vring_kick_needed(vring *vq) {
  if (vq->avail_idx == vq->kicked_idx) return 0;
  /* 2.7.13.4: the idx store must be visible before reading the device's
   * NO_NOTIFY flag, or we may skip a doorbell the device is waiting for. */
  vr_mb();
  uint16_t flags = __atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED);
  if (flags & NPA_VRING_USED_F_NO_NOTIFY) {
    vq->kicked_idx = vq->avail_idx;
    return 0;
  }
  return 1;
}

void vring_kick(vring *vq) {
  vq->kicked_idx = vq->avail_idx;
  /* 4.1.5.2: without VIRTIO_F_NOTIFICATION_DATA the doorbell value is the
   * virtqueue index. MMIO is uncached: the store is not reordered before the
   * earlier ring stores on x86 (the fence above covers the rest). */
  *vq->notify = vq->qidx;
}

uint16_t vring_used_pending(vring *vq) {
  if (vq->broken) return 0;
  uint16_t idx = __atomic_load_n(&vq->used->idx, __ATOMIC_RELAXED);
  /* 2.7.14: read used->idx before the entries it covers. */
  vr_rmb();
  uint16_t n = (uint16_t)(idx - vq->last_used);
  if (n > vring_in_flight(vq)) {
    vq->broken = 1; /* the device claims more than we gave it */
    return 0;
  }
  return n;
}

void *vring_peek_used(vring *vq, uint16_t k, uint32_t *len) {
  npa_vring_used_elem e = vq->used->ring[(uint16_t)(vq->last_used + k) & vq->mask];
  if (e.id >= vq->size || vq->chain_len[e.id] == 0) {
    vq->broken = 1;
    return NULL;
  }
  *len = e.len;
  return vq->cookie[e.id];
}

void *vring_get_used(vring *vq, uint32_t *len) {
  if (vring_used_pending(vq) == 0) return NULL;
  npa_vring_used_elem e = vq->used->ring[vq->last_used & vq->mask];
  if (e.id >= vq->size || vq->chain_len[e.id] == 0) {
    vq->broken = 1;
    return NULL;
  }
  vq->last_used++;
  uint16_t head = (uint16_t)e.id, n = vq->chain_len[head];
  /* Walk the chain through our own bookkeeping, not the device-visible
   * next fields, so the free list survives a scribbled table. */
  uint16_t id = head;
  for (uint16_t i = 1; i < n; i++) id = vq->free_next[id];
  vq->free_next[id] = vq->free_head;
  vq->free_head = head;
  vq->num_free = (uint16_t)(vq->num_free + n);
  vq->chain_len[head] = 0;
  void *c = vq->cookie[head];
  vq->cookie[head] = NULL;
  *len = e.len;
  return c;
}

uint32_t vring_take_all(vring *vq, void (*cb)(void *arg, void *cookie), void *arg) {
  uint32_t n = 0;
  for (uint16_t i = 0; i < vq->size; i++) {
    if (vq->chain_len[i] && vq->cookie[i]) {
      cb(arg, vq->cookie[i]);
      n++;
    }
  }
  vring_rewind(vq);
  return n;
}

void vring_set_no_interrupt(vring *vq, int no_intr) {
  uint16_t f = no_intr ? NPA_VRING_AVAIL_F_NO_INTERRUPT : 0;
  __atomic_store_n(&vq->avail->flags, f, __ATOMIC_RELAXED);
  /* Make the flag visible before the caller re-polls the used ring. */
  vr_mb();
}
