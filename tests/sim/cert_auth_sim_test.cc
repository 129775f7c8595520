// IKE_AUTH with certificates between two engines: every key type, RFC 7427 and the
// classic methods, CERT/CERTREQ and send_cert, intermediates, wildcard identities,
// revocation, and the responder's choice between PSK and public-key connections.
#include <gtest/gtest.h>

#include "crypto/cert_builder.h"
#include "ike/authenticator.h"
#include "ike/ike_sa.h"
#include "ike/protection.h"
#include "wire/codec.h"
#include "ike_pair.h"

namespace mobike::sim {
namespace {

using crypto::KeyType;
using ike::AuthClass;
using ike::SendCert;

struct Issued {
  std::shared_ptr<crypto::PrivateKey> key;
  std::shared_ptr<const crypto::Certificate> cert;
};

struct TestPki {
  Issued root, mid;
  explicit TestPki(const char* name = "Root CA") {
    root.key = crypto::PrivateKey::generate(KeyType::kEcdsaP256);
    root.cert = crypto::issue_certificate({.subject = std::string("C=CH, O=Mobike Test, CN=") + name, .ca = true},
                                          *root.key, nullptr, *root.key);
    mid.key = crypto::PrivateKey::generate(KeyType::kEcdsaP256);
    mid.cert = crypto::issue_certificate({.subject = "C=CH, O=Mobike Test, CN=Intermediate", .ca = true, .serial = 2},
                                         *mid.key, root.cert.get(), *root.key);
  }
  Issued issue(const std::string& cn, KeyType type, crypto::CertRequest req = {}, bool via_mid = true) {
    Issued i;
    i.key = crypto::PrivateKey::generate(type);
    req.subject = "C=CH, O=Mobike Test, CN=" + cn;
    const Issued& by = via_mid ? mid : root;
    i.cert = crypto::issue_certificate(req, *i.key, by.cert.get(), *by.key);
    return i;
  }
  std::shared_ptr<crypto::TrustStore> trust() const {
    auto t = std::make_shared<crypto::TrustStore>();
    t->add_anchor(root.cert);
    return t;
  }
};

void use_cert(ike::ConnectionConfig& c, const Issued& own, const TestPki& pki, bool with_mid = true) {
  c.local_auth = c.remote_auth = AuthClass::kPubkey;
  c.private_key = own.key;
  c.local_certs = {own.cert};
  if (with_mid) c.local_certs.push_back(pki.mid.cert);
  c.trust = pki.trust();
  c.local_id = ike::Identity{wire::IdType::kDerAsn1Dn, own.cert->subject_der()};
}

struct CertPair : Pair {
  TestPki pki;
  explicit CertPair(bool rfc7427 = true) : Pair(true, engine_config(rfc7427), 1, engine_config(rfc7427)) {}
  static ike::EngineConfig engine_config(bool rfc7427) {
    ike::EngineConfig c;
    c.signature_authentication = rfc7427;
    return c;
  }
  ike::ConnectionConfig ini_conn(const Issued& id) {
    auto c = psk_connection("home", "198.51.100.10", "ini@example.test", "");
    use_cert(c, id, pki);
    return c;
  }
  ike::ConnectionConfig res_conn(const Issued& id) {
    auto c = psk_connection("gw", "%any", "res@example.test", "");
    use_cert(c, id, pki);
    return c;
  }
  bool refused() {
    return net.run_until([&] {
      return count_events(*ini, EventKind::kIkeFailed) > 0 && !ini->engine->ike_sa_count() &&
             !res->engine->ike_sa_count();
    });
  }
};

bool logged(const Host& h, const std::string& text) {
  for (const auto& l : h.log)
    if (l.find(text) != std::string::npos) return true;
  return false;
}

std::string remote_id_of(const Host& h) {
  auto* sa = only_sa(h);
  return sa && sa->remote_id ? sa->remote_id->to_string() : "";
}

TEST(CertAuthSim, EveryKeyTypeEstablishesWithRfc7427) {
  for (auto type : {KeyType::kEcdsaP256, KeyType::kEcdsaP384, KeyType::kEcdsaP521, KeyType::kRsa, KeyType::kEd25519}) {
    SCOPED_TRACE(crypto::key_type_name(type));
    CertPair p;
    auto gw = p.pki.issue("gw.example.test", type);
    auto client = p.pki.issue("client", type);
    auto i = p.ini_conn(client);
    i.remote_id = *ike::Identity::parse("C=CH, O=mobike test, CN=*");
    p.configure(i, p.res_conn(gw));
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
    EXPECT_EQ(remote_id_of(*p.ini), "C=CH, O=Mobike Test, CN=gw.example.test");
    EXPECT_EQ(remote_id_of(*p.res), "C=CH, O=Mobike Test, CN=client");
    expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
    // Both announced SHA-256/384/512 and identity (RFC 7427 §4).
    EXPECT_EQ(only_sa(*p.ini)->peer_sig_hashes, 0x3c);
    EXPECT_TRUE(logged(*p.res, "authenticated C=CH, O=Mobike Test, CN=client by "));
    EXPECT_TRUE(logged(*p.res, "signature (RFC 7427) of certificate \"C=CH, O=Mobike Test, CN=client\" (issuer "
                               "\"C=CH, O=Mobike Test, CN=Intermediate\")"));
  }
}

TEST(CertAuthSim, RsaPssEstablishes) {
  CertPair p;
  auto gw = p.pki.issue("gw", KeyType::kRsa);
  auto client = p.pki.issue("client", KeyType::kRsa);
  auto i = p.ini_conn(client);
  auto r = p.res_conn(gw);
  i.rsa_pss = r.rsa_pss = true;
  p.configure(i, r);
  p.initiate();
  EXPECT_TRUE(p.net.run_until([&] { return p.both_established(); }));
}

TEST(CertAuthSim, ClassicMethodsWhenThePeerDoesNotAnnounceRfc7427) {
  for (auto type : {KeyType::kEcdsaP256, KeyType::kEcdsaP384, KeyType::kRsa}) {
    SCOPED_TRACE(crypto::key_type_name(type));
    CertPair p(false);
    auto gw = p.pki.issue("gw", type);
    auto client = p.pki.issue("client", type);
    p.configure(p.ini_conn(client), p.res_conn(gw));
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
    EXPECT_EQ(only_sa(*p.ini)->peer_sig_hashes, 0);
    EXPECT_TRUE(logged(*p.ini, type == KeyType::kRsa ? "by RSA PKCS#1 v1.5 SHA-1 signature of certificate"
                                                      : "signature (RFC 4754) of certificate"));
  }
}

TEST(CertAuthSim, Ed25519WithoutRfc7427IsRefusedWithAReason) {
  CertPair p(false);
  auto gw = p.pki.issue("gw", KeyType::kEd25519);
  auto client = p.pki.issue("client", KeyType::kEd25519);
  p.configure(p.ini_conn(client), p.res_conn(gw));
  p.initiate();
  // The initiator cannot sign for this peer: its IKE SA fails at once, no IKE_AUTH sent.
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kIkeFailed) > 0; }));
  EXPECT_EQ(p.ini->engine->ike_sa_count(), 0u);
  EXPECT_TRUE(logged(*p.ini, "needs RFC 7427"));
  EXPECT_TRUE(logged(*p.ini, "cannot build IKE_AUTH"));
}

