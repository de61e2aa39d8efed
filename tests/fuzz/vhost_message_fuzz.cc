// libFuzzer target: the vhost-user back end's message handling.
//
// Input = a sequence of records: [fd byte][12-byte header][payload]. The fd
// byte picks how many fds ride on the message (low 4 bits, 0..9) and their
// kind (bit 4: memfd of 64 KiB whose content comes from the input tail,
// else eventfd). Each record goes through VhostSession::CheckHeader/Handle;
// after every message the data path is exercised on queue pair 0, so a
// fuzzed memory table + ring addresses reach the ring code too.
// Bit 7 of the first byte instead streams the raw input through a socketpair
// into VhostDevice::OnReadable (framing and partial reads).
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "hypervisor/vhost/vhost_session.h"

using namespace npa::agent;

namespace {

constexpr size_t kMemFdSize = 64 * 1024;

npa::UniqueFd MakeMemFd(const uint8_t* fill, size_t n) {
  npa::UniqueFd fd(memfd_create("fuzz", MFD_CLOEXEC));
  if (!fd.valid() || ftruncate(fd.get(), kMemFdSize) != 0) return {};
  if (n > 0) (void)!pwrite(fd.get(), fill, std::min(n, kMemFdSize), 0);
  return fd;
}

void Dataplane(VhostSession& s) {
  GuestFrame f[4];
  uint16_t n = s.PeekTx(0, f, 4);
  uint8_t sink = 0;
  for (uint16_t i = 0; i < n; ++i) {
    for (uint16_t k = 0; k < f[i].nsegs; ++k) {
      const auto* p = static_cast<const uint8_t*>(f[i].segs[k].iov_base);
      sink ^= p[0] ^ p[f[i].segs[k].iov_len - 1];  // ASan checks the bounds
    }
  }
  s.ReleaseTx(0, n);
  uint8_t payload[200];
  std::memset(payload, sink, sizeof(payload));
  iovec seg{payload, sizeof(payload)};
  PacketRef p{nullptr, &seg, 1, sizeof(payload)};
  s.EnqueueRx(0, &p, 1, RxFull::kDrop);
}

void FuzzDevice(const uint8_t* data, size_t size) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) return;
  npa::UniqueFd peer(sv[1]);
  auto dev = VhostDevice::Create(npa::UniqueFd(sv[0]), {.name = "fuzz", .max_queue_pairs = 2});
  if (!dev.ok()) return;
  size_t off = 0;
  for (int round = 0; round < 64 && off < size; ++round) {
    ssize_t n = write(peer.get(), data + off, std::min<size_t>(size - off, 1 + data[off] % 64));
    if (n > 0) off += static_cast<size_t>(n);
    if (!(*dev)->OnReadable().ok()) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool init = [] {
    npa::SetLogLevel(npa::LogLevel::kError);
    return true;
  }();
  (void)init;
  if (size > 0 && (data[0] & 0x80)) {
    FuzzDevice(data + 1, size - 1);
    return 0;
  }
  VhostSession s({.name = "fuzz", .max_queue_pairs = 2});
  size_t off = 0;
  for (int msgs = 0; msgs < 64 && off + 13 <= size; ++msgs) {
    const uint8_t fdb = data[off++];
    VhostMessage m;
    std::memcpy(&m.hdr, data + off, sizeof(m.hdr));
    off += sizeof(m.hdr);
    if (!s.CheckHeader(m.hdr).ok()) return 0;
    const size_t take = std::min<size_t>(m.hdr.size, size - off);
    std::memcpy(&m.payload, data + off, take);
    off += take;
    const int nfds = std::min(fdb & 0x0f, 9);
    for (int i = 0; i < nfds; ++i) {
      if (fdb & 0x10) {
        m.fds.push_back(MakeMemFd(data + off, size - off));
      } else {
        m.fds.emplace_back(eventfd(0, EFD_CLOEXEC));
      }
    }
    VhostReply reply;
    if (!s.Handle(std::move(m), &reply).ok()) return 0;
    Dataplane(s);
  }
  return 0;
}
