/*
 * npa/vhost_user.h — vhost-user wire format, as both npa sides speak it.
 *
 * The shell is a vhost-user front end, npa-agent a back end. Both follow the
 * vhost-user specification (QEMU docs/interop/vhost-user.rst) closely enough
 * to interoperate with DPDK's net_vhost and net_virtio_user. This header holds
 * only the wire layout; the ring layouts and the net header are in
 * npa/virtio_ring.h (VIRTIO 1.x 2.7 and 5.1.6).
 *
 * A message is a 12-byte header followed by `size` bytes of payload. File
 * descriptors travel as SCM_RIGHTS ancillary data on the header's sendmsg.
 * Every field is little-endian (x86 and the spec agree).
 *
 * Addresses: npa's shell uses its own virtual addresses as "guest physical
 * addresses" (as DPDK virtio-user does), so guest_phys_addr == userspace_addr
 * in the memory table it sends. The back end never assumes that: it
 * translates ring and descriptor addresses through the table, and rejects
 * anything outside it.
 */
#ifndef NPA_VHOST_USER_H_
#define NPA_VHOST_USER_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Front-end requests ("Front-end message types" in the spec). */
enum npa_vhost_user_request {
  NPA_VHOST_USER_NONE = 0,
  NPA_VHOST_USER_GET_FEATURES = 1,
  NPA_VHOST_USER_SET_FEATURES = 2,
  NPA_VHOST_USER_SET_OWNER = 3,
  NPA_VHOST_USER_RESET_OWNER = 4,
  NPA_VHOST_USER_SET_MEM_TABLE = 5,
  NPA_VHOST_USER_SET_LOG_BASE = 6,
  NPA_VHOST_USER_SET_LOG_FD = 7,
  NPA_VHOST_USER_SET_VRING_NUM = 8,
  NPA_VHOST_USER_SET_VRING_ADDR = 9,
  NPA_VHOST_USER_SET_VRING_BASE = 10,
  NPA_VHOST_USER_GET_VRING_BASE = 11,
  NPA_VHOST_USER_SET_VRING_KICK = 12,
  NPA_VHOST_USER_SET_VRING_CALL = 13,
  NPA_VHOST_USER_SET_VRING_ERR = 14,
  NPA_VHOST_USER_GET_PROTOCOL_FEATURES = 15,
  NPA_VHOST_USER_SET_PROTOCOL_FEATURES = 16,
  NPA_VHOST_USER_GET_QUEUE_NUM = 17,
  NPA_VHOST_USER_SET_VRING_ENABLE = 18,
  NPA_VHOST_USER_SEND_RARP = 19,
  NPA_VHOST_USER_NET_SET_MTU = 20,
  NPA_VHOST_USER_SET_BACKEND_REQ_FD = 21,
  NPA_VHOST_USER_IOTLB_MSG = 22,
  NPA_VHOST_USER_SET_VRING_ENDIAN = 23,
  NPA_VHOST_USER_GET_CONFIG = 24,
  NPA_VHOST_USER_SET_CONFIG = 25,
  NPA_VHOST_USER_GET_INFLIGHT_FD = 31,
  NPA_VHOST_USER_SET_INFLIGHT_FD = 32,
  NPA_VHOST_USER_RESET_DEVICE = 34,
  NPA_VHOST_USER_GET_MAX_MEM_SLOTS = 36,
  NPA_VHOST_USER_ADD_MEM_REG = 37,
  NPA_VHOST_USER_REM_MEM_REG = 38,
  NPA_VHOST_USER_SET_STATUS = 39,
  NPA_VHOST_USER_GET_STATUS = 40,
  NPA_VHOST_USER_MAX_REQUEST = 41,
};

/* Header flags: bits 0-1 version (must be 1), bit 2 reply, bit 3 need_reply. */
#define NPA_VHOST_USER_VERSION 0x1u
#define NPA_VHOST_USER_VERSION_MASK 0x3u
#define NPA_VHOST_USER_FLAG_REPLY (1u << 2)
#define NPA_VHOST_USER_FLAG_NEED_REPLY (1u << 3)

