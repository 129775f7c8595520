// MOBIKE (RFC 4555) address updates over the simulated network.
#include <gtest/gtest.h>

#include "ike_pair.h"
#include "mobility/mobike.h"

namespace mobike::sim {
namespace {

std::size_t updates(const Host& h) {
  std::size_t n = 0;
  for (const auto& op : h.dataplane) n += op.kind == ike::DataplaneOp::Kind::kUpdateAddresses;
  return n;
}

TEST(MobikeSim, InitiatorMovesFromBehindOneNatToAnother) {
  Pair p(true);  // ini 10.1.0.2 behind NAT A (198.51.100.2)
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  auto spi_i = only_sa(*p.ini)->spi_i;
  auto child_in = only_sa(*p.ini)->children[0].spi_in;

  // The uplink changes: a new address behind NAT B; the old one is gone.
  Nat& b = p.net.add_nat("nat-b", ip("203.0.113.77"));
  p.net.set_addresses(*p.ini, {ip("10.2.0.9")});
  p.net.put_behind(*p.ini, b);
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("10.2.0.9"), p.net.now()));
  // The responder moves its ESP after its return-routability check (§3.7).
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kAddressesUpdated) == 1 &&
                                           count_events(*p.res, EventKind::kAddressesUpdated) == 1; },
                              Duration(5000)));

  auto* a = only_sa(*p.ini);
  auto* r = only_sa(*p.res);
  EXPECT_EQ(a->spi_i, spi_i);  // no re-keying
  EXPECT_EQ(a->children[0].spi_in, child_in);
  EXPECT_EQ(a->local, (Endpoint{ip("10.2.0.9"), 4500}));
  EXPECT_EQ(r->remote, (Endpoint{ip("203.0.113.77"), 4500}));
  EXPECT_TRUE(a->nat_local);
  EXPECT_TRUE(r->nat_remote);
  EXPECT_EQ(count_events(*p.res, EventKind::kAddressesUpdated), 1u);
  // Both data planes were told, with the new outer endpoints.
  ASSERT_EQ(updates(*p.res), 1u);
  EXPECT_EQ(p.res->dataplane.back().remote, (Endpoint{ip("203.0.113.77"), 4500}));
  EXPECT_TRUE(p.res->dataplane.back().udp_encap);
  ASSERT_EQ(updates(*p.ini), 1u);
  EXPECT_EQ(p.ini->dataplane.back().local, (Endpoint{ip("10.2.0.9"), 4500}));
  // The moved SA keeps working: a Child SA rekey over the new path.
  ASSERT_TRUE(p.ini->engine->rekey_child(a->children[0].id, p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kChildRekeyed) == 1; }, Duration(5000)));
}

TEST(MobikeSim, MoveOutOfTheNatTurnsEncapsulationOff) {
  Pair p(true);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  p.net.set_addresses(*p.ini, {ip("198.51.100.44")});
  p.ini->nat = nullptr;
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("198.51.100.44"), p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kAddressesUpdated) == 1 &&
                                           count_events(*p.ini, EventKind::kAddressesUpdated) == 1; },
                              Duration(5000)));
  EXPECT_FALSE(only_sa(*p.ini)->nat_local);
  EXPECT_FALSE(only_sa(*p.res)->nat_remote);
  EXPECT_FALSE(p.res->dataplane.back().udp_encap);
  EXPECT_EQ(only_sa(*p.res)->remote, (Endpoint{ip("198.51.100.44"), 4500}));
  // No NAT any more: no keepalives either.
  auto before = p.ini->keepalives_sent;
  p.net.run_for(Duration(60000));
  EXPECT_EQ(p.ini->keepalives_sent, before);
}

TEST(MobikeSim, LostUpdateIsRetransmittedFromTheNewAddress) {
  Pair p(true);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  p.net.run_for(Duration(1000));  // the liveness check that learns the NAT mapping is done
  Nat& b = p.net.add_nat("nat-b", ip("203.0.113.77"));
  p.net.set_addresses(*p.ini, {ip("10.2.0.9")});
  p.net.put_behind(*p.ini, b);
  int dropped = 0;
  p.net.drop = [&](const Packet& pk) { return pk.from == "ini" && dropped++ < 2; };  // request and 1st retransmit
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("10.2.0.9"), p.net.now()));
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kAddressesUpdated) == 1; }, Duration(20000)));
  EXPECT_EQ(only_sa(*p.res)->remote, (Endpoint{ip("203.0.113.77"), 4500}));
  EXPECT_EQ(p.ini->engine->counters().retransmits_sent, 2u);
}

TEST(MobikeSim, ResponderCannotMoveTheSa) {
  Pair p(false);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  // Only the original initiator may send UPDATE_SA_ADDRESSES.
  EXPECT_FALSE(mobility::update_addresses(*p.res->engine, only_sa(*p.res)->id, ip("198.51.100.10"), p.net.now()));
  // And without MOBIKE negotiated, the initiator may not either.
  Pair q(false);
  auto i = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  i.mobike = false;
  q.configure(i, psk_connection("gw", "%any", "res@example.test", "ini@example.test"));
  q.initiate();
  ASSERT_TRUE(q.net.run_until([&] { return q.both_established(); }));
  EXPECT_FALSE(mobility::update_addresses(*q.ini->engine, only_sa(*q.ini)->id, ip("198.51.100.3"), q.net.now()));
}

}  // namespace
}  // namespace mobike::sim
