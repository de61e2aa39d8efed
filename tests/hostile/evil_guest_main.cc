// npa-evil-guest — connects to a vhost-user back end (npa-agent or a test
// server) and runs one hostile attack per connection; passes when the back
// end closes every attacked session within the time limit (and never
// crashes: the next attack needs it alive to connect).
//
//   npa-evil-guest --socket PATH --attack NAME|all [--timeout-ms 5000]
//                  [--agent-pid PID] [--list]
//
// Attacks of kind "survive" (legal but expensive) pass when the back end
// keeps serving the session; with --agent-pid they also check that the
// agent's fd count (/proc/PID/fd) did not grow.
//
// Ring attacks need the back end's dataplane to poll the guest's rings (the
// agent does; the back end must then close the session).
#include <poll.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/unix_socket.h"
#include "tests/hostile/evil_frontend.h"

using npa::agent::TestFrontend;
namespace evil = npa::agent::evil;

namespace {

// Waits until the back end closes the connection (EOF or reset). Replies
// the back end sends (acks, nacks) are read and discarded.
bool WaitClosed(int fd, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      char buf[512];
      ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
    }
  }
  return false;
}

int RunOne(const std::string& path, const evil::Attack& a, int timeout_ms) {
  auto sock = npa::ConnectUnix(path, timeout_ms);
  if (!sock.ok()) {
    fprintf(stderr, "%s: cannot connect: %s\n", a.name, std::string(sock.status().message()).c_str());
    return 1;
  }
  auto fe = TestFrontend::Create(std::move(*sock), {});
  if (!fe.ok()) return 1;
  absl::Status s = a.run(**fe);
  if (a.kind == evil::Attack::kSurvive) {
    // Legal but expensive: the back end must keep serving the session, and
    // (with --agent-pid) hold no more fds than before.
    if (!s.ok()) {
      printf("FAIL %s: %s\n", a.name, std::string(s.message()).c_str());
      return 1;
    }
    if (WaitClosed((*fe)->sock(), 300)) {
      printf("FAIL %s: back end closed a legal session\n", a.name);
      return 1;
    }
    printf("ok   %s: served throughout, fds flat\n", a.name);
    return 0;
  }
  if (!s.ok()) {
    // The back end may legitimately close the session while the attack is
    // still being delivered (e.g. reject the header before the payload).
    fprintf(stderr, "%s: delivery ended early: %s\n", a.name, std::string(s.message()).c_str());
  }
  if (!WaitClosed((*fe)->sock(), timeout_ms)) {
    printf("FAIL %s: back end kept the session open for %d ms\n", a.name, timeout_ms);
    return 1;
  }
  printf("ok   %s: session closed by the back end\n", a.name);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, attack;
  int timeout_ms = 5000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--list") {
      for (const auto& x : evil::Attacks())
        printf("%s\t%s\n", x.name,
               x.kind == evil::Attack::kRing ? "ring" : x.kind == evil::Attack::kSurvive ? "survive" : "message");
      return 0;
    }
    if (i + 1 >= argc) break;
    if (a == "--socket") path = argv[++i];
    else if (a == "--attack") attack = argv[++i];
    else if (a == "--timeout-ms") timeout_ms = atoi(argv[++i]);
    else if (a == "--agent-pid") {
      const int pid = atoi(argv[++i]);
      evil::SetFdProbe([pid] { return evil::CountFds(pid); });
    }
  }
  if (path.empty() || attack.empty()) {
    fprintf(stderr, "usage: %s --socket PATH --attack NAME|all [--timeout-ms N] | --list\n", argv[0]);
    return 2;
  }
  int failed = 0, passed = 0;
  for (const auto& a : evil::Attacks()) {
    if (attack != "all" && attack != a.name) continue;
    if (RunOne(path, a, timeout_ms) == 0) ++passed; else ++failed;
  }
  if (passed + failed == 0) {
    fprintf(stderr, "unknown attack '%s' (see --list)\n", attack.c_str());
    return 2;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
