// The [cluster] table: what a node needs to take part in a gateway cluster.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "daemon/config.h"
#include "temp_dir.h"

namespace mobike::daemon {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

IpAddress addr(const char* s) { return IpAddress::parse(s).value(); }

constexpr std::string_view kKey = "a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00";

// The required keys, one per line from line 2 on; `omit` leaves one out and `extra`
// follows them (from line 6 on, or 5 with one omitted).
std::string cluster_section(std::string_view omit = {}, std::string_view extra = {}) {
  std::string text = "[cluster]\n";
  for (std::string_view line : {R"(node = "gw1")", R"(addresses = ["192.0.2.11", "2001:db8::11"])",
                                R"(etcd = ["10.0.0.1:2379"])", R"(key_file = "cluster.key")"})
    if (omit.empty() || !line.starts_with(std::string(omit) + " ")) text.append(line).append("\n");
  text.append(extra);
  return text;
}

class ClusterSection : public ::testing::Test {
 protected:
  void SetUp() override { dir_.write("cluster.key", std::string(kKey) + "\n", 0600); }

  Expected<Config, std::string> load(const std::string& text) {
    cfg_ = dir_.write("mobiked.toml", text);
    return load_config(cfg_);
  }

  TempDir dir_;
  std::string cfg_;
};

TEST_F(ClusterSection, EveryKeyIsRead) {
  auto r = load(
      "[cluster]\n"
      "node = \"gw-2.site_a\"\n"
      "addresses = [\"192.0.2.12\", \"2001:db8::12\"]\n"
      "etcd = [\"10.0.0.1:2379\", \"https://etcd.example.org:2380/\", \"http://[2001:db8::e]:2379\"]\n"
      "key_file = \"cluster.key\"\n"
      "prefix = \"/vpn/gw/\"\n"
      "lease_ttl = \"15s\"\n"
      "rebalance_tolerance = 25\n"
      "return_traffic = \"proxy_arp\"\n"
      "lan_interface = \"eth1\"\n"
      "switch_sender = \"new\"\n"
      "announce_addresses = false\n"
      "move_timeout = \"2m\"\n"
      "failover = false\n"
      "checkpoint_interval = \"3s\"\n");
  ASSERT_TRUE(r) << r.error();
  ASSERT_TRUE(r->cluster);
  const auto& c = *r->cluster;
  EXPECT_EQ(c.node, "gw-2.site_a");
  EXPECT_EQ(c.addresses, (std::vector<IpAddress>{addr("192.0.2.12"), addr("2001:db8::12")}));
  EXPECT_EQ(c.etcd, (std::vector<std::string>{"http://10.0.0.1:2379", "https://etcd.example.org:2380",
                                               "http://[2001:db8::e]:2379"}));
  EXPECT_EQ(to_hex(c.key), kKey);
  EXPECT_EQ(c.key_file, dir_.file("cluster.key"));
  EXPECT_EQ(c.prefix, "/vpn/gw/");
  EXPECT_EQ(c.lease_ttl, 15s);
  EXPECT_EQ(c.rebalance_tolerance, 25u);
  EXPECT_EQ(c.return_traffic, ReturnTraffic::kProxyArp);
  EXPECT_EQ(c.lan_interface, "eth1");
  EXPECT_TRUE(c.hook.empty());
  EXPECT_EQ(c.switch_sender, cluster::SwitchSender::kNewNode);
  EXPECT_FALSE(c.announce_addresses);
  EXPECT_EQ(c.move_timeout, 120s);
  EXPECT_FALSE(c.failover);
  EXPECT_EQ(c.checkpoint_interval, 3s);
}

TEST_F(ClusterSection, HookMode) {
  auto r = load(cluster_section({}, "return_traffic = \"hook\"\nhook = \"/usr/local/sbin/moved --quiet\"\n"));
  ASSERT_TRUE(r) << r.error();
  ASSERT_TRUE(r->cluster);
  EXPECT_EQ(r->cluster->return_traffic, ReturnTraffic::kHook);
  EXPECT_EQ(r->cluster->hook, "/usr/local/sbin/moved --quiet");
  EXPECT_TRUE(r->cluster->lan_interface.empty());
}

TEST_F(ClusterSection, DefaultsForOmittedKeys) {
  auto r = load(cluster_section());
  ASSERT_TRUE(r) << r.error();
  ASSERT_TRUE(r->cluster);
  const auto& c = *r->cluster;
  EXPECT_EQ(c.node, "gw1");
  EXPECT_EQ(c.etcd, std::vector<std::string>{"http://10.0.0.1:2379"});
  EXPECT_EQ(c.prefix, "/mobiked/");
  EXPECT_EQ(c.lease_ttl, 10s);
  EXPECT_EQ(c.rebalance_tolerance, 0u);
  EXPECT_EQ(c.return_traffic, ReturnTraffic::kNone);
  EXPECT_TRUE(c.lan_interface.empty());
  EXPECT_TRUE(c.hook.empty());
  EXPECT_EQ(c.switch_sender, cluster::SwitchSender::kOldNode);
  EXPECT_TRUE(c.announce_addresses);
  EXPECT_EQ(c.move_timeout, 60s);
  EXPECT_TRUE(c.failover);
  EXPECT_EQ(c.checkpoint_interval, 10s);
}

TEST_F(ClusterSection, AbsentWithoutTheTable) {
  auto r = load("[daemon]\nike_port = 1500\n");
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->cluster.has_value());
}

