// MOBIKE address lists (RFC 4555 §3.4, §3.6) over the simulated network:
// ADDITIONAL_IP4/IP6_ADDRESS and NO_ADDITIONAL_ADDRESSES in IKE_AUTH from both sides,
// the responder's later announcements, addresses that must be ignored, and lists kept
// across IKE SA rekeys.
#include <gtest/gtest.h>

#include "mobility/address_list.h"
#include "mobike_helpers.h"

namespace mobike::sim {
namespace {

std::vector<IpAddress> notified_addresses(const Seen& s) {
  std::vector<IpAddress> out;
  for (const auto& p : s.payloads)
    if (auto* n = std::get_if<wire::NotifyPayload>(&p.body);
        n && (n->notify_type() == NotifyType::kAdditionalIp4Address ||
              n->notify_type() == NotifyType::kAdditionalIp6Address))
      if (auto a = IpAddress::from_bytes(n->data)) out.push_back(*a);
  return out;
}

bool auth_from(const Seen& s, const char* host) {
  return s.from == host && s.exchange == ExchangeType::kIkeAuth;
}

TEST(MobikeListsSim, BothSidesAnnounceTheirOtherAddressesInIkeAuth) {
  Pair p(false);
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("198.51.100.4"), ip("2001:db8:1::3")});
  p.net.set_addresses(*p.res, {ip("198.51.100.10"), ip("198.51.100.11"), ip("2001:db8::10")});
  p.configure(ini_conn(), res_conn());
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));

  auto req = tap.all([](const Seen& s) { return auth_from(s, "ini"); });
  auto resp = tap.all([](const Seen& s) { return auth_from(s, "res"); });
  ASSERT_EQ(req.size(), 1u);
  ASSERT_EQ(resp.size(), 1u);
  ASSERT_TRUE(req[0]->opened && resp[0]->opened);
  for (const Seen* s : {static_cast<const Seen*>(req[0]), static_cast<const Seen*>(resp[0])}) {
    EXPECT_TRUE(s->has(NotifyType::kMobikeSupported)) << s->from;
    EXPECT_FALSE(s->has(NotifyType::kNoAdditionalAddresses)) << s->from;
    EXPECT_EQ(s->count(NotifyType::kAdditionalIp4Address), 1u) << s->from;
    EXPECT_EQ(s->count(NotifyType::kAdditionalIp6Address), 1u) << s->from;
    // NAT traversal is on: no NO_NATS_ALLOWED.
    EXPECT_FALSE(s->has(NotifyType::kNoNatsAllowed)) << s->from;
  }
  // The address of the IP header is implied, never listed.
  EXPECT_EQ(sorted(notified_addresses(*req[0])), sorted({ip("198.51.100.4"), ip("2001:db8:1::3")}));
  EXPECT_EQ(sorted(notified_addresses(*resp[0])), sorted({ip("198.51.100.11"), ip("2001:db8::10")}));

  // Each side keeps the other's list with the IKE SA.
  EXPECT_EQ(sorted(view_of(*p.res).peer_addresses), sorted({ip("198.51.100.4"), ip("2001:db8:1::3")}));
  EXPECT_EQ(sorted(view_of(*p.ini).peer_addresses), sorted({ip("198.51.100.11"), ip("2001:db8::10")}));
  // And the path both agreed on (§3.3: the NAT-T port, as both do MOBIKE and NAT-T).
  EXPECT_EQ(view_of(*p.ini).committed, (mobility::Path{ep("198.51.100.3"), ep("198.51.100.10")}));
  EXPECT_EQ(view_of(*p.res).committed, (mobility::Path{ep("198.51.100.10"), ep("198.51.100.3")}));
  EXPECT_EQ(p.ini->dataplane.at(0).remote, ep("198.51.100.10"));
  EXPECT_EQ(p.res->dataplane.at(0).remote, ep("198.51.100.3"));
  EXPECT_FALSE(p.res->dataplane.at(0).udp_encap);
}

