#include "shell/emulated/vhost_user_frontend.h"

#include <sys/uio.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/unix_socket.h"
#include "npa/virtio_ring.h"

namespace npa::shell {
namespace {

// Protocol features we can use. MQ for multi-queue, REPLY_ACK to turn every
// setup message into a checked round trip; CONFIGURE_MEM_SLOTS etc. not needed.
constexpr uint64_t kWantedProtocol =
    (1ull << NPA_VHOST_USER_PROTOCOL_F_MQ) | (1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK);

absl::Status ProtoError(uint32_t request, const std::string& what) {
  return absl::DataLossError(
      absl::StrCat("vhost-user back end: reply to ", VhostUserRequestName(request), ": ", what));
}

}  // namespace

const char* VhostUserRequestName(uint32_t r) {
  switch (r) {
    case NPA_VHOST_USER_GET_FEATURES: return "GET_FEATURES";
    case NPA_VHOST_USER_SET_FEATURES: return "SET_FEATURES";
    case NPA_VHOST_USER_SET_OWNER: return "SET_OWNER";
    case NPA_VHOST_USER_SET_MEM_TABLE: return "SET_MEM_TABLE";
    case NPA_VHOST_USER_SET_VRING_NUM: return "SET_VRING_NUM";
    case NPA_VHOST_USER_SET_VRING_ADDR: return "SET_VRING_ADDR";
    case NPA_VHOST_USER_SET_VRING_BASE: return "SET_VRING_BASE";
    case NPA_VHOST_USER_GET_VRING_BASE: return "GET_VRING_BASE";
    case NPA_VHOST_USER_SET_VRING_KICK: return "SET_VRING_KICK";
    case NPA_VHOST_USER_SET_VRING_CALL: return "SET_VRING_CALL";
    case NPA_VHOST_USER_GET_PROTOCOL_FEATURES: return "GET_PROTOCOL_FEATURES";
    case NPA_VHOST_USER_SET_PROTOCOL_FEATURES: return "SET_PROTOCOL_FEATURES";
    case NPA_VHOST_USER_GET_QUEUE_NUM: return "GET_QUEUE_NUM";
    case NPA_VHOST_USER_SET_VRING_ENABLE: return "SET_VRING_ENABLE";
    default: return "request";
  }
}

absl::Status VhostUserFrontend::Send(uint32_t request, const void* payload, uint32_t size,
                                     std::span<const int> fds, bool need_reply) {
  npa_vhost_user_hdr h{request, NPA_VHOST_USER_VERSION, size};
  const bool ack = need_reply && reply_ack() && !pipelined_;
  if (ack) h.flags |= NPA_VHOST_USER_FLAG_NEED_REPLY;
  // Header and payload are adjacent on the wire with no padding (vhost_user.h).
  iovec iov[2] = {{&h, sizeof h}, {const_cast<void*>(payload), size}};
  absl::Status s = SendWithFds(sock_.get(), iov, size ? 2 : 1, fds, timeout_ms_);
  if (!s.ok())
    return absl::Status(s.code(), absl::StrCat("vhost-user: sending ", VhostUserRequestName(request),
                                               ": ", s.message()));
  if (!ack) return absl::OkStatus();
  uint64_t status = 0;
  NPA_RETURN_IF_ERROR(Receive(request, &status, sizeof status));
  if (status != 0)
    return absl::FailedPreconditionError(absl::StrCat(
        "vhost-user back end rejected ", VhostUserRequestName(request), " (status ", status, ")"));
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::Receive(uint32_t request, void* payload, uint32_t size) {
  npa_vhost_user_hdr h;
  std::vector<UniqueFd> fds;  // none are legal on replies we ask for; closed on return
  absl::Status s = RecvExact(sock_.get(), &h, sizeof h, &fds, timeout_ms_);
  if (!s.ok())
    return absl::Status(s.code(), absl::StrCat("vhost-user: waiting for the reply to ",
                                               VhostUserRequestName(request), ": ", s.message()));
  if (h.request != request)
    return ProtoError(request, absl::StrCat("carries request code ", h.request));
  if ((h.flags & NPA_VHOST_USER_VERSION_MASK) != NPA_VHOST_USER_VERSION)
    return ProtoError(request, absl::StrCat("version ", h.flags & NPA_VHOST_USER_VERSION_MASK,
                                            " (flags 0x", absl::Hex(h.flags), "), want 1"));
  if (!(h.flags & NPA_VHOST_USER_FLAG_REPLY))
    return ProtoError(request, absl::StrCat("reply flag not set (flags 0x", absl::Hex(h.flags), ")"));
  if (h.size != size)
    return ProtoError(request, absl::StrCat("payload of ", h.size, " bytes, want ", size));
  if (size) {
    s = RecvExact(sock_.get(), payload, size, &fds, timeout_ms_);
    if (!s.ok())
      return absl::Status(s.code(), absl::StrCat("vhost-user: reading the payload of the reply to ",
                                                 VhostUserRequestName(request), ": ", s.message()));
  }
  if (!fds.empty())
    return ProtoError(request, absl::StrCat("came with ", fds.size(), " unexpected fds"));
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> VhostUserFrontend::GetU64(uint32_t request) {
  NPA_RETURN_IF_ERROR(Send(request, nullptr, 0));
  uint64_t v = 0;
  NPA_RETURN_IF_ERROR(Receive(request, &v, sizeof v));
  return v;
}

absl::Status VhostUserFrontend::SetU64(uint32_t request, uint64_t v, bool ack) {
  return Send(request, &v, sizeof v, {}, ack);
}

absl::Status VhostUserFrontend::SetState(uint32_t request, uint32_t index, uint32_t num) {
  npa_vhost_vring_state st{index, num};
  return Send(request, &st, sizeof st, {}, /*need_reply=*/true);
}

absl::Status VhostUserFrontend::Negotiate(uint64_t wanted, uint16_t queue_pairs) {
  if (queue_pairs == 0 || queue_pairs > NPA_SHELL_MAX_QUEUES)
    return absl::InvalidArgumentError(absl::StrCat("queue pairs ", queue_pairs));
  // SET_OWNER first, as QEMU does: it claims the session before anything else.
  NPA_RETURN_IF_ERROR(Send(NPA_VHOST_USER_SET_OWNER, nullptr, 0));
  NPA_ASSIGN_OR_RETURN(uint64_t offered, GetU64(NPA_VHOST_USER_GET_FEATURES));
  offered_ = offered;
  if (!(offered & (1ull << NPA_VIRTIO_F_VERSION_1)))
    return absl::FailedPreconditionError(absl::StrCat(
        "vhost-user back end does not offer VIRTIO_F_VERSION_1 (features 0x", absl::Hex(offered),
        "); npa speaks VIRTIO 1.x only"));
  uint64_t f = offered & wanted;
  max_queue_pairs_ = 1;
  protocol_features_ = 0;
  if (offered & (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES)) {
    f |= 1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES;
    NPA_ASSIGN_OR_RETURN(uint64_t pf, GetU64(NPA_VHOST_USER_GET_PROTOCOL_FEATURES));
    uint64_t use = pf & kWantedProtocol;
    NPA_RETURN_IF_ERROR(SetU64(NPA_VHOST_USER_SET_PROTOCOL_FEATURES, use, false));
    protocol_features_ = use;  // REPLY_ACK applies from the next message on
    if (use & (1ull << NPA_VHOST_USER_PROTOCOL_F_MQ)) {
      NPA_ASSIGN_OR_RETURN(uint64_t qn, GetU64(NPA_VHOST_USER_GET_QUEUE_NUM));
      // The spec says "queues"; QEMU and DPDK exchange queue pairs for net.
      if (qn == 0 || qn > 0x8000)
        return ProtoError(NPA_VHOST_USER_GET_QUEUE_NUM, absl::StrCat("queue count ", qn, " out of range"));
      max_queue_pairs_ = static_cast<uint16_t>(qn > NPA_SHELL_MAX_QUEUES ? NPA_SHELL_MAX_QUEUES : qn);
    }
  }
  if (queue_pairs > 1 && !(f & (1ull << NPA_VIRTIO_NET_F_MQ))) max_queue_pairs_ = 1;
  if (queue_pairs > max_queue_pairs_)
    return absl::ResourceExhaustedError(absl::StrCat("vhost-user back end supports ",
                                                     max_queue_pairs_, " queue pairs, ",
                                                     queue_pairs, " requested"));
  if (queue_pairs == 1) f &= ~(1ull << NPA_VIRTIO_NET_F_MQ);
  NPA_RETURN_IF_ERROR(SetU64(NPA_VHOST_USER_SET_FEATURES, f, true));
  features_ = f;
  NPA_LOG(Debug, "shell: vhost-user features 0x%llx (offered 0x%llx), protocol 0x%llx, max qp %u",
          static_cast<unsigned long long>(f), static_cast<unsigned long long>(offered),
          static_cast<unsigned long long>(protocol_features_), max_queue_pairs_);
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::Sync() {
  absl::StatusOr<uint64_t> f = GetU64(NPA_VHOST_USER_GET_FEATURES);
  if (!f.ok())
    return absl::Status(f.status().code(),
                        absl::StrCat("vhost-user: a pipelined request was refused or the back end "
                                     "went away (its log names the request): ",
                                     f.status().message()));
  if (*f != offered_)
    return absl::FailedPreconditionError(absl::StrFormat(
        "vhost-user back end now offers features 0x%x, 0x%x at negotiation", *f, offered_));
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::SetMemTable(std::span<const MemRegion> regions) {
  if (regions.empty() || regions.size() > NPA_VHOST_USER_MAX_REGIONS)
    return absl::InvalidArgumentError(absl::StrCat(regions.size(), " memory regions"));
  npa_vhost_memory m{};
  std::vector<int> fds;
  m.nregions = static_cast<uint32_t>(regions.size());
  for (size_t i = 0; i < regions.size(); i++) {
    m.regions[i].guest_phys_addr = regions[i].addr;
    m.regions[i].userspace_addr = regions[i].addr;
    m.regions[i].memory_size = regions[i].size;
    m.regions[i].mmap_offset = 0;
    fds.push_back(regions[i].fd);
  }
  // Payload size: the header words plus the regions actually used (as QEMU
  // sends it); back ends accept any size covering nregions.
  uint32_t size = static_cast<uint32_t>(offsetof(npa_vhost_memory, regions) +
                                        regions.size() * sizeof(npa_vhost_memory_region));
  return Send(NPA_VHOST_USER_SET_MEM_TABLE, &m, size, fds, true);
}

absl::Status VhostUserFrontend::SetupVring(uint32_t index, uint16_t num, const VringAddrs& a,
                                           int kick_fd, int call_fd, uint16_t base) {
  NPA_RETURN_IF_ERROR(SetState(NPA_VHOST_USER_SET_VRING_NUM, index, num));
  NPA_RETURN_IF_ERROR(SetState(NPA_VHOST_USER_SET_VRING_BASE, index, base));
  npa_vhost_vring_addr va{};
  va.index = index;
  va.desc_user_addr = a.desc;
  va.avail_user_addr = a.avail;
  va.used_user_addr = a.used;
  NPA_RETURN_IF_ERROR(Send(NPA_VHOST_USER_SET_VRING_ADDR, &va, sizeof va, {}, true));
  // A real eventfd each way: DPDK's vhost marks a ring ready only once both
  // kick and call are set (to an fd or "no fd").
  uint64_t idx = index;
  int kfd[1] = {kick_fd};
  NPA_RETURN_IF_ERROR(Send(NPA_VHOST_USER_SET_VRING_KICK, &idx, sizeof idx, kfd, true));
  int cfd[1] = {call_fd};
  return Send(NPA_VHOST_USER_SET_VRING_CALL, &idx, sizeof idx, cfd, true);
}

absl::Status VhostUserFrontend::EnableVring(uint32_t index, bool enable) {
  // Without PROTOCOL_FEATURES rings start enabled (spec "Ring states").
  if (!(features_ & (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES))) return absl::OkStatus();
  return SetState(NPA_VHOST_USER_SET_VRING_ENABLE, index, enable ? 1 : 0);
}

absl::StatusOr<uint32_t> VhostUserFrontend::GetVringBase(uint32_t index) {
  npa_vhost_vring_state st{index, 0};
  NPA_RETURN_IF_ERROR(Send(NPA_VHOST_USER_GET_VRING_BASE, &st, sizeof st));
  npa_vhost_vring_state r{};
  NPA_RETURN_IF_ERROR(Receive(NPA_VHOST_USER_GET_VRING_BASE, &r, sizeof r));
  if (r.index != index)
    return ProtoError(NPA_VHOST_USER_GET_VRING_BASE, absl::StrCat("for vring ", r.index, ", asked ", index));
  if (r.num > 0xffff)
    return ProtoError(NPA_VHOST_USER_GET_VRING_BASE, absl::StrCat("index ", r.num, " > 65535"));
  return r.num;
}

}  // namespace npa::shell
