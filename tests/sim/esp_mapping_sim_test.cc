// ESP from a new NAT mapping (the kernel's XFRM_MSG_MAPPING, RFC 7296 §2.23): the
// responder of an SA whose peer is behind a NAT follows it; nothing else does.
#include <gtest/gtest.h>

#include "ike_pair.h"

namespace mobike::sim {
namespace {

TEST(EspMappingSim, ResponderFollowsEspFromANewNatMappingAndTheInitiatorDoesNot) {
  Pair p(true);
  auto ini = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  auto res = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  ini.mobike = res.mobike = false;  // a MOBIKE peer reports a new mapping itself
  p.configure(ini, res);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  const ike::IkeSa* rs = only_sa(*p.res);
  const ike::IkeSa* is = only_sa(*p.ini);
  ASSERT_TRUE(rs->nat_remote);
  ASSERT_FALSE(rs->peer_mobike);
  const Endpoint was = rs->remote;
  const Endpoint moved{was.address, 23078};

  std::size_t ops = p.res->dataplane.size();
  EXPECT_TRUE(p.res->engine->on_esp_mapping(rs->children[0].spi_in, moved, p.net.now()));
  p.net.collect(*p.res);
  EXPECT_EQ(rs->remote, moved);
  ASSERT_EQ(p.res->dataplane.size(), ops + 1);
  EXPECT_EQ(p.res->dataplane.back().kind, ike::DataplaneOp::Kind::kUpdateAddresses);
  EXPECT_EQ(p.res->dataplane.back().remote, moved);
  EXPECT_EQ(p.res->dataplane.back().local, rs->local);
  EXPECT_EQ(count_events(*p.res, EventKind::kAddressesUpdated), 1u);
  EXPECT_EQ(p.res->engine->counters().esp_mappings_followed, 1u);

  // A repeated report, and one for an SPI of nobody's: nothing to do.
  EXPECT_FALSE(p.res->engine->on_esp_mapping(rs->children[0].spi_in, moved, p.net.now()));
  EXPECT_FALSE(p.res->engine->on_esp_mapping(rs->children[0].spi_in ^ 1u, {was.address, 1}, p.net.now()));
  p.net.collect(*p.res);
  EXPECT_EQ(p.res->dataplane.size(), ops + 1);

  // The initiator keeps the path it chose.
  const Endpoint ini_remote = is->remote;
  EXPECT_FALSE(p.ini->engine->on_esp_mapping(is->children[0].spi_in, {was.address, 4501}, p.net.now()));
  EXPECT_EQ(is->remote, ini_remote);
  EXPECT_EQ(p.ini->engine->counters().esp_mappings_ignored, 1u);
}

TEST(EspMappingSim, ResponderMovesTheChildSasWhenAnIkeRequestComesFromANewMapping) {
  // RFC 7296 §2.23 on IKE: the SA's ESP must follow the IKE float, or the kernel keeps
  // sending to the old port.
  Pair p(true);  // ini 10.1.0.2 behind 198.51.100.2
  auto ini = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  auto res = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  ini.mobike = res.mobike = false;
  ini.dpd_delay = Duration(5000);
  p.configure(ini, res);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  std::size_t ops = p.res->dataplane.size();
  p.nat->port_offset = 1000;  // the NAT reboots and maps to other ports
  p.nat->clear();
  // The initiator's next DPD request comes from the new mapping.
  ASSERT_TRUE(p.net.run_until([&] { return only_sa(*p.res)->remote.port != 4500; }, Duration(10000)));
  p.net.collect(*p.res);
  const ike::IkeSa* rs = only_sa(*p.res);
  ASSERT_EQ(p.res->dataplane.size(), ops + 1);
  EXPECT_EQ(p.res->dataplane.back().kind, ike::DataplaneOp::Kind::kUpdateAddresses);
  EXPECT_EQ(p.res->dataplane.back().remote, rs->remote);
  EXPECT_EQ(p.res->dataplane.back().child_sa_id, rs->children[0].id);
}

}  // namespace
}  // namespace mobike::sim