TEST(MobikeListsSim, SingleAddressHostsSendNoAdditionalAddresses) {
  Pair p(false);
  // Loopback, link-local and unspecified addresses are never announced.
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("127.0.0.1"), ip("169.254.7.7"), ip("fe80::1"), ip("::1")});
  p.configure(ini_conn(), res_conn());
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  for (const char* host : {"ini", "res"}) {
    auto auth = tap.all([&](const Seen& s) { return auth_from(s, host); });
    ASSERT_EQ(auth.size(), 1u) << host;
    ASSERT_TRUE(auth[0]->opened);
    EXPECT_TRUE(auth[0]->has(NotifyType::kMobikeSupported)) << host;
    EXPECT_EQ(auth[0]->count(NotifyType::kNoAdditionalAddresses), 1u) << host;
    EXPECT_FALSE(auth[0]->has(NotifyType::kAdditionalIp4Address)) << host;
    EXPECT_FALSE(auth[0]->has(NotifyType::kAdditionalIp6Address)) << host;
  }
  EXPECT_TRUE(view_of(*p.ini).peer_addresses.empty());
  EXPECT_TRUE(view_of(*p.res).peer_addresses.empty());
}

TEST(MobikeListsSim, ResponderAnnouncesItsChangedAddressSet) {
  Pair p(false);
  p.configure(ini_conn(Duration(0)), res_conn(Duration(0)));
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  auto before = spis_of(*p.ini);
  auto lists_from_res = [&] {
    return tap.count([](const Seen& s) {
      return s.from == "res" && s.informational_request() &&
             (s.has(NotifyType::kAdditionalIp4Address) || s.has(NotifyType::kAdditionalIp6Address) ||
              s.has(NotifyType::kNoAdditionalAddresses));
    });
  };
  ASSERT_EQ(lists_from_res(), 0u);

  // Two new addresses: the complete list goes out in an INFORMATIONAL (§3.6).
  p.net.set_addresses(*p.res, {ip("198.51.100.10"), ip("198.51.100.11"), ip("2001:db8::10")});
  ASSERT_TRUE(p.net.run_until([&] {
    return sorted(view_of(*p.ini).peer_addresses) == sorted({ip("198.51.100.11"), ip("2001:db8::10")});
  }, Duration(5000)));
  p.net.run_for(Duration(1000));
  EXPECT_EQ(lists_from_res(), 1u);
  auto list = tap.all([](const Seen& s) { return s.from == "res" && s.informational_request(); });
  ASSERT_EQ(list.size(), 1u);
  EXPECT_FALSE(list[0]->has(NotifyType::kUpdateSaAddresses));  // the responder never moves the SA
  EXPECT_FALSE(list[0]->has(NotifyType::kNoAdditionalAddresses));
  EXPECT_EQ(list[0]->src, ep("198.51.100.10"));  // sent on the IKE SA's path

  // A change that leaves the usable list as it was announces nothing.
  p.net.set_addresses(*p.res, {ip("198.51.100.10"), ip("198.51.100.11"), ip("2001:db8::10"), ip("127.0.0.1")});
  p.net.run_for(Duration(5000));
  EXPECT_EQ(lists_from_res(), 1u);

  // Back to one address: NO_ADDITIONAL_ADDRESSES empties the initiator's copy.
  p.net.set_addresses(*p.res, {ip("198.51.100.10")});
  ASSERT_TRUE(p.net.run_until([&] { return view_of(*p.ini).peer_addresses.empty(); }, Duration(5000)));
  p.net.run_for(Duration(1000));
  EXPECT_EQ(lists_from_res(), 2u);
  EXPECT_EQ(tap.count([](const Seen& s) {
    return s.from == "res" && s.informational_request() && s.has(NotifyType::kNoAdditionalAddresses);
  }), 1u);

  // Announcements move nothing.
  EXPECT_TRUE(update_ops(*p.ini).empty());
  EXPECT_TRUE(update_ops(*p.res).empty());
  EXPECT_EQ(spis_of(*p.ini), before);
  EXPECT_EQ(only_sa(*p.ini)->remote, ep("198.51.100.10"));
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
}

