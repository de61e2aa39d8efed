#include "hypervisor/daemon/agent_config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace npa::agent {

namespace {

// Strips a comment: '#' at the start or after whitespace.
absl::string_view StripComment(absl::string_view line) {
  for (size_t i = 0; i < line.size(); i++) {
    if (line[i] == '#' && (i == 0 || absl::ascii_isspace(static_cast<unsigned char>(line[i - 1]))))
      return line.substr(0, i);
  }
  return line;
}

bool ValidKey(absl::string_view k) {
  if (k.empty() || k[0] == '-') return false;
  for (char c : k) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-'))
      return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<ConfigArg>> ParseAgentConfig(const std::string& text,
                                                        const std::string& file) {
  if (text.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": ", text.size(), " bytes; a configuration is at most ",
                     kMaxConfigBytes));
  }
  std::vector<ConfigArg> out;
  size_t lineno = 0;
  for (absl::string_view rest = text; !rest.empty();) {
    const size_t nl = rest.find('\n');
    absl::string_view line = rest.substr(0, nl);
    rest = nl == absl::string_view::npos ? absl::string_view() : rest.substr(nl + 1);
    if (++lineno > kMaxConfigLines) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": more than ", kMaxConfigLines, " lines"));
    }
    const std::string origin = absl::StrCat(file, ":", lineno);
    if (line.find('\0') != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ": a NUL byte"));
    }
    line = absl::StripAsciiWhitespace(StripComment(line));
    if (line.empty()) continue;
    size_t end = 0;
    while (end < line.size() && !absl::ascii_isspace(static_cast<unsigned char>(line[end])) &&
           line[end] != '=')
      end++;
    absl::string_view key = line.substr(0, end);
    absl::string_view value = absl::StripLeadingAsciiWhitespace(line.substr(end));
    if (absl::ConsumePrefix(&value, "=")) {
      value = absl::StripLeadingAsciiWhitespace(value);
      if (value.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(origin, ": '", key, " =' has no value"));
      }
    }
    if (!ValidKey(key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": '", key, "' is not a setting (a flag's name without --, e.g. 'tap npa0')"));
    }
    if (key == "config") {
      return absl::InvalidArgumentError(absl::StrCat(origin, ": 'config' cannot nest"));
    }
    ConfigArg a;
    a.argv.push_back(absl::StrCat("--", key));
    if (!value.empty()) a.argv.emplace_back(value.data(), value.size());
    a.origin = origin;
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<std::vector<ConfigArg>> ReadAgentConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int e = errno;
    return absl::Status(e == ENOENT ? absl::StatusCode::kNotFound
                                    : absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("cannot read configuration ", path, ": ", std::strerror(e)));
  }
  std::string text;
  text.resize(kMaxConfigBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return ParseAgentConfig(text, path);
}

}  // namespace npa::agent
