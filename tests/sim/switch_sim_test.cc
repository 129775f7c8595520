// The responder-initiated switch (SWITCH_TO_IP_ADDRESS) over the simulated network:
// the seed scenario of the project, a gateway moving its SAs while the client sits
// behind a NAT with address-and-port-dependent filtering; the flows of both drafts'
// generations (spec §5.2, §5.3), the responder keeping everything until the update
// (§6.2.4), the old address already gone, and changes of the address family.
#include <gtest/gtest.h>

#include "switch_helpers.h"

namespace mobike::sim {
namespace {

using ike::EventKind;

// ini 10.1.0.2 behind NAT 198.51.100.2; the gateway has 198.51.100.10 and .20.
struct SwitchPair : Pair {
  SwitchPair() : Pair(true) {
    net.set_addresses(*res, {ip("198.51.100.10"), ip("198.51.100.20")});
    configure_default();
    initiate();
    EXPECT_TRUE(net.run_until([&] { return both_established(); }));
    net.run_for(Duration(1000));  // the initiator's NAT-mapping liveness check is done
  }
};

TEST(SwitchSim, GatewayMovesBehindARestrictedConeNat) {
  SwitchPair p;
  const auto* r = only_sa(*p.res);
  auto v = mobility::view(*r);
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->peer_switch);  // the initiator announced support
  // The gateway announced its other address in IKE_AUTH.
  EXPECT_EQ(mobility::view(*only_sa(*p.ini))->peer_addresses, std::vector<IpAddress>{ip("198.51.100.20")});
  auto spi_i = r->spi_i, spi_r = r->spi_r;
  auto child_in = r->children[0].spi_in;
  auto dropped_before = p.nat->dropped_by_filter;

  ASSERT_TRUE(mobility::switch_address(*p.res->engine, r->id, ip("198.51.100.20"), p.net.now()));
  p.net.collect(*p.res);
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kSwitchSucceeded) == 1; },
                              Duration(5000)));
  r = only_sa(*p.res);
  const auto* i = only_sa(*p.ini);
  EXPECT_EQ(r->spi_i, spi_i);  // no re-keying
  EXPECT_EQ(r->spi_r, spi_r);
  EXPECT_EQ(r->children[0].spi_in, child_in);
  EXPECT_EQ(r->local, (Endpoint{ip("198.51.100.20"), 4500}));
  EXPECT_EQ(r->remote, (Endpoint{ip("198.51.100.2"), 4500}));
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kAddressesUpdated) == 1; }));
  EXPECT_EQ(i->remote, (Endpoint{ip("198.51.100.20"), 4500}));
  // Both data planes moved, once each.
  ASSERT_FALSE(p.res->dataplane.empty());
  EXPECT_EQ(p.res->dataplane.back().kind, ike::DataplaneOp::Kind::kUpdateAddresses);
  EXPECT_EQ(p.res->dataplane.back().local, (Endpoint{ip("198.51.100.20"), 4500}));
  EXPECT_EQ(p.ini->dataplane.back().kind, ike::DataplaneOp::Kind::kUpdateAddresses);
  EXPECT_EQ(p.ini->dataplane.back().remote, (Endpoint{ip("198.51.100.20"), 4500}));
  // Nothing from the new address was let in before the initiator had sent there.
  EXPECT_EQ(p.nat->dropped_by_filter, dropped_before);
  EXPECT_EQ(switch_failures(*p.res), 0u);
  // The moved SA works: a liveness check from the gateway on the new path.
  ASSERT_TRUE(p.res->engine->rekey_child(r->children[0].id, p.net.now()));
  p.net.collect(*p.res);
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kChildRekeyed) == 1; }, Duration(5000)));
}

