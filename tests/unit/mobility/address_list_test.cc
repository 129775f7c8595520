#include "mobility/address_list.h"

#include <gtest/gtest.h>

namespace mobike::mobility {
namespace {

IpAddress ip(const char* s) { return IpAddress::parse(s).value(); }

TEST(AddressList, UsableAddressesAreUnicastAndReachable) {
  for (const char* good : {"192.0.2.1", "198.51.100.20", "10.1.0.2", "2001:db8::1", "fd00::1"})
    EXPECT_TRUE(usable_address(ip(good))) << good;
  for (const char* bad : {"0.0.0.0", "0.1.2.3", "127.0.0.1", "169.254.1.1", "224.0.0.1", "240.0.0.1",
                          "255.255.255.255", "::", "::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1",
                          "::ffff:192.0.2.1", "::192.0.2.1"})
    EXPECT_FALSE(usable_address(ip(bad))) << bad;
}

TEST(AddressList, BuildsAndParsesTheNotifies) {
  std::vector<wire::Payload> out;
  add_address_list({ip("198.51.100.20"), ip("2001:db8::20")}, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(std::get<wire::NotifyPayload>(out[0].body).notify_type(), wire::NotifyType::kAdditionalIp4Address);
  EXPECT_EQ(std::get<wire::NotifyPayload>(out[1].body).notify_type(), wire::NotifyType::kAdditionalIp6Address);
  auto back = parse_address_list(out, nullptr);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, (std::vector<IpAddress>{ip("198.51.100.20"), ip("2001:db8::20")}));

  std::vector<wire::Payload> none;
  add_address_list({}, none);
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(std::get<wire::NotifyPayload>(none[0].body).notify_type(), wire::NotifyType::kNoAdditionalAddresses);
  auto empty = parse_address_list(none, nullptr);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  EXPECT_FALSE(parse_address_list({}, nullptr));  // no list at all: keep the old one
}

TEST(AddressList, SkipsWrongLengthsUnusableAndDuplicateEntries) {
  std::vector<wire::Payload> in = {
      wire::make_notify(wire::NotifyType::kAdditionalIp4Address, Bytes{198, 51, 100, 20}),
      wire::make_notify(wire::NotifyType::kAdditionalIp4Address, Bytes{198, 51, 100, 20}),  // duplicate
      wire::make_notify(wire::NotifyType::kAdditionalIp4Address, Bytes{127, 0, 0, 1}),
      wire::make_notify(wire::NotifyType::kAdditionalIp4Address, Bytes{1, 2, 3}),
      wire::make_notify(wire::NotifyType::kAdditionalIp6Address, Bytes{198, 51, 100, 21}),  // v4 length in a v6 notify
  };
  std::string skipped;
  auto list = parse_address_list(in, &skipped);
  ASSERT_TRUE(list);
  EXPECT_EQ(*list, std::vector<IpAddress>{ip("198.51.100.20")});
  EXPECT_NE(skipped.find("127.0.0.1"), std::string::npos) << skipped;
  EXPECT_NE(skipped.find("3 octets"), std::string::npos) << skipped;
  EXPECT_NE(skipped.find("4 octets for ADDITIONAL_IP6_ADDRESS"), std::string::npos) << skipped;
}

TEST(AddressList, NoNatsDataIsAddressesThenPorts) {
  EXPECT_EQ(to_hex(no_nats_data({ip("192.0.2.1"), 4500}, {ip("198.51.100.10"), 500})),
            "c0000201c633640a119401f4");
  EXPECT_EQ(no_nats_data({ip("2001:db8::1"), 4500}, {ip("2001:db8::2"), 4500}).size(), 36u);
}

}  // namespace
}  // namespace mobike::mobility