/* Virtio feature bit that announces GET/SET_PROTOCOL_FEATURES. */
#define NPA_VHOST_USER_F_PROTOCOL_FEATURES 30

/* Protocol feature bits. */
#define NPA_VHOST_USER_PROTOCOL_F_MQ 0
#define NPA_VHOST_USER_PROTOCOL_F_LOG_SHMFD 1
#define NPA_VHOST_USER_PROTOCOL_F_RARP 2
#define NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define NPA_VHOST_USER_PROTOCOL_F_MTU 4
#define NPA_VHOST_USER_PROTOCOL_F_BACKEND_REQ 5
#define NPA_VHOST_USER_PROTOCOL_F_CONFIG 9
#define NPA_VHOST_USER_PROTOCOL_F_RESET_DEVICE 13
#define NPA_VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15
#define NPA_VHOST_USER_PROTOCOL_F_STATUS 16

/* SET_VRING_KICK/CALL/ERR payload: bits 0-7 queue index, bit 8 "no fd"
 * (polling). */
#define NPA_VHOST_USER_VRING_IDX_MASK 0xffull
#define NPA_VHOST_USER_VRING_NOFD_MASK (1ull << 8)

#define NPA_VHOST_USER_MAX_REGIONS 8   /* SET_MEM_TABLE fd limit */
#define NPA_VHOST_USER_MAX_FDS 8       /* fds accepted on any one message */

typedef struct npa_vhost_user_hdr {
  uint32_t request;
  uint32_t flags;
  uint32_t size; /* payload bytes that follow */
} npa_vhost_user_hdr;

typedef struct npa_vhost_vring_state {
  uint32_t index;
  uint32_t num;
} npa_vhost_vring_state;

typedef struct npa_vhost_vring_addr {
  uint32_t index;
  uint32_t flags; /* bit 0: VHOST_VRING_F_LOG */
  uint64_t desc_user_addr;  /* front end's addresses: translate via user_addr */
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
} npa_vhost_vring_addr;

typedef struct npa_vhost_memory_region {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset; /* offset into the region's fd */
} npa_vhost_memory_region;

typedef struct npa_vhost_memory {
  uint32_t nregions;
  uint32_t padding;
  npa_vhost_memory_region regions[NPA_VHOST_USER_MAX_REGIONS];
} npa_vhost_memory;

typedef struct npa_vhost_single_region { /* ADD_MEM_REG / REM_MEM_REG */
  uint64_t padding;
  npa_vhost_memory_region region;
} npa_vhost_single_region;

typedef union npa_vhost_user_payload {
  uint64_t u64;
  npa_vhost_vring_state state;
  npa_vhost_vring_addr addr;
  npa_vhost_memory memory;
  npa_vhost_single_region mem_reg;
  uint8_t raw[264];
} npa_vhost_user_payload;

/* On the wire the payload follows the 12-byte header with no padding, so
 * senders and receivers move the two with a two-element iovec rather than
 * through one C struct (which would pad the 8-byte-aligned payload to 16). */

#ifdef __cplusplus
} /* extern "C" */
#define NPA_VU_ASSERT(c, m) static_assert(c, m)
#else
#define NPA_VU_ASSERT(c, m) _Static_assert(c, m)
#endif
NPA_VU_ASSERT(sizeof(npa_vhost_user_hdr) == 12, "vhost-user header is 12 bytes");
NPA_VU_ASSERT(sizeof(npa_vhost_vring_addr) == 40, "spec layout");
NPA_VU_ASSERT(sizeof(npa_vhost_memory_region) == 32, "spec layout");
NPA_VU_ASSERT(sizeof(npa_vhost_memory) == 8 + 8 * 32, "spec layout");
NPA_VU_ASSERT(sizeof(npa_vhost_user_payload) == 264, "largest payload");

#endif /* NPA_VHOST_USER_H_ */