TEST_F(ClusterSection, KeyFileAbsoluteAndWithSurroundingWhitespace) {
  const auto key = dir_.write("other.key", "\n  " + std::string(kKey) + " \r\n\t\n", 0400);
  auto r = load(cluster_section("key_file", "key_file = \"" + key + "\"\n"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(to_hex(r->cluster->key), kKey);
  EXPECT_EQ(r->cluster->key_file, key);
}

class ClusterRequiredKey : public ClusterSection, public ::testing::WithParamInterface<const char*> {};

TEST_P(ClusterRequiredKey, IsNamedAtTheTable) {
  auto r = load(cluster_section(GetParam()));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), cfg_ + ":1: cluster: key '" + GetParam() + "': required");
}

INSTANTIATE_TEST_SUITE_P(Missing, ClusterRequiredKey, ::testing::Values("node", "addresses", "etcd", "key_file"));

TEST_F(ClusterSection, EveryRequiredKeyMissingIsReportedOnce) {
  auto r = load("[cluster]\nprefix = \"/x/\"\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(std::count(r.error().begin(), r.error().end(), '\n'), 3) << r.error();
  for (auto key : {"node", "addresses", "etcd", "key_file"})
    EXPECT_NE(r.error().find("cluster: key '" + std::string(key) + "': required"), std::string::npos) << r.error();
}

TEST_F(ClusterSection, KeyFileAccessibleByOthersIsRefused) {
  for (auto [mode, text] : {std::pair{0640, "0640"}, std::pair{0604, "0604"}, std::pair{0620, "0620"}}) {
    const auto key = dir_.write("cluster.key", std::string(kKey), static_cast<mode_t>(mode));
    auto r = load(cluster_section());
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error(), cfg_ + ":5: cluster: key 'key_file': " + key +
                             " is readable or writable by group or others (mode " + text + "); chmod 600 it");
  }
}

