// common/log.h — one log line per event, naming the operation and the object.
//
//   NPA_LOG(Warn, "vhost-user[%s]: SET_MEM_TABLE rejected: region %u overlaps",
//           name, i);
//
// Lines go to stderr as "<monotonic s> <level> <component>: message". The
// level threshold comes from NPA_LOG_LEVEL (error|warn|info|debug), default
// info. Thread-safe; one write(2) per line.
#ifndef NPA_COMMON_LOG_H_
#define NPA_COMMON_LOG_H_

namespace npa {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// Set the process-wide prefix ("npa-agent", "shell") and threshold.
void LogInit(const char* component);
void SetLogLevel(LogLevel level);

}  // namespace npa

#define NPA_LOG(level, ...)                                  \
  do {                                                       \
    if (::npa::LogEnabled(::npa::LogLevel::k##level))        \
      ::npa::LogLine(::npa::LogLevel::k##level, __VA_ARGS__); \
  } while (0)

#endif  // NPA_COMMON_LOG_H_
