// tests/support/packed_test_device.h — TEST ONLY: the device side of a packed
// ring (VIRTIO 1.1 2.8) in the same process, for the shell's packed ring
// tests, its fuzzer and benchmark.
//
//   PackedTestDevice dev(tx.addrs(), tx.size());
//   auto chains = dev.Take(32);                 // available chains, in order
//   for (auto& ch : chains) dev.Complete(ch);   // used descriptors
//
// Knobs to misbehave: complete any id with any len, in any order, write raw
// flags (Raw).
#ifndef NPA_TESTS_SUPPORT_PACKED_TEST_DEVICE_H_
#define NPA_TESTS_SUPPORT_PACKED_TEST_DEVICE_H_

#include <cstdint>
#include <cstring>
#include <vector>

#include "npa/virtio_ring.h"
#include "shell/emulated/virtq.h"

namespace npa::shell {

class PackedTestDevice {
 public:
  struct Chain {
    uint16_t id = 0;
    uint16_t ndesc = 0;
    std::vector<uint8_t> bytes;  // device-readable buffers, concatenated
    uint64_t addr = 0;           // first buffer (device-writable for RX)
    uint32_t len = 0;            // its length
    bool write = false;
  };

  PackedTestDevice(const VringAddrs& a, uint16_t size)
      : desc_(reinterpret_cast<npa_vring_packed_desc*>(a.desc)),
        driver_(reinterpret_cast<npa_vring_packed_desc_event*>(a.avail)),
        device_(reinterpret_cast<npa_vring_packed_desc_event*>(a.used)),
        size_(size) {}

  // 2.8.1: available to us = AVAIL equals our avail wrap counter, USED not.
  bool AvailAt(uint16_t slot, bool wrap) const {
    const uint16_t f = __atomic_load_n(&desc_[slot].flags, __ATOMIC_ACQUIRE);
    return ((f & NPA_VRING_PACKED_F_AVAIL) != 0) == wrap && ((f & NPA_VRING_PACKED_F_USED) != 0) != wrap;
  }

  // Up to n available chains, in ring order.
  std::vector<Chain> Take(uint32_t n) {
    std::vector<Chain> out;
    while (out.size() < n && AvailAt(avail_, avail_wrap_)) {
      Chain ch;
      for (uint32_t guard = 0; guard < size_; guard++) {
        const npa_vring_packed_desc& d = desc_[avail_];
        if (ch.ndesc == 0) {
          ch.addr = d.addr;
          ch.len = d.len;
          ch.write = (d.flags & NPA_VRING_DESC_F_WRITE) != 0;
        }
        if (!(d.flags & NPA_VRING_DESC_F_WRITE)) {
          const auto* p = reinterpret_cast<const uint8_t*>(d.addr);
          ch.bytes.insert(ch.bytes.end(), p, p + d.len);
        }
        ch.id = d.id;  // 2.8.13: the last descriptor's id counts
        ch.ndesc++;
        const bool next = (d.flags & NPA_VRING_DESC_F_NEXT) != 0;
        if (++avail_ == size_) {
          avail_ = 0;
          avail_wrap_ = !avail_wrap_;
        }
        if (!next) break;
      }
      out.push_back(std::move(ch));
    }
    return out;
  }

  // One used descriptor at our used position (2.8.7): id, len, flags
  // AVAIL = USED = our used wrap counter stored last with release; the
  // position advances by the chain's descriptor count.
  void Complete(uint16_t id, uint32_t len, uint16_t ndesc) {
    npa_vring_packed_desc& d = desc_[used_];
    d.id = id;
    d.len = len;
    const uint16_t f = used_wrap_ ? (NPA_VRING_PACKED_F_AVAIL | NPA_VRING_PACKED_F_USED) : 0;
    __atomic_store_n(&d.flags, f, __ATOMIC_RELEASE);
    completed_++;
    for (uint16_t k = 0; k < ndesc; k++)
      if (++used_ == size_) {
        used_ = 0;
        used_wrap_ = !used_wrap_;
      }
  }
  void Complete(const Chain& ch, uint32_t len = 0) { Complete(ch.id, len, ch.ndesc); }

  // RX: the frame (12-byte header, num_buffers 1, + payload) into the
  // chain's buffer.
  void Fill(const Chain& ch, const uint8_t* frame, uint32_t len) {
    auto* p = reinterpret_cast<uint8_t*>(ch.addr);
    memset(p, 0, 12);
    p[10] = 1;  // num_buffers (5.1.6.4), read with MRG_RXBUF only
    memcpy(p + 12, frame, len);
    Complete(ch.id, 12 + len, ch.ndesc);
  }

  // Raw write of the slot at our used position (hostile tests); no advance.
  void Raw(uint16_t id, uint32_t len, uint16_t flags) {
    desc_[used_].id = id;
    desc_[used_].len = len;
    __atomic_store_n(&desc_[used_].flags, flags, __ATOMIC_RELEASE);
  }
  void Raw(uint16_t slot, uint16_t id, uint32_t len, uint16_t flags) {
    desc_[slot].id = id;
    desc_[slot].len = len;
    __atomic_store_n(&desc_[slot].flags, flags, __ATOMIC_RELEASE);
  }

  // The device's event suppression area (2.8.10): tells the driver when to kick.
  void SetEvent(uint16_t flags, uint16_t off_wrap = 0) {
    device_->off_wrap = off_wrap;
    __atomic_store_n(&device_->flags, flags, __ATOMIC_RELEASE);
  }
  const npa_vring_packed_desc_event& driver_event() const { return *driver_; }

  uint16_t used_pos() const { return used_; }
  bool used_wrap() const { return used_wrap_; }
  uint16_t avail_pos() const { return avail_; }
  bool avail_wrap() const { return avail_wrap_; }
  uint64_t completed() const { return completed_; }

 private:
  npa_vring_packed_desc* desc_;
  npa_vring_packed_desc_event* driver_;
  npa_vring_packed_desc_event* device_;
  uint16_t size_;
  uint16_t avail_ = 0, used_ = 0;
  bool avail_wrap_ = true, used_wrap_ = true;
  uint64_t completed_ = 0;
};

}  // namespace npa::shell

#endif  // NPA_TESTS_SUPPORT_PACKED_TEST_DEVICE_H_
