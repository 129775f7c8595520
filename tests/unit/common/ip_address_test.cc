#include "common/histogram.h"
#include "common/ip_address.h"

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "common/expected.h"

namespace mobike {
namespace {

TEST(IpAddress, ParsesAndFormatsBothFamilies) {
  auto a = IpAddress::parse("192.0.2.10");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_v4());
  EXPECT_EQ(a->to_string(), "192.0.2.10");
  EXPECT_EQ(to_hex(a->bytes()), "c000020a");
  auto b = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->is_v6());
  EXPECT_EQ(b->bytes().size(), 16u);
  EXPECT_EQ(b->to_string(), "2001:db8::1");
  EXPECT_FALSE(IpAddress::parse("192.0.2.300"));
  EXPECT_FALSE(IpAddress::parse("not an address"));
}

TEST(IpAddress, FromBytesUsesLengthForFamily) {
  Bytes v4 = {198, 51, 100, 2};
  EXPECT_EQ(IpAddress::from_bytes(v4)->to_string(), "198.51.100.2");
  Bytes bad = {1, 2, 3};
  EXPECT_FALSE(IpAddress::from_bytes(bad));
}

TEST(IpAddress, EndpointFormatting) {
  Endpoint e{*IpAddress::parse("2001:db8::2"), 4500};
  EXPECT_EQ(e.to_string(), "[2001:db8::2]:4500");
  Endpoint f{*IpAddress::parse("203.0.113.1"), 500};
  EXPECT_EQ(f.to_string(), "203.0.113.1:500");
  EXPECT_NE(e, f);
}

TEST(IpPrefix, RangeBounds) {
  auto p = IpPrefix::parse("10.1.2.3/16");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first().to_string(), "10.1.0.0");
  EXPECT_EQ(p->last().to_string(), "10.1.255.255");
  auto q = IpPrefix::parse("2001:db8::/33");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->last().to_string(), "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/33"));
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/x"));
  auto host = IpPrefix::parse("192.0.2.1");
  EXPECT_EQ(host->length, 32);
}

TEST(HostName, AcceptsDnsNamesAndRefusesAddressesAndJunk) {
  for (const char* good : {"vpn.example.org", "vpn.example.org.", "VPN-1.Example.ORG", "gateway", "a.b",
                           "xn--bcher-kva.example", "1.example.org", "host.b2"})
    EXPECT_TRUE(is_host_name(good)) << good;
  const std::string label63(63, 'a');
  EXPECT_TRUE(is_host_name(label63 + ".example.org"));
  EXPECT_FALSE(is_host_name(label63 + "a.example.org"));
  // 4 x 63 + 3 dots = 255 > 253; 3 x 63 + 61 + 3 = 253.
  EXPECT_FALSE(is_host_name(label63 + "." + label63 + "." + label63 + "." + label63));
  EXPECT_TRUE(is_host_name(label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b')));
  EXPECT_FALSE(is_host_name(label63 + "." + label63 + "." + label63 + "." + std::string(62, 'b')));
  for (const char* bad : {"", ".", "-vpn.example.org", "vpn-.example.org", "vpn..example.org", ".vpn.example.org",
                          "vpn.example.org..", "vpn_1.example.org", "vpn example.org", "192.0.2.300", "192.0.2.1",
                          "10.0.0.0/8", "2001:db8::1", "%any", "host.123", "vpn.example.org/24"})
    EXPECT_FALSE(is_host_name(bad)) << bad;
}

TEST(Bytes, HexRoundTripAndConstantTimeCompare) {
  Bytes b = from_hex("de:ad be ef");
  EXPECT_EQ(to_hex(b), "deadbeef");
  EXPECT_TRUE(from_hex("abc").empty());
  EXPECT_TRUE(equal_ct(b, from_hex("deadbeef")));
  EXPECT_FALSE(equal_ct(b, from_hex("deadbeee")));
  EXPECT_FALSE(equal_ct(b, from_hex("dead")));
}

Expected<int, std::string> half(int v) {
  if (v % 2) return unexpected(std::string("odd"));
  return v / 2;
}

TEST(Expected, CarriesValueOrError) {
  auto ok = half(4);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 2);
  auto bad = half(3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "odd");
}

TEST(IpAddress, EndpointParsesWhatItFormats) {
  auto v4 = Endpoint::parse("127.0.0.1:9560");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->to_string(), "127.0.0.1:9560");
  auto v6 = Endpoint::parse("[::1]:9560");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->address.is_v6());
  EXPECT_EQ(v6->port, 9560);
  EXPECT_EQ(v6->to_string(), "[::1]:9560");
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:95x",
                          "::1:9560", "[127.0.0.1]:80", "[::1]", "localhost:80", ":80", ""})
    EXPECT_FALSE(Endpoint::parse(bad)) << bad;
}

TEST(LatencyHistogram, CountsEachDurationInTheFirstBucketThatHoldsIt) {
  LatencyHistogram h;
  h.observe(std::chrono::milliseconds(5));       // on the bound: the 5 ms bucket
  h.observe(std::chrono::milliseconds(6));       // the 10 ms bucket
  h.observe(std::chrono::milliseconds(400000));  // above every bound
  EXPECT_EQ(h.count, 3u);
  EXPECT_EQ(h.sum_ms, 400011u);
  EXPECT_EQ(h.buckets[0], 1u);
  EXPECT_EQ(h.buckets[1], 1u);
  EXPECT_EQ(h.buckets.back(), 1u);
}

}  // namespace
}  // namespace mobike
