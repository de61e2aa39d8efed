// common/announce.cc — RARP announcement frames (RFC 903).
#include "common/announce.h"

#include <cstring>

namespace npa {
namespace {

constexpr uint16_t kHwEthernet = 1;
constexpr uint16_t kProtoIpv4 = 0x0800;
constexpr uint16_t kOpRequestReverse = 3;  // RFC 903: "request reverse"

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

std::array<uint8_t, kAnnounceFrameLen> BuildRarpAnnounce(std::span<const uint8_t, 6> mac) {
  std::array<uint8_t, kAnnounceFrameLen> f{};  // zero padding to the minimum
  uint8_t* p = f.data();
  std::memset(p, 0xff, 6);                     // to everyone: every bridge learns
  std::memcpy(p + 6, mac.data(), 6);
  Put16(p + 12, kEtherTypeRarp);
  uint8_t* a = p + 14;
  Put16(a, kHwEthernet);
  Put16(a + 2, kProtoIpv4);
  a[4] = 6;                                    // hardware address length
  a[5] = 4;                                    // protocol address length
  Put16(a + 6, kOpRequestReverse);
  std::memcpy(a + 8, mac.data(), 6);           // sender hardware address
  // sender IP 0.0.0.0 (a[14..17]): the announcer does not claim an address
  std::memcpy(a + 18, mac.data(), 6);          // target hardware address
  // target IP 0.0.0.0
  return f;
}

bool ParseRarpAnnounce(std::span<const uint8_t> frame, std::array<uint8_t, 6>* mac) {
  if (frame.size() < 14 + 28) return false;
  const uint8_t* p = frame.data();
  if (Get16(p + 12) != kEtherTypeRarp) return false;
  const uint8_t* a = p + 14;
  if (Get16(a) != kHwEthernet || Get16(a + 2) != kProtoIpv4 || a[4] != 6 || a[5] != 4 ||
      Get16(a + 6) != kOpRequestReverse)
    return false;
  // The announced MAC is the frame's source and the sender hardware address.
  if (std::memcmp(p + 6, a + 8, 6) != 0) return false;
  if (mac) std::memcpy(mac->data(), a + 8, 6);
  return true;
}

}  // namespace npa
