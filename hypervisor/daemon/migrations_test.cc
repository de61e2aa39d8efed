// Migrations: Hello.resume's ring check, and (below) two control servers in
// one process with a loopback between their migrations. Migrations' own
// options and hooks: migrations_options_test.cc.
#include "hypervisor/daemon/migrations.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/unix_socket.h"
#include "hypervisor/daemon/control_server.h"
#include "tests/support/fake_guest_port.h"

namespace npa::agent {
namespace {

control::Resume Rings(uint32_t qp) {
  control::Resume r;
  for (uint32_t v = 0; v < 2 * qp; v++) {
    auto* b = r.add_vrings();
    b->set_vring(v);
    b->set_next_avail(100 + v);
    b->set_used_idx(100 + v);
  }
  return r;
}

TEST(CheckResumeVringsTest, OnePerVringEachIn16Bits) {
  EXPECT_TRUE(CheckResumeVrings(Rings(2), 2).ok());
  EXPECT_TRUE(CheckResumeVrings(Rings(1), 2).ok());  // fewer pairs than allowed
  EXPECT_EQ(CheckResumeVrings(Rings(2), 1).message(),
            "hello.resume has 4 vrings; want 2 per queue pair, 2..2");
  control::Resume odd = Rings(1);
  odd.mutable_vrings()->RemoveLast();
  EXPECT_EQ(CheckResumeVrings(odd, 1).message(), "hello.resume has 1 vrings; want 2 per queue pair, 2..2");
  control::Resume r = Rings(1);
  r.mutable_vrings(1)->set_vring(0);
  EXPECT_EQ(CheckResumeVrings(r, 1).message(), "hello.resume lists vring 0 twice");
  r = Rings(1);
  r.mutable_vrings(1)->set_vring(2);
  EXPECT_EQ(CheckResumeVrings(r, 1).message(), "hello.resume vring 2 outside 0..1");
  r = Rings(1);
  r.mutable_vrings(0)->set_next_avail(65536);
  EXPECT_EQ(CheckResumeVrings(r, 1).message(), "hello.resume vring 0 index 65536 outside 0..65535");
}


// ------------------------------------------------------------------------
// Two agents in one process. A's migrations reach B's through a loopback
// MigrationPeer that calls B's DestinationHandler methods from A's worker
// thread, as the TLS listener's threads would; B's MigrationDone comes back
// through a mailbox. The shell is a test thread speaking the control
// protocol; the back ends are FakeGuestPorts (ready at once).

using control::Envelope;
using control::Error;

// B's MigrationDone messages, by migration id.
struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, control::MigrationDone> done;
  void Put(uint64_t id, bool resumed, const std::string& reason) {
    std::lock_guard<std::mutex> l(mu);
    auto& d = done[id];
    d.set_migration_id(id);
    d.set_resumed(resumed);
    d.set_reason(reason);
    cv.notify_all();
  }
};

struct Faults {
  std::atomic<bool> drop_on_commit{false};      // the channel breaks during the transfer
  std::atomic<bool> bogus_control_path{false};  // the shell cannot reach B after the commit
};

class LoopbackPeer : public MigrationPeer {
 public:
  LoopbackPeer(migration::DestinationHandler* b, Mailbox* mail, Faults* faults)
      : b_(b), mail_(mail), faults_(faults) {}
  ~LoopbackPeer() override {
    if (id_) b_->OnChannelClosed(id_, absl::CancelledError("source closed the channel"));
  }
  absl::StatusOr<control::MigrationAccept> Offer(const control::MigrationState& s, int) override {
    auto r = b_->OnOffer(s, "agent-a");
    if (r.ok()) {
      id_ = s.migration_id();
      if (faults_->bogus_control_path) r->set_control_path("/nonexistent/npa-b.sock");
    }
    return r;
  }
  absl::Status Commit(const control::MigrationState& s, int) override {
    if (faults_->drop_on_commit) return absl::UnavailableError("connection reset by peer");
    return b_->OnCommit(s);
  }
  absl::StatusOr<uint64_t> SendLateFrames(uint64_t id, std::vector<std::string> frames,
                                          uint64_t dropped, bool last) override {
    b_->OnLateFrames(id, std::move(frames), dropped, last);
    return 0;
  }
  absl::StatusOr<control::MigrationDone> AwaitDone(int timeout_ms) override {
    std::unique_lock<std::mutex> l(mail_->mu);
    if (!mail_->cv.wait_for(l, std::chrono::milliseconds(timeout_ms),
                            [&] { return mail_->done.count(id_) != 0; }))
      return absl::DeadlineExceededError("no MigrationDone");
    return mail_->done[id_];
  }

