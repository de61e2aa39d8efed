#include "hypervisor/daemon/control_server.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "common/clock.h"
#include "common/unix_socket.h"
#include "tests/support/fake_guest_port.h"

namespace npa::agent {
namespace {

using control::Envelope;
using control::Error;

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/npa-ctl-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/agent.sock";
    ControlServer::Options o;
    o.control_path = path_;
    o.agent_name = "test-agent";
    o.housekeeping_ms = 20;
    Tune(o);
    PortFactory f = [this](UniqueFd conn, const VhostDevice::Options& opts)
        -> absl::StatusOr<std::unique_ptr<GuestPort>> {
      if (!conn.valid()) return absl::InvalidArgumentError("no connection");
      auto p = std::make_unique<FakeGuestPort>(opts.max_queue_pairs);
      if (make_ready_) p->SetReady(true);
      std::lock_guard<std::mutex> l(mu_);
      ports_.push_back(p.get());
      return std::unique_ptr<GuestPort>(std::move(p));
    };
    dp_ = std::make_unique<Dataplane>(Dataplane::Options{}, nullptr);
    ASSERT_TRUE(dp_->Start().ok());
    srv_ = std::make_unique<ControlServer>(o, dp_.get(), f);
    ASSERT_TRUE(srv_->Listen().ok());
    thread_ = std::thread([this] { ASSERT_TRUE(srv_->Run(&stop_).ok()); });
  }
  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    srv_.reset();
    dp_.reset();
    EXPECT_NE(access(path_.c_str(), F_OK), 0) << "socket left behind";
    EXPECT_NE(access((path_ + ".admin").c_str(), F_OK), 0) << "admin socket left behind";
    rmdir(dir_.c_str());
  }

  virtual void Tune(ControlServer::Options&) {}
  ControlChannel Connect() {
    auto s = ConnectUnix(path_, 2000);
    EXPECT_TRUE(s.ok()) << s.status();
    return ControlChannel(std::move(*s));
  }
  static Envelope Hello(const std::string& name, const std::string& mac = "", uint32_t qp = 1) {
    Envelope e;
    e.mutable_hello()->set_name(name);
    e.mutable_hello()->set_mac(mac);
    e.mutable_hello()->set_queue_pairs(qp);
    e.mutable_hello()->set_pid(4242);
    return e;
  }
  // Expect an Error with this code, then the session closed by the agent.
  static void ExpectErrorThenClose(ControlChannel& ch, Error::Code code, const std::string& needle) {
    auto r = ch.ReceiveBlocking(2000);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->env.has_error()) << BodyName(r->env);
    EXPECT_EQ(r->env.error().code(), code) << r->env.error().message();
    EXPECT_NE(r->env.error().message().find(needle), std::string::npos) << r->env.error().message();
    auto eof = ch.ReceiveBlocking(2000);
    // A guest session (after Welcome) also gets a Bye before the close.
    if (eof.ok() && eof->env.has_bye()) eof = ch.ReceiveBlocking(2000);
    EXPECT_TRUE(absl::IsAborted(eof.status())) << eof.status();
  }
  static void SendRaw(const ControlChannel& ch, const std::string& bytes, std::span<const int> fds = {}) {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    ASSERT_TRUE(SendWithFds(ch.fd(), &iov, 1, fds).ok());
  }
  // npactl's socket: the control path + ".admin" by default.
  ControlChannel ConnectAdmin() {
    auto s = ConnectUnix(path_ + ".admin", 2000);
    EXPECT_TRUE(s.ok()) << s.status();
    return ControlChannel(std::move(*s));
  }
  control::AdminReply Admin(control::AdminRequest req) {
    ControlChannel ch = ConnectAdmin();
    Envelope e;
    *e.mutable_admin_request() = req;
    EXPECT_TRUE(ch.Send(e).ok());
    auto r = ch.ReceiveBlocking(2000);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->env.has_admin_reply());
    return r->env.admin_reply();
  }
  control::AdminReply ListGuests() {
    control::AdminRequest req;
    req.mutable_list_guests();
    return Admin(req);
  }
  // The server is still healthy: a fresh admin session gets an answer.
  void ExpectServerServes() { EXPECT_EQ(ListGuests().agent_name(), "test-agent"); }

  std::string dir_, path_;
  std::unique_ptr<Dataplane> dp_;
  std::unique_ptr<ControlServer> srv_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> make_ready_{false};
  std::mutex mu_;
  std::vector<FakeGuestPort*> ports_;
};

