// conform/abi_checks.h — npa-conform's device-free checks of a plug-in's
// ABI surface (`npa-conform --abi-only PLUGIN.so`, docs/conformance.md): the
// checks the shell's loader makes, each reported on its own line, plus the
// ones a loader never sees (does the entry refuse another ABI major; does an
// ID-table entry claim every PCI function).
//
//   std::vector<AbiCheck> checks = RunAbiChecks("./libmy_nic.so");
//   for (const AbiCheck& k : checks) printf("%s %s\n", k.name.c_str(), k.pass ? "PASS" : "FAIL");
//   bool ok = AbiChecksPassed(checks);
//
// Order and gates. file_trust (the loader's ownership rule, shell/vf/
// plugin_probe.h), then child_load (the whole loader run in a forked child,
// so a plug-in that crashes or hangs while its tables are read costs a FAIL
// line, not the runner), then loader_accepts (LoadPlugin in this process).
// Those three are gates: the first that fails ends the list, because the
// later checks run the plug-in's code in this process. After them come
// abi_version, entry_points, id_table and refuses_other_major, which all run.
//
// Errors are results: nothing here returns a Status; every failure is a
// FAIL check whose detail names what is wrong (the loader's own message
// where the loader refused). Threads: any one thread (child_load forks).
// Lifetime: the plug-in is dlopened for the duration of RunAbiChecks only.
#ifndef NPA_CONFORM_ABI_CHECKS_H_
#define NPA_CONFORM_ABI_CHECKS_H_

#include <string>
#include <vector>

#include "shell/vf/plugin_loader.h"

namespace npa::conform {

struct AbiCheck {
  std::string name;    // stable: scripts and --json consumers match on it
  bool pass = false;
  std::string detail;  // what was seen (PASS) or what is wrong (FAIL)
};

// Runs the checks above on the plug-in at path. opts are the loader's
// (tests lower probe_timeout_ms). A path without '/' is relative to the
// working directory, as for the loader.
std::vector<AbiCheck> RunAbiChecks(const std::string& path, const shell::LoadOptions& opts = {});

// True when there is at least one check and none failed.
bool AbiChecksPassed(const std::vector<AbiCheck>& checks);

// The --json form: {"plugin": path, "passed": N, "failed": M,
// "checks": [{"name", "result": "pass"|"fail", "detail"}...]} on one line.
std::string AbiChecksJson(const std::string& path, const std::vector<AbiCheck>& checks);

}  // namespace npa::conform

#endif  // NPA_CONFORM_ABI_CHECKS_H_
