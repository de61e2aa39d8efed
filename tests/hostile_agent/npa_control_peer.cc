// npa-control-peer: hostile peers of npa-agent's control socket, one attack
// per run, each checking the agent's answer (docs/security.md):
//   noread      a guest session floods stats_request and never reads the
//               replies; a second guest session measures stats round trips
//               meanwhile. Passes when the probe's worst round trip stays
//               under --max-rtt-ms and the flooder is cut off (its socket
//               reaches EOF) within --timeout-ms.
//   halfopen    N connections that never send a frame, and one guest whose
//               vhost-user back end never starts: every one is closed by the
//               agent (EOF, after an Error LIMIT) within --timeout-ms.
//   connflood   N connections from this one process, no frame: those over
//               the agent's per-process cap (--cap) get Error LIMIT and EOF
//               at once; the first --cap stay open.
//   fdflood     M guest sessions, each sending stats_request with 16 fds:
//               each gets Error FD_MISMATCH and is closed; then a
//               region_announce over max_guest_memory (LIMIT) and one with a
//               pipe for memory (MALFORMED).
// Exit 0 when the agent behaved, 1 otherwise (the reason on stderr), 2 usage.
// Every loop is bounded in count and time; every socket and fd it opens is
// closed before it exits.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/control_codec.h"
#include "common/unix_socket.h"

namespace {

using npa::ControlChannel;
using npa::ControlFrame;
using npa::MonotonicMs;
using npa::UniqueFd;
using npa::control::Envelope;
using npa::control::Error;

struct Args {
  std::string control, attack;
  int count = 32;
  int cap = 8;
  int timeout_ms = 5000;
  int max_rtt_ms = 500;
  int seconds = 3;
};

int Fail(const std::string& why) {
  fprintf(stderr, "npa-control-peer: FAIL: %s\n", why.c_str());
  return 1;
}

absl::StatusOr<UniqueFd> Connect(const Args& a) { return npa::ConnectUnix(a.control, 2000); }

Envelope Hello(const std::string& name) {
  Envelope e;
  e.mutable_hello()->set_name(name);
  e.mutable_hello()->set_queue_pairs(1);
  e.mutable_hello()->set_pid(static_cast<uint32_t>(getpid()));
  return e;
}

// A guest session: Hello, Welcome (+ the vhost-user fd, kept open and never
// driven: closing it would end the guest), LinkState.
struct GuestConn {
  ControlChannel ch;
  UniqueFd vhost;
  int fd() const { return ch.fd(); }
};

absl::StatusOr<GuestConn> Guest(const Args& a, const std::string& name) {
  auto s = Connect(a);
  if (!s.ok()) return s.status();
  ControlChannel ch(std::move(*s));
  if (absl::Status st = ch.Send(Hello(name)); !st.ok()) return st;
  auto w = ch.ReceiveBlocking(2000);
  if (!w.ok()) return w.status();
  if (!w->env.has_welcome())
    return absl::InternalError(absl::StrCat("hello for ", name, " answered with ",
                                            npa::BodyName(w->env), " ",
                                            w->env.ShortDebugString()));
  if (w->fds.size() != 1) return absl::InternalError("welcome without its fd");
  UniqueFd vhost = std::move(w->fds[0]);
  auto l = ch.ReceiveBlocking(2000);
  if (!l.ok()) return l.status();
  return GuestConn{std::move(ch), std::move(vhost)};
}

// Reads until EOF (kAborted) or the deadline; true on EOF. *err gets the
// code of an Error frame seen on the way (-1 if none).
bool WaitClosed(ControlChannel& ch, int timeout_ms, int* err) {
  *err = -1;
  const uint64_t end = MonotonicMs() + timeout_ms;
  for (int i = 0; i < 100000; i++) {
    const int left = static_cast<int>(end - MonotonicMs());
    if (left <= 0) return false;
    auto f = ch.ReceiveBlocking(left);
    if (f.ok()) {
      if (f->env.has_error()) *err = f->env.error().code();
      continue;
    }
    return absl::IsAborted(f.status()) ||
           f.status().message().find("reset") != absl::string_view::npos;
  }
  return false;
}

int NoRead(const Args& a) {
  auto probe = Guest(a, "probe" + std::to_string(getpid()));
  if (!probe.ok()) return Fail(absl::StrCat("probe hello: ", probe.status().message()));
  Envelope sr;
  sr.mutable_stats_request();
  sr.set_major(npa::kControlMajor);
  sr.set_seq(1);
  const std::string one = npa::EncodeFrame(sr);
  std::string burst;
  for (int i = 0; i < 256; i++) burst += one;
  uint64_t sent_frames = 0, rtts = 0, worst = 0, total_rtt = 0;
  int flooders = 0, cuts = 0;
  // One flooder after another for the whole run: each floods stats_request
  // and never reads; once the agent cuts it off, the next one starts.
  const uint64_t end = MonotonicMs() + static_cast<uint64_t>(a.seconds) * 1000;
  while (MonotonicMs() < end && flooders < 200) {
    auto flooder = Guest(a, "flood" + std::to_string(getpid()) + "_" + std::to_string(flooders));
    if (!flooder.ok()) return Fail(absl::StrCat("flooder hello: ", flooder.status().message()));
    flooders++;
    // Our own writes must never block us.
    fcntl(flooder->fd(), F_SETFL, fcntl(flooder->fd(), F_GETFL) | O_NONBLOCK);
    bool cut = false;
    while (MonotonicMs() < end && !cut) {
      for (int k = 0; k < 64; k++) {
        ssize_t n = send(flooder->fd(), burst.data(), burst.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
          if (errno == EPIPE || errno == ECONNRESET) cut = true;
          break;
        }
        sent_frames += static_cast<uint64_t>(n) / one.size();
      }
      // Probe: one stats round trip on the other session.
      const uint64_t t0 = MonotonicMs();
      if (!probe->ch.Send(sr).ok()) return Fail("probe send failed");
      auto r = probe->ch.ReceiveBlocking(5000);
      if (!r.ok() || !r->env.has_stats_reply())
        return Fail(absl::StrCat("probe got no stats_reply: ",
                                 r.ok() ? npa::BodyName(r->env) : r.status().ToString()));
      const uint64_t rtt = MonotonicMs() - t0;
      worst = rtt > worst ? rtt : worst;
      total_rtt += rtt;
      rtts++;
      // The agent cut it off once its socket shows the agent's shutdown.
      pollfd p{flooder->fd(), POLLRDHUP, 0};
      if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP))) cut = true;
    }
    int err = -1;
    if (!cut) cut = WaitClosed(flooder->ch, a.timeout_ms, &err);
    if (!cut) return Fail(absl::StrCat("flooder ", flooders, " was never cut off"));
    cuts++;
  }
  printf("noread: %d flooders sent %lu stats_requests without reading, %d cut off; probe %lu "
         "round trips meanwhile, mean %.2f ms, worst %lu ms\n",
         flooders, static_cast<unsigned long>(sent_frames), cuts, static_cast<unsigned long>(rtts),
         rtts ? static_cast<double>(total_rtt) / static_cast<double>(rtts) : 0.0,
         static_cast<unsigned long>(worst));
  if (worst > static_cast<uint64_t>(a.max_rtt_ms))
    return Fail(absl::StrCat("probe round trip ", worst, " ms > ", a.max_rtt_ms,
                             " ms: the control thread was held"));
  if (cuts < 1 || cuts != flooders) return Fail("a non-reading peer was not cut off");
  return 0;
}

