// tests/support/test_frontend.h — a raw vhost-user FRONT END for tests:
// the back end's unit tests, the two-guest hostile test and the
// npa-evil-guest CLI (tests/hostile/) drive VhostDevice / npa-agent with it.
//
// It owns one memfd region (gpa == uva == its own address, as DPDK's
// virtio-user and npa's shell do), lays out split rings in it, speaks the
// vhost-user messages byte by byte (so tests can also send malformed ones),
// and plays the guest driver: posts TX frames and RX buffers, reaps used
// entries. Not for production use: no error recovery, one thread.
//
//   auto fe = TestFrontend::Create(std::move(sock), {}).value();
//   ASSERT_OK(fe->Handshake());            // needs the back end served meanwhile
//   fe->SendFrame(0, "hello", 5);
//   std::string got; fe->RecvFrame(0, &got);
#ifndef NPA_TESTS_SUPPORT_TEST_FRONTEND_H_
#define NPA_TESTS_SUPPORT_TEST_FRONTEND_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "hypervisor/vhost/vhost_device.h"
#include "include/npa/vhost_user.h"
#include "npa/virtio_ring.h"

namespace npa::agent {

class TestFrontend {
 public:
  struct Config {
    uint32_t queue_size = 256;
    uint16_t queue_pairs = 1;
    size_t mem_size = 8u << 20;
    bool mergeable = true;
    bool protocol_features = true;  // negotiate F_PROTOCOL_FEATURES (+REPLY_ACK)
    bool use_call_fds = true;       // eventfds for call (else NOFD)
    uint32_t buf_size = 2048;       // bytes per descriptor buffer
    // Seal the memfd with F_SEAL_SHRINK | F_SEAL_GROW, as npa's shell does:
    // needed on a control-protocol guest's back end (require_sealed_memory).
    // Off = DPDK-like unsealed memory.
    bool seal_memory = false;
  };
  struct Reply {
    npa_vhost_user_hdr hdr;
    npa_vhost_user_payload payload;
  };

  static absl::StatusOr<std::unique_ptr<TestFrontend>> Create(UniqueFd sock, Config cfg);
  ~TestFrontend();

  // ---- raw protocol ----
  absl::Status SendRaw(const void* bytes, size_t len, std::span<const int> fds = {});
  absl::Status Send(uint32_t request, const void* payload, uint32_t size,
                    std::span<const int> fds = {}, uint32_t flags = NPA_VHOST_USER_VERSION);
  absl::StatusOr<Reply> Recv(int timeout_ms = 2000);
  // Send and wait for the reply (GET_* requests).
  absl::StatusOr<Reply> Call(uint32_t request, const void* payload, uint32_t size);
  // Full DPDK-like bring-up of every vring: SET_OWNER, features, protocol
  // features, SET_MEM_TABLE, per ring CALL/NUM/BASE/ADDR/KICK, ENABLE.
  // With REPLY_ACK negotiated every setter asks for an ack and checks it.
  absl::Status Handshake();
  // GET_VRING_BASE on a ring (stops it); returns the base.
  absl::StatusOr<uint32_t> GetVringBase(uint32_t index);

  // ---- guest driver ----
  // Queue one frame (len > 0) on qp's TX ring, split into buffers of
  // buf_size (header in its own descriptor if split_hdr). Kicks if the back
  // end wants kicks. false if the ring is full (reap first).
  bool SendFrame(uint16_t qp, const void* data, size_t len, bool split_hdr = false);
  // Reclaims TX descriptors the back end returned; returns how many chains.
  uint32_t ReapTx(uint16_t qp);
  // Post every free descriptor of qp's RX ring as a writable buffer.
  void FillRx(uint16_t qp);
  // Take one received frame (header stripped); false if none is ready.
  bool RecvFrame(uint16_t qp, std::string* frame, npa_virtio_net_hdr_v1* hdr = nullptr);

  // ---- raw ring access for hostile tests ----
  npa_vring_desc* desc(uint32_t vring) { return rings_[vring].desc; }
  npa_vring_avail* avail(uint32_t vring) { return rings_[vring].avail; }
  npa_vring_used* used(uint32_t vring) { return rings_[vring].used; }
  uint8_t* mem() { return mem_; }
  size_t mem_size() const { return cfg_.mem_size; }
  uint64_t gpa(const void* p) const { return reinterpret_cast<uint64_t>(p); }
  int memfd() const { return memfd_.get(); }
  int sock() const { return sock_.get(); }
  const Config& config() const { return cfg_; }
  uint64_t acked_features() const { return features_; }

 private:
  struct Ring {
    npa_vring_desc* desc;
    npa_vring_avail* avail;
    npa_vring_used* used;
    uint8_t* bufs;  // queue_size * buf_size
    std::vector<uint16_t> free;  // free descriptor indices
    std::vector<uint16_t> chain_len;  // per head: descriptors in its chain
    uint16_t avail_idx = 0;
    uint16_t last_used = 0;
    UniqueFd kick, call;
  };
  TestFrontend(UniqueFd sock, Config cfg) : sock_(std::move(sock)), cfg_(cfg) {}
  absl::Status SendAcked(uint32_t request, const void* payload, uint32_t size,
                         std::span<const int> fds = {});
  void Kick(Ring& r);

  UniqueFd sock_;
  Config cfg_;
  UniqueFd memfd_;
  uint8_t* mem_ = nullptr;
  std::vector<Ring> rings_;
  uint64_t features_ = 0;
  uint64_t protocol_ = 0;
};

// Plays the agent's control thread for tests: polls the devices' fds and
// calls OnReadable, remembering the first error of each (after which that
// device is no longer served, as the agent would close it).
class DevicePump {
 public:
  explicit DevicePump(std::vector<VhostDevice*> devs);
  ~DevicePump();  // stops and joins
  absl::Status status(size_t i) const;  // OK while the session is alive
  bool closed(size_t i) const { return !status(i).ok(); }

 private:
  void Run();
  std::vector<VhostDevice*> devs_;
  mutable std::mutex mu_;
  std::vector<absl::Status> status_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace npa::agent

#endif  // NPA_TESTS_SUPPORT_TEST_FRONTEND_H_
