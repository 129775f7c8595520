// What the engine records for the metrics endpoint (ike::Stats): exchanges by kind and
// role, and moves and switches by outcome with their durations on the simulated clock.
#include <gtest/gtest.h>

#include "mobike_helpers.h"

namespace mobike::sim {
namespace {

using ike::EventKind;
using ike::MobilityOutcome;

std::size_t idx(wire::ExchangeType t) { return ike::exchange_index(t); }
std::size_t idx(MobilityOutcome o) { return static_cast<std::size_t>(o); }

TEST(MetricsSim, ExchangesAndAMoveWithItsDuration) {
  Pair p(false);
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("198.51.100.4")});
  p.configure(ini_conn(Duration(0)), res_conn(Duration(0)));
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  const auto& si = p.ini->engine->counters();
  const auto& sr = p.res->engine->counters();
  EXPECT_EQ(si.exchanges[idx(wire::ExchangeType::kIkeSaInit)].initiated, 1u);
  EXPECT_EQ(si.exchanges[idx(wire::ExchangeType::kIkeAuth)].initiated, 1u);
  EXPECT_EQ(sr.exchanges[idx(wire::ExchangeType::kIkeSaInit)].responded, 1u);
  EXPECT_EQ(sr.exchanges[idx(wire::ExchangeType::kIkeAuth)].responded, 1u);
  EXPECT_EQ(si.exchanges[idx(wire::ExchangeType::kIkeAuth)].responded, 0u);

  const auto t0 = p.net.now();
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("198.51.100.4"), t0));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kAddressesUpdated) == 1; },
                              Duration(5000)));
  const auto& moved = si.moves[idx(MobilityOutcome::kSucceeded)];
  EXPECT_EQ(moved.count, 1u);
  // One round trip at least (10 ms each way), and far less than a retransmission.
  EXPECT_GE(moved.sum_ms, 20u);
  EXPECT_LT(moved.sum_ms, 1000u);
  EXPECT_EQ(si.moves[idx(MobilityOutcome::kRefused)].count + si.moves[idx(MobilityOutcome::kFailed)].count, 0u);
  EXPECT_EQ(sr.moves[idx(MobilityOutcome::kSucceeded)].count, 0u);  // the responder asked for none
  p.net.run_until([&] { return sr.moves_followed == 1; }, Duration(5000));
  EXPECT_EQ(sr.moves_followed, 1u);
  EXPECT_GE(si.exchanges[idx(wire::ExchangeType::kInformational)].initiated, 1u);
}

TEST(MetricsSim, AnUnacceptableMoveIsRecordedAsRefused) {
  Pair p(false);
  p.net.set_addresses(*p.ini, {ip("198.51.100.3"), ip("203.0.113.5")});
  auto r = res_conn();
  r.remote_addrs = {"198.51.100.0/24"};
  p.configure(ini_conn(Duration(5000)), r);
  ASSERT_TRUE(establish(p, ip("198.51.100.3")));
  ASSERT_TRUE(mobility::update_addresses(*p.ini->engine, only_sa(*p.ini)->id, ip("203.0.113.5"), p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kAddressUpdateRefused) == 1; },
                              Duration(5000)));
  const auto& si = p.ini->engine->counters();
  EXPECT_EQ(si.moves[idx(MobilityOutcome::kRefused)].count, 1u);
  EXPECT_EQ(si.moves[idx(MobilityOutcome::kSucceeded)].count, 0u);
}

TEST(MetricsSim, ASwitchWithItsDuration) {
  Pair p(true);  // the initiator behind a NAT; the gateway has .10 and .20
  p.net.set_addresses(*p.res, {ip("198.51.100.10"), ip("198.51.100.20")});
  p.configure_default();
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  p.net.run_for(Duration(1000));
  const auto* r = only_sa(*p.res);
  ASSERT_TRUE(mobility::switch_address(*p.res->engine, r->id, ip("198.51.100.20"), p.net.now()));
  p.net.collect(*p.res);
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.res, EventKind::kSwitchSucceeded) == 1; },
                              Duration(5000)));
  const auto& sr = p.res->engine->counters();
  const auto& done = sr.switches[idx(MobilityOutcome::kSucceeded)];
  EXPECT_EQ(done.count, 1u);
  // The request out, the update back: one round trip at least.
  EXPECT_GE(done.sum_ms, 20u);
  EXPECT_LT(done.sum_ms, 1000u);
  EXPECT_EQ(sr.switches[idx(MobilityOutcome::kRefused)].count + sr.switches[idx(MobilityOutcome::kFailed)].count, 0u);
  // The initiator's update that completed it is a move of its own.
  ASSERT_TRUE(p.net.run_until([&] { return count_events(*p.ini, EventKind::kAddressesUpdated) == 1; }));
  EXPECT_EQ(p.ini->engine->counters().moves[idx(MobilityOutcome::kSucceeded)].count, 1u);
  EXPECT_EQ(p.ini->engine->counters().switches[idx(MobilityOutcome::kSucceeded)].count, 0u);
}

}  // namespace
}  // namespace mobike::sim
