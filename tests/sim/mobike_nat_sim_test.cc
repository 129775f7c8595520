// MOBIKE and NATs (RFC 4555 §3.8, §3.9) over the simulated network: NAT detection in
// liveness checks, a NAT that renumbers or allocates new ports, and NO_NATS_ALLOWED
// answered with UNEXPECTED_NAT_DETECTED.
#include <gtest/gtest.h>

#include "mobility/address_list.h"
#include "mobike_helpers.h"

namespace mobike::sim {
namespace {

bool liveness_request(const Seen& s) {
  return s.from == "ini" && s.informational_request() && !s.has(NotifyType::kUpdateSaAddresses) &&
         !s.has(NotifyType::kCookie2);
}

TEST(MobikeNatSim, LivenessChecksCarryNatDetectionAndStayQuietWhileNothingChanges) {
  for (bool behind_nat : {true, false}) {
    SCOPED_TRACE(behind_nat ? "behind a NAT" : "no NAT");
    Pair p(behind_nat);
    p.configure(ini_conn(Duration(5000)), res_conn());
    Tap tap(p);
    ASSERT_TRUE(establish(p, p.ini->addresses.front()));
    p.net.run_for(Duration(60000));
    auto checks = tap.all(liveness_request);
    ASSERT_GE(checks.size(), 10u);
    for (const auto* c : checks) {
      EXPECT_TRUE(c->has(NotifyType::kNatDetectionSourceIp));
      EXPECT_TRUE(c->has(NotifyType::kNatDetectionDestinationIp));
    }
    // The responder echoes NAT detection for the path the request took.
    auto answers = tap.all([&](const Seen& s) {
      return s.from == "res" && s.informational_response() && s.has(NotifyType::kNatDetectionDestinationIp);
    });
    EXPECT_EQ(answers.size(), checks.size());
    // Nothing changed: no update, nothing moved.
    EXPECT_EQ(tap.count(Tap::update_request), 0u);
    EXPECT_TRUE(update_ops(*p.ini).empty());
    EXPECT_TRUE(update_ops(*p.res).empty());
    EXPECT_EQ(count_events(*p.ini, EventKind::kAddressesUpdated), 0u);
    EXPECT_EQ(only_sa(*p.ini)->nat_local, behind_nat);
    EXPECT_EQ(only_sa(*p.res)->nat_remote, behind_nat);
  }
}

TEST(MobikeNatSim, NatMappingChangeIsNoticedByLivenessCheckAndUpdated) {
  struct Case {
    const char* name;
    bool renumber;  // else: same address, new ports
    Endpoint public_after;
  };
  for (const Case& c : {Case{"NAT renumbered", true, ep("198.51.100.20")},
                        Case{"NAT allocates new ports", false, ep("198.51.100.2", 5500)}}) {
    SCOPED_TRACE(c.name);
    Pair p(true);  // ini 10.1.0.2 behind 198.51.100.2
    p.configure(ini_conn(Duration(5000)), res_conn());
    Tap tap(p);
    ASSERT_TRUE(establish(p, ip("10.1.0.2")));
    p.net.run_for(Duration(12000));  // the public mapping of the NAT-T port is learned
    ASSERT_EQ(tap.count(Tap::update_request), 0u);
    ASSERT_EQ(only_sa(*p.res)->remote, ep("198.51.100.2"));
    auto spis_i = spis_of(*p.ini);
    auto spis_r = spis_of(*p.res);

    // The NAT reboots: every mapping is gone, new ones get another address or port.
    if (c.renumber)
      p.nat->set_public_address(ip("198.51.100.20"));
    else
      p.nat->port_offset = 1000;
    p.nat->clear();
    auto changed_at = p.net.now();
    ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1 && update_ops(*p.ini).size() == 1; },
                                Duration(20000)));
    // Within one liveness interval (5 s) plus the exchanges.
    EXPECT_LE(p.net.now() - changed_at, Duration(6000));

