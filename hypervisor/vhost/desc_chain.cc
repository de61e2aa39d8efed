#include "hypervisor/vhost/desc_chain.h"

#include <algorithm>
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
    case kNotAvailable:
      return absl::StrFormat(
          "packed chain from slot %u continues into slot %u, which is not available", other, desc);
    case kUsedFlags:
      return absl::StrFormat(
          "packed slot %u has flags 0x%x: AVAIL and USED both equal the wrap counter (a used "
          "descriptor where the driver's next one belongs)",
          desc, len);
    case kTooLong:
      return absl::StrFormat("packed chain from slot %u is longer than %u descriptors", other,
                             kMaxChainDescs);
    case kPastFree:
      return absl::StrFormat(
          "packed chain from slot %u runs past the free part of the ring into slot %u", other,
          desc);
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

PackedWalk WalkPackedChain(const npa_vring_packed_desc* ring, uint32_t ring_size, uint32_t start,
                           bool wrap, uint32_t max_slots, const GuestMemory& mem, uint32_t* hint,
                           ChainDir dir, ChainBuf* bufs, uint16_t cap, ChainWalk* walk,
                           uint16_t* id, ChainError* err) {
  *walk = ChainWalk{0, 0, false, 0};
  if (max_slots == 0 || start >= ring_size) return PackedWalk::kEmpty;
  const volatile npa_vring_packed_desc* vr = ring;
  const uint16_t want_write = dir == ChainDir::kWritable ? NPA_VRING_DESC_F_WRITE : 0;
  const uint16_t head = static_cast<uint16_t>(start);
  uint32_t i = start;
  bool w = wrap;
  for (uint32_t n = 0;; ++n) {
    // Acquire on the flags: the descriptor's other fields (and, for the
    // head, the whole chain) were written before them (§2.8.21).
    const uint16_t flags = __atomic_load_n(&ring[i].flags, __ATOMIC_ACQUIRE);
    if (!PackedAvail(flags, w)) {
      if (n == 0) {
        // The slot the driver fills next can hold a descriptor it made
        // available a lap ago (AVAIL = USED's inverse = !wrap) or one the
        // device used a lap ago (both = !wrap); both = wrap is neither.
        const bool a = (flags & NPA_VRING_PACKED_F_AVAIL) != 0;
        const bool u = (flags & NPA_VRING_PACKED_F_USED) != 0;
        if (a == w && u == w) {
          *err = {ChainError::kUsedFlags, static_cast<uint16_t>(i), head, 0, flags};
          return PackedWalk::kError;
        }
        return PackedWalk::kEmpty;
      }
      *err = {ChainError::kNotAvailable, static_cast<uint16_t>(i), head, 0, 0};
      return PackedWalk::kError;
    }
    const uint64_t addr = vr[i].addr;
    const uint32_t len = vr[i].len;
    const uint16_t did = vr[i].id;
    if (flags & NPA_VRING_DESC_F_INDIRECT) {
      *err = {ChainError::kIndirect, static_cast<uint16_t>(i), 0, addr, len};
      return PackedWalk::kError;
    }
    if ((flags & NPA_VRING_DESC_F_WRITE) != want_write) {
      *err = {ChainError::kWrongDirection, static_cast<uint16_t>(i), 0, addr, len};
      return PackedWalk::kError;
    }
    if (len != 0) {
      uint8_t* host = mem.GpaToHost(addr, len, hint);
      if (host == nullptr) {
        *err = {ChainError::kOutsideMemory, static_cast<uint16_t>(i), 0, addr, len};
        return PackedWalk::kError;
      }
      if (walk->nbufs < cap) {
        bufs[walk->nbufs++] = {host, len};
      } else {
        walk->truncated = true;
      }
      walk->total_len += len;
    }
    walk->ndesc = static_cast<uint16_t>(n + 1);
    if (!(flags & NPA_VRING_DESC_F_NEXT)) {
      *id = did;
      return PackedWalk::kOk;
    }
    if (n + 1 == kMaxChainDescs) {
      *err = {ChainError::kTooLong, static_cast<uint16_t>(i), head, 0, 0};
      return PackedWalk::kError;
    }
    if (n + 1 == max_slots) {  // also caps the chain at the ring size
      *err = {ChainError::kPastFree, static_cast<uint16_t>((i + 1) % ring_size), head, 0, 0};
      return PackedWalk::kError;
    }
    if (++i == ring_size) {  // the chain crosses the end: the next lap's counter
      i = 0;
      w = !w;
    }
  }
}

uint32_t RxSource::CopyTo(uint8_t* dst, uint32_t len) {
  uint32_t done = 0;
  while (done < len && left > 0) {
    if (hdr_left > 0) {
      const uint32_t t = std::min(hdr_left, len - done);
      std::memcpy(dst + done, hdr + (kNetHdrLen - hdr_left), t);
      hdr_left -= t;
      done += t;
      left -= t;
      continue;
    }
    if (seg >= nsegs) {  // caller's len disagreed with its segments
      left = 0;
      break;
    }
    const size_t avail = segs[seg].iov_len - off;
    const uint32_t t = static_cast<uint32_t>(std::min<size_t>(avail, len - done));
    std::memcpy(dst + done, static_cast<const uint8_t*>(segs[seg].iov_base) + off, t);
    done += t;
    left -= t;
    off += t;
    if (off == segs[seg].iov_len) {
      ++seg;
      off = 0;
    }
  }
  return done;
}

uint8_t* StreamByte(const ChainBuf* bufs, uint16_t nbufs, uint32_t pos) {
  for (uint16_t i = 0; i < nbufs; ++i) {
    if (pos < bufs[i].len) return bufs[i].host + pos;
    pos -= bufs[i].len;
  }
  return nullptr;
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
