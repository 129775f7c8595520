#include <gtest/gtest.h>

#include "crypto/cert_builder.h"
#include "crypto/certificate.h"
#include "crypto/signature.h"

namespace mobike::crypto {
namespace {

Bytes msg(const char* s) { return to_bytes(std::string_view(s)); }

struct Pki {
  std::shared_ptr<PrivateKey> root_key = PrivateKey::generate(KeyType::kEcdsaP256);
  std::shared_ptr<const Certificate> root =
      issue_certificate({.subject = "C=CH, O=Mobike Test, CN=Root CA", .ca = true}, *root_key, nullptr, *root_key);
  std::shared_ptr<PrivateKey> mid_key = PrivateKey::generate(KeyType::kEcdsaP256);
  std::shared_ptr<const Certificate> mid = issue_certificate(
      {.subject = "C=CH, O=Mobike Test, CN=Intermediate CA", .ca = true, .serial = 2}, *mid_key, root.get(), *root_key);
  std::shared_ptr<PrivateKey> ee_key = PrivateKey::generate(KeyType::kEcdsaP256);
  std::shared_ptr<const Certificate> ee = issue_certificate(
      {.subject = "C=CH, O=Mobike Test, CN=gw.example.test",
       .san_dns = {"gw.example.test"},
       .san_email = {"ops@example.test"},
       .san_ip = {"198.51.100.10", "2001:db8::10"},
       .serial = 7},
      *ee_key, mid.get(), *mid_key);
  TrustStore store() const {
    TrustStore t;
    t.add_anchor(root);
    return t;
  }
};

TEST(Signature, EverySchemeSignsAndVerifiesAndRefusesTampering) {
  struct Case {
    KeyType key;
    SignatureScheme scheme;
  };
  auto rsa = PrivateKey::generate(KeyType::kRsa);
  const Case cases[] = {
      {KeyType::kRsa, {SignatureKind::kRsaPkcs1, HashAlgorithm::kSha1}},
      {KeyType::kRsa, {SignatureKind::kRsaPkcs1, HashAlgorithm::kSha256}},
      {KeyType::kRsa, {SignatureKind::kRsaPss, HashAlgorithm::kSha256}},
      {KeyType::kRsa, {SignatureKind::kRsaPss, HashAlgorithm::kSha512}},
      {KeyType::kEcdsaP256, {SignatureKind::kEcdsa, HashAlgorithm::kSha256}},
      {KeyType::kEcdsaP384, {SignatureKind::kEcdsa, HashAlgorithm::kSha384}},
      {KeyType::kEcdsaP521, {SignatureKind::kEcdsa, HashAlgorithm::kSha512}},
      {KeyType::kEd25519, {SignatureKind::kEd25519, HashAlgorithm::kIdentity}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(scheme_name(c.scheme));
    auto key = c.key == KeyType::kRsa ? rsa : PrivateKey::generate(c.key);
    ASSERT_EQ(key->type(), c.key);
    Bytes sig = key->sign(c.scheme, msg("signed octets"));
    ASSERT_FALSE(sig.empty());
    auto cert = issue_certificate({.subject = "CN=k"}, *key, nullptr, *key);
    ASSERT_TRUE(cert);
    const PublicKey& pub = cert->public_key();
    EXPECT_TRUE(pub.verify(c.scheme, msg("signed octets"), sig));
    EXPECT_FALSE(pub.verify(c.scheme, msg("signed octetz"), sig));
    Bytes bad = sig;
    bad[bad.size() / 2] ^= 1;
    EXPECT_FALSE(pub.verify(c.scheme, msg("signed octets"), bad));
  }
}

TEST(Signature, SchemeThatDoesNotFitTheKeyFailsCleanly) {
  auto ec = PrivateKey::generate(KeyType::kEcdsaP256);
  EXPECT_TRUE(ec->sign({SignatureKind::kRsaPkcs1, HashAlgorithm::kSha256}, msg("x")).empty());
  EXPECT_TRUE(ec->sign({SignatureKind::kEd25519, HashAlgorithm::kIdentity}, msg("x")).empty());
}

TEST(Signature, RawEcdsaHasFixedLengthAndVerifies) {
  for (auto [type, hash, len] : {std::tuple{KeyType::kEcdsaP256, HashAlgorithm::kSha256, 64u},
                                 std::tuple{KeyType::kEcdsaP384, HashAlgorithm::kSha384, 96u},
                                 std::tuple{KeyType::kEcdsaP521, HashAlgorithm::kSha512, 132u}}) {
    auto key = PrivateKey::generate(type);
    auto cert = issue_certificate({.subject = "CN=k"}, *key, nullptr, *key);
    Bytes sig = key->sign_raw_ecdsa(hash, msg("octets"));
    ASSERT_EQ(sig.size(), len);
    EXPECT_TRUE(cert->public_key().verify_raw_ecdsa(hash, msg("octets"), sig));
    EXPECT_FALSE(cert->public_key().verify_raw_ecdsa(hash, msg("octetz"), sig));
    sig.pop_back();
    EXPECT_FALSE(cert->public_key().verify_raw_ecdsa(hash, msg("octets"), sig));
  }
}

TEST(AlgorithmIdentifier, MatchesRfc7427AppendixAEncodings) {
  // RFC 7427 Appendix A.3.1 (ecdsa-with-sha256) and A.1.2 (sha256WithRSAEncryption).
  EXPECT_EQ(to_hex(algorithm_identifier({SignatureKind::kEcdsa, HashAlgorithm::kSha256})),
            "300a06082a8648ce3d040302");
  EXPECT_EQ(to_hex(algorithm_identifier({SignatureKind::kRsaPkcs1, HashAlgorithm::kSha256})),
            "300d06092a864886f70d01010b0500");
  EXPECT_EQ(to_hex(algorithm_identifier({SignatureKind::kEd25519, HashAlgorithm::kIdentity})), "300506032b6570");
}

TEST(AlgorithmIdentifier, RoundTripsEveryScheme) {
  for (auto s : {SignatureScheme{SignatureKind::kRsaPkcs1, HashAlgorithm::kSha384},
                 SignatureScheme{SignatureKind::kRsaPss, HashAlgorithm::kSha256},
                 SignatureScheme{SignatureKind::kRsaPss, HashAlgorithm::kSha384},
                 SignatureScheme{SignatureKind::kEcdsa, HashAlgorithm::kSha512},
                 SignatureScheme{SignatureKind::kEd25519, HashAlgorithm::kIdentity}}) {
    auto parsed = parse_algorithm_identifier(algorithm_identifier(s));
    ASSERT_TRUE(parsed) << scheme_name(s) << ": " << parsed.error();
    EXPECT_EQ(parsed->scheme, s);
    if (s.kind == SignatureKind::kRsaPss) {
      EXPECT_EQ(parsed->pss_salt_length, s.hash == HashAlgorithm::kSha256 ? 32 : 48);
    }
  }
}

TEST(AlgorithmIdentifier, RefusesMalformedAndUnknown) {
  Bytes good = algorithm_identifier({SignatureKind::kEcdsa, HashAlgorithm::kSha256});
  Bytes truncated(good.begin(), good.end() - 1);
  EXPECT_FALSE(parse_algorithm_identifier(truncated));
  Bytes trailing = good;
  trailing.push_back(0);
  EXPECT_FALSE(parse_algorithm_identifier(trailing));
  EXPECT_FALSE(parse_algorithm_identifier({}));
  // 1.2.3.4: not a signature algorithm
  auto unknown = parse_algorithm_identifier(from_hex("3005060329 0304"));
  EXPECT_FALSE(unknown);
  // RSA-PSS without parameters
  EXPECT_FALSE(parse_algorithm_identifier(from_hex("300b06092a864886f70d01010a")));
}

TEST(Certificate, ReadsSubjectSansAndKeyId) {
  Pki pki;
  ASSERT_TRUE(pki.ee);
  EXPECT_EQ(pki.ee->subject(), "C=CH, O=Mobike Test, CN=gw.example.test");
  EXPECT_EQ(pki.ee->issuer(), "C=CH, O=Mobike Test, CN=Intermediate CA");
  EXPECT_EQ(pki.ee->san_dns(), std::vector<std::string>{"gw.example.test"});
  EXPECT_EQ(pki.ee->san_email(), std::vector<std::string>{"ops@example.test"});
  ASSERT_EQ(pki.ee->san_ip().size(), 2u);
  EXPECT_EQ(pki.ee->san_ip()[0], (Bytes{198, 51, 100, 10}));
  EXPECT_EQ(pki.ee->san_ip()[1].size(), 16u);
  EXPECT_EQ(pki.ee->key_id().size(), 20u);
  EXPECT_NE(pki.ee->key_id(), pki.mid->key_id());
  EXPECT_TRUE(pki.mid->is_ca());
  EXPECT_FALSE(pki.ee->is_ca());
  EXPECT_EQ(pki.ee->public_key().der(), pki.ee_key->public_key_der());
}

TEST(Certificate, PemAndDerRoundTrip) {
  Pki pki;
  auto pem = to_pem(*pki.ee) + to_pem(*pki.mid);
  auto certs = Certificate::from_pem(pem);
  ASSERT_TRUE(certs);
  ASSERT_EQ(certs->size(), 2u);
  EXPECT_EQ((*certs)[0]->der(), pki.ee->der());
  auto der = Certificate::from_der(pki.ee->der());
  ASSERT_TRUE(der);
  EXPECT_EQ((*der)->subject_der(), pki.ee->subject_der());
  Bytes cut(pki.ee->der().begin(), pki.ee->der().end() - 3);
  EXPECT_FALSE(Certificate::from_der(cut));
  EXPECT_FALSE(Certificate::from_pem("not a certificate"));
  auto key = PrivateKey::from_pem(to_pem(*pki.ee_key));
  ASSERT_TRUE(key);
  EXPECT_EQ((*key)->public_key_der(), pki.ee_key->public_key_der());
  EXPECT_FALSE(PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
}

TEST(TrustStore, VerifiesAPathThroughAnIntermediate) {
  Pki pki;
  auto t = pki.store();
  auto ok = t.verify(*pki.ee, {pki.mid});
  EXPECT_TRUE(ok) << ok.error();
  auto missing = t.verify(*pki.ee, {});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("issuer"), std::string::npos) << missing.error();
}

TEST(TrustStore, RefusesAnotherCaAndAnExpiredCertificate) {
  Pki pki, other;
  auto t = other.store();
  EXPECT_FALSE(t.verify(*pki.ee, {pki.mid}));
  auto good = pki.store();
  std::time_t later = std::time(nullptr) + 60L * 86400;
  auto expired = good.verify(*pki.ee, {pki.mid}, later);
  ASSERT_FALSE(expired);
  EXPECT_NE(expired.error().find("expired"), std::string::npos) << expired.error();
  TrustStore empty;
  EXPECT_FALSE(empty.verify(*pki.ee, {pki.mid}));
}

TEST(TrustStore, RefusesARevokedCertificateAndIgnoresAForeignCrl) {
  Pki pki;
  auto t = pki.store();
  // A CRL under the intermediate's name but another key must not count.
  auto impostor_key = PrivateKey::generate(KeyType::kEcdsaP256);
  auto impostor = issue_certificate({.subject = "C=CH, O=Mobike Test, CN=Intermediate CA", .ca = true},
                                    *impostor_key, nullptr, *impostor_key);
  t.add_crl(issue_crl(*impostor, *impostor_key, {7}));
  EXPECT_TRUE(t.verify(*pki.ee, {pki.mid}));
  t.add_crl(issue_crl(*pki.mid, *pki.mid_key, {3, 9}));
  EXPECT_TRUE(t.verify(*pki.ee, {pki.mid}));
  t.add_crl(issue_crl(*pki.mid, *pki.mid_key, {7}));
  auto revoked = t.verify(*pki.ee, {pki.mid});
  ASSERT_FALSE(revoked);
  EXPECT_NE(revoked.error().find("revoked"), std::string::npos) << revoked.error();
  auto crls = Crl::from_pem_or_der(to_pem(*issue_crl(*pki.mid, *pki.mid_key, {1})));
  ASSERT_TRUE(crls);
  EXPECT_EQ(crls->size(), 1u);
  EXPECT_FALSE(Crl::from_pem_or_der("garbage"));
}

TEST(DistinguishedName, ParsesPrintsAndMatches) {
  auto dn = dn_from_text("C=CH, O=Mobike Test, CN=gw.example.test");
  ASSERT_TRUE(dn);
  EXPECT_EQ(dn_to_text(*dn), "C=CH, O=Mobike Test, CN=gw.example.test");
  auto slash = dn_from_text("/C=CH/O=Mobike Test/CN=gw.example.test");
  ASSERT_TRUE(slash);
  EXPECT_TRUE(dn_matches(*dn, *slash));
  auto comma = dn_from_text("O=Example\\, Inc., E=ops@example.test");
  ASSERT_TRUE(comma);
  EXPECT_EQ(dn_to_text(*comma), "O=Example\\, Inc., E=ops@example.test");
  EXPECT_FALSE(dn_from_text("gw.example.test"));
  EXPECT_FALSE(dn_from_text("XX=1, CN=a"));
  EXPECT_FALSE(dn_from_text("CN="));
  EXPECT_FALSE(dn_from_text("C=Switzerland"));  // countryName is two letters
  EXPECT_FALSE(dn_to_text(Bytes{0x30, 0x05, 0x01}));

  auto pattern = dn_from_text("C=CH, O=mobike test, CN=*");
  EXPECT_TRUE(dn_matches(*dn, *pattern));
  EXPECT_TRUE(dn_matches(*dn, *dn_from_text("c=ch, o=MOBIKE TEST, cn=GW.example.test")));
  EXPECT_FALSE(dn_matches(*dn, *dn_from_text("C=CH, CN=*")));                  // fewer RDNs
  EXPECT_FALSE(dn_matches(*dn, *dn_from_text("O=Mobike Test, C=CH, CN=*")));  // other order
  EXPECT_FALSE(dn_matches(*dn, *dn_from_text("C=CH, O=Other, CN=*")));
  // The certificate's encoding of its subject matches the text form's.
  Pki pki;
  EXPECT_TRUE(dn_matches(pki.ee->subject_der(), *dn));
}

}  // namespace
}  // namespace mobike::crypto
