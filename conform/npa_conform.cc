// npa-conform — the plug-in conformance runner (docs/conformance.md): the
// command line, --help (kHelp, the man page npa-conform(8) is made from it by
// packaging/man-from-help.sh), --abi-only (conform/abi_checks.h) and the full
// device run over the cases of conform_cases.cc and conform_traffic.cc.
//
// The device must already be bound to vfio-pci, alone in its IOMMU group.
// The runner plays the host agent with the VFIO host library
// (hypervisor/vf/vfio.h) and hands the plug-in the shell's own services table
// (shell/vf/vf_services.h) under the fault decorator (fault_services.h).
// Output: "CONFORM <case> PASS|FAIL|SKIP(<why>) <detail>" per case, then
// "N passed, M failed, K skipped"; "npa-conform: running <case>" on stderr
// before each case. Exit 0 only if nothing failed, 1 if a case failed; 2 on
// usage or setup errors.
#include <sys/random.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "conform/abi_checks.h"
#include "conform/conform_runner.h"

namespace npa::conform {

absl::Status NewServices(Ctx& c, uint16_t nb_queues) {
  c.svc.reset();
  NPA_ASSIGN_OR_RETURN(c.svc, ConformServices::Create(shell::MakeFdDeviceIo(c.fn->device().fd()),
                                                      c.opt.bdf, c.region.data(), c.region.size(),
                                                      /*dma_bytes=*/4u << 20, nb_queues));
  c.svc->verbose = c.opt.verbose;
  c.svc->set_tx_free(c.plugin != nullptr && (c.plugin->flags() & NPA_PLUGIN_F_TX_FREE) != 0);
  return absl::OkStatus();
}

namespace {

int SetupError(const absl::Status& s) {
  fprintf(stderr, "npa-conform: %s\n", std::string(s.message()).c_str());
  return 2;
}

#ifndef NPA_VERSION
#define NPA_VERSION "unknown"
#endif

// Written as a man page: packaging/man-from-help.sh turns every heading into
// a section of npa-conform(8), so --help and the page cannot drift.
constexpr const char kHelp[] =
    "NAME\n"
    "    npa-conform - check an npa vendor plug-in against the plug-in ABI and a device\n"
    "\n"
    "SYNOPSIS\n"
    "    npa-conform --abi-only [--json] PLUGIN.so\n"
    "    npa-conform [--peer-netns NAME] --peer-if IF [--broken-dir DIR] [--loops N]\n"
    "                [--case NAME]... [-v] PLUGIN.so PCI-ADDRESS\n"
    "    npa-conform --no-traffic [options] PLUGIN.so PCI-ADDRESS\n"
    "    npa-conform --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    npa-conform loads a vendor plug-in (a shared object built against\n"
    "    npa/plugin.h) through the npa shell's own loader and checks it.\n"
    "\n"
    "    With --abi-only it needs no device: it runs the checks the shell's\n"
    "    loader makes, one line each, and a few the loader cannot make:\n"
    "      file_trust           root owns the file and its directory; neither\n"
    "                           is group- or world-writable\n"
    "      child_load           the loader's whole check, in a child process\n"
    "                           (a crash or hang there is a FAIL, not a crash)\n"
    "      loader_accepts       the same load in this process\n"
    "      abi_version          ABI major/minor and the three table sizes\n"
    "      entry_points         every mandatory op set; the optional ones listed\n"
    "      id_table             no entry claims every PCI function\n"
    "      refuses_other_major  the entry answers NULL to another ABI major\n"
    "    The first three are gates: after a failed one nothing else runs.\n"
    "\n"
    "    Without --abi-only it drives the real PCI function PCI-ADDRESS, which\n"
    "    must be bound to vfio-pci and alone in its IOMMU group, playing the\n"
    "    host agent's part itself: load and ABI cases, probe/remove and\n"
    "    start/stop loops, bad configurations, resets, injected failures of\n"
    "    the services table (DMA, buffers, interrupts), and traffic against a\n"
    "    peer NIC on the same wire. docs/conformance.md describes every case.\n"
    "    Run it as root.\n"
    "\n"
    "    Throughout, it watches the plug-in's use of the services: every\n"
    "    buffer comes back once, TX frames through the right free call, and\n"
    "    every frame rx_burst hands up keeps the RX discipline of\n"
    "    npa/plugin.h (a buffer it holds, handed up once, lengths inside the\n"
    "    slot, only RX offload facts). The shell hands those frames to the\n"
    "    application unchecked, so this is where they are held to it. A case\n"
    "    with any violation FAILs and names the first.\n"
    "\n"
    "OPTIONS\n"
    "    --abi-only           only the device-free ABI checks above.\n"
    "    --json               with --abi-only: one JSON object, {\"plugin\",\n"
    "                         \"passed\", \"failed\", \"checks\": [{\"name\",\n"
    "                         \"result\": \"pass\"|\"fail\", \"detail\"}]}.\n"
    "    --peer-if IF         the traffic peer: a kernel-driven NIC on the same\n"
    "                         wire as the device (opened as an AF_PACKET socket).\n"
    "    --peer-netns NAME    IF is in network namespace NAME.\n"
    "    --no-traffic         skip the cases that need the peer (printed as\n"
    "                         SKIP); such a run is not a full conformance pass.\n"
    "    --broken-dir DIR     every .so in DIR must be rejected by the loader.\n"
    "    --loops N            attach/detach and start/stop loop count, 1..1000\n"
    "                         (default 5).\n"
    "    --case NAME          run only case NAME; repeatable.\n"
    "    -v                   echo the plug-in's log lines to stderr.\n"
    "    --help               this text.\n"
    "    --version            print the version.\n"
    "\n"
    "OUTPUT\n"
    "    One line per check or case, then a summary:\n"
    "      CONFORM <case> PASS <detail>\n"
    "      CONFORM <case> FAIL <what is wrong> [plug-in: <its last log line>]\n"
    "      CONFORM <case> SKIP(<why>)\n"
    "      N passed, M failed, K skipped\n"
    "    A device run names each case on stderr before it starts\n"
    "    (\"npa-conform: running <case>\"), so a hung case is named.\n"
    "\n"
    "EXIT STATUS\n"
    "    0  every check or case passed (or was skipped).\n"
    "    1  a check or case failed.\n"
    "    2  usage or setup error: a bad argument, the device not bound to\n"
    "       vfio-pci, no IOMMU group, the peer not found.\n"
    "\n"
    "EXAMPLES\n"
    "    npa-conform --abi-only ./libmy_nic.so\n"
    "    npa-conform --abi-only --json /usr/lib/npa/plugins/npa_plugin_e1000e.so\n"
    "    npa-conform --peer-netns peer --peer-if eth1 \\\n"
    "        /usr/lib/npa/plugins/npa_plugin_e1000e.so 0000:03:00.0\n"
    "\n"
    "SEE ALSO\n"
    "    npa-agent(8), npactl(8); docs/conformance.md, docs/sdk.md and\n"
    "    docs/plugin-author-guide.md in the npa sources.\n";

int Usage(const std::string& why) {
  fprintf(stderr,
          "npa-conform: %s\n"
          "usage: npa-conform --abi-only [--json] PLUGIN.so\n"
          "       npa-conform [--peer-netns NAME --peer-if IF | --no-traffic] [--broken-dir DIR]\n"
          "                   [--loops N] [--case NAME]... [-v] PLUGIN.so PCI-ADDRESS\n"
          "       npa-conform --help\n",
          why.c_str());
  return 2;
}

int AbiOnly(const std::string& path, bool json) {
  std::vector<AbiCheck> checks = RunAbiChecks(path);
  if (json) {
    printf("%s\n", AbiChecksJson(path, checks).c_str());
  } else {
    int passed = 0, failed = 0;
    for (const AbiCheck& k : checks) {
      printf("CONFORM %s %s %s\n", k.name.c_str(), k.pass ? "PASS" : "FAIL", k.detail.c_str());
      (k.pass ? passed : failed)++;
    }
    printf("%d passed, %d failed, 0 skipped\n", passed, failed);
  }
  return AbiChecksPassed(checks) ? 0 : 1;
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
  bool abi_only = false, json = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&](std::string* out) {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--help" || a == "-h") {
      fputs(kHelp, stdout);
      return 0;
    } else if (a == "--version") {
      printf("npa-conform %s\n", NPA_VERSION);
      return 0;
    } else if (a == "--abi-only") {
      abi_only = true;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--peer-netns") {
      if (!val(&c.opt.peer_netns)) return Usage("--peer-netns needs a namespace name");
    } else if (a == "--peer-if") {
      if (!val(&c.opt.peer_if)) return Usage("--peer-if needs an interface name");
    } else if (a == "--broken-dir") {
      if (!val(&c.opt.broken_dir)) return Usage("--broken-dir needs a directory");
    } else if (a == "--no-traffic") {
      c.opt.no_traffic = true;
    } else if (a == "-v") {
      c.opt.verbose = true;
    } else if (a == "--loops") {
      if (!val(&v)) return Usage("--loops needs a count");
      char* end = nullptr;
      long n = strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 1 || n > 1000)
        return Usage("--loops '" + v + "' is not a count from 1 to 1000");
      c.opt.loops = static_cast<int>(n);
    } else if (a == "--case") {
      if (!val(&v)) return Usage("--case needs a case name");
      c.opt.only.push_back(v);
    } else if (!a.empty() && a[0] == '-') {
      return Usage("unknown option '" + a + "' (npa-conform --help lists them)");
    } else {
      pos.push_back(a);
    }
  }
  if (abi_only) {
    if (pos.size() != 1)
      return Usage(pos.empty() ? "--abi-only needs PLUGIN.so"
                               : "--abi-only takes one PLUGIN.so and no PCI address");
    return AbiOnly(pos[0], json);
  }
  if (json) return Usage("--json is for --abi-only");
  if (pos.size() != 2)
    return Usage(pos.size() < 2 ? "give PLUGIN.so and PCI-ADDRESS (or --abi-only PLUGIN.so)"
                                : "too many arguments: '" + pos[2] + "'");
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
    // A case passes only if the plug-in broke no rule the services and the
    // pool watch (bad frees, the TX and RX disciplines), whether or not the
    // case itself looked.
    if (r.v == Verdict::kPass && c.svc->violations() != 0)
      r = Fail(absl::StrCat(c.svc->violations(), " violation(s), the first: ",
                            c.svc->violation_log()[0]));
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
