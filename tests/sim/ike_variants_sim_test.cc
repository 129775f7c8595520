// Variants of the base exchange: IPv6, identity types, every IKE suite and key exchange
// group, and requests the responder must answer with an error notify.
#include <gtest/gtest.h>

#include "ike/protection.h"
#include "ike/traffic_selector.h"
#include "ike_pair.h"
#include "wire/codec.h"

namespace mobike::sim {
namespace {

TEST(IkeVariants, EstablishesOverIpv6) {
  Network net;
  Host& ini = net.add_host("ini", {ip("2001:db8:1::2")}, {}, 11);
  Host& res = net.add_host("res", {ip("2001:db8:2::10")}, {}, 12);
  auto i = psk_connection("home", "2001:db8:2::10", "ini@example.test", "res@example.test");
  i.children[0].local_ts = {*IpPrefix::parse("2001:db8:a::/48")};
  i.children[0].remote_ts = {*IpPrefix::parse("2001:db8:b::/48")};
  auto r = psk_connection("gw", "2001:db8:1::/48", "res@example.test", "ini@example.test");
  r.children[0].local_ts = {*IpPrefix::parse("2001:db8:b::/48")};
  r.children[0].remote_ts = {*IpPrefix::parse("2001:db8:a::/48")};
  ini.engine->set_connections({i});
  res.engine->set_connections({r});
  ASSERT_TRUE(ini.engine->initiate("home", ip("2001:db8:1::2"), net.now()));
  ASSERT_TRUE(net.run_until([&] {
    auto* a = only_sa(ini);
    auto* b = only_sa(res);
    return a && b && a->state == IkeState::kEstablished && b->children.size() == 1 && a->children.size() == 1;
  }));
  EXPECT_EQ(only_sa(res)->remote, (Endpoint{ip("2001:db8:1::2"), 4500}));
  EXPECT_EQ(ike::ts_to_string(only_sa(ini)->children[0].remote_ts.at(0)), "2001:db8:b::/48");
  expect_matching_children(*only_sa(ini), *only_sa(res));
}

TEST(IkeVariants, EveryIdentityType) {
  const char* ids[][2] = {{"198.51.100.3", "198.51.100.10"},
                          {"2001:db8::3", "2001:db8::10"},
                          {"client.example.test", "@gw.example.test"},
                          {"user@example.test", "gw@example.test"},
                          {"keyid:0x0a0b0c", "keyid:gateway-key"}};
  for (const auto& pair : ids) {
    Pair p(false);
    p.configure(psk_connection("home", "198.51.100.10", pair[0], pair[1]),
                psk_connection("gw", "%any", pair[1], pair[0]));
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); })) << pair[0];
    auto expected = ike::Identity::parse(pair[0]);
    ASSERT_TRUE(only_sa(*p.res)->remote_id);
    EXPECT_EQ(*only_sa(*p.res)->remote_id, *expected) << pair[0];
    EXPECT_EQ(only_sa(*p.ini)->remote_id->type, ike::Identity::parse(pair[1])->type);
  }
}

TEST(IkeVariants, EverySuiteAndGroupEstablishes) {
  const char* suites[] = {"aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha384-ecp384",
                          "aes128-sha256-modp2048", "aes256-sha512-modp3072",
                          "aes256-sha384-ecp256", "chacha20poly1305-prfsha512-curve25519"};
  const char* esp[] = {"aes128gcm16", "aes256gcm16", "aes128-sha256", "aes256-sha512",
                       "chacha20poly1305", "aes256-sha384-esn"};
  for (int k = 0; k < 6; ++k) {
    Pair p(true);
    p.configure(psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test", suites[k], esp[k]),
                psk_connection("gw", "%any", "res@example.test", "ini@example.test", suites[k], esp[k]));
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); })) << suites[k];
    expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
    // And the SA carries traffic: an IKE rekey over it works.
    ASSERT_TRUE(p.ini->engine->rekey_ike(only_sa(*p.ini)->id, p.net.now()));
    ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kIkeRekeyed) == 1; }, Duration(5000)))
        << suites[k];
  }
  // ESN negotiated when both ask for it.
  Pair p(false);
  p.configure(psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test",
                             "aes128gcm16-prfsha256-x25519", "aes128gcm16-esn"),
              psk_connection("gw", "%any", "res@example.test", "ini@example.test",
                             "aes128gcm16-prfsha256-x25519", "aes128gcm16-esn"));
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_TRUE(only_sa(*p.ini)->children[0].keys.esn);
}

