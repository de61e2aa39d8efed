// hypervisor/vhost/vhost_session_requests.cc — VhostSession's request table
// and what every message passes before a handler sees it: the header, the
// state the session is in, the payload's size, the fds it carries and the
// protocol features it needs (vhost-user spec, "Front-end message types").
// The handlers are in vhost_session.cc.
#include "hypervisor/vhost/vhost_session.h"

#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace npa::agent {

namespace {

constexpr uint8_t Bit(VhostSession::State s) { return static_cast<uint8_t>(1u << static_cast<unsigned>(s)); }
constexpr uint8_t kAnyState = Bit(VhostSession::kNoOwner) | Bit(VhostSession::kOwned) |
                              Bit(VhostSession::kMemReady);
constexpr uint8_t kOwnedStates = Bit(VhostSession::kOwned) | Bit(VhostSession::kMemReady);
constexpr uint8_t kMemStates = Bit(VhostSession::kMemReady);

constexpr int32_t kSizeMemTable = -1;  // 8 + 32 * nregions

enum class FdRule : uint8_t {
  kNone,       // no fds
  kVringFile,  // one fd unless the NOFD bit is set in the u64 payload
  kRegions,    // exactly nregions fds
};

// The requests that are the session table's events (VhostSessionTraits);
// a request absent here fires nothing and leaves the state unchanged.
struct StateChange {
  uint32_t request;
  VhostSessionEvent event;
};
constexpr StateChange kStateChanges[] = {
    {NPA_VHOST_USER_SET_OWNER, VhostSessionEvent::kSetOwner},
    {NPA_VHOST_USER_SET_MEM_TABLE, VhostSessionEvent::kSetMemTable},
    {NPA_VHOST_USER_RESET_OWNER, VhostSessionEvent::kResetOwner},
};

const VhostSessionEvent* EventOf(uint32_t request) {
  for (const StateChange& c : kStateChanges)
    if (c.request == request) return &c.event;
  return nullptr;
}

// Requests of the vhost-user spec that this back end does not serve, and
// why: each belongs to a feature it never offers, so a front end that
// negotiated honestly never sends one. The log names the request and the
// missing feature instead of a bare number.
struct Unsupported {
  uint32_t request;
  const char* name;
  const char* why;
};
constexpr Unsupported kUnsupported[] = {
    {NPA_VHOST_USER_SET_LOG_BASE, "SET_LOG_BASE", "dirty logging (VHOST_F_LOG_ALL, LOG_SHMFD) is not offered"},
    {NPA_VHOST_USER_SET_LOG_FD, "SET_LOG_FD", "dirty logging (VHOST_F_LOG_ALL, LOG_SHMFD) is not offered"},
    {NPA_VHOST_USER_SEND_RARP, "SEND_RARP", "protocol feature RARP is not offered"},
    {NPA_VHOST_USER_SET_BACKEND_REQ_FD, "SET_BACKEND_REQ_FD", "protocol feature BACKEND_REQ is not offered"},
    {NPA_VHOST_USER_IOTLB_MSG, "IOTLB_MSG", "VIRTIO_F_IOMMU_PLATFORM is not offered"},
    {NPA_VHOST_USER_SET_VRING_ENDIAN, "SET_VRING_ENDIAN", "legacy (pre-1.0) virtio is not supported"},
    {NPA_VHOST_USER_GET_CONFIG, "GET_CONFIG", "protocol feature CONFIG is not offered"},
    {NPA_VHOST_USER_SET_CONFIG, "SET_CONFIG", "protocol feature CONFIG is not offered"},
    {NPA_VHOST_USER_GET_INFLIGHT_FD, "GET_INFLIGHT_FD", "protocol feature INFLIGHT_SHMFD is not offered"},
    {NPA_VHOST_USER_SET_INFLIGHT_FD, "SET_INFLIGHT_FD", "protocol feature INFLIGHT_SHMFD is not offered"},
    {NPA_VHOST_USER_RESET_DEVICE, "RESET_DEVICE", "protocol feature RESET_DEVICE is not offered"},
    {NPA_VHOST_USER_GET_MAX_MEM_SLOTS, "GET_MAX_MEM_SLOTS", "protocol feature CONFIGURE_MEM_SLOTS is not offered"},
    {NPA_VHOST_USER_ADD_MEM_REG, "ADD_MEM_REG", "protocol feature CONFIGURE_MEM_SLOTS is not offered"},
    {NPA_VHOST_USER_REM_MEM_REG, "REM_MEM_REG", "protocol feature CONFIGURE_MEM_SLOTS is not offered"},
};

const Unsupported* FindUnsupported(uint32_t request) {
  for (const Unsupported& u : kUnsupported)
    if (u.request == request) return &u;
  return nullptr;
}

}  // namespace

