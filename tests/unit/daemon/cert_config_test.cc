// Certificate keys of [[connection]]: loading, the defaults strongSwan users expect, and
// every way the parts can fail to fit, each named by file, line and key.
#include <gtest/gtest.h>

#include "crypto/cert_builder.h"
#include "daemon/config.h"
#include "temp_dir.h"

namespace mobike::daemon {
namespace {

using testing::TempDir;

struct Files {
  TempDir dir;
  std::shared_ptr<crypto::PrivateKey> ca_key = crypto::PrivateKey::generate(crypto::KeyType::kEcdsaP256);
  std::shared_ptr<const crypto::Certificate> ca =
      crypto::issue_certificate({.subject = "C=CH, O=Mobike Test, CN=CA", .ca = true}, *ca_key, nullptr, *ca_key);
  std::shared_ptr<crypto::PrivateKey> key = crypto::PrivateKey::generate(crypto::KeyType::kEcdsaP256);
  std::shared_ptr<const crypto::Certificate> cert = crypto::issue_certificate(
      {.subject = "C=CH, O=Mobike Test, CN=gw.example.test", .san_dns = {"gw.example.test"}, .serial = 5}, *key,
      ca.get(), *ca_key);
  Files() {
    dir.write("ca.crt", crypto::to_pem(*ca), 0644);
    dir.write("gw.crt", crypto::to_pem(*cert), 0644);
    dir.write("gw.key", crypto::to_pem(*key), 0600);
    dir.write("ca.crl", crypto::to_pem(*crypto::issue_crl(*ca, *ca_key, {9})), 0644);
  }
  // The complete connection, with the keys `extra` sets taken from it instead.
  std::string config(const std::string& extra) {
    std::string text = "[[connection]]\nname = \"gw\"\nauth = \"pubkey\"\n";
    for (const char* line : {"local_certs = [\"gw.crt\"]\n", "local_key = \"gw.key\"\n", "cacerts = [\"ca.crt\"]\n"}) {
      std::string key = std::string(line).substr(0, std::string(line).find(' '));
      if (("\n" + extra).find("\n" + key + " =") == std::string::npos) text += line;
    }
    return dir.write("mobiked.toml", text + extra);
  }
};

TEST(CertConfig, LoadsKeyCertsAnchorsAndDefaultsTheIdentityToTheSubject) {
  Files f;
  auto r = load_config(f.config("crls = [\"ca.crl\"]\nremote_id = \"*@example.test\"\nsend_cert = \"always\"\n"));
  ASSERT_TRUE(r) << r.error();
  const auto& c = r->connections.at(0);
  EXPECT_EQ(c.local_auth, ike::AuthClass::kPubkey);
  EXPECT_EQ(c.remote_auth, ike::AuthClass::kPubkey);
  ASSERT_EQ(c.local_certs.size(), 1u);
  EXPECT_EQ(c.local_certs[0]->der(), f.cert->der());
  ASSERT_TRUE(c.private_key);
  ASSERT_TRUE(c.trust);
  EXPECT_EQ(c.trust->anchors().size(), 1u);
  EXPECT_EQ(c.local_id.type, wire::IdType::kDerAsn1Dn);
  EXPECT_EQ(c.local_id.data, f.cert->subject_der());
  EXPECT_EQ(c.send_cert, ike::SendCert::kAlways);
  ASSERT_TRUE(c.remote_id);
  EXPECT_EQ(c.remote_id->type, wire::IdType::kRfc822Addr);
  EXPECT_TRUE(c.remote_id->is_pattern());
  EXPECT_TRUE(c.psk.empty());
}

TEST(CertConfig, DnIdentityTakesTheCertificatesEncodingAndSanIdentityIsAccepted) {
  Files f;
  auto r = load_config(f.config("local_id = \"c=ch, o=mobike test, cn=GW.example.test\"\n"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->connections[0].local_id.data, f.cert->subject_der());
  r = load_config(f.config("local_id = \"gw.example.test\"\n"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->connections[0].local_id.type, wire::IdType::kFqdn);
}

TEST(CertConfig, MixedMethodsNeedThePskOnlyWhereUsed) {
  Files f;
  auto cfg = f.dir.write("mobiked.toml",
                         "[[connection]]\nname = \"gw\"\nlocal_auth = \"pubkey\"\nremote_auth = \"psk\"\n"
                         "local_certs = [\"gw.crt\"]\nlocal_key = \"gw.key\"\n");
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("key 'psk': required (psk or psk_file) when a side authenticates by PSK"),
            std::string::npos)
      << r.error();
  f.dir.write("mobiked.toml",
              "[[connection]]\nname = \"gw\"\nlocal_auth = \"pubkey\"\nremote_auth = \"psk\"\npsk = \"s\"\n"
              "local_certs = [\"gw.crt\"]\nlocal_key = \"gw.key\"\n");
  r = load_config(cfg);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->connections[0].remote_auth, ike::AuthClass::kPsk);
}

struct BadCert {
  std::string extra;
  std::string key;
  std::string message;
};

class CertConfigError : public ::testing::TestWithParam<BadCert> {};

TEST_P(CertConfigError, NamesFileLineAndKey) {
  Files f;
  f.dir.write("other.key", crypto::to_pem(*crypto::PrivateKey::generate(crypto::KeyType::kEcdsaP256)), 0600);
  f.dir.write("open.key", crypto::to_pem(*f.key), 0644);
  f.dir.write("junk.crt", "not a certificate", 0644);
  f.dir.write("cert-as.key", crypto::to_pem(*f.cert), 0600);
  const auto& c = GetParam();
  auto cfg = f.config(c.extra);
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(cfg + ":"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("key '" + c.key + "'"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find(c.message), std::string::npos) << r.error();
}

INSTANTIATE_TEST_SUITE_P(
    Bad, CertConfigError,
    ::testing::Values(
        BadCert{"local_key = \"other.key\"\n", "local_key", "is not the key of certificate 'C=CH, O=Mobike Test, CN=gw.example.test'"},
        BadCert{"local_key = \"open.key\"\n", "local_key", "readable or writable by group or others"},
        BadCert{"local_key = \"cert-as.key\"\n", "local_key", "not an unencrypted PEM private key"},
        BadCert{"local_certs = [\"junk.crt\"]\n", "local_certs", "junk.crt: no PEM certificate"},
        BadCert{"local_certs = [\"missing.crt\"]\n", "local_certs", "cannot read"},
        BadCert{"cacerts = [\"gw.crt\"]\n", "cacerts", "is not a CA certificate"},
        BadCert{"crls = [\"gw.crt\"]\n", "crls", "no PEM or DER CRL"},
        BadCert{"local_id = \"other.example.test\"\n", "local_id",
                "'other.example.test' is neither the subject nor a subjectAltName"},
        BadCert{"local_id = \"C=CH, O=Other, CN=gw.example.test\"\n", "local_id", "is neither the subject"}),
    [](const auto& info) { return std::to_string(info.index); });

TEST(CertConfig, MissingPartsAreNamed) {
  TempDir dir;
  auto cfg = dir.write("mobiked.toml", "[[connection]]\nname = \"gw\"\nlocal_id = \"gw\"\nauth = \"pubkey\"\n");
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("key 'local_certs': required when we authenticate by public key"), std::string::npos)
      << r.error();
  EXPECT_NE(r.error().find("key 'local_key': required"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("key 'cacerts': required when the peer authenticates by public key"), std::string::npos)
      << r.error();
}

}  // namespace
}  // namespace mobike::daemon
