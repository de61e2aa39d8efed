// libFuzzer target: the control protocol decoder (common/control_codec.h).
// The input is decoded directly as one frame body (DecodeEnvelope) and also
// streamed through a socketpair into a ControlChannel (length-prefix framing,
// Pop), the way the agent and the shell receive it.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "common/control_codec.h"
#include "common/log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool init = [] {
    npa::SetLogLevel(npa::LogLevel::kError);
    return true;
  }();
  (void)init;
  (void)npa::DecodeEnvelope(data, size);

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) return 0;
  npa::UniqueFd writer(sv[1]);
  npa::ControlChannel ch{npa::UniqueFd(sv[0])};
  size_t off = 0;
  // Bounded: every round either writes, reads, or stops.
  for (int round = 0; round < 64; ++round) {
    if (off < size) {
      ssize_t n = write(writer.get(), data + off, size - off);
      if (n > 0) off += static_cast<size_t>(n);
    } else if (writer.valid()) {
      writer.reset();  // EOF after the last byte
    }
    if (!ch.OnReadable().ok()) break;
    bool bad = false;
    for (int k = 0; k < 64; ++k) {
      auto f = ch.Pop();
      if (!f.ok()) {
        bad = true;
        break;
      }
      if (!f->has_value()) break;
    }
    if (bad) break;
  }
  return 0;
}
