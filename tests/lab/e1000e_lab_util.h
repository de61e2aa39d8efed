// tests/lab/e1000e_lab_util.h — what the steps of npa-lab-e1000e share
// (e1000e_lab.cc; the two-queue RSS step in e1000e_lab_rss.cc): the
// "E1000E_LAB: ok|FAIL" report, the packet-buffer pool over the DMA-mapped
// region, and a child process in the peer's network namespace.
#ifndef NPA_TESTS_LAB_E1000E_LAB_UTIL_H_
#define NPA_TESTS_LAB_E1000E_LAB_UTIL_H_

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "npa/buf.h"
#include "shell/vf/plugin_device.h"
#include "shell/vf/vf_services.h"

namespace e1000e_lab {

// The failures Say counted; the program exits 1 if any.
inline int g_failures = 0;
inline void Say(bool ok, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
inline void Say(bool ok, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::printf("E1000E_LAB: %s ", ok ? "ok  " : "FAIL");
  std::vprintf(fmt, ap);
  std::printf("\n");
  std::fflush(stdout);
  va_end(ap);
  if (!ok) g_failures++;
}

// ------------------------------------------------------ packet buffers

// A LIFO of npa_buf slots carved from the DMA-mapped memfd region.
class SlotPool : public npa::shell::BufferProvider {
 public:
  SlotPool(uint8_t* base, uint32_t count) : count_(count) {
    for (uint32_t i = 0; i < count; i++) {
      auto* b = reinterpret_cast<npa_buf*>(base + uint64_t{i} * NPA_BUF_SLOT_SIZE);
      std::memset(b, 0, sizeof(*b));
      b->iova = reinterpret_cast<uint64_t>(b);  // iova == vaddr
      b->slot = i;
      free_.push_back(b);
    }
  }
  uint16_t Alloc(uint16_t, npa_buf** bufs, uint16_t n) override {
    uint16_t k = 0;
    for (; k < n && !free_.empty(); k++) {
      npa_buf* b = free_.back();
      free_.pop_back();
      b->next = nullptr;
      b->pkt_len = b->data_len = 0;
      b->data_off = NPA_BUF_DATA_OFF;
      b->buf_len = NPA_BUF_SLOT_SIZE;
      b->nb_segs = 1;
      b->ol_flags = 0;
      bufs[k] = b;
    }
    return k;
  }
  void Free(uint16_t, npa_buf** bufs, uint16_t n) override {
    for (uint16_t i = 0; i < n; i++)
      for (npa_buf* s = bufs[i]; s != nullptr;) {
        npa_buf* next = s->next;
        free_.push_back(s);
        s = next;
      }
  }
  uint32_t available() const { return static_cast<uint32_t>(free_.size()); }
  uint32_t count() const { return count_; }

 private:
  uint32_t count_;
  std::vector<npa_buf*> free_;
};

// --------------------------------------------------------- peer process

// Runs fn in a child inside network namespace ns. The child reports on
// result_fd and waits for a byte on go_fd when asked to.
struct Child {
  pid_t pid = -1;
  int to_child = -1, from_child = -1;
};

template <typename Fn>
Child SpawnInNetns(const std::string& ns, Fn fn) {
  int down[2], up[2];
  if (pipe(down) != 0 || pipe(up) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(down[1]);
    close(up[0]);
    int nsfd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) {
      std::fprintf(stderr, "peer: cannot enter netns %s: %s\n", ns.c_str(), strerror(errno));
      _exit(90);
    }
    _exit(fn(down[0], up[1]));
  }
  close(down[0]);
  close(up[1]);
  return {pid, down[1], up[0]};
}

inline int WaitChild(Child& c, int timeout_ms) {
  int status = 0;
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    pid_t r = waitpid(c.pid, &status, WNOHANG);
    if (r == c.pid) {
      close(c.to_child);
      close(c.from_child);
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    }
    usleep(10000);
  }
  kill(c.pid, SIGKILL);
  waitpid(c.pid, &status, 0);
  close(c.to_child);
  close(c.from_child);
  return 124;
}

inline bool ReadByte(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  char c;
  return poll(&p, 1, timeout_ms) == 1 && read(fd, &c, 1) == 1;
}

// The two-queue step (e1000e_lab_rss.cc): dev probed, stopped; the peer
// in network namespace ns reaches the device at dut_ip (network order).
bool TwoQueueRss(npa::shell::PluginDevice& dev, SlotPool& pool, const std::string& ns,
                 uint32_t dut_ip);

}  // namespace e1000e_lab

#endif  // NPA_TESTS_LAB_E1000E_LAB_UTIL_H_