TEST_F(ControlServerTest, HelloGetsWelcomeWithOneFdAndLinkState) {
  ControlChannel ch = Connect();
  ASSERT_TRUE(ch.Send(Hello("guest0", "", 2)).ok());
  auto w = ch.ReceiveBlocking(2000);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE(w->env.has_welcome()) << BodyName(w->env);
  const auto& wel = w->env.welcome();
  EXPECT_GE(wel.guest_id(), 1u);
  ASSERT_EQ(wel.mac().size(), 6u);
  EXPECT_EQ(static_cast<uint8_t>(wel.mac()[0]), 0x02);  // locally administered unicast
  EXPECT_EQ(wel.mtu(), 1500u);
  EXPECT_EQ(wel.max_queue_pairs(), 2u);
  EXPECT_TRUE(wel.link_up());
  EXPECT_EQ(wel.agent_name(), "test-agent");
  ASSERT_EQ(w->fds.size(), 1u);
  EXPECT_TRUE(w->fds[0].valid());
  auto link = ch.ReceiveBlocking(2000);
  ASSERT_TRUE(link.ok());
  ASSERT_TRUE(link->env.has_link());
  EXPECT_TRUE(link->env.link().up());

  auto r = ListGuests();
  ASSERT_EQ(r.guests_size(), 1);
  EXPECT_EQ(r.guests(0).name(), "guest0");
  EXPECT_EQ(r.guests(0).transport(), "control");
  EXPECT_EQ(r.guests(0).state(), "NEGOTIATING");
  EXPECT_EQ(r.guests(0).pid(), 4242u);
  EXPECT_EQ(r.guests(0).queue_pairs(), 2u);

  // The guest leaves: it disappears from the list.
  ch = ControlChannel(UniqueFd());
  for (int i = 0; i < 100 && ListGuests().guests_size() != 0; i++) usleep(10000);
  EXPECT_EQ(ListGuests().guests_size(), 0);
}

// RssConfig: the Welcome says the agent takes it; a bad one gets MALFORMED
// naming the field and the guest's session goes on; a good one is taken
// without an answer.
TEST_F(ControlServerTest, RssConfigIsCheckedAndABadOneKeepsTheSession) {
  ControlChannel ch = Connect();
  ASSERT_TRUE(ch.Send(Hello("rss0", "", 2)).ok());
  auto w = ch.ReceiveBlocking(2000);
  ASSERT_TRUE(w.ok() && w->env.has_welcome());
  EXPECT_TRUE(w->env.welcome().rss_spread());
  ASSERT_TRUE(ch.ReceiveBlocking(2000).ok());  // link state
  Envelope bad;
  bad.set_seq(77);
  auto* c = bad.mutable_rss_config();
  c->set_key(std::string(40, 'k'));
  c->set_hash_types(1);
  for (int i = 0; i < 4; i++) c->add_table(i);  // queues 2 and 3: the guest has 2
  ASSERT_TRUE(ch.Send(bad).ok());
  auto e = ch.ReceiveBlocking(2000);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE(e->env.has_error()) << BodyName(e->env);
  EXPECT_EQ(e->env.seq(), 77u);
  EXPECT_EQ(e->env.error().code(), Error::MALFORMED);
  EXPECT_EQ(e->env.error().message(),
            "guest 'rss0': rss_config.table[2] is queue 2; the guest has 2 queue pairs");
  Envelope good = bad;
  good.set_seq(78);
  for (int i = 0; i < 4; i++) good.mutable_rss_config()->set_table(i, i % 2);
  ASSERT_TRUE(ch.Send(good).ok());
  // No answer to a good one; the session still serves (stats answer).
  Envelope st;
  st.set_seq(79);
  st.mutable_stats_request();
  ASSERT_TRUE(ch.Send(st).ok());
  auto r = ch.ReceiveBlocking(2000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->env.has_stats_reply()) << BodyName(r->env);
  EXPECT_EQ(r->env.seq(), 79u);
  // A flood is bounded: past kMaxRssConfigsPerSecond in a second each gets
  // LIMIT (the two above count), and the session still serves.
  int limited = 0;
  for (int i = 0; i < 40; i++) {
    good.set_seq(100 + i);
    ASSERT_TRUE(ch.Send(good).ok());
  }
  st.set_seq(200);
  ASSERT_TRUE(ch.Send(st).ok());
  for (int i = 0; i < 50; i++) {
    auto f = ch.ReceiveBlocking(2000);
    ASSERT_TRUE(f.ok()) << f.status();
    if (f->env.has_stats_reply()) break;
    ASSERT_TRUE(f->env.has_error()) << BodyName(f->env);
    EXPECT_EQ(f->env.error().code(), Error::LIMIT) << f->env.error().message();
    limited++;
  }
  // 42 in all (the bad one counts too): at most 16 taken per second, so at
  // least 42 - 16 refused, or 42 - 32 if a second turned over meanwhile.
  EXPECT_GE(limited, 42 - 2 * static_cast<int>(kMaxRssConfigsPerSecond));
  EXPECT_LE(limited, 40);
  ASSERT_EQ(ListGuests().guests_size(), 1);
}

