// Proposal selection (RFC 7296 §2.7) and traffic-selector narrowing (§2.9).
#include <gtest/gtest.h>

#include "ike/proposal_select.h"
#include "ike/proposal_string.h"
#include "ike/traffic_selector.h"

namespace mobike::ike {
namespace {

using wire::TransformType;

std::vector<wire::Proposal> ike(const char* s) { return *parse_ike_proposals(s); }
std::vector<wire::Proposal> esp(const char* s) { return *parse_esp_proposals(s); }

TEST(ProposalSelect, PeerOrderWinsAndOneTransformPerType) {
  auto offered = ike("aes256-sha384-ecp384, aes128gcm16-prfsha256-x25519");
  auto ours = ike("aes128gcm16-prfsha256-x25519, aes256-sha384-ecp384");
  auto chosen = select_proposal(offered, ours);
  ASSERT_TRUE(chosen);
  EXPECT_EQ(chosen->number, 1);
  EXPECT_EQ(proposal_to_string(*chosen), "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384");
  EXPECT_TRUE(proposal_acceptable(*chosen, ours));
}

TEST(ProposalSelect, PicksAmongAlternativesOfOneProposal) {
  // One proposal offering two groups: the responder takes the first it allows.
  auto offered = ike("aes128gcm16-prfsha256-x25519-ecp256");
  auto chosen = select_proposal(offered, ike("aes128gcm16-prfsha256-ecp256"));
  ASSERT_TRUE(chosen);
  EXPECT_EQ(transform_id(*chosen, TransformType::kDh), 19);
  EXPECT_EQ(std::count_if(chosen->transforms.begin(), chosen->transforms.end(),
                          [](const wire::Transform& t) { return t.type == TransformType::kDh; }),
            1);
}

TEST(ProposalSelect, NothingInCommon) {
  EXPECT_FALSE(select_proposal(ike("aes256-sha384-ecp384"), ike("aes128gcm16-prfsha256-x25519")));
  // Same cipher, other key length: not the same transform.
  EXPECT_FALSE(select_proposal(esp("aes256gcm16"), esp("aes128gcm16")));
  // ESN must agree.
  EXPECT_FALSE(select_proposal(esp("aes128gcm16-esn"), esp("aes128gcm16-noesn")));
  // IKE proposals never match ESP ones.
  EXPECT_FALSE(select_proposal(ike("aes128gcm16-prfsha256-x25519"), esp("aes128gcm16")));
}

TEST(ProposalSelect, ResponseWithTwoTransformsOfOneTypeIsRefused) {
  auto p = ike("aes128gcm16-prfsha256-x25519-ecp256")[0];
  EXPECT_FALSE(proposal_acceptable(p, ike("aes128gcm16-prfsha256-x25519-ecp256")));
  auto q = ike("aes128gcm16-prfsha256-x25519")[0];
  EXPECT_TRUE(proposal_acceptable(q, ike("aes128gcm16-prfsha256-x25519-ecp256")));
  EXPECT_FALSE(proposal_acceptable(q, ike("aes256gcm16-prfsha256-x25519")));
}

TEST(ProposalSelect, TransformWithAnUnknownAttributeIsUnacceptable) {
  auto offered = esp("aes128gcm16");
  offered[0].transforms[0].other_attributes.push_back({77, true, {0, 1}});
  EXPECT_FALSE(select_proposal(offered, esp("aes128gcm16")));
}

TsList list(std::initializer_list<const char*> prefixes) {
  TsList out;
  for (auto p : prefixes) out.push_back(ts_from_prefix(*IpPrefix::parse(p)));
  return out;
}

TEST(TrafficSelectors, NarrowingIntersects) {
  auto n = narrow(list({"10.0.0.0/8", "192.0.2.0/24"}), list({"10.1.0.0/16", "192.0.2.128/25", "172.16.0.0/12"}));
  ASSERT_EQ(n.size(), 2u);
  EXPECT_EQ(ts_to_string(n[0]), "10.1.0.0/16");
  EXPECT_EQ(ts_to_string(n[1]), "192.0.2.128/25");
  EXPECT_TRUE(narrow(list({"10.0.0.0/8"}), list({"172.16.0.0/12"})).empty());
  EXPECT_TRUE(narrow(list({"10.0.0.0/8"}), list({"2001:db8::/32"})).empty());
}

TEST(TrafficSelectors, PortsAndProtocolsNarrow) {
  auto a = list({"10.0.0.0/8"});
  a[0].ip_protocol = 6;
  a[0].start_port = 1000;
  a[0].end_port = 2000;
  auto b = list({"10.2.0.0/16"});
  b[0].start_port = 1500;
  auto n = narrow(a, b);
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(ts_to_string(n[0]), "10.2.0.0/16[6/1500-2000]");
  b[0].ip_protocol = 17;
  EXPECT_TRUE(narrow(a, b).empty());
}

TEST(TrafficSelectors, SubsetAndRanges) {
  EXPECT_TRUE(ts_subset(list({"10.1.2.0/24"}), list({"10.0.0.0/8"})));
  EXPECT_FALSE(ts_subset(list({"10.0.0.0/8"}), list({"10.1.2.0/24"})));
  auto r = list({"10.0.0.0/8"});
  r[0].start_address = *IpAddress::parse("10.0.0.5");
  r[0].end_address = *IpAddress::parse("10.0.0.9");
  EXPECT_EQ(ts_to_string(r[0]), "10.0.0.5-10.0.0.9");
  EXPECT_EQ(ts_to_string(ts_from_address(*IpAddress::parse("2001:db8::1"))), "2001:db8::1/128");
  EXPECT_EQ(ts_from_config({}, *IpAddress::parse("192.0.2.7")).size(), 1u);
}

std::vector<std::string> strings(const TsList& l) {
  std::vector<std::string> out;
  for (const auto& t : l) out.push_back(ts_to_string(t));
  return out;
}

// "dynamic" (no configured prefixes): the IKE address, the families of the virtual IPs
// being asked for, or, once assigned, the virtual IPs themselves.
TEST(TrafficSelectors, DynamicSideFollowsVirtualIps) {
  auto a = [](const char* s) { return *IpAddress::parse(s); };
  const auto outer = a("192.0.2.7");
  using V = std::vector<std::string>;
  EXPECT_EQ(strings(dynamic_ts({}, {}, {}, outer)), V{"192.0.2.7/32"});
  EXPECT_EQ(strings(dynamic_ts({}, {a("0.0.0.0"), a("::")}, {}, outer)), (V{"0.0.0.0/0", "::/0"}));
  // A particular address asked for is still narrowed by the gateway: its whole family.
  EXPECT_EQ(strings(dynamic_ts({}, {a("10.3.0.9"), a("0.0.0.0")}, {}, outer)), V{"0.0.0.0/0"});
  // Assigned: those alone, whatever was asked for, for every later Child SA.
  EXPECT_EQ(strings(dynamic_ts({}, {a("0.0.0.0"), a("::")}, {a("10.3.0.1"), a("2001:db8:3::1")}, outer)),
            (V{"10.3.0.1/32", "2001:db8:3::1/128"}));
  EXPECT_EQ(strings(dynamic_ts({}, {}, {a("10.3.0.1")}, outer)), V{"10.3.0.1/32"});
  // Configured selectors are not "dynamic": kept as they are.
  EXPECT_EQ(strings(dynamic_ts({*IpPrefix::parse("10.20.0.0/16")}, {a("0.0.0.0")}, {a("10.3.0.1")}, outer)),
            V{"10.20.0.0/16"});
}

}  // namespace
}  // namespace mobike::ike
