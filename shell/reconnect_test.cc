// The shell follows its rings (shell/reconnect.h): a migration prepared and
// aborted, committed to a second agent, a destination that never answers,
// and an agent that dies and comes back. Frames are numbered (Guest,
// vf_switch_fixture.h) and reflected by each agent's own vhost-user back
// end: every frame must come back exactly once.
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "shell/reconnect_fixture.h"
#include "shell/vf/vf_switch.h"
#include "shell/vf/vf_switch_fixture.h"
#include "tests/support/fake_vfio_test_util.h"

namespace npa::shell {
namespace {

const std::string kTicket(32, '\x5a');

// Traffic runs until `n` more frames came back than `from`, or 5 s.
bool MoreReceived(Guest& g, uint64_t from, uint64_t n) {
  return WaitFor([&] { return g.received() >= from + n; }, 5000);
}

// The loopback VF (tests/plugins/test_good behind a fake VFIO device), for
// the tests that attach one; TearDown undoes it after closing the shell.
std::shared_ptr<FakeVfioShared> UseFakeVf() {
  setenv("NPA_PLUGIN_PATH", (std::string(NPA_TEST_PLUGIN_ROOT) + "/good").c_str(), 1);
  SetAnnounceOnAttachForTest(false);  // the loopback would reflect it
  auto shared = std::make_shared<FakeVfioShared>();
  SetVfDeviceIoFactoryForTest([shared](int, const control::VfOffer& o) -> std::unique_ptr<VfioDeviceIo> {
    return std::make_unique<FakeVfioDevice>(static_cast<uint16_t>(o.vendor()),
                                            static_cast<uint16_t>(o.device()), shared);
  });
  return shared;
}

uint32_t PathOf(npa_shell* sh) {
  npa_shell_info in{};
  in.struct_size = sizeof in;
  EXPECT_EQ(npa_shell_get_info(sh, &in), 0);
  return in.path;
}

void ExpectAllBackOnce(Guest& g) {
  EXPECT_GT(g.sent(), 0u);
  EXPECT_EQ(g.received(), g.sent()) << "first missing " << g.first_missing();
  EXPECT_EQ(g.missing(), 0u);
  EXPECT_EQ(g.dups(), 0u);
}

TEST_F(ReconnectTest, PrepareThenAbortLosesAndRepeatsNothing) {
  TestAgent& a = NewAgent("a.ctl", "agent-a");
  ASSERT_NO_FATAL_FAILURE(OpenShell(a));
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  ASSERT_TRUE(MoreReceived(*guest_, 0, 2000));

  control::MigrateReady r = a.Prepare(7);
  ASSERT_FALSE(r.has_error()) << r.error().message();
  EXPECT_EQ(r.migration_id(), 7u);
  ASSERT_EQ(r.vrings_size(), 2);
  for (const auto& v : r.vrings()) {
    // A clean stop: the back end completed everything it took.
    EXPECT_EQ(v.next_avail(), v.used_idx()) << "vring " << v.vring();
  }
  ASSERT_EQ(r.counters_size(), 1);
  // Stopped: nothing comes back; TX waits in the ring (the window is full).
  usleep(20000);
  const uint64_t held = guest_->received();
  usleep(100000);
  EXPECT_EQ(guest_->received(), held) << "RX while the rings are stopped";
  EXPECT_GT(guest_->sent(), guest_->received()) << "frames wait in the TX ring";
  // A second prepare is refused by the table, and nothing changes.
  control::MigrateReady twice = a.Prepare(8);
  ASSERT_TRUE(twice.has_error());
  EXPECT_NE(twice.error().message().find("migrate prepare is illegal in state MIGRATE_STOPPED"),
            std::string::npos) << twice.error().message();

  a.Abort(7);
  ASSERT_TRUE(MoreReceived(*guest_, held, 2000)) << "traffic after the abort";
  guest_->Finish();
  ExpectAllBackOnce(*guest_);
  npa_queue_stats st = Stats(sh_);
  EXPECT_EQ(st.tx_packets, guest_->sent());
  EXPECT_EQ(st.rx_packets, guest_->received());
  EXPECT_EQ(st.tx_resubmitted, 0u);
}

TEST_F(ReconnectTest, CommitMovesTheRingsToTheSecondAgentAtTheirIndices) {
  TestAgent& a = NewAgent("a.ctl", "agent-a");
  TestAgent& b = NewAgent("b.ctl", "agent-b");
  ASSERT_NO_FATAL_FAILURE(OpenShell(a));
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  ASSERT_TRUE(MoreReceived(*guest_, 0, 2000));
  const npa_queue_stats before = Stats(sh_);

  control::MigrateReady r = a.Prepare(11);
  ASSERT_FALSE(r.has_error()) << r.error().message();
  b.Serve();
  a.Commit(11, b.path(), kTicket, "agent-b", 2000, a.path());
  ASSERT_TRUE(b.Wait());
  // B was asked to resume exactly where A stopped, with the ticket.
  const control::Hello& h = b.hello();
  EXPECT_EQ(h.name(), "mguest");
  EXPECT_EQ(h.mac(), std::string("\x02\x00\x00\x00\x00\x07", 6));
  EXPECT_EQ(h.queue_pairs(), 1u);
  ASSERT_TRUE(h.has_resume());
  EXPECT_EQ(h.resume().ticket(), kTicket);
  ASSERT_EQ(h.resume().vrings_size(), r.vrings_size());
  for (int i = 0; i < r.vrings_size(); i++) {
    EXPECT_EQ(h.resume().vrings(i).vring(), r.vrings(i).vring());
    EXPECT_EQ(h.resume().vrings(i).next_avail(), r.vrings(i).next_avail());
  }
  ASSERT_EQ(h.resume().counters_size(), 1);
  EXPECT_GE(h.resume().counters(0).tx_packets(), before.tx_packets);
  // A's session is over: it sees EOF.
  auto eof = a.Receive(3000);
  EXPECT_FALSE(eof.ok());

  npa_event ev;
  ASSERT_TRUE(NextEvent(NPA_EVENT_MIGRATED, &ev, 5000));
  EXPECT_NE(std::string(ev.detail).find("agent-b"), std::string::npos) << ev.detail;
  const uint64_t at = guest_->received();
  ASSERT_TRUE(MoreReceived(*guest_, at, 2000)) << "traffic through B";
  guest_->Finish();
  ExpectAllBackOnce(*guest_);
  npa_queue_stats st = Stats(sh_);
  EXPECT_GE(st.tx_packets, before.tx_packets) << "counters keep going up";
  EXPECT_EQ(st.tx_packets, guest_->sent());
  EXPECT_EQ(st.rx_packets, guest_->received());
  EXPECT_EQ(st.tx_resubmitted, 0u);
  npa_shell_info in{};
  in.struct_size = sizeof in;
  ASSERT_EQ(npa_shell_get_info(sh_, &in), 0);
  EXPECT_EQ(in.path, NPA_PATH_EMULATED);
  EXPECT_EQ(in.link_up, 1);
}

TEST_F(ReconnectTest, AnUnreachableDestinationSendsTheShellBackToTheSource) {
  TestAgent& a = NewAgent("a.ctl", "agent-a");
  ASSERT_NO_FATAL_FAILURE(OpenShell(a));
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  ASSERT_TRUE(MoreReceived(*guest_, 0, 2000));
  control::MigrateReady r = a.Prepare(12);
  ASSERT_FALSE(r.has_error()) << r.error().message();
  a.Serve();  // the source takes the guest back
  const auto t0 = Clock::now();
  a.Commit(12, dir_ + "/nobody.ctl", kTicket, "agent-b", 300, a.path());
  ASSERT_TRUE(a.Wait());
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  EXPECT_GE(waited.count(), 250) << "the destination is tried for its timeout";
  ASSERT_TRUE(a.hello().has_resume());
  EXPECT_EQ(a.hello().resume().ticket(), kTicket) << "the same ticket";
  for (int i = 0; i < r.vrings_size(); i++)
    EXPECT_EQ(a.hello().resume().vrings(i).next_avail(), r.vrings(i).next_avail());
  npa_event ev;
  ASSERT_TRUE(NextEvent(NPA_EVENT_RECONNECTED, &ev, 5000));
  EXPECT_NE(std::string(ev.detail).find("return path"), std::string::npos) << ev.detail;
  const uint64_t at = guest_->received();
  ASSERT_TRUE(MoreReceived(*guest_, at, 2000));
  guest_->Finish();
  ExpectAllBackOnce(*guest_);
}

TEST_F(ReconnectTest, NobodyAnsweringIsAnErrorAndTheRingsAreKept) {
  TestAgent* a = &NewAgent("a.ctl", "agent-a");
  ASSERT_NO_FATAL_FAILURE(OpenShell(*a));
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  ASSERT_TRUE(MoreReceived(*guest_, 0, 2000));
  ASSERT_FALSE(a->Prepare(13).has_error());
  a->Unlisten();  // the source will not take it back either
  a->Commit(13, dir_ + "/nobody.ctl", kTicket, "agent-b", 200, a->path());
  npa_event ev;
  ASSERT_TRUE(NextEvent(NPA_EVENT_ERROR, &ev, 5000));
  EXPECT_EQ(ev.u.error, -EHOSTUNREACH);
  const std::string d(ev.detail);
  EXPECT_NE(d.find("no agent took the rings back"), std::string::npos) << d;
  // The rings are kept: a source that comes back later still resumes them
  // (the shell retries every second).
  TestAgent& again = NewAgent("a.ctl", "agent-a2");
  again.Serve();
  ASSERT_TRUE(again.Wait());
  EXPECT_EQ(again.hello().resume().ticket(), kTicket);
  ASSERT_TRUE(NextEvent(NPA_EVENT_RECONNECTED, &ev, 5000));
  const uint64_t at = guest_->received();
  ASSERT_TRUE(MoreReceived(*guest_, at, 2000));
  guest_->Finish();
  ExpectAllBackOnce(*guest_);
}

TEST_F(ReconnectTest, AnAgentRestartIsFollowedWithResume) {
  TestAgent& a = NewAgent("a.ctl", "agent-a");
  ASSERT_NO_FATAL_FAILURE(OpenShell(a, /*reconnect_ms=*/3000));
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  ASSERT_TRUE(MoreReceived(*guest_, 0, 2000));
  a.Serve();  // the restarted agent, on the same path
  a.Die();    // kill -9: the back end stops mid-traffic, the socket closes
  ASSERT_TRUE(a.Wait());
  const control::Hello& h = a.hello();
  ASSERT_TRUE(h.has_resume());
  EXPECT_TRUE(h.resume().ticket().empty()) << "no ticket after a restart";
  ASSERT_EQ(h.resume().vrings_size(), 2);
  for (const auto& v : h.resume().vrings())
    EXPECT_EQ(v.next_avail(), v.used_idx()) << "resumed at the used index, vring " << v.vring();
  npa_event ev;
  ASSERT_TRUE(NextEvent(NPA_EVENT_LINK_CHANGED, &ev, 5000));
  EXPECT_EQ(ev.u.link_up, 0u) << ev.detail;
  ASSERT_TRUE(NextEvent(NPA_EVENT_RECONNECTED, &ev, 5000));
  const uint64_t at = guest_->received();
  ASSERT_TRUE(MoreReceived(*guest_, at, 2000)) << "traffic through the restarted agent";
  guest_->Finish();
  // The loopback back end completes each frame as it takes it, so the
  // frames in flight at the crash had not been taken: each comes back once.
  ExpectAllBackOnce(*guest_);
  npa_queue_stats st = Stats(sh_);
  EXPECT_LE(st.tx_resubmitted, Guest::kWindow);
  EXPECT_EQ(st.tx_packets, guest_->sent());
}

// Issue 9: a guest on a VF keeps forwarding while its agent restarts (the
// device fd is the shell's); the emulated rings resume on the new agent
// beside it, and the VF stays.
TEST_F(ReconnectTest, AVfKeepsForwardingWhileItsAgentRestarts) {
  auto shared = UseFakeVf();
  TestAgent& a = NewAgent("a.ctl", "agent-a");
  ASSERT_NO_FATAL_FAILURE(OpenShell(a));
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  ASSERT_TRUE(MoreReceived(*guest_, 0, 1000));
  control::VfAccept acc = a.Offer(3, kLbVendor, kLbDevice);
  ASSERT_TRUE(acc.accepted()) << acc.reason();
  ASSERT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > 1000; }, 5000));

  a.Unlisten();  // the agent is down for a while
  a.Die();
  npa_event ev;
  ASSERT_TRUE(NextEvent(NPA_EVENT_LINK_CHANGED, &ev, 5000));
  EXPECT_EQ(ev.u.link_up, 0u);
  const uint64_t vf0 = Stats(sh_).rx_vf_packets;
  EXPECT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > vf0 + 1000; }, 5000))
      << "the VF forwards while no agent runs";
  TestAgent& again = NewAgent("a.ctl", "agent-a-restarted");
  again.Serve();
  ASSERT_TRUE(again.Wait());
  ASSERT_TRUE(again.hello().has_resume());
  ASSERT_TRUE(NextEvent(NPA_EVENT_RECONNECTED, &ev, 5000));
  npa_shell_info in{};
  in.struct_size = sizeof in;
  ASSERT_EQ(npa_shell_get_info(sh_, &in), 0);
  EXPECT_EQ(in.path, NPA_PATH_VF) << "the VF stays";
  const uint64_t vf1 = Stats(sh_).rx_vf_packets;
  EXPECT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > vf1 + 1000; }, 5000));
  guest_->Finish();
  ExpectAllBackOnce(*guest_);
  npa_shell_close(sh_);  // gives the VF back before the factory goes
  sh_ = nullptr;
  EXPECT_EQ(shared->destroyed.load(), shared->created.load());
}