    auto updates = tap.all(Tap::update_request);
    ASSERT_EQ(updates.size(), 1u);
    EXPECT_EQ(updates[0]->src, c.public_after);
    EXPECT_TRUE(updates[0]->has(NotifyType::kNatDetectionSourceIp));
    EXPECT_TRUE(updates[0]->has(NotifyType::kNatDetectionDestinationIp));
    EXPECT_TRUE(updates[0]->has(NotifyType::kCookie2));
    EXPECT_FALSE(updates[0]->has(NotifyType::kNoNatsAllowed));
    // The liveness check that noticed it came from the new mapping too.
    auto checks = tap.all(liveness_request);
    ASSERT_FALSE(checks.empty());
    EXPECT_EQ(std::count_if(checks.begin(), checks.end(), [&](const Seen* s) { return s->src == c.public_after; }),
              1);

    const auto* r = only_sa(*p.res);
    const auto* i = only_sa(*p.ini);
    EXPECT_EQ(r->remote, c.public_after);
    EXPECT_EQ(r->local, ep("198.51.100.10"));
    EXPECT_TRUE(r->nat_remote);
    EXPECT_EQ(view_of(*p.res).committed, (mobility::Path{ep("198.51.100.10"), c.public_after}));
    EXPECT_EQ(update_ops(*p.res)[0].remote, c.public_after);
    EXPECT_TRUE(update_ops(*p.res)[0].udp_encap);
    // The initiator's own endpoints did not change.
    EXPECT_EQ(i->local, ep("10.1.0.2"));
    EXPECT_EQ(i->remote, ep("198.51.100.10"));
    EXPECT_TRUE(i->nat_local);
    EXPECT_TRUE(update_ops(*p.ini)[0].udp_encap);
    EXPECT_EQ(spis_of(*p.ini), spis_i);
    EXPECT_EQ(spis_of(*p.res), spis_r);

    // The new mapping is the reference now: no further updates while it holds, and
    // the SA keeps working over it.
    p.net.run_for(Duration(60000));
    EXPECT_EQ(tap.count(Tap::update_request), 1u);
    EXPECT_EQ(update_ops(*p.res).size(), 1u);
    EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
    ASSERT_TRUE(p.ini->engine->rekey_child(only_sa(*p.ini)->children[0].id, p.net.now()));
    ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kChildRekeyed) == 1; }, Duration(5000)));
  }
}