// Spec §5.2 (generation 1: the answer goes to the new address) and §5.3 (generation 2:
// the answer goes back to the request's source; the UPDATE opens the NAT towards the
// new address). Every message of the flow: who sent it, from where, to where, in which
// order, with what.
TEST(SwitchSim, EveryMessageOfTheFlowInBothGenerations) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    Sw s({.gen1 = gen1});
    ASSERT_TRUE(s.start());
    // Capability (§5.1): the initiator's MOBIKE_SUPPORTED carries exactly 0x52, the
    // gateway's is empty.
    auto auth = s.all([](const Seen& x) { return x.exchange == ExchangeType::kIkeAuth; });
    ASSERT_EQ(auth.size(), 2u);
    auto* req_flag = wire::find_notify(auth[0]->payloads, NotifyType::kMobikeSupported);
    auto* resp_flag = wire::find_notify(auth[1]->payloads, NotifyType::kMobikeSupported);
    ASSERT_TRUE(req_flag && resp_flag);
    EXPECT_EQ(req_flag->data, Bytes{0x52});
    EXPECT_TRUE(resp_flag->data.empty());
    EXPECT_TRUE(view_of(*s.p.res).peer_switch);
    EXPECT_FALSE(view_of(*s.p.ini).peer_switch);  // only the responder keeps the flag
    EXPECT_EQ(view_of(*s.p.ini).peer_addresses, std::vector<IpAddress>{R2()});

    auto before = s.tap->seen.size();
    auto t0 = s.p.net.now();
    ASSERT_TRUE(s.request(R2()));
    EXPECT_EQ(view_of(*s.p.res).switching_to, R2());
    ASSERT_TRUE(s.run_to_outcome());
    EXPECT_LT(s.p.net.now() - t0, Duration(200));  // two round trips, no waiting
    EXPECT_EQ(event_count(*s.p.res, EventKind::kSwitchSucceeded, "198.51.100.10 -> 198.51.100.20"), 1u);
    EXPECT_EQ(switch_failures(*s.p.res), 0u);
    EXPECT_EQ(switch_failures(*s.p.ini), 0u);

    auto req = s.switch_requests();
    ASSERT_EQ(req.size(), 1u);
    EXPECT_EQ(req[0]->src, ep("198.51.100.10"));  // from the old address, the NAT lets it in
    EXPECT_EQ(req[0]->dst, s.ini_public);
    ASSERT_EQ(req[0]->payloads.size(), 1u);  // sent alone (Q4)
    EXPECT_EQ(switch_data(*req[0]), R2().to_bytes());
    EXPECT_EQ(wire::find_notify(req[0]->payloads, kSwitchNotify)->protocol, wire::ProtocolId::kNone);
    auto resp = s.switch_responses();
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_EQ(resp[0]->src, s.ini_public);
    EXPECT_EQ(resp[0]->dst, gen1 ? ep("198.51.100.20") : ep("198.51.100.10"));
    EXPECT_TRUE(resp[0]->payloads.empty());
    auto upd = s.updates();
    ASSERT_EQ(upd.size(), 1u);
    EXPECT_EQ(upd[0]->src, s.ini_public);
    EXPECT_EQ(upd[0]->dst, ep("198.51.100.20"));
    EXPECT_TRUE(upd[0]->has(NotifyType::kCookie2));
    EXPECT_TRUE(upd[0]->has(NotifyType::kNatDetectionSourceIp));
    EXPECT_TRUE(upd[0]->has(NotifyType::kNatDetectionDestinationIp));
    auto upd_resp = s.update_responses();
    ASSERT_EQ(upd_resp.size(), 1u);
    EXPECT_EQ(upd_resp[0]->src, ep("198.51.100.20"));
    EXPECT_EQ(upd_resp[0]->dst, s.ini_public);
    EXPECT_EQ(wire::find_notify(upd_resp[0]->payloads, NotifyType::kCookie2)->data,
              wire::find_notify(upd[0]->payloads, NotifyType::kCookie2)->data);
    // The answer first, then the update (§6.3.4 "then immediately").
    EXPECT_LT(s.index(resp[0]), s.index(upd[0]));
    // The gateway asked for this path: no return-routability check (Q9).
    EXPECT_EQ(s.tap->count(Tap::rr_request), 0u);
    // Then the gateway's address list from the new address: the old address is an
    // additional one now (RFC 4555 §3.6). Nothing else, nobody retransmitted.
    ASSERT_EQ(s.tap->seen.size() - before, 6u);
    const auto& list = s.tap->seen[before + 4];
    EXPECT_EQ(list.from, "res");
    EXPECT_TRUE(list.informational_request());
    EXPECT_EQ(list.src, ep("198.51.100.20"));
    ASSERT_EQ(list.count(NotifyType::kAdditionalIp4Address), 1u);
    EXPECT_EQ(wire::find_notify(list.payloads, NotifyType::kAdditionalIp4Address)->data, R1().to_bytes());
    EXPECT_EQ(view_of(*s.p.ini).peer_addresses, std::vector<IpAddress>{R1()});
    EXPECT_EQ(s.p.ini->engine->counters().retransmits_sent + s.p.res->engine->counters().retransmits_sent, 0u);

    s.expect_switched(R2());
    EXPECT_EQ(s.ini().local, ep(kIniInside));
    EXPECT_TRUE(s.ini().nat_local);
    EXPECT_TRUE(s.res().nat_remote);
    EXPECT_EQ(update_ops(*s.p.res).size(), 1u);
    EXPECT_EQ(update_ops(*s.p.ini).size(), 1u);
    EXPECT_EQ(count_events(*s.p.res, EventKind::kAddressesUpdated), 1u);
    EXPECT_EQ(count_events(*s.p.ini, EventKind::kAddressesUpdated), 1u);
    EXPECT_EQ(view_of(*s.p.res).updates, 1u);

    // The moved SAs work: a Child SA rekey by the gateway, all of it from the new address.
    auto moved_at = s.tap->seen.size();
    ASSERT_TRUE(s.p.res->engine->rekey_child(s.res().children[0].id, s.p.net.now()));
    s.p.net.collect(*s.p.res);
    ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.ini, EventKind::kChildRekeyed) == 1; },
                                  Duration(5000)));
    s.p.net.run_for(seconds(30));
    for (std::size_t k = moved_at; k < s.tap->seen.size(); ++k) {
      const auto& m = s.tap->seen[k];
      if (m.from == "res") {
        EXPECT_EQ(m.src, ep("198.51.100.20")) << k;
      }
      if (m.from == "ini") {
        EXPECT_EQ(m.dst, ep("198.51.100.20")) << k;
      }
    }
    EXPECT_EQ(s.p.nat->dropped_by_filter, s.filter_drops);
    EXPECT_EQ(s.failures(), 0u);
  }
}

