// npa-lab-vf-guest: a fake guest for the VFIO lab (tests/lab/scenarios/
// 80-agent_vf.sh). It speaks the shell's side of the control protocol to a
// real npa-agent -- Hello, a vhost-user bring-up of its emulated path (so the
// agent sees it RUNNING), RegionAnnounce of one memfd region at iova == its
// own address -- and then answers the VF protocol while checking the device
// fd it receives with real VFIO ioctls:
//   VfOffer + fd  VFIO_DEVICE_GET_INFO (a PCI device with regions and IRQs),
//                 config-space vendor/device == the offer's; --check-clear OFF:
//                 BAR0 register OFF reads 0 (the agent reset the device before
//                 the offer); --mark OFF: write a marker there and read it back.
//                 Then VfAccept (or a decline with --decline). The REQ
//                 interrupt is wired to an eventfd.
//   Revoke        close the fd, RevokeDone{tx_inflight_lost: 0}.
//   REQ fired     (forced detach: the agent asks through the device first)
//                 --mark OFF: the marker is still there (no reset before the
//                 guest let go). Then, like the shell, close the fd and send
//                 an unsolicited RevokeDone; or with --hold-after-req ignore
//                 it (a guest that does not cooperate): keep the fd until the
//                 agent's grace period ends and --mark OFF reads 0 (its reset,
//                 confirmed through the guest's own fd), then close it so the
//                 kernel's unbind can finish.
// Every check prints "VFGUEST: ok ..." or "VFGUEST: FAIL ..." (then exit 1).
// Runs until the agent closes the session, SIGTERM, or --max-secs.
//
//   npa-lab-vf-guest --socket /run/npa/agent.sock --name g0 [--mark 0x2800]
//                    [--check-clear 0x2800] [--decline] [--hold-after-req]
//                    [--max-secs 60]
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/control_codec.h"
#include "common/unix_socket.h"
#include "tests/support/test_frontend.h"

namespace {

using npa::ControlChannel;
using npa::UniqueFd;
using npa::control::Envelope;

volatile sig_atomic_t g_stop = 0;
void OnSig(int) { g_stop = 1; }

#define OKL(...) (std::printf("VFGUEST: ok %s\n", absl::StrFormat(__VA_ARGS__).c_str()), std::fflush(stdout))
[[noreturn]] void Fail(const std::string& why) {
  std::printf("VFGUEST: FAIL %s\n", why.c_str());
  std::fflush(stdout);
  _exit(1);
}

constexpr uint32_t kMarker = 0xa5a5a000;  // 16-byte aligned: e1000e RDBAL ignores bits 3:0

struct Device {
  UniqueFd fd;
  UniqueFd req;  // eventfd on VFIO_PCI_REQ_IRQ_INDEX, or invalid
  uint64_t offer_id = 0;
  uint64_t bar0_off = 0, bar0_size = 0;
};

uint64_t RegionOffset(int fd, uint32_t index, uint64_t* size) {
  vfio_region_info ri{};
  ri.argsz = sizeof(ri);
  ri.index = index;
  if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0)
    Fail(absl::StrFormat("VFIO_DEVICE_GET_REGION_INFO(%u): %s", index, strerror(errno)));
  *size = ri.size;
  return ri.offset;
}

uint32_t Read32(const Device& d, uint64_t off) {
  uint32_t v = 0;
  if (off + 4 > d.bar0_size) Fail(absl::StrFormat("register 0x%x outside BAR0 (0x%x)", off, d.bar0_size));
  if (pread(d.fd.get(), &v, 4, static_cast<off_t>(d.bar0_off + off)) != 4)
    Fail(absl::StrFormat("pread BAR0+0x%x: %s", off, strerror(errno)));
  return v;
}

void Write32(const Device& d, uint64_t off, uint32_t v) {
  if (pwrite(d.fd.get(), &v, 4, static_cast<off_t>(d.bar0_off + off)) != 4)
    Fail(absl::StrFormat("pwrite BAR0+0x%x: %s", off, strerror(errno)));
}