TEST_F(ControlServerTest, ReadyGuestRunsAndBrokenGuestIsClosedWithBye) {
  make_ready_ = true;
  ControlChannel ch = Connect();
  ASSERT_TRUE(ch.Send(Hello("g1", std::string("\x02\x00\x00\x00\x00\x07", 6))).ok());
  auto w = ch.ReceiveBlocking(2000);
  ASSERT_TRUE(w.ok() && w->env.has_welcome());
  EXPECT_EQ(w->env.welcome().mac(), std::string("\x02\x00\x00\x00\x00\x07", 6));
  std::string state;
  for (int i = 0; i < 200; i++) {
    auto r = ListGuests();
    if (r.guests_size() == 1) state = r.guests(0).state();
    if (state == "RUNNING") break;
    usleep(10000);
  }
  ASSERT_EQ(state, "RUNNING");
  EXPECT_EQ(ListGuests().guests(0).path(), "emulated");
  {
    std::lock_guard<std::mutex> l(mu_);
    ports_.back()->Break("descriptor 3 points outside guest memory");
  }
  // LinkState first, then Bye naming the reason.
  for (int i = 0; i < 3; i++) {
    auto f = ch.ReceiveBlocking(2000);
    ASSERT_TRUE(f.ok()) << f.status();
    if (f->env.has_link()) continue;
    ASSERT_TRUE(f->env.has_bye()) << BodyName(f->env);
    EXPECT_NE(f->env.bye().reason().find("outside guest memory"), std::string::npos);
    break;
  }
  EXPECT_EQ(ListGuests().guests_size(), 0);
}

// A guest that reached READY once and then stopped every queue is
// negotiating again: the negotiation deadline applies again, from then
// (issue 9: it used to be armed only at Hello, so such a guest stayed for
// good).
class ShortNegotiateTest : public ControlServerTest {
 protected:
  void Tune(ControlServer::Options& o) override { o.session_limits.negotiate_timeout_ms = 300; }
};

TEST_F(ShortNegotiateTest, AGuestBackToNegotiatingIsTimedOutAgain) {
  make_ready_ = true;
  ControlChannel ch = Connect();
  ASSERT_TRUE(ch.Send(Hello("g-renego")).ok());
  auto w = ch.ReceiveBlocking(2000);
  ASSERT_TRUE(w.ok() && w->env.has_welcome());
  std::string state;
  for (int i = 0; i < 200 && state != "RUNNING"; i++) {
    auto r = ListGuests();
    if (r.guests_size() == 1) state = r.guests(0).state();
    if (state != "RUNNING") usleep(10000);
  }
  ASSERT_EQ(state, "RUNNING");
  usleep(600 * 1000);  // twice the deadline: a RUNNING guest has none
  ASSERT_EQ(ListGuests().guests_size(), 1) << "a running guest was timed out";
  {
    std::lock_guard<std::mutex> l(mu_);
    ports_.back()->SetReady(false);  // every queue stopped
  }
  const uint64_t t0 = MonotonicMs();
  bool error = false;
  for (int i = 0; i < 10 && !error; i++) {
    auto f = ch.ReceiveBlocking(3000);
    ASSERT_TRUE(f.ok()) << f.status();
    if (!f->env.has_error()) continue;  // LinkState
    error = true;
    EXPECT_EQ(f->env.error().code(), Error::LIMIT);
    EXPECT_NE(f->env.error().message().find("not ready within 300 ms"), std::string::npos)
        << f->env.error().message();
  }
  ASSERT_TRUE(error) << "the guest negotiating again was not timed out";
  EXPECT_GE(MonotonicMs() - t0, 250u) << "the deadline must count from going back, not from Hello";
  for (int i = 0; i < 200 && ListGuests().guests_size() != 0; i++) usleep(10000);
  EXPECT_EQ(ListGuests().guests_size(), 0);
}

