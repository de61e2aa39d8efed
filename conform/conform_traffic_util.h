// conform/conform_traffic_util.h — what the traffic cases of npa-conform
// share (conform_traffic.cc, conform_multiqueue.cc): a queue of the device
// under test, bursts with the RX discipline checked, the peer's side, and
// the frames (conform_frame.h's, and a TCP/IPv4 one for RSS).
// Threads: none; one thread drives the device and the peer.
#ifndef NPA_CONFORM_CONFORM_TRAFFIC_UTIL_H_
#define NPA_CONFORM_CONFORM_TRAFFIC_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "conform/conform_runner.h"

namespace npa::conform {

struct Queue {
  Ctx& c;
  npa_plugin_queue* q;
  uint8_t mac[6];
};

// tx_burst of n frames of len bytes; frees what it did not take. Returns the
// accepted count and the first sequence number used in *first.
uint16_t SendFrames(Queue& Q, uint16_t n, size_t len, uint32_t* first);
// rx_burst of at most n, then the RX discipline of every frame it handed
// up (SlotPool::CheckRx: a bad frame is a violation, which fails the case,
// and is not returned). A count above n is clamped and sets *over.
uint16_t Rx(Queue& Q, npa_buf** b, uint16_t n, bool* over = nullptr);
// tx_reap, or an empty tx_burst for a plug-in without it.
void Reap(Queue& Q);
// Peer side: count intact frames with seq in [first, first+n); "" or why not.
std::string PeerExpect(Queue& Q, uint32_t first, uint32_t n, int timeout_ms, uint32_t* seen);
// DUT side: rx_burst until n intact frames with seq in [first, first+n).
// *bytes (if given) grows by the pkt_len of every frame rx_burst returned
// that kept the RX discipline (Rx).
std::string DutExpect(Queue& Q, uint32_t first, uint32_t n, int timeout_ms, uint32_t* seen,
                      int max_polls = 1 << 30, uint64_t* bytes = nullptr);
// The peer sends n frames of len bytes to Q's MAC; the first seq.
uint32_t PeerSend(Queue& Q, uint32_t n, size_t len);
// Bring a device up for traffic on queue 0 (Q->q); a failure message or "".
std::string Up(Ctx& c, DevGuard& g, Queue* Q, npa_dev_config cfg);

#define NEED_PEER(c) \
  if ((c).peer == nullptr) return Skip("no traffic peer (--no-traffic)")

// A TCP/IPv4 frame (192.0.2.1 -> .2, TEST-NET-1, source port 1024 + seq % 16,
// ACK, payload "NPAC" + run + seq after the TCP header): kTcpHdr + 12 bytes.
inline constexpr size_t kTcpHdr = 14 + 20 + 20;
void FillTcp(uint8_t* p, const uint8_t dst[6], const uint8_t src[6], uint32_t run, uint32_t seq);
// Its run and seq if p (l bytes) is such a frame.
bool ParseTcp(const uint8_t* p, size_t l, uint32_t* run, uint32_t* seq);
// The peer sends n such frames to mac, from *first = the run's next seq;
// 0 or the peer's negative errno.
int PeerSendTcp(Ctx& c, const uint8_t mac[6], uint32_t n, uint32_t* first);
// Polls every queue of qs (Rx: the RX discipline checked) until this run's
// TCP frames with seq in [first, first+n) all came up, or timeout_ms.
// on_frame(queue index, seq, the linearized frame, its buffer) runs once
// per seq; *got counts them, and the return value the frames seen again.
using TcpFrameFn =
    std::function<void(uint16_t q, uint32_t seq, std::span<const uint8_t> frame, const npa_buf* b)>;
uint32_t CollectTcp(std::span<Queue> qs, uint32_t first, uint32_t n, int timeout_ms,
                    const TcpFrameFn& on_frame, uint32_t* got);

// conform_multiqueue.cc.
Result MultiQueue(Ctx& c);

}  // namespace npa::conform

#endif  // NPA_CONFORM_CONFORM_TRAFFIC_UTIL_H_
