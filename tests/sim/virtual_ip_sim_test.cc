// Virtual IPs (RFC 7296 §2.19, §3.15) between two engines: the client asks, the gateway
// answers from its pool with DNS and split-DNS domains and narrows the client's
// selectors to the address; leases survive reconnects and IKE rekeys; an empty pool
// fails the client cleanly.
#include <gtest/gtest.h>

#include "ike/address_pool.h"
#include "ike/ike_sa.h"
#include "ike/traffic_selector.h"
#include "ike_pair.h"

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
  void setup(std::vector<IpAddress> vips, const char* range4 = "10.3.0.0/24") {
    auto c = psk_connection("home", "198.51.100.10", "ini@example.test", "res@example.test");
    c.vips = std::move(vips);
    auto g = psk_connection("gw", "%any", "res@example.test", "");
    g.pools = {"rw4", "rw6"};
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
