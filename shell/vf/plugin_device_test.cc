// plugin_device_test.cc — PluginDevice (plugin_device.h) over the test_good
// loopback plug-in, with the shipped fake services table
// (npa/testing/plugin_testkit.h): the lifecycle, the order of calls, errno
// mapped to Status, the inputs checked before the plug-in sees them.
#include "shell/vf/plugin_device.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "npa/testing/plugin_testkit.h"
#include "shell/vf/plugin_loader.h"
#include "shell/vf/plugin_test_util.h"

namespace npa::shell {
namespace {

using Kit = npa::testkit::FakeServices;

Kit::Options KitOptions() {
  Kit::Options o;
  o.buffers = 256;
  return o;
}

npa_device_info LoopbackInfo(uint16_t device = 0x100f) {
  npa_device_info i{};
  i.vendor = 0x1d0f;
  i.device = device;
  i.subsystem_vendor = 0x1d0f;
  i.subsystem_device = 0x0001;
  i.class_code = 0x020000;
  snprintf(i.pci_address, sizeof(i.pci_address), "0000:00:04.0");
  return i;
}

npa_dev_config Config(uint16_t qps, uint16_t ring, uint32_t mtu = 1500) {
  npa_dev_config c{};
  c.nb_queue_pairs = qps;
  c.ring_size = ring;
  c.mtu = mtu;
  return c;
}

class PluginDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(Plugin("good", "test_good"));
    ASSERT_TRUE(p.ok()) << p.status();
    plugin_ = std::move(*p);
  }
  // Up to started, asserting each step.
  void Bring(PluginDevice& d, uint16_t qps, uint16_t ring) {
    ASSERT_TRUE(d.Probe(fake_.services(), LoopbackInfo()).ok());
    ASSERT_TRUE(d.GetCaps().ok());
    ASSERT_TRUE(d.Configure(Config(qps, ring)).ok());
    ASSERT_TRUE(d.Start().ok());
  }
  // n frames carrying their index, from the pool.
  std::vector<npa_buf*> Frames(uint16_t n, uint16_t len = 60) {
    std::vector<npa_buf*> b(n);
    EXPECT_EQ(fake_.AllocBuffers(0, b.data(), n), n);
    for (uint16_t i = 0; i < n; ++i) {
      memset(npa_buf_data(b[i]), static_cast<int>(i), len);
      b[i]->data_len = len;
      b[i]->pkt_len = len;
    }
    return b;
  }

  Kit fake_{KitOptions()};
  std::shared_ptr<const LoadedPlugin> plugin_;
};

TEST_F(PluginDeviceTest, LoopbackLifecycleEndToEnd) {
  PluginDevice d(plugin_);
  EXPECT_EQ(d.state(), PluginDevice::State::kIdle);
  ASSERT_TRUE(d.Probe(fake_.services(), LoopbackInfo()).ok());
  ASSERT_EQ(fake_.logs().size(), 1u);
  EXPECT_EQ(fake_.logs()[0], "loopback probed at 0000:00:04.0");
  absl::StatusOr<npa_dev_caps> caps = d.GetCaps();
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_EQ(caps->max_queue_pairs, 4);
  EXPECT_EQ(caps->offloads, NPA_CAP_RX_CSUM | NPA_CAP_RSS);
  ASSERT_TRUE(d.Configure(Config(2, 32)).ok());
  ASSERT_TRUE(d.Start().ok());
  EXPECT_EQ(fake_.buffers_outstanding(), 64u) << "two RX rings of 32 posted at start";

  std::vector<npa_buf*> tx = Frames(10, 100);
  absl::StatusOr<uint16_t> sent = d.TxBurst(1, tx.data(), 10);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(*sent, 10);
  npa_buf* rx[32];
  absl::StatusOr<uint16_t> got = d.RxBurst(1, rx, 32);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(*got, 10);
  for (uint16_t i = 0; i < *got; ++i) {
    EXPECT_EQ(rx[i]->data_len, 100);
    EXPECT_EQ(static_cast<uint8_t*>(npa_buf_data(rx[i]))[99], i) << "frames in order";
  }
  EXPECT_EQ(*d.RxBurst(0, rx + 10, 22), 0) << "queue 0 saw nothing";
  fake_.FreeBuffers(0, rx, *got);

  absl::StatusOr<npa_plugin_qstats> st = d.QueueStats(1);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->tx_packets, 10u);
  EXPECT_EQ(st->rx_packets, 10u);
  EXPECT_EQ(st->rx_bytes, 1000u);
  absl::StatusOr<npa_link_status> link = d.LinkStatus();
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->up, 1u);

  ASSERT_TRUE(d.Quiesce(1000).ok());
  ASSERT_TRUE(d.Stop().ok());
  EXPECT_EQ(fake_.buffers_outstanding(), 0u) << "stop hands every ring buffer back";
  EXPECT_EQ(d.QueueStats(1)->tx_packets, 10u) << "counters readable after stop";
  // Reconfigure and restart, as after a reset.
  ASSERT_TRUE(d.Configure(Config(1, 8)).ok());
  ASSERT_TRUE(d.Start().ok());
  ASSERT_TRUE(d.Stop().ok());
  ASSERT_TRUE(d.Remove().ok());
  EXPECT_EQ(d.state(), PluginDevice::State::kRemoved);
  EXPECT_EQ(fake_.double_frees(), 0u);
}

