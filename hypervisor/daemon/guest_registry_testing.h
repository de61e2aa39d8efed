// Test helper shared by the agent's guest-table tests: a shell guest
// (transport "control") moved through NEGOTIATING and READY to RUNNING, the
// way a Hello and a ready vhost-user back end take it there.
#ifndef NPA_HYPERVISOR_DAEMON_GUEST_REGISTRY_TESTING_H_
#define NPA_HYPERVISOR_DAEMON_GUEST_REGISTRY_TESTING_H_

#include <string>

#include "gtest/gtest.h"
#include "hypervisor/daemon/guest_registry.h"

namespace npa::agent {

inline Guest& RunningShellGuest(GuestRegistry& r, const std::string& name) {
  Guest& g = r.Add(r.NewId());
  g.name = name;
  g.transport = "control";
  g.mac = r.AssignMac();
  EXPECT_TRUE(g.Move(GuestState::kNegotiating).ok());
  EXPECT_TRUE(g.Move(GuestState::kReady).ok());
  EXPECT_TRUE(g.Move(GuestState::kRunning).ok());
  return g;
}

}  // namespace npa::agent

#endif  // NPA_HYPERVISOR_DAEMON_GUEST_REGISTRY_TESTING_H_
