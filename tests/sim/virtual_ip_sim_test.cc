// Virtual IPs (RFC 7296 §2.19, §3.15) between two engines: the client asks, the gateway
// answers from its pool with DNS and split-DNS domains and narrows the client's
// selectors to the address; Child SAs created later by CREATE_CHILD_SA use the address
// too; leases survive reconnects and IKE rekeys; an empty pool fails the client cleanly.
#include <gtest/gtest.h>

#include "ike/address_pool.h"
#include "ike/ike_sa.h"
#include "ike/traffic_selector.h"
#include "ike_pair.h"
#include "mobike_helpers.h"

namespace mobike::sim {
namespace {

ike::PoolConfig pool(const char* name, const char* range) {
  std::string error;
  auto p = ike::PoolConfig::parse_range(name, range, error);
  EXPECT_TRUE(p) << error;
  return *p;
}

struct VipPair : Pair {
  VipPair() : Pair(true) {}
  // `extra_child`: both ends get a second child "lan" for 203.0.113.0/24 behind the
  // gateway, the client's side left "dynamic" (no local_ts) and the gateway's side left
  // "dynamic" too (no remote_ts: whatever it assigned) unless `gw_remote` is given.
  void setup(std::vector<IpAddress> vips, const char* range4 = "10.3.0.0/24", bool extra_child = false,
             std::vector<IpPrefix> gw_remote = {}) {
    auto c = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
    c.vips = std::move(vips);
    auto g = psk_connection("gw", "%any", "res@example.test", "");
    g.pools = {"rw4", "rw6"};
    if (extra_child) {
      ike::ChildConfig lan = c.children.front();
      lan.name = "lan";
      lan.remote_ts = {*IpPrefix::parse("203.0.113.0/24")};
      c.children.push_back(lan);
      lan.local_ts = lan.remote_ts;
      lan.remote_ts = std::move(gw_remote);
      g.children.push_back(lan);
    }
    auto p4 = pool("rw4", range4);
    p4.dns = {ip("10.3.0.53"), ip("2001:db8:53::1")};
    p4.dns_domains = {"corp.example.test"};
    configure(c, g);
    res->engine->set_pools({p4, pool("rw6", "2001:db8:3::/112")});
  }
  const ike::AddressPool& pool4() { return *res->engine->pools().at("rw4"); }
};

TEST(VirtualIpSim, ClientGetsAnAddressDnsAndNarrowedSelectors) {
  VipPair p;
  p.setup({ip("0.0.0.0"), ip("::")});
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  auto* c = only_sa(*p.ini);
  auto* g = only_sa(*p.res);
  EXPECT_EQ(c->extras().local_vips, (std::vector<IpAddress>{ip("10.3.0.1"), ip("2001:db8:3::1")}));
  EXPECT_EQ(g->remote_vips, c->extras().local_vips);
  EXPECT_EQ(c->extras().dns_servers, (std::vector<IpAddress>{ip("10.3.0.53"), ip("2001:db8:53::1")}));
  EXPECT_EQ(c->extras().dns_domains, std::vector<std::string>{"corp.example.test"});
  // The client's side of the Child SA is its virtual IPs, on both ends.
  auto expected = ike::ts_from_config({}, ip("10.3.0.1"));
  auto v6 = ike::ts_from_config({}, ip("2001:db8:3::1"));
  expected.insert(expected.end(), v6.begin(), v6.end());
  EXPECT_EQ(c->children[0].local_ts, expected);
  EXPECT_EQ(g->children[0].remote_ts, expected);
  EXPECT_EQ(p.pool4().online(), 1u);
}

ike::TsList host_selectors(const std::vector<IpAddress>& addresses) {
  ike::TsList out;
  for (const auto& a : addresses) out.push_back(ike::ts_from_address(a));
  return out;
}

// The client's side of the CREATE_CHILD_SA request (or response) that made a new Child
// SA: its TSi when the client started the exchange, its TSr when the gateway did.
std::optional<ike::TsList> client_side_ts(const Tap& tap, bool by_client, bool response) {
  for (const auto& m : tap.seen) {
    if (m.exchange != wire::ExchangeType::kCreateChildSa || m.response != response || !m.opened) continue;
    auto type = by_client ? wire::PayloadType::kTsi : wire::PayloadType::kTsr;
    if (auto* ts = wire::find_payload<wire::TsPayload>(m.payloads, type)) return ts->selectors;
  }
  return std::nullopt;
}

enum class Start { kCommand, kAcquire, kAfterIkeRekey, kByGateway };

// RFC 7296 §2.9: a client's "dynamic" selector is the address it sends from, and once
// the gateway has assigned it virtual IPs those are it (as strongSwan resolves it), not
// the outer address IKE runs on. A Child SA created after IKE_AUTH by command, by a
// trap's acquire, on an IKE SA rekeyed since, or started by the gateway, has the virtual
// IPs on the client's side in the request and in the narrowed response.
void expect_later_child_uses_vips(Start how, std::vector<IpAddress> vips, std::vector<IpPrefix> gw_remote) {
  SCOPED_TRACE(static_cast<int>(how));
  VipPair p;
  p.setup(std::move(vips), "10.3.0.0/24", /*extra_child=*/true, std::move(gw_remote));
  auto id = p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  if (how == Start::kAfterIkeRekey) {
    ASSERT_TRUE(p.ini->engine->rekey_ike(id, p.net.now()));
    p.net.collect(*p.ini);
    ASSERT_TRUE(p.net.run_until([&] {
      auto* c = only_sa(*p.ini);
      return c && c->id != id && c->state == ike::IkeState::kEstablished && only_sa(*p.res) &&
             count_events(*p.res, EventKind::kIkeRekeyed) > 0;
    }));
    id = only_sa(*p.ini)->id;
  }
  Tap tap(p);
  if (how == Start::kAcquire) {
    ASSERT_EQ(p.ini->engine->acquire("home", "lan", p.ini->addresses.front(), p.net.now()),
              ike::Engine::Acquired::kChildRequested);
  } else if (how == Start::kByGateway) {
    ASSERT_TRUE(p.res->engine->initiate_child(only_sa(*p.res)->id, "lan", p.net.now()));
    p.net.collect(*p.res);
  } else {
    ASSERT_TRUE(p.ini->engine->initiate_child(id, "lan", p.net.now()));
  }
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] {
    auto* c = only_sa(*p.ini);
    auto* g = only_sa(*p.res);
    return c && g && c->children.size() == 2 && g->children.size() == 2;
  }, Duration(5000))) << "Child SAs failed: client " << count_events(*p.ini, EventKind::kChildFailed)
                      << ", gateway " << count_events(*p.res, EventKind::kChildFailed);
  const auto* c = only_sa(*p.ini);
  const auto* g = only_sa(*p.res);
  const auto vip_ts = host_selectors(c->extras().local_vips);
  ASSERT_FALSE(vip_ts.empty());
  const bool by_client = how != Start::kByGateway;
  EXPECT_EQ(client_side_ts(tap, by_client, false), vip_ts);  // proposed: the virtual IPs, not 10.1.0.2
  EXPECT_EQ(client_side_ts(tap, by_client, true), vip_ts);   // narrowed: the same
  const auto& lan = c->children.at(1);
  EXPECT_EQ(lan.name, "lan");
  EXPECT_EQ(lan.local_ts, vip_ts);
  ASSERT_EQ(lan.remote_ts.size(), 1u);
  EXPECT_EQ(ike::ts_to_string(lan.remote_ts.at(0)), "203.0.113.0/24");
  EXPECT_EQ(g->children.at(1).remote_ts, vip_ts);
  EXPECT_EQ(g->children.at(1).local_ts, lan.remote_ts);
  // The client's data plane installs it with the virtual IPs as its source side (the
  // userspace data plane's routes take their preferred source from there).
  const ike::DataplaneOp* install = nullptr;
  for (const auto& op : p.ini->dataplane)
    if (op.kind == ike::DataplaneOp::Kind::kInstall && op.child_sa_id == lan.id) install = &op;
  ASSERT_TRUE(install);
  EXPECT_EQ(install->local_ts, vip_ts);
  EXPECT_EQ(install->virtual_ips, c->extras().local_vips);
}

