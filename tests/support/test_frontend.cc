#include "tests/support/test_frontend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/unix_socket.h"

namespace npa::agent {

namespace {
size_t AlignUp(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }
}  // namespace

absl::StatusOr<std::unique_ptr<TestFrontend>> TestFrontend::Create(UniqueFd sock, Config cfg) {
  std::unique_ptr<TestFrontend> fe(new TestFrontend(std::move(sock), cfg));
  fe->memfd_.reset(memfd_create("npa-test-frontend", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fe->memfd_.valid()) return ErrnoError(errno, "memfd_create");
  if (ftruncate(fe->memfd_.get(), cfg.mem_size) != 0) return ErrnoError(errno, "ftruncate");
  if (cfg.seal_memory && fcntl(fe->memfd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
    return ErrnoError(errno, "seal memfd");
  void* p = mmap(nullptr, cfg.mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, fe->memfd_.get(), 0);
  if (p == MAP_FAILED) return ErrnoError(errno, "mmap");
  fe->mem_ = static_cast<uint8_t*>(p);
  const uint32_t qs = cfg.queue_size;
  size_t off = 0;
  fe->rings_.resize(2u * cfg.queue_pairs);
  for (Ring& r : fe->rings_) {
    off = AlignUp(off, 4096);
    r.desc = reinterpret_cast<npa_vring_desc*>(fe->mem_ + off);
    off += npa_vring_desc_size(qs);
    off = AlignUp(off, 64);
    r.avail = reinterpret_cast<npa_vring_avail*>(fe->mem_ + off);
    off += npa_vring_avail_size(qs);
    off = AlignUp(off, 4096);
    r.used = reinterpret_cast<npa_vring_used*>(fe->mem_ + off);
    off += npa_vring_used_size(qs);
    off = AlignUp(off, 4096);
    r.bufs = fe->mem_ + off;
    off += static_cast<size_t>(qs) * cfg.buf_size;
    for (uint32_t i = 0; i < qs; ++i) r.free.push_back(static_cast<uint16_t>(qs - 1 - i));
    r.chain_len.assign(qs, 0);
    r.kick.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (cfg.use_call_fds) r.call.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }
  if (off > cfg.mem_size) return absl::InvalidArgumentError("mem_size too small for the rings");
  return fe;
}

TestFrontend::~TestFrontend() {
  if (mem_ != nullptr) munmap(mem_, cfg_.mem_size);
}

absl::Status TestFrontend::SendRaw(const void* bytes, size_t len, std::span<const int> fds) {
  iovec iov{const_cast<void*>(bytes), len};
  return SendWithFds(sock_.get(), &iov, 1, fds, 2000);
}

absl::Status TestFrontend::Send(uint32_t request, const void* payload, uint32_t size,
                                std::span<const int> fds, uint32_t flags) {
  npa_vhost_user_hdr h{request, flags, size};
  iovec iov[2] = {{&h, sizeof(h)}, {const_cast<void*>(payload), size}};
  return SendWithFds(sock_.get(), iov, size ? 2 : 1, fds, 2000);
}

absl::StatusOr<TestFrontend::Reply> TestFrontend::Recv(int timeout_ms) {
  Reply r{};
  std::vector<UniqueFd> fds;
  NPA_RETURN_IF_ERROR(RecvExact(sock_.get(), &r.hdr, sizeof(r.hdr), &fds, timeout_ms));
  if (r.hdr.size > sizeof(r.payload)) return absl::DataLossError("reply payload too big");
  if (r.hdr.size) NPA_RETURN_IF_ERROR(RecvExact(sock_.get(), &r.payload, r.hdr.size, &fds, timeout_ms));
  if (!(r.hdr.flags & NPA_VHOST_USER_FLAG_REPLY)) return absl::DataLossError("reply flag missing");
  return r;
}

absl::StatusOr<TestFrontend::Reply> TestFrontend::Call(uint32_t request, const void* payload, uint32_t size) {
  NPA_RETURN_IF_ERROR(Send(request, payload, size));
  NPA_ASSIGN_OR_RETURN(Reply r, Recv());
  if (r.hdr.request != request) {
    return absl::DataLossError(absl::StrCat("reply to ", r.hdr.request, " for request ", request));
  }
  return r;
}

absl::Status TestFrontend::SendAcked(uint32_t request, const void* payload, uint32_t size,
                                     std::span<const int> fds) {
  if (!(protocol_ & (1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
    return Send(request, payload, size, fds);
  }
  NPA_RETURN_IF_ERROR(
      Send(request, payload, size, fds, NPA_VHOST_USER_VERSION | NPA_VHOST_USER_FLAG_NEED_REPLY));
  NPA_ASSIGN_OR_RETURN(Reply r, Recv());
  if (r.hdr.request != request || r.hdr.size != 8) return absl::DataLossError("bad ack");
  if (r.payload.u64 != 0) return absl::InternalError(absl::StrCat("request ", request, " nacked"));
  return absl::OkStatus();
}

absl::Status TestFrontend::Handshake() {
  NPA_RETURN_IF_ERROR(Send(NPA_VHOST_USER_SET_OWNER, nullptr, 0));
  NPA_ASSIGN_OR_RETURN(Reply feat, Call(NPA_VHOST_USER_GET_FEATURES, nullptr, 0));
  uint64_t want = 1ull << NPA_VIRTIO_F_VERSION_1;
  if (cfg_.mergeable) want |= 1ull << NPA_VIRTIO_NET_F_MRG_RXBUF;
  if (cfg_.queue_pairs > 1) want |= 1ull << NPA_VIRTIO_NET_F_MQ;
  if (cfg_.protocol_features) want |= 1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES;
  features_ = want & feat.payload.u64;
  if (features_ & (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES)) {
    NPA_ASSIGN_OR_RETURN(Reply pf, Call(NPA_VHOST_USER_GET_PROTOCOL_FEATURES, nullptr, 0));
    uint64_t p = pf.payload.u64 & ((1ull << NPA_VHOST_USER_PROTOCOL_F_MQ) |
                                   (1ull << NPA_VHOST_USER_PROTOCOL_F_REPLY_ACK));
    NPA_RETURN_IF_ERROR(Send(NPA_VHOST_USER_SET_PROTOCOL_FEATURES, &p, 8));
    protocol_ = p;
  }
  NPA_RETURN_IF_ERROR(SendAcked(NPA_VHOST_USER_SET_FEATURES, &features_, 8));
  npa_vhost_memory m{};
  m.nregions = 1;
  m.regions[0] = {gpa(mem_), cfg_.mem_size, gpa(mem_), 0};
  const int mfd = memfd_.get();
  NPA_RETURN_IF_ERROR(SendAcked(NPA_VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, {&mfd, 1}));
  for (uint32_t i = 0; i < rings_.size(); ++i) {
    Ring& r = rings_[i];
    uint64_t file = i;
    if (r.call.valid()) {
      const int cfd = r.call.get();
      NPA_RETURN_IF_ERROR(SendAcked(NPA_VHOST_USER_SET_VRING_CALL, &file, 8, {&cfd, 1}));
    } else {
      file |= NPA_VHOST_USER_VRING_NOFD_MASK;
      NPA_RETURN_IF_ERROR(SendAcked(NPA_VHOST_USER_SET_VRING_CALL, &file, 8));
    }
    npa_vhost_vring_state st{i, cfg_.queue_size};
    NPA_RETURN_IF_ERROR(SendAcked(NPA_VHOST_USER_SET_VRING_NUM, &st, 8));
    st.num = r.avail_idx;
    NPA_RETURN_IF_ERROR(SendAcked(NPA_VHOST_USER_SET_VRING_BASE, &st, 8));
    npa_vhost_vring_addr a{i, 0, gpa(r.desc), gpa(r.used), gpa(r.avail), 0};
    NPA_RETURN_IF_ERROR(SendAcked(NPA_VHOST_USER_SET_VRING_ADDR, &a, sizeof(a)));
    file = i;
    const int kfd = r.kick.get();
    NPA_RETURN_IF_ERROR(SendAcked(NPA_VHOST_USER_SET_VRING_KICK, &file, 8, {&kfd, 1}));
  }
  if (features_ & (1ull << NPA_VHOST_USER_F_PROTOCOL_FEATURES)) {
    for (uint32_t i = 0; i < rings_.size(); ++i) {
      npa_vhost_vring_state st{i, 1};
      NPA_RETURN_IF_ERROR(SendAcked(NPA_VHOST_USER_SET_VRING_ENABLE, &st, 8));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> TestFrontend::GetVringBase(uint32_t index) {
  npa_vhost_vring_state st{index, 0};
  NPA_ASSIGN_OR_RETURN(Reply r, Call(NPA_VHOST_USER_GET_VRING_BASE, &st, 8));
  if (r.hdr.size != 8 || r.payload.state.index != index) return absl::DataLossError("bad GET_VRING_BASE reply");
  return r.payload.state.num;
}

void TestFrontend::Kick(Ring& r) {
  // Full fence: our avail->idx store before reading the device's flags.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(&r.used->flags, __ATOMIC_RELAXED) & NPA_VRING_USED_F_NO_NOTIFY) return;
  uint64_t one = 1;
  ssize_t n = write(r.kick.get(), &one, 8);
  (void)n;
}

bool TestFrontend::SendFrame(uint16_t qp, const void* data, size_t len, bool split_hdr) {
  Ring& r = rings_[2 * qp + 1];
  const size_t total = 12 + len;
  size_t ndesc = split_hdr ? 1 + (len + cfg_.buf_size - 1) / cfg_.buf_size
                           : (total + cfg_.buf_size - 1) / cfg_.buf_size;
  if (len == 0 || ndesc > r.free.size()) return false;
  npa_virtio_net_hdr_v1 hdr{};
  // Stream: header, then data, cut into descriptors.
  std::string stream(reinterpret_cast<const char*>(&hdr), 12);
  stream.append(static_cast<const char*>(data), len);
  uint16_t head = 0, prev = 0;
  size_t off = 0;
  for (size_t k = 0; k < ndesc; ++k) {
    const uint16_t d = r.free.back();
    r.free.pop_back();
    size_t take = (split_hdr && k == 0) ? 12 : std::min<size_t>(cfg_.buf_size, stream.size() - off);
    uint8_t* buf = r.bufs + static_cast<size_t>(d) * cfg_.buf_size;
    std::memcpy(buf, stream.data() + off, take);
    off += take;
    r.desc[d] = {gpa(buf), static_cast<uint32_t>(take), 0, 0};
    if (k == 0) {
      head = d;
    } else {
      r.desc[prev].flags |= NPA_VRING_DESC_F_NEXT;
      r.desc[prev].next = d;
    }
    prev = d;
  }
  r.chain_len[head] = static_cast<uint16_t>(ndesc);
  r.avail->ring[r.avail_idx & (cfg_.queue_size - 1)] = head;
  // Release: descriptors and ring entry before the index (§2.7.13).
  __atomic_store_n(&r.avail->idx, ++r.avail_idx, __ATOMIC_RELEASE);
  Kick(r);
  return true;
}

uint32_t TestFrontend::ReapTx(uint16_t qp) {
  Ring& r = rings_[2 * qp + 1];
  const uint16_t used = __atomic_load_n(&r.used->idx, __ATOMIC_ACQUIRE);
  uint32_t n = 0;
  for (; r.last_used != used; ++r.last_used, ++n) {
    uint16_t d = static_cast<uint16_t>(r.used->ring[r.last_used & (cfg_.queue_size - 1)].id);
    for (uint16_t k = r.chain_len[d]; k > 0; --k) {
      r.free.push_back(d);
      d = r.desc[d].next;
    }
  }
  return n;
}

void TestFrontend::FillRx(uint16_t qp) {
  Ring& r = rings_[2 * qp];
  if (r.free.empty()) return;
  while (!r.free.empty()) {
    const uint16_t d = r.free.back();
    r.free.pop_back();
    r.desc[d] = {gpa(r.bufs + static_cast<size_t>(d) * cfg_.buf_size), cfg_.buf_size,
                 NPA_VRING_DESC_F_WRITE, 0};
    r.chain_len[d] = 1;
    r.avail->ring[r.avail_idx++ & (cfg_.queue_size - 1)] = d;
  }
  __atomic_store_n(&r.avail->idx, r.avail_idx, __ATOMIC_RELEASE);
  Kick(r);
}

bool TestFrontend::RecvFrame(uint16_t qp, std::string* frame, npa_virtio_net_hdr_v1* hdr_out) {
  Ring& r = rings_[2 * qp];
  const uint16_t used = __atomic_load_n(&r.used->idx, __ATOMIC_ACQUIRE);
  if (used == r.last_used) return false;
  const uint32_t mask = cfg_.queue_size - 1;
  const npa_vring_used_elem first = r.used->ring[r.last_used & mask];
  const uint8_t* b0 = r.bufs + static_cast<size_t>(first.id) * cfg_.buf_size;
  npa_virtio_net_hdr_v1 hdr;
  std::memcpy(&hdr, b0, 12);
  const uint16_t nb = (features_ & (1ull << NPA_VIRTIO_NET_F_MRG_RXBUF)) ? hdr.num_buffers : 1;
  if (nb == 0 || static_cast<uint16_t>(used - r.last_used) < nb) return false;
  frame->clear();
  for (uint16_t k = 0; k < nb; ++k) {
    const npa_vring_used_elem e = r.used->ring[(r.last_used + k) & mask];
    const uint8_t* b = r.bufs + static_cast<size_t>(e.id) * cfg_.buf_size;
    const uint32_t skip = k == 0 ? 12 : 0;
    if (e.len > skip) frame->append(reinterpret_cast<const char*>(b) + skip, e.len - skip);
    r.free.push_back(static_cast<uint16_t>(e.id));
  }
  r.last_used = static_cast<uint16_t>(r.last_used + nb);
  if (hdr_out) *hdr_out = hdr;
  FillRx(qp);
  return true;
}

DevicePump::DevicePump(std::vector<VhostDevice*> devs)
    : devs_(std::move(devs)), status_(devs_.size()), thread_([this] { Run(); }) {}

DevicePump::~DevicePump() {
  stop_.store(true);
  thread_.join();
}

absl::Status DevicePump::status(size_t i) const {
  std::lock_guard<std::mutex> l(mu_);
  return status_[i];
}

void DevicePump::Run() {
  while (!stop_.load()) {
    std::vector<pollfd> pfds;
    std::vector<size_t> idx;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (size_t i = 0; i < devs_.size(); ++i) {
        if (status_[i].ok()) {
          pfds.push_back({devs_[i]->fd(), POLLIN, 0});
          idx.push_back(i);
        }
      }
    }
    if (pfds.empty()) {
      usleep(10000);
      continue;
    }
    if (poll(pfds.data(), pfds.size(), 10) <= 0) continue;
    for (size_t k = 0; k < pfds.size(); ++k) {
      if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      absl::Status s = devs_[idx[k]]->OnReadable();
      if (!s.ok()) {
        std::lock_guard<std::mutex> l(mu_);
        status_[idx[k]] = s;
      }
    }
  }
}

}  // namespace npa::agent
