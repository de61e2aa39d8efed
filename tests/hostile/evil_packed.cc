// Packed-ring attacks (VIRTIO 1.1 §2.8) of the hostile front end: a packed
// handshake built from raw vhost-user messages (TestFrontend lays out split
// rings only), then one broken rule on the TX ring. See evil_frontend.h.
#include "tests/hostile/evil_packed.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace npa::agent::evil {

namespace {

constexpr uint32_t kSlots = 64;  // ring size: >= kMaxChainDescs, so a long chain hits the cap
constexpr uint16_t kAvail = NPA_VRING_PACKED_F_AVAIL;  // available in lap 1 (wrap counter 1)
constexpr uint16_t kUsed = NPA_VRING_PACKED_F_USED;

// Where the packed rings live in the front end's memory: 3/4 in, one 64 KiB
// block per vring (ring, then the driver and device event areas), buffers at
// 7/8. The split rings TestFrontend laid out at the start are never
// announced.
npa_vring_packed_desc* Ring(TestFrontend& fe, uint32_t vring) {
  return reinterpret_cast<npa_vring_packed_desc*>(fe.mem() + fe.mem_size() / 4 * 3 + vring * 0x10000);
}
uint8_t* Area(TestFrontend& fe, uint32_t vring, uint32_t which) {
  return reinterpret_cast<uint8_t*>(Ring(fe, vring)) + 0x8000 + which * 0x100;
}
uint8_t* Buf(TestFrontend& fe) { return fe.mem() + fe.mem_size() / 8 * 7; }

// The kick fds stay open for the process's life (one pair per attack run):
// the back end sleeps on its duplicates, and a kick after the attack wakes it.
int KickFd(uint32_t vring) {
  static int fds[2] = {eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  return fds[vring & 1];
}

void Kick() {
  const uint64_t one = 1;
  (void)!write(KickFd(1), &one, 8);
}

// Bring up queue pair 0 with packed rings of kSlots (VERSION_1 | RING_PACKED
// | PROTOCOL_FEATURES acked), base slot 0 wrap 1, no call fds.
absl::Status PackedHandshake(TestFrontend& fe) {
  NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_OWNER, nullptr, 0));
  NPA_ASSIGN_OR_RETURN(TestFrontend::Reply feat, fe.Call(NPA_VHOST_USER_GET_FEATURES, nullptr, 0));
  const uint64_t want = (1ull << NPA_VIRTIO_F_VERSION_1) | (1ull << NPA_VIRTIO_F_RING_PACKED) |
                        (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES);
  if ((feat.payload.u64 & want) != want) {
    return absl::FailedPreconditionError(absl::StrCat("back end does not offer packed rings (features 0x",
                                                      absl::Hex(feat.payload.u64), ")"));
  }
  NPA_ASSIGN_OR_RETURN(TestFrontend::Reply pf, fe.Call(NPA_VHOST_USER_GET_PROTOCOL_FEATURES, nullptr, 0));
  (void)pf;
  const uint64_t proto = 0;
  NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_PROTOCOL_FEATURES, &proto, 8));
  NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_FEATURES, &want, 8));
  npa_vhost_memory m{};
  m.nregions = 1;
  m.regions[0] = {fe.gpa(fe.mem()), fe.mem_size(), fe.gpa(fe.mem()), 0};
  const int mfd = fe.memfd();
  NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, {&mfd, 1}));
  for (uint32_t i = 0; i < 2; ++i) {
    std::memset(Ring(fe, i), 0, 0x10000);
    uint64_t file = i | NPA_VHOST_USER_VRING_NOFD_MASK;
    NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_CALL, &file, 8));
    npa_vhost_vring_state st{i, kSlots};
    NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_NUM, &st, 8));
    st.num = npa_vring_packed_base(0, 1);
    NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_BASE, &st, 8));
    // vhost-user on a packed ring: desc = ring, avail = driver area, used = device area.
    npa_vhost_vring_addr a{i, 0, fe.gpa(Ring(fe, i)), fe.gpa(Area(fe, i, 1)), fe.gpa(Area(fe, i, 0)), 0};
    NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_ADDR, &a, sizeof(a)));
    file = i;
    const int kfd = KickFd(i);
    NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_KICK, &file, 8, {&kfd, 1}));
    npa_vhost_vring_state en{i, 1};
    NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_ENABLE, &en, 8));
  }
  // A round trip: everything above was handled (and accepted) in order.
  NPA_ASSIGN_OR_RETURN(TestFrontend::Reply r, fe.Call(NPA_VHOST_USER_GET_FEATURES, nullptr, 0));
  (void)r;
  return absl::OkStatus();
}

