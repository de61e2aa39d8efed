// hypervisor/daemon/dataplane_frames.h — the dataplane's per-frame helpers,
// split out of dataplane.cc so its parts (dataplane.cc,
// dataplane_migration.cc) share one copy. All inline: they run once per
// frame, and a call across translation units there would cost what the
// split must not (docs/PERFORMANCE.md).
//
//   uint8_t eth[14];
//   GatherEth(frame, eth);                 // the header, whatever the segments
//   iovec segs[kMaxFrameSegs + 1];
//   uint16_t n = CheckedSegs(frame, eth, segs);   // that copy, then the rest
//   uint16_t q = FlowQueue(data, len, nq);        // RX queue for an uplink frame
//   uint64_t k = MacKey(mac);                     // a MAC as a 48-bit key
//   CopyFrame(frame, dst, room);                  // the sink's copy
//
// Threads: pure functions of their arguments.
#ifndef NPA_HYPERVISOR_DAEMON_DATAPLANE_FRAMES_H_
#define NPA_HYPERVISOR_DAEMON_DATAPLANE_FRAMES_H_

#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "hypervisor/vhost/vhost_device.h"

namespace npa::agent {

// A MAC as a 48-bit integer key (0: none).
inline uint64_t MacKey(const uint8_t* mac) {
  uint64_t k = 0;
  memcpy(&k, mac, 6);
  return k;
}

// RX queue for a frame from the uplink: keep a flow on one queue by hashing
// the IPv4 addresses when there are some (else queue 0).
inline uint16_t FlowQueue(const uint8_t* data, uint32_t len, uint16_t nq) {
  if (nq <= 1 || len < 34 || data[12] != 0x08 || data[13] != 0x00) return 0;
  uint32_t a, b;
  memcpy(&a, data + 26, 4);
  memcpy(&b, data + 30, 4);
  uint32_t h = (a ^ b) * 0x9e3779b1u;
  return static_cast<uint16_t>((h >> 16) % nq);
}

// The first 14 bytes of a frame, which may straddle guest segments; zeros
// past the end of a shorter frame.
inline void GatherEth(const GuestFrame& f, uint8_t* eth) {
  size_t got = 0;
  for (uint16_t s = 0; s < f.nsegs && got < 14; s++) {
    size_t take = std::min<size_t>(f.segs[s].iov_len, 14 - got);
    memcpy(eth + got, f.segs[s].iov_base, take);
    got += take;
  }
  if (got < 14) memset(eth + got, 0, 14 - got);
}

// Segments of a frame with its first 14 bytes replaced by the checked copy
// `eth`: {eth, 14}, then the guest's bytes from offset 14 on. out has room
// for f.nsegs + 1. Frames shorter than 14 bytes never get here (runts are
// dropped by the switch first).
inline uint16_t CheckedSegs(const GuestFrame& f, const uint8_t* eth, iovec* out) {
  out[0] = {const_cast<uint8_t*>(eth), 14};
  uint16_t n = 1;
  size_t skip = 14;
  for (uint16_t s = 0; s < f.nsegs; s++) {
    const size_t l = f.segs[s].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    out[n++] = {static_cast<uint8_t*>(f.segs[s].iov_base) + skip, l - skip};
    skip = 0;
  }
  return n;
}

// Copies a frame's segments into dst, at most room bytes (the rest is cut).
inline void CopyFrame(const GuestFrame& f, uint8_t* dst, size_t room) {
  if (f.nsegs == 1) {
    memcpy(dst, f.segs[0].iov_base, std::min(f.segs[0].iov_len, room));
    return;
  }
  size_t off = 0;
  for (uint16_t s = 0; s < f.nsegs; s++) {
    size_t take = std::min(f.segs[s].iov_len, room - off);
    memcpy(dst + off, f.segs[s].iov_base, take);
    off += take;
  }
}

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_DATAPLANE_FRAMES_H_
