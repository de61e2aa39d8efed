// tests/lab/e1000e_lab.cc — the e1000e plug-in on a real VFIO device,
// inside the lab guest (tests/lab/scenarios/*-e1000e_vf.sh runs it).
//
//   npa-lab-e1000e --bdf 0000:03:00.0 --plugin /lab/plugins/npa_plugin_e1000e.so
//                  --peer-mac 52:54:00:4c:00:fe [--netns peer]
//
// The function must already be bound to vfio-pci (reset_method=bus, see
// docs/vfio-lab.md). Steps, each printing "E1000E_LAB: ok|FAIL ...":
//   1. The function opened with the VFIO host library (hypervisor/vf/vfio.h:
//      type1 container, group, device) and a memfd region DMA-mapped at
//      iova == vaddr (the agent's convention).
//   2. vf_services over the device fd; the plug-in loaded by the shell's
//      loader and driven through PluginDevice: probe, caps, configure, start.
//   3. TX: UDP frames to the peer namespace (kernel NIC on the same QEMU hub),
//      half with the L4 checksum offloaded (context descriptor); the peer's
//      kernel drops bad checksums, so receiving them all checks the offload.
//   4. RX in interrupt mode: arm RxQ0, the peer sends, the MSI-X eventfd fires,
//      rx_burst returns the frames; contents and RX checksum flags checked.
//   5. Stats, stop (every buffer back in the pool), VFIO_DEVICE_RESET checked
//      by reading registers back, then reset + configure + start again and TX.
//   6. Both queue pairs with RSS: every TCP SYN from the peer's flows on the
//      queue npa's software Toeplitz hash and the table name
//      (e1000e_lab_rss.cc).
// Exit status 0 only if every step passed.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "hypervisor/vf/vfio.h"
#include "npa/plugin.h"
#include "shell/vf/plugin_device.h"
#include "shell/vf/plugin_loader.h"
#include "shell/vf/vf_services.h"
#include "tests/lab/e1000e_lab_util.h"