const char* VhostSessionTraits::StateName(VhostSessionState s) {
  switch (s) {
    case VhostSessionState::kNoOwner: return "no-owner";
    case VhostSessionState::kOwned: return "owned";
    case VhostSessionState::kMemReady: return "mem-ready";
  }
  return "unknown";
}

const char* VhostSessionTraits::EventName(VhostSessionEvent e) {
  switch (e) {
    case VhostSessionEvent::kSetOwner: return "SET_OWNER";
    case VhostSessionEvent::kSetMemTable: return "SET_MEM_TABLE";
    case VhostSessionEvent::kResetOwner: return "RESET_OWNER";
  }
  return "unknown";
}

struct VhostSession::RequestSpec {
  uint32_t request;
  const char* name;
  int32_t size;       // exact payload bytes, or kSizeMemTable
  FdRule fds;
  uint8_t states;     // bitmask of states in which the request is legal
  uint64_t needs_protocol;  // protocol features that must have been acked
  bool has_reply;     // the request answers with its own payload
  absl::Status (VhostSession::*fn)(VhostMessage&, VhostReply*);
};

// The request table (vhost-user spec, "Front-end message types").
// clang-format off
#define P(b) (1ull << NPA_VHOST_USER_PROTOCOL_F_##b)
constexpr uint32_t kU64 = sizeof(uint64_t), kState = sizeof(npa_vhost_vring_state),
                   kAddr = sizeof(npa_vhost_vring_addr);
