// npa-shrink-guest: the "shrink" attack against a real npa-agent. A guest
// that gives the agent an unsealed memfd could ftruncate() it smaller after
// the agent mapped it; the agent's next access would then raise SIGBUS and
// kill every guest with it. So the agent must refuse unsealed memory from
// control-protocol guests (the npa shell seals, shell/region.h).
//
//   npa-shrink-guest --control PATH    control-protocol guest, three steps:
//     1. Hello, then RegionAnnounce with an unsealed memfd: must get
//        Error{MALFORMED, "region 0: memfd not sealed against shrinking ..."}.
//     2. Hello, then a vhost-user handshake on the Welcome fd whose
//        SET_MEM_TABLE carries an unsealed memfd: the agent must close it.
//     3. Hello, RegionAnnounce with a sealed memfd: accepted (no Error), and
//        the guest's own ftruncate() to shrink it now fails with EPERM.
//   npa-shrink-guest --vhost-user PATH --expect refused|accepted
//     a plain vhost-user front end with unsealed memory: refused when the
//     agent runs with --require-sealed-memory, accepted (today's DPDK/QEMU
//     behaviour, the documented residual risk) without it.
// Prints one line per step and "shrink: PASS ..." / "shrink: FAIL ..."; exit
// 0 only if every step saw what it must. Bounded: every wait has a timeout.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/control_codec.h"
#include "common/unix_socket.h"
#include "tests/support/test_frontend.h"
#include "include/npa/control.pb.h"

namespace {

using npa::ControlChannel;
using npa::ControlFrame;
using npa::UniqueFd;
using npa::control::Envelope;
using npa::control::Error;

constexpr size_t kRegion = 64 * 1024;
constexpr const char* kWant = "region 0: memfd not sealed against shrinking (F_SEAL_SHRINK)";

int failures = 0;

void Report(bool ok, const std::string& what) {
  std::printf("shrink: %s: %s\n", ok ? "ok" : "FAIL", what.c_str());
  std::fflush(stdout);
  if (!ok) failures++;
}

UniqueFd MakeMemfd(bool sealed) {
  UniqueFd fd(memfd_create("npa-shrink-guest", MFD_CLOEXEC | (sealed ? MFD_ALLOW_SEALING : 0)));
  if (!fd.valid() || ftruncate(fd.get(), kRegion) != 0) return UniqueFd();
  if (sealed && fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) return UniqueFd();
  return fd;
}

// Next frame that is not a LinkState (the agent sends one after Welcome).
absl::StatusOr<ControlFrame> NextNonLink(ControlChannel& ch, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (int i = 0; i < 16; i++) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    end - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) break;
    auto f = ch.ReceiveBlocking(left);
    if (!f.ok() || !f->env.has_link()) return f;
  }
  return absl::DeadlineExceededError("no frame other than link_state");
}

// Hello + Welcome; the Welcome's vhost-user fd goes to *vhost.
absl::StatusOr<ControlChannel> Attach(const std::string& ctl, const std::string& name,
                                      UniqueFd* vhost) {
  auto s = npa::ConnectUnix(ctl, 5000);
  if (!s.ok()) return s.status();
  ControlChannel ch(std::move(*s));
  Envelope h;
  h.mutable_hello()->set_name(name);
  h.mutable_hello()->set_queue_pairs(1);
  h.mutable_hello()->set_pid(getpid());
  if (absl::Status st = ch.Send(h); !st.ok()) return st;
  auto w = ch.ReceiveBlocking(5000);
  if (!w.ok()) return w.status();
  if (!w->env.has_welcome() || w->fds.size() != 1)
    return absl::InternalError(absl::StrCat("wanted welcome + 1 fd, got ", npa::BodyName(w->env)));
  *vhost = std::move(w->fds[0]);
  return ch;
}

absl::Status Announce(ControlChannel& ch, int fd) {
  Envelope e;
  auto* r = e.mutable_regions()->add_regions();
  r->set_iova(0x10000000);
  r->set_size(kRegion);
  return ch.Send(e, std::span<const int>(&fd, 1));
}

void UnsealedAnnounce(const std::string& ctl) {
  UniqueFd vhost;
  auto ch = Attach(ctl, "evil-shrink-announce", &vhost);
  if (!ch.ok()) return Report(false, absl::StrCat("attach: ", ch.status().message()));
  UniqueFd m = MakeMemfd(/*sealed=*/false);
  if (!m.valid()) return Report(false, "memfd");
  if (absl::Status s = Announce(*ch, m.get()); !s.ok())
    return Report(false, absl::StrCat("send region_announce: ", s.message()));
  auto f = NextNonLink(*ch, 3000);
  if (!f.ok()) return Report(false, absl::StrCat("region_announce unsealed: no error: ", f.status().message()));
  if (!f->env.has_error())
    return Report(false, absl::StrCat("region_announce unsealed: got ", npa::BodyName(f->env)));
  const auto& err = f->env.error();
  bool ok = err.code() == Error::MALFORMED && err.message().find(kWant) != std::string::npos;
  Report(ok, absl::StrCat("region_announce with an unsealed memfd refused: ",
                          Error::Code_Name(err.code()), " \"", err.message(), "\""));
  // The guest could now shrink its memfd; nothing of it is mapped in the agent.
  (void)!ftruncate(m.get(), 0);
}