std::vector<wire::Payload> hostile_list() {
  using wire::make_notify;
  auto v4 = NotifyType::kAdditionalIp4Address;
  auto v6 = NotifyType::kAdditionalIp6Address;
  return {
      make_notify(v4, ip("127.0.0.1").to_bytes()),          // loopback
      make_notify(v6, ip("::1").to_bytes()),                // loopback
      make_notify(v4, ip("169.254.1.1").to_bytes()),        // link-local
      make_notify(v6, ip("fe80::1").to_bytes()),            // link-local
      make_notify(v4, ip("224.0.0.1").to_bytes()),          // multicast
      make_notify(v6, ip("ff02::1").to_bytes()),            // multicast
      make_notify(v4, ip("0.0.0.0").to_bytes()),            // unspecified
      make_notify(v4, ip("255.255.255.255").to_bytes()),    // broadcast
      make_notify(v4, Bytes{203, 0, 113, 1, 7}),            // 5 octets
      make_notify(v6, ip("203.0.113.2").to_bytes()),        // IPv4 octets in an IPv6 notify
      make_notify(v4, ip("2001:db8::3").to_bytes()),        // IPv6 octets in an IPv4 notify
      make_notify(v4, Bytes{}),                             // empty
      make_notify(v4, ip("203.0.113.9").to_bytes()),        // the only good ones
      make_notify(v6, ip("2001:db8::9").to_bytes()),
      make_notify(v4, ip("203.0.113.9").to_bytes()),        // duplicate
  };
}

TEST(MobikeListsSim, UnusableAndMalformedAddressesAreIgnoredByBothRoles) {
  for (bool from_responder : {true, false}) {
    SCOPED_TRACE(from_responder ? "list from the responder" : "list from the initiator");
    Pair p(false);
    p.configure(ini_conn(Duration(0)), res_conn(Duration(0)));
    ASSERT_TRUE(establish(p, ip("198.51.100.3")));
    Host& sender = from_responder ? *p.res : *p.ini;
    Host& receiver = from_responder ? *p.ini : *p.res;
    auto answer = std::make_shared<std::vector<wire::Payload>>();
    ASSERT_TRUE(send_raw(p.net, sender, hostile_list(), answer));
    ASSERT_TRUE(p.net.run_until([&] { return !only_sa(sender)->active; }, Duration(5000)));
    EXPECT_EQ(view_of(receiver).peer_addresses, (std::vector<IpAddress>{ip("203.0.113.9"), ip("2001:db8::9")}));
    EXPECT_TRUE(logged(receiver, "ignored peer addresses"));
    EXPECT_TRUE(logged(receiver, "127.0.0.1"));
    EXPECT_TRUE(logged(receiver, "5 octets"));
    // The list is a status: the exchange succeeds, nothing moves, no error comes back.
    for (const auto& pl : *answer)
      if (auto* n = std::get_if<wire::NotifyPayload>(&pl.body)) {
        EXPECT_FALSE(wire::is_error(n->notify_type()));
      }
    EXPECT_EQ(only_sa(*p.ini)->state, IkeState::kEstablished);
    EXPECT_EQ(only_sa(*p.res)->state, IkeState::kEstablished);
    EXPECT_TRUE(update_ops(*p.ini).empty());
    EXPECT_TRUE(update_ops(*p.res).empty());
  }
}

