#include "hypervisor/daemon/session.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "common/clock.h"

namespace npa::agent {
namespace {

TEST(SessionTest, SendErrorPutsCodeMessageAndSeqOnTheWire) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ControlChannel agent{UniqueFd(sv[0])}, peer{UniqueFd(sv[1])};
  SendError(agent, control::Error::UNEXPECTED, "first message must be hello", 7);
  auto f = peer.ReceiveBlocking(2000);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->env.has_error()) << BodyName(f->env);
  EXPECT_EQ(f->env.error().code(), control::Error::UNEXPECTED);
  EXPECT_EQ(f->env.error().message(), "first message must be hello");
  EXPECT_EQ(f->env.seq(), 7u);
}

TEST(SessionTest, SendErrorToAGonePeerIsHarmless) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ControlChannel agent{UniqueFd(sv[0])};
  close(sv[1]);
  SendError(agent, control::Error::MALFORMED, "bye");  // no crash, no SIGPIPE
}

TEST(SessionTest, CodecErrorsMapByWhatTheyAreAbout) {
  EXPECT_EQ(CodeForCodecError(absl::FailedPreconditionError("major 9")), control::Error::VERSION);
  EXPECT_EQ(CodeForCodecError(absl::InvalidArgumentError("claims 1 fds, got 0")),
            control::Error::FD_MISMATCH);
  EXPECT_EQ(CodeForCodecError(absl::InvalidArgumentError("length 0")), control::Error::MALFORMED);
  EXPECT_EQ(CodeForCodecError(absl::ResourceExhaustedError("does not read: 9 frames (0 fds)")),
            control::Error::LIMIT);
}

struct Pair {
  UniqueFd a, b;
  Pair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

int OpenFds() {
  int n = 0;
  for (int fd = 0; fd < 4096; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

TEST(SessionTest, FdsOnAFrameThatTakesNoneAreClosedAtOnceAndRefused) {
  Pair p;
  ControlChannel agent{std::move(p.a)}, peer{std::move(p.b)};
  const int before = OpenFds();
  ControlFrame f;
  f.env.mutable_stats_request();
  f.env.set_seq(5);
  for (int i = 0; i < 3; i++) f.fds.emplace_back(eventfd(0, EFD_CLOEXEC));
  EXPECT_EQ(OpenFds(), before + 3);
  absl::Status st = RefuseUnexpectedFds(agent, f);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(f.fds.empty());
  EXPECT_EQ(OpenFds(), before) << "the frame's fds must be closed at once";
  auto r = peer.ReceiveBlocking(2000);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->env.has_error());
  EXPECT_EQ(r->env.error().code(), control::Error::FD_MISMATCH);
  EXPECT_EQ(r->env.error().message(), "stats_request carries 3 fds; it takes none");
  EXPECT_EQ(r->env.seq(), 5u);

  ControlFrame regions;  // the one frame a shell sends fds with
  regions.env.mutable_regions();
  regions.fds.emplace_back(eventfd(0, EFD_CLOEXEC));
  EXPECT_TRUE(RefuseUnexpectedFds(agent, regions).ok());
  EXPECT_EQ(regions.fds.size(), 1u);
  ControlFrame none;
  none.env.mutable_bye();
  EXPECT_TRUE(RefuseUnexpectedFds(agent, none).ok());
}

TEST(SessionTest, PeerCredIsOurs) {
  Pair p;
  auto c = PeerCredOf(p.a.get());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pid, getpid());
  EXPECT_EQ(c->uid, getuid());
  int e = eventfd(0, EFD_CLOEXEC);
  EXPECT_FALSE(PeerCredOf(e).ok());
  close(e);
}

class SessionLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(loop_.Open().ok()); }
  // A connection as the agent sees it: the agent's end watched in the loop.
  int Conn() {
    pairs_.emplace_back();
    const int fd = pairs_.back().a.get();
    EXPECT_TRUE(loop_.Watch(fd, FdKind::kSession).ok());
    return fd;
  }
  void Close(SessionLimits& l, int fd) {
    l.Release(fd);
    loop_.Unwatch(fd);
  }
  FdLoop loop_;
  std::vector<Pair> pairs_;
};

TEST_F(SessionLimitsTest, PerPidCapRefusesAndCountsComeBackOnRelease) {
  SessionLimits::Options o;
  o.max_per_pid = 3;
  SessionLimits l(o, &loop_);
  std::vector<int> fds;
  for (int i = 0; i < 3; i++) {
    fds.push_back(Conn());
    ASSERT_TRUE(l.Admit(fds.back(), nullptr).ok()) << i;
  }
  EXPECT_EQ(l.sessions_of_pid(getpid()), 3u);
  const int over = Conn();
  absl::Status st = l.Admit(over, nullptr);
  ASSERT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_NE(std::string(st.message()).find(absl::StrCat("pid ", getpid())), std::string::npos) << st;
  EXPECT_NE(std::string(st.message()).find("limit 3 per process"), std::string::npos) << st;
  EXPECT_EQ(l.size(), 3u) << "a refused connection is not recorded";
  EXPECT_EQ(loop_.deadline(over), 0u) << "nor armed";
  Close(l, fds[0]);
  EXPECT_EQ(l.sessions_of_pid(getpid()), 2u);
  EXPECT_TRUE(l.Admit(over, nullptr).ok()) << "a slot freed by a close is usable";
  l.Release(12345);  // unknown: no-op
  for (int fd : {fds[1], fds[2], over}) Close(l, fd);
  EXPECT_EQ(l.size(), 0u);
  EXPECT_EQ(l.sessions_of_pid(getpid()), 0u);
  EXPECT_EQ(l.sessions_of_uid(getuid()), 0u);
  EXPECT_EQ(loop_.num_deadlines(), 0u);
}

