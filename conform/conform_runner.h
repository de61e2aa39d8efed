// conform/conform_runner.h — the conformance suite's cases and the
// context they share (npa_conform.cc parses the command line; the cases live
// in conform_cases.cc and conform_traffic.cc). docs/conformance.md describes
// every case.
#ifndef NPA_CONFORM_CONFORM_RUNNER_H_
#define NPA_CONFORM_CONFORM_RUNNER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "hypervisor/vf/vfio.h"
#include "npa/plugin.h"
#include "shell/vf/plugin_loader.h"
#include "conform/conform_services.h"
#include "conform/peer.h"

namespace npa::conform {

struct Options {
  std::string plugin_path;
  std::string bdf;
  std::string peer_netns, peer_if;
  std::string broken_dir;  // --broken-dir: every .so there must be rejected
  bool no_traffic = false;
  bool verbose = false;
  int loops = 5;
  std::vector<std::string> only;  // --case NAME (repeatable)
};

enum class Verdict { kPass, kFail, kSkip };
struct Result {
  Verdict v;
  std::string detail;
};
inline Result Pass(std::string d = "") { return {Verdict::kPass, std::move(d)}; }
inline Result Fail(std::string d) { return {Verdict::kFail, std::move(d)}; }
inline Result Skip(std::string why) { return {Verdict::kSkip, std::move(why)}; }

// Declaration order matters for teardown (reverse): the services go before
// the region they carve up, the region before the device, the plug-in last.
struct Ctx {
  Options opt;
  std::unique_ptr<shell::LoadedPlugin> plugin;
  // The host agent's part, played by the runner through the VFIO host
  // library: the function's container, group and device.
  std::optional<agent::vf::VfioFunction> fn;
  // 24 MiB at iova == vaddr: the DMA arena and the buffer slots.
  agent::vf::DmaRegion region;
  npa_device_info info{};  // what probe gets (VfServices::DeviceInfo)
  std::unique_ptr<ConformServices> svc;
  std::unique_ptr<Peer> peer;
  npa_dev_caps caps{};  // from the first successful probe
  uint32_t run_id = 0;  // marks this run's frames
  uint32_t seq = 0;

  const npa_plugin_ctrl_ops& ctrl() const { return plugin->ctrl(); }
  const npa_plugin_fast_ops& fast() const { return plugin->fast(); }
};

struct Case {
  const char* name;
  Result (*fn)(Ctx&);
};
std::vector<Case> LoadCases();     // conform_cases.cc: ABI, lifecycle, faults
std::vector<Case> TrafficCases();  // conform_traffic.cc: against the peer

// (Re)builds c.svc over c.fn's device and c.region for nb_queues queue
// pairs: the old stack is torn down first (both use the same region).
absl::Status NewServices(Ctx& c, uint16_t nb_queues = 1);

// ---- helpers shared by the case files (conform_cases.cc) ----
// A probed device that is removed (stopped first if started) on scope exit.
struct DevGuard {
  Ctx& c;
  npa_plugin_dev* dev = nullptr;
  bool started = false;
  explicit DevGuard(Ctx& ctx) : c(ctx) {}
  ~DevGuard() { Release(); }
  int Probe();
  void Release();
};
npa_dev_config StdConfig(const Ctx& c);
// Probe + configure(cfg) + start; on error a message naming the step.
std::string BringUp(Ctx& c, DevGuard& g, const npa_dev_config& cfg);
// Leaked buffers / DMA blocks / bad frees since the services were created.
std::string Accounting(Ctx& c);
std::string Errno(int rc);

}  // namespace npa::conform

#endif  // NPA_CONFORM_CONFORM_RUNNER_H_