TEST_F(ControlServerTest, HelloContentIsValidated) {
  struct Case {
    Envelope hello;
    Error::Code code;
    std::string needle;
  } cases[] = {
      {Hello(""), Error::MALFORMED, "1..63"},
      {Hello(std::string(64, 'a')), Error::MALFORMED, "1..63"},
      {Hello("bad name"), Error::MALFORMED, "0x20"},
      {Hello("g/1"), Error::MALFORMED, "0x2f"},
      {Hello("g", "abc"), Error::MALFORMED, "3 bytes"},
      {Hello("g", std::string("\x01\x00\x5e\x00\x00\x01", 6)), Error::MALFORMED, "unicast"},
      {Hello("g", std::string(6, '\0')), Error::MALFORMED, "unicast"},
      {Hello("g", "", 0), Error::MALFORMED, "queue_pairs 0"},
      {Hello("g", "", 17), Error::MALFORMED, "queue_pairs 17"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.hello.ShortDebugString());
    ControlChannel ch = Connect();
    ASSERT_TRUE(ch.Send(c.hello).ok());
    ExpectErrorThenClose(ch, c.code, c.needle);
  }
  ExpectServerServes();
  EXPECT_EQ(ListGuests().guests_size(), 0);
}

TEST_F(ControlServerTest, DuplicateNameAndMacAreBusy) {
  ControlChannel a = Connect();
  ASSERT_TRUE(a.Send(Hello("dup", std::string("\x02\x00\x00\x00\x00\x09", 6))).ok());
  ASSERT_TRUE(a.ReceiveBlocking(2000).ok());
  ControlChannel b = Connect();
  ASSERT_TRUE(b.Send(Hello("dup")).ok());
  ExpectErrorThenClose(b, Error::BUSY, "in use");
  ControlChannel c = Connect();
  ASSERT_TRUE(c.Send(Hello("other", std::string("\x02\x00\x00\x00\x00\x09", 6))).ok());
  ExpectErrorThenClose(c, Error::BUSY, "02:00:00:00:00:09");
  EXPECT_EQ(ListGuests().guests_size(), 1);  // the first guest is untouched
}

TEST_F(ControlServerTest, BadFramingIsRejected) {
  {
    ControlChannel ch = Connect();
    SendRaw(ch, std::string(4, '\0'));  // length 0
    ExpectErrorThenClose(ch, Error::MALFORMED, "length 0");
  }
  {
    ControlChannel ch = Connect();
    uint32_t big = 70000;
    SendRaw(ch, std::string(reinterpret_cast<char*>(&big), 4));
    ExpectErrorThenClose(ch, Error::MALFORMED, "length 70000");
  }
  {
    ControlChannel ch = Connect();
    std::string junk = "\xff\xff\xff\xff\xff";
    uint32_t n = junk.size();
    SendRaw(ch, std::string(reinterpret_cast<char*>(&n), 4) + junk);
    ExpectErrorThenClose(ch, Error::MALFORMED, "not a valid Envelope");
  }
  {
    ControlChannel ch = Connect();
    Envelope e = Hello("g");
    e.set_major(9);
    SendRaw(ch, EncodeFrame(e));
    ExpectErrorThenClose(ch, Error::VERSION, "major 9");
  }
  {
    ControlChannel ch = Connect();
    Envelope e = Hello("g");
    e.set_major(kControlMajor);
    e.set_fd_count(1);  // claims an fd that never comes
    SendRaw(ch, EncodeFrame(e));
    ExpectErrorThenClose(ch, Error::FD_MISMATCH, "fds");
  }
  {
    ControlChannel ch = Connect();
    Envelope e = Hello("g");
    e.set_major(kControlMajor);  // claims none but carries one
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    SendRaw(ch, EncodeFrame(e), std::span<const int>(p, 1));
    close(p[0]);
    close(p[1]);
    ExpectErrorThenClose(ch, Error::FD_MISMATCH, "fds");
  }
  {
    ControlChannel ch = Connect();  // hello that carries an fd, properly declared
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    ASSERT_TRUE(ch.Send(Hello("g"), std::span<const int>(p, 1)).ok());
    close(p[0]);
    close(p[1]);
    ExpectErrorThenClose(ch, Error::MALFORMED, "takes none");
  }
  ExpectServerServes();
}