 private:
  migration::DestinationHandler* b_;
  Mailbox* mail_;
  Faults* faults_;
  uint64_t id_ = 0;
};

class Agent {
 public:
  Agent(const std::string& name, std::function<void(ControlServer::Options&)> tweak) {
    char tmpl[] = "/tmp/npa-mig-test.XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ControlServer::Options o;
    o.control_path = dir_ + "/agent.sock";
    o.agent_name = name;
    o.housekeeping_ms = 10;
    o.migration_grace_ms = 300;
    o.migration_hold_ms = 1500;
    if (tweak) tweak(o);
    PortFactory f = [this](UniqueFd conn, const VhostDevice::Options& opts)
        -> absl::StatusOr<std::unique_ptr<GuestPort>> {
      if (!conn.valid()) return absl::InvalidArgumentError("no connection");
      auto p = std::make_unique<FakeGuestPort>(opts.max_queue_pairs);
      p->SetReady(true);
      std::lock_guard<std::mutex> l(mu_);
      ports_[opts.name] = p.get();
      conns_.push_back(std::move(conn));  // keep the vhost-user socket open
      return std::unique_ptr<GuestPort>(std::move(p));
    };
    dp_ = std::make_unique<Dataplane>(Dataplane::Options{}, nullptr);
    EXPECT_TRUE(dp_->Start().ok());
    srv_ = std::make_unique<ControlServer>(o, dp_.get(), f);
    EXPECT_TRUE(srv_->Listen().ok());
  }
  void Run() {
    thread_ = std::thread([this] { EXPECT_TRUE(srv_->Run(&stop_).ok()); });
  }
  ~Agent() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    srv_.reset();
    dp_.reset();
    (void)!system(("rm -rf " + dir_).c_str());
  }
  control::AdminReply Admin(const control::AdminRequest& req, int timeout_ms = 10000) {
    auto s = ConnectUnix(srv_->admin_path(), 2000);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return {};
    ControlChannel ch(std::move(*s));
    Envelope e;
    *e.mutable_admin_request() = req;
    EXPECT_TRUE(ch.Send(e).ok());
    auto r = ch.ReceiveBlocking(timeout_ms);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || !r->env.has_admin_reply()) return {};
    return r->env.admin_reply();
  }
  control::AdminReply Guests() {
    control::AdminRequest r;
    r.mutable_list_guests();
    return Admin(r);
  }
  // The guest's state here, "" if it is not here.
  std::string StateOf(const std::string& guest) {
    const control::AdminReply r = Guests();
    for (const auto& g : r.guests())
      if (g.name() == guest) return g.state();
    return "";
  }
  bool WaitState(const std::string& guest, const std::string& want, int ms = 5000) {
    for (int i = 0; i < ms / 10; i++) {
      if (StateOf(guest) == want) return true;
      usleep(10000);
    }
    return false;
  }
  FakeGuestPort* Port(const std::string& guest) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = ports_.find(guest);
    return it == ports_.end() ? nullptr : it->second;
  }
  std::string ctl_path() const { return dir_ + "/agent.sock"; }
  ControlServer& srv() { return *srv_; }

 private:
  std::string dir_;
  std::unique_ptr<Dataplane> dp_;
  std::unique_ptr<ControlServer> srv_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, FakeGuestPort*> ports_;
  std::vector<UniqueFd> conns_;
};

