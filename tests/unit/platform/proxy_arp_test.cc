// The announcements ProxyArp sends, byte for byte: the gratuitous ARP frame and the
// unsolicited Neighbour Advertisement (tests/netns/test_proxy_arp.py checks that real
// Linux hosts act on them).
#include <gtest/gtest.h>

#include <cerrno>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "platform/proxy_arp.h"

namespace mobike::platform {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

constexpr MacAddress kMac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

TEST(ProxyArpFrames, GratuitousArpIsABroadcastRequestWithSenderEqualToTarget) {
  Bytes frame = gratuitous_arp_frame(kMac, ip("10.60.0.201"));
  EXPECT_EQ(to_hex(frame),
            "ffffffffffff"  // Ethernet destination: broadcast
            "021122334455"  // Ethernet source: the interface
            "0806"          // ARP
            "0001" "0800" "06" "04"
            "0001"                      // request
            "021122334455" "0a3c00c9"   // sender: the interface's MAC, the address
            "000000000000" "0a3c00c9");  // target: no MAC, the same address
  EXPECT_EQ(frame.size(), 42u);  // the NIC pads to the 60-byte minimum
}

TEST(ProxyArpFrames, NeighbourAdvertisementOverridesAndCarriesTheTargetLinkAddress) {
  Bytes message = unsolicited_neighbour_advertisement(kMac, ip("fd60::201"));
  EXPECT_EQ(to_hex(message),
            "88" "00" "0000"  // type 136, code 0, checksum left to the kernel
            "20000000"        // override set; router and solicited clear
            "fd600000000000000000000000000201"
            "02" "01" "021122334455");  // target link-layer address option, 8 octets
}

TEST(ProxyArpFrames, EachAnnouncementIsForItsOwnFamilyOnly) {
  EXPECT_TRUE(gratuitous_arp_frame(kMac, ip("fd60::201")).empty());
  EXPECT_TRUE(unsolicited_neighbour_advertisement(kMac, ip("10.60.0.201")).empty());
}

TEST(ProxyArpFrames, MacAddressText) {
  EXPECT_EQ(to_string(kMac), "02:11:22:33:44:55");
  EXPECT_EQ(to_string(MacAddress{0xff, 0xee, 0x0a, 0, 1, 0xb0}), "ff:ee:0a:00:01:b0");
}

TEST(ProxyArp, OpenRejectsNamesNoInterfaceCanHave) {
  auto empty = ProxyArp::open("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, EINVAL);
  auto too_long = ProxyArp::open("an-interface-name-longer-than-ifnamsiz");
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().code, EINVAL);
}

TEST(ProxyArp, AClosedOneFailsInsteadOfSending) {
  ProxyArp closed;
  auto r = closed.add(ip("10.60.0.201"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EBADF);
  auto a = closed.announce(ip("fd60::201"));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, EBADF);
}

}  // namespace
}  // namespace mobike::platform
