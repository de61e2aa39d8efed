#include "hypervisor/daemon/agent_events.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace npa::agent {
namespace {

AgentEvent Ev(EventKind k, const std::string& guest, uint64_t id = 1) {
  AgentEvent e;
  e.kind = k;
  e.guest = guest;
  e.guest_id = id;
  return e;
}

TEST(AgentEventsTest, SequenceNumbersAndTimesAreStampedInOrder) {
  AgentEvents ev(8);
  auto sub = ev.Subscribe(16);
  EXPECT_EQ(ev.Publish(Ev(EventKind::kGuestUp, "g1")), 1u);
  EXPECT_EQ(ev.Publish(Ev(EventKind::kVfAttach, "g1")), 2u);
  EXPECT_EQ(ev.Publish(Ev(EventKind::kGuestDown, "g1")), 3u);
  std::vector<AgentEvent> got;
  EXPECT_EQ(sub->Take(&got), 0u);
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < got.size(); i++) EXPECT_EQ(got[i].seq, i + 1);
  EXPECT_EQ(got[0].kind, EventKind::kGuestUp);
  EXPECT_EQ(got[2].kind, EventKind::kGuestDown);
  EXPECT_LE(got[0].mono_ns, got[1].mono_ns);
  EXPECT_LE(got[1].mono_ns, got[2].mono_ns);
  EXPECT_GT(got[0].unix_ms, 1600000000000ull);  // a real wall clock
  EXPECT_EQ(got[1].guest, "g1");
  got.clear();
  EXPECT_EQ(sub->Take(&got), 0u);
  EXPECT_TRUE(got.empty()) << "Take empties the queue";
  EXPECT_EQ(ev.last_seq(), 3u);
}

TEST(AgentEventsTest, ASubscriberSeesOnlyEventsAfterItSubscribed) {
  AgentEvents ev;
  ev.Publish(Ev(EventKind::kGuestUp, "early"));
  auto sub = ev.Subscribe(4);
  ev.Publish(Ev(EventKind::kGuestUp, "late"));
  std::vector<AgentEvent> got;
  sub->Take(&got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].guest, "late");
  EXPECT_EQ(got[0].seq, 2u);
}

TEST(AgentEventsTest, ASlowSubscriberLosesTheOldestAndIsToldHowMany) {
  AgentEvents ev;
  auto slow = ev.Subscribe(3);
  auto fast = ev.Subscribe(100);
  for (int i = 0; i < 10; i++) ev.Publish(Ev(EventKind::kVfReset, "g" + std::to_string(i)));
  std::vector<AgentEvent> got;
  EXPECT_EQ(slow->Take(&got), 7u);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].seq, 8u) << "the newest three are kept";
  EXPECT_EQ(got[2].seq, 10u);
  got.clear();
  EXPECT_EQ(fast->Take(&got), 0u) << "one slow reader costs the others nothing";
  EXPECT_EQ(got.size(), 10u);
  // The count restarts after it was reported.
  ev.Publish(Ev(EventKind::kVfReset, "x"));
  got.clear();
  EXPECT_EQ(slow->Take(&got), 0u);
  EXPECT_EQ(got.size(), 1u);
}

TEST(AgentEventsTest, TheHistoryRingIsBounded) {
  AgentEvents ev(4);
  for (int i = 0; i < 9; i++) ev.Publish(Ev(EventKind::kGuestUp, "g"));
  std::vector<AgentEvent> r = ev.Recent();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r.front().seq, 6u);
  EXPECT_EQ(r.back().seq, 9u);
}

TEST(AgentEventsTest, ListenersSeeEveryEventAndADroppedSubscriptionIsForgotten) {
  AgentEvents ev;
  std::vector<uint64_t> seen;
  uint64_t revoke_ns = 0;
  ev.AddListener([&](const AgentEvent& e) {
    seen.push_back(e.seq);
    if (e.kind == EventKind::kRevokeDone) revoke_ns = e.duration_ns;
  });
  auto sub = ev.Subscribe(2);
  std::weak_ptr<EventSubscription> weak = sub;
  sub.reset();
  EXPECT_TRUE(weak.expired()) << "the publisher holds no strong reference";
  AgentEvent e = Ev(EventKind::kRevokeDone, "g1");
  e.vf = "0000:03:00.1";
  e.duration_ns = 1234;
  ev.Publish(e);
  ev.Publish(Ev(EventKind::kFallback, "g1"));
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(revoke_ns, 1234u);
}

TEST(AgentEventsTest, PublishersOnSeveralThreadsKeepEachQueueInSequenceOrder) {
  AgentEvents ev(16);
  auto sub = ev.Subscribe(10000);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&] {
      for (int i = 0; i < 500; i++) ev.Publish(Ev(EventKind::kGuestUp, "g"));
    });
  for (auto& t : ts) t.join();
  std::vector<AgentEvent> got;
  EXPECT_EQ(sub->Take(&got), 0u);
  ASSERT_EQ(got.size(), 2000u);
  for (size_t i = 0; i < got.size(); i++) ASSERT_EQ(got[i].seq, i + 1);
}

TEST(AgentEventsTest, KindNamesAreStable) {
  EXPECT_STREQ(EventKindName(EventKind::kGuestUp), "guest_up");
  EXPECT_STREQ(EventKindName(EventKind::kRevokeDone), "revoke_done");
  EXPECT_STREQ(EventKindName(EventKind::kMigrationIn), "migration_in");
  EXPECT_STREQ(EventKindName(EventKind::kVfReleased), "vf_released");
}

}  // namespace
}  // namespace npa::agent
