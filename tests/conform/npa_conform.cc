// npa-conform — the plug-in conformance runner (docs/conformance.md).
//
//   npa-conform [options] <plugin.so> <pci-address>
//     --peer-netns NAME --peer-if IF   traffic peer: IF inside netns NAME
//     --no-traffic                     skip the peer cases (not a full pass)
//     --broken-dir DIR                 every .so in DIR must be rejected at load
//     --loops N                        attach/detach and start/stop loops (5)
//     --case NAME                      run only NAME (repeatable)
//     -v                               plug-in log lines to stderr
//
// The device must already be bound to vfio-pci, alone in its IOMMU group.
// The runner plays the host agent with the VFIO host library
// (hypervisor/vf/vfio.h) and hands the plug-in the shell's own services table
// (shell/vf/vf_services.h) under the fault decorator (fault_services.h).
// Output: "CONFORM <case> PASS|FAIL|SKIP(<why>) <detail>" per case, then
// "N passed, M failed, K skipped"; "npa-conform: running <case>" on stderr
// before each case. Exit 0 only if nothing failed; 2 on usage or setup
// errors.
#include <sys/random.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/status_macros.h"
#include "tests/conform/conform_runner.h"

namespace npa::conform {

absl::Status NewServices(Ctx& c) {
  c.svc.reset();
  NPA_ASSIGN_OR_RETURN(c.svc, ConformServices::Create(shell::MakeFdDeviceIo(c.fn->device().fd()),
                                                      c.opt.bdf, c.region.data(), c.region.size(),
                                                      /*dma_bytes=*/4u << 20));
  c.svc->verbose = c.opt.verbose;
  return absl::OkStatus();
}

namespace {

int SetupError(const absl::Status& s) {
  fprintf(stderr, "npa-conform: %s\n", std::string(s.message()).c_str());
  return 2;
}

int Usage() {
  fprintf(stderr,
          "usage: npa-conform [--peer-netns NAME --peer-if IF | --no-traffic] "
          "[--broken-dir DIR] [--loops N] [--case NAME]... [-v] <plugin.so> <pci-address>\n");
  return 2;
}

void Print(const char* name, const Result& r) {
  switch (r.v) {
    case Verdict::kPass: printf("CONFORM %s PASS %s\n", name, r.detail.c_str()); break;
    case Verdict::kFail: printf("CONFORM %s FAIL %s\n", name, r.detail.c_str()); break;
    case Verdict::kSkip: printf("CONFORM %s SKIP(%s)\n", name, r.detail.c_str()); break;
  }
  fflush(stdout);
}

int Main(int argc, char** argv) {
  Ctx c;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--peer-netns") { if (!val(&c.opt.peer_netns)) return Usage(); }
    else if (a == "--peer-if") { if (!val(&c.opt.peer_if)) return Usage(); }
    else if (a == "--broken-dir") { if (!val(&c.opt.broken_dir)) return Usage(); }
    else if (a == "--no-traffic") c.opt.no_traffic = true;
    else if (a == "-v") c.opt.verbose = true;
    else if (a == "--loops") {
      if (!val(&v)) return Usage();
      c.opt.loops = atoi(v.c_str());
      if (c.opt.loops < 1 || c.opt.loops > 1000) return Usage();
    } else if (a == "--case") {
      if (!val(&v)) return Usage();
      c.opt.only.push_back(v);
    } else if (!a.empty() && a[0] == '-') return Usage();
    else pos.push_back(a);
  }
  if (pos.size() != 2) return Usage();
  if (!c.opt.no_traffic && (c.opt.peer_if.empty())) {
    fprintf(stderr, "npa-conform: give --peer-if (and --peer-netns) or --no-traffic\n");
    return 2;
  }
  c.opt.plugin_path = pos[0];
  c.opt.bdf = pos[1];
  if (c.opt.plugin_path.find('/') == std::string::npos) c.opt.plugin_path = "./" + c.opt.plugin_path;

  int passed = 0, failed = 0, skipped = 0;
  auto count = [&](const char* name, const Result& r) {
    Print(name, r);
    if (r.v == Verdict::kPass) passed++;
    else if (r.v == Verdict::kFail) failed++;
    else skipped++;
  };
  auto wanted = [&](const char* name) {
    if (c.opt.only.empty()) return true;
    for (auto& o : c.opt.only)
      if (o == name) return true;
    return false;
  };

  // The shell's own loader decides whether the object is a valid plug-in.
  auto loaded = shell::LoadPlugin(c.opt.plugin_path);
  if (!loaded.ok()) {
    count("abi_load", Fail(std::string(loaded.status().message())));
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return 1;
  }
  c.plugin = std::move(*loaded);
  count("abi_load", Pass(c.plugin->name() + " " + c.plugin->version() + " by " +
                         c.plugin->vendor()));

  auto fn = agent::vf::VfioFunction::Open(c.opt.bdf);
  if (!fn.ok()) return SetupError(fn.status());
  c.fn.emplace(std::move(*fn));
  if (!c.fn->device().is_pci())
    return SetupError(absl::FailedPreconditionError(c.opt.bdf + " is not a PCI device"));
  // 24 MiB at iova == vaddr: 4 MiB of ring memory, the rest packet slots.
  auto region = c.fn->container().MapMemfdRegion(24u << 20, "npa-conform");
  if (!region.ok()) return SetupError(region.status());
  c.region = std::move(*region);
  if (absl::Status s = NewServices(c); !s.ok()) return SetupError(s);
  auto info = c.svc->vf().DeviceInfo();
  if (!info.ok()) return SetupError(info.status());
  c.info = *info;
  if (!c.opt.no_traffic) {
    auto peer = Peer::Open(c.opt.peer_netns, c.opt.peer_if);
    if (!peer.ok()) {
      fprintf(stderr, "npa-conform: peer: %s\n", std::string(peer.status().message()).c_str());
      return 2;
    }
    c.peer = std::move(*peer);
  }
  if (getrandom(&c.run_id, sizeof(c.run_id), 0) != sizeof(c.run_id))
    c.run_id = static_cast<uint32_t>(time(nullptr));

  std::vector<Case> all = LoadCases();
  for (auto& t : TrafficCases()) all.push_back(t);
  for (auto& k : all) {
    // probe_remove_loop learns the caps every later case configures from.
    if (!wanted(k.name) && strcmp(k.name, "probe_remove_loop") != 0) continue;
    // Progress on stderr: a case that hangs (the lab's scenario limit
    // kills it) is named by the last line.
    fprintf(stderr, "npa-conform: running %s\n", k.name);
    Result r = k.fn(c);
    if (r.v == Verdict::kFail && !c.svc->last_logs.empty())
      r.detail += " [plug-in: " + c.svc->last_logs.back() + "]";
    if (wanted(k.name)) count(k.name, r);
    // A case that failed must not poison the next one's accounting.
    if (c.svc->bufs_outstanding() || c.svc->dma_outstanding() || c.svc->violations()) {
      if (absl::Status s = NewServices(c); !s.ok()) return SetupError(s);
    }
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace npa::conform

int main(int argc, char** argv) { return npa::conform::Main(argc, argv); }
