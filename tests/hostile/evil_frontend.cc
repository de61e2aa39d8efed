#include "tests/hostile/evil_frontend.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tests/hostile/evil_packed.h"

namespace npa::agent::evil {

namespace {

constexpr uint32_t V = NPA_VHOST_USER_VERSION;

// Handshake, then rewrite the TX ring (vring 1): `mutate` gets the
// descriptor table, the avail ring, and a valid buffer address.
absl::Status TxRing(TestFrontend& fe, const std::function<void(TestFrontend&, vring_desc*, vring_avail*)>& mutate) {
  NPA_RETURN_IF_ERROR(fe.Handshake());
  vring_desc* d = fe.desc(1);
  vring_avail* a = fe.avail(1);
  mutate(fe, d, a);
  return absl::OkStatus();
}

void Publish(vring_avail* a, uint16_t head, uint32_t size) {
  const uint16_t idx = a->idx;
  a->ring[idx & (size - 1)] = head;
  __atomic_store_n(&a->idx, static_cast<uint16_t>(idx + 1), __ATOMIC_RELEASE);
}

absl::Status SendMemTable(TestFrontend& fe, std::vector<npa_vhost_memory_region> regions, int nfds) {
  npa_vhost_memory m{};
  m.nregions = static_cast<uint32_t>(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) m.regions[i] = regions[i];
  std::vector<int> fds(nfds, fe.memfd());
  return fe.Send(NPA_VHOST_USER_SET_MEM_TABLE, &m, 8 + 32 * m.nregions, fds);
}

absl::Status Owner(TestFrontend& fe) { return fe.Send(NPA_VHOST_USER_SET_OWNER, nullptr, 0); }

std::function<int()>& FdProbe() {
  static std::function<int()> probe;
  return probe;
}

// The session must still answer: a GET_FEATURES round trip.
absl::Status StillServed(TestFrontend& fe, const char* after) {
  absl::StatusOr<TestFrontend::Reply> r = fe.Call(NPA_VHOST_USER_GET_FEATURES, nullptr, 0);
  if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat("session not served after ", after, ": ", r.status().message()));
  return absl::OkStatus();
}

// Replaces the TX ring's kick fd `times` times (each a fresh eventfd that
// we close at once), pacing with a round trip every 256. Fails if the back
// end then holds more than a handful of extra fds.
absl::Status KickReplaceFlood(TestFrontend& fe, int times) {
  NPA_RETURN_IF_ERROR(fe.Handshake());
  NPA_RETURN_IF_ERROR(StillServed(fe, "the handshake"));
  const int before = FdProbe() ? FdProbe()() : -1;
  for (int i = 0; i < times; ++i) {
    UniqueFd ev(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!ev.valid()) return absl::InternalError("eventfd");
    const uint64_t idx = 1;
    const int fd = ev.get();
    NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_KICK, &idx, 8, {&fd, 1}));
    if (i % 256 == 255) NPA_RETURN_IF_ERROR(StillServed(fe, "kick replacements"));
  }
  NPA_RETURN_IF_ERROR(StillServed(fe, "kick replacements"));
  if (before >= 0) {
    // The dataplane may have taken duplicates of the live kick fds since
    // (one per ring): a few, never thousands.
    const int after = FdProbe()();
    if (after > before + 4) {
      return absl::ResourceExhaustedError(absl::StrCat("back end holds ", after - before, " more fds after ",
                                                       times, " kick fd replacements (", before, " -> ", after, ")"));
    }
  }
  return absl::OkStatus();
}

