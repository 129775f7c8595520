// EAP in IKE_AUTH (RFC 7296 §2.16) between two engines: EAP-MSCHAPv2 clients against a
// gateway that authenticates by certificate or PSK, with EAP-Identity or the IKE identity,
// wrong passwords and unknown users refused on both ends, a lost round retransmitted, a
// virtual IP leased to the EAP identity, and the gateway's choice between PSK and EAP
// connections for the same %any clients.
#include <gtest/gtest.h>

#include "crypto/cert_builder.h"
#include "ike/address_pool.h"
#include "ike/eap.h"
#include "ike/ike_sa.h"
#include "ike_pair.h"

namespace mobike::sim {
namespace {

using ike::AuthClass;
using Users = std::map<std::string, std::string, std::less<>>;

std::shared_ptr<const Users> users(Users u) { return std::make_shared<const Users>(std::move(u)); }

bool logged(const Host& h, const std::string& text) {
  for (const auto& l : h.log)
    if (l.find(text) != std::string::npos) return true;
  return false;
}

// The IKE header's exchange type, flags and Message ID, past a non-ESP marker.
struct IkeHeader {
  std::uint8_t exchange = 0;
  bool response = false;
  std::uint32_t mid = 0;
};
std::optional<IkeHeader> header_of(const Packet& pk) {
  ByteView d = pk.data;
  if (d.size() >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0) d = d.subspan(4);
  if (d.size() < 28) return std::nullopt;
  return IkeHeader{d[18], (d[19] & 0x20) != 0,
                   std::uint32_t(d[20]) << 24 | std::uint32_t(d[21]) << 16 | std::uint32_t(d[22]) << 8 | d[23]};
}

struct EapPair : Pair {
  std::shared_ptr<crypto::PrivateKey> ca_key, gw_key;
  std::shared_ptr<const crypto::Certificate> ca, gw_cert;
  EapPair() : Pair(true) {
    ca_key = crypto::PrivateKey::generate(crypto::KeyType::kEcdsaP256);
    ca = crypto::issue_certificate({.subject = "C=CH, O=Mobike Test, CN=Root CA", .ca = true}, *ca_key, nullptr, *ca_key);
    gw_key = crypto::PrivateKey::generate(crypto::KeyType::kEcdsaP256);
    gw_cert = crypto::issue_certificate({.subject = "C=CH, O=Mobike Test, CN=gw.example.test", .san_dns = {"gw.example.test"}},
                                        *gw_key, ca.get(), *ca_key);
  }
  std::shared_ptr<crypto::TrustStore> trust() const {
    auto t = std::make_shared<crypto::TrustStore>();
    t->add_anchor(ca);
    return t;
  }
  // The road warrior: EAP-MSCHAPv2 out, the gateway's certificate in.
  ike::ConnectionConfig client(const char* eap_id, const char* password, const char* local_id = "phone@example.test") {
    auto c = psk_connection("home", "198.51.100.10", local_id, "gw.example.test");
    c.local_auth = AuthClass::kEapMschapv2;
    c.remote_auth = AuthClass::kPubkey;
    c.trust = trust();
    if (eap_id) c.eap_id = eap_id;
    c.eap_secrets = users({{eap_id ? eap_id : local_id, password}});
    return c;
  }
  ike::ConnectionConfig gateway(std::optional<std::string> eap_id = "%any") {
    auto g = psk_connection("gw", "%any", "gw.example.test", "");
    g.local_auth = AuthClass::kPubkey;
    g.remote_auth = AuthClass::kEapMschapv2;
    g.private_key = gw_key;
    g.local_certs = {gw_cert};
    g.send_cert = ike::SendCert::kAlways;
    g.eap_id = std::move(eap_id);
    g.eap_secrets = users({{"carol", "carol-Secret-1"}, {"CORP\\dave", "dave pw"}, {"phone@example.test", "ph0ne"}});
    return g;
  }
  // Runs the exchange to both ends established; 0 if it did not get there.
  std::size_t establish_counting_ike_auth_requests() {
    std::size_t requests = 0;
    net.drop = [&](const Packet& pk) {
      auto h = header_of(pk);
      requests += h && h->exchange == 35 && !h->response;
      return false;
    };
    initiate();
    const bool up = net.run_until([&] { return both_established(); });
    net.drop = nullptr;
    return up ? requests : 0;
  }
  // EAP-TLS: the client's certificate from the same CA (or `other` CA), the gateway
  // asking by EAP-Identity.
  std::pair<ike::ConnectionConfig, ike::ConnectionConfig> tls_pair(const char* eap_id, const char* cert_email,
                                                                    bool other_ca = false) {
    auto other_key = crypto::PrivateKey::generate(crypto::KeyType::kEcdsaP256);
    auto other = crypto::issue_certificate({.subject = "C=CH, O=Elsewhere, CN=Root CA", .ca = true}, *other_key,
                                           nullptr, *other_key);
    auto key = crypto::PrivateKey::generate(crypto::KeyType::kRsa);  // large: EAP-TLS fragments
    auto cert = crypto::issue_certificate(
        {.subject = "C=CH, O=Mobike Test, CN=carol", .san_email = {cert_email}, .serial = 9}, *key,
        other_ca ? other.get() : ca.get(), other_ca ? *other_key : *ca_key);
    auto c = client(eap_id, "unused");
    c.local_auth = AuthClass::kEapTls;
    c.private_key = key;
    c.local_certs = {cert};
    c.eap_secrets = nullptr;
    auto g = gateway();
    g.remote_auth = AuthClass::kEapTls;
    g.trust = trust();
    g.eap_secrets = nullptr;
    return {c, g};
  }
  bool refused() {
    return net.run_until([&] {
      return count_events(*ini, EventKind::kIkeFailed) > 0 && !ini->engine->ike_sa_count() &&
             !res->engine->ike_sa_count();
    });
  }
};

TEST(EapSim, MschapV2AfterEapIdentityWithACertificateGateway) {
  EapPair p;
  p.configure(p.client("carol", "carol-Secret-1"), p.gateway());
  const std::size_t ike_auth_requests = p.establish_counting_ike_auth_requests();
  ASSERT_GT(ike_auth_requests, 0u);
  expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
  // IDi (no AUTH) / EAP-Identity; Identity / Challenge; Response / Success request;
  // Success response / EAP-Success; AUTH with the MSK / AUTH, SA, TS.
  EXPECT_EQ(ike_auth_requests, 5u);
  EXPECT_EQ(only_sa(*p.res)->remote_eap_id, "carol");
  EXPECT_EQ(only_sa(*p.res)->remote_id->to_string(), "phone@example.test");
  EXPECT_EQ(only_sa(*p.ini)->remote_id->to_string(), "gw.example.test");
  EXPECT_FALSE(only_sa(*p.res)->eap) << "the gateway keeps no EAP state once established";
  EXPECT_TRUE(logged(*p.res, "EAP-MSCHAPv2 authenticated 'carol'"));
  EXPECT_TRUE(logged(*p.res, "authenticated phone@example.test by EAP-MSCHAPv2 as 'carol'"));
  EXPECT_TRUE(logged(*p.ini, "EAP-MSCHAPv2 succeeded as 'carol'"));
  EXPECT_TRUE(logged(*p.ini, "authenticated gw.example.test by ECDSA"));
}

TEST(EapSim, WithoutEapIdTheIkeIdentityIsTheEapIdentity) {
  EapPair p;
  p.configure(p.client(nullptr, "ph0ne"), p.gateway(std::nullopt));
  const std::size_t ike_auth_requests = p.establish_counting_ike_auth_requests();
  ASSERT_GT(ike_auth_requests, 0u);
  EXPECT_EQ(ike_auth_requests, 4u) << "no EAP-Identity round";
  EXPECT_EQ(only_sa(*p.res)->remote_eap_id, "phone@example.test");
}

TEST(EapSim, DomainPrefixedUserAndAPskGateway) {
  EapPair p;
  auto c = p.client("CORP\\dave", "dave pw");
  c.remote_auth = AuthClass::kPsk;
  c.psk = {1, 2, 3, 4, 5, 6, 7, 8};
  auto g = p.gateway();
  g.local_auth = AuthClass::kPsk;
  g.psk = c.psk;
  p.configure(c, g);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(only_sa(*p.res)->remote_eap_id, "CORP\\dave");
}

TEST(EapSim, WrongPasswordIsRefusedOnBothEnds) {
  EapPair p;
  p.configure(p.client("carol", "not-the-password"), p.gateway());
  p.initiate();
  ASSERT_TRUE(p.refused());
  EXPECT_TRUE(logged(*p.res, "EAP-MSCHAPv2: EAP-MSCHAPv2 password of 'carol' does not match"));
  EXPECT_TRUE(logged(*p.ini, "EAP failed: the gateway sent EAP-Failure"));
  EXPECT_EQ(count_events(*p.res, EventKind::kIkeEstablished), 0u);
}

TEST(EapSim, UnknownUserIsRefused) {
  EapPair p;
  p.configure(p.client("mallory", "whatever"), p.gateway());
  p.initiate();
  ASSERT_TRUE(p.refused());
  EXPECT_TRUE(logged(*p.res, "no EAP secret for 'mallory'"));
}

TEST(EapSim, TheClientRefusesAForgedAuthenticatorResponse) {
  // A gateway that does not know the password cannot make MSCHAPv2's "S=" value, and the
  // client must not go on to EAP-Success without it (the traffic is encrypted in the
  // simulation, so the method pair is driven directly).
  crypto::SeededRandom rnd(7);
  ike::eap::Peer peer(ike::eap::Type::kMschapv2, "carol", users({{"carol", "pw"}}), rnd);
  ike::eap::Server server(ike::eap::Type::kMschapv2, std::string("carol"), users({{"carol", "pw"}}), rnd);
  auto challenge = server.start();
  auto response = peer.process(challenge);
  ASSERT_EQ(response.outcome, ike::eap::Outcome::kContinue);
  auto success = server.process(response.message);
  ASSERT_EQ(success.outcome, ike::eap::Outcome::kContinue);
  // Flip one hex digit of the authenticator response ("S=" starts at octet 9).
  Bytes forged = success.message;
  forged[11] = forged[11] == '0' ? '1' : '0';
  auto r = peer.process(forged);
  EXPECT_EQ(r.outcome, ike::eap::Outcome::kFailure);
  EXPECT_NE(r.why.find("authenticator response is wrong"), std::string::npos) << r.why;
}

TEST(EapSim, ALostEapRoundIsRetransmitted) {
  EapPair p;
  p.configure(p.client("carol", "carol-Secret-1"), p.gateway());
  int dropped = 0;
  p.net.drop = [&](const Packet& pk) {
    auto h = header_of(pk);
    // The gateway's answer to the EAP-Identity response, once.
    if (h && h->exchange == 35 && h->response && h->mid == 2 && dropped == 0) return ++dropped, true;
    return false;
  };
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(dropped, 1);
  EXPECT_GE(p.res->engine->counters().retransmits_answered, 1u);
  EXPECT_EQ(only_sa(*p.res)->remote_eap_id, "carol");
}

TEST(EapSim, VirtualIpIsLeasedToTheEapIdentity) {
  EapPair p;
  auto c = p.client("carol", "carol-Secret-1");
  c.vips = {ip("0.0.0.0")};
  auto g = p.gateway();
  g.pools = {"rw"};
  p.configure(c, g);
  std::string error;
  p.res->engine->set_pools({*ike::PoolConfig::parse_range("rw", "10.3.0.0/24", error)});
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(only_sa(*p.ini)->extras().local_vips, std::vector<IpAddress>{ip("10.3.0.1")});
  const auto& pool = *p.res->engine->pools().at("rw");
  ASSERT_EQ(pool.online(), 1u);
  EXPECT_EQ(pool.leases().front().identity, "carol");
}

TEST(EapSim, PskAndEapConnectionsForAnyClientAreToldApartByTheMissingAuth) {
  EapPair p;
  auto psk_gw = psk_connection("gw-psk", "%any", "gw.example.test", "");
  auto eap_gw = p.gateway();
  p.res->engine->set_connections({psk_gw, eap_gw});
  p.ini->engine->set_connections({p.client("carol", "carol-Secret-1")});
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(only_sa(*p.res)->connection_name, "gw");
}

TEST(EapSim, TlsWithCertificatesBothWaysAndFragments) {
  EapPair p;
  auto [c, g] = p.tls_pair("carol@example.test", "carol@example.test");
  p.configure(c, g);
  const std::size_t rounds = p.establish_counting_ike_auth_requests();
  ASSERT_GT(rounds, 0u);
  expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
  // Start; ClientHello; the client's certificate flight in fragments; acknowledgements.
  EXPECT_GE(rounds, 6u);
  EXPECT_EQ(only_sa(*p.res)->remote_eap_id, "carol@example.test");
  EXPECT_TRUE(logged(*p.res, "EAP-TLS authenticated 'carol@example.test'"));
  EXPECT_TRUE(logged(*p.ini, "EAP-TLS succeeded as 'carol@example.test'"));
  // Two mobiked ends agree on TLS 1.3 and say so.
  EXPECT_TRUE(logged(*p.res, "EAP-TLS: negotiated TLS 1.3 with TLS_"));
  EXPECT_TRUE(logged(*p.ini, "EAP-TLS: negotiated TLS 1.3 with TLS_"));
}

// TLS 1.3 as strongSwan 5.9.2 to 5.9.9 do it (eap_tls13 = "pre-rfc9190" at both ends):
// no commitment message, so one EAP round fewer, and the MSKs still agree.
TEST(EapSim, TlsPreRfc9190AtBothEnds) {
  std::size_t rfc_rounds = 0;
  {
    EapPair p;
    auto [c, g] = p.tls_pair("carol@example.test", "carol@example.test");
    p.configure(c, g);
    rfc_rounds = p.establish_counting_ike_auth_requests();
    ASSERT_GT(rfc_rounds, 0u);
  }
  EapPair p;
  auto [c, g] = p.tls_pair("carol@example.test", "carol@example.test");
  c.eap_tls13_pre_rfc9190 = g.eap_tls13_pre_rfc9190 = true;
  p.configure(c, g);
  const std::size_t rounds = p.establish_counting_ike_auth_requests();
  ASSERT_GT(rounds, 0u);
  expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
  EXPECT_EQ(rounds + 1, rfc_rounds);
  EXPECT_TRUE(logged(*p.res, "EAP-TLS: negotiated TLS 1.3 with TLS_"));
  EXPECT_TRUE(logged(*p.ini, "EAP-TLS succeeded as 'carol@example.test'"));
}

// One end before RFC 9190, the other not: a gateway without the commitment message is
// refused by an RFC 9190 client (its EAP-Success comes too early), and an RFC 9190
// gateway's MSK is not the pre-RFC 9190 client's, so its AUTH fails.
TEST(EapSim, TlsSchemesDoNotMix) {
  for (bool gateway_pre : {true, false}) {
    SCOPED_TRACE(gateway_pre);
    EapPair p;
    auto [c, g] = p.tls_pair("carol@example.test", "carol@example.test");
    g.eap_tls13_pre_rfc9190 = gateway_pre;
    c.eap_tls13_pre_rfc9190 = !gateway_pre;
    p.configure(c, g);
    p.initiate();
    ASSERT_TRUE(p.refused());
    if (gateway_pre)
      EXPECT_TRUE(logged(*p.ini, "EAP-Success before the method finished"));
    else
      EXPECT_TRUE(logged(*p.res, "with the EAP MSK does not verify"));
  }
}

TEST(EapSim, TlsCertificateOfAnotherCaIsRefused) {
  EapPair p;
  auto [c, g] = p.tls_pair("carol@example.test", "carol@example.test", true);
  p.configure(c, g);
  p.initiate();
  ASSERT_TRUE(p.refused());
  EXPECT_TRUE(logged(*p.res, "TLS certificate \"C=CH, O=Mobike Test, CN=carol\": unable to get local issuer"));
}

TEST(EapSim, TlsEapIdentityNotInTheCertificateIsRefused) {
  EapPair p;
  auto [c, g] = p.tls_pair("mallory@example.test", "carol@example.test");
  p.configure(c, g);
  p.initiate();
  ASSERT_TRUE(p.refused());
  EXPECT_TRUE(logged(*p.res, "EAP identity 'mallory@example.test' is not in TLS certificate"));
}

TEST(EapSim, TlsClientRefusesAGatewayCertificateWithoutItsName) {
  EapPair p;
  auto [c, g] = p.tls_pair("carol@example.test", "carol@example.test");
  // The gateway's IKE identity is in its certificate; the client insists on another name
  // and refuses already the IKE AUTH.
  c.remote_id = *ike::Identity::parse("vpn.example.test");
  p.configure(c, g);
  p.initiate();
  ASSERT_TRUE(p.refused());
}

}  // namespace
}  // namespace mobike::sim
