// The responder-initiated switch (SWITCH_TO_IP_ADDRESS) over the simulated network:
// the seed scenario of the project, a gateway moving its SAs while the client sits
// behind a NAT with address-and-port-dependent filtering.
#include <gtest/gtest.h>

#include "ike_pair.h"
#include "mobike/mobike.h"

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
  EXPECT_TRUE(v->peer_rmobike);  // the initiator announced support
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
  EXPECT_EQ(count_events(*p.res, EventKind::kSwitchFailed), 0u);
  // The moved SA works: a liveness check from the gateway on the new path.
  ASSERT_TRUE(p.res->engine->rekey_child(r->children[0].id, p.net.now()));
  p.net.collect(*p.res);
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kChildRekeyed) == 1; }, Duration(5000)));
}

}  // namespace
}  // namespace mobike::sim
