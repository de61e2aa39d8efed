// The C API (npa/shell.h) through the C++ wrapper (npa/shell.hpp): argument
// checks, open errors, and a control-path session against a fake agent whose
// vhost-user fd is answered by a minimal fake back end (no traffic: the
// data path is covered by virtq_test and tests/interop_vhost).
#include <poll.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <cerrno>
#include <string>
#include <thread>

#include "common/rss.h"
#include "common/unix_socket.h"
#include "gtest/gtest.h"
#include "npa/shell.hpp"
#include "npa/vhost_user.h"
#include "tests/support/fake_agent_test_util.h"
#include "shell/emulated/virtio_defs.h"

namespace npa::shell {
namespace {

// Answers GET_* with fixed values (GET_FEATURES: those below | extra) and
// acks NEED_REPLY, until EOF.
void ServeVhost(int s, uint64_t extra = 0) {
  for (;;) {
    npa_vhost_user_hdr h;
    std::vector<UniqueFd> fds;
    if (!RecvExact(s, &h, sizeof h, &fds, 5000).ok()) return;
    std::vector<uint8_t> p(h.size);
    if (h.size && !RecvExact(s, p.data(), h.size, &fds, 5000).ok()) return;
    uint64_t v = 0;
    bool reply = true;
    switch (h.request) {
      case NPA_VHOST_USER_GET_FEATURES:
        v = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_NET_F_MQ) |
            (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES) | extra;
        break;
      case NPA_VHOST_USER_GET_PROTOCOL_FEATURES:
        v = (1ull << NPA_VHOST_USER_PROTOCOL_F_MQ) | (1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK);
        break;
      case NPA_VHOST_USER_GET_QUEUE_NUM: v = 4; break;
      default: reply = (h.flags & NPA_VHOST_USER_FLAG_NEED_REPLY) != 0;
    }
    if (!reply) continue;
    npa_vhost_user_hdr r{h.request, 0x5, 8};
    iovec iov[2] = {{&r, sizeof r}, {&v, 8}};
    if (!SendWithFds(s, iov, 2, {}).ok()) return;
  }
}

// The agent's side of one control session, in threads: accepts on the
// listening socket, takes the Hello, sends the Welcome (rss_spread as
// given) and serves the vhost-user fd with ServeVhost. Join() once the
// shell's open returned; the destructor ends both threads.
struct FakeAgentThread {
  std::unique_ptr<FakeAgent> agent;
  std::thread vhost_thread;
  std::thread accept_thread;
  void Start(int listen_fd, bool rss_spread = false, uint64_t extra_features = 0) {
    accept_thread = std::thread([this, listen_fd, rss_spread, extra_features] {
      ASSERT_TRUE(WaitReadable(listen_fd, 3000).ok());
      UniqueFd c(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
      ASSERT_TRUE(c.valid());
      agent = std::make_unique<FakeAgent>(std::move(c));
      ASSERT_TRUE(agent->ExpectHello().ok());
      ASSERT_TRUE(agent->Welcome(1, std::string("\x02\x00\x00\x00\x00\x07", 6), rss_spread).ok());
      int peer = agent->vhost_peer.get();
      vhost_thread = std::thread([peer, extra_features] { ServeVhost(peer, extra_features); });
    });
  }
  void Join() {
    if (accept_thread.joinable()) accept_thread.join();
  }
  ~FakeAgentThread() {
    Join();
    agent.reset();  // the shell's vhost-user peer sees EOF once the shell closed
    if (vhost_thread.joinable()) vhost_thread.join();
  }
};

class ShellTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/npa_shell_test." + std::to_string(getpid());
    mkdir(dir_.c_str(), 0700);
    path_ = dir_ + "/agent.ctl";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  // Opens sh (named name, 4K pages) on path_ against a FakeAgentThread.
  int OpenWithFakeAgent(const char* name, bool rss_spread, FakeAgentThread* fa, npa::Shell* sh,
                        uint64_t extra_features = 0) {
    auto ls = ListenUnix(path_);
    if (!ls.ok()) return -EIO;
    fa->Start(ls->get(), rss_spread, extra_features);
    npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
    oa.control_path = path_.c_str();
    oa.name = name;
    oa.flags = NPA_SHELL_F_NO_HUGEPAGES;
    const int rc = npa::Shell::Open(oa, sh);
    fa->Join();
    return fa->agent ? rc : -EIO;
  }
  std::string dir_, path_;
};

TEST_F(ShellTest, OpenRejectsBadArguments) {
  npa::Shell sh;
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  EXPECT_EQ(npa::Shell::Open(oa, &sh), -EINVAL) << "neither path";
  EXPECT_NE(std::string(npa_shell_last_error(nullptr)).find("exactly one"), std::string::npos);
  oa.control_path = "/x";
  oa.vhost_user_path = "/y";
  EXPECT_EQ(npa::Shell::Open(oa, &sh), -EINVAL) << "both paths";
  oa.vhost_user_path = nullptr;
  oa.struct_size = 8;
  EXPECT_EQ(npa::Shell::Open(oa, &sh), -EINVAL) << "struct_size";
  oa.struct_size = sizeof oa;
  oa.flags = 0x80;
  EXPECT_EQ(npa::Shell::Open(oa, &sh), -EINVAL) << "unknown flag";
  oa.flags = NPA_SHELL_F_TRUST_PLUGIN_RX | NPA_SHELL_F_CHECK_PLUGIN_RX;
  EXPECT_EQ(npa::Shell::Open(oa, &sh), -EINVAL) << "trust and check";
  EXPECT_NE(std::string(npa_shell_last_error(nullptr)).find("together"), std::string::npos);
  oa.flags = 0;
  oa.name = "bad name!";
  EXPECT_EQ(npa::Shell::Open(oa, &sh), -EINVAL) << "name";
  EXPECT_EQ(npa_shell_open(nullptr, nullptr), -EINVAL);
  EXPECT_FALSE(sh);
  // NULL handles are refused, not dereferenced.
  EXPECT_EQ(npa_shell_start(nullptr), -EINVAL);
  EXPECT_EQ(npa_rx_burst(nullptr, 0, nullptr, 0), 0);
  npa_shell_close(nullptr);
}

TEST_F(ShellTest, OpenReportsMissingAgent) {
  npa::Shell sh;
  npa_shell_open_args oa = NPA_SHELL_OPEN_ARGS_INIT;
  oa.vhost_user_path = path_.c_str();
  oa.connect_timeout_ms = 100;
  EXPECT_EQ(npa::Shell::Open(oa, &sh), -ENOENT) << sh.last_error();
  EXPECT_NE(std::string(npa_shell_last_error(nullptr)).find(path_), std::string::npos);
}

// An agent whose Welcome says rss_spread gets the shell's RSS configuration
// after configure and again after npa_shell_set_rss (reconnect.h
// SendRssConfig): the key, the types and the whole table.
TEST_F(ShellTest, RssConfigGoesToAnAgentThatSpreads) {
  FakeAgentThread fa;
  npa::Shell sh;
  ASSERT_EQ(OpenWithFakeAgent("rss1", /*rss_spread=*/true, &fa, &sh), 0) << npa_shell_last_error(nullptr);
  FakeAgent* agent = fa.agent.get();
  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.nb_queue_pairs = 2;
  qc.ring_size = 256;
  qc.offloads = NPA_OFFLOAD_MRG_RXBUF | NPA_OFFLOAD_RSS_HASH;
  ASSERT_EQ(sh.Configure(qc), 0) << sh.last_error();
  // The next message with an rss_config, skipping others (regions, stats).
  auto next_rss = [&]() -> std::optional<control::RssConfig> {
    for (int i = 0; i < 10; i++) {
      auto f = agent->Receive(3000);
      if (!f.ok()) return std::nullopt;
      if (f->env.has_rss_config()) return f->env.rss_config();
    }
    return std::nullopt;
  };
  auto first = next_rss();
  ASSERT_TRUE(first.has_value()) << "no rss_config after configure";
  EXPECT_EQ(first->key(), std::string(reinterpret_cast<const char*>(npa::kDefaultRssKey.data()),
                                      npa::kDefaultRssKey.size()));
  EXPECT_EQ(first->hash_types(), npa::kRssAllTypes);
  ASSERT_EQ(first->table_size(), 128);
  for (int i = 0; i < 128; i++) ASSERT_EQ(first->table(i), static_cast<uint32_t>(i % 2)) << i;
  const uint16_t all_to_1[4] = {1, 1, 1, 1};
  npa_rss_config cfg = NPA_RSS_CONFIG_INIT;
  cfg.table = all_to_1;
  cfg.table_len = 4;
  ASSERT_EQ(npa_shell_set_rss(sh.get(), &cfg), 0) << sh.last_error();
  auto second = next_rss();
  ASSERT_TRUE(second.has_value()) << "no rss_config after npa_shell_set_rss";
  ASSERT_EQ(second->table_size(), 4);
  for (int i = 0; i < 4; i++) EXPECT_EQ(second->table(i), 1u);
  sh.Reset();  // then fa's destructor ends its threads
}

// npa_shell_queue_config.ring (ABI 1.4): AUTO takes packed when offered,
// AUTO is split (the faster ring with npa-agent); PACKED asks for packed;
// an ABI 1.3 caller (struct_size 24) gets AUTO.
TEST_F(ShellTest, RingKindFollowsTheOfferAndTheApplication) {
  const uint64_t packed = (1ull << NPA_VIRTIO_F_RING_PACKED) | (1ull << NPA_VIRTIO_F_RING_EVENT_IDX);
  struct Case {
    uint64_t offer;
    uint32_t struct_size, ring;
    int rc;
    uint8_t in_use;
  };
  const Case cases[] = {
      {0, sizeof(npa_shell_queue_config), NPA_RING_PACKED, -EPROTO, 0},
      {0, sizeof(npa_shell_queue_config), NPA_RING_AUTO, 0, NPA_RING_SPLIT},
      {0, 24, NPA_RING_PACKED, 0, NPA_RING_SPLIT},  // 1.3 caller: ring is not read
      {packed, sizeof(npa_shell_queue_config), NPA_RING_AUTO, 0, NPA_RING_SPLIT},
      {packed, sizeof(npa_shell_queue_config), NPA_RING_SPLIT, 0, NPA_RING_SPLIT},
      {packed, sizeof(npa_shell_queue_config), NPA_RING_PACKED, 0, NPA_RING_PACKED},
      {packed, sizeof(npa_shell_queue_config), 7, -EINVAL, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "offer 0x" << std::hex << c.offer << " ring " << c.ring
                                      << " struct_size " << std::dec << c.struct_size);
    FakeAgentThread fa;
    npa::Shell sh;
    ASSERT_EQ(OpenWithFakeAgent("tr", false, &fa, &sh, c.offer), 0) << npa_shell_last_error(nullptr);
    npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
    qc.ring_size = 64;
    qc.struct_size = c.struct_size;
    qc.ring = c.ring;
    ASSERT_EQ(sh.Configure(qc), c.rc) << sh.last_error();
    if (c.rc == -EPROTO) {
      EXPECT_NE(std::string(sh.last_error()).find("VIRTIO_F_RING_PACKED"), std::string::npos)
          << sh.last_error();
    }
    if (c.rc != 0) continue;
    npa_shell_info info;
    ASSERT_EQ(sh.Info(&info), 0);
    EXPECT_EQ(info.ring, c.in_use);
  }
}

TEST_F(ShellTest, ControlSessionConfigureStartEventsStats) {
  FakeAgentThread fa;
  npa::Shell sh;
  ASSERT_EQ(OpenWithFakeAgent("t1", /*rss_spread=*/false, &fa, &sh), 0) << npa_shell_last_error(nullptr);
  FakeAgent* agent = fa.agent.get();

  npa_shell_queue_config qc = NPA_SHELL_QUEUE_CONFIG_INIT;
  qc.nb_queue_pairs = 2;
  qc.ring_size = 100;
  EXPECT_EQ(sh.Configure(qc), -EINVAL) << "ring size not a power of two";
  qc.ring_size = 256;
  qc.offloads = 1ull << 40;
  EXPECT_EQ(sh.Configure(qc), -EINVAL) << "an offload bit nobody knows";
  // RSS before configure: nothing to set it on.
  npa_rss_config rc0 = NPA_RSS_CONFIG_INIT;
  EXPECT_EQ(npa_shell_set_rss(sh.get(), &rc0), -EINVAL);
  qc.offloads = NPA_OFFLOAD_MRG_RXBUF | NPA_OFFLOAD_RSS_HASH;  // RSS: software on every path
  ASSERT_EQ(sh.Configure(qc), 0) << sh.last_error();
  EXPECT_EQ(sh.Configure(qc), -EBUSY);

  // The default table spreads round robin over the 2 queues; a new table
  // and key are checked field by field, and the queue lookup follows them.
  EXPECT_EQ(npa_rss_queue(sh.get(), 0), 0);
  EXPECT_EQ(npa_rss_queue(sh.get(), 1), 1);
  const uint16_t all_to_1[4] = {1, 1, 1, 1};
  const uint8_t key[NPA_RSS_KEY_LEN] = {1, 2, 3};
  npa_rss_config cfg = NPA_RSS_CONFIG_INIT;
  cfg.table = all_to_1;
  cfg.table_len = 3;
  EXPECT_EQ(npa_shell_set_rss(sh.get(), &cfg), -EINVAL) << "table_len not a power of two";
  EXPECT_NE(std::string(sh.last_error()).find("table_len"), std::string::npos) << sh.last_error();
  cfg.table_len = 4;
  cfg.key = key;
  cfg.key_len = 16;
  EXPECT_EQ(npa_shell_set_rss(sh.get(), &cfg), -EINVAL) << "short key";
  cfg.key_len = NPA_RSS_KEY_LEN;
  const uint16_t bad[2] = {0, 2};
  cfg.table = bad;
  cfg.table_len = 2;
  EXPECT_EQ(npa_shell_set_rss(sh.get(), &cfg), -EINVAL) << "queue 2 of 2";
  EXPECT_NE(std::string(sh.last_error()).find("table[1] = 2"), std::string::npos) << sh.last_error();
  cfg.table = all_to_1;
  cfg.table_len = 4;
  ASSERT_EQ(npa_shell_set_rss(sh.get(), &cfg), 0) << sh.last_error();
  EXPECT_EQ(npa_rss_queue(sh.get(), 0), 1);
  EXPECT_EQ(npa_rss_queue(sh.get(), 2), 1);

  npa_shell_info info;
  ASSERT_EQ(sh.Info(&info), 0);
  EXPECT_EQ(info.mac[5], 7) << "MAC from the Welcome";
  EXPECT_EQ(info.nb_queue_pairs, 2);
  EXPECT_EQ(info.path, NPA_PATH_NONE);
  EXPECT_EQ(info.hugepages, 0);
  EXPECT_TRUE(info.offloads & NPA_OFFLOAD_TX_CSUM) << "software fallback";
  EXPECT_TRUE(info.offloads & NPA_OFFLOAD_RSS_HASH) << "software, every path";

  int fd0 = sh.IntrFd(0), fd1 = sh.IntrFd(1);
  EXPECT_GE(fd0, 0);
  EXPECT_NE(fd0, fd1);
  EXPECT_EQ(sh.IntrFd(2), -EINVAL);
  EXPECT_EQ(sh.IntrEnable(0, true), 0);
  EXPECT_EQ(sh.IntrAck(0), 0);

  ASSERT_EQ(sh.Start(), 0) << sh.last_error();
  ASSERT_EQ(sh.Info(&info), 0);
  EXPECT_EQ(info.path, NPA_PATH_EMULATED);
  EXPECT_EQ(info.link_up, 1);

  npa_event ev;
  ASSERT_EQ(sh.NextEvent(&ev), 1);
  EXPECT_EQ(ev.type, NPA_EVENT_PATH_CHANGED);
  EXPECT_EQ(ev.u.path, NPA_PATH_EMULATED);
  control::Envelope e;
  e.mutable_link()->set_up(false);
  ASSERT_TRUE(agent->Send(e).ok());
  pollfd p{sh.EventFd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 3000), 1);
  ASSERT_EQ(sh.NextEvent(&ev), 1);
  EXPECT_EQ(ev.type, NPA_EVENT_LINK_CHANGED);
  EXPECT_EQ(ev.u.link_up, 0u);
  EXPECT_EQ(sh.NextEvent(&ev), 0);
  EXPECT_EQ(poll(&p, 1, 0), 0) << "event fd not readable when the queue is empty";

  // Buffers: allocation and free through the API; no traffic (no device).
  npa_buf* b[16];
  EXPECT_EQ(sh.Alloc(1, b, 16), 16);
  EXPECT_EQ(sh.RxBurst(1, b, 0), 0);
  sh.Free(1, b, 16);
  EXPECT_EQ(sh.RxBurst(9, b, 16), 0) << "bad queue id";

  npa_queue_stats st;
  EXPECT_EQ(sh.Stats(0, &st), 0);
  EXPECT_EQ(sh.Stats(UINT16_MAX, &st), 0);
  EXPECT_EQ(sh.Stats(5, &st), -EINVAL);

  ASSERT_EQ(sh.Stop(), 0);
  EXPECT_EQ(sh.RxBurst(0, b, 16), 0);
  sh.Reset();  // close: the fake back end sees EOF; fa's destructor ends its threads
}

}  // namespace
}  // namespace npa::shell
