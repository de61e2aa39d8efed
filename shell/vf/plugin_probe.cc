// shell/vf/plugin_probe.cc — the loader's trust checks and the child probe
// (shell/vf/plugin_probe.h).
#include "shell/vf/plugin_probe.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace npa::shell {
namespace {

// Who may have written a file or directory: only root, and nobody through
// a group or world write bit.
std::string TrustProblem(const struct stat& st) {
  if (st.st_uid != 0) return absl::StrCat("is owned by uid ", st.st_uid, ", not root");
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return absl::StrFormat("is %s-writable (mode %04o)", (st.st_mode & S_IWOTH) ? "world" : "group",
                           st.st_mode & 07777);
  return "";
}

absl::Status CheckOpenedFile(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return absl::FailedPreconditionError(
        absl::StrCat("plug-in ", path, ": cannot stat: ", strerror(errno)));
  if (!S_ISREG(st.st_mode))
    return absl::FailedPreconditionError(
        absl::StrCat("plug-in ", path, ": not a regular file; point at the plug-in's .so"));
  std::string why = TrustProblem(st);
  if (!why.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "plug-in ", path, ": not loaded: the file ", why,
        "; install plug-ins as root with mode 0755 or 0644 (chown root, chmod go-w)"));
  return absl::OkStatus();
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// what: "its directory" or "the directory of its link"; path names the
// plug-in as the caller gave it.
absl::Status CheckDirectory(const std::string& dir, const std::string& path, const char* what) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0)
    return absl::FailedPreconditionError(absl::StrCat("plug-in ", path, ": cannot stat ", what,
                                                      " ", dir, ": ", strerror(errno)));
  std::string why = TrustProblem(st);
  if (!why.empty())
    return absl::FailedPreconditionError(absl::StrCat(
        "plug-in ", path, ": not loaded: ", what, " ", dir, " ", why,
        "; whoever can write there can replace the plug-in (chown root, chmod go-w)"));
  return absl::OkStatus();
}

// The path of the file fd is open on, every symbolic link resolved: the
// kernel's own name for it, so it is the file fstat saw, not a second
// lookup of the caller's path.
absl::StatusOr<std::string> OpenedPath(int fd, const std::string& path) {
  char link[64], buf[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf || buf[0] != '/')
    return absl::FailedPreconditionError(absl::StrCat(
        "plug-in ", path, ": cannot resolve the file it names (", link, ": ",
        n < 0 ? strerror(errno) : "not an absolute path", "); is /proc mounted?"));
  return std::string(buf, static_cast<size_t>(n));
}

// ---- the child's report (ProbePluginInChild): a tiny length-prefixed
// record, parsed with every length checked.
constexpr uint32_t kProbeMagic = 0x4e504150;  // "NPAP"
constexpr size_t kMaxProbeReport = 64 * 1024;

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
void PutStr(std::string* out, const std::string& v) {
  PutU32(out, static_cast<uint32_t>(v.size()));
  out->append(v);
}

struct Reader {
  const std::string& in;
  size_t at = 0;
  bool U32(uint32_t* v) {
    if (in.size() - at < 4) return false;
    memcpy(v, in.data() + at, 4);
    at += 4;
    return true;
  }
  bool Str(std::string* v, size_t max) {
    uint32_t n;
    if (!U32(&n) || n > max || in.size() - at < n) return false;
    v->assign(in.data() + at, n);
    at += n;
    return true;
  }
};

