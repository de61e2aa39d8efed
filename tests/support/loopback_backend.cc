#include "tests/support/loopback_backend.h"

#include <poll.h>
#include <unistd.h>

#include <utility>

namespace npa::shell {

absl::StatusOr<std::unique_ptr<LoopbackBackend>> LoopbackBackend::Create(UniqueFd conn,
                                                                         std::string name) {
  auto d = agent::VhostDevice::Create(std::move(conn), {.name = std::move(name)});
  if (!d.ok()) return d.status();
  return std::unique_ptr<LoopbackBackend>(new LoopbackBackend(std::move(*d)));
}

LoopbackBackend::LoopbackBackend(std::unique_ptr<agent::VhostDevice> dev)
    : dev_(std::move(dev)), thread_([this] { Run(); }) {}

LoopbackBackend::~LoopbackBackend() {
  stop_ = true;
  thread_.join();
}

void LoopbackBackend::Run() {
  bool open = true;
  while (!stop_) {
    pollfd p{dev_->fd(), POLLIN, 0};
    if (open && poll(&p, 1, 0) == 1 && !dev_->OnReadable().ok()) open = false;
    bool idle = true;
    for (uint16_t q = 0; open && q < dev_->num_queue_pairs(); q++) {
      if (!dev_->QueueReady(q)) continue;
      agent::GuestFrame f[32];
      uint16_t n = dev_->PeekTx(q, f, 32);
      if (n == 0) continue;
      idle = false;
      agent::PacketRef r[32];
      for (uint16_t i = 0; i < n; i++) r[i] = {nullptr, f[i].segs, f[i].nsegs, f[i].len};
      reflected_.fetch_add(dev_->EnqueueRx(q, r, n), std::memory_order_relaxed);
      dev_->ReleaseTx(q, n);
    }
    if (idle) usleep(50);
  }
}

}  // namespace npa::shell
