// A MOBIKE initiator whose gateway moved to an address it could not announce (the new
// list, sent from the new address, cannot pass the initiator's NAT): probing finds no
// path and says so (EventKind::kNoPath), the daemon looks the gateway's name up again,
// and mobility::add_peer_addresses puts the answer into the probing, which finds the
// gateway there. The SA moves; nothing is rekeyed.
#include <gtest/gtest.h>

#include "mobike_helpers.h"

namespace mobike::sim {
namespace {

using std::chrono::seconds;

TEST(MobikeLookupSim, AnUnannouncedGatewayAddressFromALookupJoinsTheProbing) {
  Pair p(true);  // the initiator behind a NAT with address-and-port-dependent filtering
  p.configure(ini_conn(Duration(10000)), res_conn());
  ASSERT_TRUE(establish(p, ip("10.1.0.2")));
  const auto spis = spis_of(*p.ini);
  const std::uint64_t id = only_sa(*p.ini)->id;
  EXPECT_FALSE(mobility::add_peer_addresses(*p.res->engine, only_sa(*p.res)->id, {ip("198.51.100.2")}, p.net.now()))
      << "only the initiator moves an SA";

  // Renumbered: the gateway's new list never reaches the initiator.
  p.net.set_addresses(*p.res, {ip("198.51.100.11")});
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kNoPath) == 1; }, Duration(60000)));
  EXPECT_TRUE(view_of(*p.ini).probing);
  EXPECT_TRUE(view_of(*p.ini).peer_addresses.empty());
  EXPECT_EQ(only_sa(*p.ini)->remote, ep("198.51.100.10"));
  // Nothing else to try: probing goes on, reported once.
  p.net.run_for(seconds(30));
  EXPECT_EQ(count_events(*p.ini, EventKind::kNoPath), 1u);
  EXPECT_EQ(only_sa(*p.ini)->remote, ep("198.51.100.10"));

  // The lookup of the gateway's name answers with the new address (and the old one).
  ASSERT_TRUE(
      mobility::add_peer_addresses(*p.ini->engine, id, {ip("198.51.100.11"), ip("198.51.100.10")}, p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] { return update_ops(*p.res).size() == 1; }, seconds(5)));
  EXPECT_EQ(only_sa(*p.ini)->id, id);
  EXPECT_EQ(only_sa(*p.ini)->remote, ep("198.51.100.11"));
  EXPECT_EQ(only_sa(*p.res)->local, ep("198.51.100.11"));
  EXPECT_EQ(only_sa(*p.res)->remote.address, ip("198.51.100.2"));
  EXPECT_EQ(update_ops(*p.ini).back().remote, ep("198.51.100.11"));
  EXPECT_EQ(spis_of(*p.ini), spis);
  EXPECT_FALSE(view_of(*p.ini).probing);
  p.net.run_for(seconds(60));
  EXPECT_EQ(count_events(*p.ini, EventKind::kIkeFailed) + count_events(*p.res, EventKind::kIkeFailed), 0u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kNoPath), 1u);
}

}  // namespace
}  // namespace mobike::sim