// A guest on a VF, then its agent gone. The loopback VF runs millions of
// frames a second, past one Guest's numbering within a second or two, so
// each phase gets a Guest of its own, and each ends with every frame back:
// what a dead agent held for RX is lost on the host's side (reconnect.h),
// and these tests count the rest exactly.
class ReconnectVfTest : public ReconnectTest {
 protected:
  // Opens the shell on agent "a.ctl" with reconnect_ms, attaches the VF
  // (offer `offer`), then kills the agent (its socket gone too).
  void OnVfThenAgentGone(uint32_t reconnect_ms, uint64_t offer) {
    shared_ = UseFakeVf();
    TestAgent& a = NewAgent("a.ctl", "agent-a");
    ASSERT_NO_FATAL_FAILURE(OpenShell(a, reconnect_ms));
    guest_ = std::make_unique<Guest>(sh_);
    guest_->Start();
    ASSERT_TRUE(MoreReceived(*guest_, 0, 1000));
    ASSERT_TRUE(a.Offer(offer, kLbVendor, kLbDevice).accepted());
    ASSERT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > 1000; }, 5000));
    guest_->Finish();
    ExpectAllBackOnce(*guest_);
    a.Unlisten();
    a.Die();
  }
  // A new Guest, once the VF carried 1000 more frames.
  void NewGuestOnVf(const char* when) {
    guest_ = std::make_unique<Guest>(sh_);
    guest_->Start();
    const uint64_t vf0 = Stats(sh_).rx_vf_packets;
    EXPECT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > vf0 + 1000; }, 5000))
        << "the VF forwards " << when;
  }
  // The agent back on "a.ctl": the shell resumes there.
  void AgentComesBack() {
    TestAgent& again = NewAgent("a.ctl", "agent-a-back");
    again.Serve();
    ASSERT_TRUE(again.Wait()) << "the shell came back to the agent";
    ASSERT_TRUE(again.hello().has_resume());
    npa_event ev;
    ASSERT_TRUE(NextEvent(NPA_EVENT_RECONNECTED, &ev, 5000));
  }
  void CloseAndCheckTheVf() {
    npa_shell_close(sh_);  // gives the VF back before the factory goes
    sh_ = nullptr;
    EXPECT_EQ(shared_->destroyed.load(), shared_->created.load());
  }
  std::shared_ptr<FakeVfioShared> shared_;
};

