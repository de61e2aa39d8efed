#include "hypervisor/npactl/npactl_vf_format.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace npa::agent {
namespace {

control::AdminReply Sample() {
  control::AdminReply r;
  r.set_agent_name("lab \"agent\"");
  auto* v = r.add_vfs();
  v->set_pci_address("0000:01:00.0");
  v->set_vendor(0x1af4);
  v->set_device(0x1041);
  v->set_subsystem_vendor(0x1af4);
  v->set_subsystem_device(0x1100);
  v->set_class_code(0x020000);
  v->set_revision(1);
  v->set_driver("vfio-pci");
  v->set_iommu_group(3);
  v->set_numa_node(-1);
  v->add_reset_methods("flr");
  v->add_reset_methods("bus");
  v->set_in_pool(true);
  v->set_state("ACTIVE");
  v->set_guest("g0");
  v->set_offer_id(7);
  auto* p = r.add_vfs();
  p->set_pci_address("0000:05:00.0");
  p->set_vendor(0x1b36);
  p->set_device(0x0010);
  p->set_class_code(0x010802);
  p->set_iommu_group(-1);
  p->set_numa_node(-1);
  p->set_sriov_totalvfs(2);
  p->set_last_error("weird \x01 bytes \xff");
  return r;
}

// Parses `json` with python3 and evaluates `expr` (with the object as `d`);
// returns python's stdout, or "PYFAIL" on a parse error.
std::string Py(const std::string& json, const std::string& expr) {
  char jpath[] = "/tmp/npactl-vf-json.XXXXXX";
  char ppath[] = "/tmp/npactl-vf-py.XXXXXX";
  int jf = mkstemp(jpath), pf = mkstemp(ppath);
  EXPECT_GE(jf, 0);
  EXPECT_GE(pf, 0);
  std::string script = std::string("import json, sys\nd = json.load(open(sys.argv[1]))\nprint(repr((") + expr + ")))\n";
  EXPECT_EQ(write(jf, json.data(), json.size()), static_cast<ssize_t>(json.size()));
  EXPECT_EQ(write(pf, script.data(), script.size()), static_cast<ssize_t>(script.size()));
  close(jf);
  close(pf);
  std::string cmd = std::string("python3 ") + ppath + " " + jpath + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  std::string out;
  char buf[256];
  while (f && fgets(buf, sizeof buf, f)) out += buf;
  int rc = f ? pclose(f) : -1;
  unlink(jpath);
  unlink(ppath);
  if (rc != 0) return "PYFAIL " + out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST(NpactlVfFormat, JsonParsesWithPython) {
  std::string j = FormatVfJson(Sample());
  EXPECT_EQ(Py(j, "d['vfs'][0]['pci'], d['vfs'][0]['vendor'], d['vfs'][0]['class']"),
            "('0000:01:00.0', '1af4', '020000')");
  EXPECT_EQ(Py(j, "d['vfs'][0]['state'], d['vfs'][0]['guest'], d['vfs'][0]['offer_id']"),
            "('ACTIVE', 'g0', 7)");
  EXPECT_EQ(Py(j, "d['vfs'][0]['reset_methods'], d['vfs'][0]['numa_node'], d['vfs'][0]['sriov']"),
            "(['flr', 'bus'], None, None)");
  EXPECT_EQ(Py(j, "d['vfs'][1]['sriov'], d['vfs'][1]['iommu_group'], d['vfs'][1]['state']"),
            "({'totalvfs': 2, 'numvfs': 0}, None, None)");
  EXPECT_EQ(Py(j, "d['agent'], d['message']"), "('lab \"agent\"', None)");
}

TEST(NpactlVfFormat, MessageAndEmpty) {
  control::AdminReply r;
  r.set_agent_name("a");
  r.set_message("VF 0000:01:00.0 reset");
  EXPECT_EQ(Py(FormatVfJson(r), "d['message'], d['vfs']"), "('VF 0000:01:00.0 reset', [])");
  EXPECT_EQ(FormatVfTable(r, false), "VF 0000:01:00.0 reset\n");
  EXPECT_NE(FormatVfTable(control::AdminReply(), true).find("(no network"), std::string::npos);
}

TEST(NpactlVfFormat, TableHasOneRowPerFunction) {
  std::string t = FormatVfTable(Sample(), true);
  EXPECT_NE(t.find("0000:01:00.0  1af4:1041 1af4:1100 020000 vfio-pci"), std::string::npos) << t;
  EXPECT_NE(t.find("flr,bus"), std::string::npos) << t;
  EXPECT_NE(t.find("0/2"), std::string::npos) << t;
  EXPECT_NE(t.find("last error"), std::string::npos) << t;
}

}  // namespace
}  // namespace npa::agent
