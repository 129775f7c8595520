#include "ike/address_pool.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace mobike::ike {
namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

PoolConfig range(const char* text) {
  std::string error;
  auto p = PoolConfig::parse_range("rw", text, error);
  EXPECT_TRUE(p) << error;
  return p.value_or(PoolConfig{});
}

TEST(AddressPool, PrefixLeavesOutNetworkAndBroadcast) {
  auto p = range("10.3.0.0/24");
  EXPECT_EQ(p.first, ip("10.3.0.1"));
  EXPECT_EQ(p.last, ip("10.3.0.254"));
  EXPECT_EQ(AddressPool(p).size(), 254u);
  auto v6 = range("2001:db8:1::/112");
  EXPECT_EQ(v6.first, ip("2001:db8:1::1"));
  EXPECT_EQ(v6.last, ip("2001:db8:1::ffff"));
  auto r = range("10.3.0.10-10.3.0.12");
  EXPECT_EQ(AddressPool(r).size(), 3u);
  EXPECT_EQ(range("10.3.0.7/32").first, ip("10.3.0.7"));
}

TEST(AddressPool, BadRangesAreRefusedWithAReason) {
  std::string error;
  EXPECT_FALSE(PoolConfig::parse_range("x", "10.3.0.9-10.3.0.1", error));
  EXPECT_NE(error.find("ends before it starts"), std::string::npos);
  EXPECT_FALSE(PoolConfig::parse_range("x", "10.3.0.1-2001:db8::1", error));
  EXPECT_NE(error.find("mixes"), std::string::npos);
  EXPECT_FALSE(PoolConfig::parse_range("x", "2001:db8::/48", error));
  EXPECT_NE(error.find("/64"), std::string::npos);
  EXPECT_FALSE(PoolConfig::parse_range("x", "ten", error));
}

TEST(AddressPool, ReconnectingIdentityGetsItsAddressBack) {
  AddressPool pool(range("10.3.0.10-10.3.0.12"));
  auto a = pool.acquire("alice");
  auto b = pool.acquire("bob");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, ip("10.3.0.10"));
  EXPECT_EQ(*b, ip("10.3.0.11"));
  pool.release(*a);
  EXPECT_EQ(pool.online(), 1u);
  // Another client takes a fresh address, not alice's offline one.
  EXPECT_EQ(pool.acquire("carol"), ip("10.3.0.12"));
  EXPECT_EQ(pool.acquire("alice"), ip("10.3.0.10"));
}

TEST(AddressPool, FullPoolReusesTheOldestOfflineLeaseAndThenRefuses) {
  AddressPool pool(range("10.3.0.10-10.3.0.11"));
  auto a = pool.acquire("alice");
  auto b = pool.acquire("bob");
  EXPECT_FALSE(pool.acquire("carol"));
  pool.release(*b);
  pool.release(*a);
  EXPECT_EQ(pool.acquire("carol"), b);  // bob went offline first
  auto leases = pool.leases();
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[1].identity, "carol");
  EXPECT_TRUE(leases[1].online);
}

TEST(AddressPool, RekeyHoldsTheAddressTwiceUntilBothLetGo) {
  AddressPool pool(range("10.3.0.0/30"));
  auto a = pool.acquire("alice");
  ASSERT_TRUE(a);
  pool.retain(*a);
  pool.release(*a);
  EXPECT_EQ(pool.online(), 1u);
  pool.release(*a);
  EXPECT_EQ(pool.online(), 0u);
  pool.release(*a);  // one too many: ignored
  pool.release(ip("192.0.2.1"));  // not ours: ignored
  EXPECT_EQ(pool.acquire("alice"), a);
}

TEST(AddressPool, ReloadKeepsLeasesInTheNewRange) {
  AddressPool old(range("10.3.0.10-10.3.0.20"));
  auto a = old.acquire("alice");
  auto b = old.acquire("bob");
  old.release(*b);
  AddressPool next(range("10.3.0.10-10.3.0.30"));
  next.adopt_leases(old);
  EXPECT_EQ(next.online(), 1u);
  EXPECT_EQ(next.acquire("carol"), ip("10.3.0.12"));  // past the adopted ones
  EXPECT_EQ(next.acquire("bob"), b);
  next.release(*a);
  EXPECT_EQ(next.online(), 2u);
}

TEST(AddressPool, AClaimedAddressFromAnotherNodeIsNotHandedOutAgain) {
  AddressPool pool(range("10.3.0.1-10.3.0.3"));
  EXPECT_EQ(pool.acquire("alice"), ip("10.3.0.1"));
  // An SA that arrived from another node holds .2 for carol: never offered to anyone else.
  pool.claim(ip("10.3.0.2"), "carol");
  pool.claim(ip("192.0.2.9"), "dave");  // not this pool's: ignored
  EXPECT_EQ(pool.online(), 2u);
  EXPECT_EQ(pool.acquire("bob"), ip("10.3.0.3"));
  EXPECT_FALSE(pool.acquire("erin"));
  // Released, the lease stays carol's, as one acquired here would.
  pool.release(ip("10.3.0.2"));
  EXPECT_EQ(pool.acquire("carol"), ip("10.3.0.2"));
  // A claim of an address offline for someone else makes it the claimant's.
  pool.release(ip("10.3.0.1"));
  pool.claim(ip("10.3.0.1"), "frank");
  auto leases = pool.leases();
  auto it = std::find_if(leases.begin(), leases.end(), [](const auto& l) { return l.address == ip("10.3.0.1"); });
  ASSERT_NE(it, leases.end());
  EXPECT_EQ(it->identity, "frank");
  EXPECT_TRUE(it->online);
}

TEST(AddressPool, Ipv6AddressesCountInTheLow64Bits) {
  AddressPool pool(range("2001:db8::fffe-2001:db8::1:1"));
  EXPECT_EQ(pool.size(), 4u);
  EXPECT_EQ(pool.acquire("a"), ip("2001:db8::fffe"));
  EXPECT_EQ(pool.acquire("b"), ip("2001:db8::ffff"));
  EXPECT_EQ(pool.acquire("c"), ip("2001:db8::1:0"));
  EXPECT_TRUE(pool.contains(ip("2001:db8::1:1")));
  EXPECT_FALSE(pool.contains(ip("2001:db8::1:2")));
  EXPECT_FALSE(pool.contains(ip("10.0.0.1")));
}

}  // namespace
}  // namespace mobike::ike