// An agent away longer than reconnect_ms: the shell says so once
// (EHOSTUNREACH), the VF goes on, and the shell keeps trying once a second,
// so an agent that comes back later still gets the rings (before, the
// control thread ended there and the guest never reconnected).
TEST_F(ReconnectVfTest, AVfGuestKeepsRetryingAfterReconnectMs) {
  ASSERT_NO_FATAL_FAILURE(OnVfThenAgentGone(/*reconnect_ms=*/200, 5));
  npa_event ev;
  ASSERT_TRUE(NextEvent(NPA_EVENT_ERROR, &ev, 5000));
  EXPECT_EQ(ev.u.error, -EHOSTUNREACH);
  EXPECT_NE(std::string(ev.detail).find(
                "no agent took the rings back; the VF keeps forwarding, retrying every second"),
            std::string::npos)
      << ev.detail;
  NewGuestOnVf("after the shell gave up its fast retries");
  guest_->Finish();
  ExpectAllBackOnce(*guest_);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // into the 1 s retries
  ASSERT_NO_FATAL_FAILURE(AgentComesBack());
  EXPECT_EQ(PathOf(sh_), NPA_PATH_VF) << "the VF stays";
  NewGuestOnVf("after the resume");
  guest_->Finish();
  ExpectAllBackOnce(*guest_);
  CloseAndCheckTheVf();
}