int HalfOpen(const Args& a) {
  std::vector<ControlChannel> silent;
  for (int i = 0; i < a.count; i++) {
    auto s = Connect(a);
    if (!s.ok()) return Fail(absl::StrCat("connect ", i, ": ", s.status().message()));
    silent.emplace_back(std::move(*s));
  }
  auto half = Guest(a, "half" + std::to_string(getpid()));  // its vhost-user end is never driven
  if (!half.ok()) return Fail(absl::StrCat("half-negotiated hello: ", half.status().message()));
  const uint64_t t0 = MonotonicMs();
  int closed = 0, limit_errors = 0;
  for (auto& ch : silent) {
    int err;
    const int left = a.timeout_ms - static_cast<int>(MonotonicMs() - t0);
    if (WaitClosed(ch, left > 0 ? left : 0, &err)) closed++;
    if (err == Error::LIMIT) limit_errors++;
  }
  int err;
  const int left = a.timeout_ms - static_cast<int>(MonotonicMs() - t0);
  const bool half_closed = WaitClosed(half->ch, left > 0 ? left : 0, &err);
  printf("halfopen: %d/%d silent connections closed by the agent (%d with Error LIMIT), "
         "half-negotiated guest closed: %s (error %d), in %lu ms\n",
         closed, a.count, limit_errors, half_closed ? "yes" : "no", err,
         static_cast<unsigned long>(MonotonicMs() - t0));
  if (closed != a.count) return Fail("some silent connection was never timed out");
  if (!half_closed) return Fail("the half-negotiated guest was never timed out");
  return 0;
}

