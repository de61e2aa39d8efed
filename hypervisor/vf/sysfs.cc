// hypervisor/vf/sysfs.cc
#include "hypervisor/vf/sysfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace npa::agent::vf {
namespace {
constexpr size_t kMaxAttr = 64 * 1024;
}  // namespace

SysfsRoot::SysfsRoot(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

std::string SysfsRoot::Path(absl::string_view rel) const { return absl::StrCat(root_, "/", rel); }

absl::Status SysfsRoot::CheckRelative(absl::string_view rel) {
  if (rel.empty() || rel.front() == '/')
    return absl::InvalidArgumentError(absl::StrCat("sysfs path '", rel, "' must be relative"));
  for (absl::string_view c : absl::StrSplit(rel, '/')) {
    if (c.empty() || c == "." || c == "..")
      return absl::InvalidArgumentError(
          absl::StrCat("sysfs path '", rel, "' has an empty, '.' or '..' component"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SysfsRoot::Read(absl::string_view rel) const {
  NPA_RETURN_IF_ERROR(CheckRelative(rel));
  const std::string path = Path(rel);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open ", path);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read ", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxAttr)
      return absl::OutOfRangeError(absl::StrCat(path, " is larger than ", kMaxAttr, " bytes"));
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

absl::Status SysfsRoot::Write(absl::string_view rel, absl::string_view value) {
  NPA_RETURN_IF_ERROR(CheckRelative(rel));
  const std::string path = Path(rel);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return ErrnoError(errno, "open ", path, " for writing");
  ssize_t n;
  do {
    n = ::write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  // The kernel's answer to a sysfs store (EBUSY, EINVAL, ENODEV...) arrives here.
  if (n < 0) return ErrnoError(errno, "write '", value, "' to ", path);
  if (static_cast<size_t>(n) != value.size())
    return absl::DataLossError(absl::StrCat("short write of '", value, "' to ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SysfsRoot::List(absl::string_view rel) const {
  NPA_RETURN_IF_ERROR(CheckRelative(rel));
  const std::string path = Path(rel);
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return ErrnoError(errno, "opendir ", path);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    absl::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return ErrnoError(err, "readdir ", path);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::string> SysfsRoot::ReadLink(absl::string_view rel) const {
  NPA_RETURN_IF_ERROR(CheckRelative(rel));
  const std::string path = Path(rel);
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return ErrnoError(errno, "readlink ", path);
  return std::string(buf, static_cast<size_t>(n));
}

bool SysfsRoot::Exists(absl::string_view rel) const {
  if (!CheckRelative(rel).ok()) return false;
  struct stat st;
  return ::lstat(Path(rel).c_str(), &st) == 0;
}

std::string Basename(absl::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace npa::agent::vf