// No NAT and NAT traversal off (RFC 4555 §3.9): the update carries NO_NATS_ALLOWED
// instead of NAT detection, ESP stays unencapsulated.
TEST(SwitchSim, WithoutNatTraversal) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    Sw s({.gen1 = gen1, .nat = false, .tweak = [](ike::ConnectionConfig& i, ike::ConnectionConfig& r) {
            i.nat_traversal = r.nat_traversal = false;
          }});
    ASSERT_TRUE(s.start());
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.run_to_outcome());
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
    s.expect_switched(R2());
    auto upd = s.updates();
    ASSERT_EQ(upd.size(), 1u);
    EXPECT_TRUE(upd[0]->has(NotifyType::kNoNatsAllowed));
    EXPECT_FALSE(upd[0]->has(NotifyType::kNatDetectionSourceIp));
    EXPECT_EQ(upd[0]->src.address, ip("198.51.100.3"));
    EXPECT_EQ(s.port, 500);  // no float to 4500 without NAT traversal (RFC 4555 §3.3)
    EXPECT_EQ(upd[0]->dst, (Endpoint{R2(), 500}));
    EXPECT_EQ(s.switch_responses().at(0)->dst, (Endpoint{gen1 ? R2() : R1(), 500}));
    EXPECT_FALSE(s.ini().nat_local);
    EXPECT_FALSE(s.res().nat_remote);
    EXPECT_EQ(s.p.ini->keepalives_sent, 0u);
    EXPECT_EQ(s.failures(), 0u);
  }
}

