// Child SA limits the data plane enforces (bytes, packets; time repeats the engine's
// timers) and its reports (Engine::on_child_expire): soft rekeys, hard deletes.
#include <gtest/gtest.h>

#include "ike_pair.h"

namespace mobike::sim {
namespace {

using ike::ExpireCause;

void limited(ike::ConnectionConfig& c) {
  auto& k = c.children.at(0);
  k.rekey_time = Duration(3600 * 1000);
  k.lifetime = Duration(0);  // rekey_time + 10%
  k.rekey_bytes = 1'000'000;  // life_bytes: + 10%
  k.rekey_packets = 1000;
  k.life_packets = 2000;
}

TEST(ChildExpireSim, InstallCarriesTheLimitsWithJitterBelowTheSoftOnes) {
  Pair p(true);
  auto ini = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  auto res = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  limited(ini);
  p.configure(ini, res);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  ASSERT_EQ(p.ini->dataplane.at(0).kind, ike::DataplaneOp::Kind::kInstall);
  const ike::ChildLimits& l = p.ini->dataplane[0].limits;
  EXPECT_GE(l.soft_bytes, 900'000u);
  EXPECT_LE(l.soft_bytes, 1'000'000u);
  EXPECT_EQ(l.hard_bytes, 1'100'000u);
  EXPECT_GE(l.soft_packets, 900u);
  EXPECT_LE(l.soft_packets, 1000u);
  EXPECT_EQ(l.hard_packets, 2000u);
  // Seconds from the engine's own timers, rounded up: rekey at 3240-3600 s, hard 3960 s.
  EXPECT_GE(l.soft_seconds, 3240u);
  EXPECT_LE(l.soft_seconds, 3600u);
  EXPECT_EQ(l.hard_seconds, 3960u);
  // The responder's config sets no volume limit: only its times.
  const ike::ChildLimits& r = p.res->dataplane.at(0).limits;
  EXPECT_EQ(r.soft_bytes + r.hard_bytes + r.soft_packets + r.hard_packets, 0u);
  EXPECT_GT(r.hard_seconds, 0u);
}

TEST(ChildExpireSim, SoftLimitRekeysOnceFromEitherSide) {
  for (bool by_initiator : {true, false}) {
    SCOPED_TRACE(by_initiator ? "initiator" : "responder");
    Pair p(true);
    p.configure_default();
    p.initiate();
    ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
    Host* by = by_initiator ? p.ini : p.res;
    const auto old_id = only_sa(*by)->children[0].id;
    const auto old_in = only_sa(*by)->children[0].spi_in;
    EXPECT_TRUE(by->engine->on_child_expire(old_id, false, ExpireCause::kBytes, p.net.now()));
    // The other SA of the pair reports too, while the rekey runs: nothing more.
    EXPECT_FALSE(by->engine->on_child_expire(old_id, false, ExpireCause::kBytes, p.net.now()));
    ASSERT_TRUE(p.net.run_until(
        [&] { return p.both_established() && only_sa(*by)->children.size() == 1 &&
                     only_sa(*by)->children[0].spi_in != old_in; },
        Duration(10000)));
    expect_matching_children(*only_sa(*p.ini), *only_sa(*p.res));
    EXPECT_EQ(count_events(*p.ini, EventKind::kChildRekeyed), 1u);
    EXPECT_EQ(count_events(*p.res, EventKind::kChildRekeyed), 1u);
    EXPECT_EQ(by->engine->counters().child_soft_expired, 1u);
    // A late report for the replaced Child SA finds nothing.
    EXPECT_FALSE(by->engine->on_child_expire(old_id, false, ExpireCause::kPackets, p.net.now()));
    EXPECT_FALSE(by->engine->on_child_expire(old_id, true, ExpireCause::kPackets, p.net.now()));
  }
}

TEST(ChildExpireSim, HardLimitDeletesTheChildSaAtBothEnds) {
  Pair p(true);
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  const auto id = only_sa(*p.res)->children[0].id;
  EXPECT_FALSE(p.res->engine->on_child_expire(id + 100, true, ExpireCause::kPackets, p.net.now()));
  EXPECT_TRUE(p.res->engine->on_child_expire(id, true, ExpireCause::kPackets, p.net.now()));
  EXPECT_FALSE(p.res->engine->on_child_expire(id, true, ExpireCause::kPackets, p.net.now()));  // once
  ASSERT_TRUE(p.net.run_until(
      [&] { return only_sa(*p.ini)->children.empty() && only_sa(*p.res)->children.empty(); }, Duration(10000)));
  EXPECT_EQ(p.res->engine->counters().child_hard_expired, 1u);
  EXPECT_EQ(count_events(*p.ini, EventKind::kChildDeleted), 1u);
  EXPECT_EQ(count_events(*p.res, EventKind::kChildDeleted), 1u);
  EXPECT_EQ(p.res->dataplane.back().kind, ike::DataplaneOp::Kind::kDelete);
  // The IKE SA stays.
  EXPECT_EQ(only_sa(*p.ini)->state, ike::IkeState::kEstablished);
  EXPECT_EQ(only_sa(*p.res)->state, ike::IkeState::kEstablished);
}

}  // namespace
}  // namespace mobike::sim
