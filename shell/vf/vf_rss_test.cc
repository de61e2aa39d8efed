// Hardware RSS on a VF (plugin.h rss_set): the guest's key, hash types and
// indirection table reach a plug-in that offers NPA_CAP_RSS with the op,
// right after configure (before the device starts) and again after every
// npa_shell_set_rss while the VF is attached; a plug-in without the op
// still gets attached, and on both the shell's software hash is what the
// application sees (one hash for a frame on every path).
#include <dlfcn.h>

#include <array>
#include <cstring>
#include <string>

#include "common/rss.h"
#include "gtest/gtest.h"
#include "npa/plugin.h"
#include "npa/shell.h"
#include "shell/vf/vf_switch_fixture.h"

namespace npa::shell {
namespace {

// tests/plugins/test_good.c's record of what rss_set accepted (its layout).
struct TestGoodRss {
  uint32_t calls, accepted;
  uint32_t started;
  uint32_t hash_types;
  uint16_t table_len, nb_queue_pairs;
  uint8_t key[NPA_RSS_CONF_KEY_LEN];
  uint16_t table[NPA_RSS_CONF_TABLE_MAX];
};

// The record of the test_good the shell has loaded (RTLD_NOLOAD: the
// shell's own handle, so the plug-in's static data is the one it wrote).
const TestGoodRss* Record() {
  const std::string so = std::string(NPA_TEST_PLUGIN_ROOT) + "/good/libtest_good.so";
  void* h = dlopen(so.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr) return nullptr;
  auto fn = reinterpret_cast<const TestGoodRss* (*)()>(dlsym(h, "test_good_rss_record"));
  const TestGoodRss* r = fn != nullptr ? fn() : nullptr;
  dlclose(h);  // the shell's handle keeps it loaded
  return r;
}

// Ethernet + IPv4 + UDP 10.0.0.1:12345 -> 10.0.0.2:53, 8 payload bytes.
void FillUdp(npa_buf* b) {
  uint8_t* d = static_cast<uint8_t*>(npa_buf_data(b));
  const uint8_t f[50] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00,
                         0x45, 0, 0, 36, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
                         0x30, 0x39, 0x00, 0x35, 0, 16, 0, 0, 'r', 's', 's', 't', 'e', 's', 't', '!'};
  memcpy(d, f, sizeof f);
  b->data_len = b->pkt_len = sizeof f;
  b->ol_flags = 0;
}

// One UDP frame through the VF loopback; its hash must be the shell's
// software Toeplitz under `key` (not anything the device made up).
void ExpectSoftwareHash(npa_shell* sh, std::span<const uint8_t> key) {
  npa_buf* b;
  ASSERT_EQ(npa_buf_alloc(sh, 0, &b, 1), 1);
  FillUdp(b);
  ASSERT_EQ(npa_tx_burst(sh, 0, &b, 1), 1);
  npa_buf* r = nullptr;
  ASSERT_TRUE(WaitFor([&] { return npa_rx_burst(sh, 0, &r, 1) == 1; }, 3000));
  const uint8_t* rd = static_cast<const uint8_t*>(npa_buf_data(r));
  RssTuple t;
  ASSERT_TRUE(ExtractRssTuple({rd, r->data_len}, kRssAllTypes, &t));
  EXPECT_EQ(t.report, RssReport::kUdpv4);
  auto h = RssHasher::Create(key);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_NE(r->ol_flags & NPA_BUF_OL_RX_RSS_HASH, 0u);
  EXPECT_EQ(r->rss_hash, h->Hash(t.bytes()));
  npa_buf_free(sh, 0, &r, 1);
}

TEST_F(VfSwitchTest, RssConfigReachesThePluginAtAttachAndAfterSetRss) {
  offloads_ = NPA_OFFLOAD_RSS_HASH;
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  control::VfAccept a = Offer(41, kLbVendor, kLbDevice);
  ASSERT_TRUE(a.accepted()) << a.reason();
  const TestGoodRss* rec = Record();
  ASSERT_NE(rec, nullptr) << dlerror();
  // At attach: the defaults (standard key, every type, 128 entries over
  // the one queue), before start.
  const uint32_t calls0 = rec->calls;
  ASSERT_GE(rec->accepted, 1u);
  EXPECT_EQ(rec->started, 0u) << "rss_set must come between configure and start";
  EXPECT_EQ(rec->hash_types, kRssAllTypes);
  EXPECT_EQ(rec->nb_queue_pairs, 1u);
  EXPECT_EQ(rec->table_len, NPA_RSS_CONF_TABLE_MAX);
  EXPECT_EQ(0, memcmp(rec->key, kDefaultRssKey.data(), NPA_RSS_CONF_KEY_LEN));
  for (uint16_t i = 0; i < rec->table_len; i++) EXPECT_EQ(rec->table[i], 0u) << i;
  ASSERT_NO_FATAL_FAILURE(ExpectSoftwareHash(sh_, kDefaultRssKey));
  EXPECT_EQ(Info().path, NPA_PATH_VF);

  // The guest's own key, types and table, while the VF runs.
  std::array<uint8_t, NPA_RSS_KEY_LEN> key;
  for (size_t i = 0; i < key.size(); i++) key[i] = static_cast<uint8_t>(0x11 * i + 3);
  const uint16_t table[4] = {0, 0, 0, 0};
  npa_rss_config c = NPA_RSS_CONFIG_INIT;
  c.hash_types = NPA_RSS_HASH_IPV4 | NPA_RSS_HASH_UDPV4;
  c.key_len = NPA_RSS_KEY_LEN;
  c.key = key.data();
  c.table_len = 4;
  c.table = table;
  ASSERT_EQ(npa_shell_set_rss(sh_, &c), 0) << npa_shell_last_error(nullptr);
  EXPECT_EQ(rec->calls, calls0 + 1);
  EXPECT_EQ(rec->started, 1u);
  EXPECT_EQ(rec->hash_types, NPA_RSS_HASH_IPV4 | NPA_RSS_HASH_UDPV4);
  EXPECT_EQ(rec->table_len, 4u);
  EXPECT_EQ(0, memcmp(rec->key, key.data(), key.size()));
  ASSERT_NO_FATAL_FAILURE(ExpectSoftwareHash(sh_, key));

  // Back on the emulated path: set_rss reaches no plug-in (the released
  // VF's plug-in may be unloaded: its record is only read if it is not).
  const uint32_t calls1 = rec->calls;
  control::RevokeDone d = Revoke(41, 2000);
  rec = nullptr;
  EXPECT_EQ(Info().path, NPA_PATH_EMULATED);
  key[0] ^= 0xff;
  ASSERT_EQ(npa_shell_set_rss(sh_, &c), 0) << npa_shell_last_error(nullptr);
  if (const TestGoodRss* after = Record(); after != nullptr) {
    EXPECT_EQ(after->calls, calls1);
  }
  EXPECT_EQ(d.tx_inflight_lost(), 0u);
}

// Without NPA_OFFLOAD_RSS_HASH the plug-in is not asked, even though it
// offers hardware RSS.
TEST_F(VfSwitchTest, RssNotSetWithoutTheOffload) {
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  const TestGoodRss* before = Record();  // null if not loaded yet
  const uint32_t calls0 = before ? before->calls : 0;
  ASSERT_TRUE(Offer(42, kLbVendor, kLbDevice).accepted());
  const TestGoodRss* rec = Record();
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->calls, calls0);
}

