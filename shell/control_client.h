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
//
// Migration and agent restart (docs/migration.md, shell/reconnect.h): the
// session hooks (SetSessionHooks) answer MigratePrepare with MigrateReady,
// take MigrateAbort and MigrateCommit, and are told when the session ended
// by EOF, a read error or Bye (`lost`: the agent died or restarted). Any of
// them may replace the session in place on the control thread: Disconnect()
// closes the socket, Reconnect() connects to a path, says Hello (with
// Hello.resume) and takes the Welcome and its vhost-user fd; the thread,
// the watches and the hooks stay. Without hooks a MigratePrepare is answered
// with an error, a MigrateAbort/Commit ends the session, and a lost session
// is an NPA_EVENT_ERROR as before. An Error from the agent, or a protocol
// violation of its frames, is never retried: the agent meant it.
#ifndef NPA_SHELL_CONTROL_CLIENT_H_
#define NPA_SHELL_CONTROL_CLIENT_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
    // Set when coming back with rings intact (control.proto Hello.resume).
    std::optional<control::Resume> resume;
  };
  struct Welcome {
    uint64_t guest_id = 0;
    std::array<uint8_t, 6> mac{};
    uint32_t mtu = 1500;
    uint32_t max_queue_pairs = 0;
    bool link_up = false;
    std::string agent_name;
    bool rss_spread = false;  // the agent takes RssConfig (reconnect.h SendRssConfig)
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

  // What the migration / restart side answers (shell/reconnect.h). prepare
  // returns the MigrateReady to send; abort and commit return false when the
  // session is over (commit: nothing could be reached, the rings are kept);
  // lost is called once the session ended by EOF, a read error or Bye, with
  // why, and returns true if it reconnected (Reconnect) or will reconnect
  // from a watch (AwaitReconnect) so the thread goes on, false to end it.
  struct SessionHooks {
    std::function<control::MigrateReady(const control::MigratePrepare&)> prepare;
    std::function<bool(const control::MigrateAbort&)> abort;
    std::function<bool(const control::MigrateCommit&)> commit;
    std::function<bool(const std::string& why)> lost;
  };
  void SetSessionHooks(SessionHooks hooks) { session_hooks_ = std::move(hooks); }  // before Start

  absl::Status Start(EventQueue* events, StatsFn stats);
  void Stop();  // joins the thread; idempotent

  // Control thread only (inside a hook or a watch callback): call cb on the
  // control thread whenever fd is readable (level-triggered: cb must drain
  // it or Unwatch it). The fd stays owned by the caller.
  absl::Status Watch(int fd, std::function<void()> cb);
  void Unwatch(int fd);
  // Any thread.
  absl::Status Send(control::Envelope env, std::span<const int> fds = {});

  // Control thread only (inside a session hook). Disconnect closes the
  // session's socket (the agent sees EOF); Sends fail until Reconnect.
  // Reconnect tries `path` once (no waiting for the socket to appear: the
  // caller paces retries), says `hello`, waits up to timeout_ms for the
  // Welcome (its MAC must equal `expect_mac` when that is non-zero: a shell
  // cannot change its MAC under the application) and its vhost-user fd
  // (TakeVhostFd), and makes it the session the thread serves. On failure
  // the session stays disconnected.
  void Disconnect();
  absl::Status Reconnect(const std::string& path, const Hello& hello, int timeout_ms,
                         const std::array<uint8_t, 6>& expect_mac);
  // Control thread only (inside a session hook that returns true without a
  // session): the thread goes on serving its watches, one of them the
  // hook's retry timer, until a Reconnect succeeds. The shell on a VF does
  // this: its REQ and ERR eventfds must be served while no agent runs.
  void AwaitReconnect() { awaiting_ = true; }
  // Control thread: waits up to ms for Stop(); true if Stop() was called
  // (the caller must give up at once: the shell is closing).
  bool WaitForStop(int ms);
  // Set by the control thread; readable from any thread.
  void set_link_up(bool up) { link_up_.store(up, std::memory_order_relaxed); }

 private:
  explicit ControlClient(UniqueFd sock) : ch_(std::move(sock)) {}
  // Hello on ch, then the Welcome into *w and its fd into *vhost.
  static absl::Status DoHandshake(ControlChannel& ch, const Hello& hello, int timeout_ms,
                                  Welcome* w, UniqueFd* vhost);
  // The session ended by EOF, a read error or Bye: the lost hook, if any.
  // true: a new session is up.
  bool Lost(int err, const std::string& why);
  void Run();
  // false: the session is over.
  bool Handle(ControlFrame& f);
  void Fail(int err, const std::string& why);

  ControlChannel ch_;
  std::mutex send_mu_;  // ch_.Send from the control and application threads
  UniqueFd ep_;
  std::map<int, std::function<void()>> watches_;  // control thread only
  VfHooks hooks_;
  SessionHooks session_hooks_;
  Welcome welcome_;
  UniqueFd vhost_fd_;
  UniqueFd stop_fd_;
  std::thread thread_;
  EventQueue* events_ = nullptr;
  StatsFn stats_;
  std::atomic<bool> link_up_{false};
  uint64_t session_gen_ = 0;  // control thread: bumped when the session is replaced
  bool awaiting_ = false;     // control thread: no session, a watch reconnects (AwaitReconnect)
};

}  // namespace npa::shell

#endif  // NPA_SHELL_CONTROL_CLIENT_H_
