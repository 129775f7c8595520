#include "ike/proposal_string.h"

#include <gtest/gtest.h>

namespace mobike::ike {
namespace {

using wire::Transform;
using wire::TransformType;

Transform encr(wire::EncrId id, std::optional<std::uint16_t> bits) {
  return Transform{TransformType::kEncr, static_cast<std::uint16_t>(id), bits};
}
Transform prf(wire::PrfId id) {
  return Transform{TransformType::kPrf, static_cast<std::uint16_t>(id), std::nullopt};
}
Transform integ(wire::IntegId id) {
  return Transform{TransformType::kInteg, static_cast<std::uint16_t>(id), std::nullopt};
}
Transform dh(wire::DhGroup id) {
  return Transform{TransformType::kDh, static_cast<std::uint16_t>(id), std::nullopt};
}
Transform esn(wire::EsnId id) {
  return Transform{TransformType::kEsn, static_cast<std::uint16_t>(id), std::nullopt};
}

std::vector<wire::Proposal> ike_ok(std::string_view text) {
  auto r = parse_ike_proposals(text);
  EXPECT_TRUE(r) << text << ": " << (r ? "" : r.error());
  return r ? *r : std::vector<wire::Proposal>{};
}
std::vector<wire::Proposal> esp_ok(std::string_view text) {
  auto r = parse_esp_proposals(text);
  EXPECT_TRUE(r) << text << ": " << (r ? "" : r.error());
  return r ? *r : std::vector<wire::Proposal>{};
}
std::string ike_err(std::string_view text) {
  auto r = parse_ike_proposals(text);
  EXPECT_FALSE(r) << text;
  return r ? std::string() : r.error();
}
std::string esp_err(std::string_view text) {
  auto r = parse_esp_proposals(text);
  EXPECT_FALSE(r) << text;
  return r ? std::string() : r.error();
}

TEST(ProposalString, IkeAeadWithPrf) {
  auto ps = ike_ok("aes128gcm16-prfsha256-x25519");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].number, 1);
  EXPECT_EQ(ps[0].protocol, wire::ProtocolId::kIke);
  EXPECT_TRUE(ps[0].spi.empty());
  std::vector<Transform> want = {encr(wire::EncrId::kAesGcm16, 128), prf(wire::PrfId::kHmacSha256),
                                 dh(wire::DhGroup::kCurve25519)};
  EXPECT_EQ(ps[0].transforms, want);
}

TEST(ProposalString, IkeCbcIntegrityImpliesPrf) {
  auto ps = ike_ok("aes256-sha384-ecp384");
  ASSERT_EQ(ps.size(), 1u);
  std::vector<Transform> want = {encr(wire::EncrId::kAesCbc, 256), prf(wire::PrfId::kHmacSha384),
                                 integ(wire::IntegId::kHmacSha384_192), dh(wire::DhGroup::kEcp384)};
  EXPECT_EQ(ps[0].transforms, want);

  ps = ike_ok("aes128-sha256-modp2048");
  ASSERT_EQ(ps.size(), 1u);
  want = {encr(wire::EncrId::kAesCbc, 128), prf(wire::PrfId::kHmacSha256),
          integ(wire::IntegId::kHmacSha256_128), dh(wire::DhGroup::kModp2048)};
  EXPECT_EQ(ps[0].transforms, want);
}

TEST(ProposalString, ExplicitPrfOverridesImpliedOne) {
  auto ps = ike_ok("aes128-sha256-prfsha512-ecp256");
  ASSERT_EQ(ps.size(), 1u);
  std::vector<Transform> want = {encr(wire::EncrId::kAesCbc, 128), prf(wire::PrfId::kHmacSha512),
                                 integ(wire::IntegId::kHmacSha256_128), dh(wire::DhGroup::kEcp256)};
  EXPECT_EQ(ps[0].transforms, want);
}

