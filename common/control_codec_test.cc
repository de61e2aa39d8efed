#include "common/control_codec.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common/clock.h"

#include "common/unix_socket.h"
#include "gtest/gtest.h"

namespace npa {
namespace {

struct Pair {
  UniqueFd a, b;
  Pair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

void SendRaw(int fd, const std::string& bytes, std::span<const int> fds = {}) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  ASSERT_TRUE(SendWithFds(fd, &iov, 1, fds).ok());
}

control::Envelope Hello() {
  control::Envelope e;
  e.set_major(kControlMajor);
  e.mutable_hello()->set_name("g0");
  return e;
}

TEST(ControlCodec, RoundTripWithFds) {
  Pair p;
  ControlChannel tx(std::move(p.a)), rx(std::move(p.b));
  int fd = memfd_create("x", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  control::Envelope e;
  e.mutable_hello()->set_name("guest0");
  ASSERT_TRUE(tx.Send(e, {&fd, 1}).ok());
  close(fd);
  auto f = rx.ReceiveBlocking(1000);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->env.hello().name(), "guest0");
  EXPECT_EQ(f->env.major(), kControlMajor);
  EXPECT_EQ(f->env.fd_count(), 1u);
  ASSERT_EQ(f->fds.size(), 1u);
  EXPECT_TRUE(f->fds[0].valid());
}

TEST(ControlCodec, ManyFramesInOneRead) {
  Pair p;
  std::string all;
  for (int i = 0; i < 5; i++) all += EncodeFrame(Hello());
  SendRaw(p.a.get(), all);
  ControlChannel rx(std::move(p.b));
  ASSERT_TRUE(rx.OnReadable().ok());
  int n = 0;
  for (;;) {
    auto f = rx.Pop();
    ASSERT_TRUE(f.ok()) << f.status();
    if (!f->has_value()) break;
    n++;
  }
  EXPECT_EQ(n, 5);
}

// A reader on a budget pops some frames, reads more only when no complete
// frame is left, and loses none across the reads (the consumed prefix is
// dropped before the next read, never a frame).
TEST(ControlCodec, HasFrameTellsAReaderToPopBeforeReadingAgain) {
  Pair p;
  const std::string fr = EncodeFrame(Hello());
  std::string all;
  for (int i = 0; i < 5; i++) all += fr;
  all += fr.substr(0, 5);  // and the start of a sixth
  SendRaw(p.a.get(), all);
  ControlChannel rx(std::move(p.b));
  EXPECT_FALSE(rx.HasFrame());
  ASSERT_TRUE(rx.OnReadable().ok());
  int n = 0;
  for (int i = 0; i < 3; i++) {
    ASSERT_TRUE(rx.HasFrame());
    auto f = rx.Pop();
    ASSERT_TRUE(f.ok() && f->has_value());
    n++;
  }
  while (rx.HasFrame()) {
    auto f = rx.Pop();
    ASSERT_TRUE(f.ok() && f->has_value());
    n++;
  }
  EXPECT_EQ(n, 5);
  auto none = rx.Pop();  // the partial sixth waits
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  SendRaw(p.a.get(), fr.substr(5) + fr);
  ASSERT_TRUE(rx.OnReadable().ok());
  for (int i = 0; i < 2; i++) {
    ASSERT_TRUE(rx.HasFrame());
    auto f = rx.Pop();
    ASSERT_TRUE(f.ok() && f->has_value()) << i;
  }
  EXPECT_FALSE(rx.HasFrame());
  // A length Pop refuses counts as "something to say": the reader pops it
  // and gets the error at once.
  SendRaw(p.a.get(), std::string("\0\0\0\0", 4));
  ASSERT_TRUE(rx.OnReadable().ok());
  EXPECT_TRUE(rx.HasFrame());
  EXPECT_FALSE(rx.Pop().ok());
}

TEST(ControlCodec, RejectsZeroAndOversizeLength) {
  for (uint32_t len : {0u, static_cast<uint32_t>(kMaxControlFrame + 1), 0xffffffffu}) {
    Pair p;
    std::string raw(4, '\0');
    memcpy(raw.data(), &len, 4);
    SendRaw(p.a.get(), raw);
    ControlChannel rx(std::move(p.b));
    ASSERT_TRUE(rx.OnReadable().ok());
    auto f = rx.Pop();
    ASSERT_FALSE(f.ok());
    EXPECT_NE(std::string(f.status().message()).find("length"), std::string::npos) << f.status();
  }
}

TEST(ControlCodec, RejectsGarbageWrongMajorAndNoBody) {
  EXPECT_FALSE(DecodeEnvelope(reinterpret_cast<const uint8_t*>("\xff\xff\xff"), 3).ok());
  control::Envelope e = Hello();
  e.set_major(2);
  std::string s = e.SerializeAsString();
  auto r = DecodeEnvelope(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("major 2"), std::string::npos);
  control::Envelope empty;
  empty.set_major(kControlMajor);
  s = empty.SerializeAsString();
  r = DecodeEnvelope(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("no body"), std::string::npos);
}

TEST(ControlCodec, FdCountMismatchIsAnError) {
  {  // claims one fd, none sent
    Pair p;
    control::Envelope e = Hello();
    e.set_fd_count(1);
    SendRaw(p.a.get(), EncodeFrame(e));
    ControlChannel rx(std::move(p.b));
    ASSERT_TRUE(rx.OnReadable().ok());
    auto f = rx.Pop();
    ASSERT_FALSE(f.ok());
    EXPECT_NE(std::string(f.status().message()).find("claims 1 fds"), std::string::npos);
  }
  {  // sends an fd the frame does not claim
    Pair p;
    int fd = memfd_create("y", MFD_CLOEXEC);
    SendRaw(p.a.get(), EncodeFrame(Hello()), {&fd, 1});
    close(fd);
    ControlChannel rx(std::move(p.b));
    ASSERT_TRUE(rx.OnReadable().ok());
    auto f = rx.Pop();
    ASSERT_FALSE(f.ok());
    EXPECT_NE(std::string(f.status().message()).find("more than it claims"), std::string::npos);
  }
}

TEST(ControlCodec, PartialFrameWaitsForTheRest) {
  Pair p;
  std::string fr = EncodeFrame(Hello());
  SendRaw(p.a.get(), fr.substr(0, 3));
  ControlChannel rx(std::move(p.b));
  ASSERT_TRUE(rx.OnReadable().ok());
  auto f = rx.Pop();
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->has_value());
  SendRaw(p.a.get(), fr.substr(3));
  ASSERT_TRUE(rx.OnReadable().ok());
  f = rx.Pop();
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->has_value());
}

