#include "hypervisor/migration/migration_channel.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <condition_variable>
#include <mutex>

#include "common/clock.h"
#include "gtest/gtest.h"
#include "hypervisor/migration/migration_state.h"
#include "tests/support/test_certs.h"

namespace npa::migration {
namespace {

using npa::testing::CertPaths;
using npa::testing::TestPki;

control::MigrationState State(uint64_t id, bool with_rings) {
  control::MigrationState s;
  s.set_version(kMigrationStateVersion);
  s.set_migration_id(id);
  s.set_source_agent("agent-a");
  s.set_name("g1");
  s.set_mac(std::string("\x02\x00\x00\x00\x00\x01", 6));
  s.set_mtu(1500);
  s.set_queue_pairs(1);
  if (with_rings) {
    for (uint32_t v = 0; v < 2; v++) {
      auto* r = s.add_vrings();
      r->set_vring(v);
      r->set_next_avail(100 + v);
      r->set_used_idx(100 + v);
    }
  }
  return s;
}

// Records every call; answers as configured.
class FakeHandler : public DestinationHandler {
 public:
  absl::StatusOr<control::MigrationAccept> OnOffer(const control::MigrationState& st,
                                                  const std::string& peer) override {
    std::lock_guard<std::mutex> g(mu);
    offers++;
    offer_peer = peer;
    if (!refuse_offer.ok()) return refuse_offer;
    control::MigrationAccept a;
    a.set_ticket(std::string(32, 't'));
    a.set_control_path("/run/npa-b.sock");
    a.set_agent_name("agent-b");
    a.set_hold_ms(5000);
    last_id = st.migration_id();
    return a;
  }
  absl::Status OnCommit(const control::MigrationState& st) override {
    std::lock_guard<std::mutex> g(mu);
    commits++;
    committed_rings = st.vrings_size();
    return refuse_commit;
  }
  void OnLateFrames(uint64_t id, std::vector<std::string> f, uint64_t dropped, bool last) override {
    std::lock_guard<std::mutex> g(mu);
    EXPECT_EQ(id, last_id);
    for (auto& x : f) frames.push_back(std::move(x));
    late_dropped += dropped;
    batches++;
    if (last) got_last = true;
    cv.notify_all();
  }
  void OnChannelClosed(uint64_t id, const absl::Status& why) override {
    std::lock_guard<std::mutex> g(mu);
    closed.emplace_back(id, why);
    cv.notify_all();
  }
  // Wait (bounded) until `pred` holds under the lock.
  bool WaitFor(const std::function<bool()>& pred, int ms = 5000) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::milliseconds(ms), pred);
  }

  std::mutex mu;
  std::condition_variable cv;
  absl::Status refuse_offer, refuse_commit;
  int offers = 0, commits = 0, committed_rings = 0, batches = 0;
  uint64_t last_id = 0, late_dropped = 0;
  bool got_last = false;
  std::string offer_peer;
  std::vector<std::string> frames;
  std::vector<std::pair<uint64_t, absl::Status>> closed;
};

class MigrationChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = TestPki::Create();
    ASSERT_TRUE(p.ok()) << p.status();
    pki_ = std::move(*p);
    auto a = pki_->Issue("agent-a"), b = pki_->Issue("agent-b");
    ASSERT_TRUE(a.ok() && b.ok());
    a_ = Cfg(*a);
    b_ = Cfg(*b);
  }
  TlsConfig Cfg(const CertPaths& c) { return {c.cert_file, c.key_file, pki_->ca_file()}; }
  void StartListener(ListenerOptions opt = {}, const TlsConfig* tls = nullptr) {
    auto l = MigrationListener::Start("127.0.0.1:0", tls ? *tls : b_, &h_, opt);
    ASSERT_TRUE(l.ok()) << l.status();
    listener_ = std::move(*l);
    addr_ = "127.0.0.1:" + std::to_string(listener_->port());
  }
  UniqueFd RawConnect() {
    UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(listener_->port());
    EXPECT_EQ(connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    return s;
  }
  // ms until the listener closes `s` (reads 0 or an error), or -1 after limit_ms.
  static int64_t MsUntilClosed(int fd, int limit_ms) {
    const uint64_t t0 = MonotonicMs();
    while (MonotonicMs() - t0 < static_cast<uint64_t>(limit_ms)) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) {
        char buf[512];
        const ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) return static_cast<int64_t>(MonotonicMs() - t0);
      }
    }
    return -1;
  }
  bool WaitOpen(int want, int ms = 5000) {
    const uint64_t t0 = MonotonicMs();
    while (MonotonicMs() - t0 < static_cast<uint64_t>(ms)) {
      if (listener_->open_connections() == want) return true;
      usleep(10000);
    }
    return false;
  }

  std::unique_ptr<TestPki> pki_;
  TlsConfig a_, b_;
  FakeHandler h_;
  std::unique_ptr<MigrationListener> listener_;
  std::string addr_;
};

