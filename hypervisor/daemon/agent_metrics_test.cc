#include "hypervisor/daemon/agent_metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>

#include "tests/support/fake_guest_port.h"
#include "tests/support/http_get.h"

namespace npa::agent {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

// One frame through the fake port's TX (counted on ReleaseTx) and one into
// its RX (EnqueueRx), as the dataplane would.
void MoveFrames(FakeGuestPort& p, uint16_t qp, int tx, int rx, size_t len) {
  for (int i = 0; i < tx; i++) p.GuestSend(qp, std::vector<uint8_t>(len, 1));
  GuestFrame f[64];
  const uint16_t n = p.PeekTx(qp, f, 64);
  p.ReleaseTx(qp, n);
  std::vector<uint8_t> data(len, 2);
  iovec seg{data.data(), data.size()};
  for (int i = 0; i < rx; i++) {
    PacketRef r{nullptr, &seg, 1, static_cast<uint32_t>(len)};
    p.EnqueueRx(qp, &r, 1, RxFull::kDrop);
  }
}

using npa::testing::HttpGet;

AgentEvent Ev(EventKind kind, uint64_t id, const std::string& guest, const std::string& vf = "",
             uint64_t duration_ns = 0) {
  AgentEvent e;
  e.kind = kind;
  e.guest_id = id;
  e.guest = guest;
  e.vf = vf;
  e.duration_ns = duration_ns;
  return e;
}

TEST(ParseMetricsListenTest, WantsANumericIpv4AddressAndAPort) {
  EXPECT_TRUE(ParseMetricsListen("127.0.0.1:9464").ok());
  EXPECT_TRUE(ParseMetricsListen("10.1.2.3:0").ok());
  for (const char* bad : {"9464", ":9464", "localhost:9464", "127.0.0.1", "127.0.0.1:",
                          "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:9x", "[::1]:9464"}) {
    absl::Status s = ParseMetricsListen(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_NE(s.message().find(bad), std::string::npos) << s.message();  // names the input
  }
}

TEST(AgentMetricsTest, GuestQueueCountersCarryTheGuestNameAndQueue) {
  Dataplane dp(Dataplane::Options{}, nullptr);  // not started: the snapshot alone
  auto a = std::make_shared<FakeGuestPort>(2), b = std::make_shared<FakeGuestPort>(1);
  a->SetReady(true);
  b->SetReady(true);
  ASSERT_TRUE(dp.AddGuest(3, a, std::nullopt).ok());
  ASSERT_TRUE(dp.AddGuest(4, b, std::nullopt).ok());
  MoveFrames(*a, 0, 5, 2, 100);
  MoveFrames(*a, 1, 1, 0, 60);
  MoveFrames(*b, 0, 0, 7, 64);
  AgentMetrics m(&dp, {.threads = 2, .guest_sample_ms = 0});
  m.SetGuestName(3, "vm-a");
  const std::string t = m.Scrape();
  EXPECT_TRUE(Has(t, "npa_guest_tx_packets_total{guest=\"vm-a\",queue=\"0\"} 5")) << t;
  EXPECT_TRUE(Has(t, "npa_guest_tx_bytes_total{guest=\"vm-a\",queue=\"0\"} 500")) << t;
  EXPECT_TRUE(Has(t, "npa_guest_rx_packets_total{guest=\"vm-a\",queue=\"0\"} 2")) << t;
  EXPECT_TRUE(Has(t, "npa_guest_rx_bytes_total{guest=\"vm-a\",queue=\"0\"} 200")) << t;
  EXPECT_TRUE(Has(t, "npa_guest_tx_packets_total{guest=\"vm-a\",queue=\"1\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_guest_tx_bytes_total{guest=\"vm-a\",queue=\"1\"} 60")) << t;
  // Not named (no guest_up seen): labelled by its id.
  EXPECT_TRUE(Has(t, "npa_guest_rx_packets_total{guest=\"guest4\",queue=\"0\"} 7")) << t;
  EXPECT_TRUE(Has(t, "npa_guest_rx_dropped_total{guest=\"guest4\",queue=\"0\"} 0")) << t;
  EXPECT_TRUE(Has(t, "# TYPE npa_guest_rx_packets_total counter")) << t;
  EXPECT_TRUE(Has(t, "npa_dataplane_loops_total 0")) << t;
  // A guest the dataplane no longer serves is gone from the next scrape.
  ASSERT_TRUE(dp.RemoveGuest(3).ok());
  m.ForgetGuest(3);
  EXPECT_EQ(m.Scrape().find("vm-a"), std::string::npos);
}

TEST(AgentMetricsTest, AScrapeReadsTheDevicesAtMostOncePerSamplePeriod) {
  Dataplane dp(Dataplane::Options{}, nullptr);
  auto a = std::make_shared<FakeGuestPort>(1);
  ASSERT_TRUE(dp.AddGuest(1, a, std::nullopt).ok());
  MoveFrames(*a, 0, 1, 0, 60);
  AgentMetrics m(&dp, {.threads = 1, .guest_sample_ms = 60000});
  m.SetGuestName(1, "g");
  EXPECT_TRUE(Has(m.Scrape(), "npa_guest_tx_packets_total{guest=\"g\",queue=\"0\"} 1"));
  MoveFrames(*a, 0, 4, 0, 60);
  // Within the period: the cached copy, not a second read of the device.
  EXPECT_TRUE(Has(m.Scrape(), "npa_guest_tx_packets_total{guest=\"g\",queue=\"0\"} 1"));
  m.SetGuestName(1, "g2");  // a relabel takes a fresh sample
  EXPECT_TRUE(Has(m.Scrape(), "npa_guest_tx_packets_total{guest=\"g2\",queue=\"0\"} 5"));
}

TEST(AgentMetricsTest, VfStateIsOneForTheCurrentStateAndCountersPerVf) {
  AgentMetrics m(nullptr);
  m.SetVfStates({{"0000:03:00.2", "ACTIVE"}, {"0000:03:00.3", "FREE"}});
  m.CountVfAttach("0000:03:00.2");
  m.CountVfAttach("0000:03:00.2");
  m.CountVfReset("0000:03:00.3");
  std::string t = m.Scrape();
  EXPECT_TRUE(Has(t, "npa_vf_state{state=\"ACTIVE\",vf=\"0000:03:00.2\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_vf_state{state=\"FREE\",vf=\"0000:03:00.2\"} 0")) << t;
  EXPECT_TRUE(Has(t, "npa_vf_state{state=\"FREE\",vf=\"0000:03:00.3\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_vf_state{state=\"FAILED\",vf=\"0000:03:00.3\"} 0")) << t;
  EXPECT_TRUE(Has(t, "npa_vf_attaches_total{vf=\"0000:03:00.2\"} 2")) << t;
  EXPECT_TRUE(Has(t, "npa_vf_resets_total{vf=\"0000:03:00.3\"} 1")) << t;
  // The VF moves on; one leaves the pool: its state series go, its counters stay.
  m.SetVfStates({{"0000:03:00.2", "REVOKING"}});
  t = m.Scrape();
  EXPECT_TRUE(Has(t, "npa_vf_state{state=\"REVOKING\",vf=\"0000:03:00.2\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_vf_state{state=\"ACTIVE\",vf=\"0000:03:00.2\"} 0")) << t;
  EXPECT_EQ(t.find("npa_vf_state{state=\"FREE\",vf=\"0000:03:00.3\"}"), std::string::npos) << t;
  EXPECT_TRUE(Has(t, "npa_vf_resets_total{vf=\"0000:03:00.3\"} 1")) << t;
}

TEST(AgentMetricsTest, DurationHistogramsInSeconds) {
  AgentMetrics m(nullptr);
  m.ObserveRevoke(0.012);
  m.ObserveRevoke(3.0);
  m.ObserveSwitch(0.0009);
  m.ObserveMigration("source", 1.5);
  const std::string t = m.Scrape();
  EXPECT_TRUE(Has(t, "npa_revoke_duration_seconds_count 2")) << t;
  EXPECT_TRUE(Has(t, "npa_revoke_duration_seconds_sum 3.012")) << t;
  EXPECT_TRUE(Has(t, "npa_revoke_duration_seconds_bucket{le=\"0.01\"} 0")) << t;
  EXPECT_TRUE(Has(t, "npa_revoke_duration_seconds_bucket{le=\"0.025\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_revoke_duration_seconds_bucket{le=\"5\"} 2")) << t;
  EXPECT_TRUE(Has(t, "npa_switch_duration_seconds_bucket{le=\"0.001\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_migration_duration_seconds_bucket{role=\"source\",le=\"2.5\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_migration_duration_seconds_bucket{role=\"source\",le=\"1\"} 0")) << t;
}

TEST(AgentMetricsTest, LifecycleEventsFeedNamesCountsAndHistograms) {
  Dataplane dp(Dataplane::Options{}, nullptr);
  auto a = std::make_shared<FakeGuestPort>(1);
  ASSERT_TRUE(dp.AddGuest(9, a, std::nullopt).ok());
  AgentMetrics m(&dp, {.threads = 1, .guest_sample_ms = 0});
  AgentEvents events;
  events.AddListener([&m](const AgentEvent& e) { m.OnEvent(e); });
  const std::string vf = "0000:03:00.2";
  events.Publish(Ev(EventKind::kGuestUp, 9, "vm9"));
  events.Publish(Ev(EventKind::kVfAttach, 9, "vm9", vf));
  events.Publish(Ev(EventKind::kVfAccept, 9, "vm9", vf));
  events.Publish(Ev(EventKind::kRevokeBegin, 9, "vm9", vf));
  events.Publish(Ev(EventKind::kRevokeDone, 9, "vm9", vf, 40'000'000));
  events.Publish(Ev(EventKind::kVfReset, 9, "vm9", vf));
  // An accept with no attach before it (a late answer) observes nothing.
  events.Publish(Ev(EventKind::kVfAccept, 9, "vm9", vf));
  events.Publish(Ev(EventKind::kMigrationOut, 9, "vm9", "", 2'000'000'000));
  events.Publish(Ev(EventKind::kMigrationIn, 10, "vm10", "", 300'000'000));
  std::string t = m.Scrape();
  EXPECT_TRUE(Has(t, "npa_guest_tx_packets_total{guest=\"vm9\",queue=\"0\"} 0")) << t;
  EXPECT_TRUE(Has(t, "npa_vf_attaches_total{vf=\"0000:03:00.2\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_vf_resets_total{vf=\"0000:03:00.2\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_switch_duration_seconds_count 1")) << t;
  EXPECT_TRUE(Has(t, "npa_revoke_duration_seconds_count 1")) << t;
  EXPECT_TRUE(Has(t, "npa_revoke_duration_seconds_bucket{le=\"0.05\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_revoke_duration_seconds_bucket{le=\"0.025\"} 0")) << t;
  EXPECT_TRUE(Has(t, "npa_migration_duration_seconds_count{role=\"source\"} 1")) << t;
  EXPECT_TRUE(Has(t, "npa_migration_duration_seconds_count{role=\"destination\"} 1")) << t;
  events.Publish(Ev(EventKind::kGuestDown, 9, "vm9"));
  EXPECT_EQ(m.Scrape().find("vm9"), std::string::npos);
}

TEST(AgentMetricsTest, ServesOverHttpOnlyOnTheGivenAddress) {
  Dataplane dp(Dataplane::Options{}, nullptr);
  auto a = std::make_shared<FakeGuestPort>(1);
  ASSERT_TRUE(dp.AddGuest(1, a, std::nullopt).ok());
  MoveFrames(*a, 0, 3, 0, 80);
  AgentMetrics m(&dp, {.threads = 1, .guest_sample_ms = 0});
  m.SetGuestName(1, "web");
  EXPECT_EQ(m.port(), 0);
  ASSERT_TRUE(m.Serve("127.0.0.1:0").ok());
  const int port = m.port();
  ASSERT_GT(port, 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(m.Serve("127.0.0.1:0")));
  const std::string r = HttpGet(port, "/metrics");
  EXPECT_EQ(r.rfind("HTTP/1.", 0), 0u) << r;
  EXPECT_NE(r.find(" 200 "), std::string::npos) << r;
  EXPECT_NE(r.find("npa_guest_tx_bytes_total{guest=\"web\",queue=\"0\"} 240"), std::string::npos)
      << r;
  // Bound to 127.0.0.1 alone: another loopback address finds nothing there.
  EXPECT_EQ(HttpGet(port, "/metrics", "127.0.0.2"), "");
  // The port is taken: a second server says so, naming the address.
  AgentMetrics other(nullptr);
  absl::Status s = other.Serve("127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find("127.0.0.1:" + std::to_string(port)), std::string::npos) << s;
  // A bad address never starts a server.
  EXPECT_TRUE(absl::IsInvalidArgument(other.Serve(std::to_string(port))));
  EXPECT_EQ(other.port(), 0);
  // A thread count out of range is refused.
  AgentMetrics many(nullptr, {.threads = 64, .guest_sample_ms = 0});
  EXPECT_TRUE(absl::IsInvalidArgument(many.Serve("127.0.0.1:0")));
}

}  // namespace
}  // namespace npa::agent
