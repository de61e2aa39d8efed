#include "hypervisor/npactl/npactl_format.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace npa::agent {
namespace {

control::AdminReply Sample() {
  control::AdminReply r;
  r.set_agent_name("agent \"one\"\n");
  r.set_uptime_ms(1234);
  r.set_switch_unicast(5);
  r.set_switch_flooded(6);
  auto* g = r.add_guests();
  g->set_id(1);
  g->set_name("g\\1\x01\xff");
  g->set_mac("02:00:00:00:00:01");
  g->set_state("RUNNING");
  g->set_path("emulated");
  g->set_transport("control");
  g->set_queue_pairs(2);
  g->set_vhost_ready(true);
  auto* q = g->add_queues();
  q->set_queue(0);
  q->set_rx_packets(10);
  q->set_tx_bytes(640);
  auto* u = r.mutable_uplink();
  u->set_name("npa0");
  u->set_rx_packets(3);
  return r;
}

TEST(NpactlFormatTest, StringsAreEscapedAndInvalidUtf8Replaced) {
  EXPECT_EQ(DumpJson(Json("a\"b\\c\n")), "\"a\\\"b\\\\c\\n\"\n");
  // A control byte is escaped; a byte that is not UTF-8 becomes U+FFFD
  // (EF BF BD), valid UTF-8 passes through.
  EXPECT_EQ(DumpJson(Json(std::string("\x01\xff\xc3\xa9", 4))), "\"\\u0001\xef\xbf\xbd\xc3\xa9\"\n");
}

TEST(NpactlFormatTest, ErrorJson) {
  control::AdminReply r;
  r.mutable_error()->set_code(control::Error::DENIED);
  r.mutable_error()->set_message("operator only");
  EXPECT_EQ(FormatErrorJson(r), "{\"error\":{\"code\":\"DENIED\",\"message\":\"operator only\"}}\n");
}

// Python's json module is the independent judge of well-formedness.
void ExpectPythonParses(const std::string& json, const std::string& check) {
  char path[] = "/tmp/npactl-json.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, json.data(), json.size()), static_cast<ssize_t>(json.size()));
  close(fd);
  std::string cmd = std::string("python3 -c 'import json,sys; d=json.load(open(\"") + path +
                    "\")); sys.exit(0 if (" + check + ") else 1)'";
  int rc = system(cmd.c_str());
  unlink(path);
  EXPECT_EQ(rc, 0) << json;
}

TEST(NpactlFormatTest, JsonIsWellFormedForEveryCommand) {
  auto r = Sample();
  ExpectPythonParses(FormatJson(r, NpactlCommand::kGuests),
                     "d[\"guests\"][0][\"id\"] == 1 and d[\"guests\"][0][\"vhost_ready\"] is True"
                     " and d[\"guests\"][0][\"name\"] == \"g\\\\1\\x01\\ufffd\""
                     " and d[\"agent\"] == \"agent \\\"one\\\"\\n\"");
  ExpectPythonParses(FormatJson(r, NpactlCommand::kStats),
                     "d[\"guests\"][0][\"queues\"][0][\"rx_packets\"] == 10");
  ExpectPythonParses(FormatJson(r, NpactlCommand::kAgent),
                     "d[\"uplink\"][\"name\"] == \"npa0\" and d[\"switch\"][\"flooded\"] == 6");
  r.clear_uplink();
  ExpectPythonParses(FormatJson(r, NpactlCommand::kAgent), "d[\"uplink\"] is None");
}

TEST(NpactlFormatTest, TablesNameTheColumns) {
  auto r = Sample();
  std::string t = FormatTable(r, NpactlCommand::kGuests);
  EXPECT_NE(t.find("STATE"), std::string::npos);
  EXPECT_NE(t.find("02:00:00:00:00:01"), std::string::npos);
  t = FormatTable(r, NpactlCommand::kStats);
  EXPECT_NE(t.find("RX_PKTS"), std::string::npos);
  t = FormatTable(r, NpactlCommand::kAgent);
  EXPECT_NE(t.find("npa0"), std::string::npos);
  r.clear_guests();
  EXPECT_NE(FormatTable(r, NpactlCommand::kGuests).find("(no guests)"), std::string::npos);
}

TEST(NpactlFormatTest, MigratePhasesAsTableAndJson) {
  control::AdminReply r;
  r.set_agent_name("a");
  r.set_migration_state("DONE");
  r.set_message("guest g1 migrated to b");
  for (auto [n, us] : {std::pair<const char*, uint64_t>{"offer", 1500}, {"stop", 250}}) {
    auto* p = r.add_phases();
    p->set_name(n);
    p->set_duration_us(us);
    p->set_detail("d\"x");
  }
  const std::string t = FormatMigrateTable(r);
  EXPECT_NE(t.find("offer           1.500  d\"x"), std::string::npos) << t;
  EXPECT_NE(t.find("total           1.750  state DONE"), std::string::npos) << t;
  EXPECT_NE(t.find("guest g1 migrated to b"), std::string::npos) << t;
  const std::string j = FormatMigrateJson(r, "g1", "h:1");
  EXPECT_EQ(j,
            "{\"agent\":\"a\",\"guest\":\"g1\",\"to\":\"h:1\",\"state\":\"DONE\",\"message\":\"guest g1 "
            "migrated to b\",\"total_us\":1750,\"phases\":[{\"name\":\"offer\",\"duration_us\":1500,"
            "\"detail\":\"d\\\"x\"},{\"name\":\"stop\",\"duration_us\":250,\"detail\":\"d\\\"x\"}]}\n");
  r.mutable_error()->set_code(control::Error::BUSY);
  r.mutable_error()->set_message("refused");
  EXPECT_NE(FormatMigrateTable(r).find("error: refused"), std::string::npos);
  EXPECT_NE(FormatMigrateJson(r, "g1", "h:1").find(",\"error\":{\"code\":\"BUSY\",\"message\":\"refused\"}}"),
            std::string::npos);
}

}  // namespace
}  // namespace npa::agent