// Child: load and validate, report, exit without running anything else of
// the parent's (no atexit handlers, no destructors).
[[noreturn]] void ProbeChild(int wfd, const std::string& path, const LoadOptions& opts) {
  // The fault signals go back to their defaults, so a candidate that faults
  // dies of the signal itself and the parent names it. The child inherits
  // the application's handlers (and a sanitizer's, which would turn SIGSEGV
  // into an abort or an exit status).
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) {
    struct sigaction sa{};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
  LoadOptions o = opts;
  o.log = false;
  std::string out;
  PutU32(&out, kProbeMagic);
  absl::StatusOr<std::unique_ptr<LoadedPlugin>> p = LoadPlugin(path, o);
  if (!p.ok()) {
    PutU32(&out, 0);
    PutU32(&out, static_cast<uint32_t>(p.status().code()));
    PutStr(&out, std::string(p.status().message().substr(0, 4096)));
  } else {
    const LoadedPlugin& l = **p;
    PutU32(&out, 1);
    PutStr(&out, l.name());
    PutStr(&out, l.vendor());
    PutStr(&out, l.version());
    PutU32(&out, static_cast<uint32_t>(l.ids().size()));
    out.append(reinterpret_cast<const char*>(l.ids().data()), l.ids().size() * sizeof(npa_pci_id));
  }
  size_t off = 0;
  while (off < out.size()) {
    ssize_t w = write(wfd, out.data() + off, out.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
  _exit(0);
}


}  // namespace

absl::StatusOr<std::string> TrustedPluginPath(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    int err = errno;
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat("plug-in ", path, ": cannot open: ", strerror(err)));
  }
  NPA_RETURN_IF_ERROR(CheckOpenedFile(fd.get(), path));
  // The file that was opened, links resolved: its directory decides who can
  // replace it (a link's directory would say nothing about the target's).
  NPA_ASSIGN_OR_RETURN(std::string real, OpenedPath(fd.get(), path));
  NPA_RETURN_IF_ERROR(CheckDirectory(DirOf(real), path, "its directory"));
  // Whoever can write the directory holding a link can re-point it; the
  // loader dlopens `real`, but discovery lists (and the operator names) the
  // link, so a link in an open directory is refused as well.
  const std::string given_dir = DirOf(path);
  if (given_dir != DirOf(real))
    NPA_RETURN_IF_ERROR(CheckDirectory(given_dir, path, "the directory of its link"));
  return real;
}

absl::Status CheckPluginFileTrust(const std::string& path) {
  return TrustedPluginPath(path).status();
}

absl::StatusOr<PluginTables> ProbePluginInChild(const std::string& path, const LoadOptions& opts) {
  const std::string who = absl::StrCat("plug-in ", path);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    return absl::InternalError(absl::StrCat(who, ": pipe: ", strerror(errno)));
  UniqueFd rfd(p[0]), wfd(p[1]);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat(who, ": fork: ", strerror(errno)));
  if (pid == 0) {
    rfd.reset();
    ProbeChild(wfd.get(), path, opts);
  }
  wfd.reset();
  // Read until EOF, the size cap or the deadline; then reap the child
  // (killed first if it is still there).
  std::string in;
  bool timed_out = false;
  const uint64_t deadline = MonotonicMs() + opts.probe_timeout_ms;
  for (int rounds = 0; rounds < 100000; rounds++) {
    const uint64_t now = MonotonicMs();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    pollfd pfd{rfd.get(), POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(std::min<uint64_t>(deadline - now, 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = read(rfd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child exited (or closed its end)
    in.append(buf, static_cast<size_t>(n));
    if (in.size() > kMaxProbeReport) break;
  }
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  pid_t w;
  do {
    w = waitpid(pid, &status, 0);
  } while (w < 0 && errno == EINTR);
  if (timed_out)
    return absl::DeadlineExceededError(absl::StrCat(
        who, ": skipped: reading its tables took longer than ", opts.probe_timeout_ms,
        " ms (the child reading them was killed); fix or remove the plug-in"));
  if (w == pid && WIFSIGNALED(status))
    return absl::FailedPreconditionError(absl::StrCat(
        who, ": skipped: it crashed with signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
        ") while its tables were read; fix or remove the plug-in"));
  if (w == pid && WIFEXITED(status) && WEXITSTATUS(status) != 0)
    return absl::FailedPreconditionError(absl::StrCat(
        who, ": skipped: it exited with status ", WEXITSTATUS(status),
        " while its tables were read (a plug-in must not exit the process)"));
  Reader r{in};
  uint32_t magic = 0, ok = 0;
  auto garbled = [&]() {
    return absl::FailedPreconditionError(
        absl::StrCat(who, ": skipped: the child reading its tables sent a garbled report"));
  };
  if (!r.U32(&magic) || magic != kProbeMagic || !r.U32(&ok)) return garbled();
  if (!ok) {
    uint32_t code = 0;
    std::string msg;
    if (!r.U32(&code) || !r.Str(&msg, 4096) || code == 0 || code > 16) return garbled();
    return absl::Status(static_cast<absl::StatusCode>(code), msg);
  }
  PluginTables t;
  uint32_t nids = 0;
  if (!r.Str(&t.name, kMaxPluginNameLen) || !r.Str(&t.vendor, 255) || !r.Str(&t.version, 255) ||
      !r.U32(&nids) || nids < 1 || nids > kMaxIdCount ||
      in.size() - r.at != size_t{nids} * sizeof(npa_pci_id))
    return garbled();
  t.ids.resize(nids);
  memcpy(t.ids.data(), in.data() + r.at, size_t{nids} * sizeof(npa_pci_id));
  return t;
}

}  // namespace npa::shell