// §6.2.4: the answer (at the new address in generation 1, at the old one in
// generation 2) moves nothing; only the UPDATE does. The initiator points its IKE SA at
// the new address at once but moves ESP only once the update is answered (§6.3.6).
TEST(SwitchSim, NothingMovesBeforeTheUpdateArrives) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    Sw s({.gen1 = gen1});
    ASSERT_TRUE(s.start());
    int dropped = 0;
    s.tap->drop_if = [&](const Seen& m) { return Tap::update_request(m) && dropped == 0 && ++dropped; };
    ASSERT_TRUE(s.request(R2()));
    // The gateway has its answer (its request is done), the update is lost.
    ASSERT_TRUE(s.p.net.run_until([&] { return !s.res().active && s.switch_responses().size() == 1; },
                                  Duration(1000)));
    auto resp = s.switch_responses();
    EXPECT_EQ(resp[0]->dst, gen1 ? ep("198.51.100.20") : ep("198.51.100.10"));  // it got there
    EXPECT_EQ(dropped, 1);
    EXPECT_EQ(s.res().local, ep("198.51.100.10"));
    EXPECT_EQ(s.res().remote, s.ini_public);
    EXPECT_EQ(view_of(*s.p.res).committed, (mobility::Path{ep("198.51.100.10"), s.ini_public}));
    EXPECT_EQ(view_of(*s.p.res).switching_to, R2());
    EXPECT_TRUE(update_ops(*s.p.res).empty());
    EXPECT_EQ(count_events(*s.p.res, EventKind::kAddressesUpdated), 0u);
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 0u);
    EXPECT_EQ(s.ini().remote, ep("198.51.100.20"));
    EXPECT_EQ(view_of(*s.p.ini).committed.remote, ep("198.51.100.10"));
    EXPECT_TRUE(update_ops(*s.p.ini).empty());
    ASSERT_TRUE(s.ini().active);
    EXPECT_STREQ(s.ini().active->name(), "MOBIKE_UPDATE");
    // Another switch is refused meanwhile (Q5: at most one per IKE SA).
    auto again = s.request(ip("198.51.100.10"));
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().find("in flight"), std::string::npos) << again.error();

    // The retransmitted update completes it.
    ASSERT_TRUE(s.run_to_outcome());
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
    auto upd = s.updates();
    ASSERT_EQ(upd.size(), 2u);
    EXPECT_EQ(upd[0]->mid, upd[1]->mid);
    EXPECT_EQ(upd[1]->dst, ep("198.51.100.20"));
    EXPECT_EQ(s.p.ini->engine->counters().retransmits_sent, 1u);
    s.expect_switched(R2());
    EXPECT_EQ(update_ops(*s.p.res).size(), 1u);
    EXPECT_EQ(update_ops(*s.p.ini).size(), 1u);
  }
}

// An address the gateway never announced (a cluster address its engine does not
// list) is taken when the initiator's switch_allow covers it.
TEST(SwitchSim, UnannouncedAddressAllowedByPolicy) {
  Sw s({.tweak = [](ike::ConnectionConfig& i, ike::ConnectionConfig&) {
    i.switch_allow = {*IpPrefix::parse("198.51.100.16/28")};
  }});
  ASSERT_TRUE(s.start());
  s.p.res->addresses.push_back(ip("198.51.100.30"));  // reachable, not announced
  ASSERT_EQ(view_of(*s.p.ini).peer_addresses, std::vector<IpAddress>{R2()});
  ASSERT_TRUE(s.request(ip("198.51.100.30")));
  ASSERT_TRUE(s.run_to_outcome());
  EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
  s.expect_switched(ip("198.51.100.30"));
  EXPECT_EQ(s.switch_responses().at(0)->dst, ep("198.51.100.30"));
}

// There and back: after the move the gateway's old address is one of its additional
// addresses (the new one is in the IP header now); the initiator learns that, and
// the switch back is accepted as announced.
TEST(SwitchSim, SwitchThereAndBack) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    Sw s({.gen1 = gen1});
    ASSERT_TRUE(s.start());
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.run_to_outcome());
    s.p.net.run_for(seconds(1));
    EXPECT_EQ(view_of(*s.p.ini).peer_addresses, std::vector<IpAddress>{R1()});
    ASSERT_TRUE(s.request(R1()));
    ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kSwitchSucceeded) == 2 && s.idle(); },
                                  seconds(10)));
    EXPECT_EQ(switch_failures(*s.p.res), 0u);
    EXPECT_EQ(switch_failures(*s.p.ini), 0u);
    s.expect_switched(R1());
    auto req = s.switch_requests();
    ASSERT_EQ(req.size(), 2u);
    EXPECT_EQ(req[1]->src, ep("198.51.100.20"));  // from the then current address
    EXPECT_EQ(switch_data(*req[1]), R1().to_bytes());
    s.p.net.run_for(seconds(1));
    EXPECT_EQ(view_of(*s.p.ini).peer_addresses, std::vector<IpAddress>{R2()});
    EXPECT_EQ(s.p.nat->dropped_by_filter, s.filter_drops);
  }
}

