// vhost_echo_server — test-only vhost-user back end built on VhostDevice: it
// listens on a UNIX socket, serves one front end at a time and reflects
// every frame a guest transmits on queue pair q back into its RX ring on q.
// Control and dataplane share this one thread (busy-polling), which is
// legal for VhostDevice and keeps the test simple.
//
//   vhost_echo_server --socket /tmp/x.sock [--seconds 60] [--connections 1]
//                     [--keep-going] [--sink]
//
// --macswap: swap destination and source MAC of each echoed frame (what
// dpdk-testpmd --forward-mode=macswap does; npa's shell interop client
// expects it).
// --sink: drop every TX frame instead of echoing it (the benchmark's "sink
// mode": what the back end costs per frame), and print Mpps once a second.
//
// Exits 0 after --connections sessions ended cleanly (front end closed), 1
// on a broken device or a rejected message, 2 on a usage error. With
// --keep-going a session that ends badly (as under npa-evil-guest) is closed
// and the server goes on to the next connection.
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "common/unix_socket.h"
#include "hypervisor/vhost/vhost_device.h"

using npa::UniqueFd;
using npa::agent::GuestFrame;
using npa::agent::PacketRef;
using npa::agent::VhostDevice;

namespace {

constexpr uint16_t kBurst = 32;

bool g_sink = false;
bool g_macswap = false;

// Flattens frame f into buf with its two MAC addresses swapped.
void MacSwap(const GuestFrame& f, std::vector<uint8_t>* buf) {
  buf->resize(f.len);
  size_t off = 0;
  for (uint16_t k = 0; k < f.nsegs; ++k) {
    std::memcpy(buf->data() + off, f.segs[k].iov_base, f.segs[k].iov_len);
    off += f.segs[k].iov_len;
  }
  if (f.len >= 12) {
    uint8_t tmp[6];
    std::memcpy(tmp, buf->data(), 6);
    std::memmove(buf->data(), buf->data() + 6, 6);
    std::memcpy(buf->data() + 6, tmp, 6);
  }
}

// deadline_ms: on npa::MonotonicMs().
int Serve(VhostDevice& dev, int64_t deadline_ms) {
  GuestFrame frames[kBurst];
  PacketRef refs[kBurst];
  std::vector<uint8_t> swapped[kBurst];
  iovec swapped_iov[kBurst];
  uint64_t echoed = 0, dropped = 0, sunk = 0, last_sunk = 0;
  uint64_t last_ns = npa::MonotonicNs();
  for (uint64_t iter = 0;; ++iter) {
    if ((iter & 1023) == 0 && g_sink) {
      const uint64_t now_ns = npa::MonotonicNs();
      const double dt = static_cast<double>(now_ns - last_ns) / 1e9;
      if (dt >= 1.0) {
        if (sunk != last_sunk) printf("sink: %.2f Mpps\n", (sunk - last_sunk) / dt / 1e6);
        fflush(stdout);
        last_ns = now_ns;
        last_sunk = sunk;
      }
    }
    if ((iter & 63) == 0) {
      pollfd p{dev.fd(), POLLIN, 0};
      if (poll(&p, 1, 0) > 0) {
        absl::Status s = dev.OnReadable();
        if (!s.ok()) {
          fprintf(stderr, "echo: session ended: %s (echoed %llu, rx dropped %llu)\n",
                  std::string(s.message()).c_str(), (unsigned long long)echoed,
                  (unsigned long long)dropped);
          return absl::IsAborted(s) ? 0 : 1;
        }
      }
      if (static_cast<int64_t>(npa::MonotonicMs()) > deadline_ms) {
        fprintf(stderr, "echo: time limit reached\n");
        return 1;
      }
    }
    if (dev.broken()) {
      fprintf(stderr, "echo: device broken: %s\n", dev.broken_reason().c_str());
      return 1;
    }
    for (uint16_t q = 0; q < dev.num_queue_pairs(); ++q) {
      if (!dev.QueueReady(q)) continue;
      const uint16_t n = dev.PeekTx(q, frames, kBurst);
      if (n == 0) continue;
      if (g_sink) {
        dev.ReleaseTx(q, n);
        sunk += n;
        continue;
      }
      for (uint16_t i = 0; i < n; ++i) {
        if (g_macswap) {
          MacSwap(frames[i], &swapped[i]);
          swapped_iov[i] = {swapped[i].data(), swapped[i].size()};
          refs[i] = {&frames[i].hdr, &swapped_iov[i], 1, frames[i].len};
        } else {
          refs[i] = {&frames[i].hdr, frames[i].segs, frames[i].nsegs, frames[i].len};
        }
      }
      // Retry briefly when the guest has not refilled RX yet: an echo test
      // wants every frame back, not a drop.
      uint16_t done = 0;
      for (int tries = 0; done < n && tries < 100000; ++tries) {
        done += dev.EnqueueRx(q, refs + done, n - done, npa::agent::RxFull::kKeep);
        if (dev.broken() || !dev.QueueReady(q)) break;
      }
      dropped += n - done;
      echoed += done;
      dev.ReleaseTx(q, n);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  npa::LogInit("vhost-echo");
  std::string path;
  int seconds = 60, connections = 1;
  bool keep_going = false;
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--keep-going") { keep_going = true; --i; continue; }
    if (a == "--sink") { g_sink = true; --i; continue; }
    if (a == "--macswap") { g_macswap = true; --i; continue; }
    if (i + 1 >= argc) { fprintf(stderr, "option %s needs a value\n", a.c_str()); return 2; }
    if (a == "--socket") path = argv[i + 1];
    else if (a == "--seconds") seconds = atoi(argv[i + 1]);
    else if (a == "--connections") connections = atoi(argv[i + 1]);
    else { fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (path.empty()) { fprintf(stderr, "usage: %s --socket PATH [--seconds N] [--connections N]\n", argv[0]); return 2; }
  auto lis = npa::ListenUnix(path);
  if (!lis.ok()) { fprintf(stderr, "listen: %s\n", std::string(lis.status().message()).c_str()); return 2; }
  const int64_t deadline_ms = static_cast<int64_t>(npa::MonotonicMs()) + int64_t{seconds} * 1000;
  int rc = 0;
  for (int c = 0; c < connections && rc == 0; ++c) {
    pollfd p{lis->get(), POLLIN, 0};
    const int left = static_cast<int>(
        std::min<int64_t>(deadline_ms - static_cast<int64_t>(npa::MonotonicMs()), INT32_MAX));
    if (left <= 0 || poll(&p, 1, left) <= 0) { fprintf(stderr, "echo: no connection in time\n"); rc = 1; break; }
    UniqueFd conn(accept4(lis->get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) { perror("accept"); rc = 1; break; }
    auto dev = VhostDevice::Create(std::move(conn), {.name = "dpdk" + std::to_string(c), .max_queue_pairs = 4});
    if (!dev.ok()) { fprintf(stderr, "create: %s\n", std::string(dev.status().message()).c_str()); rc = 1; break; }
    rc = Serve(**dev, deadline_ms);
    if (keep_going && rc == 1 && static_cast<int64_t>(npa::MonotonicMs()) < deadline_ms) {
      fprintf(stderr, "echo: session %d closed, serving the next\n", c);
      rc = 0;
    }
  }
  unlink(path.c_str());
  return rc;
}
