#include "hypervisor/vhost/desc_chain.h"

#include <cstring>

#include "absl/strings/str_format.h"

namespace npa::agent {

std::string ChainError::Describe() const {
  switch (kind) {
    case kHeadOutOfRange:
      return absl::StrFormat("head index %u is out of range", other);
    case kNextOutOfRange:
      return absl::StrFormat("descriptor %u next index %u is out of range", desc, other);
    case kLoop:
      return absl::StrFormat("descriptor chain from head %u is longer than the ring (loop)", other);
    case kOutsideMemory:
      return absl::StrFormat("descriptor %u addr 0x%x len %u is outside guest memory", desc, addr, len);
    case kWrongDirection:
      return absl::StrFormat("descriptor %u has the wrong direction (write flag) for this queue", desc);
    case kIndirect:
      return absl::StrFormat("descriptor %u is indirect, which was not negotiated", desc);
  }
  return "unknown descriptor error";
}

bool WalkChain(const npa_vring_desc* table, uint32_t ring_size, uint32_t head,
               const GuestMemory& mem, uint32_t* hint, ChainDir dir, ChainBuf* bufs, uint16_t cap,
               ChainWalk* walk, ChainError* err) {
  *walk = ChainWalk{0, 0, false, 0};
  if (head >= ring_size) {
    *err = {ChainError::kHeadOutOfRange, 0, static_cast<uint16_t>(head), 0, 0};
    return false;
  }
  // The table is shared with a guest that may rewrite it concurrently: read
  // each descriptor once through a volatile view and use only the copy.
  const volatile npa_vring_desc* vt = table;
  const uint16_t want_write = dir == ChainDir::kWritable ? NPA_VRING_DESC_F_WRITE : 0;
  uint32_t i = head;
  uint16_t seen[kMaxChainDescs];  // indices walked, for loop detection at the cap
  for (uint32_t n = 0;; ++n) {
    if (n == ring_size) {  // §2.7.5.2: a chain never exceeds the queue size
      *err = {ChainError::kLoop, static_cast<uint16_t>(i), static_cast<uint16_t>(head), 0, 0};
      return false;
    }
    if (n == kMaxChainDescs) {  // bounded work per chain (see kMaxChainDescs)
      // A loop that closed within the walk revisits an index: a violation,
      // as before the cap. A longer chain of distinct descriptors (or a loop
      // wider than the cap) is only too long: dropped by the caller.
      for (uint32_t k = 0; k < kMaxChainDescs; ++k) {
        if (seen[k] == i) {
          *err = {ChainError::kLoop, static_cast<uint16_t>(i), static_cast<uint16_t>(head), 0, 0};
          return false;
        }
      }
      walk->truncated = true;
      return true;
    }
    seen[n] = static_cast<uint16_t>(i);
    const uint64_t addr = vt[i].addr;
    const uint32_t len = vt[i].len;
    const uint16_t flags = vt[i].flags;
    const uint16_t next = vt[i].next;
    if (flags & NPA_VRING_DESC_F_INDIRECT) {
      *err = {ChainError::kIndirect, static_cast<uint16_t>(i), 0, addr, len};
      return false;
    }
    if ((flags & NPA_VRING_DESC_F_WRITE) != want_write) {
      *err = {ChainError::kWrongDirection, static_cast<uint16_t>(i), 0, addr, len};
      return false;
    }
    if (len != 0) {
      uint8_t* host = mem.GpaToHost(addr, len, hint);
      if (host == nullptr) {
        *err = {ChainError::kOutsideMemory, static_cast<uint16_t>(i), 0, addr, len};
        return false;
      }
      if (walk->nbufs < cap) {
        bufs[walk->nbufs++] = {host, len};
      } else {
        walk->truncated = true;
      }
      walk->total_len += len;
    }
    walk->ndesc = static_cast<uint16_t>(n + 1);
    if (!(flags & NPA_VRING_DESC_F_NEXT)) return true;
    if (next >= ring_size) {
      *err = {ChainError::kNextOutOfRange, static_cast<uint16_t>(i), next, 0, 0};
      return false;
    }
    i = next;
  }
}

bool SplitNetHdr(const ChainBuf* bufs, uint16_t nbufs, GuestFrame* frame) {
  auto* hdr = reinterpret_cast<uint8_t*>(&frame->hdr);
  uint32_t need = kNetHdrLen;
  uint16_t b = 0;
  uint32_t off = 0;
  // The header may share the first buffer with the frame (VERSION_1 implies
  // ANY_LAYOUT, §2.6.4) or be split over several buffers. The usual layouts
  // (header alone in the first buffer, or header + frame) take one
  // constant-size copy the compiler inlines instead of a libc memcpy call.
  if (nbufs > 0 && bufs[0].len >= kNetHdrLen) {
    std::memcpy(hdr, bufs[0].host, kNetHdrLen);
    need = 0;
    if (bufs[0].len == kNetHdrLen) {
      b = 1;
    } else {
      off = kNetHdrLen;
    }
  }
  while (need > 0) {
    if (b == nbufs) return false;
    const uint32_t take = bufs[b].len < need ? bufs[b].len : need;
    std::memcpy(hdr + (kNetHdrLen - need), bufs[b].host, take);
    need -= take;
    if (take == bufs[b].len) {
      ++b;
    } else {
      off = take;
    }
  }
  frame->nsegs = 0;
  frame->len = 0;
  for (; b < nbufs; ++b, off = 0) {
    if (frame->nsegs == kMaxFrameSegs) return false;
    const uint32_t l = bufs[b].len - off;
    frame->segs[frame->nsegs++] = {bufs[b].host + off, l};
    frame->len += l;
  }
  return true;
}

}  // namespace npa::agent