TEST(CertAuthSim, IfAskedSendsCertificatesOnlyAfterCertreq) {
  CertPair p;
  auto gw = p.pki.issue("gw", KeyType::kEcdsaP256);
  auto client = p.pki.issue("client", KeyType::kEcdsaP256);
  auto i = p.ini_conn(client);
  auto r = p.res_conn(gw);
  // The responder asks (CERTREQ in IKE_SA_INIT); the initiator does not, so the
  // responder sends nothing and the initiator, holding no certificate of it, fails.
  i.send_certreq = false;
  p.configure(i, r);
  p.initiate();
  ASSERT_TRUE(p.refused());
  bool why = false;
  for (const auto& l : p.ini->log) why |= l.find("sent no certificate") != std::string::npos;
  EXPECT_TRUE(why);

  CertPair q;
  gw = q.pki.issue("gw", KeyType::kEcdsaP256);
  client = q.pki.issue("client", KeyType::kEcdsaP256);
  i = q.ini_conn(client);
  r = q.res_conn(gw);
  i.send_certreq = false;
  r.send_cert = SendCert::kAlways;  // what a gateway for iOS clients configures
  q.configure(i, r);
  q.initiate();
  EXPECT_TRUE(q.net.run_until([&] { return q.both_established(); }));
}

TEST(CertAuthSim, NeverSendsNoCertificateEvenWhenAsked) {
  CertPair p;
  auto gw = p.pki.issue("gw", KeyType::kEcdsaP256);
  auto client = p.pki.issue("client", KeyType::kEcdsaP256);
  auto r = p.res_conn(gw);
  r.send_cert = SendCert::kNever;  // the initiator sends CERTREQ (its default)
  std::size_t certs_from_res = 0;
  p.net.drop = [&](const Packet& pk) {
    if (pk.from == "res" && !pk.keepalive && pk.data.size() > wire::kHeaderSize &&
        pk.data[18] == static_cast<std::uint8_t>(wire::ExchangeType::kIkeAuth))
      if (auto* sa = only_sa(*p.ini); sa && sa->crypto.in)
        if (auto m = wire::decode_message(pk.data))
          if (auto inner = ike::open_message(*sa, *m, pk.data))
            for (const auto& pl : *inner) certs_from_res += pl.type == wire::PayloadType::kCert;
    return false;
  };
  p.configure(p.ini_conn(client), r);
  p.initiate();
  ASSERT_TRUE(p.refused());
  EXPECT_EQ(certs_from_res, 0u);
  EXPECT_TRUE(logged(*p.ini, "sent no certificate"));
}

