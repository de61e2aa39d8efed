#include "hypervisor/migration/tls_channel.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <thread>

#include "common/clock.h"
#include "gtest/gtest.h"
#include "tests/support/test_certs.h"

namespace npa::migration {
namespace {

using npa::testing::CertPaths;
using npa::testing::TestPki;

// A TCP listener on 127.0.0.1:0 and one TLS Accept on a thread.
class TlsPair : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = TestPki::Create();
    ASSERT_TRUE(p.ok()) << p.status();
    pki_ = std::move(*p);
    auto a = pki_->Issue("agent-a"), b = pki_->Issue("agent-b");
    ASSERT_TRUE(a.ok() && b.ok());
    a_ = *a;
    b_ = *b;
    lfd_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(lfd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    ASSERT_EQ(listen(lfd_.get(), 4), 0);
    socklen_t len = sizeof(sa);
    getsockname(lfd_.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    addr_ = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  }
  TlsConfig Cfg(const CertPaths& c) { return {c.cert_file, c.key_file, pki_->ca_file()}; }
  // Accepts one connection with `server` on a thread; result in server_.
  void ServeOnce(const TlsConfig& server, int timeout_ms = 3000) {
    auto ctx = TlsContext::Create(server, TlsRole::kServer);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    thread_ = std::thread([this, c = *ctx, timeout_ms] {
      UniqueFd s(accept(lfd_.get(), nullptr, nullptr));
      server_ = TlsChannel::Accept(std::move(s), "client", c, timeout_ms);
    });
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  void TearDown() override { Join(); }

  std::unique_ptr<TestPki> pki_;
  CertPaths a_, b_;
  UniqueFd lfd_;
  std::string addr_;
  std::thread thread_;
  absl::StatusOr<std::unique_ptr<TlsChannel>> server_ = absl::UnknownError("not run");
};

TEST(SplitHostPortTest, Forms) {
  std::string h;
  uint16_t p = 0;
  ASSERT_TRUE(SplitHostPort("10.0.0.2:7000", &h, &p).ok());
  EXPECT_EQ(h, "10.0.0.2");
  EXPECT_EQ(p, 7000);
  ASSERT_TRUE(SplitHostPort("[::1]:0", &h, &p).ok());
  EXPECT_EQ(h, "::1");
  EXPECT_EQ(p, 0);
  for (const char* bad : {"", "host", ":7", "h:", "h:70000", "h:7x", "::1:7", "[::1]7", "[::1"}) {
    absl::Status s = SplitHostPort(bad, &h, &p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find(std::string("\"") + bad + "\""), std::string::npos) << s;
  }
}

TEST_F(TlsPair, ContextErrorsNameTheFile) {
  auto missing = TlsContext::Create({"/nonexistent.crt", a_.key_file, pki_->ca_file()}, TlsRole::kClient);
  EXPECT_NE(missing.status().message().find("/nonexistent.crt"), std::string::npos) << missing.status();
  auto swapped = TlsContext::Create({a_.cert_file, b_.key_file, pki_->ca_file()}, TlsRole::kClient);
  ASSERT_FALSE(swapped.ok());
  EXPECT_NE(swapped.status().message().find("key values mismatch"), std::string::npos) << swapped.status();
  EXPECT_NE(swapped.status().message().find(b_.key_file), std::string::npos);
  auto empty = TlsContext::Create({}, TlsRole::kServer);
  EXPECT_NE(empty.status().message().find("--tls-cert"), std::string::npos);
  auto ok = TlsContext::Create(Cfg(a_), TlsRole::kClient);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->own_name(), "agent-a");
}

TEST_F(TlsPair, MutualAuthAndFramesBothWays) {
  ServeOnce(Cfg(b_));
  auto ctx = TlsContext::Create(Cfg(a_), TlsRole::kClient);
  ASSERT_TRUE(ctx.ok());
  auto client = TlsChannel::Connect(addr_, *ctx, 3000);
  ASSERT_TRUE(client.ok()) << client.status();
  Join();
  ASSERT_TRUE(server_.ok()) << server_.status();
  EXPECT_EQ((*client)->peer_name(), "agent-b");
  EXPECT_EQ((*server_)->peer_name(), "agent-a");
  EXPECT_EQ((*client)->peer(), addr_ + " (CN agent-b)");

  control::Envelope env;
  env.mutable_migration_done()->set_migration_id(7);
  env.mutable_migration_done()->set_reason(std::string(60000, 'r'));  // several TLS records
  ASSERT_TRUE((*client)->Send(env, 3000).ok());
  auto got = (*server_)->Receive(3000);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->migration_done().migration_id(), 7u);
  EXPECT_EQ(got->migration_done().reason().size(), 60000u);
  EXPECT_EQ(got->major(), 1u);