TEST(ControlCodec, PeerCloseIsAborted) {
  Pair p;
  p.a.reset();
  ControlChannel rx(std::move(p.b));
  auto s = rx.OnReadable();
  EXPECT_TRUE(absl::IsAborted(s)) << s;
}

TEST(UnixSocket, TooManyFdsAreAllClosed) {
  Pair p;
  std::vector<int> fds;
  for (size_t i = 0; i < kMaxFdsPerMessage + 4; i++) fds.push_back(memfd_create("z", MFD_CLOEXEC));
  // Bypass SendWithFds' own limit to play a hostile peer.
  char c = 'x';
  iovec iov{&c, 1};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 32)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
  ASSERT_EQ(sendmsg(p.a.get(), &msg, 0), 1);
  for (int fd : fds) close(fd);
  std::vector<UniqueFd> got;
  auto r = RecvWithFds(p.b.get(), &c, 1, &got);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(got.empty());
}

TEST(UnixSocket, ListenConnectAndStaleSocketReplaced) {
  std::string path = "/tmp/npa_common_test_" + std::to_string(getpid()) + ".sock";
  {
    auto l = ListenUnix(path);
    ASSERT_TRUE(l.ok()) << l.status();
  }
  auto l = ListenUnix(path);  // the stale file from the first listener is replaced
  ASSERT_TRUE(l.ok()) << l.status();
  auto c = ConnectUnix(path, 1000);
  ASSERT_TRUE(c.ok()) << c.status();
  unlink(path.c_str());
  auto bad = ConnectUnix("/tmp/npa-no-such-socket", 50);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("npa-no-such-socket"), std::string::npos);
}

// ---- queued mode: the agent's control thread never waits on a peer.