const VhostSession::RequestSpec VhostSession::kRequests[] = {
  {NPA_VHOST_USER_GET_FEATURES, "GET_FEATURES", 0, FdRule::kNone, kAnyState, 0, true, &VhostSession::OnGetFeatures},
  {NPA_VHOST_USER_SET_FEATURES, "SET_FEATURES", kU64, FdRule::kNone, kOwnedStates, 0, false, &VhostSession::OnSetFeatures},
  {NPA_VHOST_USER_SET_OWNER, "SET_OWNER", 0, FdRule::kNone, Bit(VhostSession::kNoOwner), 0, false, &VhostSession::OnSetOwner},
  {NPA_VHOST_USER_RESET_OWNER, "RESET_OWNER", 0, FdRule::kNone, kOwnedStates, 0, false, &VhostSession::OnResetOwner},
  {NPA_VHOST_USER_SET_MEM_TABLE, "SET_MEM_TABLE", kSizeMemTable, FdRule::kRegions, kOwnedStates, 0, false, &VhostSession::OnSetMemTable},
  {NPA_VHOST_USER_SET_VRING_NUM, "SET_VRING_NUM", kState, FdRule::kNone, kOwnedStates, 0, false, &VhostSession::OnSetVringNum},
  {NPA_VHOST_USER_SET_VRING_ADDR, "SET_VRING_ADDR", kAddr, FdRule::kNone, kMemStates, 0, false, &VhostSession::OnSetVringAddr},
  {NPA_VHOST_USER_SET_VRING_BASE, "SET_VRING_BASE", kState, FdRule::kNone, kOwnedStates, 0, false, &VhostSession::OnSetVringBase},
  {NPA_VHOST_USER_GET_VRING_BASE, "GET_VRING_BASE", kState, FdRule::kNone, kOwnedStates, 0, true, &VhostSession::OnGetVringBase},
  {NPA_VHOST_USER_SET_VRING_KICK, "SET_VRING_KICK", kU64, FdRule::kVringFile, kOwnedStates, 0, false, &VhostSession::OnSetVringFd},
  {NPA_VHOST_USER_SET_VRING_CALL, "SET_VRING_CALL", kU64, FdRule::kVringFile, kOwnedStates, 0, false, &VhostSession::OnSetVringFd},
  {NPA_VHOST_USER_SET_VRING_ERR, "SET_VRING_ERR", kU64, FdRule::kVringFile, kOwnedStates, 0, false, &VhostSession::OnSetVringFd},
  {NPA_VHOST_USER_GET_PROTOCOL_FEATURES, "GET_PROTOCOL_FEATURES", 0, FdRule::kNone, kAnyState, 0, true, &VhostSession::OnGetProtocolFeatures},
  {NPA_VHOST_USER_SET_PROTOCOL_FEATURES, "SET_PROTOCOL_FEATURES", kU64, FdRule::kNone, kAnyState, 0, false, &VhostSession::OnSetProtocolFeatures},
  {NPA_VHOST_USER_GET_QUEUE_NUM, "GET_QUEUE_NUM", 0, FdRule::kNone, kAnyState, 0, true, &VhostSession::OnGetQueueNum},
  {NPA_VHOST_USER_SET_VRING_ENABLE, "SET_VRING_ENABLE", kState, FdRule::kNone, kOwnedStates, 0, false, &VhostSession::OnSetVringEnable},
  {NPA_VHOST_USER_NET_SET_MTU, "NET_SET_MTU", kU64, FdRule::kNone, kOwnedStates, P(MTU), false, &VhostSession::OnNetSetMtu},
  {NPA_VHOST_USER_SET_STATUS, "SET_STATUS", kU64, FdRule::kNone, kOwnedStates, P(STATUS), false, &VhostSession::OnSetStatus},
  {NPA_VHOST_USER_GET_STATUS, "GET_STATUS", 0, FdRule::kNone, kOwnedStates, P(STATUS), true, &VhostSession::OnGetStatus},
};
#undef P
// clang-format on
const size_t VhostSession::kNumRequests = std::size(VhostSession::kRequests);

const VhostSession::RequestSpec* VhostSession::FindSpec(uint32_t request) {
  for (size_t i = 0; i < kNumRequests; ++i) {
    if (kRequests[i].request == request) return &kRequests[i];
  }
  return nullptr;
}

absl::Status VhostSession::CheckHeader(const npa_vhost_user_hdr& hdr) const {
  const RequestSpec* spec = FindSpec(hdr.request);
  absl::Status bad;
  if ((hdr.flags & NPA_VHOST_USER_VERSION_MASK) != NPA_VHOST_USER_VERSION) {
    bad = absl::InvalidArgumentError(absl::StrFormat("header version %u (expected 1)",
                                                     hdr.flags & NPA_VHOST_USER_VERSION_MASK));
  } else if (hdr.flags & ~(NPA_VHOST_USER_VERSION_MASK | NPA_VHOST_USER_FLAG_NEED_REPLY)) {
    bad = absl::InvalidArgumentError(absl::StrFormat("header flags 0x%x (reply or unknown bits set)", hdr.flags));
  } else if (spec == nullptr) {
    const Unsupported* u = FindUnsupported(hdr.request);
    bad = u ? absl::InvalidArgumentError(absl::StrCat("request ", u->name, " is not supported: ", u->why))
            : absl::InvalidArgumentError(absl::StrCat("unknown request ", hdr.request));
  } else if (hdr.size > kMaxPayload) {
    bad = absl::InvalidArgumentError(absl::StrCat("payload size ", hdr.size, " > ", kMaxPayload));
  }
  if (!bad.ok()) {
    NPA_LOG(Warn, "vhost-user[%s]: message %u rejected: %s", opts_.name.c_str(), hdr.request,
            std::string(bad.message()).c_str());
    return absl::Status(bad.code(), absl::StrCat("guest '", opts_.name, "' message ", hdr.request,
                                                 ": ", bad.message()));
  }
  return absl::OkStatus();
}