TEST(VirtualIpSim, LaterChildSaProposesTheVirtualIp) {
  expect_later_child_uses_vips(Start::kCommand, {ip("0.0.0.0")}, {});
}

TEST(VirtualIpSim, LaterChildSaProposesBothVirtualIps) {
  expect_later_child_uses_vips(Start::kCommand, {ip("0.0.0.0"), ip("::")}, {});
}

TEST(VirtualIpSim, OnDemandChildSaProposesTheVirtualIp) {
  expect_later_child_uses_vips(Start::kAcquire, {ip("0.0.0.0")}, {});
}

TEST(VirtualIpSim, ChildSaAfterIkeRekeyProposesTheVirtualIp) {
  expect_later_child_uses_vips(Start::kAfterIkeRekey, {ip("0.0.0.0")}, {});
}

TEST(VirtualIpSim, ChildSaStartedByTheGatewayIsForTheVirtualIp) {
  expect_later_child_uses_vips(Start::kByGateway, {ip("0.0.0.0")}, {});
}

// A gateway whose child names the whole pool (rather than "dynamic") narrows to what the
// client offers: the client must offer its address alone, not the pool or 0.0.0.0/0.
TEST(VirtualIpSim, LaterChildSaToAGatewayAllowingThePoolIsTheVirtualIpAlone) {
  expect_later_child_uses_vips(Start::kCommand, {ip("0.0.0.0")}, {*IpPrefix::parse("10.3.0.0/24")});
}