TEST_F(ControlServerTest, MessagesOutOfOrderAreUnexpected) {
  {
    ControlChannel ch = Connect();
    Envelope e;
    e.mutable_stats_request();
    ASSERT_TRUE(ch.Send(e).ok());
    ExpectErrorThenClose(ch, Error::UNEXPECTED, "first message");
  }
  {
    ControlChannel ch = ConnectAdmin();  // admin session, then a hello
    Envelope e;
    e.mutable_admin_request()->mutable_list_guests();
    ASSERT_TRUE(ch.Send(e).ok());
    ASSERT_TRUE(ch.ReceiveBlocking(2000).ok());
    ASSERT_TRUE(ch.Send(Hello("late")).ok());
    ExpectErrorThenClose(ch, Error::UNEXPECTED, "admin session");
  }
  {
    ControlChannel ch = Connect();  // guest sends a second hello
    ASSERT_TRUE(ch.Send(Hello("twice")).ok());
    ASSERT_TRUE(ch.ReceiveBlocking(2000).ok());  // welcome
    ASSERT_TRUE(ch.ReceiveBlocking(2000).ok());  // link
    ASSERT_TRUE(ch.Send(Hello("twice")).ok());
    ExpectErrorThenClose(ch, Error::UNEXPECTED, "not legal");
  }
  {
    ControlChannel ch = ConnectAdmin();  // admin request without an op
    Envelope e;
    e.mutable_admin_request();
    ASSERT_TRUE(ch.Send(e).ok());
    auto r = ch.ReceiveBlocking(2000);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r->env.has_admin_reply());
    EXPECT_EQ(r->env.admin_reply().error().code(), Error::MALFORMED);
  }
  ExpectServerServes();
  EXPECT_EQ(ListGuests().guests_size(), 0);
}

TEST_F(ControlServerTest, GuestStatsAndAgentStats) {
  ControlChannel ch = Connect();
  ASSERT_TRUE(ch.Send(Hello("statsguest", "", 3)).ok());
  ASSERT_TRUE(ch.ReceiveBlocking(2000).ok());
  control::AdminRequest req;
  req.mutable_guest_stats()->set_guest("statsguest");
  auto r = Admin(req);
  ASSERT_EQ(r.guests_size(), 1);
  EXPECT_EQ(r.guests(0).queues_size(), 3);
  req.mutable_guest_stats()->set_guest(std::to_string(r.guests(0).id()));
  EXPECT_EQ(Admin(req).guests_size(), 1);
  req.mutable_guest_stats()->set_guest("nosuch");
  r = Admin(req);
  EXPECT_EQ(r.error().code(), Error::NOT_FOUND);
  control::AdminRequest a;
  a.mutable_agent_stats();
  r = Admin(a);
  EXPECT_EQ(r.agent_name(), "test-agent");
  EXPECT_EQ(r.guests_size(), 1);
  EXPECT_FALSE(r.has_uplink());
  // The guest itself can ask for its counters.
  Envelope s;
  s.mutable_stats_request();
  ASSERT_TRUE(ch.Send(s).ok());
  for (int i = 0; i < 3; i++) {
    auto f = ch.ReceiveBlocking(2000);
    ASSERT_TRUE(f.ok());
    if (f->env.has_stats_reply()) {
      EXPECT_EQ(f->env.stats_reply().queues_size(), 3);
      break;
    }
  }
}

// Issue 9: one read may hold hundreds of small frames. The server handles
// at most kFramesPerWake of them per turn (fd_loop.h "Pending") and the
// rest on the session's next turns: every one is answered, in order, and
// other sessions are served meanwhile.
TEST_F(ControlServerTest, AFloodOfSmallFramesIsServedInTurnsAndNoneIsLost) {
  ControlChannel ch = Connect();
  ASSERT_TRUE(ch.Send(Hello("floodguest")).ok());
  ASSERT_TRUE(ch.ReceiveBlocking(2000).ok());  // welcome
  constexpr uint32_t kFrames = 5 * kFramesPerWake + 7;
  Envelope req;
  req.set_major(kControlMajor);
  req.mutable_stats_request();
  std::string all;
  for (uint32_t i = 0; i < kFrames; i++) {
    req.set_seq(1000 + i);
    all += EncodeFrame(req);
  }
  ASSERT_LT(all.size(), 16000u) << "one read's worth";
  SendRaw(ch, all);
  ExpectServerServes();
  uint32_t replies = 0;
  for (int i = 0; i < 4 * static_cast<int>(kFrames) && replies < kFrames; i++) {
    auto f = ch.ReceiveBlocking(2000);
    ASSERT_TRUE(f.ok()) << f.status() << " after " << replies << " replies";
    if (f->env.has_stats_reply()) replies++;
  }
  EXPECT_EQ(replies, kFrames);
}

