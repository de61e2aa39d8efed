#include "hypervisor/npactl/npactl_events_format.h"

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"

namespace npa::agent {
namespace {

control::AgentEvent Sample() {
  control::AgentEvent e;
  e.set_seq(12);
  e.set_unix_ms(1764990000123);
  e.set_mono_ns(81234567890);
  e.set_kind("revoke_done");
  e.set_guest("g1");
  e.set_guest_id(3);
  e.set_vf("0000:03:00.1");
  e.set_duration_us(5120);
  e.set_detail("revoke_done");
  return e;
}

TEST(NpactlEventsFormatTest, JsonLineHasEveryStableKey) {
  const std::string line = FormatEventJson(Sample());
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["seq"], 12);
  EXPECT_EQ(j["time_unix_ms"], 1764990000123ull);
  EXPECT_EQ(j["mono_ns"], 81234567890ull);
  EXPECT_EQ(j["kind"], "revoke_done");
  EXPECT_EQ(j["guest"], "g1");
  EXPECT_EQ(j["guest_id"], 3);
  EXPECT_EQ(j["vf"], "0000:03:00.1");
  EXPECT_EQ(j["duration_us"], 5120);
  EXPECT_EQ(j["detail"], "revoke_done");
  EXPECT_EQ(j.size(), 9u);
}

TEST(NpactlEventsFormatTest, EmptyFieldsStayAndHostileStringsAreEscaped) {
  control::AgentEvent e;
  e.set_seq(1);
  e.set_kind("guest_down");
  e.set_detail("bad \xff\x1b[31m\"quote\"");
  auto j = nlohmann::json::parse(FormatEventJson(e));
  EXPECT_EQ(j["guest"], "");
  EXPECT_EQ(j["vf"], "");
  EXPECT_EQ(j["guest_id"], 0);
  EXPECT_NE(j["detail"].get<std::string>().find("\"quote\""), std::string::npos);
  const std::string text = FormatEventText(e);
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no escape sequences on a terminal";
  EXPECT_EQ(text.find("guest="), std::string::npos);
}

TEST(NpactlEventsFormatTest, TextLineAndMissed) {
  const std::string t = FormatEventText(Sample());
  EXPECT_NE(t.find("2025-12-06T03:00:00.123Z"), std::string::npos) << t;
  EXPECT_NE(t.find("revoke_done"), std::string::npos);
  EXPECT_NE(t.find("guest=g1"), std::string::npos);
  EXPECT_NE(t.find("vf=0000:03:00.1"), std::string::npos);
  EXPECT_NE(t.find("took=5.120 ms"), std::string::npos) << t;
  auto m = nlohmann::json::parse(FormatMissedJson(7));
  EXPECT_EQ(m["kind"], "missed");
  EXPECT_EQ(m["count"], 7);
  EXPECT_NE(FormatMissedText(7).find("7 events missed"), std::string::npos);
}

}  // namespace
}  // namespace npa::agent
