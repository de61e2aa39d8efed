// shell/control_client.h — the shell's side of the control session with
// npa-agent (npa/control.proto).
//
//   ControlClient::Hello h{.name = "guest0", .queue_pairs = 2};
//   NPA_ASSIGN_OR_RETURN(auto cc, ControlClient::Connect("/run/npa/a.ctl", h, 5000));
//   UniqueFd vhost = cc->TakeVhostFd();     // the Welcome's fd
//   cc->Start(&events, stats_fn);          // background thread from here on
//
// The background thread epolls the control fd and a stop eventfd. It turns
// LinkState into NPA_EVENT_LINK_CHANGED, Error/Bye/EOF/protocol violations
// into NPA_EVENT_ERROR (and ends the session), answers StatsRequest with
// StatsReply, declines VfOffer (no VF path yet; the offered fd is closed)
// and answers Revoke with RevokeDone.
#ifndef NPA_SHELL_CONTROL_CLIENT_H_
#define NPA_SHELL_CONTROL_CLIENT_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/control_codec.h"
#include "common/unique_fd.h"
#include "shell/event_queue.h"

namespace npa::shell {

class ControlClient {
 public:
  struct Hello {
    std::string name;
    std::array<uint8_t, 6> mac{};  // all zero: let the agent choose
    uint32_t queue_pairs = 1;
    uint64_t features = 0;
  };
  struct Welcome {
    uint64_t guest_id = 0;
    std::array<uint8_t, 6> mac{};
    uint32_t mtu = 1500;
    uint32_t max_queue_pairs = 0;
    bool link_up = false;
    std::string agent_name;
  };
  // Per-queue counters for StatsReply, gathered on the control thread.
  using StatsFn = std::function<std::vector<control::QueueCounters>()>;

  static absl::StatusOr<std::unique_ptr<ControlClient>> Connect(const std::string& path,
                                                                const Hello& hello,
                                                                int timeout_ms);
  // For tests and for fds already connected.
  static absl::StatusOr<std::unique_ptr<ControlClient>> Handshake(UniqueFd sock, const Hello& hello,
                                                                  int timeout_ms);
  ~ControlClient();

  const Welcome& welcome() const { return welcome_; }
  UniqueFd TakeVhostFd() { return std::move(vhost_fd_); }
  bool link_up() const { return link_up_.load(std::memory_order_relaxed); }

  absl::Status Start(EventQueue* events, StatsFn stats);
  void Stop();  // joins the thread; idempotent

 private:
  explicit ControlClient(UniqueFd sock) : ch_(std::move(sock)) {}
  void Run();
  // false: the session is over.
  bool Handle(ControlFrame& f);
  void Fail(int err, const std::string& why);

  ControlChannel ch_;
  Welcome welcome_;
  UniqueFd vhost_fd_;
  UniqueFd stop_fd_;
  std::thread thread_;
  EventQueue* events_ = nullptr;
  StatsFn stats_;
  std::atomic<bool> link_up_{false};
};

}  // namespace npa::shell

#endif  // NPA_SHELL_CONTROL_CLIENT_H_