TEST(CertAuthSim, KeptIkeAuthResponseLeavesOurCertificatesOutAndIsSealedAgain) {
  CertPair p;
  auto gw = p.pki.issue("gw.example.test", KeyType::kEcdsaP256);
  auto client = p.pki.issue("client", KeyType::kEcdsaP256);
  p.configure(p.ini_conn(client), p.res_conn(gw));
  // The responder's IKE_AUTH response (Message ID 1) is lost once.
  std::vector<Bytes> answers;
  p.net.drop = [&](const Packet& pk) {
    const Bytes& d = pk.data;
    bool auth_response = pk.from == "res" && !pk.keepalive && d.size() > wire::kHeaderSize &&
                         d[18] == static_cast<std::uint8_t>(wire::ExchangeType::kIkeAuth) &&
                         (d[19] & wire::kFlagResponse);
    if (!auth_response) return false;
    answers.push_back(d);
    return answers.size() == 1;
  };
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(p.res->engine->counters().retransmits_answered, 1u);
  // The retransmitted answer is the kept plaintext sealed again with the IVs first
  // drawn: bit-identical, and the initiator verified the chain it carries.
  EXPECT_EQ(answers[0], answers[1]);
  EXPECT_EQ(remote_id_of(*p.ini), "C=CH, O=Mobike Test, CN=gw.example.test");
  // What the responder keeps for a further retransmission holds neither certificate
  // (they are the connection's): less than the datagram less their DER.
  std::size_t certs = gw.cert->der().size() + p.pki.mid.cert->der().size();
  const auto& kept = only_sa(*p.res)->last_response;
  EXPECT_FALSE(kept.empty());
  EXPECT_LT(kept.octets(), answers[0].size() - certs);
  // And sealing it once more gives the same octets again, which the initiator opens
  // to the payloads sent, certificates included.
  auto again = kept.datagrams(*only_sa(*p.res));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0], answers[0]);
  auto open = [&](const Bytes& d) {
    auto m = wire::decode_message(d);
    EXPECT_TRUE(m);
    auto inner = ike::open_message(*only_sa(*p.ini), *m, d);
    EXPECT_TRUE(inner);
    return inner ? *inner : std::vector<wire::Payload>{};
  };
  auto first = open(answers[0]);
  EXPECT_EQ(open(again[0]), first);
  std::size_t cert_payloads = 0;
  for (const auto& pl : first) cert_payloads += pl.type == wire::PayloadType::kCert;
  EXPECT_EQ(cert_payloads, 2u);
}

