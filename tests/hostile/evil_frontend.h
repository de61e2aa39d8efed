// tests/hostile/evil_frontend.h — a hostile vhost-user front end. Each attack
// brings a session up like a real guest (or not, for protocol attacks) and
// then breaks one rule. Used by hostile_test (two guests on one back end) and
// by the npa-evil-guest CLI against a running npa-agent.
//
//   auto fe = TestFrontend::Create(ConnectUnix(path), {}).value();
//   const Attack* a = FindAttack("desc-outside");
//   absl::Status s = a->run(*fe);   // OK = the attack was delivered
//   // then: the back end must close the session (kMessage) or mark the
//   // device broken and close it (kRing, once its dataplane polls the ring),
//   // or, for the legal-but-expensive attacks (kSurvive: long chains of
//   // zero-length descriptors, thousands of kick fd replacements), keep the
//   // session, serve it, and hold no more fds than before (run() checks
//   // with the probe given to SetFdProbe, and fails if they grew).
#ifndef NPA_TESTS_HOSTILE_EVIL_FRONTEND_H_
#define NPA_TESTS_HOSTILE_EVIL_FRONTEND_H_

#include <functional>
#include <string>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "tests/support/test_frontend.h"

namespace npa::agent::evil {

struct Attack {
  enum Kind { kMessage, kRing, kSurvive };
  const char* name;
  Kind kind;
  const char* expect;  // substring the back end's reason must contain
  // Delivers the attack. Attacks of kind kRing first complete a normal
  // handshake, so the back end must serve messages meanwhile.
  std::function<absl::Status(TestFrontend&)> run;
};

std::span<const Attack> Attacks();
// How many fds the back end holds now (the agent's /proc/PID/fd, or this
// process's own in-process). Unset: kSurvive attacks do not count fds.
void SetFdProbe(std::function<int()> probe);
// Counts the entries of /proc/PID/fd (pid 0: this process); -1 on error.
int CountFds(int pid);
const Attack* FindAttack(const std::string& name);

}  // namespace npa::agent::evil

#endif  // NPA_TESTS_HOSTILE_EVIL_FRONTEND_H_