// Posts, again and again for `ms`, TX chains of `zeros` zero-length
// descriptors followed by one real frame: legal VIRTIO (shorter than the
// ring), the most descriptors per frame a guest can make the back end look
// at. The back end must keep serving everyone (it walks at most
// kMaxChainDescs of each and drops, counted, what is longer).
absl::Status ZeroLengthChains(TestFrontend& fe, uint16_t zeros, int ms) {
  NPA_RETURN_IF_ERROR(fe.Handshake());
  const uint32_t size = fe.config().queue_size;
  const uint32_t per = zeros + 1u;
  const uint32_t chains = size / per;
  if (chains == 0) return absl::InvalidArgumentError("ring too small for the chain");
  vring_desc* d = fe.desc(1);
  vring_avail* a = fe.avail(1);
  vring_used* u = fe.used(1);
  // Our own kick fd for the TX ring, to kick it all the time.
  UniqueFd kick(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  {
    const uint64_t idx = 1;
    const int fd = kick.get();
    NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_KICK, &idx, 8, {&fd, 1}));
  }
  uint8_t* buf = fe.mem() + fe.mem_size() / 2;
  std::memset(buf, 0, 12);
  std::memset(buf + 12, 0xee, 60);
  for (uint32_t c = 0; c < chains; ++c) {
    const uint16_t head = static_cast<uint16_t>(c * per);
    for (uint16_t k = 0; k < zeros; ++k)
      d[head + k] = {fe.gpa(buf), 0, VRING_DESC_F_NEXT, static_cast<uint16_t>(head + k + 1)};
    d[head + zeros] = {fe.gpa(buf), 72, 0, 0};
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  uint64_t rounds = 0;
  while (std::chrono::steady_clock::now() < end) {
    // All chains back? Post them again and kick.
    if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == a->idx) {
      for (uint32_t c = 0; c < chains; ++c) Publish(a, static_cast<uint16_t>(c * per), size);
      ++rounds;
    }
    const uint64_t one = 1;
    (void)!write(kick.get(), &one, 8);  // constant kicks, wanted or not
    std::this_thread::yield();
  }
  if (rounds < 2) return absl::DeadlineExceededError("back end returned no chains (rings stalled?)");
  return StillServed(fe, "zero-length chains");
}

