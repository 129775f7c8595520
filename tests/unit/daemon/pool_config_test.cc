// [[pool]] tables and the connections' pools key.
#include <gtest/gtest.h>

#include "daemon/config.h"
#include "temp_dir.h"

namespace mobike::daemon {
namespace {

using testing::TempDir;

TEST(PoolConfig, PoolsAreReadAndConnectionsMustNameExistingOnes) {
  TempDir dir;
  auto cfg = dir.write("mobiked.toml",
                       "[[pool]]\nname = \"rw\"\naddrs = \"10.3.0.0/24\"\ndns = [\"10.3.0.53\"]\n"
                       "split_dns = [\"corp.example.test.\"]\n"
                       "[[pool]]\nname = \"rw6\"\naddrs = \"2001:db8:3::10-2001:db8:3::20\"\n"
                       "[[connection]]\nname = \"gw\"\nlocal_id = \"gw\"\npsk = \"s\"\npools = [\"rw\", \"rw6\"]\n");
  auto r = load_config(cfg);
  ASSERT_TRUE(r) << r.error();
  ASSERT_EQ(r->pools.size(), 2u);
  EXPECT_EQ(r->pools[0].first.to_string(), "10.3.0.1");
  EXPECT_EQ(r->pools[0].last.to_string(), "10.3.0.254");
  EXPECT_EQ(r->pools[0].dns_domains, std::vector<std::string>{"corp.example.test"});
  EXPECT_EQ(r->pools[1].last.to_string(), "2001:db8:3::20");
  EXPECT_EQ(r->connections[0].pools, (std::vector<std::string>{"rw", "rw6"}));

  dir.write("mobiked.toml",
            "[[pool]]\nname = \"rw\"\naddrs = \"10.3.0.9-10.3.0.1\"\n"
            "[[pool]]\nname = \"rw\"\naddrs = \"10.4.0.0/24\"\n"
            "[[pool]]\nname = \"nodns\"\naddrs = \"10.5.0.0/24\"\ndns = [\"resolver\"]\n"
            "[[pool]]\nname = \"noaddrs\"\n"
            "[[connection]]\nname = \"gw\"\nlocal_id = \"gw\"\npsk = \"s\"\npools = [\"rw\", \"typo\"]\n");
  r = load_config(cfg);
  ASSERT_FALSE(r);
  for (const char* want : {":3: pool 'rw': key 'addrs': '10.3.0.9-10.3.0.1' ends before it starts",
                           ":5: pool 'rw': key 'name': duplicate pool name 'rw' (first defined at line 1)",
                           "pool 'nodns': key 'dns': 'resolver' is not an IP address",
                           "pool 'noaddrs': key 'addrs': required",
                           "connection 'gw': key 'pools': no [[pool]] named 'typo'"})
    EXPECT_NE(r.error().find(want), std::string::npos) << want << "\n" << r.error();
}

}  // namespace
}  // namespace mobike::daemon
