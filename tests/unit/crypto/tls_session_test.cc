// TlsSession (EAP-TLS's TLS over memory): handshakes in TLS 1.2 and 1.3 between two
// sessions, the certificates each side sees, exporters that agree, and refusals.
#include "crypto/tls_session.h"

#include <gtest/gtest.h>

#include "crypto/cert_builder.h"

namespace mobike::crypto {
namespace {

struct Pki {
  std::shared_ptr<PrivateKey> ca_key = PrivateKey::generate(KeyType::kEcdsaP256);
  std::shared_ptr<const Certificate> ca =
      issue_certificate({.subject = "C=CH, O=Mobike Test, CN=Root", .ca = true}, *ca_key, nullptr, *ca_key);
  struct Leaf {
    std::shared_ptr<PrivateKey> key;
    std::shared_ptr<const Certificate> cert;
  };
  Leaf issue(const std::string& cn, KeyType type = KeyType::kEcdsaP256) {
    Leaf l;
    l.key = PrivateKey::generate(type);
    l.cert = issue_certificate({.subject = "C=CH, O=Mobike Test, CN=" + cn, .serial = 7}, *l.key, ca.get(), *ca_key);
    return l;
  }
};

// Runs records between the two until neither has anything to send.
void pump(TlsSession& client, TlsSession& server) {
  for (int i = 0; i < 20; ++i) {
    Bytes c = client.take_output();
    if (!c.empty()) {
      ASSERT_TRUE(server.feed(c)) << "server";
    }
    Bytes s = server.take_output();
    if (!s.empty()) {
      ASSERT_TRUE(client.feed(s)) << "client";
    }
    if (c.empty() && s.empty()) return;
  }
  FAIL() << "handshake did not settle";
}

TlsSession::Config cfg(bool server, const Pki::Leaf& leaf, int max_version) {
  return {.server = server, .key = leaf.key, .certs = {leaf.cert}, .max_version = max_version};
}

TEST(TlsSession, HandshakesInBothVersionsAndTheExportersAgree) {
  for (int v : {0x0303, 0x0304}) {
    SCOPED_TRACE(v);
    Pki pki;
    auto gw = pki.issue("gw.example.test");
    auto user = pki.issue("carol", KeyType::kRsa);
    auto server = TlsSession::create(cfg(true, gw, v));
    auto client = TlsSession::create(cfg(false, user, v));
    ASSERT_TRUE(server && client);
    ASSERT_TRUE((*client)->start());
    pump(**client, **server);
    ASSERT_TRUE((*client)->established());
    ASSERT_TRUE((*server)->established());
    EXPECT_EQ((*server)->version(), v == 0x0303 ? "TLSv1.2" : "TLSv1.3");
    // IANA names, the same on both ends: TLS 1.3's suites name no key exchange.
    EXPECT_EQ((*server)->cipher_suite(), (*client)->cipher_suite());
    EXPECT_EQ((*server)->cipher_suite().rfind(v == 0x0303 ? "TLS_ECDHE_" : "TLS_AES_", 0), 0u)
        << (*server)->cipher_suite();
    EXPECT_EQ((*server)->peer_certificate()->subject(), "C=CH, O=Mobike Test, CN=carol");
    EXPECT_EQ((*client)->peer_certificate()->subject(), "C=CH, O=Mobike Test, CN=gw.example.test");
    TrustStore trust;
    trust.add_anchor(pki.ca);
    EXPECT_TRUE(trust.verify(*(*server)->peer_certificate(), (*server)->peer_chain()));
    auto a = (*server)->export_keying_material("client EAP encryption", 128, {}, false);
    auto b = (*client)->export_keying_material("client EAP encryption", 128, {}, false);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*a, *b);
    EXPECT_NE(*a, Bytes(128, 0));
    // RFC 9190's commitment message: one octet of application data from the server.
    ASSERT_TRUE((*server)->write_application_data(Bytes{0}));
    ASSERT_TRUE((*client)->feed((*server)->take_output()));
    EXPECT_EQ((*client)->take_application_data(), Bytes{0});
  }
}

TEST(TlsSession, AServerRefusesAClientWithoutCertificate) {
  Pki pki;
  auto gw = pki.issue("gw.example.test");
  auto server = TlsSession::create(cfg(true, gw, 0x0303));
  auto client = TlsSession::create({.server = false});
  ASSERT_TRUE(server && client);
  EXPECT_EQ((*server)->cipher_suite(), "");  // nothing negotiated yet
  ASSERT_TRUE((*client)->start());
  ASSERT_TRUE((*server)->feed((*client)->take_output()));
  ASSERT_TRUE((*client)->feed((*server)->take_output()));
  auto r = (*server)->feed((*client)->take_output());
  EXPECT_FALSE(r);
  EXPECT_FALSE((*server)->established());
}

TEST(TlsSession, GarbageIsAnErrorNotACrash) {
  Pki pki;
  auto gw = pki.issue("gw.example.test");
  auto server = TlsSession::create(cfg(true, gw, 0x0304));
  ASSERT_TRUE(server);
  auto r = (*server)->feed(Bytes{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5});
  EXPECT_FALSE(r);
  EXPECT_FALSE(TlsSession::create({.server = true}));  // no certificate
}

}  // namespace
}  // namespace mobike::crypto
