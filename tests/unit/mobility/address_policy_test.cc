// The address-change planner over a table of gateway and client topologies: service
// addresses on a loopback device or on an interface, dual stack, several connections,
// a preferred address coming back, nothing left, `%any`.
#include "mobility/address_policy.h"

#include <map>
#include <ostream>

#include <gtest/gtest.h>

namespace mobike::mobility {
namespace {

using ike::ConnectionConfig;
using ike::HostAddress;

IpAddress ip(const std::string& s) { return IpAddress::parse(s).value(); }

// "203.0.113.10@lo" sits on a loopback device; "198.51.100.10" on an interface.
std::vector<HostAddress> host(std::initializer_list<const char*> list) {
  std::vector<HostAddress> out;
  for (std::string s : list) {
    bool lo = s.ends_with("@lo");
    if (lo) s.resize(s.size() - 3);
    out.push_back({ip(s), lo});
  }
  return out;
}

std::vector<IpAddress> ips(std::initializer_list<const char*> list) {
  std::vector<IpAddress> out;
  for (const char* s : list) out.push_back(ip(s));
  return out;
}

ConnectionConfig conn(const std::string& name, std::initializer_list<const char*> local_addrs,
                      std::initializer_list<const char*> prefer = {}) {
  ConnectionConfig c;
  c.name = name;
  c.local_addrs = ips(local_addrs);
  c.switch_prefer = ips(prefer);
  return c;
}

SaFacts responder(std::uint64_t id, const ConnectionConfig& c, const char* local,
                  std::initializer_list<const char*> announced = {}) {
  SaFacts f;
  f.id = id;
  f.config = &c;
  f.local = {ip(local), 4500};
  f.remote = {ip("198.51.100.2"), 4500};  // the client's NAT
  f.may_switch = true;
  f.announced = ips(announced);
  return f;
}

SaFacts initiator(std::uint64_t id, const ConnectionConfig& c, const char* local, const char* remote = "198.51.100.10") {
  SaFacts f;
  f.id = id;
  f.config = &c;
  f.local = {ip(local), 4500};
  f.remote = {ip(remote), 4500};
  f.may_update = true;
  return f;
}

RouteLookup route_from(std::map<std::string, std::string> by_family) {
  return [by_family](const IpAddress& peer) -> std::optional<IpAddress> {
    auto it = by_family.find(peer.is_v4() ? "v4" : "v6");
    if (it == by_family.end()) return std::nullopt;
    return ip(it->second);
  };
}

std::string describe(const AddressPlan& p) {
  std::string out;
  for (const auto& s : p.switches) out += "switch " + std::to_string(s.sa) + " -> " + s.to.to_string() + "; ";
  for (const auto& m : p.moves)
    out += "move " + std::to_string(m.sa) + " -> " + (m.to ? m.to->to_string() : std::string("probe")) + "; ";
  for (const auto& s : p.stranded) out += "stranded " + std::to_string(s.sa) + "; ";
  return out.empty() ? "nothing" : out;
}

// --------------------------------------------------------------------------- usable set

TEST(AddressPolicy, NamedAddressesAreUsableWhereverTheySitInConfiguredOrder) {
  auto c = conn("gw", {"203.0.113.20", "203.0.113.10"});
  auto h = host({"198.51.100.10", "203.0.113.10@lo", "203.0.113.20@lo"});
  EXPECT_EQ(usable_local_addresses(c, h), ips({"203.0.113.20", "203.0.113.10"}));
  EXPECT_TRUE(usable_local_address(c, h, ip("203.0.113.10")));
  EXPECT_FALSE(usable_local_address(c, h, ip("198.51.100.10")));  // on the host, not named
  // A named address the host does not have (yet) is not usable.
  EXPECT_EQ(usable_local_addresses(c, host({"203.0.113.10@lo"})), ips({"203.0.113.10"}));
}

TEST(AddressPolicy, AnyTakesInterfaceAddressesButNotThoseOnALoopbackDevice) {
  auto c = conn("any", {});
  auto h = host({"198.51.100.10", "10.9.9.9@lo", "2001:db8::10", "198.51.100.20"});
  EXPECT_EQ(usable_local_addresses(c, h), ips({"198.51.100.10", "2001:db8::10", "198.51.100.20"}));
}

TEST(AddressPolicy, UnusableKindsNeverCountEvenWhenNamed) {
  auto c = conn("odd", {"127.0.0.2", "169.254.1.1", "fe80::1", "198.51.100.10"});
  auto h = host({"127.0.0.2@lo", "169.254.1.1", "fe80::1", "198.51.100.10"});
  EXPECT_EQ(usable_local_addresses(c, h), ips({"198.51.100.10"}));
}

// --------------------------------------------------------------------------- the table

struct Case {
  const char* name;
  std::vector<ConnectionConfig> conns;  // conns[i] is used by the SAs built in `sas`
  std::function<std::vector<SaFacts>(const std::vector<ConnectionConfig>&)> sas;
  std::vector<HostAddress> before, after;
  std::map<std::string, std::string> route;  // family -> the route's source towards the peer
  std::string expected;                      // describe() of the plan
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class AddressPolicyTable : public ::testing::TestWithParam<Case> {};

TEST_P(AddressPolicyTable, Plans) {
  const Case& c = GetParam();
  auto sas = c.sas(c.conns);
  auto plan = plan_address_change(c.before, c.after, sas, route_from(c.route));
  EXPECT_EQ(describe(plan), c.expected);
  for (const auto& s : plan.switches) {
    // Whatever the planner picks is an address the connection announces.
    const SaFacts* sa = nullptr;
    for (const auto& f : sas)
      if (f.id == s.sa) sa = &f;
    ASSERT_TRUE(sa);
    EXPECT_TRUE(usable_local_address(*sa->config, c.after, s.to)) << s.to.to_string();
    EXPECT_FALSE(s.why.empty());
  }
}

const Case kCases[] = {
    // The gateway: two service addresses on lo, the route's source is eth0's.
    {"ServiceAddressesOnLoopbackDeviceAddressDeleted",
     {conn("gw", {"203.0.113.10", "203.0.113.20"})},
     [](const auto& c) { return std::vector{responder(1, c[0], "203.0.113.10", {"203.0.113.20"})}; },
     host({"198.51.100.10", "203.0.113.10@lo", "203.0.113.20@lo"}),
     host({"198.51.100.10", "203.0.113.20@lo"}),
     {{"v4", "198.51.100.10"}},
     "switch 1 -> 203.0.113.20; "},
    {"ServiceAddressesOnAnInterfaceAddressDeleted",
     {conn("gw", {"203.0.113.10", "203.0.113.20"})},
     [](const auto& c) { return std::vector{responder(1, c[0], "203.0.113.10", {"203.0.113.20"})}; },
     host({"198.51.100.10", "203.0.113.10", "203.0.113.20"}),
     host({"198.51.100.10", "203.0.113.20"}),
     {{"v4", "198.51.100.10"}},
     "switch 1 -> 203.0.113.20; "},
    {"AnyResponderFollowsTheRouteAmongInterfaceAddresses",
     {conn("gw", {})},
     [](const auto& c) { return std::vector{responder(1, c[0], "198.51.100.10", {"198.51.100.19", "198.51.100.20"})}; },
     host({"198.51.100.10", "198.51.100.19", "198.51.100.20", "203.0.113.1@lo"}),
     host({"198.51.100.19", "198.51.100.20", "203.0.113.1@lo"}),
     {{"v4", "198.51.100.19"}},
     "switch 1 -> 198.51.100.19; "},
    {"AnyResponderNeverSwitchesToALoopbackDeviceAddress",
     {conn("gw", {})},
     [](const auto& c) { return std::vector{responder(1, c[0], "198.51.100.10")}; },
     host({"198.51.100.10", "203.0.113.1@lo"}),
     host({"203.0.113.1@lo"}),
     {},
     "stranded 1; "},
    {"SwitchPreferSkipsAbsentAddressesAndBeatsTheRoute",
     {conn("gw", {}, {"198.51.100.30", "198.51.100.20"})},
     [](const auto& c) { return std::vector{responder(1, c[0], "198.51.100.10", {"198.51.100.19", "198.51.100.20"})}; },
     host({"198.51.100.10", "198.51.100.19", "198.51.100.20"}),
     host({"198.51.100.19", "198.51.100.20"}),
     {{"v4", "198.51.100.19"}},
     "switch 1 -> 198.51.100.20; "},
    {"SwitchPreferOutsideLocalAddrsIsIgnored",
     {conn("gw", {"203.0.113.10", "203.0.113.20"}, {"198.51.100.10"})},
     [](const auto& c) { return std::vector{responder(1, c[0], "203.0.113.10", {"203.0.113.20"})}; },
     host({"198.51.100.10", "203.0.113.10@lo", "203.0.113.20@lo"}),
     host({"198.51.100.10", "203.0.113.20@lo"}),
     {{"v4", "198.51.100.10"}},
     "switch 1 -> 203.0.113.20; "},
    {"AnnouncedAddressesBeforeUnannouncedOnes",
     {conn("gw", {"203.0.113.10", "203.0.113.20", "203.0.113.30"})},
     [](const auto& c) { return std::vector{responder(1, c[0], "203.0.113.10", {"203.0.113.30"})}; },
     host({"203.0.113.10", "203.0.113.20", "203.0.113.30"}),
     host({"203.0.113.20", "203.0.113.30"}),
     {{"v4", "203.0.113.20"}},
     "switch 1 -> 203.0.113.30; "},
    {"DualStackKeepsTheFamily",
     {conn("gw", {"2001:db8::10", "203.0.113.10", "203.0.113.20"})},
     [](const auto& c) { return std::vector{responder(1, c[0], "203.0.113.10", {"2001:db8::10", "203.0.113.20"})}; },
     host({"2001:db8::10", "203.0.113.10@lo", "203.0.113.20@lo"}),
     host({"2001:db8::10", "203.0.113.20@lo"}),
     {{"v4", "198.51.100.10"}, {"v6", "2001:db8::1"}},
     "switch 1 -> 203.0.113.20; "},
    {"DualStackChangesFamilyWhenNothingElseIsLeft",
     {conn("gw", {"203.0.113.10", "2001:db8::10"})},
     [](const auto& c) { return std::vector{responder(1, c[0], "203.0.113.10", {"2001:db8::10"})}; },
     host({"2001:db8::10", "203.0.113.10@lo"}),
     host({"2001:db8::10"}),
     {{"v6", "2001:db8::1"}},
     "switch 1 -> 2001:db8::10; "},
    {"SeveralConnectionsEachKeepToTheirOwnAddresses",
     {conn("a", {"203.0.113.10", "203.0.113.20"}), conn("b", {"203.0.113.30", "203.0.113.40"})},
     [](const auto& c) {
       return std::vector{responder(1, c[0], "203.0.113.10", {"203.0.113.20"}),
                          responder(2, c[1], "203.0.113.30", {"203.0.113.40"}),
                          responder(3, c[1], "203.0.113.40", {"203.0.113.30"})};
     },
     host({"198.51.100.10", "203.0.113.10@lo", "203.0.113.20@lo", "203.0.113.30@lo", "203.0.113.40@lo"}),
     host({"198.51.100.10", "203.0.113.20@lo", "203.0.113.40@lo"}),
     {{"v4", "198.51.100.10"}},
     "switch 1 -> 203.0.113.20; switch 2 -> 203.0.113.40; "},
    {"PreferredAddressComesBack",
     {conn("gw", {"203.0.113.10", "203.0.113.20", "203.0.113.30"}, {"203.0.113.10", "203.0.113.20"})},
     [](const auto& c) {
       return std::vector{responder(1, c[0], "203.0.113.20"), responder(2, c[0], "203.0.113.30"),
                          responder(3, c[0], "203.0.113.10")};
     },
     host({"203.0.113.20@lo", "203.0.113.30@lo"}),
     host({"203.0.113.10@lo", "203.0.113.20@lo", "203.0.113.30@lo"}),
     {{"v4", "198.51.100.10"}},
     // SA 2 sits on an address switch_prefer does not list: the client put it there.
     "switch 1 -> 203.0.113.10; "},
    {"NothingUsableLeft",
     {conn("gw", {"203.0.113.10", "203.0.113.20"})},
     [](const auto& c) { return std::vector{responder(1, c[0], "203.0.113.10", {"203.0.113.20"})}; },
     host({"198.51.100.10", "203.0.113.10@lo", "203.0.113.20@lo"}),
     host({"198.51.100.10"}),
     {{"v4", "198.51.100.10"}},
     "stranded 1; "},
    {"PeerWithoutSwitchSupportIsLeftToTheAddressList",
     {conn("gw", {"203.0.113.10", "203.0.113.20"})},
     [](const auto& c) {
       auto f = responder(1, c[0], "203.0.113.10");
       f.may_switch = false;
       return std::vector{f};
     },
     host({"203.0.113.10@lo", "203.0.113.20@lo"}),
     host({"203.0.113.20@lo"}),
     {},
     "nothing"},
    {"UnrelatedChangeMovesNothing",
     {conn("gw", {"203.0.113.10", "203.0.113.20"}), conn("cl", {})},
     [](const auto& c) {
       return std::vector{responder(1, c[0], "203.0.113.10"), initiator(2, c[1], "10.1.0.2")};
     },
     host({"10.1.0.2", "203.0.113.10@lo", "203.0.113.20@lo"}),
     host({"10.1.0.2", "10.1.0.3", "203.0.113.10@lo", "203.0.113.20@lo"}),
     {{"v4", "10.1.0.2"}},
     "nothing"},
    // Initiators (MOBIKE, RFC 4555 §3.5).
    {"AnyInitiatorFollowsTheRoute",
     {conn("cl", {})},
     [](const auto& c) { return std::vector{initiator(1, c[0], "10.1.0.2")}; },
     host({"10.1.0.2", "10.2.0.2"}),
     host({"10.2.0.2"}),
     {{"v4", "10.2.0.2"}},
     "move 1 -> 10.2.0.2; "},
    {"AnyInitiatorReturnsToAPreferredUplink",
     {conn("cl", {})},
     [](const auto& c) { return std::vector{initiator(1, c[0], "10.2.0.2")}; },
     host({"10.2.0.2"}),
     host({"10.1.0.2", "10.2.0.2"}),
     {{"v4", "10.1.0.2"}},
     "move 1 -> 10.1.0.2; "},
    {"AnyInitiatorWithoutARouteProbes",
     {conn("cl", {})},
     [](const auto& c) { return std::vector{initiator(1, c[0], "10.1.0.2")}; },
     host({"10.1.0.2"}),
     host({}),
     {},
     "move 1 -> probe; "},
    {"NamedInitiatorOnLoopbackIgnoresTheInterfaceRoute",
     {conn("cl", {"192.0.2.10", "192.0.2.20"})},
     [](const auto& c) { return std::vector{initiator(1, c[0], "192.0.2.10")}; },
     host({"10.1.0.2", "192.0.2.10@lo", "192.0.2.20@lo"}),
     host({"10.1.0.2", "10.1.0.3", "192.0.2.10@lo", "192.0.2.20@lo"}),
     {{"v4", "10.1.0.3"}},
     "nothing"},
    {"NamedInitiatorLosesItsAddressAndProbesTheOthers",
     {conn("cl", {"192.0.2.10", "192.0.2.20"})},
     [](const auto& c) { return std::vector{initiator(1, c[0], "192.0.2.10")}; },
     host({"10.1.0.2", "192.0.2.10@lo", "192.0.2.20@lo"}),
     host({"10.1.0.2", "192.0.2.20@lo"}),
     {{"v4", "10.1.0.2"}},
     "move 1 -> probe; "},
    {"NamedInitiatorKeepsItsOrderOfPreference",
     {conn("cl", {"10.1.0.2", "10.2.0.2"})},
     [](const auto& c) { return std::vector{initiator(1, c[0], "10.1.0.2"), initiator(2, c[0], "10.2.0.2")}; },
     host({"10.2.0.2"}),
     host({"10.1.0.2", "10.2.0.2"}),
     {{"v4", "10.1.0.2"}},
     // SA 1 is where the route goes; SA 2 returns to the preferred address.
     "move 2 -> 10.1.0.2; "},
    {"NamedInitiatorDoesNotLeaveItsPreferredAddressForTheRoute",
     {conn("cl", {"10.1.0.2", "10.2.0.2"})},
     [](const auto& c) { return std::vector{initiator(1, c[0], "10.1.0.2")}; },
     host({"10.1.0.2"}),
     host({"10.1.0.2", "10.2.0.2"}),
     {{"v4", "10.2.0.2"}},
     "nothing"},
    {"InitiatorOnIpv6FollowsTheIpv6Route",
     {conn("cl", {})},
     [](const auto& c) { return std::vector{initiator(1, c[0], "2001:db8:1::2", "2001:db8::10")}; },
     host({"10.1.0.2", "2001:db8:1::2", "2001:db8:2::2"}),
     host({"10.1.0.2", "2001:db8:2::2"}),
     {{"v4", "10.1.0.2"}, {"v6", "2001:db8:2::2"}},
     "move 1 -> 2001:db8:2::2; "},
};

INSTANTIATE_TEST_SUITE_P(Topologies, AddressPolicyTable, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mobike::mobility
