#include <gtest/gtest.h>

#include "ike/connection.h"

namespace mobike::ike {
namespace {

Identity must_parse(const std::string& text) {
  auto id = Identity::parse(text);
  EXPECT_TRUE(id) << text;
  return id ? *id : Identity{};
}

TEST(Identity, ParsesEachType) {
  auto v4 = must_parse("192.0.2.1");
  EXPECT_EQ(v4.type, wire::IdType::kIpv4Addr);
  EXPECT_EQ(v4.data, (Bytes{192, 0, 2, 1}));

  auto v6 = must_parse("2001:db8::1");
  EXPECT_EQ(v6.type, wire::IdType::kIpv6Addr);
  ASSERT_EQ(v6.data.size(), 16u);
  EXPECT_EQ(v6.data[0], 0x20);
  EXPECT_EQ(v6.data[15], 0x01);

  auto mail = must_parse("carol@example.org");
  EXPECT_EQ(mail.type, wire::IdType::kRfc822Addr);
  EXPECT_EQ(mail.data, to_bytes("carol@example.org"));

  auto fqdn = must_parse("vpn.example.org");
  EXPECT_EQ(fqdn.type, wire::IdType::kFqdn);
  EXPECT_EQ(fqdn.data, to_bytes("vpn.example.org"));

  auto keyhex = must_parse("keyid:0x0102ab");
  EXPECT_EQ(keyhex.type, wire::IdType::kKeyId);
  EXPECT_EQ(keyhex.data, (Bytes{0x01, 0x02, 0xab}));

  auto keytext = must_parse("keyid:my key");
  EXPECT_EQ(keytext.type, wire::IdType::kKeyId);
  EXPECT_EQ(keytext.data, to_bytes("my key"));
}

TEST(Identity, AtPrefixForcesFqdn) {
  auto a = must_parse("@vpn.example.org");
  EXPECT_EQ(a.type, wire::IdType::kFqdn);
  EXPECT_EQ(a.data, to_bytes("vpn.example.org"));
  auto b = must_parse("@192.0.2.1");
  EXPECT_EQ(b.type, wire::IdType::kFqdn);
  EXPECT_EQ(b.data, to_bytes("192.0.2.1"));
}

TEST(Identity, RejectsEmptyAndBadHex) {
  EXPECT_FALSE(Identity::parse(""));
  EXPECT_FALSE(Identity::parse("@"));
  EXPECT_FALSE(Identity::parse("keyid:"));
  EXPECT_FALSE(Identity::parse("keyid:0x"));
  EXPECT_FALSE(Identity::parse("keyid:0xzz"));
  EXPECT_FALSE(Identity::parse("keyid:0x123"));  // odd number of digits
}

TEST(Identity, ToStringRoundTrips) {
  for (std::string text : {"192.0.2.1", "2001:db8::1", "carol@example.org", "vpn.example.org",
                           "keyid:0x00ff10", "keyid:text-key"}) {
    auto id = must_parse(text);
    EXPECT_EQ(id.to_string(), text);
    EXPECT_EQ(Identity::parse(id.to_string()), id);
  }
}

TEST(Identity, ToStringDisambiguatesFqdnThatLooksLikeAnotherType) {
  Identity ip_like{wire::IdType::kFqdn, to_bytes("192.0.2.1")};
  EXPECT_EQ(ip_like.to_string(), "@192.0.2.1");
  EXPECT_EQ(Identity::parse(ip_like.to_string()), ip_like);

  Identity at_sign{wire::IdType::kFqdn, to_bytes("a@b")};
  EXPECT_EQ(Identity::parse(at_sign.to_string()), at_sign);

  Identity keyid_like{wire::IdType::kFqdn, to_bytes("keyid:x")};
  EXPECT_EQ(Identity::parse(keyid_like.to_string()), keyid_like);

  // A KEY_ID whose text would read as hex must come out as hex.
  Identity hexish{wire::IdType::kKeyId, to_bytes("0x12")};
  EXPECT_EQ(hexish.to_string(), "keyid:0x" + to_hex(to_bytes("0x12")));
  EXPECT_EQ(Identity::parse(hexish.to_string()), hexish);
}

TEST(Identity, ToStringEscapesPeerControlledBytes) {
  Identity nasty{wire::IdType::kFqdn, Bytes{'a', '\n', 'b', 0xff}};
  auto s = nasty.to_string();
  EXPECT_EQ(s.find('\n'), std::string::npos);
  EXPECT_NE(s.find("\\x0a"), std::string::npos);
  EXPECT_NE(s.find("\\xff"), std::string::npos);

  Identity binary_key{wire::IdType::kKeyId, Bytes{0x00, 0x01}};
  EXPECT_EQ(binary_key.to_string(), "keyid:0x0001");

  Identity bad_v4{wire::IdType::kIpv4Addr, Bytes{1, 2, 3}};  // wrong length from the wire
  EXPECT_EQ(bad_v4.to_string(), "id1:0x010203");

  Identity dn{wire::IdType::kDerAsn1Dn, Bytes{0x30, 0x00}};
  EXPECT_EQ(dn.to_string(), "asn1dn:0x3000");
}

}  // namespace
}  // namespace mobike::ike