TEST(CertAuthSim, WildcardRemoteIdsMatchSubjectAndSubjectAltName) {
  CertPair p;
  auto gw = p.pki.issue("gw.example.test", KeyType::kEcdsaP256, {.san_dns = {"gw.example.test"}});
  auto client = p.pki.issue("client", KeyType::kEcdsaP256, {.san_email = {"alice@ini.example.test"}});
  auto i = p.ini_conn(client);
  auto r = p.res_conn(gw);
  i.local_id = *ike::Identity::parse("alice@ini.example.test");
  i.remote_id = *ike::Identity::parse("*.example.test");
  r.local_id = *ike::Identity::parse("gw.example.test");
  r.remote_id = *ike::Identity::parse("*@ini.example.test");
  p.configure(i, r);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(remote_id_of(*p.res), "alice@ini.example.test");
  EXPECT_EQ(remote_id_of(*p.ini), "gw.example.test");
}

TEST(CertAuthSim, IdentityNotInTheCertificateIsRefused) {
  CertPair p;
  auto gw = p.pki.issue("gw", KeyType::kEcdsaP256);
  auto client = p.pki.issue("client", KeyType::kEcdsaP256, {.san_email = {"alice@ini.example.test"}});
  auto i = p.ini_conn(client);
  i.local_id = *ike::Identity::parse("mallory@ini.example.test");  // signed, but not its certificate's
  p.configure(i, p.res_conn(gw));
  p.initiate();
  ASSERT_TRUE(p.refused());
  bool why = false;
  for (const auto& l : p.res->log) why |= l.find("is not in certificate") != std::string::npos;
  EXPECT_TRUE(why);
}

TEST(CertAuthSim, RevokedExpiredAndForeignCertificatesAreRefused) {
  {
    CertPair p;
    auto gw = p.pki.issue("gw", KeyType::kEcdsaP256);
    auto client = p.pki.issue("client", KeyType::kEcdsaP256, {.serial = 42});
    auto r = p.res_conn(gw);
    auto t = p.pki.trust();
    t->add_crl(crypto::issue_crl(*p.pki.mid.cert, *p.pki.mid.key, {42}));
    r.trust = t;
    p.configure(p.ini_conn(client), r);
    p.initiate();
    ASSERT_TRUE(p.refused());
    bool why = false;
    for (const auto& l : p.res->log) why |= l.find("revoked") != std::string::npos;
    EXPECT_TRUE(why);
  }
  {
    CertPair p;
    auto gw = p.pki.issue("gw", KeyType::kEcdsaP256);
    std::time_t now = std::time(nullptr);
    auto client = p.pki.issue("client", KeyType::kEcdsaP256, {.not_before = now - 86400 * 10, .not_after = now - 86400});
    p.configure(p.ini_conn(client), p.res_conn(gw));
    p.initiate();
    ASSERT_TRUE(p.refused());
  }
  {
    CertPair p;
    TestPki other("Other CA");
    auto gw = p.pki.issue("gw", KeyType::kEcdsaP256);
    auto client = other.issue("client", KeyType::kEcdsaP256);
    auto i = p.ini_conn(client);
    i.local_certs = {client.cert, other.mid.cert};
    p.configure(i, p.res_conn(gw));
    p.initiate();
    ASSERT_TRUE(p.refused());
  }
}

