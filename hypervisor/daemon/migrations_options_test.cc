// Migrations on its own (no control server): the options that bound its
// steps (handshake timeout, progress replies, the announce schedule) and the
// done hook. Two agents migrating a guest between them: migrations_test.cc.
#include "hypervisor/daemon/migrations.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "common/clock.h"

namespace npa::agent {
namespace {

// A guest of a standalone Migrations, walked to RUNNING along its table.
Guest& RunningGuest(GuestRegistry& reg, const std::string& name) {
  Guest& g = reg.Add(reg.NewId());
  g.name = name;
  g.transport = "control";
  g.mac = MacAddr{0x02, 0, 0, 0, 0, 0x42};
  std::vector<GuestState> path;
  EXPECT_TRUE(ShortestPath(g.lc.state(), GuestState::kRunning, &path).ok());
  for (GuestState n : path) EXPECT_TRUE(g.Move(n).ok());
  EXPECT_EQ(g.lc.state(), GuestState::kRunning);
  return g;
}

// The connect + TLS handshake to the destination has its own deadline
// (Options::handshake_timeout_ms, agent flag --migration-handshake-timeout),
// not the step timeout; the listener gets the same through listener_options().
TEST(MigrationsOptionsTest, HandshakeTimeoutBoundsTheConnect) {
  GuestRegistry reg("a");
  Guest& g = RunningGuest(reg, "g1");
  Migrations::Options o;
  o.handshake_timeout_ms = 12345;
  o.step_timeout_ms = 700;
  std::atomic<int> seen{-1};
  std::atomic<bool> replied{false};
  std::string answer;
  Migrations::Hooks h;
  h.reply = [&](const AdminWaiter&, control::Envelope rep) {
    answer = rep.admin_reply().has_error() ? rep.admin_reply().error().message() : "ok";
    replied = true;
  };
  Migrations m(o, &reg, nullptr,
               [&](const std::string&, int timeout_ms) -> absl::StatusOr<std::unique_ptr<MigrationPeer>> {
                 seen = timeout_ms;
                 return absl::UnavailableError("no such host here");
               },
               h);
  ASSERT_TRUE(m.Open().ok());
  EXPECT_EQ(m.listener_options().handshake_timeout_ms, 12345);
  control::Migrate req;
  req.set_to("192.0.2.1:7000");
  req.set_timeout_ms(60000);
  ASSERT_TRUE(m.Start(g, req, AdminWaiter{5, 1}).ok());
  for (int i = 0; i < 500 && !replied; i++) {  // bounded: 5 s
    m.OnWake();
    usleep(10000);
  }
  ASSERT_TRUE(replied);
  EXPECT_EQ(seen.load(), 12345);
  EXPECT_NE(answer.find("no such host here"), std::string::npos) << answer;
  EXPECT_EQ(g.lc.state(), GuestState::kRunning);
  // A migration's own timeout still bounds it.
  seen = -1;
  replied = false;
  req.set_timeout_ms(300);
  ASSERT_TRUE(m.Start(g, req, AdminWaiter{5, 2}).ok());
  for (int i = 0; i < 500 && !replied; i++) {
    m.OnWake();
    usleep(10000);
  }
  ASSERT_TRUE(replied);
  EXPECT_EQ(seen.load(), 300);
}

// migration_out does not depend on the npactl that asked: after it left
// (ForgetAdmin), the move still ends, the done hook runs once with the
// outcome, and no reply goes to the fd (a new session may have it).
TEST(MigrationsOptionsTest, DoneHookRunsWhenTheAskerLeft) {
  GuestRegistry reg("a");
  Guest& g = RunningGuest(reg, "g1");
  Migrations::Options o;
  int replies = 0, dones = 0;
  std::string outcome, guest;
  uint64_t guest_id = 0, duration_ns = 0;
  Migrations::Hooks h;
  h.reply = [&](const AdminWaiter&, control::Envelope) { replies++; };
  h.done = [&](uint64_t id, const std::string& name, uint64_t ns, const std::string& out) {
    dones++;
    guest_id = id;
    guest = name;
    duration_ns = ns;
    outcome = out;
  };
  Migrations m(o, &reg, nullptr,
               [&](const std::string&, int) -> absl::StatusOr<std::unique_ptr<MigrationPeer>> {
                 usleep(20000);
                 return absl::UnavailableError("no such host here");
               },
               h);
  ASSERT_TRUE(m.Open().ok());
  control::Migrate req;
  req.set_to("192.0.2.1:7000");
  req.set_timeout_ms(5000);
  ASSERT_TRUE(m.Start(g, req, AdminWaiter{5, 1}).ok());
  m.ForgetAdmin(5);  // npactl pressed ^C
  for (int i = 0; i < 500 && dones == 0; i++) {  // bounded: 5 s
    m.OnWake();
    usleep(10000);
  }
  ASSERT_EQ(dones, 1);
  EXPECT_EQ(replies, 0) << "the reply has nobody to go to";
  EXPECT_EQ(guest_id, g.id);
  EXPECT_EQ(guest, "g1");
  EXPECT_GE(duration_ns, 20'000'000u);
  EXPECT_EQ(outcome.rfind("failed: ", 0), 0u) << outcome;
  EXPECT_NE(outcome.find("no such host here"), std::string::npos) << outcome;
  EXPECT_EQ(g.lc.state(), GuestState::kRunning);
  for (int i = 0; i < 20; i++) {
    m.OnWake();
    usleep(1000);
  }
  EXPECT_EQ(dones, 1) << "once per move";
}

// Migrate.progress: each phase goes to npactl as it ends (an AdminReply with
// progress set, that one phase), then the final reply with every phase.
// Without it, only the final reply.
TEST(MigrationsOptionsTest, ProgressRepliesComeBeforeTheFinalOne) {
  for (bool progress : {true, false}) {
    GuestRegistry reg("a");
    Guest& g = RunningGuest(reg, "g1");
    std::vector<control::AdminReply> replies;
    Migrations::Hooks h;
    h.reply = [&](const AdminWaiter& w, control::Envelope rep) {
      EXPECT_EQ(w.seq, 7u);
      EXPECT_EQ(rep.seq(), 7u);
      replies.push_back(rep.admin_reply());
    };
    Migrations m(Migrations::Options{}, &reg, nullptr,
                 [&](const std::string&, int) -> absl::StatusOr<std::unique_ptr<MigrationPeer>> {
                   return absl::UnavailableError("no such host here");
                 },
                 h);
    ASSERT_TRUE(m.Open().ok());
    control::Migrate req;
    req.set_to("192.0.2.1:7000");
    req.set_progress(progress);
    ASSERT_TRUE(m.Start(g, req, AdminWaiter{5, 7}).ok());
    for (int i = 0; i < 500 && (replies.empty() || replies.back().progress()); i++) {
      m.OnWake();
      usleep(10000);
    }
    ASSERT_EQ(replies.size(), progress ? 2u : 1u) << progress;
    const control::AdminReply& last = replies.back();
    EXPECT_FALSE(last.progress());
    ASSERT_EQ(last.phases_size(), 1);
    EXPECT_EQ(last.phases(0).name(), "offer");
    EXPECT_TRUE(last.has_error());
    if (progress) {
      const control::AdminReply& first = replies.front();
      EXPECT_TRUE(first.progress());
      EXPECT_FALSE(first.has_error());
      ASSERT_EQ(first.phases_size(), 1);
      EXPECT_EQ(first.phases(0).name(), "offer");
      EXPECT_EQ(first.phases(0).detail(), last.phases(0).detail());
      EXPECT_NE(first.phases(0).detail().find("no such host here"), std::string::npos)
          << first.phases(0).detail();
    }
  }
}

// The one RARP schedule (AnnounceMac): at once plus one per gap, a newer
// announce replaces the older, CancelAnnounce and the guest's close clear it.
TEST(MigrationsOptionsTest, AnnounceScheduleIsReplacedAndCancelled) {
  GuestRegistry reg("a");
  Guest& g = RunningGuest(reg, "g1");
  Dataplane dp(Dataplane::Options{}, nullptr);  // no uplink: the sends fail quietly
  ASSERT_TRUE(dp.Start().ok());
  Migrations::Options o;
  o.rarp_gaps_ms = {40, 60, 80};
  Migrations m(o, &reg, &dp, nullptr, Migrations::Hooks{});
  ASSERT_TRUE(m.Open().ok());
  EXPECT_EQ(m.MsUntilNextDeadline(), -1);
  m.AnnounceMac(g);
  EXPECT_EQ(m.num_scheduled_announces(), 3u);
  EXPECT_GE(m.MsUntilNextDeadline(), 0);
  EXPECT_LE(m.MsUntilNextDeadline(), 40);
  m.AnnounceMac(g);
  EXPECT_EQ(m.num_scheduled_announces(), 3u) << "replaced, not added";
  m.CancelAnnounce(g);
  EXPECT_EQ(m.num_scheduled_announces(), 0u);
  m.AnnounceMac(g);
  m.OnGuestClosing(g, "test");
  EXPECT_EQ(m.num_scheduled_announces(), 0u);
  // Tick sends what is due and keeps the rest.
  m.AnnounceMac(g);
  const uint64_t t0 = MonotonicMs();
  while (m.num_scheduled_announces() > 0 && MonotonicMs() - t0 < 5000) {
    m.Tick();
    usleep(5000);
  }
  EXPECT_EQ(m.num_scheduled_announces(), 0u);
  dp.Stop();
}

}  // namespace
}  // namespace npa::agent
