/*
 * vnet.h — internal state of the virtio_net plug-in (not an ABI).
 *
 * One npa_plugin_dev per virtio-net function; one npa_plugin_queue per queue
 * pair (receiveqN = 2N, transmitqN = 2N+1, controlq = 2 * max_virtqueue_pairs,
 * VIRTIO 1.x 5.1.2). Control ops live in vnet_ctrl.c, the burst ops in
 * vnet_rxtx.c, the exported entry in vnet_entry.c.
 */
#ifndef NPA_PLUGINS_VIRTIO_NET_VNET_H_
#define NPA_PLUGINS_VIRTIO_NET_VNET_H_

#include <stdint.h>

#include "npa/plugin.h"
#include "virtio_pci.h"
#include "vring.h"

/* 5.1.3 feature bits. */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_F_CTRL_VQ 17
#define VIRTIO_NET_F_MQ 22
#define VIRTIO_NET_F_CTRL_MAC_ADDR 23
#define VIRTIO_NET_F_SPEED_DUPLEX 63
#define VNET_BIT(b) (1ull << (b))

/* 5.1.4 device configuration layout. */
#define VNET_CFG_MAC 0
#define VNET_CFG_STATUS 6
#define VNET_CFG_MAX_VQ_PAIRS 8
#define VNET_CFG_MTU 10
#define VNET_CFG_SPEED 12
#define VNET_CFG_DUPLEX 16
#define VIRTIO_NET_S_LINK_UP 1

/* 5.1.6 packet header. With VIRTIO_F_VERSION_1 it is always 12 bytes,
 * num_buffers included, MRG_RXBUF or not (5.1.6.1). */
typedef struct vnet_hdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
} vnet_hdr;
_Static_assert(sizeof(vnet_hdr) == 12, "5.1.6 virtio_net_hdr is 12 bytes with VERSION_1");
#define VNET_HDR_LEN 12u
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_TCPV6 4

/* 5.1.6.5 control virtqueue. */
#define VIRTIO_NET_CTRL_MAC 1
#define VIRTIO_NET_CTRL_MAC_ADDR_SET 1
#define VIRTIO_NET_CTRL_MQ 4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0
#define VIRTIO_NET_OK 0

#define VNET_MAX_QP 16       /* queue pairs this plug-in drives */
#define VNET_MAX_RING 4096   /* descriptors per ring it uses at most */
#define VNET_MIN_RING 16
#define VNET_MAX_SEGS 64     /* segments per TX frame */
#define VNET_CVQ_SIZE 16

struct npa_plugin_queue {
  struct npa_plugin_dev *dev;
  uint16_t qid;
  vring rx, tx;
  npa_dma_mem rx_mem, tx_mem;
  uint16_t rx_vec, tx_vec; /* MSI-X vector or VIRTIO_MSI_NO_VECTOR */
  int quiesced;            /* tx_burst takes nothing new */
  int broken_logged;
  npa_plugin_qstats st;    /* since probe: survives stop/configure */
};

enum vnet_state { VNET_PROBED, VNET_CONFIGURED, VNET_STARTED };

struct npa_plugin_dev {
  const npa_services *svc;
  npa_buf_free_fn free_tx;  /* buf_free_tx when the shell has it (ABI 1.1), else buf_free */
  npa_device_info info;
  vp_dev vp;
  uint64_t features;        /* negotiated */
  uint16_t max_qp;          /* queue pairs the device and plug-in both have */
  uint16_t dev_max_qp;      /* max_virtqueue_pairs (1 without MQ) */
  uint16_t max_ring;        /* min device queue_size over the data queues */
  uint32_t max_mtu;
  uint8_t perm_mac[6];
  uint8_t mac[6];           /* configured */
  enum vnet_state state;
  int needs_init;           /* device was reset: run 3.1.1 again */
  /* configuration */
  uint16_t nb_qp, ring_size;
  uint32_t mtu;
  uint64_t offloads;
  int rx_intr;
  int mac_set_pending;
  /* MSI-X */
  uint32_t nvec;
  int efds[1 + 2 * VNET_MAX_QP];
  /* control virtqueue */
  int has_cvq;
  vring cvq;
  npa_dma_mem cvq_mem, cvq_buf;
  struct npa_plugin_queue q[VNET_MAX_QP];
};

/* vnet_ctrl.c */
extern const npa_plugin_ctrl_ops vnet_ctrl_ops;
/* vnet_rxtx.c */
extern const npa_plugin_fast_ops vnet_fast_ops;
/* Post empty buffers until the RX ring is full or the pool runs dry;
 * returns how many were posted (publishes, does not kick). */
uint16_t vnet_rx_refill(struct npa_plugin_queue *q);
/* Reclaim completed TX buffers (svc->buf_free); returns how many frames. */
uint16_t vnet_tx_reap(struct npa_plugin_queue *q);

#define vnet_log(dev, lvl, ...) vp_log((dev)->svc, (lvl), __VA_ARGS__)
static inline int vnet_has(const struct npa_plugin_dev *d, int bit) {
  return (d->features & VNET_BIT(bit)) != 0;
}

#endif /* NPA_PLUGINS_VIRTIO_NET_VNET_H_ */