// A shell speaking the control protocol for a move.
class FakeShell {
 public:
  enum class Mode { kFollow, kExitOnPrepare, kIgnorePrepare };
  FakeShell(std::string name, std::string mac, uint64_t features = 0)
      : name_(std::move(name)), mac_(std::move(mac)), features_(features) {
    for (uint32_t v = 0; v < 2; v++) {
      auto* b = rings_.add_vrings();
      b->set_vring(v);
      b->set_next_avail(1000 + v);
      b->set_used_idx(1000 + v);
    }
  }
  // Hello (resume with `ticket` if set), Welcome, LinkState.
  absl::Status Attach(const std::string& path, const std::string* ticket = nullptr) {
    auto s = ConnectUnix(path, 2000);
    if (!s.ok()) return s.status();
    ch_ = std::make_unique<ControlChannel>(std::move(*s));
    Envelope e;
    auto* h = e.mutable_hello();
    h->set_name(name_);
    h->set_mac(mac_);
    h->set_queue_pairs(1);
    h->set_features(features_);
    if (ticket) {
      h->mutable_resume()->set_ticket(*ticket);
      *h->mutable_resume()->mutable_vrings() = rings_.vrings();
    }
    if (absl::Status st = ch_->Send(e); !st.ok()) return st;
    auto w = ch_->ReceiveBlocking(2000);
    if (!w.ok()) return w.status();
    if (w->env.has_error()) return absl::UnknownError(w->env.error().message());
    if (!w->env.has_welcome()) return absl::UnknownError(BodyName(w->env));
    vhost_ = std::move(w->fds);
    return absl::OkStatus();
  }
  // Serves the migration messages until moved, aborted, or 10 s. Returns
  // what happened: "migrated", "returned", "aborted: <reason>", "exited", ...
  std::string Follow(Mode mode) {
    const uint64_t end = MonotonicMs() + 10000;
    while (MonotonicMs() < end) {
      auto f = ch_->ReceiveBlocking(100);
      if (!f.ok()) {
        if (absl::IsDeadlineExceeded(f.status())) continue;
        return absl::StrCat("session ended: ", f.status().message());
      }
      const Envelope& env = f->env;
      if (env.has_migrate_prepare()) {
        prepared = true;
        if (mode == Mode::kExitOnPrepare) {
          ch_.reset();
          vhost_.clear();
          return "exited";
        }
        if (mode == Mode::kIgnorePrepare) continue;
        if (on_prepare) on_prepare();
        Envelope r;
        r.mutable_migrate_ready()->set_migration_id(env.migrate_prepare().migration_id());
        *r.mutable_migrate_ready()->mutable_vrings() = rings_.vrings();
        if (!ch_->Send(r).ok()) return "send ready failed";
      } else if (env.has_migrate_abort()) {
        return absl::StrCat("aborted: ", env.migrate_abort().reason());
      } else if (env.has_migrate_commit()) {
        const control::MigrateCommit c = env.migrate_commit();
        ch_.reset();
        vhost_.clear();
        if (Attach(c.control_path(), &c.ticket()).ok()) return "migrated";
        if (absl::Status st = Attach(c.return_path(), &c.ticket()); st.ok()) return "returned";
        else return absl::StrCat("lost: ", st.message());
      }
    }
    return "timeout";
  }
  std::function<void()> on_prepare;
  std::atomic<bool> prepared{false};

 private:
  std::string name_, mac_;
  uint64_t features_;
  control::Resume rings_;
  std::unique_ptr<ControlChannel> ch_;
  std::vector<UniqueFd> vhost_;
};

const std::string kMac("\x02\x00\x00\x00\x0a\x01", 6);
const std::string kPeerMac("\x02\x00\x00\x00\x0a\x02", 6);

class MigrationsTest : public ::testing::Test {
 protected:
  void Make(std::function<void(ControlServer::Options&)> tweak_b = nullptr,
            std::function<void(ControlServer::Options&)> tweak_a = nullptr) {
    b_ = std::make_unique<Agent>("agent-b", tweak_b);
    b_->srv().migrations().set_send_done([this](uint64_t id, bool resumed, const std::string& why) {
      mail_.Put(id, resumed, why);
      return absl::OkStatus();
    });
    auto* bh = &b_->srv().migrations();
    a_ = std::make_unique<Agent>("agent-a", [&](ControlServer::Options& o) {
      o.migration_connector = [this, bh](const std::string& to, int)
          -> absl::StatusOr<std::unique_ptr<MigrationPeer>> {
        if (to != "agent-b:7000") return absl::UnavailableError("connection refused");
        return std::unique_ptr<MigrationPeer>(new LoopbackPeer(bh, &mail_, &faults_));
      };
      if (tweak_a) tweak_a(o);
    });
    a_->Run();
    b_->Run();
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
  }
  static control::AdminRequest Migrate(const std::string& guest, const std::string& to = "agent-b:7000") {
    control::AdminRequest r;
    r.mutable_migrate()->set_guest(guest);
    r.mutable_migrate()->set_to(to);
    r.mutable_migrate()->set_timeout_ms(8000);
    return r;
  }
  // The shell on A, RUNNING.
  void AttachOnA(FakeShell& sh, const std::string& name) {
    ASSERT_TRUE(sh.Attach(a_->ctl_path()).ok());
    ASSERT_TRUE(a_->WaitState(name, "RUNNING"));
  }
  static std::vector<std::string> PhaseNames(const control::AdminReply& r) {
    std::vector<std::string> v;
    for (const auto& p : r.phases()) v.push_back(p.name());
    return v;
  }