namespace {

using namespace e1000e_lab;
using npa::MonotonicMs;
using npa::shell::PluginDevice;

// ------------------------------------------------------------- frames

struct Addrs {
  uint8_t mac[6], peer_mac[6];
  uint32_t ip, peer_ip;  // network order
};

uint32_t Sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t{p[i]} << 8 | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  return sum;
}
uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Ethernet + IPv4 + UDP. offload: leave the pseudo-header sum in the UDP
// checksum field and ask for NPA_BUF_OL_TX_CSUM (csum_start 34, offset 6).
void BuildUdp(npa_buf* b, const Addrs& a, uint16_t sport, uint16_t dport, const std::string& payload,
              bool offload) {
  uint8_t* f = static_cast<uint8_t*>(npa_buf_data(b));
  uint16_t udp_len = static_cast<uint16_t>(8 + payload.size());
  uint16_t ip_len = static_cast<uint16_t>(20 + udp_len);
  std::memcpy(f, a.peer_mac, 6);
  std::memcpy(f + 6, a.mac, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f + 14;
  std::memset(ip, 0, 20);
  ip[0] = 0x45;
  ip[2] = ip_len >> 8;
  ip[3] = ip_len & 0xff;
  ip[6] = 0x40;  // DF
  ip[8] = 64;
  ip[9] = 17;
  std::memcpy(ip + 12, &a.ip, 4);
  std::memcpy(ip + 16, &a.peer_ip, 4);
  uint16_t ipc = static_cast<uint16_t>(~Fold(Sum16(ip, 20)));
  ip[10] = ipc >> 8;
  ip[11] = ipc & 0xff;
  uint8_t* udp = ip + 20;
  udp[0] = sport >> 8;
  udp[1] = sport & 0xff;
  udp[2] = dport >> 8;
  udp[3] = dport & 0xff;
  udp[4] = udp_len >> 8;
  udp[5] = udp_len & 0xff;
  udp[6] = udp[7] = 0;
  std::memcpy(udp + 8, payload.data(), payload.size());
  uint32_t pseudo = Sum16(ip + 12, 8) + 17 + udp_len;
  if (offload) {
    uint16_t p = Fold(pseudo);
    udp[6] = p >> 8;
    udp[7] = p & 0xff;
    b->ol_flags = NPA_BUF_OL_TX_CSUM;
    b->csum_start = 34;
    b->csum_offset = 6;
  } else {
    uint16_t c = static_cast<uint16_t>(~Fold(Sum16(udp, udp_len, pseudo)));
    if (c == 0) c = 0xffff;
    udp[6] = c >> 8;
    udp[7] = c & 0xff;
  }
  b->data_len = static_cast<uint16_t>(14 + ip_len);
  b->pkt_len = b->data_len;
}

// --------------------------------------------------------- peer process

// Peer receiver: bind UDP port, report ready, receive `want` datagrams whose
// payloads start with prefix; exit 0 when all arrived (in the 5 s budget).
int PeerReceive(int, int up, uint16_t port, int want, const std::string& prefix) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return 91;
  timeval tv{0, 200000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (write(up, "r", 1) != 1) return 92;
  int got = 0;
  uint64_t t0 = MonotonicMs();
  while (got < want && MonotonicMs() - t0 < 5000) {
    char buf[2048];
    ssize_t n = recv(s, buf, sizeof(buf), 0);
    if (n <= 0) continue;
    std::string p(buf, static_cast<size_t>(n));
    if (p.rfind(prefix, 0) != 0) continue;
    std::fprintf(stderr, "peer: received \"%s\"\n", p.c_str());
    got++;
  }
  close(s);
  return got == want ? 0 : 93;
}

// Peer sender: wait for the go byte, send `count` datagrams to ip:port.
int PeerSend(int down, int up, uint32_t ip, uint16_t port, int count, const std::string& prefix) {
  if (write(up, "r", 1) != 1) return 92;
  if (!ReadByte(down, 10000)) return 94;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = ip;
  for (int i = 0; i < count; i++) {
    std::string p = prefix + std::to_string(i);
    if (sendto(s, p.data(), p.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0) return 95;
    usleep(20000);
  }
  close(s);
  return 0;
}

bool ParseMac(const char* s, uint8_t m[6]) {
  unsigned v[6];
  if (std::sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return false;
  for (int i = 0; i < 6; i++) m[i] = static_cast<uint8_t>(v[i]);
  return true;
}

// ------------------------------------------------------------- the run

struct Run {
  Addrs addrs{};
  std::string ns = "peer";
  SlotPool* pool = nullptr;
  PluginDevice* dev = nullptr;
};

// Send count frames to the peer's UDP port 7777 and have the peer check them.
bool TxToPeer(Run& r, int count, const char* tag) {
  std::string prefix = std::string("npa-e1000e ") + tag + " #";
  Child c = SpawnInNetns(r.ns, [&](int down, int up) {
    return PeerReceive(down, up, 7777, count, prefix);
  });
  if (c.pid < 0 || !ReadByte(c.from_child, 5000)) {
    Say(false, "%s: peer receiver did not start", tag);
    if (c.pid > 0) WaitChild(c, 0);
    return false;
  }
  std::vector<npa_buf*> b(count);
  if (r.pool->Alloc(0, b.data(), static_cast<uint16_t>(count)) != count) {
    Say(false, "%s: pool empty", tag);
    WaitChild(c, 0);
    return false;
  }
  int offloaded = 0;
  for (int i = 0; i < count; i++) {
    bool off = (i % 2) == 0;
    offloaded += off;
    BuildUdp(b[i], r.addrs, 40000, 7777, prefix + std::to_string(i), off);
  }
  uint16_t sent = 0;
  for (int tries = 0; sent < count && tries < 100; tries++) {
    auto s = r.dev->TxBurst(0, b.data() + sent, static_cast<uint16_t>(count - sent));
    if (!s.ok()) break;
    sent = static_cast<uint16_t>(sent + *s);
  }
  if (sent < count) r.pool->Free(0, b.data() + sent, static_cast<uint16_t>(count - sent));
  int rc = WaitChild(c, 8000);
  // Completions: the plug-in hands sent buffers back through buf_free.
  uint64_t t0 = MonotonicMs();
  while (MonotonicMs() - t0 < 2000) {
    if (!r.dev->TxReap(0).ok()) break;  // a plug-in that cannot reap shows in stop's buffer count
    if (r.pool->available() + 256 >= r.pool->count()) break;  // only the RX ring is out
    usleep(1000);
  }
  Say(sent == count && rc == 0,
      "%s: %u/%d UDP frames sent (%d with TX checksum offload), peer kernel received all: %s", tag,
      sent, count, offloaded, rc == 0 ? "yes" : ("no, peer exit " + std::to_string(rc)).c_str());
  return sent == count && rc == 0;
}

bool IsOurUdp(const npa_buf* b, uint16_t dport) {
  const uint8_t* f = static_cast<const uint8_t*>(npa_buf_data(b));
  return b->data_len >= 42 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 17 &&
         (uint16_t{f[36]} << 8 | f[37]) == dport;
}

bool RxFromPeer(Run& r, int efd) {
  const int count = 4;
  std::string prefix = "npa-e1000e rx #";
  uint32_t ip = r.addrs.ip;
  Child c = SpawnInNetns(r.ns, [&](int down, int up) {
    return PeerSend(down, up, ip, 7778, count, prefix);
  });
  if (c.pid < 0 || !ReadByte(c.from_child, 5000)) {
    Say(false, "rx: peer sender did not start");
    if (c.pid > 0) WaitChild(c, 0);
    return false;
  }
  // Drain what is already there, then arm the RX interrupt and sleep on it.
  npa_buf* bufs[32];
  for (int i = 0; i < 8; i++) {
    auto n = r.dev->RxBurst(0, bufs, 32);
    if (!n.ok() || *n == 0) break;
    r.pool->Free(0, bufs, *n);
  }
  uint64_t junk = 0;
  while (read(efd, &junk, sizeof(junk)) == sizeof(junk)) {
  }
  absl::Status arm = r.dev->RxIntrEnable(0, true);
  Say(arm.ok(), "rx: RxQ0 interrupt armed (%s)", arm.ToString().c_str());
  if (write(c.to_child, "g", 1) != 1) Say(false, "rx: cannot start the peer");
  pollfd p{efd, POLLIN, 0};
  uint64_t t0 = MonotonicMs();
  int pr = poll(&p, 1, 5000);
  uint64_t cnt = 0;
  bool fired = pr == 1 && read(efd, &cnt, sizeof(cnt)) == sizeof(cnt);
  Say(fired, "rx: MSI-X eventfd fired after %llu ms (count %llu)",
      (unsigned long long)(MonotonicMs() - t0), (unsigned long long)cnt);
  int got = 0, csum_good = 0, content_ok = 0;
  t0 = MonotonicMs();
  while (got < count && MonotonicMs() - t0 < 5000) {
    auto n = r.dev->RxBurst(0, bufs, 32);
    if (!n.ok()) break;
    for (uint16_t i = 0; i < *n; i++) {
      if (IsOurUdp(bufs[i], 7778)) {
        const char* pay = static_cast<const char*>(npa_buf_data(bufs[i])) + 42;
        std::string s(pay, bufs[i]->data_len - 42);
        // QEMU pads short frames to 60 bytes: compare the UDP payload length.
        const uint8_t* f = static_cast<const uint8_t*>(npa_buf_data(bufs[i]));
        size_t ulen = (size_t{f[38]} << 8 | f[39]) - 8;
        s.resize(std::min(ulen, s.size()));
        if (s == prefix + std::to_string(got)) content_ok++;
        if (bufs[i]->ol_flags & NPA_BUF_OL_RX_CSUM_GOOD) csum_good++;
        std::printf("E1000E_LAB:      received \"%s\" (%u bytes, ol_flags 0x%x)\n", s.c_str(),
                    bufs[i]->data_len, bufs[i]->ol_flags);
        got++;
      }
    }
    if (*n) r.pool->Free(0, bufs, *n);
    if (*n == 0) usleep(2000);
  }
  absl::Status disarm = r.dev->RxIntrEnable(0, false);
  Say(disarm.ok(), "rx: RxQ0 interrupt disarmed (%s)", disarm.ToString().c_str());
  int rc = WaitChild(c, 3000);
  Say(got == count && content_ok == count && rc == 0,
      "rx: %d/%d frames from the peer, %d with the expected content, in order", got, count,
      content_ok);
  Say(csum_good == count, "rx: %d/%d frames flagged NPA_BUF_OL_RX_CSUM_GOOD", csum_good, count);
  return got == count && content_ok == count && fired;
}

uint32_t Rd32(volatile void* bar, uint32_t off) {
  return *reinterpret_cast<volatile uint32_t*>(static_cast<volatile uint8_t*>(bar) + off);
}

int Main(int argc, char** argv) {
  std::string bdf, plugin_path;
  Run r;
  r.addrs.ip = inet_addr("10.77.0.1");
  r.addrs.peer_ip = inet_addr("10.77.0.254");
  bool have_peer_mac = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--bdf") bdf = argv[i + 1];
    else if (k == "--plugin") plugin_path = argv[i + 1];
    else if (k == "--peer-mac") have_peer_mac = ParseMac(argv[i + 1], r.addrs.peer_mac);
    else if (k == "--netns") r.ns = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown argument %s\n", k.c_str());
      return 2;
    }
  }
  if (bdf.empty() || plugin_path.empty() || !have_peer_mac) {
    std::fprintf(stderr, "usage: %s --bdf BDF --plugin PATH --peer-mac MAC [--netns NS]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);

  auto fn = npa::agent::vf::VfioFunction::Open(bdf);
  if (!fn.ok()) return Say(false, "VFIO open %s: %s", bdf.c_str(), fn.status().ToString().c_str()), 1;
  Say(true, "VFIO container/group %d/device fd for %s", fn->group().id(), bdf.c_str());
  // 8 MB memfd: 1 MB for rings (DMA arena), the rest packet buffer slots.
  const size_t kRegion = 8u << 20, kArena = 1u << 20;
  auto dma = fn->container().MapMemfdRegion(kRegion, "npa-e1000e-lab");
  Say(dma.ok(), "memfd region %p (8 MB) DMA-mapped at iova == vaddr%s%s", dma.ok() ? dma->data() : nullptr,
      dma.ok() ? "" : ": ", dma.ok() ? "" : dma.status().ToString().c_str());
  if (!dma.ok()) return 1;
  uint8_t* region = dma->data();

  npa::shell::RegionDmaArena arena(region, kArena, reinterpret_cast<uint64_t>(region));
  SlotPool pool(region + kArena, static_cast<uint32_t>((kRegion - kArena) / NPA_BUF_SLOT_SIZE));
  r.pool = &pool;
  auto svc = npa::shell::VfServices::Create(
      fn->device().fd(), bdf, &arena, &pool, 2, [](int level, std::string_view line) {
        static const char* names[] = {"error", "warn", "info", "debug"};
        std::printf("E1000E_LAB:      plug-in %s: %.*s\n", names[level & 3],
                    static_cast<int>(line.size()), line.data());
      });
  if (!svc.ok()) return Say(false, "vf_services: %s", svc.status().ToString().c_str()), 1;
  auto info = (*svc)->DeviceInfo();
  if (!info.ok()) return Say(false, "device info: %s", info.status().ToString().c_str()), 1;
  Say(true, "device %04x:%04x class %06x, MSI-X vectors %u, mappable BARs 0x%x", info->vendor,
      info->device, info->class_code, info->msix_vectors, info->num_bars_mappable);
  auto req = (*svc)->WireReqIrq();
  auto err = (*svc)->WireErrIrq();
  Say(req.ok(), "VFIO REQ interrupt wired to eventfd %d", req.ok() ? *req : -1);
  std::printf("E1000E_LAB: info VFIO ERR interrupt: %s\n",
              err.ok() ? "wired" : err.status().ToString().c_str());

  auto loaded = npa::shell::LoadPlugin(plugin_path);
  if (!loaded.ok()) return Say(false, "load plug-in: %s", loaded.status().ToString().c_str()), 1;
  npa::shell::PciIdentity id{info->vendor, info->device, info->subsystem_vendor,
                             info->subsystem_device, info->class_code};
  Say(npa::shell::Matches(**loaded, id), "plug-in '%s' %s loaded by the shell's loader, matches %04x:%04x",
      (*loaded)->name().c_str(), (*loaded)->version().c_str(), id.vendor, id.device);
  PluginDevice dev(std::shared_ptr<const npa::shell::LoadedPlugin>(std::move(*loaded)));
  r.dev = &dev;
  uint64_t t0 = MonotonicMs();
  absl::Status st = dev.Probe((*svc)->table(), *info);
  Say(st.ok(), "probe (global reset, MAC, link) in %llu ms: %s", (unsigned long long)(MonotonicMs() - t0),
      st.ToString().c_str());
  if (!st.ok()) return 1;
  auto caps = dev.GetCaps();
  if (!caps.ok()) return Say(false, "caps: %s", caps.status().ToString().c_str()), 1;
  std::memcpy(r.addrs.mac, caps->perm_mac, 6);
  Say(true, "caps: %u queue pairs, rings %u..%u, offloads 0x%llx, MAC %02x:%02x:%02x:%02x:%02x:%02x",
      caps->max_queue_pairs, caps->min_ring_size, caps->max_ring_size,
      (unsigned long long)caps->offloads, r.addrs.mac[0], r.addrs.mac[1], r.addrs.mac[2],
      r.addrs.mac[3], r.addrs.mac[4], r.addrs.mac[5]);

  npa_dev_config cfg{};
  cfg.struct_size = sizeof(cfg);
  cfg.nb_queue_pairs = 1;
  cfg.ring_size = 256;
  cfg.mtu = 1500;
  std::memcpy(cfg.mac, r.addrs.mac, 6);
  cfg.offloads = NPA_CAP_TX_CSUM | NPA_CAP_RX_CSUM | NPA_CAP_MAC_FILTER | NPA_CAP_RX_INTR;
  cfg.rx_intr = 1;
  st = dev.Configure(cfg);
  if (st.ok()) st = dev.Start();
  Say(st.ok(), "configure (256 descriptors, TX/RX checksum, RX interrupts) + start: %s",
      st.ToString().c_str());
  if (!st.ok()) return 1;
  auto link = dev.LinkStatus();
  Say(link.ok() && link->up, "link %s, %u Mb/s, %s duplex", link.ok() && link->up ? "up" : "down",
      link.ok() ? link->speed_mbps : 0, link.ok() && link->full_duplex ? "full" : "half");

  TxToPeer(r, 8, "tx");
  auto vec = dev.IrqVector(0);
  std::vector<int> efds = (*svc)->msix_eventfds();
  if (vec.ok() && *vec >= 0 && static_cast<size_t>(*vec) < efds.size())
    RxFromPeer(r, efds[*vec]);
  else
    Say(false, "rx: no MSI-X vector for queue 0");

  auto stats = dev.QueueStats(0);
  Say(stats.ok() && stats->tx_packets >= 8 && stats->rx_packets >= 4,
      "stats: rx %llu pkts / %llu B, tx %llu pkts / %llu B, dropped %llu",
      stats.ok() ? (unsigned long long)stats->rx_packets : 0ull,
      stats.ok() ? (unsigned long long)stats->rx_bytes : 0ull,
      stats.ok() ? (unsigned long long)stats->tx_packets : 0ull,
      stats.ok() ? (unsigned long long)stats->tx_bytes : 0ull,
      stats.ok() ? (unsigned long long)stats->rx_dropped : 0ull);

  st = dev.Quiesce(100000);
  Say(st.ok(), "quiesce: %s", st.ToString().c_str());
  st = dev.Stop();
  Say(st.ok() && pool.available() == pool.count(),
      "stop: %s; %u/%u buffers back in the pool", st.ToString().c_str(), pool.available(),
      pool.count());

  // VFIO_DEVICE_RESET (what the agent does between guests), read back.
  volatile void* bar = nullptr;
  uint64_t bar_len = 0;
  (*svc)->table()->bar_map((*svc)->table()->ctx, 0, &bar, &bar_len);
  // TDBAL/RDBAL hold the ring addresses the plug-in programmed (stop does not
  // clear them); a real reset returns them to 0. RAL0 comes back as the
  // EEPROM's MAC.
  uint32_t tdbal_before = Rd32(bar, 0x3800), rdbal_before = Rd32(bar, 0x2800);
  t0 = MonotonicMs();
  absl::Status rs = fn->device().Reset();
  uint64_t reset_ms = MonotonicMs() - t0;
  uint32_t tdbal_after = Rd32(bar, 0x3800), rdbal_after = Rd32(bar, 0x2800),
           ral_after = Rd32(bar, 0x5400);
  Say(rs.ok() && tdbal_before != 0 && rdbal_before != 0 && tdbal_after == 0 && rdbal_after == 0,
      "VFIO_DEVICE_RESET in %llu ms (%s): TDBAL 0x%08x -> 0x%08x, RDBAL 0x%08x -> 0x%08x, "
      "RAL0 0x%08x",
      (unsigned long long)reset_ms, rs.ToString().c_str(), tdbal_before, tdbal_after, rdbal_before,
      rdbal_after, ral_after);

  // The plug-in recovers: register reset, configure, start, traffic again.
  st = dev.Reset();
  cfg.rx_intr = 0;
  cfg.offloads &= ~NPA_CAP_RX_INTR;
  if (st.ok()) st = dev.Configure(cfg);
  if (st.ok()) st = dev.Start();
  Say(st.ok(), "after reset: reset + configure + start: %s", st.ToString().c_str());
  if (st.ok()) {
    TxToPeer(r, 2, "tx-after-reset");
    auto s2 = dev.QueueStats(0);
    Say(s2.ok() && stats.ok() && s2->tx_packets >= stats->tx_packets + 2 &&
            s2->rx_packets >= stats->rx_packets,
        "stats monotonic across the reset: tx %llu -> %llu",
        stats.ok() ? (unsigned long long)stats->tx_packets : 0ull,
        s2.ok() ? (unsigned long long)s2->tx_packets : 0ull);
    st = dev.Stop();
    Say(st.ok() && pool.available() == pool.count(), "stop: %u/%u buffers back", pool.available(),
        pool.count());
  }
  TwoQueueRss(dev, pool, r.ns, r.addrs.ip);
  st = dev.Remove();
  Say(st.ok(), "remove: %s", st.ToString().c_str());
  svc->reset();
  absl::Status um = dma->Unmap();
  Say(um.ok(), "DMA unmapped: %s", um.ToString().c_str());
  std::printf("E1000E_LAB_RESULT: %s (%d failures)\n", g_failures ? "FAIL" : "PASS", g_failures);
  return g_failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