// Checks the offered fd with VFIO ioctls; fills BAR0 and wires REQ.
void CheckDevice(Device& d, const npa::control::VfOffer& o) {
  vfio_device_info di{};
  di.argsz = sizeof(di);
  if (ioctl(d.fd.get(), VFIO_DEVICE_GET_INFO, &di) < 0)
    Fail(absl::StrFormat("VFIO_DEVICE_GET_INFO on the offered fd: %s", strerror(errno)));
  if (!(di.flags & VFIO_DEVICE_FLAGS_PCI) || di.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX)
    Fail(absl::StrFormat("offered fd: flags 0x%x, %u regions: not a vfio-pci device", di.flags, di.num_regions));
  OKL("VFIO_DEVICE_GET_INFO on offered fd: flags 0x%x (pci%s), %u regions, %u irqs", di.flags,
      (di.flags & VFIO_DEVICE_FLAGS_RESET) ? ", reset" : "", di.num_regions, di.num_irqs);
  uint64_t cfg_size = 0;
  uint64_t cfg = RegionOffset(d.fd.get(), VFIO_PCI_CONFIG_REGION_INDEX, &cfg_size);
  uint16_t ids[2];
  if (pread(d.fd.get(), ids, 4, static_cast<off_t>(cfg)) != 4)
    Fail(absl::StrFormat("read config space: %s", strerror(errno)));
  if (ids[0] != o.vendor() || ids[1] != o.device())
    Fail(absl::StrFormat("config space says %04x:%04x, the offer said %04x:%04x", ids[0], ids[1],
                         o.vendor(), o.device()));
  OKL("config space %04x:%04x matches the offer for %s", ids[0], ids[1], o.pci_address());
  d.bar0_off = RegionOffset(d.fd.get(), VFIO_PCI_BAR0_REGION_INDEX, &d.bar0_size);
  if (VFIO_PCI_REQ_IRQ_INDEX < di.num_irqs) {
    d.req.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    char buf[sizeof(vfio_irq_set) + sizeof(int32_t)];
    auto* s = reinterpret_cast<vfio_irq_set*>(buf);
    s->argsz = sizeof(buf);
    s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    s->index = VFIO_PCI_REQ_IRQ_INDEX;
    s->start = 0;
    s->count = 1;
    int32_t efd = d.req.get();
    memcpy(s->data, &efd, sizeof(efd));
    if (ioctl(d.fd.get(), VFIO_DEVICE_SET_IRQS, s) < 0)
      Fail(absl::StrFormat("VFIO_DEVICE_SET_IRQS(REQ): %s", strerror(errno)));
    OKL("REQ interrupt wired to an eventfd");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string sock_path = "/run/npa/agent.sock", name = "labguest";
  int64_t mark = -1, check_clear = -1;
  bool decline = false;
  bool hold_after_req = false;
  int max_secs = 60;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Fail("missing value after " + a);
      return argv[++i];
    };
    auto hex = [&](const std::string& s) {
      uint64_t v;
      if (!absl::SimpleHexAtoi(s, &v) || v > (1u << 20)) Fail("bad register offset " + s);
      return static_cast<int64_t>(v);
    };
    if (a == "--socket") sock_path = next();
    else if (a == "--name") name = next();
    else if (a == "--mark") mark = hex(next());
    else if (a == "--check-clear") check_clear = hex(next());
    else if (a == "--decline") decline = true;
    else if (a == "--hold-after-req") hold_after_req = true;
    else if (a == "--max-secs") max_secs = std::atoi(next().c_str());
    else Fail("unknown argument " + a);
  }
  signal(SIGTERM, OnSig);
  signal(SIGINT, OnSig);
  signal(SIGPIPE, SIG_IGN);

  auto s = npa::ConnectUnix(sock_path, 5000);
  if (!s.ok()) Fail(std::string(s.status().message()));
  ControlChannel ch(std::move(*s));
  Envelope hello;
  hello.mutable_hello()->set_name(name);
  hello.mutable_hello()->set_queue_pairs(1);
  hello.mutable_hello()->set_pid(getpid());
  if (!ch.Send(hello).ok()) Fail("send hello");
  auto w = ch.ReceiveBlocking(5000);
  if (!w.ok() || !w->env.has_welcome() || w->fds.size() != 1)
    Fail(absl::StrFormat("no welcome: %s", w.ok() ? npa::BodyName(w->env) : std::string(w.status().message())));
  OKL("welcome: guest id %u", w->env.welcome().guest_id());
  // The emulated path first: the agent offers VFs only to RUNNING guests.
  auto fe = npa::agent::TestFrontend::Create(std::move(w->fds[0]), {.queue_size = 64, .mem_size = 1u << 20, .seal_memory = true});
  if (!fe.ok()) Fail(std::string(fe.status().message()));
  if (absl::Status hs = (*fe)->Handshake(); !hs.ok()) Fail(absl::StrFormat("vhost-user handshake: %s", hs.message()));
  OKL("vhost-user emulated path up");

  // The DMA region: 2 MiB memfd, iova == our own virtual address.
  const size_t kRegion = 2u << 20;
  UniqueFd mfd(memfd_create("npa-lab-vf-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!mfd || ftruncate(mfd.get(), kRegion) != 0) Fail("memfd");
  // The agent refuses regions a guest could still shrink (guest_regions.h).
  if (fcntl(mfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) Fail("seal memfd");
  void* mem = mmap(nullptr, kRegion, PROT_READ | PROT_WRITE, MAP_SHARED, mfd.get(), 0);
  if (mem == MAP_FAILED) Fail("mmap region");
  Envelope ra;
  auto* r = ra.mutable_regions()->add_regions();
  r->set_iova(reinterpret_cast<uint64_t>(mem));
  r->set_size(kRegion);
  int rfd = mfd.get();
  if (!ch.Send(ra, std::span<const int>(&rfd, 1)).ok()) Fail("send region_announce");
  OKL("announced 1 region of %zu KiB at iova %p", kRegion >> 10, mem);
  std::printf("VFGUEST: ready\n");
  std::fflush(stdout);

  Device dev;
  const uint64_t t0 = npa::MonotonicMs();
  while (!g_stop) {
    if (static_cast<int64_t>(npa::MonotonicMs() - t0) > int64_t{max_secs} * 1000) {
      // A safety net against a lost scenario, not a check: exit quietly.
      std::printf("VFGUEST: --max-secs %d reached, exiting\n", max_secs);
      break;
    }
    pollfd p[2] = {{ch.fd(), POLLIN, 0}, {dev.req.get(), POLLIN, 0}};
    int n = poll(p, dev.req ? 2 : 1, 200);
    if (n < 0 && errno != EINTR) Fail("poll");
    if (n <= 0) continue;
    if (dev.req && (p[1].revents & POLLIN)) {
      uint64_t cnt;
      (void)read(dev.req.get(), &cnt, sizeof cnt);
      OKL("REQ interrupt: the agent is taking the device back (offer %lu)",
          static_cast<unsigned long>(dev.offer_id));
      if (mark >= 0) {
        uint32_t v = Read32(dev, static_cast<uint64_t>(mark));
        if (v != kMarker)
          Fail(absl::StrFormat("at REQ BAR0+0x%x = 0x%08x, not the marker: the agent reset the device "
                               "before the guest let go", mark, v));
        OKL("at REQ the device still holds its state (BAR0+0x%x = 0x%08x): asked before any reset",
            mark, v);
      }
      const uint64_t offer = dev.offer_id;
      if (hold_after_req) {
        OKL("ignoring REQ (--hold-after-req): keeping the device fd");
        if (mark >= 0) {
          // The agent's grace period, then its reset: bounded at 20 s.
          uint32_t v = kMarker;
          for (int i = 0; i < 1000 && v != 0; i++) {
            usleep(20000);
            v = Read32(dev, static_cast<uint64_t>(mark));
          }
          if (v != 0) Fail(absl::StrFormat("BAR0+0x%x = 0x%08x 20 s after REQ: never reset", mark, v));
          OKL("reset confirmed through the guest's fd: BAR0+0x%x = 0 after the grace period", mark);
        }
        dev = Device();  // close: lets the kernel's unbind finish
        OKL("device fd closed");
        continue;
      }
      dev = Device();  // close first: the agent resets once we said so
      Envelope d;
      d.mutable_revoke_done()->set_offer_id(offer);
      d.mutable_revoke_done()->set_tx_inflight_lost(0);
      d.mutable_revoke_done()->set_reason("npa-lab-vf-guest: VFIO REQ");
      if (!ch.Send(d).ok()) Fail("send revoke_done");
      OKL("device fd closed, unsolicited revoke_done sent");
      continue;
    }
    if (!(p[0].revents & (POLLIN | POLLHUP))) continue;
    absl::Status rs = ch.OnReadable();
    if (!rs.ok()) {
      OKL("agent closed the session: %s", std::string(rs.message()));
      break;
    }
    for (;;) {
      auto f = ch.Pop();
      if (!f.ok()) Fail(std::string(f.status().message()));
      if (!f->has_value()) break;
      Envelope& e = (*f)->env;
      if (e.has_vf_offer()) {
        const auto& o = e.vf_offer();
        OKL("vf_offer %s %04x:%04x subsys %04x:%04x class %06x rev %u offer %lu", o.pci_address(),
            o.vendor(), o.device(), o.subsystem_vendor(), o.subsystem_device(), o.class_code(),
            o.revision(), static_cast<unsigned long>(o.offer_id()));
        if ((*f)->fds.size() != 1) Fail(absl::StrFormat("vf_offer carries %d fds", (*f)->fds.size()));
        dev = Device();
        dev.fd = std::move((*f)->fds[0]);
        dev.offer_id = o.offer_id();
        CheckDevice(dev, o);
        if (check_clear >= 0) {
          uint32_t v = Read32(dev, static_cast<uint64_t>(check_clear));
          if (v != 0) Fail(absl::StrFormat("offered device has BAR0+0x%x = 0x%08x: not reset", check_clear, v));
          OKL("offered device is clean: BAR0+0x%x = 0 (previous owner's marker gone)", check_clear);
        }
        if (mark >= 0) {
          Write32(dev, static_cast<uint64_t>(mark), kMarker);
          uint32_t v = Read32(dev, static_cast<uint64_t>(mark));
          if (v != kMarker) Fail(absl::StrFormat("marker write BAR0+0x%x read back 0x%08x", mark, v));
          OKL("marker 0x%08x written to BAR0+0x%x and read back", kMarker, mark);
        }
        Envelope a;
        a.mutable_vf_accept()->set_offer_id(o.offer_id());
        a.mutable_vf_accept()->set_accepted(!decline);
        a.mutable_vf_accept()->set_plugin(decline ? "" : "npa-lab-vf-guest");
        a.mutable_vf_accept()->set_reason(decline ? "lab: declined on purpose" : "");
        if (decline) dev = Device();  // a declining shell closes the fd first
        if (!ch.Send(a).ok()) Fail("send vf_accept");
        OKL("vf_accept sent (accepted=%d)", !decline);
      } else if (e.has_revoke()) {
        OKL("revoke offer %lu timeout %u ms", static_cast<unsigned long>(e.revoke().offer_id()),
            e.revoke().timeout_ms());
        if (e.revoke().offer_id() != dev.offer_id) Fail("revoke for an offer we do not hold");
        dev = Device();
        Envelope d;
        d.mutable_revoke_done()->set_offer_id(e.revoke().offer_id());
        d.mutable_revoke_done()->set_tx_inflight_lost(0);
        if (!ch.Send(d).ok()) Fail("send revoke_done");
        OKL("device fd closed, revoke_done sent");
      } else if (e.has_bye()) {
        OKL("bye: %s", e.bye().reason());
        g_stop = 1;
      } else if (e.has_error()) {
        Fail(absl::StrFormat("agent error %d: %s", e.error().code(), e.error().message()));
      }
    }
  }
  munmap(mem, kRegion);
  return 0;
}