TEST(VirtualIpSim, ReconnectGetsTheSameAddressAndIkeRekeyKeepsItOnline) {
  VipPair p;
  p.setup({ip("0.0.0.0")});
  auto id = p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  ASSERT_TRUE(p.ini->engine->rekey_ike(id, p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] {
    auto* g = only_sa(*p.res);
    return g && only_sa(*p.ini) && g->state == ike::IkeState::kEstablished &&
           count_events(*p.res, EventKind::kIkeRekeyed) > 0;
  }));
  EXPECT_EQ(only_sa(*p.res)->remote_vips, std::vector<IpAddress>{ip("10.3.0.1")});
  EXPECT_EQ(p.pool4().online(), 1u);  // the old SA let go, the new one holds it

  const auto* c = only_sa(*p.ini);
  ASSERT_TRUE(c);
  ASSERT_TRUE(p.ini->engine->terminate_ike(c->id, p.net.now()));
  p.net.collect(*p.ini);
  ASSERT_TRUE(p.net.run_until([&] { return !p.ini->engine->ike_sa_count() && !p.res->engine->ike_sa_count(); }));
  EXPECT_EQ(p.pool4().online(), 0u);
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] { return p.both_established(); }));
  EXPECT_EQ(only_sa(*p.ini)->extras().local_vips, std::vector<IpAddress>{ip("10.3.0.1")});
}

TEST(VirtualIpSim, EmptyPoolFailsTheClientAndLeavesNoSa) {
  VipPair p;
  p.setup({ip("0.0.0.0")}, "10.3.0.7-10.3.0.7");
  // Another identity holds the pool's one address.
  auto& held = *p.res->engine->pools().at("rw4");
  ASSERT_TRUE(const_cast<ike::AddressPool&>(held).acquire("someone@else"));
  p.initiate();
  ASSERT_TRUE(p.net.run_until([&] {
    return count_events(*p.ini, EventKind::kIkeFailed) > 0 && !p.ini->engine->ike_sa_count() &&
           !p.res->engine->ike_sa_count();
  }));
  bool logged = false;
  for (const auto& l : p.ini->log) logged |= l.find("assigned no virtual IP") != std::string::npos;
  EXPECT_TRUE(logged);
}

}  // namespace
}  // namespace mobike::sim
