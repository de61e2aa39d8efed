// tests/plugins/example_plugin_test.cc — the example at the top of
// include/npa/plugin.h, cut out of the header at build time and built into
// tests/plugins/example/libexample_plugin.so (with example_ops.c behind its
// my_* ops), is a plug-in the shell accepts and can run: loaded and checked by
// the shell's own loader (shell/vf/plugin_loader.h), driven through the
// shell's call-order wrapper (shell/vf/plugin_device.h) over the shipped test
// kit's services (npa/testing/plugin_testkit.h). A vendor who copies the
// example starts from something that loads.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "npa/testing/plugin_testkit.h"
#include "shell/vf/plugin_device.h"
#include "shell/vf/plugin_loader.h"

namespace npa::shell {
namespace {

using Kit = npa::testkit::FakeServices;

// The example's ID table entry, as a PCI function the agent would offer.
constexpr PciIdentity kExampleNic{0x1d0f, 0x1012, 0x1d0f, 0x0001, 0x020000};

TEST(ExamplePluginTest, TheShellsLoaderAcceptsIt) {
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(NPA_EXAMPLE_PLUGIN_PATH);
  ASSERT_TRUE(p.ok()) << p.status();
  const LoadedPlugin& lp = **p;
  EXPECT_EQ(lp.name(), "my_nic");
  EXPECT_EQ(lp.vendor(), "example");
  EXPECT_EQ(lp.abi_major(), NPA_PLUGIN_ABI_MAJOR);
  EXPECT_EQ(lp.abi_minor(), NPA_PLUGIN_ABI_MINOR);
  EXPECT_EQ(lp.capabilities(), NPA_CAP_RX_CSUM);
  EXPECT_EQ(lp.unknown_capabilities(), 0u);
  ASSERT_EQ(lp.ids().size(), 1u);
  EXPECT_TRUE(Matches(lp, kExampleNic));
  // The example leaves every optional op NULL: "not supported".
  EXPECT_EQ(lp.ctrl().quiesce, nullptr);
  EXPECT_EQ(lp.ctrl().reset, nullptr);
  EXPECT_EQ(lp.fast().tx_reap, nullptr);
  EXPECT_EQ(lp.fast().rx_intr_enable, nullptr);
}

TEST(ExamplePluginTest, DiscoveryFindsItByItsIdTable) {
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p =
      FindPluginFor(kExampleNic, {NPA_EXAMPLE_PLUGIN_DIR});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name(), "my_nic");
}

TEST(ExamplePluginTest, RunsTheLifecycleOnTheTestKit) {
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> lp = LoadPlugin(NPA_EXAMPLE_PLUGIN_PATH);
  ASSERT_TRUE(lp.ok()) << lp.status();
  Kit kit;
  kit.SetIdentity(kExampleNic.vendor, kExampleNic.device, kExampleNic.subsystem_vendor,
                  kExampleNic.subsystem_device);
  ASSERT_NE(kit.AddBar(0, 4096), nullptr);

  PluginDevice d(std::shared_ptr<const LoadedPlugin>(std::move(*lp)));
  absl::Status s = d.Probe(kit.services(), kit.device_info());
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(kit.Logged("my_nic probed at 0000:00:04.0"));
  absl::StatusOr<npa_dev_caps> caps = d.GetCaps();
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_EQ(caps->max_queue_pairs, 2);

  npa_dev_config cfg{};
  cfg.nb_queue_pairs = 2;
  cfg.ring_size = 64;
  cfg.mtu = 1500;
  s = d.Configure(cfg);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(kit.dma_outstanding(), 2u) << "one descriptor ring per queue pair";
  s = d.Start();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(kit.buffers_outstanding(), 128u) << "both RX rings filled at start";

  // Frames sent on queue 1 come back on queue 1, in order and intact.
  std::vector<npa_buf*> tx;
  for (uint8_t i = 0; i < 8; i++) {
    npa_buf* b = kit.AllocFrame(1, 60, i);
    ASSERT_NE(b, nullptr);
    tx.push_back(b);
  }
  absl::StatusOr<uint16_t> sent = d.TxBurst(1, tx.data(), 8);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(*sent, 8);
  npa_buf* rx[16];
  absl::StatusOr<uint16_t> got = d.RxBurst(1, rx, 16);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(*got, 8);
  for (uint16_t i = 0; i < *got; i++) {
    EXPECT_EQ(rx[i]->pkt_len, 60u);
    EXPECT_EQ(static_cast<uint8_t*>(npa_buf_data(rx[i]))[59], i);
  }
  kit.FreeBuffers(1, rx, *got);
  EXPECT_EQ(*d.RxBurst(0, rx, 16), 0) << "queue 0 saw nothing";
  absl::StatusOr<npa_plugin_qstats> st = d.QueueStats(1);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->tx_packets, 8u);
  EXPECT_EQ(st->rx_packets, 8u);
  EXPECT_EQ(st->rx_bytes, 480u);

  // quiesce is optional and the example leaves it out.
  EXPECT_EQ(d.Quiesce(1000).code(), absl::StatusCode::kUnimplemented);
  s = d.Stop();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(kit.buffers_outstanding(), 0u) << "stop hands every buffer back";
  EXPECT_EQ(d.QueueStats(1)->tx_packets, 8u) << "counters survive stop";
  s = d.Remove();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(kit.dma_outstanding(), 0u) << "remove frees every DMA block";
  EXPECT_EQ(kit.double_frees(), 0u);
  EXPECT_TRUE(kit.foreign_frees().empty());
  EXPECT_EQ(kit.bad_dma_frees(), 0u);
  EXPECT_EQ(kit.bad_buffer_calls(), 0u);
}

TEST(ExamplePluginTest, RefusesADeviceThatIsNotItsOwn) {
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> lp = LoadPlugin(NPA_EXAMPLE_PLUGIN_PATH);
  ASSERT_TRUE(lp.ok()) << lp.status();
  Kit kit;
  kit.SetIdentity(0x8086, 0x10d3);
  kit.AddBar(0, 4096);
  PluginDevice d(std::shared_ptr<const LoadedPlugin>(std::move(*lp)));
  absl::Status s = d.Probe(kit.services(), kit.device_info());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_EQ(s.message(), "plug-in 'my_nic': probe failed: No such device (-19)");
}

}  // namespace
}  // namespace npa::shell
