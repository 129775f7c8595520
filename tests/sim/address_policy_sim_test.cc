// The address-change planner (mobility/address_policy.h) carried out on two engines, as
// the daemon does: a gateway whose service addresses are named by its connection and sit
// on a loopback device (or on an interface beside another address, which the route to
// the client uses), a client behind the restricted-cone NAT. What the gateway announces
// is what it switches to.
#include "mobility/address_policy.h"

#include "switch_helpers.h"

namespace mobike::sim {
namespace {

// The gateway's interface address: the route's source towards the client, and no
// service address of the connection.
IpAddress Eth() { return ip("198.51.100.5"); }

struct Placement {
  const char* name;
  bool on_loopback;  // R1 and R2 on lo (else on the interface beside Eth)
};
void PrintTo(const Placement& p, std::ostream* os) { *os << p.name; }

class ServiceAddresses : public ::testing::TestWithParam<Placement> {
 protected:
  std::unique_ptr<Sw> make(bool gen1 = true) {
    auto s = std::make_unique<Sw>(SwitchSetup{
        .gen1 = gen1,
        .res_addresses = {Eth(), R1(), R2()},
        .tweak = [](ike::ConnectionConfig&, ike::ConnectionConfig& r) { r.local_addrs = {R1(), R2()}; }});
    if (GetParam().on_loopback) {
      s->p.res->on_loopback = {R1(), R2()};
      s->p.net.set_addresses(*s->p.res, s->p.res->addresses);
    }
    return s;
  }
  // The daemon's address-change handling, with the route to the client leaving from Eth.
  static mobility::PlanOutcome change(Sw& s, std::vector<IpAddress> after) {
    auto before = s.p.res->host_addresses();
    s.p.net.set_addresses(*s.p.res, std::move(after));
    auto facts = mobility::sa_facts(*s.p.res->engine);
    auto plan = mobility::plan_address_change(before, s.p.res->host_addresses(), facts,
                                              [](const IpAddress&) -> std::optional<IpAddress> { return Eth(); });
    auto out = mobility::execute(*s.p.res->engine, plan, s.p.net.now());
    s.p.net.collect(*s.p.res);
    return out;
  }
};

TEST_P(ServiceAddresses, AnnouncedInIkeAuthAndTheTargetWhenTheAddressGoes) {
  for (bool gen1 : {true, false}) {
    SCOPED_TRACE(gen1 ? "generation 1" : "generation 2");
    auto s = make(gen1);
    ASSERT_TRUE(s->start());
    // IKE_AUTH told the client of the other service address, not of the interface's.
    EXPECT_EQ(view_of(*s->p.ini).peer_addresses, std::vector<IpAddress>{R2()});
    s->p.res->nonlocal_sources = {R1()};
    auto out = change(*s, {Eth(), R2()});
    EXPECT_EQ(out.switches, 1u);
    ASSERT_TRUE(s->run_to_outcome(seconds(20)));
    EXPECT_EQ(count_events(*s->p.res, EventKind::kSwitchSucceeded), 1u);
    EXPECT_EQ(switch_failures(*s->p.ini) + switch_failures(*s->p.res), 0u);
    s->expect_switched(R2());
    auto req = s->switch_requests();
    ASSERT_FALSE(req.empty());
    EXPECT_EQ(switch_data(*req[0]), R2().to_bytes());
    EXPECT_EQ(req[0]->src.address, R1());  // from the vanished address, through the NAT
    // The new list from R2: nothing else (R1 gone, Eth no service address).
    ASSERT_TRUE(s->p.net.run_until([&] { return view_of(*s->p.ini).peer_addresses.empty() && s->idle(); },
                                   seconds(10)));
    EXPECT_EQ(s->failures(), 0u);
  }
}

TEST_P(ServiceAddresses, NothingLeftToSwitchToIsReported) {
  auto s = make();
  ASSERT_TRUE(s->start());
  s->p.res->nonlocal_sources = {R1(), R2()};
  auto out = change(*s, {Eth()});
  EXPECT_EQ(out.switches, 0u);
  ASSERT_EQ(out.log_warn.size(), 1u);
  EXPECT_NE(out.log_warn[0].find("no other usable address"), std::string::npos) << out.log_warn[0];
  s->p.net.run_for(seconds(5));
  EXPECT_TRUE(s->switch_requests().empty());  // never towards Eth
}

TEST_P(ServiceAddresses, APreferredAddressComingBackTakesItsSasBack) {
  auto s = std::make_unique<Sw>(SwitchSetup{
      .res_addresses = {Eth(), R1(), R2()},
      .tweak = [](ike::ConnectionConfig&, ike::ConnectionConfig& r) {
        r.local_addrs = {R1(), R2()};
        r.switch_prefer = {R1(), R2()};
      }});
  if (GetParam().on_loopback) s->p.res->on_loopback = {R1(), R2()};
  s->p.net.set_addresses(*s->p.res, s->p.res->addresses);
  ASSERT_TRUE(s->start());
  s->p.res->nonlocal_sources = {R1()};
  EXPECT_EQ(change(*s, {Eth(), R2()}).switches, 1u);
  ASSERT_TRUE(s->run_to_outcome(seconds(20)));
  s->expect_switched(R2());
  ASSERT_TRUE(s->p.net.run_until([&] { return s->idle(); }, seconds(10)));
  // R1 returns: the gateway announces it and takes the SA back there.
  s->p.res->nonlocal_sources.clear();
  EXPECT_EQ(change(*s, {Eth(), R1(), R2()}).switches, 1u);
  ASSERT_TRUE(s->p.net.run_until([&] { return count_events(*s->p.res, EventKind::kSwitchSucceeded) == 2 && s->idle(); },
                                 seconds(20)));
  EXPECT_EQ(s->res().local.address, R1());
  EXPECT_EQ(s->ini().remote.address, R1());
  EXPECT_EQ(spis_of(*s->p.ini), s->spis_i);
  EXPECT_EQ(switch_failures(*s->p.ini) + switch_failures(*s->p.res), 0u);
}

INSTANTIATE_TEST_SUITE_P(Placements, ServiceAddresses,
                         ::testing::Values(Placement{"OnLoopbackDevice", true}, Placement{"OnInterface", false}),
                         [](const auto& info) { return std::string(info.param.name); });

// A connection that names no addresses uses the interfaces': an address on a loopback
// device is neither announced nor switched to.
TEST(AnyLocalAddress, LoopbackDeviceAddressesAreNeitherAnnouncedNorTargets) {
  Sw s({.res_addresses = {Eth(), R1(), R2()}});
  s.p.res->on_loopback = {R2()};
  s.p.net.set_addresses(*s.p.res, s.p.res->addresses);
  ASSERT_TRUE(s.start());
  EXPECT_EQ(view_of(*s.p.ini).peer_addresses, std::vector<IpAddress>{Eth()});
  s.p.res->nonlocal_sources = {R1()};
  auto before = s.p.res->host_addresses();
  s.p.net.set_addresses(*s.p.res, {Eth(), R2()});
  auto plan = mobility::plan_address_change(before, s.p.res->host_addresses(), mobility::sa_facts(*s.p.res->engine),
                                            [](const IpAddress&) -> std::optional<IpAddress> { return R2(); });
  ASSERT_EQ(plan.switches.size(), 1u);
  EXPECT_EQ(plan.switches[0].to, Eth());  // not R2, although the route says so
  mobility::execute(*s.p.res->engine, plan, s.p.net.now());
  s.p.net.collect(*s.p.res);
  ASSERT_TRUE(s.run_to_outcome(seconds(20)));
  s.expect_switched(Eth());
}

}  // namespace
}  // namespace mobike::sim
