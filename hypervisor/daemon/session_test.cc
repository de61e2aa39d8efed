#include "hypervisor/daemon/session.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

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
}

}  // namespace
}  // namespace npa::agent