TEST(MobikeListsSim, PeerListIsCappedAndReplacedAsAWhole) {
  Pair p(false);
  p.configure(ini_conn(Duration(0)), res_conn(Duration(0)));
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  std::vector<wire::Payload> many;
  for (int i = 1; i <= 20; ++i)
    many.push_back(wire::make_notify(NotifyType::kAdditionalIp4Address, Bytes{203, 0, 113, static_cast<std::uint8_t>(i)}));
  ASSERT_TRUE(send_raw(p.net, *p.res, many));
  ASSERT_TRUE(p.net.run_until([&] { return !view_of(*p.ini).peer_addresses.empty(); }, Duration(5000)));
  auto list = view_of(*p.ini).peer_addresses;
  ASSERT_EQ(list.size(), mobility::kMaxAddresses);
  EXPECT_EQ(list.front(), ip("203.0.113.1"));
  EXPECT_EQ(list.back(), ip("203.0.113.16"));
  // A later list replaces the earlier one completely (§3.6).
  ASSERT_TRUE(send_raw(p.net, *p.res, {wire::make_notify(NotifyType::kAdditionalIp6Address, ip("2001:db8::77").to_bytes())}));
  ASSERT_TRUE(p.net.run_until([&] { return view_of(*p.ini).peer_addresses.size() == 1; }, Duration(5000)));
  EXPECT_EQ(view_of(*p.ini).peer_addresses[0], ip("2001:db8::77"));
  // An INFORMATIONAL without any list leaves it alone.
  ASSERT_TRUE(send_raw(p.net, *p.res, {}));
  p.net.run_for(Duration(2000));
  EXPECT_EQ(view_of(*p.ini).peer_addresses, std::vector<IpAddress>{ip("2001:db8::77")});
}

TEST(MobikeListsSim, ListsAndRolesSurviveIkeSaRekeysFromEitherSide) {
  for (bool by_initiator : {true, false}) {
    SCOPED_TRACE(by_initiator ? "rekeyed by the initiator" : "rekeyed by the responder");
    Pair p(false);
    p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("198.51.100.4")});
    p.net.set_addresses(*p.res, {ip("198.51.100.10"), ip("2001:db8::10")});
    p.configure(ini_conn(Duration(0)), res_conn(Duration(0)));
    ASSERT_TRUE(establish(p, ip("198.51.100.3")));
    auto old_spi = only_sa(*p.ini)->spi_i;
    Host& by = by_initiator ? *p.ini : *p.res;
    ASSERT_TRUE(by.engine->rekey_ike(only_sa(by)->id, p.net.now()));
    ASSERT_TRUE(p.net.run_until([&] {
      return p.ini->engine->ike_sa_count() == 1 && p.res->engine->ike_sa_count() == 1 && p.both_established() &&
             only_sa(*p.ini)->spi_i != old_spi && only_sa(*p.res)->spi_i != old_spi;
    }, Duration(10000)));
    EXPECT_EQ(view_of(*p.ini).peer_addresses, std::vector<IpAddress>{ip("2001:db8::10")});
    EXPECT_EQ(view_of(*p.res).peer_addresses, std::vector<IpAddress>{ip("198.51.100.4")});
    EXPECT_EQ(view_of(*p.ini).committed, (mobility::Path{ep("198.51.100.3"), ep("198.51.100.10")}));
    EXPECT_EQ(view_of(*p.res).committed, (mobility::Path{ep("198.51.100.10"), ep("198.51.100.3")}));
    // The roles of RFC 4555 stay with the first IKE SA's initiator, whoever rekeyed.
    EXPECT_TRUE(mobility::may_update(*only_sa(*p.ini)));
    EXPECT_FALSE(mobility::may_update(*only_sa(*p.res)));
    EXPECT_FALSE(mobility::update_addresses(*p.res->engine, only_sa(*p.res)->id, ip("2001:db8::10"), p.net.now()));

    // The successor announces changes too, and moves with UPDATE_SA_ADDRESSES.
    p.net.set_addresses(*p.res, {ip("198.51.100.10")});
    ASSERT_TRUE(p.net.run_until([&] { return view_of(*p.ini).peer_addresses.empty(); }, Duration(5000)));
    auto spis = spis_of(*p.ini);
    ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("198.51.100.4"), p.net.now()));
    ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, Duration(5000)));
    EXPECT_EQ(update_ops(*p.res)[0].remote, ep("198.51.100.4"));
    EXPECT_EQ(spis_of(*p.ini), spis);
    EXPECT_EQ(spis_of(*p.res), (Spis{spis.ike_i, spis.ike_r, spis.child_out, spis.child_in}));
    // The address the initiator left is now in its list (announced with the update).
    EXPECT_EQ(view_of(*p.res).peer_addresses, std::vector<IpAddress>{ip("198.51.100.3")});
  }
}

}  // namespace
}  // namespace mobike::sim