  Mailbox mail_;
  Faults faults_;
  std::unique_ptr<Agent> a_, b_;
};

TEST_F(MigrationsTest, MovesTheGuestAndItsLateFrames) {
  Make();
  FakeShell sh("g1", kMac);
  AttachOnA(sh, "g1");
  // A second guest on A sends frames to g1 while its rings are stopped: A
  // holds them, forwards them to B, B delivers them after the resume.
  FakeShell peer("peer", kPeerMac);
  AttachOnA(peer, "peer");
  const int kLate = 5;
  sh.on_prepare = [&] {
    FakeGuestPort* pp = a_->Port("peer");
    ASSERT_NE(pp, nullptr);
    for (int i = 0; i < kLate; i++) {
      std::vector<uint8_t> f(60, 0);  // to g1, from peer, ethertype 0x88b5
      memcpy(f.data(), kMac.data(), 6);
      memcpy(f.data() + 6, kPeerMac.data(), 6);
      f[12] = 0x88, f[13] = 0xb5;
      f.back() = static_cast<uint8_t>(0xa0 + i);
      pp->GuestSend(0, f);
    }
    usleep(50000);  // the dataplane switches them into the hold
  };
  std::string outcome;
  std::thread shell([&] { outcome = sh.Follow(FakeShell::Mode::kFollow); });
  const control::AdminReply r = a_->Admin(Migrate("g1"));
  shell.join();
  EXPECT_EQ(outcome, "migrated");
  EXPECT_FALSE(r.has_error()) << r.error().message();
  EXPECT_EQ(PhaseNames(r), (std::vector<std::string>{"offer", "stop", "commit", "switch"}));
  EXPECT_EQ(r.migration_state(), "DONE");
  EXPECT_NE(r.message().find("migrated to agent-b"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find(absl::StrCat(kLate, " forwarded, 0 lost")), std::string::npos) << r.message();
  EXPECT_EQ(b_->StateOf("g1"), "RUNNING");
  EXPECT_TRUE(a_->WaitState("g1", ""));  // A let it go
  FakeGuestPort* bp = b_->Port("g1");
  ASSERT_NE(bp, nullptr);
  std::vector<std::vector<uint8_t>> got;
  for (int i = 0; i < 200 && got.size() < static_cast<size_t>(kLate); i++) {
    got = bp->GuestReceived();
    usleep(10000);
  }
  ASSERT_EQ(got.size(), static_cast<size_t>(kLate));  // each once, in order
  for (int i = 0; i < kLate; i++) EXPECT_EQ(got[i].back(), 0xa0 + i);
  EXPECT_EQ(b_->srv().migrations().num_destinations() + a_->srv().migrations().num_sources(), 0u);
  // B's migration_in carries the time from its reservation to the resume
  // (the destination's migration histogram is fed from it).
  bool seen = false;
  for (const AgentEvent& e : b_->srv().events().Recent()) {
    if (e.kind != EventKind::kMigrationIn) continue;
    seen = true;
    EXPECT_EQ(e.guest, "g1");
    EXPECT_GT(e.duration_ns, 0u);
    EXPECT_LT(e.duration_ns, 60'000'000'000ull);
  }
  EXPECT_TRUE(seen) << "no migration_in on B";
}

TEST_F(MigrationsTest, DestinationWithoutAFreeSlotRefusesAndTheGuestStays) {
  Make([](ControlServer::Options& o) { o.max_guests = 1; });
  FakeShell other("resident", std::string("\x02\x00\x00\x00\x0b\x01", 6));
  ASSERT_TRUE(other.Attach(b_->ctl_path()).ok());
  FakeShell sh("g1", kMac);
  AttachOnA(sh, "g1");
  const control::AdminReply r = a_->Admin(Migrate("g1"));
  EXPECT_EQ(r.error().code(), Error::BUSY);
  EXPECT_NE(r.error().message().find("no free guest slot"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("the guest runs on this agent"), std::string::npos);
  EXPECT_EQ(r.migration_state(), "RUNNING");
  EXPECT_FALSE(sh.prepared);  // never stopped
  EXPECT_EQ(a_->StateOf("g1"), "RUNNING");
  EXPECT_EQ(b_->StateOf("g1"), "");
}

TEST_F(MigrationsTest, DestinationRefusesFeaturesItCannotServe) {
  Make([](ControlServer::Options& o) { o.migration_offloads = 0x1; });
  FakeShell sh("g1", kMac, /*features=*/0x6);
  AttachOnA(sh, "g1");
  const control::AdminReply r = a_->Admin(Migrate("g1"));
  EXPECT_EQ(r.error().code(), Error::BUSY);
  EXPECT_NE(r.error().message().find("not supported"), std::string::npos) << r.error().message();
  EXPECT_EQ(a_->StateOf("g1"), "RUNNING");
  EXPECT_EQ(b_->StateOf("g1"), "");
}

TEST_F(MigrationsTest, UnreachableDestinationIsRefusedAndNothingChanges) {
  Make();
  FakeShell sh("g1", kMac);
  AttachOnA(sh, "g1");
  const control::AdminReply r = a_->Admin(Migrate("g1", "elsewhere:7000"));
  EXPECT_NE(r.error().message().find("connect to elsewhere:7000: connection refused"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(a_->StateOf("g1"), "RUNNING");
}

TEST_F(MigrationsTest, ChannelDroppedDuringTheTransferKeepsTheGuestOnA) {
  Make();
  faults_.drop_on_commit = true;
  FakeShell sh("g1", kMac);
  AttachOnA(sh, "g1");
  std::string outcome;
  std::thread shell([&] { outcome = sh.Follow(FakeShell::Mode::kFollow); });
  const control::AdminReply r = a_->Admin(Migrate("g1"));
  shell.join();
  EXPECT_EQ(r.error().code(), Error::BUSY);
  EXPECT_NE(r.error().message().find("aborted in STOP_COPY"), std::string::npos) << r.error().message();
  EXPECT_NE(outcome.find("aborted: commit at agent-b:7000: connection reset by peer"), std::string::npos)
      << outcome;
  EXPECT_EQ(a_->StateOf("g1"), "RUNNING");
  // B's reservation went with the channel.
  EXPECT_TRUE(b_->WaitState("g1", ""));
}

TEST_F(MigrationsTest, ShellThatCannotReachTheDestinationComesBackToA) {
  Make();
  faults_.bogus_control_path = true;
  FakeShell sh("g1", kMac);
  AttachOnA(sh, "g1");
  std::string outcome;
  std::thread shell([&] { outcome = sh.Follow(FakeShell::Mode::kFollow); });
  const control::AdminReply r = a_->Admin(Migrate("g1"));
  shell.join();
  EXPECT_EQ(outcome, "returned");
  EXPECT_NE(r.error().message().find("came back: it resumes on this agent"), std::string::npos)
      << r.error().message();
  EXPECT_TRUE(a_->WaitState("g1", "RUNNING"));
  // B's reservation is freed when its hold ends.
  EXPECT_TRUE(b_->WaitState("g1", "", 4000));
}

TEST_F(MigrationsTest, GuestExitingMidMigrationAbortsAndFreesBoth) {
  Make();
  FakeShell sh("g1", kMac);
  AttachOnA(sh, "g1");
  std::string outcome;
  std::thread shell([&] { outcome = sh.Follow(FakeShell::Mode::kExitOnPrepare); });
  const control::AdminReply r = a_->Admin(Migrate("g1"));
  shell.join();
  EXPECT_EQ(outcome, "exited");
  EXPECT_NE(r.error().message().find("the guest went away"), std::string::npos) << r.error().message();
  EXPECT_TRUE(a_->WaitState("g1", ""));
  EXPECT_TRUE(b_->WaitState("g1", ""));
}

TEST_F(MigrationsTest, ShellThatNeverAnswersPrepareIsAbortedAtItsDeadline) {
  Make();
  FakeShell sh("g1", kMac);
  AttachOnA(sh, "g1");
  std::string outcome;
  std::thread shell([&] { outcome = sh.Follow(FakeShell::Mode::kIgnorePrepare); });
  const control::AdminReply r = a_->Admin(Migrate("g1"));
  EXPECT_NE(r.error().message().find("did not answer migrate_prepare"), std::string::npos)
      << r.error().message();
  shell.join();
  EXPECT_NE(outcome.find("aborted"), std::string::npos) << outcome;
  EXPECT_EQ(a_->StateOf("g1"), "RUNNING");
}

TEST_F(MigrationsTest, UnknownGuestIllegalStatesAndRequests) {
  Make();
  EXPECT_EQ(a_->Admin(Migrate("nobody")).error().code(), Error::NOT_FOUND);
  FakeShell sh("g1", kMac);
  AttachOnA(sh, "g1");
  EXPECT_NE(a_->Admin(Migrate("g1", "no-port")).error().message().find("is not HOST:PORT"),
            std::string::npos);
  // MigrateReady without a migration: UNEXPECTED, named.
  auto s = ConnectUnix(a_->ctl_path(), 2000);
  ASSERT_TRUE(s.ok());
  ControlChannel ch(std::move(*s));
  Envelope h;
  h.mutable_hello()->set_name("g2");
  h.mutable_hello()->set_queue_pairs(1);
  ASSERT_TRUE(ch.Send(h).ok());
  ASSERT_TRUE(ch.ReceiveBlocking(2000).ok());  // welcome
  ASSERT_TRUE(ch.ReceiveBlocking(2000).ok());  // link
  Envelope ready;
  ready.mutable_migrate_ready()->set_migration_id(77);
  ASSERT_TRUE(ch.Send(ready).ok());
  auto e = ch.ReceiveBlocking(2000);
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->env.has_error());
  EXPECT_EQ(e->env.error().code(), Error::UNEXPECTED);
  EXPECT_NE(e->env.error().message().find("migrate_ready for migration 77 is not legal for guest 'g2'"),
            std::string::npos)
      << e->env.error().message();
}

TEST_F(MigrationsTest, HelloResumeTicketsAndAgentRestart) {
  Make();
  // An unknown ticket.
  FakeShell stray("g9", kMac);
  const std::string bogus(kTicketLen, 'x');
  absl::Status st = stray.Attach(b_->ctl_path(), &bogus);
  EXPECT_NE(st.message().find("matches no migration"), std::string::npos) << st;
  // No ticket: a shell whose agent died resumes its rings as a new guest.
  auto s = ConnectUnix(b_->ctl_path(), 2000);
  ASSERT_TRUE(s.ok());
  ControlChannel ch(std::move(*s));
  Envelope h;
  h.mutable_hello()->set_name("survivor");
  h.mutable_hello()->set_queue_pairs(1);
  *h.mutable_hello()->mutable_resume() = Rings(1);
  ASSERT_TRUE(ch.Send(h).ok());
  auto w = ch.ReceiveBlocking(2000);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->env.has_welcome()) << BodyName(w->env);
  EXPECT_TRUE(b_->WaitState("survivor", "RUNNING"));
  // Bad rings: refused, named.
  auto s2 = ConnectUnix(b_->ctl_path(), 2000);
  ASSERT_TRUE(s2.ok());
  ControlChannel ch2(std::move(*s2));
  h.mutable_hello()->set_name("survivor2");
  h.mutable_hello()->mutable_resume()->mutable_vrings(1)->set_used_idx(70000);
  ASSERT_TRUE(ch2.Send(h).ok());
  auto e = ch2.ReceiveBlocking(2000);
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(e->env.has_error());
  EXPECT_EQ(e->env.error().code(), Error::MALFORMED);
  EXPECT_EQ(e->env.error().message(), "hello.resume vring 1 index 70000 outside 0..65535");
}

}  // namespace
}  // namespace npa::agent