const Attack kAttacks[] = {
    // ---- ring attacks (data path) ----
    {"desc-outside", Attack::kRing, "outside guest memory",
     [](TestFrontend& fe) {
       return TxRing(fe, [](TestFrontend& f, vring_desc* d, vring_avail* a) {
         d[0] = {f.gpa(f.mem()) + f.mem_size() - 16, 4096, 0, 0};  // runs off the end
         Publish(a, 0, f.config().queue_size);
       });
     }},
    {"desc-wild", Attack::kRing, "outside guest memory",
     [](TestFrontend& fe) {
       return TxRing(fe, [](TestFrontend& f, vring_desc* d, vring_avail* a) {
         d[0] = {0xffffffffffff0000ull, 0x20000, 0, 0};  // wraps 2^64
         Publish(a, 0, f.config().queue_size);
       });
     }},
    {"desc-loop", Attack::kRing, "loop",
     [](TestFrontend& fe) {
       return TxRing(fe, [](TestFrontend& f, vring_desc* d, vring_avail* a) {
         const uint64_t buf = f.gpa(f.mem()) + f.mem_size() / 2;
         d[0] = {buf, 64, VRING_DESC_F_NEXT, 1};
         d[1] = {buf, 64, VRING_DESC_F_NEXT, 0};
         Publish(a, 0, f.config().queue_size);
       });
     }},
    {"next-oob", Attack::kRing, "out of range",
     [](TestFrontend& fe) {
       return TxRing(fe, [](TestFrontend& f, vring_desc* d, vring_avail* a) {
         d[0] = {f.gpa(f.mem()) + f.mem_size() / 2, 64, VRING_DESC_F_NEXT, 60000};
         Publish(a, 0, f.config().queue_size);
       });
     }},
    {"head-oob", Attack::kRing, "head index",
     [](TestFrontend& fe) {
       return TxRing(fe, [](TestFrontend& f, vring_desc*, vring_avail* a) { Publish(a, 40000, f.config().queue_size); });
     }},
    {"avail-jump", Attack::kRing, "avail idx jumped",
     [](TestFrontend& fe) {
       return TxRing(fe, [](TestFrontend& f, vring_desc*, vring_avail* a) {
         __atomic_store_n(&a->idx, static_cast<uint16_t>(a->idx + f.config().queue_size + 7), __ATOMIC_RELEASE);
       });
     }},
    {"indirect", Attack::kRing, "indirect",
     [](TestFrontend& fe) {
       return TxRing(fe, [](TestFrontend& f, vring_desc* d, vring_avail* a) {
         d[0] = {f.gpa(f.mem()) + f.mem_size() / 2, 64, VRING_DESC_F_INDIRECT, 0};
         Publish(a, 0, f.config().queue_size);
       });
     }},
    {"tx-writable", Attack::kRing, "wrong direction",
     [](TestFrontend& fe) {
       return TxRing(fe, [](TestFrontend& f, vring_desc* d, vring_avail* a) {
         d[0] = {f.gpa(f.mem()) + f.mem_size() / 2, 64, VRING_DESC_F_WRITE, 0};
         Publish(a, 0, f.config().queue_size);
       });
     }},
    {"rx-readable", Attack::kRing, "wrong direction",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(fe.Handshake());
       vring_desc* d = fe.desc(0);
       d[0] = {fe.gpa(fe.mem()) + fe.mem_size() / 2, 2048, 0, 0};  // no WRITE flag
       Publish(fe.avail(0), 0, fe.config().queue_size);
       // A frame for the dataplane to deliver, so it touches the RX ring.
       char x[64] = {};
       fe.SendFrame(0, x, sizeof(x));
       return absl::OkStatus();
     }},
    // ---- protocol attacks (control path) ----
    {"bad-version", Attack::kMessage, "version",
     [](TestFrontend& fe) { return fe.Send(NPA_VHOST_USER_GET_FEATURES, nullptr, 0, {}, 2); }},
    {"unknown-request", Attack::kMessage, "unknown",
     [](TestFrontend& fe) { return fe.Send(77, nullptr, 0); }},
    {"huge-size", Attack::kMessage, "payload size",
     [](TestFrontend& fe) {
       npa_vhost_user_hdr h{NPA_VHOST_USER_SET_FEATURES, V, 0x7fffffff};
       return fe.SendRaw(&h, sizeof(h));
     }},
    {"short-payload", Attack::kMessage, "payload size",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       uint32_t four = 256;
       return fe.Send(NPA_VHOST_USER_SET_VRING_NUM, &four, 4);
     }},
    {"ring-index", Attack::kMessage, "out of range",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       npa_vhost_vring_state st{200, 256};
       return fe.Send(NPA_VHOST_USER_SET_VRING_NUM, &st, 8);
     }},
    {"ring-size", Attack::kMessage, "power of two",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       npa_vhost_vring_state st{0, 1000};
       return fe.Send(NPA_VHOST_USER_SET_VRING_NUM, &st, 8);
     }},
    {"addr-before-mem", Attack::kMessage, "not legal",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       npa_vhost_vring_state st{0, 256};
       NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_NUM, &st, 8));
       npa_vhost_vring_addr a{0, 0, 0x1000, 0x3000, 0x2000, 0};
       return fe.Send(NPA_VHOST_USER_SET_VRING_ADDR, &a, sizeof(a));
     }},
    {"addr-outside", Attack::kMessage, "not inside guest memory",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       NPA_RETURN_IF_ERROR(SendMemTable(fe, {{fe.gpa(fe.mem()), fe.mem_size(), fe.gpa(fe.mem()), 0}}, 1));
       npa_vhost_vring_state st{0, 256};
       NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_NUM, &st, 8));
       const uint64_t end = fe.gpa(fe.mem()) + fe.mem_size();
       npa_vhost_vring_addr a{0, 0, end - 64, end - 4096, end - 8192, 0};
       return fe.Send(NPA_VHOST_USER_SET_VRING_ADDR, &a, sizeof(a));
     }},
    {"mem-overlap", Attack::kMessage, "overlaps",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       return SendMemTable(fe, {{0x0, 0x2000, 0x100000, 0}, {0x1000, 0x1000, 0x200000, 0}}, 2);
     }},
    {"mem-fd-count", Attack::kMessage, "fds",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       return SendMemTable(fe, {{0x0, 0x1000, 0x100000, 0}, {0x10000, 0x1000, 0x200000, 0}}, 1);
     }},
    {"mem-too-big", Attack::kMessage, "needs mmap_offset+size",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       return SendMemTable(fe, {{0x0, fe.mem_size() * 4, 0x100000, 0}}, 1);  // SIGBUS bait
     }},
    {"fd-flood", Attack::kMessage, "fds",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       std::vector<int> fds(12, fe.memfd());
       uint64_t f = 1ull << VIRTIO_F_VERSION_1;
       return fe.Send(NPA_VHOST_USER_SET_FEATURES, &f, 8, fds);
     }},
    {"kick-not-eventfd", Attack::kMessage, "not an eventfd",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       uint64_t idx = 0;
       const int fd = fe.memfd();
       return fe.Send(NPA_VHOST_USER_SET_VRING_CALL, &idx, 8, {&fd, 1});
     }},
    // ---- trust limits (issue 9) ----
    {"mem-over-cap", Attack::kMessage, "--max-guest-memory",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       // A sparse memfd one page over the default 4 GiB cap: nothing is
       // mapped or touched before the cap check.
       UniqueFd big(memfd_create("evil-big", MFD_CLOEXEC));
       const uint64_t size = (4ull << 30) + 4096;
       if (!big.valid() || ftruncate(big.get(), static_cast<off_t>(size)) != 0) return absl::InternalError("memfd");
       npa_vhost_memory m{};
       m.nregions = 1;
       m.regions[0] = {0x0, size, 0x100000, 0};
       const int fd = big.get();
       return fe.Send(NPA_VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, {&fd, 1});
     }},
    {"mem-disk-file", Attack::kMessage, "not a memfd, tmpfs or hugetlbfs",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(Owner(fe));
       // A file on the disk's file system (FUSE would be worse: a blocking
       // mmap); /var/tmp is on the root file system here.
       UniqueFd f(open("/var/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
       if (!f.valid() || ftruncate(f.get(), 0x100000) != 0) return absl::InternalError("O_TMPFILE in /var/tmp");
       npa_vhost_memory m{};
       m.nregions = 1;
       m.regions[0] = {0x0, 0x100000, 0x100000, 0};
       const int fd = f.get();
       return fe.Send(NPA_VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, {&fd, 1});
     }},
    {"kick-replace-flood", Attack::kSurvive, "", [](TestFrontend& fe) { return KickReplaceFlood(fe, 5000); }},
    {"zero-len-chains", Attack::kSurvive, "",
     [](TestFrontend& fe) { return ZeroLengthChains(fe, 127, 1000); }},
    {"max-chains", Attack::kSurvive, "",
     [](TestFrontend& fe) { return ZeroLengthChains(fe, 63, 1000); }},
    {"garbage", Attack::kMessage, "",
     [](TestFrontend& fe) {
       uint8_t junk[64];
       for (size_t i = 0; i < sizeof(junk); ++i) junk[i] = static_cast<uint8_t>(i * 97 + 13);
       return fe.SendRaw(junk, sizeof(junk));
     }},
};

}  // namespace

std::span<const Attack> Attacks() {
  static const std::vector<Attack> all = [] {
    std::vector<Attack> v(std::begin(kAttacks), std::end(kAttacks));
    const std::span<const Attack> p = PackedAttacks();
    v.insert(v.end(), p.begin(), p.end());
    return v;
  }();
  return all;
}

void SetFdProbe(std::function<int()> probe) { FdProbe() = std::move(probe); }

int CountFds(int pid) {
  const std::string dir = pid > 0 ? "/proc/" + std::to_string(pid) + "/fd" : "/proc/self/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return pid > 0 ? n : n - 1;  // not the DIR's own fd
}

const Attack* FindAttack(const std::string& name) {
  for (const Attack& a : Attacks()) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

}  // namespace npa::agent::evil
