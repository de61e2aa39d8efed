// VhostDevice: vhost-user framing on the connection + a VhostSession.
#include "hypervisor/vhost/vhost_device.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/unix_socket.h"
#include "hypervisor/vhost/vhost_session.h"

namespace npa::agent {

namespace {
// Messages handled per OnReadable before yielding to other guests; the
// socket stays readable, so the poll loop comes back.
constexpr int kMaxMessagesPerWakeup = 64;
}  // namespace

class VhostDevice::Impl {
 public:
  Impl(UniqueFd conn, Options opts) : conn_(std::move(conn)), session_(std::move(opts)) {}

  absl::Status OnReadable();
  UniqueFd conn_;
  VhostSession session_;

 private:
  absl::Status SendReply(const VhostReply& r);
  // The message being assembled: header, then payload; fds from any part.
  VhostMessage cur_;
  size_t have_ = 0;  // bytes of header+payload received
};

absl::Status VhostDevice::Impl::SendReply(const VhostReply& r) {
  iovec iov[2] = {{const_cast<npa_vhost_user_hdr*>(&r.hdr), sizeof(r.hdr)},
                  {const_cast<npa_vhost_user_payload*>(&r.payload), r.hdr.size}};
  absl::Status s = SendWithFds(conn_.get(), iov, r.hdr.size ? 2 : 1, {}, 1000);
  if (!s.ok()) {
    NPA_LOG(Warn, "vhost-user[%s]: reply to request %u failed: %s", session_.name().c_str(),
            r.hdr.request, std::string(s.message()).c_str());
  }
  return s;
}

absl::Status VhostDevice::Impl::OnReadable() {
  const std::string& name = session_.name();
  for (int msgs = 0; msgs < kMaxMessagesPerWakeup;) {
    const size_t hdr_len = sizeof(npa_vhost_user_hdr);
    const size_t want = have_ < hdr_len ? hdr_len - have_ : hdr_len + cur_.hdr.size - have_;
    uint8_t* dst = have_ < hdr_len ? reinterpret_cast<uint8_t*>(&cur_.hdr) + have_
                                   : reinterpret_cast<uint8_t*>(&cur_.payload) + (have_ - hdr_len);
    if (want > 0) {
      absl::StatusOr<size_t> got = RecvWithFds(conn_.get(), dst, want, &cur_.fds);
      if (!got.ok()) {
        if (absl::IsUnavailable(got.status())) return absl::OkStatus();  // EAGAIN: wait for more
        NPA_LOG(Warn, "vhost-user[%s]: receive failed: %s", name.c_str(),
                std::string(got.status().message()).c_str());
        return absl::Status(got.status().code(), absl::StrCat("guest '", name, "': ", got.status().message()));
      }
      if (*got == 0) {
        NPA_LOG(Info, "vhost-user[%s]: front end closed the connection", name.c_str());
        return absl::AbortedError(absl::StrCat("guest '", name, "' closed the vhost-user connection"));
      }
      if (cur_.fds.size() > NPA_VHOST_USER_MAX_FDS) {
        NPA_LOG(Warn, "vhost-user[%s]: %zu fds on one message (max %d)", name.c_str(), cur_.fds.size(),
                NPA_VHOST_USER_MAX_FDS);
        return absl::InvalidArgumentError(absl::StrCat("guest '", name, "': ", cur_.fds.size(), " fds on one message"));
      }
      have_ += *got;
      if (have_ == hdr_len) {
        // Check before the size drives any read.
        NPA_RETURN_IF_ERROR(session_.CheckHeader(cur_.hdr));
      }
      if (have_ < hdr_len || have_ < hdr_len + cur_.hdr.size) continue;
    }
    VhostMessage msg = std::move(cur_);
    cur_ = VhostMessage{};
    have_ = 0;
    ++msgs;
    VhostReply reply;
    absl::Status st = session_.Handle(std::move(msg), &reply);
    if (reply.send) {
      absl::Status s = SendReply(reply);
      if (st.ok() && !s.ok()) st = s;
    }
    NPA_RETURN_IF_ERROR(st);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<VhostDevice>> VhostDevice::Create(UniqueFd conn, Options opts) {
  if (!conn.valid()) return absl::InvalidArgumentError("vhost-user connection fd is invalid");
  if (opts.max_queue_pairs == 0 || opts.max_queue_pairs > 128) {
    return absl::InvalidArgumentError(absl::StrCat("max_queue_pairs ", opts.max_queue_pairs, " outside 1..128"));
  }
  if (opts.features & ~kSupportedFeatures) {
    return absl::InvalidArgumentError("Options::features has bits this back end does not implement");
  }
  if (!(opts.features & (1ull << NPA_VIRTIO_F_VERSION_1))) {
    return absl::InvalidArgumentError("Options::features must include VIRTIO_F_VERSION_1");
  }
  if (opts.mtu < 68 || opts.mtu > 65535) return absl::InvalidArgumentError("mtu outside 68..65535");
  const int fl = fcntl(conn.get(), F_GETFL);
  if (fl < 0 || fcntl(conn.get(), F_SETFL, fl | O_NONBLOCK) < 0 ||
      fcntl(conn.get(), F_SETFD, FD_CLOEXEC) < 0) {
    return ErrnoError(errno, "fcntl on vhost-user connection of ", opts.name);
  }
  return std::unique_ptr<VhostDevice>(
      new VhostDevice(std::make_unique<Impl>(std::move(conn), std::move(opts))));
}

VhostDevice::VhostDevice(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VhostDevice::~VhostDevice() = default;

int VhostDevice::fd() const { return impl_->conn_.get(); }
absl::Status VhostDevice::OnReadable() { return impl_->OnReadable(); }
const std::string& VhostDevice::name() const { return impl_->session_.name(); }
uint16_t VhostDevice::num_queue_pairs() const { return impl_->session_.num_queue_pairs(); }
bool VhostDevice::QueueReady(uint16_t qp) const { return impl_->session_.QueueReady(qp); }
uint16_t VhostDevice::PeekTx(uint16_t qp, GuestFrame* out, uint16_t n, uint32_t* desc_budget) {
  return impl_->session_.PeekTx(qp, out, n, desc_budget);
}
void VhostDevice::ReleaseTx(uint16_t qp, uint16_t n) { impl_->session_.ReleaseTx(qp, n); }
uint16_t VhostDevice::EnqueueRx(uint16_t qp, const PacketRef* pkts, uint16_t n, RxFull full) {
  return impl_->session_.EnqueueRx(qp, pkts, n, full);
}
bool VhostDevice::broken() const { return impl_->session_.broken(); }
std::string VhostDevice::broken_reason() const { return impl_->session_.broken_reason(); }
QueueCounters VhostDevice::counters(uint16_t qp) const { return impl_->session_.counters(qp); }
uint64_t VhostDevice::generation() const { return impl_->session_.generation(); }
std::vector<UniqueFd> VhostDevice::NotifyFds() { return impl_->session_.NotifyFds(); }
void VhostDevice::SetIdleNotify(bool want_kicks) { impl_->session_.SetIdleNotify(want_kicks); }
uint64_t VhostDevice::features() const { return impl_->session_.acked_features(); }
uint32_t VhostDevice::mtu() const { return impl_->session_.mtu(); }

}  // namespace npa::agent
