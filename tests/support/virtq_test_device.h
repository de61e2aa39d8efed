// tests/support/virtq_test_device.h — TEST ONLY: the device side of a split ring in
// the same process, so virtq tests (and the microbenchmark) need no back end.
//
//   TestDevice dev(tx.addrs(), tx.size());
//   std::vector<std::vector<uint8_t>> frames = dev.PopTx(32);   // with header
//   dev.CompleteAll();                                           // used ring
//
// Implements VIRTIO 1.x 2.7.13-2.7.14 from the device's point of view, with
// knobs to misbehave (complete out of order, write bad ids).
#ifndef NPA_TESTS_SUPPORT_VIRTQ_TEST_DEVICE_H_
#define NPA_TESTS_SUPPORT_VIRTQ_TEST_DEVICE_H_

#include <cstdint>
#include <cstring>
#include <vector>

#include "npa/virtio_ring.h"
#include "shell/emulated/virtq.h"

namespace npa::shell {

class TestDevice {
 public:
  TestDevice(const VringAddrs& a, uint16_t size)
      : desc_(reinterpret_cast<npa_vring_desc*>(a.desc)),
        avail_(reinterpret_cast<npa_vring_avail*>(a.avail)),
        used_(reinterpret_cast<npa_vring_used*>(a.used)),
        size_(size) {}

  uint16_t AvailPending() const {
    return static_cast<uint16_t>(__atomic_load_n(&avail_->idx, __ATOMIC_ACQUIRE) - last_avail_);
  }
  void SetNoNotify(bool on) { used_->flags = on ? NPA_VRING_USED_F_NO_NOTIFY : 0; }
  uint16_t avail_flags() const { return avail_->flags; }

  // Reads up to n chains from the avail ring (driver->device buffers):
  // returns their concatenated bytes; heads kept for completion.
  std::vector<std::vector<uint8_t>> PopTx(uint16_t n) {
    std::vector<std::vector<uint8_t>> out;
    while (n-- && AvailPending()) {
      uint16_t head = avail_->ring[last_avail_++ & (size_ - 1)];
      std::vector<uint8_t> f;
      uint16_t d = head;
      for (int guard = 0; guard < size_; guard++) {
        const npa_vring_desc& x = desc_[d];
        auto* p = reinterpret_cast<const uint8_t*>(x.addr);
        f.insert(f.end(), p, p + x.len);
        if (!(x.flags & NPA_VRING_DESC_F_NEXT)) break;
        d = x.next;
      }
      pending_.push_back({head, 0});
      out.push_back(std::move(f));
    }
    return out;
  }
  // Takes avail RX buffers and writes frame into them (header first, 12
  // bytes, with num_buffers). Spreads over several buffers if needed and
  // mergeable; returns false if not enough buffers.
  bool PushRx(const uint8_t* frame, uint32_t len, bool mergeable,
              const npa_virtio_net_hdr_mrg_rxbuf* hdr = nullptr) {
    std::vector<uint8_t> all(12 + len);
    npa_virtio_net_hdr_mrg_rxbuf h{};
    if (hdr) h = *hdr;
    memcpy(all.data() + 12, frame, len);
    uint32_t off = 0;
    std::vector<npa_vring_used_elem> elems;
    while (off < all.size()) {
      if (!AvailPending()) return false;
      uint16_t id = avail_->ring[last_avail_++ & (size_ - 1)];
      const npa_vring_desc& x = desc_[id];
      uint32_t k = std::min<uint32_t>(x.len, static_cast<uint32_t>(all.size() - off));
      memcpy(reinterpret_cast<void*>(x.addr), all.data() + off, k);
      elems.push_back({id, k});
      off += k;
      if (!mergeable && off < all.size()) return false;
    }
    h.num_buffers = static_cast<uint16_t>(elems.size());
    memcpy(reinterpret_cast<void*>(desc_[elems[0].id].addr), &h, 12);
    for (auto& e : elems) WriteUsed(e);
    Publish();
    return true;
  }
  // Completes pending TX chains (all, or in reverse order).
  void CompleteAll(bool reverse = false) {
    if (reverse)
      for (size_t i = pending_.size(); i-- > 0;) WriteUsed(pending_[i]);
    else
      for (auto& e : pending_) WriteUsed(e);
    pending_.clear();
    Publish();
  }
  // Raw used entry, for hostile-device tests.
  void WriteUsed(npa_vring_used_elem e) { used_->ring[used_idx_++ & (size_ - 1)] = e; }
  void Publish() { __atomic_store_n(&used_->idx, used_idx_, __ATOMIC_RELEASE); }
  void SetUsedIdx(uint16_t v) {
    used_idx_ = v;
    Publish();
  }

 private:
  npa_vring_desc* desc_;
  npa_vring_avail* avail_;
  npa_vring_used* used_;
  uint16_t size_;
  uint16_t last_avail_ = 0;
  uint16_t used_idx_ = 0;
  std::vector<npa_vring_used_elem> pending_;
};

}  // namespace npa::shell

#endif  // NPA_TESTS_SUPPORT_VIRTQ_TEST_DEVICE_H_
