// conform/peer.h — the traffic peer: a raw AF_PACKET socket on an
// interface inside a network namespace (the lab's kernel-driven NIC in netns
// "peer"), created by entering the namespace only for the socket() call.
//
//   NPA_ASSIGN_OR_RETURN(std::unique_ptr<Peer> p, Peer::Open("peer", "eth4"));
//   p->Send(frame, len);
//   ssize_t n = p->Recv(buf, sizeof(buf), /*timeout_ms=*/500);
#ifndef NPA_CONFORM_PEER_H_
#define NPA_CONFORM_PEER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace npa::conform {

class Peer {
 public:
  // netns empty: the current namespace. Needs CAP_NET_RAW (and CAP_SYS_ADMIN
  // for the namespace switch).
  static absl::StatusOr<std::unique_ptr<Peer>> Open(const std::string& netns,
                                                    const std::string& ifname);
  ~Peer();
  int Send(const uint8_t* frame, size_t len);
  // One frame, or 0 on timeout, -errno on error.
  ssize_t Recv(uint8_t* buf, size_t len, int timeout_ms);
  // Drop whatever is queued.
  void Drain();
  // Frames the kernel queued to / dropped from this socket since the last
  // call (PACKET_STATISTICS resets on read); false if unavailable.
  bool TakeStats(uint32_t* packets, uint32_t* drops);
  const uint8_t* mac() const { return mac_; }

 private:
  Peer() = default;
  int fd_ = -1;
  int ifindex_ = 0;
  uint8_t mac_[6] = {};
};

}  // namespace npa::conform

#endif  // NPA_CONFORM_PEER_H_
