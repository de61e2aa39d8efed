#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace npa {
namespace {

std::atomic<int> g_level{-1};
std::atomic<int> g_format{-1};
char g_component[32] = "npa";
thread_local LogScope* t_scope = nullptr;

int LevelFromEnv() {
  const char* e = std::getenv("NPA_LOG_LEVEL");
  if (e == nullptr) return static_cast<int>(LogLevel::kInfo);
  if (!strcmp(e, "error")) return 0;
  if (!strcmp(e, "warn")) return 1;
  if (!strcmp(e, "debug")) return 3;
  return 2;
}

int FormatFromEnv() {
  const char* e = std::getenv("NPA_LOG_FORMAT");
  return e && !strcmp(e, "json") ? static_cast<int>(LogFormat::kJson)
                                 : static_cast<int>(LogFormat::kText);
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

const char* LevelJsonName(LogLevel l) {
  switch (l) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
  }
  return "?";
}

// A bounded writer into the line buffer: never past `cap`, so a line that
// does not fit is cut, not overrun.
struct Out {
  char* buf;
  size_t cap;
  size_t len = 0;
  void Raw(const char* s, size_t n) {
    if (n > cap - len) n = cap - len;
    memcpy(buf + len, s, n);
    len += n;
  }
  void Raw(const char* s) { Raw(s, strlen(s)); }
  bool Room(size_t n) const { return cap - len >= n; }
};

// Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one.
size_t Utf8Len(const unsigned char* s, size_t n) {
  const unsigned char c = s[0];
  size_t want;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) want = 2, cp = c & 0x1f;
  else if ((c & 0xf0) == 0xe0) want = 3, cp = c & 0x0f;
  else if ((c & 0xf8) == 0xf0) want = 4, cp = c & 0x07;
  else return 0;
  if (n < want) return 0;
  for (size_t i = 1; i < want; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[want] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return want;
}

// A JSON string body (no quotes); each piece is written whole or not at all,
// so a cut never leaves half an escape or half a UTF-8 sequence.
void JsonEscape(Out& o, const char* s, size_t reserve) {
  const auto* p = reinterpret_cast<const unsigned char*>(s);
  size_t n = strlen(s);
  while (n > 0) {
    char esc[8];
    const char* piece;
    size_t plen, used;
    const unsigned char c = *p;
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = static_cast<char>(c);
      piece = esc, plen = 2, used = 1;
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      piece = esc, plen = 6, used = 1;
    } else if (size_t u = Utf8Len(p, n); u > 0) {
      piece = reinterpret_cast<const char*>(p), plen = u, used = u;
    } else {
      piece = "\\ufffd", plen = 6, used = 1;
    }
    if (!o.Room(plen + reserve)) return;
    o.Raw(piece, plen);
    p += used;
    n -= used;
  }
}

void JsonField(Out& o, const char* key, const char* value, size_t reserve) {
  o.Raw(",\"");
  o.Raw(key);
  o.Raw("\":\"");
  JsonEscape(o, value, reserve);
  o.Raw("\"");
}

void Emit(LogLevel level, const LogFields* explicit_fields, const char* fmt, va_list ap) {
  char msg[1024];
  const int m = vsnprintf(msg, sizeof msg, fmt, ap);
  if (m < 0) msg[0] = '\0';
  timespec mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  char line[2048];
  size_t len;
  if (GetLogFormat() == LogFormat::kText) {
    len = snprintf(line, sizeof line - 1, "%ld.%06ld %s %s[%d]: %s", static_cast<long>(mono.tv_sec),
                   mono.tv_nsec / 1000, LevelName(level), g_component, getpid(), msg);
    if (len > sizeof line - 2) len = sizeof line - 2;
  } else {
    LogFields f = explicit_fields ? *explicit_fields : LogScope::Current();
    timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    struct tm tm {};
    gmtime_r(&wall.tv_sec, &tm);
    char when[40];
    const size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof when - w, ".%06ldZ", wall.tv_nsec / 1000);
    // Room kept for what must follow the message: the fields (each at most
    // 6 bytes per input byte of 63 + 31), the closing braces, the newline.
    Out o{line, sizeof line - 1};
    char head[200];
    snprintf(head, sizeof head, "{\"time\":\"%s\",\"mono\":%ld.%06ld,\"level\":\"%s\",\"component\":\"",
             when, static_cast<long>(mono.tv_sec), mono.tv_nsec / 1000, LevelJsonName(level));
    o.Raw(head);
    JsonEscape(o, g_component, 0);
    char pid[32];
    snprintf(pid, sizeof pid, "\",\"pid\":%d", getpid());
    o.Raw(pid);
    JsonField(o, "message", msg, 700);
    if (f.guest && *f.guest) JsonField(o, "guest", f.guest, 200);
    if (f.vf && *f.vf) JsonField(o, "vf", f.vf, 2);
    o.Raw("}");
    len = o.len;
  }
  line[len++] = '\n';
  // One write per line so concurrent threads never interleave inside a line.
  ssize_t wr = ::write(STDERR_FILENO, line, len);
  (void)wr;
}

void CopyBounded(char* dst, size_t cap, const std::string& s) {
  const size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
  memcpy(dst, s.data(), n);
  dst[n] = '\0';
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

void SetLogFormat(LogFormat format) { g_format.store(static_cast<int>(format)); }

LogFormat GetLogFormat() {
  int cur = g_format.load(std::memory_order_relaxed);
  if (cur < 0) {
    cur = FormatFromEnv();
    g_format.store(cur, std::memory_order_relaxed);
  }
  return static_cast<LogFormat>(cur);
}

bool ParseLogFormat(const std::string& s, LogFormat* out) {
  if (s == "text") *out = LogFormat::kText;
  else if (s == "json") *out = LogFormat::kJson;
  else return false;
  return true;
}

void LogInit(const char* component) {
  snprintf(g_component, sizeof g_component, "%s", component);
}

void LogLine(LogLevel level, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  Emit(level, nullptr, fmt, ap);
  va_end(ap);
}

void LogLineFor(LogLevel level, const LogFields& f, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  Emit(level, &f, fmt, ap);
  va_end(ap);
}

LogScope::LogScope(const std::string& guest, const std::string& vf) : outer_(t_scope) {
  CopyBounded(guest_, sizeof guest_, guest);
  CopyBounded(vf_, sizeof vf_, vf);
  t_scope = this;
}

LogScope::~LogScope() { t_scope = outer_; }

void LogScope::SetVf(const std::string& vf) { CopyBounded(vf_, sizeof vf_, vf); }

LogFields LogScope::Current() {
  if (!t_scope) return {};
  return LogFields{t_scope->guest_, t_scope->vf_};
}

}  // namespace npa