// While no agent runs, the host may still take the VF back (vfio-pci's REQ
// when the device is unbound): the control thread serves the REQ at once,
// not after its resume attempts, the guest falls back to the emulated
// rings, and those are resumed by the agent that comes back, losing
// nothing.
TEST_F(ReconnectVfTest, AVfRequestIsServedWhileNoAgentRuns) {
  ASSERT_NO_FATAL_FAILURE(OnVfThenAgentGone(/*reconnect_ms=*/60000, 6));
  npa_event ev;
  ASSERT_TRUE(NextEvent(NPA_EVENT_LINK_CHANGED, &ev, 5000));
  EXPECT_EQ(ev.u.link_up, 0u);
  NewGuestOnVf("while no agent runs");
  const int req = shared_->req_efd.load();
  ASSERT_GE(req, 0) << "REQ was wired";
  const auto t0 = Clock::now();
  uint64_t one = 1;
  ASSERT_EQ(write(req, &one, sizeof one), 8);
  ASSERT_TRUE(NextEvent(NPA_EVENT_PATH_CHANGED, &ev, 10000)) << "the REQ was not served";
  // Served within the fallback's own bounds (2 s for the queues' acks under
  // REQ; 10 s leaves room for a loaded sanitizer run), not after the
  // 60 s of resume attempts the old blocking loop would have made first.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(), 10000);
  EXPECT_EQ(ev.u.path, NPA_PATH_EMULATED);
  EXPECT_NE(std::string(ev.detail).find("REQ"), std::string::npos) << ev.detail;
  ASSERT_NO_FATAL_FAILURE(AgentComesBack());
  EXPECT_EQ(PathOf(sh_), NPA_PATH_EMULATED);
  const uint64_t at = guest_->received();
  ASSERT_TRUE(MoreReceived(*guest_, at, 2000)) << "traffic through the restarted agent";
  guest_->Finish();
  ExpectAllBackOnce(*guest_);
  CloseAndCheckTheVf();
}

