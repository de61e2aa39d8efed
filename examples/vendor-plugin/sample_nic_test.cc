// sample_nic_test.cc — a vendor plug-in's own unit test, on the installed
// plug-in test kit (npa/testing/plugin_testkit.h): a fake services table, no
// device, no shell, no test framework. It loads the built plug-in, runs it
// through the shell's call order and checks what the kit counted.
// Exit 0 when every CHECK held; each failed CHECK prints its line.
#include <cerrno>
#include <cstdio>
#include <string>

#include <npa/testing/plugin_testkit.h>

static int failures = 0;
#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      failures++;                                                    \
    }                                                                \
  } while (0)

int main() {
  std::string why;
  auto so = npa::testkit::PluginObject::Open(SAMPLE_NIC_PATH, &why);
  if (!so) {
    std::fprintf(stderr, "cannot load %s: %s\n", SAMPLE_NIC_PATH, why.c_str());
    return 1;
  }
  const npa_plugin_ctrl_ops* c = so->ctrl();
  const npa_plugin_fast_ops* f = so->fast();

  npa::testkit::FakeServices kit;
  kit.AddBar(0, 0x4000);

  // Not our device: refused, nothing taken.
  kit.SetIdentity(0x8086, 0x10d3);
  npa_plugin_dev* dev = nullptr;
  CHECK(c->probe(kit.services(), &kit.device_info(), &dev) == -ENODEV);
  CHECK(kit.dma_outstanding() == 0);

  kit.SetIdentity(0x1d0f, 0x5a00);
  CHECK(c->probe(kit.services(), &kit.device_info(), &dev) == 0);
  if (dev == nullptr) return 1;
  npa_dev_caps caps{};
  caps.struct_size = sizeof(caps);
  CHECK(c->get_caps(dev, &caps) == 0);
  CHECK(caps.max_queue_pairs >= 1);

  npa_dev_config cfg{};
  cfg.struct_size = sizeof(cfg);
  cfg.nb_queue_pairs = 1;
  cfg.ring_size = 100;  // not a power of two
  CHECK(c->configure(dev, &cfg) == -EINVAL);
  cfg.ring_size = 256;
  cfg.mtu = 1500;
  CHECK(c->configure(dev, &cfg) == 0);
  CHECK(c->start(dev) == 0);
  npa_plugin_queue* q = c->queue(dev, 0);
  CHECK(q != nullptr);
  CHECK(c->queue(dev, 1) == nullptr);

  // Eight 60-byte frames out: taken, counted, every buffer handed back.
  npa_buf* frames[8];
  for (auto& b : frames) b = kit.AllocFrame(0, 60, 0xab);
  CHECK(f->tx_burst(q, frames, 8) == 8);
  npa_buf* rx[4];
  CHECK(f->rx_burst(q, rx, 4) == 0);
  npa_plugin_qstats st{};
  st.struct_size = sizeof(st);
  CHECK(c->queue_stats(dev, 0, &st) == 0);
  CHECK(st.tx_packets == 8 && st.tx_bytes == 480);
  npa_link_status link{};
  link.struct_size = sizeof(link);
  CHECK(c->link_status(dev, &link) == 0 && link.up == 1);

  CHECK(c->stop(dev) == 0);
  c->remove(dev);
  CHECK(kit.buffers_outstanding() == 0);
  CHECK(kit.dma_outstanding() == 0);
  CHECK(kit.double_frees() == 0);
  if (failures == 0) std::printf("sample_nic: probe, configure, start, 8 frames TX, stop, remove: OK\n");
  return failures == 0 ? 0 : 1;
}
