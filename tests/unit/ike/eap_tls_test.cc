// EAP-TLS's MSK (RFC 5216 §2.3; RFC 9190 §2.3, or TLS 1.3 as before RFC 9190) and the
// "negotiated" text for the log, over real TLS 1.2 and 1.3 handshakes between two
// TlsSessions; the exporter outputs are computed here independently of tls_msk().
#include "ike/eap_tls.h"

#include <gtest/gtest.h>

#include "crypto/cert_builder.h"

namespace mobike::ike::eap {
namespace {

using crypto::TlsSession;

struct Ends {
  std::unique_ptr<TlsSession> client, server;
};

Ends handshake(int version) {
  auto ca_key = crypto::PrivateKey::generate(crypto::KeyType::kEcdsaP256);
  auto ca = crypto::issue_certificate({.subject = "C=CH, O=Mobike Test, CN=Root", .ca = true}, *ca_key, nullptr,
                                      *ca_key);
  auto leaf = [&](const char* cn) {
    std::shared_ptr<crypto::PrivateKey> key = crypto::PrivateKey::generate(crypto::KeyType::kEcdsaP256);
    auto cert = crypto::issue_certificate({.subject = std::string("C=CH, O=Mobike Test, CN=") + cn, .serial = 3}, *key,
                                          ca.get(), *ca_key);
    return std::pair{key, cert};
  };
  auto [gk, gc] = leaf("gw.example.test");
  auto [ck, cc] = leaf("carol");
  auto server = TlsSession::create({.server = true, .key = gk, .certs = {gc}, .max_version = version});
  auto client = TlsSession::create({.server = false, .key = ck, .certs = {cc}, .max_version = version});
  EXPECT_TRUE(server && client);
  Ends e{std::move(*client), std::move(*server)};
  EXPECT_TRUE(e.client->start());
  for (int i = 0; i < 10; ++i) {
    Bytes c = e.client->take_output();
    if (!c.empty()) {
      EXPECT_TRUE(e.server->feed(c));
    }
    Bytes s = e.server->take_output();
    if (!s.empty()) {
      EXPECT_TRUE(e.client->feed(s));
    }
    if (c.empty() && s.empty()) break;
  }
  EXPECT_TRUE(e.client->established() && e.server->established());
  return e;
}

Bytes first64(const Expected<Bytes, std::string>& km) {
  EXPECT_TRUE(km) << km.error();
  return km ? Bytes(km->begin(), km->begin() + 64) : Bytes{};
}

TEST(EapTlsMsk, Tls13SchemesTakeTheirOwnExporterLabels) {
  Ends e = handshake(0x0304);
  ASSERT_TRUE(e.server->is_tls13());
  const Bytes rfc9190 = first64(
      e.server->export_keying_material("EXPORTER_EAP_TLS_Key_Material", 128, Bytes{13}, true));
  const Bytes before = first64(e.server->export_keying_material("client EAP encryption", 128, {}, false));
  ASSERT_NE(rfc9190, before);
  // In TLS 1.3 "no context" is the empty context (RFC 8446 §7.5), as the scheme before
  // RFC 9190 computed it.
  EXPECT_EQ(before, first64(e.server->export_keying_material("client EAP encryption", 128, {}, true)));
  for (const auto* end : {e.server.get(), e.client.get()}) {
    auto a = tls_msk(*end);
    auto b = tls_msk(*end, Tls13Scheme::kRfc9190);
    auto c = tls_msk(*end, Tls13Scheme::kPreRfc9190);
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(*a, rfc9190);
    EXPECT_EQ(*b, rfc9190);
    EXPECT_EQ(*c, before);
  }
  EXPECT_EQ(tls_negotiated(e.server.get()), "TLS 1.3 with " + e.server->cipher_suite());
  EXPECT_EQ(tls_negotiated(e.client.get()), tls_negotiated(e.server.get()));
}

TEST(EapTlsMsk, Tls12IsTheSameInBothSchemes) {
  Ends e = handshake(0x0303);
  ASSERT_FALSE(e.server->is_tls13());
  const Bytes rfc5216 = first64(e.server->export_keying_material("client EAP encryption", 128, {}, false));
  for (auto scheme : {Tls13Scheme::kRfc9190, Tls13Scheme::kPreRfc9190}) {
    auto s = tls_msk(*e.server, scheme);
    auto c = tls_msk(*e.client, scheme);
    ASSERT_TRUE(s && c);
    EXPECT_EQ(*s, rfc5216);
    EXPECT_EQ(*c, rfc5216);
  }
  const std::string n = tls_negotiated(e.client.get());
  EXPECT_EQ(n.rfind("TLS 1.2 with TLS_ECDHE_ECDSA_WITH_", 0), 0u) << n;
}

TEST(EapTlsMsk, NothingNegotiatedBeforeTheHandshake) {
  EXPECT_EQ(tls_negotiated(nullptr), "");
  auto t = TlsSession::create({.server = false});
  ASSERT_TRUE(t);
  ASSERT_TRUE((*t)->start());
  EXPECT_EQ(tls_negotiated(t->get()), "");
  EXPECT_FALSE(tls_msk(**t));
}

}  // namespace
}  // namespace mobike::ike::eap