int ConnFlood(const Args& a) {
  std::vector<ControlChannel> conns;
  for (int i = 0; i < a.count; i++) {
    auto s = Connect(a);
    if (!s.ok()) return Fail(absl::StrCat("connect ", i, ": ", s.status().message()));
    conns.emplace_back(std::move(*s));
    usleep(2000);  // in accept order
  }
  // Refusals arrive at once (Error LIMIT, EOF); the kept ones stay silent
  // until the agent's hello timeout, which must be longer than this check.
  int refused = 0, open = 0;
  for (auto& ch : conns) {
    int err;
    if (WaitClosed(ch, 20, &err) && err == Error::LIMIT)
      refused++;
    else
      open++;
  }
  printf("connflood: %d connections from pid %d: %d refused with Error LIMIT, %d kept "
         "(cap %d)\n",
         a.count, getpid(), refused, open, a.cap);
  if (open != a.cap || refused != a.count - a.cap)
    return Fail(absl::StrCat("want exactly ", a.cap, " kept and ", a.count - a.cap, " refused"));
  return 0;
}

int FdFlood(const Args& a) {
  int mismatched = 0;
  for (int i = 0; i < a.count; i++) {
    auto g = Guest(a, "fdflood" + std::to_string(getpid()) + "_" + std::to_string(i));
    if (!g.ok()) return Fail(absl::StrCat("hello ", i, ": ", g.status().message()));
    std::vector<UniqueFd> mem;
    std::vector<int> raw;
    for (size_t k = 0; k < npa::kMaxFdsPerMessage; k++) {
      mem.emplace_back(memfd_create("fdflood", MFD_CLOEXEC));
      raw.push_back(mem.back().get());
    }
    Envelope sr;
    sr.mutable_stats_request();
    if (!g->ch.Send(sr, raw).ok()) return Fail("send with fds failed");
    int err;
    if (WaitClosed(g->ch, a.timeout_ms, &err) && err == Error::FD_MISMATCH) mismatched++;
  }
  // Memory bounds: 2 x 3 GiB (over the 4 GiB default) and a pipe as memory.
  int limit = -1, malformed = -1;
  {
    auto g = Guest(a, "fdbig" + std::to_string(getpid()));
    if (!g.ok()) return Fail(absl::StrCat("hello: ", g.status().message()));
    Envelope e;
    std::vector<UniqueFd> mem;
    std::vector<int> raw;
    for (int i = 0; i < 2; i++) {
      auto* r = e.mutable_regions()->add_regions();
      r->set_iova(0x100000000000ull * (i + 1));
      r->set_size(3ull << 30);
      mem.emplace_back(memfd_create("fdbig", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      raw.push_back(mem.back().get());
    }
    if (!g->ch.Send(e, raw).ok()) return Fail("send regions failed");
    WaitClosed(g->ch, a.timeout_ms, &limit);
  }
  {
    auto g = Guest(a, "fdpipe" + std::to_string(getpid()));
    if (!g.ok()) return Fail(absl::StrCat("hello: ", g.status().message()));
    Envelope e;
    auto* r = e.mutable_regions()->add_regions();
    r->set_iova(0x100000);
    r->set_size(0x1000);
    int p[2];
    if (pipe(p) != 0) return Fail("pipe");
    UniqueFd p0(p[0]), p1(p[1]);
    if (!g->ch.Send(e, std::span<const int>(p, 1)).ok()) return Fail("send regions failed");
    WaitClosed(g->ch, a.timeout_ms, &malformed);
  }
  printf("fdflood: %d/%d sessions sending %zu unexpected fds closed with FD_MISMATCH; "
         "6 GiB of regions: error %d (LIMIT=%d); a pipe as memory: error %d (MALFORMED=%d)\n",
         mismatched, a.count, npa::kMaxFdsPerMessage, limit, Error::LIMIT, malformed,
         Error::MALFORMED);
  if (mismatched != a.count) return Fail("some fd flood was not refused with FD_MISMATCH");
  if (limit != Error::LIMIT) return Fail("regions over max_guest_memory were not LIMIT");
  if (malformed != Error::MALFORMED) return Fail("a pipe was accepted as guest memory");
  return 0;
}

int Usage() {
  fprintf(stderr,
          "usage: npa-control-peer --control PATH --attack noread|halfopen|connflood|fdflood\n"
          "         [--count N] [--cap N] [--timeout-ms MS] [--max-rtt-ms MS] [--seconds S]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (k == "--control") a.control = v;
    else if (k == "--attack") a.attack = v;
    else if (k == "--count") a.count = atoi(v.c_str());
    else if (k == "--cap") a.cap = atoi(v.c_str());
    else if (k == "--timeout-ms") a.timeout_ms = atoi(v.c_str());
    else if (k == "--max-rtt-ms") a.max_rtt_ms = atoi(v.c_str());
    else if (k == "--seconds") a.seconds = atoi(v.c_str());
    else return Usage();
  }
  if (a.control.empty() || a.count < 1 || a.count > 1000 || a.timeout_ms < 1) return Usage();
  if (a.attack == "noread") return NoRead(a);
  if (a.attack == "halfopen") return HalfOpen(a);
  if (a.attack == "connflood") return ConnFlood(a);
  if (a.attack == "fdflood") return FdFlood(a);
  return Usage();
}