TEST_F(MigrationChannelTest, HappyPath) {
  StartListener();
  auto c = MigrationClient::Connect(addr_, a_, 3000);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->peer_name(), "agent-b");
  auto acc = (*c)->Offer(State(9, false), 3000);
  ASSERT_TRUE(acc.ok()) << acc.status();
  EXPECT_EQ(acc->migration_id(), 9u);
  EXPECT_EQ(acc->ticket(), std::string(32, 't'));
  EXPECT_EQ(acc->control_path(), "/run/npa-b.sock");
  EXPECT_EQ(h_.offer_peer, "agent-a");
  ASSERT_TRUE((*c)->Commit(State(9, true), 3000).ok());
  EXPECT_EQ(h_.committed_rings, 2);

  // 30 frames of 9000 bytes need several envelopes; one of 70000 fits none.
  std::vector<std::string> frames;
  for (int i = 0; i < 30; i++) frames.push_back(std::string(9000, static_cast<char>('a' + i % 26)));
  frames.insert(frames.begin() + 5, std::string(70000, 'X'));
  auto oversize = (*c)->SendLateFrames(9, frames, 4, true);
  ASSERT_TRUE(oversize.ok()) << oversize.status();
  EXPECT_EQ(*oversize, 1u);
  ASSERT_TRUE(h_.WaitFor([&] { return h_.got_last; }));
  {
    std::lock_guard<std::mutex> g(h_.mu);
    ASSERT_EQ(h_.frames.size(), 30u);  // every frame once, in order
    for (int i = 0; i < 30; i++) EXPECT_EQ(h_.frames[i][0], static_cast<char>('a' + i % 26)) << i;
    EXPECT_EQ(h_.late_dropped, 5u);    // A's 4 + the oversize one: exact on both sides
    EXPECT_GE(h_.batches, 5);
  }
  ASSERT_TRUE(listener_->SendDone(9, true, "resumed").ok());
  EXPECT_EQ(listener_->SendDone(9, true, "again").code(), absl::StatusCode::kFailedPrecondition);
  auto done = (*c)->AwaitDone(3000);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->resumed());
  EXPECT_EQ(done->reason(), "resumed");
  c->reset();
  ASSERT_TRUE(h_.WaitFor([&] { return !h_.closed.empty(); }));
  EXPECT_EQ(h_.closed[0].first, 9u);
  EXPECT_TRUE(h_.closed[0].second.ok()) << h_.closed[0].second;
  EXPECT_TRUE(WaitOpen(0));
  EXPECT_EQ(listener_->SendDone(9, true, "").code(), absl::StatusCode::kNotFound);
}

