#include "hypervisor/daemon/fd_loop.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "common/clock.h"

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

// A handler that stops on a budget with work left (in user space, invisible
// to epoll) marks its fd pending: the next round runs it again without
// sleeping, once, after the fds epoll found ready; Unwatch drops the mark.
TEST(FdLoopTest, APendingFdRunsOncePerRoundAfterTheReadyOnes) {
  FdLoop loop;
  ASSERT_TRUE(loop.Open().ok());
  UniqueFd busy(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));  // never readable
  UniqueFd other = Ready();
  std::vector<int> order;
  int left = 3;  // budgets of work the busy peer still has
  loop.OnReadable(FdKind::kSession, [&](int fd, uint64_t) {
    order.push_back(fd);
    if (fd == busy.get() && --left > 0) {
      EXPECT_TRUE(loop.MarkPending(fd).ok());
    }
  });
  ASSERT_TRUE(loop.Watch(busy.get(), FdKind::kSession).ok());
  ASSERT_TRUE(loop.Watch(other.get(), FdKind::kSession).ok());
  ASSERT_TRUE(loop.MarkPending(busy.get()).ok());
  const uint64_t t0 = MonotonicMs();
  ASSERT_EQ(*loop.RunOnce(5000), 2);  // other (ready), then busy (pending)
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], other.get());
  EXPECT_EQ(order[1], busy.get());
  EXPECT_TRUE(loop.pending(busy.get()));
  ASSERT_EQ(*loop.RunOnce(5000), 2);
  ASSERT_EQ(*loop.RunOnce(5000), 2);  // the last budget: not marked again
  EXPECT_FALSE(loop.pending(busy.get()));
  EXPECT_LT(MonotonicMs() - t0, 2000u) << "a pending fd must not wait for the timeout";
  EXPECT_EQ(std::count(order.begin(), order.end(), busy.get()), 3);
  ASSERT_TRUE(loop.MarkPending(busy.get()).ok());
  loop.Unwatch(busy.get());
  EXPECT_FALSE(loop.pending(busy.get()));
  EXPECT_FALSE(loop.MarkPending(busy.get()).ok());  // not watched
  // Ready and pending in one round: one turn, not two.
  left = 10;
  order.clear();
  ASSERT_TRUE(loop.MarkPending(other.get()).ok());
  ASSERT_EQ(*loop.RunOnce(5000), 1);
  EXPECT_EQ(order.size(), 1u);
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

TEST(FdLoopTest, WriteInterestDispatchesOnlyWhileOn) {
  FdLoop loop;
  ASSERT_TRUE(loop.Open().ok());
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int reads = 0, writes = 0;
  loop.OnReadable(FdKind::kSession, [&](int, uint64_t) { reads++; });
  loop.OnWritable(FdKind::kSession, [&](int, uint64_t id) {
    writes++;
    EXPECT_EQ(id, 7u);
  });
  ASSERT_TRUE(loop.Watch(a.get(), FdKind::kSession, 7).ok());
  EXPECT_EQ(*loop.RunOnce(20), 0) << "writable but nobody asked: nothing runs";
  ASSERT_TRUE(loop.WantWritable(a.get(), true).ok());
  EXPECT_TRUE(loop.wants_writable(a.get()));
  EXPECT_EQ(*loop.RunOnce(1000), 1);
  EXPECT_EQ(writes, 1);
  EXPECT_EQ(reads, 0) << "a bare EPOLLOUT is not the reader's";
  ASSERT_TRUE(loop.WantWritable(a.get(), true).ok());  // unchanged: no-op
  ASSERT_TRUE(loop.WantWritable(a.get(), false).ok());
  EXPECT_EQ(*loop.RunOnce(20), 0);
  EXPECT_EQ(writes, 1);
  ASSERT_EQ(write(b.get(), "x", 1), 1);
  ASSERT_TRUE(loop.WantWritable(a.get(), true).ok());
  EXPECT_EQ(*loop.RunOnce(1000), 2) << "readable and writable: both handlers";
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(writes, 2);
  EXPECT_FALSE(loop.WantWritable(12345, true).ok());
  loop.Unwatch(a.get());
  EXPECT_FALSE(loop.wants_writable(a.get()));
}

