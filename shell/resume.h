// shell/resume.h — internal to the shell: how the emulated rings get a
// session again (reconnect.h says when). One attempt (Hello.resume, the
// vhost-user setup over the same regions and rings, RegionAnnounce), and
// the three ways attempts are repeated:
//   RunReconnect   RECONNECTING: each target every 50-100 ms for a budget;
//   RetryDetached  DETACHED: each target once a second until one takes the
//                  rings or the shell closes;
//   StartVfRetry   ON_VF: the same pacing, from a timerfd the control
//                  thread watches, so the VF's REQ and ERR stay served.
// Threads: the control thread only, with npa_shell::vf_mu held (`vl`); the
// loops drop it while they wait.
#ifndef NPA_SHELL_RESUME_H_
#define NPA_SHELL_RESUME_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "shell/shell_impl.h"

namespace npa::shell {

// Where RECONNECTING may go: a control socket and what it is, for logs and
// events ("destination 'b'", "the source (return path)", "the agent").
struct Target {
  std::string path;
  std::string what;
};

// Why one run of RECONNECTING started, and what it carries over.
struct ResumeRun {
  std::string ticket;             // 32 bytes after MigrateCommit, else empty
  // next_avail per vring: split, the avail index; packed, slot | wrap << 15
  // (npa_vring_packed_base, what GET/SET_VRING_BASE carry), so a resume
  // starts on the right lap.
  std::vector<uint16_t> base;
  uint32_t budget_ms = 0;         // per target
  uint64_t t0 = 0;                // MonotonicNs when the rings stopped
  bool migration = false;
  std::string agent_name;         // MigrateCommit.agent_name, for the event
};

// RECONNECTING's step: the targets in order, each for r.budget_ms. Fires
// kResumed or kResumeFailed when the machine is in RECONNECTING (on a VF
// it stays ON_VF either way). true: a session serves the rings again.
bool RunReconnect(npa_shell* sh, const std::vector<Target>& targets, const ResumeRun& r,
                  std::unique_lock<std::mutex>& vl);

// DETACHED: one attempt at each target a second, until one takes the rings
// or the shell closes. true: a session serves the rings again.
bool RetryDetached(npa_shell* sh, const std::vector<Target>& targets, ResumeRun r,
                   std::unique_lock<std::mutex>& vl);

// ON_VF after a lost session: starts the timer-driven attempts at `t`; the
// first comes at once. false: no timer could be made (the caller retries
// with RunReconnect instead).
bool StartVfRetry(npa_shell* sh, const Target& t, const ResumeRun& r);

}  // namespace npa::shell

#endif  // NPA_SHELL_RESUME_H_