// Handshake, then `mutate` the TX ring (descriptors first, the head's flags
// last, as a driver publishes) and kick.
absl::Status PackedTx(TestFrontend& fe, const std::function<void(TestFrontend&, npa_vring_packed_desc*)>& mutate) {
  NPA_RETURN_IF_ERROR(PackedHandshake(fe));
  mutate(fe, Ring(fe, 1));
  Kick();
  return absl::OkStatus();
}

void Set(npa_vring_packed_desc* d, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags) {
  d->addr = addr;
  d->len = len;
  d->id = id;
  __atomic_store_n(&d->flags, flags, __ATOMIC_RELEASE);
}

// Legal but expensive: chains of `zeros` zero-length descriptors and one
// real frame, the whole ring posted again and again for `ms`, lap after lap
// (the wrap counter flips each lap). The back end must keep serving.
absl::Status PackedZeroChains(TestFrontend& fe, uint16_t zeros, int ms) {
  NPA_RETURN_IF_ERROR(PackedHandshake(fe));
  npa_vring_packed_desc* d = Ring(fe, 1);
  const uint32_t per = zeros + 1u, chains = kSlots / per;
  uint8_t* buf = Buf(fe);
  std::memset(buf, 0, 12);
  std::memset(buf + 12, 0xee, 60);
  bool wrap = true;
  uint32_t slot = 0;  // next slot to post (and, in order, the next used)
  uint64_t laps = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    // Post every chain of one lap's worth, each head's flags last.
    const uint32_t first = slot;
    const bool first_wrap = wrap;
    for (uint32_t c = 0; c < chains; ++c) {
      const uint32_t head = slot;
      uint16_t head_flags = 0;
      for (uint32_t k = 0; k < per; ++k) {
        const uint16_t f = static_cast<uint16_t>((k + 1 < per ? NPA_VRING_DESC_F_NEXT : 0) | (wrap ? kAvail : kUsed));
        if (k == 0) {
          d[slot] = {fe.gpa(buf), k + 1 < per ? 0u : 72u, static_cast<uint16_t>(c), d[slot].flags};
          head_flags = f;
        } else {
          Set(&d[slot], fe.gpa(buf), k + 1 < per ? 0 : 72, static_cast<uint16_t>(c), f);
        }
        if (++slot == kSlots) {
          slot = 0;
          wrap = !wrap;
        }
      }
      __atomic_store_n(&d[head].flags, head_flags, __ATOMIC_RELEASE);
    }
    // Wait (bounded) for the last chain's used descriptor, then go on. The
    // bound runs 3 s past the attack window: a sanitizer build beside
    // another test on a loaded 2-core CI machine once took over 500 ms to
    // return the last lap (81 laps had come back), which is slowness, not
    // the agent refusing the guest; a back end that stopped serving still
    // fails here.
    const uint32_t last = (first + (chains - 1) * per) % kSlots;
    const bool last_wrap = (first + (chains - 1) * per) >= kSlots ? !first_wrap : first_wrap;
    const uint16_t want = last_wrap ? (kAvail | kUsed) : 0;
    bool back = false;
    while (!back && std::chrono::steady_clock::now() < end + std::chrono::milliseconds(3000)) {
      Kick();
      back = (__atomic_load_n(&d[last].flags, __ATOMIC_ACQUIRE) & (kAvail | kUsed)) == want;
      if (!back) std::this_thread::yield();
    }
    if (!back) return absl::DeadlineExceededError(absl::StrCat("packed chains not returned after ", laps, " rounds"));
    ++laps;
  }
  if (laps < 2) return absl::DeadlineExceededError("back end returned no packed chains");
  absl::StatusOr<TestFrontend::Reply> r = fe.Call(NPA_VHOST_USER_GET_FEATURES, nullptr, 0);
  return r.ok() ? absl::OkStatus() : r.status();
}

