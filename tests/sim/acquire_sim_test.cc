// On-demand SAs (start = "trap"): Engine::acquire on the data plane's reports.
#include <gtest/gtest.h>

#include "ike_pair.h"

namespace mobike::sim {
namespace {

using Acquired = ike::Engine::Acquired;

// Both ends with a second child of their own selectors.
void add_second_child(ike::ConnectionConfig& ini, ike::ConnectionConfig& res) {
  ike::ChildConfig second = ini.children.at(0);
  second.name = "second";
  second.local_ts = {*IpPrefix::parse("10.20.0.0/16")};
  second.remote_ts = {*IpPrefix::parse("10.30.0.0/16")};
  ini.children.push_back(second);
  ike::ChildConfig second_r = res.children.at(0);
  second_r.name = "second";
  second_r.local_ts = second.remote_ts;
  second_r.remote_ts = second.local_ts;
  res.children.push_back(second_r);
}

TEST(AcquireSim, TrafficStartsTheIkeSaOnceAndASecondChildOnTheSameSa) {
  Pair p(true);
  auto ini = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  auto res = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  add_second_child(ini, res);
  ini.start = ike::StartAction::kTrap;
  p.configure(ini, res);
  const IpAddress local = *IpAddress::parse("10.1.0.2");
  const std::string first = ini.children[0].name;

  EXPECT_EQ(p.ini->engine->acquire("home", "nope", local, p.net.now()), Acquired::kUnknown);
  EXPECT_EQ(p.ini->engine->acquire("other", first, local, p.net.now()), Acquired::kUnknown);
  EXPECT_EQ(p.ini->engine->acquire("home", first, local, p.net.now()), Acquired::kInitiated);
  p.net.collect(*p.ini);
  // More packets of the same flow, or another flow of the child, while IKE_AUTH runs.
  EXPECT_EQ(p.ini->engine->acquire("home", first, local, p.net.now()), Acquired::kUnderWay);
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(p.ini->engine->ike_sa_count(), 1u);
  EXPECT_EQ(p.ini->engine->acquire("home", first, local, p.net.now()), Acquired::kUnderWay);

  // Traffic for the second child: a CREATE_CHILD_SA on the same IKE SA, once.
  EXPECT_EQ(p.ini->engine->acquire("home", "second", local, p.net.now()), Acquired::kChildRequested);
  EXPECT_EQ(p.ini->engine->acquire("home", "second", local, p.net.now()), Acquired::kUnderWay);
  ASSERT_TRUE(p.net.run_until([&] { return only_sa(*p.ini)->children.size() == 2 &&
                                           only_sa(*p.res)->children.size() == 2; },
                              Duration(10000)));
  EXPECT_EQ(only_sa(*p.ini)->children[1].name, "second");
  EXPECT_EQ(p.ini->engine->ike_sa_count(), 1u);
  EXPECT_EQ(p.ini->engine->counters().acquires_initiated, 2u);
  EXPECT_EQ(p.ini->engine->counters().acquires_under_way, 3u);
}

TEST(AcquireSim, TrafficForANonFirstChildBringsItRightAfterIkeAuth) {
  Pair p(true);
  auto ini = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
  auto res = psk_connection("gw", "%any", "res@example.test", "ini@example.test");
  add_second_child(ini, res);
  p.configure(ini, res);
  EXPECT_EQ(p.ini->engine->acquire("home", "second", *IpAddress::parse("10.1.0.2"), p.net.now()),
            Acquired::kInitiated);
  ASSERT_TRUE(p.net.run_until([&] { return only_sa(*p.ini) && only_sa(*p.ini)->children.size() == 2 &&
                                           only_sa(*p.res) && only_sa(*p.res)->children.size() == 2; },
                              Duration(10000)));
  EXPECT_EQ(count_events(*p.ini, EventKind::kChildEstablished), 2u);
  EXPECT_EQ(only_sa(*p.ini)->children[0].name, ini.children[0].name);
  EXPECT_EQ(only_sa(*p.ini)->children[1].name, "second");
}

}  // namespace
}  // namespace mobike::sim
