// common/log.h — one log line per event, naming the operation and the object.
//
//   NPA_LOG(Warn, "vhost-user[%s]: SET_MEM_TABLE rejected: region %u overlaps",
//           name, i);
//
//   // Lines that concern a guest or a VF carry them as fields too, so a
//   // JSON reader can select them without parsing the text:
//   npa::LogScope scope(g.name, g.vf_bdf);     // every line on this thread
//   NPA_LOG(Info, "control: guest %s: RUNNING", g.name.c_str());  // until scope ends
//   NPA_LOG_FOR(Info, npa::LogFields{"g1", "0000:03:00.1"}, "control: ...");  // one line
//
// Text format (default): "<monotonic s> <level> <component>[pid]: message"
// on stderr, the fields left out (the message names the object already).
// JSON format (--log-format json, or NPA_LOG_FORMAT=json): one object per
// line, keys in this order, "guest" and "vf" only when set:
//   {"time":"2026-12-06T03:55:01.123456Z","mono":69052.249397,"level":"info",
//    "component":"npa-agent","pid":4242,"message":"control: guest g1: RUNNING",
//    "guest":"g1","vf":"0000:03:00.1"}
// Strings are escaped for JSON ("\" \\ and control bytes as \uXXXX); bytes
// that are not valid UTF-8 become U+FFFD, so every line parses. A message
// longer than the line buffer is cut (the line stays valid JSON).
// The encoder is this file's own on purpose: a log line is formatted into a
// fixed stack buffer and written with one write(2), no allocation, no
// exception, callable from any thread; a JSON library cannot promise that.
//
// The level threshold comes from NPA_LOG_LEVEL (error|warn|info|debug),
// default info; the format from NPA_LOG_FORMAT (text|json), default text.
// SetLogLevel/SetLogFormat override them (the agent's --log-level and
// --log-format). Thread-safe; one write(2) per line. LogScope is per thread
// (thread_local), nests (the innermost wins, the outer one is restored when
// it ends) and copies its strings (names up to 63 bytes, VF addresses up to
// 31), so the object may go away inside the scope.
#ifndef NPA_COMMON_LOG_H_
#define NPA_COMMON_LOG_H_

#include <string>

namespace npa {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };
enum class LogFormat { kText = 0, kJson = 1 };

// The objects a line concerns; nullptr or "" = none.
struct LogFields {
  const char* guest = nullptr;
  const char* vf = nullptr;
};

bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// With explicit fields (they win over the thread's LogScope).
void LogLineFor(LogLevel level, const LogFields& f, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
// Set the process-wide prefix ("npa-agent", "shell") and threshold.
void LogInit(const char* component);
void SetLogLevel(LogLevel level);
void SetLogFormat(LogFormat format);
LogFormat GetLogFormat();
// "text" or "json"; false (and *out unchanged) for anything else.
bool ParseLogFormat(const std::string& s, LogFormat* out);

// The guest (and VF) every line of this thread concerns while it lives.
class LogScope {
 public:
  explicit LogScope(const std::string& guest, const std::string& vf = "");
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;
  // The VF changed inside the scope (attached, released: "" = none).
  void SetVf(const std::string& vf);
  // The innermost scope's fields on this thread (nullptr when none).
  static LogFields Current();

 private:
  char guest_[64];
  char vf_[32];
  LogScope* outer_;
};

}  // namespace npa

#define NPA_LOG(level, ...)                                  \
  do {                                                       \
    if (::npa::LogEnabled(::npa::LogLevel::k##level))        \
      ::npa::LogLine(::npa::LogLevel::k##level, __VA_ARGS__); \
  } while (0)

#define NPA_LOG_FOR(level, fields, ...)                                 \
  do {                                                                  \
    if (::npa::LogEnabled(::npa::LogLevel::k##level))                   \
      ::npa::LogLineFor(::npa::LogLevel::k##level, fields, __VA_ARGS__); \
  } while (0)

#endif  // NPA_COMMON_LOG_H_
