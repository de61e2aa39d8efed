// conform/peer.cc — see peer.h.
#include "conform/peer.h"

#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace npa::conform {

absl::StatusOr<std::unique_ptr<Peer>> Peer::Open(const std::string& netns,
                                                 const std::string& ifname) {
  std::unique_ptr<Peer> p(new Peer());
  int self = -1, target = -1;
  if (!netns.empty()) {
    self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    std::string path = "/var/run/netns/" + netns;
    target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) < 0) {
      int e = errno;
      if (self >= 0) close(self);
      if (target >= 0) close(target);
      return absl::ErrnoToStatus(e, absl::StrCat("enter netns ", netns));
    }
  }
  // The socket belongs to the namespace it was created in, for good.
  p->fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  int e = errno;
  if (p->fd_ >= 0) {
    ifreq ifr{};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname.c_str());
    if (ioctl(p->fd_, SIOCGIFINDEX, &ifr) == 0) {
      p->ifindex_ = ifr.ifr_ifindex;
      if (ioctl(p->fd_, SIOCGIFHWADDR, &ifr) == 0) memcpy(p->mac_, ifr.ifr_hwaddr.sa_data, 6);
    }
    e = errno;
  }
  if (self >= 0) {
    setns(self, CLONE_NEWNET);
    close(self);
    close(target);
  }
  if (p->fd_ < 0) return absl::ErrnoToStatus(e, "socket(AF_PACKET)");
  if (p->ifindex_ == 0) return absl::ErrnoToStatus(e, absl::StrCat("no interface ", ifname));
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = p->ifindex_;
  if (bind(p->fd_, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) < 0)
    return absl::ErrnoToStatus(errno, "bind(AF_PACKET)");
  // A full-ring burst arrives faster than the harness reads: give the
  // socket room for several rings of 1514-byte frames (FORCE needs
  // CAP_NET_ADMIN; the plain option is the fallback).
  int rcv = 16 << 20;
  if (setsockopt(p->fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
    setsockopt(p->fd_, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  // A send blocks while the peer NIC's TX ring is full; if that NIC stalls,
  // give up after 2 s (the case then fails naming it) instead of hanging.
  timeval snd{2, 0};
  setsockopt(p->fd_, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));
  p->Drain();
  return p;
}

Peer::~Peer() {
  if (fd_ >= 0) close(fd_);
}

int Peer::Send(const uint8_t* frame, size_t len) {
  ssize_t n = send(fd_, frame, len, 0);
  return n == static_cast<ssize_t>(len) ? 0 : -errno;
}

ssize_t Peer::Recv(uint8_t* buf, size_t len, int timeout_ms) {
  const uint64_t t0 = MonotonicMs();
  for (;;) {
    const uint64_t spent = MonotonicMs() - t0;
    int left = timeout_ms - static_cast<int>(spent);
    if (left < 0) left = 0;
    pollfd pfd{fd_, POLLIN, 0};
    int r = poll(&pfd, 1, left);
    if (r < 0) return -errno;
    if (r == 0) return 0;
    sockaddr_ll from{};
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(fd_, buf, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n < 0) {
      if (errno == EAGAIN) continue;
      return -errno;
    }
    // Our own transmissions loop back to a packet socket: skip them.
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    return n;
  }
}

bool Peer::TakeStats(uint32_t* packets, uint32_t* drops) {
  tpacket_stats st{};
  socklen_t l = sizeof(st);
  if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &l) < 0) return false;
  *packets = st.tp_packets;
  *drops = st.tp_drops;
  return true;
}

void Peer::Drain() {
  uint8_t b[2048];
  for (int i = 0; i < 4096 && recv(fd_, b, sizeof(b), MSG_DONTWAIT) > 0; i++) {
  }
}

}  // namespace npa::conform
