// tests/support/fake_agent_test_util.h — TEST ONLY: the agent's side of a control
// session on a socketpair or a listening socket, driven step by step.
#ifndef NPA_TESTS_SUPPORT_FAKE_AGENT_TEST_UTIL_H_
#define NPA_TESTS_SUPPORT_FAKE_AGENT_TEST_UTIL_H_

#include <sys/eventfd.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "common/control_codec.h"
#include "common/unique_fd.h"

namespace npa::shell {

// Sends Welcome with `nfds` fds (each one end of a fresh socketpair; the
// other ends are kept in vhost_peer) after reading the Hello.
class FakeAgent {
 public:
  explicit FakeAgent(UniqueFd sock) : ch_(std::make_unique<ControlChannel>(std::move(sock))) {}
  absl::StatusOr<control::Envelope> ExpectHello() {
    auto f = ch_->ReceiveBlocking(3000);
    if (!f.ok()) return f.status();
    return f->env;
  }
  absl::Status Welcome(int nfds = 1, std::string mac = std::string("\x02\x00\x00\x00\x00\x07", 6),
                       bool rss_spread = false) {
    control::Envelope e;
    auto* w = e.mutable_welcome();
    w->set_guest_id(42);
    w->set_mac(mac);
    w->set_mtu(1500);
    w->set_max_queue_pairs(4);
    w->set_link_up(true);
    w->set_agent_name("fake");
    w->set_rss_spread(rss_spread);
    std::vector<int> fds;
    std::vector<UniqueFd> keep;
    for (int i = 0; i < nfds; i++) {
      int sv[2];
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
      fds.push_back(sv[0]);
      keep.emplace_back(sv[0]);
      vhost_peer.reset(sv[1]);
    }
    return ch_->Send(e, fds);
  }
  absl::Status Send(control::Envelope e, std::span<const int> fds = {}) { return ch_->Send(e, fds); }
  absl::StatusOr<ControlFrame> Receive(int timeout_ms = 3000) { return ch_->ReceiveBlocking(timeout_ms); }
  void Close() { ch_.reset(); }

  UniqueFd vhost_peer;

 private:
  std::unique_ptr<ControlChannel> ch_;
};

}  // namespace npa::shell

#endif  // NPA_TESTS_SUPPORT_FAKE_AGENT_TEST_UTIL_H_
