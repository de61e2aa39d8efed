// conform/conform_cases.cc — ABI, lifecycle, reset and service-failure
// cases of npa-conform (docs/conformance.md).
#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/rss.h"
#include "conform/conform_runner.h"

namespace npa::conform {

std::string Errno(int rc) { return absl::StrCat(rc, " (", strerror(rc < 0 ? -rc : rc), ")"); }

int DevGuard::Probe() {
  npa_device_info info = c.info;
  return c.ctrl().probe(c.svc->table(), &info, &dev);
}

void DevGuard::Release() {
  if (dev == nullptr) return;
  if (started) c.ctrl().stop(dev);
  c.ctrl().remove(dev);
  dev = nullptr;
  started = false;
}

npa_dev_config StdConfig(const Ctx& c) {
  npa_dev_config cfg{};
  cfg.struct_size = sizeof(cfg);
  cfg.nb_queue_pairs = 1;
  uint16_t ring = 256;
  if (ring > c.caps.max_ring_size) ring = c.caps.max_ring_size;
  if (ring < c.caps.min_ring_size) ring = c.caps.min_ring_size;
  cfg.ring_size = ring;
  cfg.mtu = c.caps.max_mtu < 1500 ? c.caps.max_mtu : 1500;
  memcpy(cfg.mac, c.caps.perm_mac, 6);
  return cfg;
}

std::string BringUp(Ctx& c, DevGuard& g, const npa_dev_config& cfg) {
  int rc = g.Probe();
  if (rc < 0) return "probe: " + Errno(rc);
  if ((rc = c.ctrl().configure(g.dev, &cfg)) < 0) return "configure: " + Errno(rc);
  if ((rc = c.ctrl().start(g.dev)) < 0) return "start: " + Errno(rc);
  g.started = true;
  for (uint16_t q = 0; q < cfg.nb_queue_pairs; q++)
    if (c.ctrl().queue(g.dev, q) == nullptr) return absl::StrCat("queue(", q, ") is NULL after start");
  return "";
}

std::string Accounting(Ctx& c) {
  std::string out;
  if (c.svc->bufs_outstanding() != 0)
    out += absl::StrCat(c.svc->bufs_outstanding(), " buffer(s) not handed back; ");
  if (c.svc->dma_outstanding() != 0)
    out += absl::StrCat(c.svc->dma_outstanding(), " DMA block(s) not freed; ");
  if (c.svc->violations() != 0)
    out += absl::StrCat(c.svc->violations(), " violation(s), the first: ", c.svc->violation_log()[0],
                        "; ");
  return out;
}

namespace {

Result AbiRefusesOtherMajor(Ctx& c) {
  void* h = dlopen(c.opt.plugin_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return Fail(absl::StrCat("dlopen: ", dlerror()));
  auto entry = reinterpret_cast<npa_plugin_entry_fn>(dlsym(h, NPA_PLUGIN_ENTRY_NAME));
  Result r = Pass("entry answers NULL to major 2 and to a short query");
  if (entry == nullptr) {
    r = Fail("no npa_plugin_entry");
  } else {
    npa_plugin_query q{sizeof(q), NPA_PLUGIN_ABI_MAJOR + 1, 0};
    if (entry(&q) != nullptr) r = Fail("entry accepted ABI major 2 (plugin.h: return NULL)");
    q.abi_major = NPA_PLUGIN_ABI_MAJOR;
    const npa_plugin_info* info = entry(&q);
    if (info == nullptr) r = Fail("entry refused the current ABI");
  }
  dlclose(h);
  return r;
}

Result BrokenPluginsRejected(Ctx& c) {
  if (c.opt.broken_dir.empty()) return Skip("no --broken-dir given");
  DIR* d = opendir(c.opt.broken_dir.c_str());
  if (d == nullptr) return Fail("cannot open " + c.opt.broken_dir);
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 3 && n.compare(n.size() - 3, 3, ".so") == 0) files.push_back(n);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  int rejected = 0;
  std::string accepted;
  for (const auto& f : files) {
    auto p = shell::LoadPlugin(c.opt.broken_dir + "/" + f);
    if (p.ok()) accepted += f + " ";
    else rejected++;
  }
  if (files.empty()) return Fail("no .so in " + c.opt.broken_dir);
  if (!accepted.empty()) return Fail("loader accepted broken plug-ins: " + accepted);
  return Pass(absl::StrCat(rejected, " broken plug-in(s) rejected"));
}

Result IdMatch(Ctx& c) {
  const npa_device_info& i = c.info;
  shell::PciIdentity id{i.vendor, i.device, i.subsystem_vendor, i.subsystem_device, i.class_code};
  int s = shell::MatchScore(*c.plugin, id);
  char buf[64];
  snprintf(buf, sizeof(buf), "%04x:%04x", i.vendor, i.device);
  if (s < 0) return Fail(absl::StrCat("the ID table does not claim ", buf));
  return Pass(absl::StrCat(buf, " matched, score ", s));
}

Result CheckCaps(Ctx& c, const npa_dev_caps& k) {
  auto pow2 = [](uint32_t v) { return v && !(v & (v - 1)); };
  if (k.max_queue_pairs < 1) return Fail("caps.max_queue_pairs is 0");
  if (!pow2(k.min_ring_size) || !pow2(k.max_ring_size) || k.min_ring_size > k.max_ring_size)
    return Fail(absl::StrCat("bad ring range ", k.min_ring_size, "..", k.max_ring_size));
  if (k.max_mtu < 68) return Fail(absl::StrCat("max_mtu ", k.max_mtu));
  if (k.offloads & ~c.plugin->capabilities())
    return Fail("caps.offloads has bits the plug-in does not declare");
  return Pass();
}

Result ProbeRemoveLoop(Ctx& c) {
  for (int i = 0; i < c.opt.loops; i++) {
    DevGuard g(c);
    int rc = g.Probe();
    if (rc < 0 || g.dev == nullptr) return Fail(absl::StrCat("probe #", i, ": ", Errno(rc)));
    npa_dev_caps k{};
    k.struct_size = sizeof(k);
    if ((rc = c.ctrl().get_caps(g.dev, &k)) < 0) return Fail("get_caps: " + Errno(rc));
    Result r = CheckCaps(c, k);
    if (r.v != Verdict::kPass) return r;
    if (i == 0) c.caps = k;
    g.Release();
    std::string a = Accounting(c);
    if (!a.empty()) return Fail(absl::StrCat("after remove #", i, ": ", a));
  }
  return Pass(absl::StrCat(c.opt.loops, "x probe/get_caps/remove, ", c.caps.max_queue_pairs,
                           " qp, ring ", c.caps.min_ring_size, "..", c.caps.max_ring_size,
                           ", offloads 0x", absl::Hex(c.caps.offloads)));
}

Result ProbeForeignId(Ctx& c) {
  npa_device_info info = c.info;
  info.vendor = 0xfffe;  // no real vendor; not in any sane ID table
  info.device = 0xfffe;
  npa_plugin_dev* d = nullptr;
  int rc = c.ctrl().probe(c.svc->table(), &info, &d);
  if (rc >= 0) {
    if (d) c.ctrl().remove(d);
    return Fail("probe accepted vendor:device fffe:fffe");
  }
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  return Pass("probe answered " + Errno(rc));
}

Result ConfigureRejectsBadArgs(Ctx& c) {
  DevGuard g(c);
  int rc = g.Probe();
  if (rc < 0) return Fail("probe: " + Errno(rc));
  struct Bad {
    const char* what;
    npa_dev_config cfg;
  };
  std::vector<Bad> bad;
  npa_dev_config base = StdConfig(c);
  npa_dev_config x = base;
  x.ring_size = static_cast<uint16_t>(c.caps.min_ring_size + 1 == 2 ? 3 : c.caps.min_ring_size + 1);
  bad.push_back({"ring_size not a power of two", x});
  x = base; x.nb_queue_pairs = 0;
  bad.push_back({"nb_queue_pairs 0", x});
  x = base; x.nb_queue_pairs = static_cast<uint16_t>(c.caps.max_queue_pairs + 1);
  bad.push_back({"nb_queue_pairs above caps", x});
  x = base; x.offloads = ~c.caps.offloads & NPA_CAP_ALL_V1;
  if (x.offloads) bad.push_back({"offloads outside caps", x});
  x = base; x.struct_size = 4;
  bad.push_back({"struct_size 4", x});
  x = base; x.mtu = c.caps.max_mtu + 1;
  bad.push_back({"mtu above caps", x});
  for (auto& b : bad) {
    rc = c.ctrl().configure(g.dev, &b.cfg);
    if (rc >= 0) return Fail(absl::StrCat("configure accepted ", b.what));
  }
  if ((rc = c.ctrl().configure(g.dev, nullptr)) >= 0) return Fail("configure accepted NULL");
  npa_plugin_qstats s{};
  s.struct_size = sizeof(s);
  if (c.ctrl().queue_stats(g.dev, c.caps.max_queue_pairs, &s) >= 0)
    return Fail("queue_stats accepted qid == max_queue_pairs");
  npa_link_status l{};
  if (c.ctrl().link_status(g.dev, &l) >= 0) return Fail("link_status accepted struct_size 0");
  // After all that, the device must still configure and start.
  npa_dev_config ok = base;
  if ((rc = c.ctrl().configure(g.dev, &ok)) < 0) return Fail("good configure after bad: " + Errno(rc));
  g.Release();
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  return Pass(absl::StrCat(bad.size() + 3, " bad calls rejected"));
}

Result StartStopLoop(Ctx& c) {
  DevGuard g(c);
  int rc = g.Probe();
  if (rc < 0) return Fail("probe: " + Errno(rc));
  npa_dev_config cfg = StdConfig(c);
  int max_held = 0;
  for (int i = 0; i < c.opt.loops; i++) {
    if ((rc = c.ctrl().configure(g.dev, &cfg)) < 0)
      return Fail(absl::StrCat("configure #", i, ": ", Errno(rc)));
    if ((rc = c.ctrl().start(g.dev)) < 0) return Fail(absl::StrCat("start #", i, ": ", Errno(rc)));
    g.started = true;
    if (c.ctrl().queue(g.dev, 0) == nullptr) return Fail("queue(0) NULL after start");
    max_held = std::max(max_held, c.svc->bufs_outstanding());
    if ((rc = c.ctrl().stop(g.dev)) < 0) return Fail(absl::StrCat("stop #", i, ": ", Errno(rc)));
    g.started = false;
    if (c.svc->bufs_outstanding() != 0)
      return Fail(absl::StrCat("stop #", i, " kept ", c.svc->bufs_outstanding(), " buffer(s)"));
  }
  g.Release();
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  return Pass(absl::StrCat(c.opt.loops, "x configure/start/stop, up to ", max_held,
                           " RX buffers posted, all returned"));
}

// rss_set (ABI 1.1), when the plug-in has it: the standard key with every
// hash type and a table over the one configured queue is accepted once
// configured and again while started (the shell calls it at both points,
// the second while the queues burst); a table entry beyond the configured
// queues is refused with -EINVAL, and the device still stops cleanly.
Result RssSet(Ctx& c) {
  if (c.ctrl().rss_set == nullptr) return Skip("plug-in has no rss_set op");
  if (!(c.caps.offloads & NPA_CAP_RSS))
    return Fail("rss_set is set but get_caps does not offer NPA_CAP_RSS (the shell never calls it)");
  uint16_t table[NPA_RSS_CONF_TABLE_MAX] = {};
  npa_rss_conf rc_conf{};
  rc_conf.struct_size = sizeof(rc_conf);
  rc_conf.hash_types = (1u << 6) - 1;  // every NPA_RSS_CONF_HASH_*
  rc_conf.key_len = NPA_RSS_CONF_KEY_LEN;
  rc_conf.table_len = NPA_RSS_CONF_TABLE_MAX;
  rc_conf.nb_queue_pairs = 1;
  rc_conf.key = kDefaultRssKey.data();  // Microsoft's verification key
  rc_conf.table = table;
  DevGuard g(c);
  int rc = g.Probe();
  if (rc < 0) return Fail("probe: " + Errno(rc));
  npa_dev_config cfg = StdConfig(c);
  if ((rc = c.ctrl().configure(g.dev, &cfg)) < 0) return Fail("configure: " + Errno(rc));
  if ((rc = c.ctrl().rss_set(g.dev, &rc_conf)) != 0)
    return Fail("rss_set after configure: " + Errno(rc));
  if ((rc = c.ctrl().start(g.dev)) < 0) return Fail("start: " + Errno(rc));
  g.started = true;
  if ((rc = c.ctrl().rss_set(g.dev, &rc_conf)) != 0)
    return Fail("rss_set while started: " + Errno(rc));
  table[5] = 1;  // queue 1 is not configured
  if ((rc = c.ctrl().rss_set(g.dev, &rc_conf)) != -EINVAL)
    return Fail("rss_set with table[5] = 1 on one queue pair: " + Errno(rc) + ", want -EINVAL");
  if ((rc = c.ctrl().stop(g.dev)) < 0) return Fail("stop: " + Errno(rc));
  g.started = false;
  g.Release();
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  return Pass("accepted after configure and while started; a bad table entry refused");
}

Result ResetIdle(Ctx& c) {
  if (c.ctrl().reset == nullptr) return Skip("plug-in has no reset op");
  DevGuard g(c);
  npa_dev_config cfg = StdConfig(c);
  std::string e = BringUp(c, g, cfg);
  if (!e.empty()) return Fail(e);
  int rc = c.ctrl().stop(g.dev);
  g.started = false;
  if (rc < 0) return Fail("stop: " + Errno(rc));
  if ((rc = c.ctrl().reset(g.dev)) < 0) return Fail("reset while stopped: " + Errno(rc));
  if ((rc = c.ctrl().configure(g.dev, &cfg)) < 0) return Fail("configure after reset: " + Errno(rc));
  if ((rc = c.ctrl().start(g.dev)) < 0) return Fail("start after reset: " + Errno(rc));
  g.started = true;
  g.Release();
  std::string a = Accounting(c);
  return a.empty() ? Pass("stop/reset/configure/start") : Fail(a);
}

// Probe, configure and start with the Nth dma_alloc failing, for every N
// until a run completes without reaching N.
Result FaultDmaAlloc(Ctx& c) {
  int failures = 0;
  for (int n = 0; n < 64; n++) {
    c.svc->reset_counters();
    c.svc->faults().dma_fail_at = n;
    DevGuard g(c);
    std::string e = BringUp(c, g, StdConfig(c));
    int64_t calls = c.svc->dma_calls();
    g.Release();
    c.svc->faults().dma_fail_at = -1;
    std::string a = Accounting(c);
    if (!a.empty()) return Fail(absl::StrCat("dma_alloc #", n, " failing: ", a));
    if (calls <= n) {
      if (!e.empty()) return Fail(absl::StrCat("failed without the fault: ", e));
      return Pass(absl::StrCat(n, " dma_alloc call(s) per bring-up, each failure returned an "
                               "error (", failures, ") and leaked nothing"));
    }
    if (e.empty()) return Fail(absl::StrCat("dma_alloc #", n, " failed with -ENOMEM, yet bring-up "
                                            "reported success"));
    failures++;
  }
  return Fail("more than 64 dma_alloc calls per bring-up");
}

Result FaultBufAlloc(Ctx& c) {
  std::string detail;
  for (int mode = 0; mode < 2; mode++) {
    if (mode == 0) c.svc->faults().buf_max = 3;
    else c.svc->faults().buf_empty = true;
    DevGuard g(c);
    std::string e = BringUp(c, g, StdConfig(c));
    g.Release();
    c.svc->faults() = Faults{};
    std::string a = Accounting(c);
    if (!a.empty()) return Fail(absl::StrCat(mode ? "empty pool: " : "short pool: ", a));
    detail += mode ? "empty pool: " : "3-per-call pool: ";
    detail += e.empty() ? "started; " : "error (" + e + "); ";
  }
  return Pass(detail + "nothing leaked");
}

Result FaultIrqSetup(Ctx& c) {
  if (!(c.caps.offloads & NPA_CAP_RX_INTR)) return Skip("RX_INTR not claimed");
  c.svc->faults().irq_fail = true;
  DevGuard g(c);
  npa_dev_config cfg = StdConfig(c);
  cfg.rx_intr = 1;
  std::string e = BringUp(c, g, cfg);
  g.Release();
  c.svc->faults() = Faults{};
  std::string a = Accounting(c);
  if (!a.empty()) return Fail(a);
  return Pass(e.empty() ? "degraded: started without interrupts" : "error: " + e);
}

// What the agent does on revoke: VFIO_DEVICE_RESET under a running plug-in,
// then stop/remove and a fresh bring-up. For virtio devices the reset is
// confirmed by reading device_status back through the common config. The
// harness reads through the undecorated production table (no faults apply);
// its BAR mapping is the one the plug-in got.
volatile uint8_t* VirtioStatusReg(Ctx& c) {
  const npa_device_info& i = c.info;
  if (i.vendor != 0x1af4) return nullptr;
  const npa_services* t = c.svc->vf().table();
  auto cfg_read = [t](uint32_t off, uint32_t len, uint32_t* v) { return t->cfg_read(t->ctx, off, len, v); };
  uint32_t pos = 0;
  cfg_read(0x34, 1, &pos);
  for (int n = 0; pos && n < 48; n++) {
    uint32_t id = 0, next = 0, type = 0, bar = 0, off = 0;
    cfg_read(pos, 1, &id);
    cfg_read(pos + 1, 1, &next);
    if (id == 0x09) {
      cfg_read(pos + 3, 1, &type);
      cfg_read(pos + 4, 1, &bar);
      cfg_read(pos + 8, 4, &off);
      volatile void* a = nullptr;
      uint64_t len = 0;
      if (type == 1 && t->bar_map(t->ctx, bar, &a, &len) == 0 && uint64_t(off) + 21 <= len)
        return static_cast<volatile uint8_t*>(a) + off + 20;  // 4.1.4.3 device_status
    }
    pos = next & 0xfc;
  }
  return nullptr;
}

Result HostReset(Ctx& c) {
  DevGuard g(c);
  std::string e = BringUp(c, g, StdConfig(c));
  if (!e.empty()) return Fail(e);
  volatile uint8_t* st = VirtioStatusReg(c);
  uint8_t before = st ? *st : 0;
  absl::Status s = c.fn->device().Reset();
  if (!s.ok()) return Fail(std::string(s.message()));
  uint8_t after = st ? *st : 0;
  g.Release();
  std::string a = Accounting(c);
  if (!a.empty()) return Fail("after host reset: " + a);
  DevGuard g2(c);
  e = BringUp(c, g2, StdConfig(c));
  if (!e.empty()) return Fail("bring-up after host reset: " + e);
  g2.Release();
  if (st) {
    if (!(before & 4) || after != 0)
      return Fail(absl::StrCat("virtio device_status 0x", absl::Hex(before), " -> 0x",
                               absl::Hex(after), " (want DRIVER_OK -> 0)"));
    return Pass(absl::StrCat("VFIO_DEVICE_RESET: virtio device_status 0x", absl::Hex(before),
                             " -> 0x0, re-probed and started"));
  }
  return Pass("VFIO_DEVICE_RESET under a running plug-in, re-probed and started");
}

}  // namespace

std::vector<Case> LoadCases() {
  return {
      {"abi_refuses_other_major", AbiRefusesOtherMajor},
      {"loader_rejects_broken", BrokenPluginsRejected},
      {"id_table_matches", IdMatch},
      {"probe_remove_loop", ProbeRemoveLoop},
      {"probe_foreign_id", ProbeForeignId},
      {"configure_rejects_bad_args", ConfigureRejectsBadArgs},
      {"start_stop_loop", StartStopLoop},
      {"reset_idle", ResetIdle},
      {"rss_set", RssSet},
      {"fault_dma_alloc", FaultDmaAlloc},
      {"fault_buf_alloc", FaultBufAlloc},
      {"fault_irq_setup", FaultIrqSetup},
      {"host_reset", HostReset},
  };
}

}  // namespace npa::conform