// A plug-in without rss_set (nor NPA_CAP_RSS): attached as before, and every
// frame carries the shell's software hash, after set_rss too.
TEST_F(VfSwitchTest, PluginWithoutRssSetStillWorks) {
  SetPluginDir("norss");
  offloads_ = NPA_OFFLOAD_RSS_HASH;
  ASSERT_NO_FATAL_FAILURE(OpenShell());
  control::VfAccept a = Offer(43, kLbVendor, kLbDevice);
  ASSERT_TRUE(a.accepted()) << a.reason();
  ASSERT_NO_FATAL_FAILURE(ExpectSoftwareHash(sh_, kDefaultRssKey));
  EXPECT_EQ(Info().path, NPA_PATH_VF);
  std::array<uint8_t, NPA_RSS_KEY_LEN> key;
  key.fill(0x5a);
  npa_rss_config c = NPA_RSS_CONFIG_INIT;
  c.key_len = NPA_RSS_KEY_LEN;
  c.key = key.data();
  ASSERT_EQ(npa_shell_set_rss(sh_, &c), 0) << npa_shell_last_error(nullptr);
  ASSERT_NO_FATAL_FAILURE(ExpectSoftwareHash(sh_, key));
  EXPECT_EQ(Info().path, NPA_PATH_VF);
}

}  // namespace
}  // namespace npa::shell