TEST_F(SessionLimitsTest, PerUidCap) {
  SessionLimits::Options o;
  o.max_per_pid = 100;
  o.max_per_uid = 2;
  SessionLimits l(o, &loop_);
  ASSERT_TRUE(l.Admit(Conn(), nullptr).ok());
  ASSERT_TRUE(l.Admit(Conn(), nullptr).ok());
  absl::Status st = l.Admit(Conn(), nullptr);
  ASSERT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_NE(std::string(st.message()).find("limit 2 per user"), std::string::npos) << st;
}

TEST_F(SessionLimitsTest, DeadlinesFollowThePhase) {
  SessionLimits::Options o;
  o.undecided_timeout_ms = 1000;
  o.negotiate_timeout_ms = 5000;
  o.admin_idle_timeout_ms = 9000;
  SessionLimits l(o, &loop_);
  const int g = Conn(), a = Conn(), u = Conn();
  const uint64_t t0 = MonotonicMs();
  for (int fd : {g, a, u}) ASSERT_TRUE(l.Admit(fd, nullptr).ok());
  for (int fd : {g, a, u}) {
    EXPECT_GE(loop_.deadline(fd), t0 + 1000);
    EXPECT_LE(loop_.deadline(fd), MonotonicMs() + 1000);
  }
  l.OnFrame(g, SessionRole::kGuest);  // hello
  EXPECT_GE(loop_.deadline(g), t0 + 5000);
  const uint64_t g_dl = loop_.deadline(g);
  l.OnFrame(g, SessionRole::kGuest);  // later guest frames do not push it out
  EXPECT_EQ(loop_.deadline(g), g_dl);
  l.Ready(g);
  EXPECT_EQ(loop_.deadline(g), 0u) << "a READY guest has no deadline";
  l.OnFrame(g, SessionRole::kGuest);
  EXPECT_EQ(loop_.deadline(g), 0u);
  // Back to negotiating (every queue stopped): armed again, from now.
  const uint64_t t1 = MonotonicMs();
  l.Unready(g);
  EXPECT_GE(loop_.deadline(g), t1 + 5000) << "negotiating again re-arms the deadline";
  EXPECT_LE(loop_.deadline(g), MonotonicMs() + 5000);
  l.Unready(g);  // already negotiating: unchanged
  l.OnFrame(g, SessionRole::kGuest);
  EXPECT_LE(loop_.deadline(g), MonotonicMs() + 5000);
  l.Ready(g);
  EXPECT_EQ(loop_.deadline(g), 0u);
  l.OnFrame(a, SessionRole::kAdmin);
  EXPECT_GE(loop_.deadline(a), t0 + 9000);
  EXPECT_NE(l.TimeoutReason(u).find("sent no hello or admin_request within 1000 ms"),
            std::string::npos)
      << l.TimeoutReason(u);
  EXPECT_NE(l.TimeoutReason(g).find("not ready within 5000 ms"), std::string::npos);
  EXPECT_NE(l.TimeoutReason(a).find("idle for 9000 ms"), std::string::npos);
  EXPECT_NE(l.TimeoutReason(u).find(absl::StrCat("pid ", getpid())), std::string::npos);
}

TEST_F(SessionLimitsTest, AnUndecidedSessionTimesOutThroughTheLoop) {
  SessionLimits::Options o;
  o.undecided_timeout_ms = 30;
  SessionLimits l(o, &loop_);
  const int fd = Conn();
  std::vector<std::string> why;
  loop_.OnDeadline(FdKind::kSession, [&](int f, uint64_t) {
    why.push_back(l.TimeoutReason(f));
    Close(l, f);
  });
  ASSERT_TRUE(l.Admit(fd, nullptr).ok());
  const uint64_t t0 = MonotonicMs();
  for (int i = 0; i < 20 && why.empty(); i++) ASSERT_TRUE(loop_.RunOnce(1000).ok());
  ASSERT_EQ(why.size(), 1u);
  EXPECT_GE(MonotonicMs() - t0, 25u);
  EXPECT_NE(why[0].find("within 30 ms"), std::string::npos) << why[0];
  EXPECT_EQ(l.size(), 0u);
}

TEST_F(SessionLimitsTest, AdmittedChannelsSendQueuedWithEpolloutThroughTheLoop) {
  SessionLimits::Options o;
  o.send_queue = SendQueueLimits{1 << 20, 1000, 16};
  SessionLimits l(o, &loop_);
  const int fd = Conn();
  ControlChannel ch{UniqueFd(dup(fd))};  // the loop watches fd; ch writes the same socket
  ASSERT_TRUE(l.Admit(fd, &ch).ok());
  EXPECT_TRUE(ch.queued());
  control::Envelope big;
  big.mutable_hello()->set_name(std::string(8000, 'x'));
  // The peer (pairs_.back().b) does not read: the backlog appears, EPOLLOUT on.
  for (int i = 0; i < 200 && ch.backlog_frames() == 0; i++) ASSERT_TRUE(ch.Send(big).ok());
  ASSERT_GT(ch.backlog_frames(), 0u);
  EXPECT_TRUE(loop_.wants_writable(fd));
}

}  // namespace
}  // namespace npa::agent