TEST(FdLoopTest, AReaderThatUnwatchesSkipsTheWriter) {
  FdLoop loop;
  ASSERT_TRUE(loop.Open().ok());
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int writes = 0;
  loop.OnReadable(FdKind::kSession, [&](int fd, uint64_t) { loop.Unwatch(fd); });
  loop.OnWritable(FdKind::kSession, [&](int, uint64_t) { writes++; });
  ASSERT_TRUE(loop.Watch(a.get(), FdKind::kSession).ok());
  ASSERT_TRUE(loop.WantWritable(a.get(), true).ok());
  b.reset();  // EOF: readable (and writable)
  EXPECT_EQ(*loop.RunOnce(1000), 1);
  EXPECT_EQ(writes, 0) << "a session closed by its reader is never written";
}

TEST(FdLoopTest, DeadlinesFireOnceInOrderAndBoundTheWait) {
  FdLoop loop;
  ASSERT_TRUE(loop.Open().ok());
  UniqueFd a(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), b(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      c(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::vector<std::pair<int, uint64_t>> fired;
  loop.OnDeadline(FdKind::kSession, [&](int fd, uint64_t id) { fired.push_back({fd, id}); });
  ASSERT_TRUE(loop.Watch(a.get(), FdKind::kSession, 1).ok());
  ASSERT_TRUE(loop.Watch(b.get(), FdKind::kSession, 2).ok());
  ASSERT_TRUE(loop.Watch(c.get(), FdKind::kSession, 3).ok());
  const uint64_t t0 = MonotonicMs();
  ASSERT_TRUE(loop.SetDeadline(b.get(), t0 + 40).ok());
  ASSERT_TRUE(loop.SetDeadline(a.get(), t0 + 10000).ok());
  ASSERT_TRUE(loop.SetDeadline(a.get(), t0 + 20).ok());  // moved earlier
  ASSERT_TRUE(loop.SetDeadline(c.get(), t0 + 30).ok());
  loop.ClearDeadline(c.get());  // c never fires
  EXPECT_EQ(loop.deadline(c.get()), 0u);
  EXPECT_EQ(loop.num_deadlines(), 2u);
  for (int i = 0; i < 50 && fired.size() < 2; i++) ASSERT_TRUE(loop.RunOnce(5000).ok());
  const uint64_t took = MonotonicMs() - t0;
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0], (std::pair<int, uint64_t>{a.get(), 1}));
  EXPECT_EQ(fired[1], (std::pair<int, uint64_t>{b.get(), 2}));
  EXPECT_GE(took, 40u);
  EXPECT_LT(took, 2000u) << "RunOnce slept past the deadline";
  EXPECT_EQ(loop.num_deadlines(), 0u);
  EXPECT_EQ(*loop.RunOnce(20), 0) << "each deadline fires once";
  EXPECT_FALSE(loop.SetDeadline(12345, t0).ok());
}

TEST(FdLoopTest, UnwatchDropsTheDeadlineAndAHandlerMayRearm) {
  FdLoop loop;
  ASSERT_TRUE(loop.Open().ok());
  UniqueFd a(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), b(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  int a_fired = 0, b_fired = 0;
  loop.OnDeadline(FdKind::kGuestPort, [&](int fd, uint64_t) {
    if (fd == a.get()) a_fired++;
    if (fd == b.get() && ++b_fired == 1) {
      EXPECT_TRUE(loop.SetDeadline(fd, MonotonicMs()).ok());  // past: next turn, not a loop
    }
  });
  ASSERT_TRUE(loop.Watch(a.get(), FdKind::kGuestPort).ok());
  ASSERT_TRUE(loop.Watch(b.get(), FdKind::kGuestPort).ok());
  ASSERT_TRUE(loop.SetDeadline(a.get(), MonotonicMs()).ok());
  ASSERT_TRUE(loop.SetDeadline(b.get(), MonotonicMs()).ok());
  loop.Unwatch(a.get());
  EXPECT_EQ(loop.num_deadlines(), 1u);
  EXPECT_EQ(*loop.RunOnce(1000), 1);
  EXPECT_EQ(b_fired, 1);
  EXPECT_EQ(*loop.RunOnce(1000), 1);
  EXPECT_EQ(b_fired, 2);
  EXPECT_EQ(a_fired, 0);
}

}  // namespace
}  // namespace npa::agent