TEST(CertAuthSim, ResponderPicksTheConnectionByAuthMethod) {
  CertPair p;
  auto gw = p.pki.issue("gw", KeyType::kEcdsaP256);
  auto client = p.pki.issue("client", KeyType::kEcdsaP256);
  auto psk_gw = psk_connection("psk-gw", "%any", "res@example.test", "");
  auto cert_gw = p.res_conn(gw);
  p.ini->engine->set_connections({p.ini_conn(client)});
  p.res->engine->set_connections({psk_gw, cert_gw});
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(only_sa(*p.res)->connection_name, "gw");
}

TEST(CertAuthSim, IdentityInCertificateByKind) {
  TestPki pki;
  auto c = pki.issue("gw.example.test", KeyType::kEcdsaP256,
                     {.san_dns = {"gw.example.test"}, .san_email = {"ops@example.test"}, .san_ip = {"198.51.100.10"}});
  EXPECT_TRUE(ike::identity_in_certificate(*ike::Identity::parse("C=CH, O=Mobike Test, CN=gw.example.test"), *c.cert));
  EXPECT_TRUE(ike::identity_in_certificate(*ike::Identity::parse("GW.example.test"), *c.cert));
  EXPECT_TRUE(ike::identity_in_certificate(*ike::Identity::parse("ops@example.test"), *c.cert));
  EXPECT_TRUE(ike::identity_in_certificate(*ike::Identity::parse("198.51.100.10"), *c.cert));
  EXPECT_FALSE(ike::identity_in_certificate(*ike::Identity::parse("198.51.100.11"), *c.cert));
  EXPECT_FALSE(ike::identity_in_certificate(*ike::Identity::parse("other.example.test"), *c.cert));
  // A pattern is never an identity a certificate holds.
  EXPECT_FALSE(ike::identity_in_certificate(*ike::Identity::parse("C=CH, O=Mobike Test, CN=*"), *c.cert));
}

// The checks the config loader and mobike-bench both make of our own credentials.
TEST(CertAuthSim, OwnCredentialsFitTogether) {
  TestPki pki;
  auto gw = pki.issue("gw.example.test", KeyType::kEcdsaP256, {.san_dns = {"gw.example.test"}});
  auto other = pki.issue("other.example.test", KeyType::kEcdsaP256, {});
  EXPECT_EQ(ike::key_not_of_certificate(*gw.key, *gw.cert), std::nullopt);
  EXPECT_EQ(ike::key_not_of_certificate(*other.key, *gw.cert),
            "is not the key of certificate 'C=CH, O=Mobike Test, CN=gw.example.test'");

  auto fqdn = *ike::Identity::parse("gw.example.test");
  EXPECT_EQ(ike::identity_not_in_certificate(fqdn, *gw.cert), std::nullopt);
  auto wrong = *ike::Identity::parse("other.example.test");
  EXPECT_EQ(ike::identity_not_in_certificate(wrong, *gw.cert),
            "'other.example.test' is neither the subject nor a subjectAltName of certificate "
            "'C=CH, O=Mobike Test, CN=gw.example.test'");
  // A DN given as text ends up as the certificate's own DER: a peer compares them byte by byte.
  auto dn = *ike::Identity::parse("C=CH, O=Mobike Test, CN=gw.example.test");
  EXPECT_EQ(ike::identity_not_in_certificate(dn, *gw.cert), std::nullopt);
  EXPECT_EQ(dn.data, gw.cert->subject_der());

  EXPECT_EQ(ike::not_a_trust_anchor(*pki.root.cert), std::nullopt);
  EXPECT_EQ(ike::not_a_trust_anchor(*gw.cert), "'C=CH, O=Mobike Test, CN=gw.example.test' is not a CA certificate");
}

}  // namespace
}  // namespace mobike::sim