  control::Envelope back;
  back.mutable_migration_committed()->set_migration_id(7);
  ASSERT_TRUE((*server_)->Send(back, 3000).ok());
  auto reply = (*client)->Receive(3000);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(reply->has_migration_committed());

  // Over the frame limit: refused before anything is sent.
  env.mutable_migration_done()->set_reason(std::string(70000, 'r'));
  absl::Status big = (*client)->Send(env, 3000);
  EXPECT_EQ(big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big.message().find("frame limit"), std::string::npos) << big;

  // Nothing arrives: the deadline, naming the peer.
  const uint64_t t0 = MonotonicMs();
  auto none = (*server_)->Receive(200);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(none.status().message().find("CN agent-a"), std::string::npos) << none.status();
  EXPECT_GE(MonotonicMs() - t0, 190u);

  // The client goes away: the server sees it closed, no SIGPIPE on a write.
  client->reset();
  auto closed = (*server_)->Receive(3000);
  EXPECT_EQ(closed.status().code(), absl::StatusCode::kUnavailable) << closed.status();
  for (int i = 0; i < 3; i++) (void)(*server_)->Send(back, 500).ok();  // must not kill the test
}

TEST_F(TlsPair, UntrustedClientCertificateIsRefused) {
  auto evil = pki_->SelfSigned("mallory");
  ASSERT_TRUE(evil.ok());
  ServeOnce(Cfg(b_));
  auto ctx = TlsContext::Create(Cfg(*evil), TlsRole::kClient);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  auto client = TlsChannel::Connect(addr_, *ctx, 3000);
  Join();
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kPermissionDenied) << client.status();
  EXPECT_NE(client.status().message().find("alert"), std::string::npos) << client.status();
  ASSERT_FALSE(server_.ok());
  EXPECT_EQ(server_.status().code(), absl::StatusCode::kPermissionDenied) << server_.status();
  EXPECT_NE(server_.status().message().find("self-signed certificate"), std::string::npos) << server_.status();
}

TEST_F(TlsPair, UntrustedServerCertificateIsRefused) {
  auto evil = pki_->SelfSigned("rogue-b");
  ASSERT_TRUE(evil.ok());
  ServeOnce(Cfg(*evil));
  auto ctx = TlsContext::Create(Cfg(a_), TlsRole::kClient);
  ASSERT_TRUE(ctx.ok());
  auto client = TlsChannel::Connect(addr_, *ctx, 3000);
  Join();
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kPermissionDenied) << client.status();
  EXPECT_NE(client.status().message().find("certificate verify failed"), std::string::npos) << client.status();
  EXPECT_NE(client.status().message().find("self-signed certificate"), std::string::npos) << client.status();
  EXPECT_FALSE(server_.ok());
}

TEST_F(TlsPair, ExpiredCertificateIsRefused) {
  auto old = pki_->Issue("old-a", -1);
  ASSERT_TRUE(old.ok());
  ServeOnce(Cfg(b_));
  auto ctx = TlsContext::Create(Cfg(*old), TlsRole::kClient);
  ASSERT_TRUE(ctx.ok());
  auto client = TlsChannel::Connect(addr_, *ctx, 3000);
  Join();
  EXPECT_FALSE(client.ok());
  ASSERT_FALSE(server_.ok());
  EXPECT_NE(server_.status().message().find("expired"), std::string::npos) << server_.status();
}

TEST_F(TlsPair, HandshakeDeadlineCutsASilentPeer) {
  ServeOnce(Cfg(b_), 300);
  UniqueFd raw(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  getsockname(lfd_.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  ASSERT_EQ(connect(raw.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  const uint64_t t0 = MonotonicMs();
  Join();
  const uint64_t took = MonotonicMs() - t0;
  ASSERT_FALSE(server_.ok());
  EXPECT_EQ(server_.status().code(), absl::StatusCode::kDeadlineExceeded) << server_.status();
  EXPECT_NE(server_.status().message().find("handshake timed out"), std::string::npos);
  EXPECT_LT(took, 2000u);
}

}  // namespace
}  // namespace npa::migration