struct QueuedPair {
  UniqueFd a, b;
  QueuedPair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    int small = 4096;  // the kernel doubles it; a few frames fill it
    EXPECT_EQ(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

control::Envelope Big(int i) {
  control::Envelope e = Hello();
  e.mutable_hello()->set_name(std::string(2000, static_cast<char>('a' + i % 26)));
  e.set_seq(static_cast<uint64_t>(i) + 1);
  return e;
}

// Reads every frame the socket has; bounded by the caller's loop.
void DrainInto(ControlChannel& rx, std::vector<ControlFrame>* got) {
  for (int k = 0; k < 64; k++) {
    absl::Status st = rx.OnReadable();
    ASSERT_TRUE(st.ok()) << st;
    for (;;) {
      auto f = rx.Pop();
      ASSERT_TRUE(f.ok()) << f.status();
      if (!f->has_value()) break;
      got->push_back(std::move(**f));
    }
    if (!WaitReadable(rx.fd(), 0).ok()) return;
  }
}

TEST(ControlCodecQueued, SendNeverWaitsAndTheBacklogFlushesInOrder) {
  QueuedPair p;
  ControlChannel tx(std::move(p.a)), rx(std::move(p.b));
  std::vector<bool> interest;
  tx.EnableSendQueue(SendQueueLimits{1 << 20, 1000, 64},
                     [&](bool on) { interest.push_back(on); }, "test peer");
  const uint64_t t0 = MonotonicMs();
  constexpr int kFrames = 40;  // ~80 KB against a ~8 KB socket buffer
  for (int i = 0; i < kFrames; i++) ASSERT_TRUE(tx.Send(Big(i)).ok()) << i;
  EXPECT_LT(MonotonicMs() - t0, 200u) << "Send waited on a peer that was not reading";
  EXPECT_GT(tx.backlog_frames(), 0u);
  EXPECT_GT(tx.backlog_bytes(), 0u);
  ASSERT_EQ(interest, std::vector<bool>({true}));
  std::vector<ControlFrame> got;
  for (int round = 0; round < 1000 && got.size() < kFrames; round++) {
    ASSERT_TRUE(tx.OnWritable().ok());
    DrainInto(rx, &got);
  }
  ASSERT_EQ(got.size(), static_cast<size_t>(kFrames));
  for (int i = 0; i < kFrames; i++) {
    EXPECT_EQ(got[i].env.seq(), static_cast<uint64_t>(i) + 1);
    EXPECT_EQ(got[i].env.hello().name(), Big(i).hello().name());
  }
  EXPECT_EQ(tx.backlog_bytes(), 0u);
  EXPECT_EQ(tx.backlog_frames(), 0u);
  EXPECT_EQ(interest, std::vector<bool>({true, false})) << "EPOLLOUT off once drained";
}

TEST(ControlCodecQueued, FdsWaitWithTheirFrameAndArriveWithIt) {
  QueuedPair p;
  ControlChannel tx(std::move(p.a)), rx(std::move(p.b));
  tx.EnableSendQueue(SendQueueLimits{1 << 20, 1000, 64}, nullptr, "test peer");
  for (int i = 0; i < 20 && tx.backlog_frames() == 0; i++) ASSERT_TRUE(tx.Send(Big(i)).ok());
  ASSERT_GT(tx.backlog_frames(), 0u) << "the socket never filled";
  const size_t before = tx.backlog_frames();
  int mfd = memfd_create("queued", MFD_CLOEXEC);
  ASSERT_GE(mfd, 0);
  struct stat want;
  ASSERT_EQ(fstat(mfd, &want), 0);
  control::Envelope e = Hello();
  e.mutable_hello()->set_name("with-fd");
  ASSERT_TRUE(tx.Send(e, {&mfd, 1}).ok());
  close(mfd);  // the caller's copy goes at once; the queue keeps its own
  EXPECT_EQ(tx.backlog_frames(), before + 1);
  EXPECT_EQ(tx.backlog_fds(), 1u);
  std::vector<ControlFrame> got;
  for (int round = 0; round < 1000 && (got.empty() || got.back().env.hello().name() != "with-fd");
       round++) {
    ASSERT_TRUE(tx.OnWritable().ok());
    DrainInto(rx, &got);
  }
  ASSERT_FALSE(got.empty());
  ControlFrame& last = got.back();
  ASSERT_EQ(last.env.hello().name(), "with-fd");
  ASSERT_EQ(last.fds.size(), 1u);
  struct stat st;
  ASSERT_EQ(fstat(last.fds[0].get(), &st), 0);
  EXPECT_EQ(st.st_ino, want.st_ino) << "the fd arrived with another frame";
  for (size_t i = 0; i + 1 < got.size(); i++) EXPECT_TRUE(got[i].fds.empty()) << i;
  EXPECT_EQ(tx.backlog_fds(), 0u);
}

TEST(ControlCodecQueued, APeerThatNeverReadsIsCutOffAtTheBound) {
  QueuedPair p;
  ControlChannel tx(std::move(p.a));
  UniqueFd peer = std::move(p.b);  // never reads
  int calls_on = 0, calls_off = 0;
  tx.EnableSendQueue(SendQueueLimits{64 * 1024, 8, 4},
                     [&](bool on) { (on ? calls_on : calls_off)++; }, "pid 1 uid 2");
  absl::Status st;
  int sent = 0;
  for (; sent < 200 && st.ok(); sent++) st = tx.Send(Big(sent));
  ASSERT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_NE(std::string(st.message()).find("pid 1 uid 2 does not read"), std::string::npos) << st;
  EXPECT_NE(std::string(st.message()).find("8 frames"), std::string::npos) << st;
  EXPECT_LT(sent, 40) << "the bound of 8 frames was not applied";
  // Failed for good: no backlog kept, every call reports why.
  EXPECT_EQ(tx.backlog_frames(), 0u);
  EXPECT_EQ(tx.backlog_bytes(), 0u);
  EXPECT_TRUE(absl::IsResourceExhausted(tx.Send(Hello())));
  EXPECT_TRUE(absl::IsResourceExhausted(tx.OnWritable()));
  EXPECT_TRUE(absl::IsResourceExhausted(tx.OnReadable())) << "the owner's read must see it";
  EXPECT_EQ(calls_on, 1);
  EXPECT_EQ(calls_off, 1);
  // The socket was shut down: the owner's epoll wakes up (readable) at once.
  EXPECT_TRUE(WaitReadable(tx.fd(), 0).ok());
}

TEST(ControlCodecQueued, TheFdBoundCountsQueuedFds) {
  QueuedPair p;
  ControlChannel tx(std::move(p.a));
  UniqueFd peer = std::move(p.b);
  tx.EnableSendQueue(SendQueueLimits{1 << 20, 1000, 3}, nullptr, "fd peer");
  for (int i = 0; i < 20 && tx.backlog_frames() == 0; i++) ASSERT_TRUE(tx.Send(Big(i)).ok());
  ASSERT_GT(tx.backlog_frames(), 0u);
  int two[2] = {memfd_create("a", MFD_CLOEXEC), memfd_create("b", MFD_CLOEXEC)};
  EXPECT_TRUE(tx.Send(Hello(), two).ok());
  EXPECT_EQ(tx.backlog_fds(), 2u);
  absl::Status st = tx.Send(Hello(), two);  // 4 > 3
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_NE(std::string(st.message()).find("4 fds"), std::string::npos) << st;
  EXPECT_EQ(tx.backlog_fds(), 0u) << "dropped backlog closes its dups";
  close(two[0]);
  close(two[1]);
}

TEST(ControlCodecQueued, APeerThatLeftIsAbortedNotExhausted) {
  QueuedPair p;
  ControlChannel tx(std::move(p.a));
  p.b.reset();
  tx.EnableSendQueue(SendQueueLimits{}, nullptr, "gone peer");
  absl::Status st = tx.Send(Hello());
  EXPECT_TRUE(absl::IsAborted(st)) << st;
  EXPECT_NE(std::string(st.message()).find("gone peer"), std::string::npos) << st;
  EXPECT_TRUE(absl::IsAborted(tx.OnReadable()));
}

TEST(ControlCodecQueued, SendSomeReportsAFullSocketAsZero) {
  QueuedPair p;
  std::string chunk(65536, 'x');
  size_t total = 0;
  absl::StatusOr<size_t> n;
  for (int i = 0; i < 100; i++) {
    n = SendSomeWithFds(p.a.get(), chunk.data(), chunk.size(), {});
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    total += *n;
  }
  EXPECT_EQ(*n, 0u) << "a never-read socket must fill";
  EXPECT_GT(total, 0u);
}

}  // namespace
}  // namespace npa
