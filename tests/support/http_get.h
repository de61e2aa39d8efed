// tests/support/http_get.h — one HTTP GET over a plain TCP socket, for the
// tests that scrape the agent's Prometheus endpoint (agent_metrics_test,
// metrics_process_test).
//
//   std::string r = npa::testing::HttpGet(port, "/metrics");  // "" if nobody answers
//
// HTTP/1.1 with "Connection: close", so the whole response (status line,
// headers and body) arrives before EOF. Bounded: 5 s receive timeout per
// read, at most 10000 reads.
#ifndef NPA_TESTS_SUPPORT_HTTP_GET_H_
#define NPA_TESTS_SUPPORT_HTTP_GET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace npa::testing {

inline std::string HttpGet(int port, const std::string& path, const char* addr = "127.0.0.1") {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  std::string out;
  if (inet_pton(AF_INET, addr, &a.sin_addr) == 1 &&
      connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req =
        "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      ssize_t n;
      for (int i = 0; i < 10000 && (n = read(fd, buf, sizeof buf)) > 0; i++) out.append(buf, n);
    }
  }
  close(fd);
  return out;
}

}  // namespace npa::testing

#endif  // NPA_TESTS_SUPPORT_HTTP_GET_H_