TEST_F(PluginDeviceTest, DropsWhenNoRxBufferIsPosted) {
  PluginDevice d(plugin_);
  Bring(d, 1, 8);
  std::vector<npa_buf*> tx = Frames(12);
  EXPECT_EQ(*d.TxBurst(0, tx.data(), 12), 12);
  npa_buf* rx[16];
  uint16_t got = *d.RxBurst(0, rx, 16);
  EXPECT_EQ(got, 8);
  fake_.FreeBuffers(0, rx, got);
  EXPECT_EQ(d.QueueStats(0)->rx_dropped, 4u);
  ASSERT_TRUE(d.Stop().ok());
  EXPECT_EQ(fake_.buffers_outstanding(), 0u);
}

TEST_F(PluginDeviceTest, RejectsCallsOutOfOrder) {
  PluginDevice d(plugin_);
  auto precondition = [](const absl::Status& s) {
    return s.code() == absl::StatusCode::kFailedPrecondition;
  };
  absl::Status s = d.GetCaps().status();
  EXPECT_TRUE(precondition(s)) << s;
  EXPECT_EQ(s.message(),
            "plug-in 'test_good': get_caps called while the device is not probed; the order is "
            "probe -> get_caps -> configure -> start -> ... -> stop -> remove (npa/plugin.h)");
  EXPECT_TRUE(precondition(d.Remove()));
  ASSERT_TRUE(d.Probe(fake_.services(), LoopbackInfo()).ok());
  EXPECT_TRUE(precondition(d.Probe(fake_.services(), LoopbackInfo())));
  EXPECT_TRUE(precondition(d.Configure(Config(1, 8)))) << "configure needs the caps first";
  EXPECT_TRUE(precondition(d.Start()));
  ASSERT_TRUE(d.GetCaps().ok());
  EXPECT_TRUE(precondition(d.Start())) << "start needs configure";
  npa_buf* b[4];
  EXPECT_TRUE(precondition(d.RxBurst(0, b, 4).status()));
  ASSERT_TRUE(d.Configure(Config(1, 8)).ok());
  EXPECT_TRUE(precondition(d.Stop()));
  ASSERT_TRUE(d.Start().ok());
  EXPECT_TRUE(precondition(d.Start()));
  EXPECT_TRUE(precondition(d.Configure(Config(1, 8)))) << "configure only while stopped";
  EXPECT_TRUE(precondition(d.Remove())) << "stop before remove";
  EXPECT_TRUE(precondition(d.Reset())) << "reset only while stopped";
  ASSERT_TRUE(d.Quiesce(0).ok());
  std::vector<npa_buf*> tx = Frames(1);
  EXPECT_TRUE(precondition(d.TxBurst(0, tx.data(), 1).status())) << "no TX once quiesced";
  fake_.FreeBuffers(0, tx.data(), 1);
  EXPECT_TRUE(d.RxBurst(0, b, 4).ok()) << "RX drains while quiesced";
  ASSERT_TRUE(d.Stop().ok());
  EXPECT_TRUE(precondition(d.Start())) << "restart goes through configure";
  EXPECT_TRUE(precondition(d.TxBurst(0, b, 1).status()));
  EXPECT_EQ(d.Reset().code(), absl::StatusCode::kUnimplemented) << "legal, but test_good lacks it";
  ASSERT_TRUE(d.Remove().ok());
  EXPECT_TRUE(precondition(d.LinkStatus().status()));
  EXPECT_TRUE(precondition(d.Remove()));
}