absl::Status VhostSession::Handle(VhostMessage msg, VhostReply* reply) {
  reply->send = false;
  NPA_RETURN_IF_ERROR(CheckHeader(msg.hdr));
  const RequestSpec& spec = *FindSpec(msg.hdr.request);
  absl::Status st = Dispatch(spec, msg, reply);
  const bool want_ack = (msg.hdr.flags & NPA_VHOST_USER_FLAG_NEED_REPLY) && !spec.has_reply &&
                        (acked_protocol_ & (1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK));
  if (want_ack) {
    reply->send = true;
    reply->hdr = {msg.hdr.request, NPA_VHOST_USER_VERSION | NPA_VHOST_USER_FLAG_REPLY, kU64};
    reply->payload.u64 = st.ok() ? 0 : 1;
  }
  if (!st.ok()) {
    NPA_LOG(Warn, "vhost-user[%s]: %s rejected (state %s): %s", opts_.name.c_str(), spec.name,
            machine_.name(), std::string(st.message()).c_str());
    return absl::Status(st.code(), absl::StrCat("guest '", opts_.name, "' ", spec.name, ": ", st.message()));
  }
  NPA_LOG(Debug, "vhost-user[%s]: %s ok", opts_.name.c_str(), spec.name);
  return absl::OkStatus();
}

absl::Status VhostSession::Dispatch(const RequestSpec& spec, VhostMessage& msg, VhostReply* reply) {
  if (!(spec.states & Bit(state()))) {
    return absl::FailedPreconditionError(absl::StrCat("not legal in state ", machine_.name()));
  }
  // A state-changing request must also have its arc, checked before the
  // handler runs so that a refusal has no side effects.
  const VhostSessionEvent* event = EventOf(spec.request);
  if (event && !machine_.CanFire(*event)) return VhostSessionTable::IllegalError(state(), *event);
  if ((acked_protocol_ & spec.needs_protocol) != spec.needs_protocol) {
    return absl::FailedPreconditionError("needs a protocol feature that was not negotiated");
  }
  size_t want_fds = 0;
  if (spec.size == kSizeMemTable) {
    const uint32_t n = msg.payload.memory.nregions;
    if (msg.hdr.size < 8 || n > NPA_VHOST_USER_MAX_REGIONS || msg.hdr.size != 8 + n * sizeof(npa_vhost_memory_region)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "payload size %u does not match %u regions", msg.hdr.size, msg.hdr.size >= 8 ? n : 0));
    }
    want_fds = n;
  } else if (msg.hdr.size != static_cast<uint32_t>(spec.size)) {
    return absl::InvalidArgumentError(absl::StrFormat("payload size %u, expected %d", msg.hdr.size, spec.size));
  }
  if (spec.fds == FdRule::kVringFile) {
    want_fds = (msg.payload.u64 & NPA_VHOST_USER_VRING_NOFD_MASK) ? 0 : 1;
  }
  if (msg.fds.size() != want_fds) {
    return absl::InvalidArgumentError(absl::StrFormat("carries %u fds, expected %u", msg.fds.size(), want_fds));
  }
  if (spec.has_reply) {
    reply->send = true;
    reply->hdr = {msg.hdr.request, NPA_VHOST_USER_VERSION | NPA_VHOST_USER_FLAG_REPLY, 0};
  }
  NPA_RETURN_IF_ERROR((this->*spec.fn)(msg, reply));
  if (event) return machine_.Fire(*event);
  return absl::OkStatus();
}

}  // namespace npa::agent