TEST(ProposalString, SeveralAlgorithmsOfOneTypeKeepTheirOrder) {
  auto ps = ike_ok("aes256-aes128-sha512-sha256-modp3072-modp2048");
  ASSERT_EQ(ps.size(), 1u);
  std::vector<Transform> want = {
      encr(wire::EncrId::kAesCbc, 256),       encr(wire::EncrId::kAesCbc, 128),
      prf(wire::PrfId::kHmacSha512),          prf(wire::PrfId::kHmacSha256),
      integ(wire::IntegId::kHmacSha512_256),  integ(wire::IntegId::kHmacSha256_128),
      dh(wire::DhGroup::kModp3072),           dh(wire::DhGroup::kModp2048)};
  EXPECT_EQ(ps[0].transforms, want);
}

TEST(ProposalString, ChaChaHasNoKeyLengthAttribute) {
  auto ps = ike_ok("chacha20poly1305-prfsha512-curve25519");
  ASSERT_EQ(ps.size(), 1u);
  std::vector<Transform> want = {encr(wire::EncrId::kChaCha20Poly1305, std::nullopt),
                                 prf(wire::PrfId::kHmacSha512), dh(wire::DhGroup::kCurve25519)};
  EXPECT_EQ(ps[0].transforms, want);
}

TEST(ProposalString, CommaSeparatedListIsNumberedInOrder) {
  auto ps = ike_ok(" aes128gcm16-prfsha256-x25519 , aes256-sha384-ecp384,aes128-sha256-modp2048 ");
  ASSERT_EQ(ps.size(), 3u);
  for (std::size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(ps[i].number, i + 1);
  EXPECT_EQ(ps[1].transforms.front(), encr(wire::EncrId::kAesCbc, 256));
  EXPECT_EQ(ps[2].transforms.back(), dh(wire::DhGroup::kModp2048));
}

TEST(ProposalString, AliasesAndCaseInsensitivity) {
  EXPECT_EQ(ike_ok("aes128gcm-prfsha256-curve25519"), ike_ok("AES128GCM16-PRFSHA256-X25519"));
  EXPECT_EQ(esp_ok("aes256gcm"), esp_ok("aes256gcm16"));
}

TEST(ProposalString, EspDefaultsToNoEsn) {
  auto ps = esp_ok("aes256gcm16");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].protocol, wire::ProtocolId::kEsp);
  std::vector<Transform> want = {encr(wire::EncrId::kAesGcm16, 256), esn(wire::EsnId::kNoEsn)};
  EXPECT_EQ(ps[0].transforms, want);
}

TEST(ProposalString, EspDhIsPfsGroupAndNoPrfIsImplied) {
  auto ps = esp_ok("aes128gcm16-x25519");
  ASSERT_EQ(ps.size(), 1u);
  std::vector<Transform> want = {encr(wire::EncrId::kAesGcm16, 128), dh(wire::DhGroup::kCurve25519),
                                 esn(wire::EsnId::kNoEsn)};
  EXPECT_EQ(ps[0].transforms, want);

  ps = esp_ok("aes128-sha256-esn");
  ASSERT_EQ(ps.size(), 1u);
  want = {encr(wire::EncrId::kAesCbc, 128), integ(wire::IntegId::kHmacSha256_128),
          esn(wire::EsnId::kEsn)};
  EXPECT_EQ(ps[0].transforms, want);

  ps = esp_ok("aes128-sha256-noesn");
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].transforms.back(), esn(wire::EsnId::kNoEsn));

  ps = esp_ok("aes128gcm16-esn-noesn");
  ASSERT_EQ(ps.size(), 1u);
  ASSERT_EQ(ps[0].transforms.size(), 3u);
  EXPECT_EQ(ps[0].transforms[1], esn(wire::EsnId::kEsn));
  EXPECT_EQ(ps[0].transforms[2], esn(wire::EsnId::kNoEsn));
}

TEST(ProposalString, UnknownKeywordIsNamed) {
  EXPECT_EQ(ike_err("aes129-sha256-modp2048"), "unknown algorithm 'aes129'");
  EXPECT_EQ(esp_err("aes128gcm16, 3des-sha1"), "unknown algorithm '3des'");
}

TEST(ProposalString, AeadIkeProposalNeedsPrf) {
  EXPECT_NE(ike_err("aes128gcm16-x25519").find("needs a prf"), std::string::npos);
}