TEST_F(PluginDeviceTest, MapsErrnoToStatusNamingPluginAndOp) {
  PluginDevice d(plugin_);
  absl::Status s = d.Probe(fake_.services(), LoopbackInfo(/*device=*/0x1010));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_EQ(s.message(), "plug-in 'test_good': probe failed: No such device (-19)");
  EXPECT_EQ(d.state(), PluginDevice::State::kIdle) << "a failed call keeps the state";
  ASSERT_TRUE(d.Probe(fake_.services(), LoopbackInfo()).ok());
  ASSERT_TRUE(d.GetCaps().ok());
  s = d.Configure(Config(1, 8, /*mtu=*/9500));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(s.message(), "plug-in 'test_good': configure failed: Invalid argument (-22)");
  EXPECT_EQ(d.state(), PluginDevice::State::kCapsKnown);
  ASSERT_TRUE(d.Configure(Config(1, 8)).ok());
  s = d.SetMtu(20000);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(s.message(), "plug-in 'test_good': set_mtu failed: Invalid argument (-22)");
  EXPECT_TRUE(d.SetMtu(9000).ok());
  const uint8_t mac[6] = {2, 0, 0, 0, 0, 2};
  s = d.SetMac(mac);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(s.message(), "plug-in 'test_good' does not implement optional op 'set_mac'");
}

TEST_F(PluginDeviceTest, ChecksInputsBeforeThePluginSeesThem) {
  PluginDevice d(plugin_);
  EXPECT_EQ(d.Probe(nullptr, LoopbackInfo()).code(), absl::StatusCode::kInvalidArgument);
  npa_services old = *fake_.services();
  old.struct_size = 64;
  EXPECT_EQ(d.Probe(&old, LoopbackInfo()).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(d.Probe(fake_.services(), LoopbackInfo()).ok());
  ASSERT_TRUE(d.GetCaps().ok());
  absl::Status s = d.Configure(Config(5, 8));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "plug-in 'test_good': configure: 5 queue pairs asked, the device has 1..4");
  EXPECT_EQ(d.Configure(Config(1, 24)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.Configure(Config(1, 512)).code(), absl::StatusCode::kInvalidArgument);
  npa_dev_config c = Config(1, 8);
  c.offloads = NPA_CAP_TSO;
  EXPECT_EQ(d.Configure(c).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(d.Configure(Config(2, 8)).ok());
  ASSERT_TRUE(d.Start().ok());
  npa_buf* b[4];
  EXPECT_EQ(d.RxBurst(2, b, 4).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(d.QueueStats(4).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(d.VlanFilter(4096, true).code(), absl::StatusCode::kInvalidArgument);
}

// rss_set (ABI 1.1): legal once configured, also while started; a
// malformed configuration (bad table length, an entry beyond the configured
// queues) never reaches the plug-in.
TEST_F(PluginDeviceTest, RssSetStatesAndChecks) {
  PluginDevice d(plugin_);
  uint8_t key[NPA_RSS_CONF_KEY_LEN] = {1, 2, 3};
  uint16_t table[8] = {0, 1, 0, 1, 0, 1, 0, 1};
  npa_rss_conf c{};
  c.struct_size = sizeof(c);
  c.hash_types = NPA_RSS_CONF_HASH_TCPV4;
  c.key_len = NPA_RSS_CONF_KEY_LEN;
  c.table_len = 8;
  c.nb_queue_pairs = 2;
  c.key = key;
  c.table = table;
  ASSERT_TRUE(d.Probe(fake_.services(), LoopbackInfo()).ok());
  ASSERT_TRUE(d.GetCaps().ok());
  EXPECT_EQ(d.RssSet(c).code(), absl::StatusCode::kFailedPrecondition) << "before configure";
  ASSERT_TRUE(d.Configure(Config(2, 8)).ok());
  EXPECT_TRUE(d.RssSet(c).ok());
  ASSERT_TRUE(d.Start().ok());
  EXPECT_TRUE(d.RssSet(c).ok()) << "while started";
  c.table_len = 6;
  EXPECT_EQ(d.RssSet(c).code(), absl::StatusCode::kInvalidArgument);
  c.table_len = 8;
  table[3] = 2;
  absl::Status s = d.RssSet(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "rss_set: table[3] = 2 is not a configured queue");
  ASSERT_TRUE(d.Stop().ok());
  table[3] = 1;
  EXPECT_EQ(d.RssSet(c).code(), absl::StatusCode::kFailedPrecondition) << "stopped";
}

TEST_F(PluginDeviceTest, DestructorStopsAndRemoves) {
  {
    PluginDevice d(plugin_);
    Bring(d, 2, 16);
    EXPECT_EQ(fake_.buffers_outstanding(), 32u);
  }
  EXPECT_EQ(fake_.buffers_outstanding(), 0u);
  EXPECT_EQ(fake_.double_frees(), 0u);
}

TEST_F(PluginDeviceTest, PluginOutlivesItsLoaderHandle) {
  const std::string path = plugin_->path();
  auto d = std::make_unique<PluginDevice>(plugin_);
  plugin_.reset();
  EXPECT_TRUE(StillLoaded(path)) << "a device keeps its plug-in loaded";
  d.reset();
  EXPECT_FALSE(StillLoaded(path));
}

}  // namespace
}  // namespace npa::shell
