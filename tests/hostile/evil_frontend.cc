#include "tests/hostile/evil_frontend.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common/status_macros.h"

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
    {"garbage", Attack::kMessage, "",
     [](TestFrontend& fe) {
       uint8_t junk[64];
       for (size_t i = 0; i < sizeof(junk); ++i) junk[i] = static_cast<uint8_t>(i * 97 + 13);
       return fe.SendRaw(junk, sizeof(junk));
     }},
};

}  // namespace

std::span<const Attack> Attacks() { return kAttacks; }

const Attack* FindAttack(const std::string& name) {
  for (const Attack& a : kAttacks) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

}  // namespace npa::agent::evil
