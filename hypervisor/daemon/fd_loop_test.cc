#include "hypervisor/daemon/fd_loop.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace npa::agent {
namespace {

UniqueFd Ready() {
  UniqueFd fd(eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK));  // counter 1: readable
  EXPECT_TRUE(fd.valid());
  return fd;
}

TEST(FdLoopTest, DispatchesEachReadyFdToItsKindsHandlerWithItsId) {
  FdLoop loop;
  ASSERT_TRUE(loop.Open().ok());
  std::vector<std::pair<FdKind, uint64_t>> seen;
  for (size_t k = 0; k < kNumFdKinds; k++) {
    const FdKind kind = static_cast<FdKind>(k);
    loop.OnReadable(kind, [&seen, kind](int, uint64_t id) { seen.push_back({kind, id}); });
  }
  UniqueFd a = Ready(), b = Ready();
  UniqueFd idle(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(loop.Watch(a.get(), FdKind::kSession).ok());
  ASSERT_TRUE(loop.Watch(b.get(), FdKind::kGuestPort, 42).ok());
  ASSERT_TRUE(loop.Watch(idle.get(), FdKind::kControlListener).ok());
  EXPECT_EQ(loop.size(), 3u);
  auto n = loop.RunOnce(1000);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2);
  ASSERT_EQ(seen.size(), 2u);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen[0], (std::pair<FdKind, uint64_t>{FdKind::kSession, 0}));
  EXPECT_EQ(seen[1], (std::pair<FdKind, uint64_t>{FdKind::kGuestPort, 42}));
}

TEST(FdLoopTest, AnFdUnwatchedByAnEarlierHandlerOfTheBatchIsSkipped) {
  FdLoop loop;
  ASSERT_TRUE(loop.Open().ok());
  UniqueFd a = Ready(), b = Ready();
  int calls = 0;
  // Whichever runs first unwatches the other (a session closing another).
  loop.OnReadable(FdKind::kSession, [&](int fd, uint64_t) {
    calls++;
    loop.Unwatch(fd == a.get() ? b.get() : a.get());
  });
  ASSERT_TRUE(loop.Watch(a.get(), FdKind::kSession).ok());
  ASSERT_TRUE(loop.Watch(b.get(), FdKind::kSession).ok());
  auto n = loop.RunOnce(1000);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(loop.size(), 1u);
}

TEST(FdLoopTest, LevelTriggeredUntilUnwatched) {
  FdLoop loop;
  ASSERT_TRUE(loop.Open().ok());
  UniqueFd a = Ready();
  int calls = 0;
  loop.OnReadable(FdKind::kVhostListener, [&](int, uint64_t) { calls++; });
  ASSERT_TRUE(loop.Watch(a.get(), FdKind::kVhostListener).ok());
  ASSERT_EQ(*loop.RunOnce(1000), 1);
  ASSERT_EQ(*loop.RunOnce(1000), 1);  // nothing read: still readable
  loop.Unwatch(a.get());
  EXPECT_FALSE(loop.watching(a.get()));
  EXPECT_EQ(*loop.RunOnce(20), 0);  // timeout, nothing dispatched
  EXPECT_EQ(calls, 2);
  loop.Unwatch(a.get());  // twice, and -1: no-ops
  loop.Unwatch(-1);
}

TEST(FdLoopTest, ErrorsNameTheFdAndAClosedLoopRefuses) {
  FdLoop closed;
  EXPECT_FALSE(closed.Watch(0, FdKind::kSession).ok());
  EXPECT_FALSE(closed.RunOnce(0).ok());
  FdLoop loop;
  ASSERT_TRUE(loop.Open().ok());
  absl::Status s = loop.Watch(12345, FdKind::kSession);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("fd 12345"), absl::string_view::npos) << s;
  EXPECT_FALSE(loop.watching(12345));
  UniqueFd a = Ready();
  ASSERT_TRUE(loop.Watch(a.get(), FdKind::kSession).ok());
  EXPECT_FALSE(loop.Watch(a.get(), FdKind::kSession).ok()) << "already watched";
}

}  // namespace
}  // namespace npa::agent