const Attack kPacked[] = {
    {"packed-desc-outside", Attack::kRing, "outside guest memory",
     [](TestFrontend& fe) {
       return PackedTx(fe, [](TestFrontend& f, npa_vring_packed_desc* d) {
         Set(&d[0], f.gpa(f.mem()) + f.mem_size() - 16, 4096, 0, kAvail);  // runs off the end
       });
     }},
    {"packed-wrap-flip", Attack::kRing, "AVAIL and USED both",
     [](TestFrontend& fe) {
       return PackedTx(fe, [](TestFrontend& f, npa_vring_packed_desc* d) {
         Set(&d[0], f.gpa(Buf(f)), 72, 0, kAvail | kUsed);  // a "used" descriptor of this lap
       });
     }},
    {"packed-endless-chain", Attack::kRing, "packed chain from slot 0",
     [](TestFrontend& fe) {
       return PackedTx(fe, [](TestFrontend& f, npa_vring_packed_desc* d) {
         for (uint32_t i = kSlots; i-- > 0;) Set(&d[i], f.gpa(Buf(f)), 0, 0, kAvail | NPA_VRING_DESC_F_NEXT);
       });
     }},
    {"packed-chain-into-stale", Attack::kRing, "not available",
     [](TestFrontend& fe) {
       return PackedTx(fe, [](TestFrontend& f, npa_vring_packed_desc* d) {
         Set(&d[1], f.gpa(Buf(f)), 60, 0, kUsed);  // the previous lap's flags
         Set(&d[0], f.gpa(Buf(f)), 12, 0, kAvail | NPA_VRING_DESC_F_NEXT);
       });
     }},
    {"packed-tx-writable", Attack::kRing, "wrong direction",
     [](TestFrontend& fe) {
       return PackedTx(fe, [](TestFrontend& f, npa_vring_packed_desc* d) {
         Set(&d[0], f.gpa(Buf(f)), 72, 0, kAvail | NPA_VRING_DESC_F_WRITE);
       });
     }},
    {"packed-indirect", Attack::kRing, "indirect",
     [](TestFrontend& fe) {
       return PackedTx(fe, [](TestFrontend& f, npa_vring_packed_desc* d) {
         Set(&d[0], f.gpa(Buf(f)), 64, 0, kAvail | NPA_VRING_DESC_F_INDIRECT);
       });
     }},
    {"packed-base-past-ring", Attack::kMessage, "names slot",
     [](TestFrontend& fe) {
       NPA_RETURN_IF_ERROR(PackedHandshake(fe));
       // Stop the TX ring, then restart it at a slot past its end.
       npa_vhost_vring_state st{1, 0};
       NPA_RETURN_IF_ERROR(fe.Call(NPA_VHOST_USER_GET_VRING_BASE, &st, 8).status());
       st.num = npa_vring_packed_base(kSlots + 3, 1);
       NPA_RETURN_IF_ERROR(fe.Send(NPA_VHOST_USER_SET_VRING_BASE, &st, 8));
       uint64_t file = 1;
       const int kfd = KickFd(1);
       return fe.Send(NPA_VHOST_USER_SET_VRING_KICK, &file, 8, {&kfd, 1});
     }},
    {"packed-zero-len-chains", Attack::kSurvive, "",
     [](TestFrontend& fe) { return PackedZeroChains(fe, 15, 1000); }},
    {"packed-max-chains", Attack::kSurvive, "",
     [](TestFrontend& fe) { return PackedZeroChains(fe, 63, 1000); }},
};

}  // namespace

std::span<const Attack> PackedAttacks() { return kPacked; }

}  // namespace npa::agent::evil
