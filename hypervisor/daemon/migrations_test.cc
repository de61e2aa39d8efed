// Migrations: Hello.resume's ring check, and (below) two control servers in
// one process with a loopback between their migrations.
#include "hypervisor/daemon/migrations.h"

#include <gtest/gtest.h>

namespace npa::agent {
namespace {

control::Resume Rings(uint32_t qp) {
  control::Resume r;
  for (uint32_t v = 0; v < 2 * qp; v++) {
    auto* b = r.add_vrings();
    b->set_vring(v);
    b->set_next_avail(100 + v);
    b->set_used_idx(100 + v);
  }
  return r;
}

TEST(CheckResumeVringsTest, OnePerVringEachIn16Bits) {
  EXPECT_TRUE(CheckResumeVrings(Rings(2), 2).ok());
  EXPECT_EQ(CheckResumeVrings(Rings(1), 2).message(),
            "hello.resume has 2 vrings; want 4 (2 per queue pair)");
  control::Resume r = Rings(1);
  r.mutable_vrings(1)->set_vring(0);
  EXPECT_EQ(CheckResumeVrings(r, 1).message(), "hello.resume lists vring 0 twice");
  r = Rings(1);
  r.mutable_vrings(1)->set_vring(2);
  EXPECT_EQ(CheckResumeVrings(r, 1).message(), "hello.resume vring 2 outside 0..1");
  r = Rings(1);
  r.mutable_vrings(0)->set_next_avail(65536);
  EXPECT_EQ(CheckResumeVrings(r, 1).message(), "hello.resume vring 0 index 65536 outside 0..65535");
}

}  // namespace
}  // namespace npa::agent
