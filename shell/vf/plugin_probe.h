// shell/vf/plugin_probe.h — what the plug-in loader checks before a
// candidate's code runs (issue 9, part 3; docs/security.md): who may have
// written the file, and reading its tables in a child process.
//
//   NPA_ASSIGN_OR_RETURN(std::string real, TrustedPluginPath(path));
//   NPA_ASSIGN_OR_RETURN(PluginTables t, ProbePluginInChild(path, opts));
//   // t.name, t.ids: the candidate's tables; nothing of it ran in this process
//
// Trust: a plug-in is the file a path resolves to. Only a regular file owned
// by root and neither group- nor world-writable is accepted, and only in a
// directory with the same properties: anyone who can write that directory
// can replace the file. A symbolic link is followed: the *target's* file and
// directory are what is checked (the link's own directory is checked too,
// since whoever can write it can re-point the link), and the loader dlopens
// the resolved path, so the link cannot be re-pointed between check and
// load. Every refusal is FAILED_PRECONDITION naming the file or directory,
// what is wrong with it and how to fix it; a missing file keeps its errno
// (NOT_FOUND).
//
// Probe: ProbePluginInChild forks; the child restores the fault signals'
// defaults, runs LoadPlugin (shell/vf/plugin_loader.h) without logging,
// writes a small length-prefixed report to a pipe and _exits. The parent
// reads it under opts.probe_timeout_ms, SIGKILLs a child that is still there
// at the deadline, always reaps it, and parses the report with every length
// checked: a child that crashes, hangs, exits or sends garbage costs only
// that candidate, named with the signal, status or deadline.
//
// Threads: any thread. ProbePluginInChild forks, so it is meant for discovery
// at configure time. The child logs nothing (another thread may hold the
// log's lock at the fork) and leaves by _exit (no atexit handlers).
#ifndef NPA_SHELL_VF_PLUGIN_PROBE_H_
#define NPA_SHELL_VF_PLUGIN_PROBE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shell/vf/plugin_loader.h"

namespace npa::shell {

// The checks above for path, with symbolic links resolved: the resolved
// path of the file that was checked (what to dlopen), or the refusal.
absl::StatusOr<std::string> TrustedPluginPath(const std::string& path);

// OK or TrustedPluginPath's refusal.
absl::Status CheckPluginFileTrust(const std::string& path);

// Load and validate path in a forked child and return its tables (see
// above). Errors: DEADLINE_EXCEEDED for a child killed at the deadline,
// FAILED_PRECONDITION for a crash, a non-zero exit or a garbled report,
// and otherwise the child's own LoadPlugin error, code and message.
absl::StatusOr<PluginTables> ProbePluginInChild(const std::string& path, const LoadOptions& opts);

}  // namespace npa::shell

#endif  // NPA_SHELL_VF_PLUGIN_PROBE_H_