// A guest on a VF is not stopped for a migration (the agent revokes the VF
// first): MigrateReady carries the table's refusal and the VF goes on.
TEST_F(ReconnectTest, PrepareOnAVfIsRefusedAndNothingStops) {
  auto shared = UseFakeVf();
  TestAgent& a = NewAgent("a.ctl", "agent-a");
  ASSERT_NO_FATAL_FAILURE(OpenShell(a));
  guest_ = std::make_unique<Guest>(sh_);
  guest_->Start();
  ASSERT_TRUE(a.Offer(4, kLbVendor, kLbDevice).accepted());
  control::MigrateReady r = a.Prepare(21);
  ASSERT_TRUE(r.has_error());
  EXPECT_EQ(r.migration_id(), 21u);
  EXPECT_EQ(r.error().code(), control::Error::UNEXPECTED);
  EXPECT_NE(r.error().message().find("migrate prepare is illegal in state ON_VF"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(r.vrings_size(), 0);
  const uint64_t vf0 = Stats(sh_).rx_vf_packets;
  EXPECT_TRUE(WaitFor([&] { return Stats(sh_).rx_vf_packets > vf0 + 1000; }, 5000));
  guest_->Finish();
  ExpectAllBackOnce(*guest_);
}

// Detached, the control thread waits between retries on the stop eventfd:
// closing the shell does not wait for the next retry.
TEST_F(ReconnectTest, ClosingADetachedShellIsPrompt) {
  TestAgent& a = NewAgent("a.ctl", "agent-a");
  ASSERT_NO_FATAL_FAILURE(OpenShell(a));
  ASSERT_FALSE(a.Prepare(30).has_error());
  a.Unlisten();
  a.Commit(30, dir_ + "/nobody.ctl", kTicket, "agent-b", 100, a.path());
  npa_event ev;
  ASSERT_TRUE(NextEvent(NPA_EVENT_ERROR, &ev, 5000));
  const auto t0 = Clock::now();
  npa_shell_close(sh_);
  sh_ = nullptr;
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(), 500);
}

TEST_F(ReconnectTest, WithoutReconnectALostSessionIsAnError) {
  TestAgent& a = NewAgent("a.ctl", "agent-a");
  a.Serve();
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.control_path = a.path().c_str();
  oa.name = "mguest";
  oa.flags = NPA_SHELL_F_NO_HUGEPAGES | NPA_SHELL_F_NO_RECONNECT;
  ASSERT_EQ(npa_shell_open(&oa, &sh_), 0) << npa_shell_last_error(nullptr);
  ASSERT_TRUE(a.Wait());
  a.Die();
  npa_event ev;
  ASSERT_TRUE(NextEvent(NPA_EVENT_ERROR, &ev, 5000));
  EXPECT_EQ(ev.u.error, -ECONNRESET);
}

TEST_F(ReconnectTest, AnOldCallersOpenArgsGetTheDefaults) {
  TestAgent& a = NewAgent("a.ctl", "agent-a");
  a.Serve();
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.struct_size = offsetof(npa_shell_open_args, reconnect_ms);  // ABI 1.1's size
  oa.control_path = a.path().c_str();
  oa.flags = NPA_SHELL_F_NO_HUGEPAGES;
  ASSERT_EQ(npa_shell_open(&oa, &sh_), 0) << npa_shell_last_error(nullptr);
  ASSERT_TRUE(a.Wait());
  npa_shell_close(sh_);
  sh_ = nullptr;
  oa.struct_size = offsetof(npa_shell_open_args, reconnect_ms) - 4;
  EXPECT_EQ(npa_shell_open(&oa, &sh_), -EINVAL);
}

}  // namespace
}  // namespace npa::shell
