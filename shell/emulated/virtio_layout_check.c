/* Build-time check (C, where <linux/virtio_ring.h> compiles) that the ring
 * layout in virtio_defs.h matches the kernel's UAPI definitions. No code. */
#include <linux/virtio_ring.h>
#include <stddef.h>

_Static_assert(sizeof(struct vring_desc) == 16, "desc");
_Static_assert(offsetof(struct vring_desc, addr) == 0, "desc.addr");
_Static_assert(offsetof(struct vring_desc, len) == 8, "desc.len");
_Static_assert(offsetof(struct vring_desc, flags) == 12, "desc.flags");
_Static_assert(offsetof(struct vring_desc, next) == 14, "desc.next");
_Static_assert(offsetof(struct vring_avail, idx) == 2, "avail.idx");
_Static_assert(offsetof(struct vring_avail, ring) == 4, "avail.ring");
_Static_assert(sizeof(struct vring_used_elem) == 8, "used elem");
_Static_assert(offsetof(struct vring_used, idx) == 2, "used.idx");
_Static_assert(offsetof(struct vring_used, ring) == 4, "used.ring");
_Static_assert(VRING_DESC_F_NEXT == 1 && VRING_DESC_F_WRITE == 2, "desc flags");
_Static_assert(VRING_USED_F_NO_NOTIFY == 1 && VRING_AVAIL_F_NO_INTERRUPT == 1, "notify flags");

/* ISO C forbids an empty translation unit. */
int virtio_layout_checked_(void);
int virtio_layout_checked_(void) { return 1; }