TEST_F(MigrationChannelTest, RefusedOfferComesBackAsAClearError) {
  StartListener();
  h_.refuse_offer = absl::ResourceExhaustedError("destination cannot serve guest g1: no free guest slot (16 of 16 in use)");
  auto c = MigrationClient::Connect(addr_, a_, 3000);
  ASSERT_TRUE(c.ok()) << c.status();
  auto acc = (*c)->Offer(State(3, false), 3000);
  ASSERT_FALSE(acc.ok());
  EXPECT_EQ(acc.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(acc.status().message(), "destination " + addr_ +
                                        " (CN agent-b) refused the offer: destination cannot serve guest g1: "
                                        "no free guest slot (16 of 16 in use)");
  // A malformed offer is refused before the handler sees it.
  control::MigrationState bad = State(4, false);
  bad.set_mtu(20);
  auto local = (*c)->Offer(bad, 3000);
  EXPECT_NE(local.status().message().find("offer not sent: migration state: mtu 20"), std::string::npos);
  // The connection carries a new offer after a refusal.
  {
    std::lock_guard<std::mutex> g(h_.mu);
    h_.refuse_offer = absl::OkStatus();
  }
  auto again = (*c)->Offer(State(5, false), 3000);
  ASSERT_TRUE(again.ok()) << again.status();
  h_.refuse_commit = absl::FailedPreconditionError("guest g1: slot reservation lost");
  absl::Status cm = (*c)->Commit(State(5, true), 3000);
  EXPECT_EQ(cm.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(cm.message().find("refused the commit: guest g1: slot reservation lost"), std::string::npos) << cm;
  EXPECT_EQ(h_.offers, 2);
}

TEST_F(MigrationChannelTest, UntrustedClientIsRefusedAndNothingChanges) {
  StartListener();
  auto evil = pki_->SelfSigned("mallory");
  ASSERT_TRUE(evil.ok());
  auto c = MigrationClient::Connect(addr_, Cfg(*evil), 3000);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied) << c.status();
  EXPECT_NE(c.status().message().find(addr_), std::string::npos) << c.status();
  EXPECT_EQ(h_.offers, 0);
  // A client trusting another CA refuses B in turn.
  auto other = pki_->OtherCaFile();
  ASSERT_TRUE(other.ok());
  TlsConfig wrong_ca = a_;
  wrong_ca.ca_file = *other;
  auto d = MigrationClient::Connect(addr_, wrong_ca, 3000);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("certificate verify failed"), std::string::npos) << d.status();
  // The listener still serves good peers.
  auto good = MigrationClient::Connect(addr_, a_, 3000);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE((*good)->Offer(State(1, false), 3000).ok());
}

TEST_F(MigrationChannelTest, UntrustedServerIsRefused) {
  auto evil = pki_->SelfSigned("rogue-b");
  ASSERT_TRUE(evil.ok());
  TlsConfig rogue = Cfg(*evil);
  StartListener({}, &rogue);
  auto c = MigrationClient::Connect(addr_, a_, 3000);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(c.status().message().find("certificate verify failed: self-signed certificate"), std::string::npos)
      << c.status();
}

TEST_F(MigrationChannelTest, SourceDropsMidTransfer) {
  StartListener();
  auto c = MigrationClient::Connect(addr_, a_, 3000);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Offer(State(11, false), 3000).ok());
  c->reset();  // A dies between offer and commit
  ASSERT_TRUE(h_.WaitFor([&] { return !h_.closed.empty(); }));
  EXPECT_EQ(h_.closed[0].first, 11u);
  EXPECT_EQ(h_.closed[0].second.code(), absl::StatusCode::kUnavailable) << h_.closed[0].second;
  EXPECT_EQ(h_.commits, 0);
}

TEST_F(MigrationChannelTest, DestinationDropsMidTransfer) {
  StartListener();
  auto c = MigrationClient::Connect(addr_, a_, 3000);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Offer(State(12, false), 3000).ok());
  listener_->Stop();  // B goes away before the commit
  ASSERT_EQ(h_.closed.size(), 1u);  // Stop joined every connection
  EXPECT_EQ(h_.closed[0].second.code(), absl::StatusCode::kCancelled);
  absl::Status cm = (*c)->Commit(State(12, true), 3000);
  ASSERT_FALSE(cm.ok());
  EXPECT_NE(cm.message().find("CN agent-b"), std::string::npos) << cm;
  EXPECT_EQ(h_.commits, 0);
}

