#include "common/announce.h"

#include <gtest/gtest.h>

#include <cstring>

namespace npa {
namespace {

TEST(AnnounceTest, RarpFrameHasTheGuestMacAsSourceAndBroadcastDestination) {
  const std::array<uint8_t, 6> mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x2a};
  auto f = BuildRarpAnnounce(mac);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f[i], 0xff) << i;
  EXPECT_EQ(0, std::memcmp(f.data() + 6, mac.data(), 6));
  EXPECT_EQ(f[12], 0x80);
  EXPECT_EQ(f[13], 0x35);
  EXPECT_EQ(f[14 + 7], 3);  // opcode: request reverse
  std::array<uint8_t, 6> got{};
  ASSERT_TRUE(ParseRarpAnnounce(f, &got));
  EXPECT_EQ(got, mac);
}

TEST(AnnounceTest, ParseRefusesOtherFrames) {
  const std::array<uint8_t, 6> mac = {0x02, 1, 2, 3, 4, 5};
  auto f = BuildRarpAnnounce(mac);
  auto short_frame = std::span<const uint8_t>(f.data(), 41);
  EXPECT_FALSE(ParseRarpAnnounce(short_frame, nullptr));
  auto arp = f;
  arp[13] = 0x06;  // ARP, not RARP
  EXPECT_FALSE(ParseRarpAnnounce(arp, nullptr));
  auto reply = f;
  reply[14 + 7] = 4;  // reply reverse: not an announcement
  EXPECT_FALSE(ParseRarpAnnounce(reply, nullptr));
  auto forged = f;
  forged[14 + 8] ^= 1;  // sender hardware address differs from the source
  EXPECT_FALSE(ParseRarpAnnounce(forged, nullptr));
}

}  // namespace
}  // namespace npa
