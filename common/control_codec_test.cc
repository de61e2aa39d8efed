#include "common/control_codec.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

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

}  // namespace
}  // namespace npa