TEST_F(MigrationChannelTest, GarbageAndStalledPeersAreCutOff) {
  ListenerOptions opt;
  opt.handshake_timeout_ms = 300;
  opt.idle_timeout_ms = 400;
  StartListener(opt);
  // Not TLS at all: closed at once.
  UniqueFd junk = RawConnect();
  const char kHttp[] = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_GT(send(junk.get(), kHttp, sizeof(kHttp) - 1, MSG_NOSIGNAL), 0);
  const int64_t junk_ms = MsUntilClosed(junk.get(), 3000);
  EXPECT_GE(junk_ms, 0);
  EXPECT_LT(junk_ms, 290);  // before the handshake deadline: refused, not timed out
  // Silent before the handshake: closed at the handshake deadline; a good
  // peer is served meanwhile.
  UniqueFd silent = RawConnect();
  const uint64_t silent_t0 = MonotonicMs();
  auto good = MigrationClient::Connect(addr_, a_, 3000);
  ASSERT_TRUE(good.ok()) << good.status();
  ASSERT_TRUE((*good)->Offer(State(21, false), 3000).ok());
  ASSERT_GE(MsUntilClosed(silent.get(), 3000), 0);
  const uint64_t silent_ms = MonotonicMs() - silent_t0;  // from its connect
  EXPECT_GE(silent_ms, 280u);
  EXPECT_LT(silent_ms, 1500u);
  // Authenticated but idle: closed at the idle deadline, the client learns it.
  usleep(700 * 1000);
  ASSERT_TRUE(h_.WaitFor([&] { return !h_.closed.empty(); }));
  EXPECT_EQ(h_.closed[0].first, 21u);
  EXPECT_EQ(h_.closed[0].second.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(h_.closed[0].second.message().find("sent nothing for 400 ms"), std::string::npos);
  EXPECT_FALSE((*good)->Commit(State(21, true), 1000).ok());
  EXPECT_TRUE(WaitOpen(0));
}

TEST_F(MigrationChannelTest, ConnectionLimitAndOutOfOrderMessages) {
  ListenerOptions opt;
  opt.max_connections = 1;
  opt.handshake_timeout_ms = 2000;
  StartListener(opt);
  UniqueFd hog = RawConnect();  // holds the only slot (until its handshake deadline)
  ASSERT_TRUE(WaitOpen(1));
  UniqueFd extra = RawConnect();
  const int64_t extra_ms = MsUntilClosed(extra.get(), 1500);
  EXPECT_GE(extra_ms, 0);  // closed at accept
  EXPECT_LT(extra_ms, 1200);
  hog.reset();
  ASSERT_TRUE(WaitOpen(0));

  // A commit before any offer, with a raw TLS channel: an Error, then closed.
  auto ctx = TlsContext::Create(a_, TlsRole::kClient);
  ASSERT_TRUE(ctx.ok());
  auto ch = TlsChannel::Connect(addr_, *ctx, 3000);
  ASSERT_TRUE(ch.ok()) << ch.status();
  control::Envelope env;
  *env.mutable_migration_commit()->mutable_state() = State(30, true);
  ASSERT_TRUE((*ch)->Send(env, 3000).ok());
  auto reply = (*ch)->Receive(3000);
  ASSERT_TRUE(reply.ok()) << reply.status();
  ASSERT_TRUE(reply->has_error());
  EXPECT_EQ(reply->error().code(), control::Error::UNEXPECTED);
  EXPECT_NE(reply->error().message().find("a commit before any accepted offer"), std::string::npos);
  EXPECT_FALSE((*ch)->Receive(3000).ok());  // closed
  EXPECT_EQ(h_.commits, 0);
}

TEST(ErrorCodesTest, RoundTrip) {
  for (auto code : {absl::StatusCode::kResourceExhausted, absl::StatusCode::kPermissionDenied,
                    absl::StatusCode::kInvalidArgument, absl::StatusCode::kFailedPrecondition,
                    absl::StatusCode::kNotFound, absl::StatusCode::kUnavailable})
    EXPECT_EQ(StatusCodeFor(ErrorCodeFor(absl::Status(code, "x"))), code);
  EXPECT_EQ(ErrorCodeFor(absl::ResourceExhaustedError("")), control::Error::LIMIT);
  EXPECT_EQ(ErrorCodeFor(absl::PermissionDeniedError("")), control::Error::DENIED);
}

}  // namespace
}  // namespace npa::migration