TEST(MobikeNatSim, NoNatsAllowedRefusesAnUpdateThroughANat) {
  Pair p(false);  // ini 198.51.100.3 direct
  Nat& nat = p.net.add_nat("nat", ip("198.51.100.2"));
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("198.51.100.4"), ip("10.1.0.2")});
  p.net.put_behind(*p.ini, &nat, ip("10.1.0.2"));
  auto i = ini_conn(Duration(5000));
  i.nat_traversal = false;
  p.configure(i, res_conn());
  Tap tap(p);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  // No NAT detection: IKE stays on port 500, and IKE_AUTH forbids NATs (§3.9).
  auto auth = tap.all([](const Seen& s) { return s.from == "ini" && s.exchange == ExchangeType::kIkeAuth; });
  ASSERT_EQ(auth.size(), 1u);
  ASSERT_TRUE(auth[0]->has(NotifyType::kNoNatsAllowed));
  EXPECT_EQ(wire::find_notify(auth[0]->payloads, NotifyType::kNoNatsAllowed)->data,
            mobility::no_nats_data(ep("198.51.100.3", 500), ep("198.51.100.10", 500)));
  const Endpoint home = ep("198.51.100.3", 500), gw = ep("198.51.100.10", 500);
  ASSERT_EQ(only_sa(*p.ini)->local, home);
  auto spis = spis_of(*p.ini);

  // A move behind the NAT: the responder sees the rewritten header.
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("10.1.0.2"), p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kAddressUpdateRefused) == 1; },
                              Duration(5000)));
  EXPECT_EQ(event_count(*p.ini, EventKind::kAddressUpdateRefused, "UNEXPECTED_NAT_DETECTED"), 1u);
  auto updates = tap.all(Tap::update_request);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0]->src, ep("198.51.100.2"));  // through the NAT
  EXPECT_TRUE(updates[0]->has(NotifyType::kNoNatsAllowed));
  EXPECT_FALSE(updates[0]->has(NotifyType::kNatDetectionSourceIp));
  auto refusal = tap.all([&](const Seen& s) { return tap.update_response(s); });
  ASSERT_EQ(refusal.size(), 1u);
  EXPECT_TRUE(refusal[0]->has(NotifyType::kUnexpectedNatDetected));
  EXPECT_EQ(refusal[0]->dst, ep("198.51.100.2"));  // answered where the request came from
  // Nobody moved: the initiator is back on its committed path.
  EXPECT_EQ(only_sa(*p.ini)->local, home);
  EXPECT_EQ(only_sa(*p.ini)->remote, gw);
  EXPECT_EQ(only_sa(*p.res)->remote, home);
  EXPECT_EQ(view_of(*p.res).committed, (mobility::Path{gw, home}));
  EXPECT_FALSE(view_of(*p.res).rr_pending);
  EXPECT_TRUE(update_ops(*p.ini).empty());
  EXPECT_TRUE(update_ops(*p.res).empty());
  // And it keeps working there.
  auto before = tap.seen.size();
  p.net.run_for(Duration(30000));
  EXPECT_GE(tap.count([&](const Seen& s) { return s.from == "res" && s.informational_response() && s.dst == home; }),
            5u);
  EXPECT_GT(tap.seen.size(), before);
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);

  // A move to a direct address passes the same check.
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("198.51.100.4"), p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, Duration(5000)));
  EXPECT_EQ(only_sa(*p.res)->remote, ep("198.51.100.4"));
  EXPECT_EQ(update_ops(*p.res)[0].remote, ep("198.51.100.4"));
  EXPECT_FALSE(update_ops(*p.res)[0].udp_encap);
  EXPECT_FALSE(only_sa(*p.res)->nat_remote);
  EXPECT_FALSE(only_sa(*p.ini)->nat_local);
  EXPECT_EQ(count_events(*p.ini, EventKind::kAddressUpdateRefused), 1u);
  EXPECT_EQ(spis_of(*p.ini), spis);
}

TEST(MobikeNatSim, NoNatsAllowedRefusesIkeAuthThroughANat) {
  Pair p(true);  // ini 10.1.0.2 behind the NAT
  auto i = ini_conn(Duration(5000));
  i.nat_traversal = false;
  p.configure(i, res_conn());
  Tap tap(p);
  auto id = p.ini->engine->initiate("home", ip("10.1.0.2"), p.net.now());
  ASSERT_TRUE(id);
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kIkeFailed) == 1; }, Duration(10000)));
  // The request said 10.1.0.2:500; the gateway saw the NAT's address (§3.9).
  auto auth = tap.all([](const Seen& s) { return s.from == "ini" && s.exchange == ExchangeType::kIkeAuth; });
  ASSERT_EQ(auth.size(), 1u);
  EXPECT_EQ(auth[0]->src.address, ip("198.51.100.2"));
  EXPECT_EQ(wire::find_notify(auth[0]->payloads, NotifyType::kNoNatsAllowed)->data,
            mobility::no_nats_data(ep("10.1.0.2", 500), ep("198.51.100.10", 500)));
  auto answer = tap.all([](const Seen& s) { return s.from == "res" && s.exchange == ExchangeType::kIkeAuth; });
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_TRUE(answer[0]->has(NotifyType::kUnexpectedNatDetected));
  EXPECT_FALSE(answer[0]->has(NotifyType::kAuthenticationFailed));
  EXPECT_TRUE(logged(*p.res, "NO_NATS_ALLOWED in IKE_AUTH does not match"));
  EXPECT_TRUE(logged(*p.ini, "UNEXPECTED_NAT_DETECTED"));
  // Nothing was established on either side.
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeEstablished) + count_events(*p.res, EventKind::kIkeEstablished), 0u);
  EXPECT_EQ(count_events(*p.res, EventKind::kChildEstablished), 0u);
  EXPECT_TRUE(p.res->dataplane.empty());
}

}  // namespace
}  // namespace mobike::sim