// Issue 9 part 1: operator requests only on the admin socket; a guest acts
// only on itself.
TEST_F(ControlServerTest, AdminSocketIsSeparateAndPrivate) {
  struct stat st;
  ASSERT_EQ(stat((path_ + ".admin").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(srv_->admin_path(), path_ + ".admin");
  {  // npactl on the guest socket: DENIED, the session closes
    ControlChannel ch = Connect();
    Envelope e;
    e.mutable_admin_request()->mutable_list_guests();
    ASSERT_TRUE(ch.Send(e).ok());
    ExpectErrorThenClose(ch, Error::DENIED, "operator requests go to the admin socket " + path_ + ".admin");
  }
  {  // a shell on the admin socket: DENIED, no guest made
    ControlChannel ch = ConnectAdmin();
    ASSERT_TRUE(ch.Send(Hello("sneaky")).ok());
    ExpectErrorThenClose(ch, Error::DENIED, "admin socket takes only admin_request");
  }
  EXPECT_EQ(ListGuests().guests_size(), 0);
}

TEST_F(ControlServerTest, GuestOperatorRequestIsDeniedAndNothingChanges) {
  ControlChannel victim = Connect();
  ASSERT_TRUE(victim.Send(Hello("victim", "", 1)).ok());
  ASSERT_TRUE(victim.ReceiveBlocking(2000).ok());  // welcome
  ControlChannel g = Connect();
  ASSERT_TRUE(g.Send(Hello("attacker", "", 2)).ok());
  ASSERT_TRUE(g.ReceiveBlocking(2000).ok());  // welcome
  ASSERT_TRUE(g.ReceiveBlocking(2000).ok());  // link
  const auto before = ListGuests();
  ASSERT_EQ(before.guests_size(), 2);
  for (int op = 0; op < 3; op++) {
    Envelope e;
    auto* r = e.mutable_admin_request();
    if (op == 0) r->mutable_list_guests();
    if (op == 1) r->mutable_vf_detach()->set_guest("victim");
    if (op == 2) r->mutable_migrate()->set_guest("victim");
    e.set_seq(100 + op);
    ASSERT_TRUE(g.Send(e).ok());
    auto rep = g.ReceiveBlocking(2000);
    ASSERT_TRUE(rep.ok()) << rep.status();
    ASSERT_TRUE(rep->env.has_error()) << BodyName(rep->env);
    EXPECT_EQ(rep->env.error().code(), Error::DENIED);
    EXPECT_EQ(rep->env.seq(), 100u + op);
    EXPECT_NE(rep->env.error().message().find("operator requests go to the admin socket"),
              std::string::npos);
  }
  // Its session goes on, and it still sees only its own queues.
  Envelope s;
  s.mutable_stats_request();
  ASSERT_TRUE(g.Send(s).ok());
  auto rep = g.ReceiveBlocking(2000);
  ASSERT_TRUE(rep.ok()) << rep.status();
  ASSERT_TRUE(rep->env.has_stats_reply()) << BodyName(rep->env);
  EXPECT_EQ(rep->env.stats_reply().queues_size(), 2);
  const auto after = ListGuests();
  ASSERT_EQ(after.guests_size(), 2);
  for (int i = 0; i < 2; i++) {
    EXPECT_EQ(after.guests(i).name(), before.guests(i).name());
    EXPECT_EQ(after.guests(i).state(), before.guests(i).state());
  }
  // A message about a VF it was never offered is refused for it alone; the
  // other guest is untouched.
  Envelope acc;
  acc.mutable_vf_accept()->set_offer_id(1);
  acc.mutable_vf_accept()->set_accepted(true);
  ASSERT_TRUE(g.Send(acc).ok());
  ExpectErrorThenClose(g, Error::UNEXPECTED, "attacker");
  const auto last = ListGuests();
  ASSERT_EQ(last.guests_size(), 1);
  EXPECT_EQ(last.guests(0).name(), "victim");
}

TEST(GuestNameTest, Charset) {
  EXPECT_EQ(CheckGuestName("vm-01_a.b"), "");
  EXPECT_NE(CheckGuestName(""), "");
  EXPECT_NE(CheckGuestName("x\xc3\xa9"), "");
  EXPECT_NE(CheckGuestName(std::string(64, 'x')), "");
  EXPECT_EQ(CheckGuestName(std::string(63, 'x')), "");
}

}  // namespace
}  // namespace npa::agent
