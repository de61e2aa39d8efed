// tests/support/fake_guest_port.h — an in-memory GuestPort for tests (test-only;
// no production code includes it). Frames the test "guest" queues with
// GuestSend come out of PeekTx; frames the agent delivers with EnqueueRx are
// collected for GuestReceived. Thread-safe: the dataplane thread and the
// test thread use it at the same time.
#ifndef NPA_TESTS_SUPPORT_FAKE_GUEST_PORT_H_
#define NPA_TESTS_SUPPORT_FAKE_GUEST_PORT_H_

#include <atomic>
#include <deque>
#include <mutex>
#include <vector>

#include "hypervisor/daemon/guest_port.h"

namespace npa::agent {

class FakeGuestPort final : public GuestPort {
 public:
  explicit FakeGuestPort(uint16_t nq = 1, size_t rx_room = 1024) : nq_(nq), rx_room_(rx_room) {}

  // Test side.
  void SetReady(bool r) { ready_ = r; }
  void Break(const std::string& why) {
    std::lock_guard<std::mutex> l(mu_);
    reason_ = why;
    broken_ = true;
  }
  void GuestSend(uint16_t qp, std::vector<uint8_t> frame) {
    std::lock_guard<std::mutex> l(mu_);
    tx_[qp].push_back(std::move(frame));
  }
  std::vector<std::vector<uint8_t>> GuestReceived() {
    std::lock_guard<std::mutex> l(mu_);
    return rx_;
  }
  size_t tx_pending() {
    std::lock_guard<std::mutex> l(mu_);
    size_t n = 0;
    for (auto& q : tx_) n += q.size();
    return n;
  }
  std::atomic<int> idle_notify_calls{0};

  // GuestPort.
  int fd() const override { return -1; }
  absl::Status OnReadable() override { return absl::OkStatus(); }
  uint16_t num_queue_pairs() const override { return nq_; }
  bool QueueReady(uint16_t qp) const override { return ready_ && qp < nq_ && !broken_; }
  bool broken() const override { return broken_; }
  std::string broken_reason() const override {
    std::lock_guard<std::mutex> l(mu_);
    return reason_;
  }
  QueueCounters counters(uint16_t qp) const override {
    std::lock_guard<std::mutex> l(mu_);
    return qp < 16 ? c_[qp] : QueueCounters{};
  }
  uint64_t generation() const override { return 1; }
  uint16_t PeekTx(uint16_t qp, GuestFrame* out, uint16_t n) override {
    std::lock_guard<std::mutex> l(mu_);
    uint16_t k = 0;
    for (; k < n && k < tx_[qp].size(); k++) {
      auto& f = tx_[qp][k];
      out[k].hdr = {};
      out[k].len = static_cast<uint32_t>(f.size());
      out[k].nsegs = 1;
      out[k].head = k;
      out[k].segs[0] = {f.data(), f.size()};
    }
    return k;
  }
  void ReleaseTx(uint16_t qp, uint16_t n) override {
    std::lock_guard<std::mutex> l(mu_);
    for (uint16_t i = 0; i < n && !tx_[qp].empty(); i++) {
      c_[qp].tx_packets++;
      c_[qp].tx_bytes += tx_[qp].front().size();
      tx_[qp].pop_front();
    }
  }
  uint16_t EnqueueRx(uint16_t qp, const PacketRef* p, uint16_t n, RxFull full) override {
    std::lock_guard<std::mutex> l(mu_);
    uint16_t k = 0;
    for (; k < n && rx_.size() < rx_room_; k++) {
      std::vector<uint8_t> f;
      for (uint16_t s = 0; s < p[k].nsegs; s++) {
        auto* b = static_cast<const uint8_t*>(p[k].segs[s].iov_base);
        f.insert(f.end(), b, b + p[k].segs[s].iov_len);
      }
      c_[qp].rx_packets++;
      c_[qp].rx_bytes += f.size();
      rx_.push_back(std::move(f));
    }
    if (full == RxFull::kDrop) c_[qp].rx_dropped += n - k;
    return k;
  }
  std::vector<int> NotifyFds() override { return {}; }
  void SetIdleNotify(bool) override { idle_notify_calls++; }

 private:
  const uint16_t nq_;
  const size_t rx_room_;
  std::atomic<bool> ready_{false}, broken_{false};
  mutable std::mutex mu_;
  std::string reason_;
  std::deque<std::vector<uint8_t>> tx_[16];
  std::vector<std::vector<uint8_t>> rx_;
  QueueCounters c_[16] = {};
};

}  // namespace npa::agent

#endif  // NPA_TESTS_SUPPORT_FAKE_GUEST_PORT_H_