void UnsealedMemTable(const std::string& ctl) {
  UniqueFd vhost;
  auto ch = Attach(ctl, "evil-shrink-memtable", &vhost);
  if (!ch.ok()) return Report(false, absl::StrCat("attach: ", ch.status().message()));
  // TestFrontend's memory is a plain memfd, like DPDK's: unsealed.
  auto fe = npa::agent::TestFrontend::Create(std::move(vhost), {.queue_size = 64, .mem_size = 1u << 20});
  if (!fe.ok()) return Report(false, absl::StrCat("front end: ", fe.status().message()));
  absl::Status hs = (*fe)->Handshake();
  Report(!hs.ok(), hs.ok() ? "SET_MEM_TABLE with an unsealed memfd was ACCEPTED on a control guest"
                           : absl::StrCat("SET_MEM_TABLE with an unsealed memfd refused (",
                                          hs.message(), ")"));
}

void SealedAnnounce(const std::string& ctl) {
  UniqueFd vhost;
  auto ch = Attach(ctl, "shrink-sealed", &vhost);
  if (!ch.ok()) return Report(false, absl::StrCat("attach: ", ch.status().message()));
  UniqueFd m = MakeMemfd(/*sealed=*/true);
  if (!m.valid()) return Report(false, "sealed memfd");
  if (absl::Status s = Announce(*ch, m.get()); !s.ok())
    return Report(false, absl::StrCat("send region_announce: ", s.message()));
  // Accepted = no Error and the session stays open (nothing else is sent).
  auto f = NextNonLink(*ch, 500);
  if (f.ok())
    return Report(false, absl::StrCat("region_announce sealed: got ", npa::BodyName(f->env),
                                      f->env.has_error() ? ": " + f->env.error().message() : ""));
  if (!absl::IsDeadlineExceeded(f.status()))
    return Report(false, absl::StrCat("region_announce sealed: session ended: ", f.status().message()));
  errno = 0;
  int rc = ftruncate(m.get(), 0);
  int e = errno;
  Report(rc == -1 && e == EPERM,
         absl::StrCat("sealed region_announce accepted; the guest's ftruncate to 0 then fails: ",
                      rc == 0 ? "succeeded!" : strerror(e)));
}

void PlainVhostUser(const std::string& path, bool expect_refused) {
  auto s = npa::ConnectUnix(path, 5000);
  if (!s.ok()) return Report(false, absl::StrCat("connect ", path, ": ", s.status().message()));
  auto fe = npa::agent::TestFrontend::Create(std::move(*s), {.queue_size = 64, .mem_size = 1u << 20});
  if (!fe.ok()) return Report(false, absl::StrCat("front end: ", fe.status().message()));
  absl::Status hs = (*fe)->Handshake();
  if (expect_refused)
    Report(!hs.ok(), hs.ok() ? "plain vhost-user SET_MEM_TABLE unsealed ACCEPTED despite "
                               "--require-sealed-memory"
                             : absl::StrCat("plain vhost-user SET_MEM_TABLE unsealed refused "
                                            "(--require-sealed-memory): ", hs.message()));
  else
    Report(hs.ok(), hs.ok() ? "plain vhost-user SET_MEM_TABLE unsealed accepted (default; "
                              "DPDK/QEMU do not seal)"
                            : absl::StrCat("plain vhost-user handshake failed: ", hs.message()));
}

int Usage() {
  std::fprintf(stderr,
               "usage: npa-shrink-guest --control PATH\n"
               "       npa-shrink-guest --vhost-user PATH --expect refused|accepted\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string ctl, vu, expect;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    if (a == "--control") ctl = argv[++i];
    else if (a == "--vhost-user") vu = argv[++i];
    else if (a == "--expect") expect = argv[++i];
    else return Usage();
  }
  if (ctl.empty() == vu.empty()) return Usage();
  if (!ctl.empty()) {
    UnsealedAnnounce(ctl);
    UnsealedMemTable(ctl);
    SealedAnnounce(ctl);
  } else {
    if (expect != "refused" && expect != "accepted") return Usage();
    PlainVhostUser(vu, expect == "refused");
  }
  std::printf("shrink: %s\n", failures ? "FAIL" : "PASS");
  return failures ? 1 : 0;
}