// The gateway's old address is already gone when it asks (as the daemon does it: the
// address monitor first tells the engine, then the switch starts). It can still send
// from it (IP_TRANSPARENT), but nothing reaches it any more: the generation-2 answer
// is lost, the update at the new address completes the switch anyway.
TEST(SwitchSim, OldAddressAlreadyGone) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    Sw s({.gen1 = gen1});
    ASSERT_TRUE(s.start());
    auto gone_at = s.tap->seen.size();
    auto undelivered = s.p.net.dropped;
    s.p.res->nonlocal_sources = {R1()};
    s.p.net.set_addresses(*s.p.res, {R2()});
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.run_to_outcome(seconds(20)));
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
    EXPECT_EQ(switch_failures(*s.p.res), 0u);
    s.expect_switched(R2());
    auto req = s.switch_requests();
    ASSERT_FALSE(req.empty());
    EXPECT_EQ(req[0]->src, ep("198.51.100.10"));  // sent from the address it no longer has
    auto resp = s.switch_responses();
    ASSERT_FALSE(resp.empty());
    if (gen1) {
      ASSERT_EQ(resp.size(), 1u);
      EXPECT_EQ(resp[0]->dst, ep("198.51.100.20"));
    } else {
      // Lost at the old address; the request, retransmitted from the new address once
      // the SA moved, is answered from the cache there.
      ASSERT_EQ(resp.size(), 2u);
      EXPECT_EQ(resp[0]->dst, ep("198.51.100.10"));
      ASSERT_EQ(req.size(), 2u);
      EXPECT_EQ(req[1]->src, ep("198.51.100.20"));
      EXPECT_EQ(resp[1]->dst, ep("198.51.100.20"));
      EXPECT_EQ(resp[1]->data, resp[0]->data);
      EXPECT_EQ(s.p.ini->engine->counters().retransmits_answered, 1u);
      EXPECT_GE(s.p.net.dropped, undelivered + 1);
    }
    // The gateway's new address list follows from the new address: nothing additional.
    ASSERT_TRUE(s.p.net.run_until([&] { return view_of(*s.p.ini).peer_addresses.empty() && s.idle(); },
                                  seconds(10)));
    // Only requests ever left from the old address; no answer was expected there but the
    // lost generation-2 one.
    for (std::size_t k = gone_at; k < s.tap->seen.size(); ++k) {
      const auto& m = s.tap->seen[k];
      if (m.from == "res" && m.src.address == R1()) {
        EXPECT_TRUE(m.informational_request()) << k;
      }
      if (m.from == "ini" && m.dst.address == R1()) {
        EXPECT_TRUE(!gen1 && s.switch_response(m)) << k;
      }
    }
    s.p.net.run_for(minutes(6));
    EXPECT_EQ(s.failures(), 0u);
    EXPECT_EQ(s.p.net.unsendable, 0u);
  }
}

// Failover to a brand-new address (a cluster node taking over): the old address goes
// and the new one appears at the same moment, then the switch starts — as the daemon
// does it. The new address was never announced; the initiator's policy allows it. The
// switch must not wait behind an address-list announcement sent from the lost
// address, whose answer could never arrive.
TEST(SwitchSim, FailoverToABrandNewAddress) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    Sw s({.gen1 = gen1, .res_addresses = {R1()}, .tweak = [](ike::ConnectionConfig& i, ike::ConnectionConfig&) {
            i.switch_allow = {*IpPrefix::parse("198.51.100.16/28")};
          }});
    ASSERT_TRUE(s.start());
    ASSERT_TRUE(view_of(*s.p.ini).peer_addresses.empty());
    auto t0 = s.p.net.now();
    s.p.res->nonlocal_sources = {R1()};
    s.p.net.set_addresses(*s.p.res, {R2()});
    ASSERT_TRUE(s.request(R2()));
    ASSERT_TRUE(s.run_to_outcome(seconds(20)));
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
    EXPECT_LT(s.p.net.now() - t0, Duration(3000));
    s.expect_switched(R2());
    auto req = s.switch_requests();
    ASSERT_FALSE(req.empty());
    EXPECT_EQ(req[0]->src, ep("198.51.100.10"));
    // The switch request was the gateway's first message after the change.
    auto first = s.all([&](const Seen& m) { return m.from == "res" && m.at >= t0; });
    ASSERT_FALSE(first.empty());
    EXPECT_TRUE(switch_request(*first[0]));
    s.p.net.run_for(minutes(6));
    EXPECT_EQ(s.failures(), 0u);
    EXPECT_EQ(s.res().local, ep("198.51.100.20"));
    EXPECT_TRUE(view_of(*s.p.ini).peer_addresses.empty());  // R2 is in the header, R1 gone
  }
}