TEST_F(ClusterSection, KeyFileThatIsNotAFileIsRefused) {
  auto r = load(cluster_section("key_file", "key_file = \".\"\n"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(":5: cluster: key 'key_file': "), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("is not a regular file"), std::string::npos) << r.error();

  r = load(cluster_section("key_file", "key_file = \"missing.key\"\n"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("cannot open " + dir_.file("missing.key")), std::string::npos) << r.error();
}

struct BadKey {
  const char* what;
  std::string content;
  const char* fragment;
};

void PrintTo(const BadKey& k, std::ostream* os) { *os << k.what; }

class ClusterBadKeyContent : public ClusterSection, public ::testing::WithParamInterface<BadKey> {};

TEST_P(ClusterBadKeyContent, IsRefusedWithoutShowingIt) {
  const auto& bad = GetParam();
  dir_.write("cluster.key", bad.content, 0600);
  auto r = load(cluster_section());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().rfind(cfg_ + ":5: cluster: key 'key_file': " + dir_.file("cluster.key"), 0), 0u)
      << r.error();
  EXPECT_NE(r.error().find(bad.fragment), std::string::npos) << r.error();
  // Neither end of the key, nor any 8 digits of it in between.
  for (std::size_t i = 0; i + 8 <= kKey.size(); ++i)
    EXPECT_EQ(r.error().find(kKey.substr(i, 8)), std::string::npos) << r.error();
}

std::string with_char_at(std::size_t i, char c) {
  std::string s(kKey);
  s[i] = c;
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Bad, ClusterBadKeyContent,
    ::testing::Values(BadKey{"63 digits", std::string(kKey.substr(0, 63)) + "\n", "64 hex digits, not 63 characters"},
                      BadKey{"65 digits", std::string(kKey) + "0", "64 hex digits, not 65 characters"},
                      BadKey{"two keys", std::string(kKey) + "\n" + std::string(kKey) + "\n", "not 129 characters"},
                      BadKey{"non-hex", with_char_at(10, 'g'), "another character at offset 10"},
                      BadKey{"non-hex low digit", "\n" + with_char_at(63, 'Z'), "another character at offset 64"},
                      BadKey{"0x prefix", "0x" + std::string(kKey.substr(0, 62)), "another character at offset 1"},
                      BadKey{"empty", " \n", "is empty"}),
    [](const auto& info) {
      std::string name = info.param.what;
      std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
      return name;
    });

struct BadCase {
  const char* extra;  // from line 6 on, after the required keys
  int line;
  const char* key;
  const char* fragment;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.key << " @" << c.line << ": " << c.fragment; }

class ClusterError : public ClusterSection, public ::testing::WithParamInterface<BadCase> {};

TEST_P(ClusterError, NamesFileLineAndKey) {
  const auto& c = GetParam();
  auto r = load(cluster_section({}, c.extra));
  ASSERT_FALSE(r) << c.extra;
  EXPECT_EQ(r.error().rfind(cfg_ + ":" + std::to_string(c.line) + ": cluster: key '" + c.key + "': ", 0), 0u)
      << r.error();
  EXPECT_NE(r.error().find(c.fragment), std::string::npos) << r.error();
  // One problem, one message.
  EXPECT_EQ(r.error().find('\n'), std::string::npos) << r.error();
}

INSTANTIATE_TEST_SUITE_P(
    Bad, ClusterError,
    ::testing::Values(
        BadCase{"lease_tll = \"10s\"\n", 6, "lease_tll", "unknown key; did you mean 'lease_ttl'?"},
        BadCase{"return_trafic = \"none\"\n", 6, "return_trafic", "did you mean 'return_traffic'?"},
        BadCase{"lease_ttl = \"1s\"\n", 6, "lease_ttl", "must be in 2s..300s, not 1s"},
        BadCase{"lease_ttl = \"301s\"\n", 6, "lease_ttl", "must be in 2s..300s, not 301s"},
        BadCase{"lease_ttl = \"1h\"\n", 6, "lease_ttl", "not 3600s"},
        BadCase{"lease_ttl = 0\n", 6, "lease_ttl", "2s..300s"},
        BadCase{"lease_ttl = \"10x\"\n", 6, "lease_ttl", "unknown unit 'x'"},
        BadCase{"move_timeout = 0\n", 6, "move_timeout", "longer than 0"},
        BadCase{"checkpoint_interval = 0\n", 6, "checkpoint_interval", "must be at least 1s"},
        BadCase{"failover = \"yes\"\n", 6, "failover", "expected"},
        BadCase{"move_timeout = 1.5\n", 6, "move_timeout", "expected a duration"},
        BadCase{"rebalance_tolerance = -1\n", 6, "rebalance_tolerance", "must be in 0..4294967295"},
        BadCase{"rebalance_tolerance = \"5\"\n", 6, "rebalance_tolerance", "expected an integer"},
        BadCase{"prefix = \"mobiked/\"\n", 6, "prefix", "must start and end with '/'"},
        BadCase{"prefix = \"/mobiked\"\n", 6, "prefix", "must start and end with '/'"},
        BadCase{"return_traffic = \"arp\"\n", 6, "return_traffic", "unknown mode 'arp'"},
        BadCase{"switch_sender = \"both\"\n", 6, "switch_sender", "unknown sender 'both'"},
        BadCase{"announce_addresses = \"yes\"\n", 6, "announce_addresses", "expected true or false"},
        BadCase{"return_traffic = \"proxy_arp\"\n", 6, "lan_interface", "required with return_traffic = \"proxy_arp\""},
        BadCase{"return_traffic = \"hook\"\n", 6, "hook", "required with return_traffic = \"hook\""},
        BadCase{"lan_interface = \"eth1\"\n", 6, "lan_interface", "only with return_traffic = \"proxy_arp\""},
        BadCase{"return_traffic = \"hook\"\nhook = \"/bin/true\"\nlan_interface = \"eth1\"\n", 8, "lan_interface",
                "only with return_traffic = \"proxy_arp\""},
        BadCase{"hook = \"/bin/true\"\n", 6, "hook", "only with return_traffic = \"hook\""},
        BadCase{"return_traffic = \"hook\"\nhook = \"\"\n", 7, "hook", "must not be empty"},
        // The mode is unknown, so whether these belong to it is too: only the mode is wrong.
        BadCase{"return_traffic = \"arp\"\nlan_interface = \"eth1\"\n", 6, "return_traffic", "unknown mode"},
        BadCase{"return_traffic = \"proxy_arp\"\nlan_interface = \"eth1/2\"\n", 7, "lan_interface",
                "not a valid interface name"}));

// Errors in the required keys themselves, one key per case, in place of the valid line.
struct BadRequired {
  const char* key;
  const char* line;  // replaces the key's line; it is line 5 then
  const char* fragment;
};

void PrintTo(const BadRequired& c, std::ostream* os) { *os << c.line; }

class ClusterBadRequired : public ClusterSection, public ::testing::WithParamInterface<BadRequired> {};

TEST_P(ClusterBadRequired, NamesFileLineAndKey) {
  const auto& c = GetParam();
  auto r = load(cluster_section(c.key, std::string(c.line) + "\n"));
  ASSERT_FALSE(r) << c.line;
  EXPECT_EQ(r.error().rfind(cfg_ + ":5: cluster: key '" + c.key + "': ", 0), 0u) << r.error();
  EXPECT_NE(r.error().find(c.fragment), std::string::npos) << r.error();
  EXPECT_EQ(r.error().find('\n'), std::string::npos) << r.error();
}

INSTANTIATE_TEST_SUITE_P(
    Bad, ClusterBadRequired,
    ::testing::Values(
        BadRequired{"node", "node = \"gw 1\"", "is not 1-64 letters"},
        BadRequired{"node", "node = \"\"", "is not 1-64 letters"},
        BadRequired{"addresses", "addresses = []", "needs at least one address"},
        BadRequired{"addresses", "addresses = [\"192.0.2.1\", \"192.0.2.1\"]", "'192.0.2.1' is listed twice"},
        BadRequired{"addresses", "addresses = [\"192.0.2.0/24\"]", "'192.0.2.0/24' is not an IP address"},
        BadRequired{"etcd", "etcd = []", "needs at least one endpoint"},
        BadRequired{"etcd", "etcd = [\"ftp://10.0.0.1:2379\"]", "only http:// and https:// are supported"},
        BadRequired{"etcd", "etcd = [\"http://10.0.0.1:2379/v3\"]", "expected http://host:port"},
        BadRequired{"etcd", "etcd = [\"http://\"]", "expected http://host:port"},
        BadRequired{"etcd", "etcd = [\"10.0.0.1\"]", "endpoint '10.0.0.1' has no port"},
        BadRequired{"etcd", "etcd = [\"http://[2001:db8::e]\"]", "has no port"},
        BadRequired{"etcd", "etcd = [\"2001:db8::e:2379\"]", "needs an IPv6 address in brackets"},
        BadRequired{"etcd", "etcd = [\"10.0.0.1:0\"]", "has no valid port"},
        BadRequired{"etcd", "etcd = [\"10.0.0.1:99999\"]", "has no valid port"},
        BadRequired{"etcd", "etcd = [\"10.0.0.1:\"]", "has no valid port"},
        BadRequired{"etcd", "etcd = [\"10.0.0.1:2379\", \"http://10.0.0.1:2379/\"]",
                    "endpoint 'http://10.0.0.1:2379/' is listed twice"},
        BadRequired{"etcd", "etcd = 2379", "expected a string or an array of strings"},
        BadRequired{"key_file", "key_file = \"\"", "must not be empty"},
        BadRequired{"key_file", "key_file = 5", "expected a string"}));

TEST(ClusterConfigTable, UnknownTopLevelKeySuggestsCluster) {
  auto r = parse_config("[clustr]\nnode = \"gw1\"\n", "/etc/mobiked/mobiked.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "/etc/mobiked/mobiked.toml:1: key 'clustr': unknown key; did you mean 'cluster'?");
}

TEST(ClusterConfigTable, MustBeATable) {
  auto r = parse_config("cluster = \"gw1\"\n", "mobiked.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "mobiked.toml:1: key 'cluster': expected a [cluster] table, got a string");

  r = parse_config("[[cluster]]\nnode = \"gw1\"\n", "mobiked.toml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("key 'cluster': expected a [cluster] table, got an array"), std::string::npos)
      << r.error();
}

}  // namespace
}  // namespace mobike::daemon
