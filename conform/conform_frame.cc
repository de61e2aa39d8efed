#include "conform/conform_frame.h"

#include <algorithm>
#include <cstring>

namespace npa::conform {

void FillFrame(uint8_t* p, size_t len, const uint8_t dst[6], const uint8_t src[6], uint32_t run,
               uint32_t seq) {
  memcpy(p, dst, 6);
  memcpy(p + 6, src, 6);
  p[12] = kFrameEtherType >> 8;
  p[13] = kFrameEtherType & 0xff;
  memcpy(p + 14, "NPAC", 4);
  memcpy(p + 18, &run, 4);
  memcpy(p + 22, &seq, 4);
  for (size_t i = kFrameHdr; i < len; i++) p[i] = static_cast<uint8_t>(seq + i);
}

FrameCheck CheckFrame(const uint8_t* p, size_t len, uint32_t run, uint32_t* seq) {
  if (len < kFrameHdr || p[12] != (kFrameEtherType >> 8) || p[13] != (kFrameEtherType & 0xff) ||
      memcmp(p + 14, "NPAC", 4) != 0)
    return FrameCheck::kNotOurs;
  uint32_t r;
  memcpy(&r, p + 18, 4);
  if (r != run) return FrameCheck::kNotOurs;
  memcpy(seq, p + 22, 4);
  for (size_t i = kFrameHdr; i < len; i++)
    if (p[i] != static_cast<uint8_t>(*seq + i)) return FrameCheck::kCorrupt;
  return FrameCheck::kIntact;
}

size_t LinearizeFrame(const npa_buf* b, uint8_t* out, size_t cap) {
  size_t n = 0;
  for (int k = 0; b != nullptr && k < 64; k++, b = b->next) {
    const size_t l = std::min<size_t>(b->data_len, cap - n);
    memcpy(out + n, npa_buf_data(b), l);
    n += l;
  }
  return n;
}

}  // namespace npa::conform
