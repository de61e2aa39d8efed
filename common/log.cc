#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace npa {
namespace {

std::atomic<int> g_level{-1};
char g_component[32] = "npa";

int LevelFromEnv() {
  const char* e = std::getenv("NPA_LOG_LEVEL");
  if (e == nullptr) return static_cast<int>(LogLevel::kInfo);
  if (!strcmp(e, "error")) return 0;
  if (!strcmp(e, "warn")) return 1;
  if (!strcmp(e, "debug")) return 3;
  return 2;
}

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kError: return "ERROR";
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kDebug: return "DEBUG";
  }
  return "?";
}

}  // namespace

bool LogEnabled(LogLevel level) {
  int cur = g_level.load(std::memory_order_relaxed);
  if (cur < 0) {
    cur = LevelFromEnv();
    g_level.store(cur, std::memory_order_relaxed);
  }
  return static_cast<int>(level) <= cur;
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

void LogInit(const char* component) {
  snprintf(g_component, sizeof g_component, "%s", component);
}

void LogLine(LogLevel level, const char* fmt, ...) {
  char line[1024];
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int n = snprintf(line, sizeof line, "%ld.%06ld %s %s[%d]: ", static_cast<long>(ts.tv_sec),
                   ts.tv_nsec / 1000, LevelName(level), g_component, getpid());
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
  va_end(ap);
  size_t len = n + (m < 0 ? 0 : (m >= static_cast<int>(sizeof line - n - 1) ? sizeof line - n - 2 : m));
  line[len++] = '\n';
  // One write per line so concurrent threads never interleave inside a line.
  ssize_t w = ::write(STDERR_FILENO, line, len);
  (void)w;
}

}  // namespace npa