TEST(ProposalString, AeadWithIntegrityIsRejected) {
  auto e = ike_err("aes128gcm16-sha256-x25519");
  EXPECT_NE(e.find("'aes128gcm16'"), std::string::npos) << e;
  EXPECT_NE(e.find("'sha256'"), std::string::npos) << e;
  EXPECT_NE(e.find("prfsha256"), std::string::npos) << e;  // the hint
  EXPECT_NE(esp_err("aes256gcm16-sha384").find("must not be combined"), std::string::npos);
}

TEST(ProposalString, StructuralErrors) {
  EXPECT_NE(ike_err("aes128-sha256").find("key exchange"), std::string::npos);
  EXPECT_NE(ike_err("aes128-modp2048").find("integrity"), std::string::npos);
  EXPECT_NE(esp_err("aes128").find("integrity"), std::string::npos);
  EXPECT_NE(ike_err("sha256-prfsha256-modp2048").find("no encryption"), std::string::npos);
  EXPECT_NE(ike_err("aes128-aes128gcm16-prfsha256-modp2048").find("mixes AEAD"),
            std::string::npos);
  EXPECT_NE(ike_err("aes128gcm16-prfsha256-x25519-curve25519").find("duplicate"),
            std::string::npos);
  EXPECT_NE(ike_err("aes128gcm16--prfsha256-x25519").find("empty algorithm"), std::string::npos);
  EXPECT_NE(ike_err("aes128gcm16-prfsha256-x25519,").find("empty proposal"), std::string::npos);
  EXPECT_NE(ike_err("  ").find("no proposals"), std::string::npos);
}

TEST(ProposalString, SideSpecificKeywords) {
  EXPECT_EQ(ike_err("aes128gcm16-prfsha256-x25519-esn"), "'esn' is only valid in ESP proposals");
  EXPECT_EQ(esp_err("aes128gcm16-prfsha256"), "'prfsha256' is only valid in IKE proposals");
}

TEST(ProposalString, TooManyProposals) {
  std::string text;
  for (int i = 0; i < 256; ++i) text += (i ? "," : "") + std::string("aes128gcm16");
  EXPECT_NE(esp_err(text).find("255"), std::string::npos);
  text.erase(text.rfind(','));
  EXPECT_EQ(esp_ok(text).back().number, 255);
}

TEST(ProposalString, ToStringSwanctlStyle) {
  EXPECT_EQ(proposal_to_string(ike_ok("aes128gcm16-prfsha256-x25519")[0]),
            "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519");
  EXPECT_EQ(proposal_to_string(ike_ok("aes256-sha384-ecp384")[0]),
            "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384");
  EXPECT_EQ(proposal_to_string(ike_ok("chacha20poly1305-prfsha512-modp3072")[0]),
            "CHACHA20_POLY1305/PRF_HMAC_SHA2_512/MODP_3072");
  EXPECT_EQ(proposal_to_string(esp_ok("aes256gcm16")[0]), "AES_GCM_16-256");
  EXPECT_EQ(proposal_to_string(esp_ok("aes128-sha512-ecp256-esn")[0]),
            "AES_CBC-128/HMAC_SHA2_512_256/ECP_256/ESN");
  EXPECT_EQ(proposal_to_string(esp_ok("aes128gcm16-esn-noesn")[0]), "AES_GCM_16-128/ESN/NO_ESN");
  EXPECT_EQ(proposals_to_string(esp_ok("aes128gcm16,aes256gcm16")), "AES_GCM_16-128, AES_GCM_16-256");
}

TEST(ProposalString, ToStringNamesUnknownValuesByNumber) {
  wire::Proposal p;
  p.transforms = {Transform{TransformType::kEncr, 1234, 128}, Transform{TransformType::kPrf, 99, {}},
                  Transform{TransformType::kInteg, 77, {}}, Transform{TransformType::kDh, 4242, {}},
                  Transform{static_cast<TransformType>(6), 31, {}}};
  EXPECT_EQ(proposal_to_string(p), "ENCR_1234-128/INTEG_77/PRF_99/DH_4242/TRANSFORM6_31");
}

}  // namespace
}  // namespace mobike::ike