// IPv4 -> IPv6 -> IPv4 (Q11): the initiator has an IPv6 address without NAT besides
// its NATed IPv4 one; the UPDATE goes out from an address of the new family, NAT-T
// follows the path.
TEST(SwitchSim, ToIpv6AndBack) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    const IpAddress r6 = ip("2001:db8::20"), i6 = ip("2001:db8:1::2");
    Sw s({.gen1 = gen1, .res_addresses = {R1(), R2(), r6}, .ini_extra = {i6}});
    ASSERT_TRUE(s.start());
    EXPECT_EQ(sorted(view_of(*s.p.ini).peer_addresses), sorted({R2(), r6}));
    ASSERT_TRUE(s.request(r6));
    ASSERT_TRUE(s.run_to_outcome());
    EXPECT_EQ(count_events(*s.p.res, EventKind::kSwitchSucceeded), 1u);
    const Endpoint gw6{r6, 4500}, ini6{i6, 4500};
    EXPECT_EQ(s.ini().local, ini6);
    EXPECT_EQ(s.ini().remote, gw6);
    EXPECT_EQ(s.res().local, gw6);
    EXPECT_EQ(s.res().remote, ini6);
    EXPECT_FALSE(s.ini().nat_local);  // no NAT on this path
    EXPECT_FALSE(s.res().nat_remote);
    ASSERT_EQ(update_ops(*s.p.res).size(), 1u);
    EXPECT_EQ(update_ops(*s.p.res)[0].local, gw6);
    EXPECT_EQ(update_ops(*s.p.res)[0].remote, ini6);
    EXPECT_FALSE(update_ops(*s.p.res)[0].udp_encap);
    ASSERT_EQ(update_ops(*s.p.ini).size(), 1u);
    EXPECT_EQ(update_ops(*s.p.ini)[0].local, ini6);
    EXPECT_EQ(update_ops(*s.p.ini)[0].remote, gw6);
    EXPECT_FALSE(update_ops(*s.p.ini)[0].udp_encap);
    auto upd = s.updates();
    ASSERT_EQ(upd.size(), 1u);
    EXPECT_EQ(upd[0]->src, ini6);
    EXPECT_EQ(upd[0]->dst, gw6);
    // The answer cannot cross families: it goes back to the request's source even in
    // generation 1 (from the address the request arrived on, RFC 7296 §2.11).
    auto resp = s.switch_responses();
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_EQ(resp[0]->dst, ep("198.51.100.10"));
    EXPECT_EQ(s.p.net.unsendable, 0u);
    EXPECT_EQ(spis_of(*s.p.ini), s.spis_i);

    // Back to IPv4, behind the NAT again.
    ASSERT_TRUE(s.request(R1()));
    ASSERT_TRUE(s.p.net.run_until([&] { return count_events(*s.p.res, EventKind::kSwitchSucceeded) == 2 && s.idle(); },
                                  seconds(10)));
    EXPECT_EQ(s.ini().local, ep(kIniInside));
    EXPECT_TRUE(s.ini().nat_local);
    EXPECT_TRUE(s.res().nat_remote);
    s.expect_switched(R1());
    EXPECT_TRUE(update_ops(*s.p.res).back().udp_encap);
    EXPECT_EQ(s.p.net.unsendable, 0u);
    EXPECT_EQ(s.p.nat->dropped_by_filter, s.filter_drops);
    EXPECT_EQ(switch_failures(*s.p.res) + switch_failures(*s.p.ini), 0u);
    EXPECT_EQ(s.failures(), 0u);
  }
}

}  // namespace
}  // namespace mobike::sim