// An unprotected IKE_SA_INIT request built by hand, as a peer we do not control sends it.
Bytes init_request(std::uint8_t first_payload, const Bytes& body) {
  wire::Header h;
  h.spi_i = 0x0102030405060708ull;
  h.exchange = wire::ExchangeType::kIkeSaInit;
  h.flags = wire::kFlagInitiator;
  Bytes out = wire::encode_header(h, first_payload, static_cast<std::uint32_t>(wire::kHeaderSize + body.size()));
  append(out, body);
  return out;
}

std::vector<wire::Payload> answer(Network& net, Host& res, const Bytes& request) {
  Endpoint from{ip("198.51.100.3"), 500}, to{ip("198.51.100.10"), 500};
  res.engine->on_datagram(to, from, request, net.now());
  auto out = res.engine->take_datagrams();
  if (out.size() != 1) return {};
  auto m = wire::decode_message(out[0].data);
  EXPECT_TRUE(m);
  EXPECT_TRUE(m->header.is_response());
  EXPECT_EQ(m->header.spi_r, 0u);  // stateless answers
  return m ? m->payloads : std::vector<wire::Payload>{};
}

TEST(IkeVariants, UnknownCriticalPayloadIsAnsweredWithItsType) {
  Network net;
  Host& res = net.add_host("res", {ip("198.51.100.10")}, {}, 5);
  res.engine->set_connections({psk_connection("gw", "%any", "res@example.test", "")});
  Bytes body = {0, 0x80, 0, 8, 'a', 'b', 'c', 'd'};
  auto payloads = answer(net, res, init_request(200, body));
  auto* n = wire::find_notify(payloads, wire::NotifyType::kUnsupportedCriticalPayload);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->data, Bytes{200});
  EXPECT_EQ(res.engine->ike_sa_count(), 0u);
  // Without the critical bit the unknown payload is skipped: the request is then
  // incomplete (no SA/KE/Nonce) and refused as INVALID_SYNTAX.
  body[1] = 0;
  payloads = answer(net, res, init_request(200, body));
  EXPECT_NE(wire::find_notify(payloads, wire::NotifyType::kInvalidSyntax), nullptr);
  EXPECT_EQ(res.engine->ike_sa_count(), 0u);
}

TEST(IkeVariants, NewerMajorVersionIsAnsweredWithInvalidMajorVersion) {
  Network net;
  Host& res = net.add_host("res", {ip("198.51.100.10")}, {}, 6);
  res.engine->set_connections({psk_connection("gw", "%any", "res@example.test", "")});
  Bytes req = init_request(0, {});
  req[17] = 0x30;  // IKE version 3.0
  auto payloads = answer(net, res, req);
  EXPECT_NE(wire::find_notify(payloads, wire::NotifyType::kInvalidMajorVersion), nullptr);
}

TEST(IkeVariants, NoConnectionForThePeerIsNoProposalChosen) {
  Network net;
  Host& res = net.add_host("res", {ip("198.51.100.10")}, {}, 7);
  res.engine->set_connections({psk_connection("gw", "203.0.113.0/24", "res@example.test", "")});
  Host& ini = net.add_host("ini", {ip("198.51.100.3")}, {}, 8);
  ini.engine->set_connections({psk_connection("home", "198.51.100.10", "ini@example.test", "")});
  ASSERT_TRUE(ini.engine->initiate("home", ip("198.51.100.3"), net.now()));
  net.run_for(Duration(3000));
  EXPECT_EQ(ini.engine->ike_sa_count(), 0u);
  EXPECT_EQ(count_events(ini, EventKind::kIkeFailed), 1u);
  EXPECT_EQ(res.engine->ike_sa_count(), 0u);
}

}  // namespace
}  // namespace mobike::sim
