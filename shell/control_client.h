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
// StatsReply, and hands VfOffer / Revoke to the VF hooks (SetVfHooks; without
// hooks an offer is declined and its fd closed, a revoke answered at once).
// Hooks run on the control thread; they may Watch() more fds (the VFIO REQ
// and ERR eventfds) whose callbacks then run on the same thread, and Send()
// unsolicited messages. Send() is thread-safe (the application thread sends
// RegionAnnounce from npa_shell_configure).
#ifndef NPA_SHELL_CONTROL_CLIENT_H_
#define NPA_SHELL_CONTROL_CLIENT_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
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

  // What the VF path answers. offer: the VfOffer and its one fd (the VFIO
  // device fd, or an invalid fd when the frame carried none); returns the
  // VfAccept to send. revoke: returns the RevokeDone to send.
  struct VfHooks {
    std::function<control::VfAccept(const control::VfOffer&, UniqueFd)> offer;
    std::function<control::RevokeDone(const control::Revoke&)> revoke;
  };
  void SetVfHooks(VfHooks hooks) { hooks_ = std::move(hooks); }  // before Start

  absl::Status Start(EventQueue* events, StatsFn stats);
  void Stop();  // joins the thread; idempotent

  // Control thread only (inside a hook or a watch callback): call cb on the
  // control thread whenever fd is readable (level-triggered: cb must drain
  // it or Unwatch it). The fd stays owned by the caller.
  absl::Status Watch(int fd, std::function<void()> cb);
  void Unwatch(int fd);
  // Any thread.
  absl::Status Send(control::Envelope env, std::span<const int> fds = {});

 private:
  explicit ControlClient(UniqueFd sock) : ch_(std::move(sock)) {}
  void Run();
  // false: the session is over.
  bool Handle(ControlFrame& f);
  void Fail(int err, const std::string& why);

  ControlChannel ch_;
  std::mutex send_mu_;  // ch_.Send from the control and application threads
  UniqueFd ep_;
  std::map<int, std::function<void()>> watches_;  // control thread only
  VfHooks hooks_;
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
