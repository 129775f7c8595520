#include "daemon/config.h"

#include <gtest/gtest.h>

#include "ike/proposal_string.h"
#include "temp_dir.h"

namespace mobike::daemon {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

IpPrefix prefix(const char* s) { return IpPrefix::parse(s).value(); }
IpAddress addr(const char* s) { return IpAddress::parse(s).value(); }

// A connection that is complete on its own, for tests about one other key.
constexpr const char* kMinimalConnection =
    "[[connection]]\n"
    "name = \"c\"\n"
    "local_id = \"me.example.org\"\n"
    "psk = \"secret\"\n";

TEST(Config, LoadsEveryKeyOfTheExample) {
  auto r = load_config(MOBIKE_TEST_DATA "/config/example.toml");
  ASSERT_TRUE(r) << r.error();
  const auto& d = r->daemon;
  EXPECT_EQ(d.socket, "/run/mobiked-test.sock");
  EXPECT_EQ(d.listen, (std::vector<IpAddress>{addr("192.0.2.1"), addr("2001:db8::1")}));
  EXPECT_EQ(d.ike_port, 1500);
  EXPECT_EQ(d.natt_port, 14500);
  EXPECT_EQ(d.dataplane, DataplaneKind::kUserspace);
  EXPECT_EQ(d.tun_name, "mobike7");
  EXPECT_EQ(d.tun_mtu, 1380);
  EXPECT_EQ(d.replay_window, 2048u);
  EXPECT_FALSE(d.install_routes);
  EXPECT_EQ(d.routing_table, 1000u);
  EXPECT_EQ(d.log_level, spdlog::level::debug);
  EXPECT_EQ(d.half_open_threshold, 50u);
  EXPECT_EQ(d.half_open_timeout, 45s);
  EXPECT_EQ(d.retransmit_timeout, 500ms);
  EXPECT_EQ(d.retransmit_tries, 3);
  EXPECT_DOUBLE_EQ(d.retransmit_base, 2.0);
  EXPECT_EQ(d.keepalive_interval, 10s);
  EXPECT_EQ(d.switch_notify_type, 50000);
  EXPECT_EQ(d.mobike_path_timeout, 10min);

  ASSERT_EQ(r->connections.size(), 2u);
  const auto& c = r->connections[0];
  EXPECT_EQ(c.name, "home");
  EXPECT_EQ(c.local_addrs, (std::vector<IpAddress>{addr("192.0.2.1")}));
  EXPECT_EQ(c.remote_addrs, (std::vector<std::string>{"198.51.100.7", "203.0.113.0/24"}));
  EXPECT_EQ(c.remote_port, 4500);
  EXPECT_EQ(c.local_id, ike::Identity::parse("client@example.org"));
  EXPECT_EQ(c.local_id.type, wire::IdType::kRfc822Addr);
  ASSERT_TRUE(c.remote_id);
  EXPECT_EQ(c.remote_id->type, wire::IdType::kFqdn);
  EXPECT_EQ(to_hex(c.psk), "00112233445566778899aabbccddeeff");
  EXPECT_EQ(c.ike_proposals,
            ike::parse_ike_proposals("aes256-sha384-ecp384,aes128gcm16-prfsha256-x25519").value());
  EXPECT_EQ(c.dpd_delay, 10s);
  EXPECT_EQ(c.rekey_time, 2h);
  EXPECT_EQ(c.lifetime, 3h);
  EXPECT_FALSE(c.mobike);
  EXPECT_TRUE(c.encap_force);
  EXPECT_FALSE(c.nat_traversal);
  EXPECT_EQ(c.return_routability, ike::ReturnRoutability::kUnannounced);
  EXPECT_FALSE(c.switch_enabled);
  EXPECT_FALSE(c.ha_sync);
  EXPECT_FALSE(c.switch_response_to_new);
  EXPECT_EQ(c.switch_allow, (std::vector<IpPrefix>{prefix("198.51.100.0/24"), prefix("2001:db8::7/128")}));
  EXPECT_EQ(c.switch_prefer, (std::vector<IpAddress>{addr("192.0.2.1"), addr("2001:db8::1")}));
  EXPECT_EQ(c.start, ike::StartAction::kInitiate);

  ASSERT_EQ(c.children.size(), 2u);
  const auto& net = c.children[0];
  EXPECT_EQ(net.name, "net");
  EXPECT_EQ(net.local_ts, (std::vector<IpPrefix>{prefix("10.1.0.0/16"), prefix("2001:db8:1::/48")}));
  EXPECT_EQ(net.remote_ts, (std::vector<IpPrefix>{prefix("10.2.0.0/16")}));
  // Inherited from the connection.
  EXPECT_EQ(net.esp_proposals, ike::parse_esp_proposals("aes128gcm16-x25519").value());
  EXPECT_EQ(net.rekey_time, 30min);
  EXPECT_EQ(net.lifetime, 40min);
  EXPECT_EQ(net.rekey_bytes, 512ull << 20);
  EXPECT_EQ(net.life_bytes, 600000000u);
  EXPECT_EQ(net.rekey_packets, 100000u);
  EXPECT_EQ(net.life_packets, 120000u);
  const auto& host = c.children[1];
  EXPECT_EQ(host.name, "host");
  EXPECT_TRUE(host.local_ts.empty());
  EXPECT_TRUE(host.remote_ts.empty());
  EXPECT_EQ(host.esp_proposals, ike::parse_esp_proposals("aes128-sha256-esn").value());

  const auto& rw = r->connections[1];
  EXPECT_EQ(rw.name, "roadwarriors");
  EXPECT_EQ(rw.local_id.type, wire::IdType::kFqdn);
  EXPECT_EQ(rw.local_id.data, to_bytes("gw.example.org"));
  EXPECT_EQ(rw.psk, to_bytes("a shared secret"));
}

TEST(Config, DefaultsForOmittedKeys) {
  TempDir dir;
  auto r = load_config(dir.write("mobiked.toml", kMinimalConnection));
  ASSERT_TRUE(r) << r.error();
  const DaemonConfig defaults;
  EXPECT_EQ(r->daemon.socket, "/run/mobiked/mobiked.sock");
  EXPECT_EQ(r->daemon.listen, (std::vector<IpAddress>{addr("0.0.0.0"), addr("::")}));
  EXPECT_EQ(r->daemon.ike_port, 500);
  EXPECT_EQ(r->daemon.natt_port, 4500);
  EXPECT_EQ(r->daemon.log_level, spdlog::level::info);
  EXPECT_EQ(r->daemon.half_open_threshold, 1000u);
  EXPECT_EQ(r->daemon.retransmit_timeout, 2s);
  EXPECT_EQ(r->daemon.retransmit_tries, 5);
  EXPECT_DOUBLE_EQ(r->daemon.retransmit_base, 1.8);

  ASSERT_EQ(r->connections.size(), 1u);
  const auto& c = r->connections[0];
  EXPECT_TRUE(c.local_addrs.empty());
  EXPECT_TRUE(c.remote_addrs.empty());
  EXPECT_EQ(c.remote_port, 500);
  EXPECT_FALSE(c.remote_id);
  EXPECT_EQ(c.ike_proposals, ike::parse_ike_proposals("aes128gcm16-prfsha256-x25519").value());
  EXPECT_EQ(c.dpd_delay, 30s);
  EXPECT_EQ(c.rekey_time, 4h);
  EXPECT_EQ(c.lifetime, 0s);
  EXPECT_TRUE(c.mobike);
  EXPECT_FALSE(c.encap_force);
  EXPECT_TRUE(c.nat_traversal);
  EXPECT_EQ(c.return_routability, ike::ReturnRoutability::kAlways);
  EXPECT_TRUE(c.switch_enabled);
  EXPECT_TRUE(c.ha_sync);
  EXPECT_TRUE(c.switch_response_to_new);
  EXPECT_TRUE(c.switch_allow.empty());
  EXPECT_TRUE(c.switch_prefer.empty());
  EXPECT_EQ(c.start, ike::StartAction::kNone);
  // No [[connection.child]]: one host-to-host child named after the connection.
  ASSERT_EQ(c.children.size(), 1u);
  EXPECT_EQ(c.children[0].name, "c");
  EXPECT_TRUE(c.children[0].local_ts.empty());
  EXPECT_EQ(c.children[0].esp_proposals, ike::parse_esp_proposals("aes128gcm16").value());
  EXPECT_EQ(c.children[0].rekey_time, 1h);
}

TEST(Config, EmptyFileIsValid) {
  TempDir dir;
  auto r = load_config(dir.write("mobiked.toml", ""));
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->connections.empty());
  EXPECT_EQ(r->daemon.socket, DaemonConfig{}.socket);
}

TEST(Config, EveryDataplaneKind) {
  for (auto [text, kind] : {std::pair{"none", DataplaneKind::kNone}, std::pair{"userspace", DataplaneKind::kUserspace},
                            std::pair{"xfrm", DataplaneKind::kXfrm}}) {
    auto r = parse_config(std::string("[daemon]\ndataplane = \"") + text + "\"\n", "mobiked.toml");
    ASSERT_TRUE(r) << text << ": " << r.error();
    EXPECT_EQ(r->daemon.dataplane, kind) << text;
  }
}

TEST(Config, LocalIdDefaultsToTheSingleLocalAddress) {
  TempDir dir;
  auto r = load_config(dir.write("mobiked.toml",
                                 "[[connection]]\nname = \"c\"\nlocal_addrs = \"2001:db8::5\"\n"
                                 "psk = \"x\"\nremote_addrs = \"%any\"\n"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->connections[0].local_id.type, wire::IdType::kIpv6Addr);
  EXPECT_EQ(r->connections[0].local_id.data, addr("2001:db8::5").to_bytes());
  EXPECT_EQ(r->connections[0].remote_addrs, std::vector<std::string>{"%any"});
}

TEST(Config, RemoteAddrsTakeDnsNamesAsWritten) {
  auto r = parse_config(std::string(kMinimalConnection) +
                            "remote_addrs = [\"vpn.example.org\", \"198.51.100.10\", \"GW-2.Example.org.\", "
                            "\"2001:db8::/64\"]\nstart = \"initiate\"\n",
                        "mobiked.toml");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->connections[0].remote_addrs,
            (std::vector<std::string>{"vpn.example.org", "198.51.100.10", "GW-2.Example.org.", "2001:db8::/64"}));
  EXPECT_EQ(r->connections[0].start, ike::StartAction::kInitiate);
  // A name alone is enough to initiate to.
  r = parse_config(std::string(kMinimalConnection) + "remote_addrs = \"vpn.example.org\"\nstart = \"initiate\"\n",
                   "mobiked.toml");
  ASSERT_TRUE(r) << r.error();
  // As the responder a name matches no address (only initiating resolves it).
  EXPECT_FALSE(ike::remote_address_allowed(r->connections[0], addr("198.51.100.10")));
}

TEST(Config, DynamicTrafficSelectorMeansTheIkeAddress) {
  TempDir dir;
  auto r = load_config(dir.write("mobiked.toml", std::string(kMinimalConnection) +
                                                     "[[connection.child]]\nname = \"k\"\n"
                                                     "local_ts = \"dynamic\"\n"
                                                     "remote_ts = [\"0.0.0.0/0\", \"::/0\"]\n"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->connections[0].children[0].local_ts.empty());
  EXPECT_EQ(r->connections[0].children[0].remote_ts.size(), 2u);
}

TEST(Config, PskFileIsReadTrimmedAndRelativeToTheConfig) {
  TempDir dir;
  dir.write("home.psk", "file secret\n", 0600);
  dir.write("hex.psk", "0xdeadbeef\r\n", 0400);
  auto r = load_config(dir.write("mobiked.toml",
                                 "[[connection]]\nname = \"a\"\nlocal_id = \"a\"\npsk_file = \"home.psk\"\n"
                                 "[[connection]]\nname = \"b\"\nlocal_id = \"b\"\npsk_file = \"" +
                                     dir.file("hex.psk") + "\"\n"));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->connections[0].psk, to_bytes("file secret"));
  EXPECT_EQ(r->connections[1].psk, (Bytes{0xde, 0xad, 0xbe, 0xef}));
}

TEST(Config, PskFileAccessibleByOthersIsRefused) {
  TempDir dir;
  const auto psk = dir.write("home.psk", "secret\n", 0640);
  const auto cfg = dir.write("mobiked.toml",
                             "[[connection]]\nname = \"home\"\nlocal_id = \"a\"\npsk_file = \"home.psk\"\n");
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(cfg + ":4: connection 'home': key 'psk_file': "), std::string::npos) << r.error();
  EXPECT_NE(r.error().find(psk), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("0640"), std::string::npos) << r.error();

  dir.write("home.psk", "secret\n", 0604);
  r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("group or others"), std::string::npos) << r.error();
}

TEST(Config, PskFileMissingOrEmpty) {
  TempDir dir;
  const auto cfg = dir.write("mobiked.toml",
                             "[[connection]]\nname = \"home\"\nlocal_id = \"a\"\npsk_file = \"nope.psk\"\n");
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(":4: connection 'home': key 'psk_file': cannot open " + dir.file("nope.psk")),
            std::string::npos)
      << r.error();

  dir.write("nope.psk", "\n", 0600);
  r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("is empty"), std::string::npos) << r.error();
}

TEST(Config, MissingFileIsNamed) {
  auto r = load_config("/nonexistent/dir/mobiked.toml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("/nonexistent/dir/mobiked.toml"), std::string::npos);
}

TEST(Config, DirectoryIsNotAConfigFile) {
  TempDir dir;
  auto r = load_config(dir.path().string());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), dir.path().string() + ": is a directory");
}

TEST(Config, ErrorMessageFormatMatchesTheBrief) {
  TempDir dir;
  const auto cfg = dir.write("mobiked.toml",
                             "[[connection]]\nname = \"home\"\nlocal_id = \"a\"\npsk = \"x\"\n"
                             "ike_proposals = \"aes129-sha256-modp2048\"\n");
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), cfg + ":5: connection 'home': key 'ike_proposals': unknown algorithm 'aes129'");
}

TEST(Config, MetricsEndpoint) {
  TempDir dir;
  auto off = load_config(dir.write("off.toml", "[daemon]\n"));
  ASSERT_TRUE(off) << off.error();
  EXPECT_FALSE(off->daemon.metrics);  // absent: no endpoint
  auto v4 = load_config(dir.write("v4.toml", "[daemon]\nmetrics = \"127.0.0.1:9560\"\n"));
  ASSERT_TRUE(v4) << v4.error();
  EXPECT_EQ(v4->daemon.metrics, (Endpoint{addr("127.0.0.1"), 9560}));
  auto v6 = load_config(dir.write("v6.toml", "[daemon]\nmetrics = \"[::1]:9560\"\n"));
  ASSERT_TRUE(v6) << v6.error();
  EXPECT_EQ(v6->daemon.metrics, (Endpoint{addr("::1"), 9560}));
  for (const char* bad : {"\"127.0.0.1\"", "\"::1:9560\"", "\"localhost:9560\"", "\"127.0.0.1:0\"", "9560"}) {
    const auto cfg = dir.write("bad.toml", std::string("[daemon]\nsocket = \"/tmp/s\"\nmetrics = ") + bad + "\n");
    auto r = load_config(cfg);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().find(cfg + ":3: daemon: key 'metrics'"), std::string::npos) << r.error();
  }
}

TEST(Config, AllErrorsAreReportedOnePerLine) {
  TempDir dir;
  const auto cfg = dir.write("mobiked.toml",
                             "[daemon]\nike_port = 0\nlog_level = \"loud\"\n"
                             "[[connection]]\nname = \"c\"\nlocal_id = \"a\"\npsk = \"x\"\nmobike = 1\n");
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find(cfg + ":2: daemon: key 'ike_port'"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find(cfg + ":3: daemon: key 'log_level'"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find(cfg + ":8: connection 'c': key 'mobike'"), std::string::npos) << r.error();
  EXPECT_EQ(std::count(r.error().begin(), r.error().end(), '\n'), 2);
  // In file order, although toml++ hands out tables sorted by key ("connection" < "daemon").
  EXPECT_LT(r.error().find(cfg + ":2:"), r.error().find(cfg + ":8:"));
}

struct BadCase {
  const char* text;
  int line;
  const char* key;
  const char* fragment;  // part of the message
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.key << " @" << c.line << ": " << c.fragment; }

class ConfigError : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigError, NamesFileLineAndKey) {
  const auto& c = GetParam();
  TempDir dir;
  const auto cfg = dir.write("mobiked.toml", c.text);
  auto r = load_config(cfg);
  ASSERT_FALSE(r) << c.text;
  const std::string where = cfg + ":" + std::to_string(c.line) + ": ";
  EXPECT_EQ(r.error().rfind(where, 0), 0u) << r.error();
  EXPECT_NE(r.error().find("key '" + std::string(c.key) + "'"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find(c.fragment), std::string::npos) << r.error();
}

// kMinimalConnection is 4 lines; keys appended to it start at line 5.
#define CONN "[[connection]]\nname = \"c\"\nlocal_id = \"me.example.org\"\npsk = \"secret\"\n"

INSTANTIATE_TEST_SUITE_P(
    Bad, ConfigError,
    ::testing::Values(
        BadCase{"foo = 1\n", 1, "foo", "unknown key"},
        BadCase{"[daemon]\nike_prot = 500\n", 2, "ike_prot", "did you mean 'ike_port'"},
        BadCase{"daemon = 3\n", 1, "daemon", "expected a [daemon] table"},
        BadCase{"[daemon]\nike_port = \"500\"\n", 2, "ike_port", "expected an integer, got a string"},
        BadCase{"[daemon]\n\nnatt_port = 70000\n", 3, "natt_port", "must be in 1..65535"},
        BadCase{"[daemon]\nike_port = 4500\n", 2, "ike_port", "must differ from natt_port"},
        BadCase{"[daemon]\nnatt_port = 500\n", 2, "natt_port", "must differ from ike_port"},
        BadCase{"[daemon]\ntun_name = \"a/b\"\n", 2, "tun_name", "not a valid interface name"},
        BadCase{"[daemon]\nreplay_window = 1000\n", 2, "replay_window", "power of two"},
        BadCase{"[daemon]\nrouting_table = 254\n", 2, "routing_table", "main and local tables"},
        BadCase{"[daemon]\ninstall_routes = 1\n", 2, "install_routes", "expected true or false"},
        BadCase{"[daemon]\ntun_mtu = 100\n", 2, "tun_mtu", "576"},
        BadCase{"[daemon]\ndataplane = \"magic\"\n", 2, "dataplane",
                "unknown data plane 'magic' (expected \"userspace\", \"xfrm\" or \"none\")"},
        BadCase{"[daemon]\nlog_level = \"loud\"\n", 2, "log_level", "unknown level 'loud'"},
        BadCase{"[daemon]\nretransmit_timeout = 0\n", 2, "retransmit_timeout", "must be in"},
        BadCase{"[daemon]\nretransmit_timeout = \"2s\"\n", 2, "retransmit_timeout", "expected a number"},
        BadCase{"[daemon]\nretransmit_base = 0.5\n", 2, "retransmit_base", "must be in"},
        BadCase{"[daemon]\nretransmit_tries = -1\n", 2, "retransmit_tries", "must be in"},
        BadCase{"[daemon]\nhalf_open_threshold = 1.5\n", 2, "half_open_threshold", "expected an integer"},
        BadCase{"[daemon]\nhalf_open_timeout = 0\n", 2, "half_open_timeout", "longer than 0"},
        BadCase{"[daemon]\nkeepalive_interval = \"5y\"\n", 2, "keepalive_interval", "unknown unit 'y'"},
        BadCase{"[daemon]\nswitch_notify_type = 16400\n", 2, "switch_notify_type", "40960..65535"},
        BadCase{"[daemon]\nlisten = [\n  \"0.0.0.0\",\n  \"192.0.2.300\",\n]\n", 4, "listen",
                "'192.0.2.300' is not an IP address"},
        BadCase{"[daemon]\nlisten = [\"::\", \"::\"]\n", 2, "listen", "listed twice"},
        BadCase{"[daemon]\nlisten = []\n", 2, "listen", "at least one"},
        BadCase{"[daemon]\nlisten = [1]\n", 2, "listen", "expected a string in the array"},
        BadCase{"[daemon]\nsocket = \"/run/"
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxxxxxxxxxxxxxx.sock\"\n",
                2, "socket", "at most 107 bytes"},
        BadCase{"connection = 5\n", 1, "connection", "expected [[connection]] tables"},
        BadCase{"[connection]\nname = \"x\"\n", 1, "connection", "expected [[connection]] tables"},
        BadCase{CONN "ike_proposals = \"aes128gcm16-x25519\"\n", 5, "ike_proposals", "needs a prf"},
        BadCase{CONN "ike_proposals = [\"aes128gcm16-prfsha256-x25519\"]\n", 5, "ike_proposals",
                "expected a string"},
        BadCase{CONN "esp_proposals = \"aes128gcm16-sha256\"\n", 5, "esp_proposals", "must not be combined"},
        BadCase{CONN "esp_proposals = \"aes128gcm16-modp1024\"\n", 5, "esp_proposals",
                "unknown algorithm 'modp1024'"},
        BadCase{CONN "ike_proposal = \"aes128gcm16-prfsha256-x25519\"\n", 5, "ike_proposal",
                "did you mean 'ike_proposals'"},
        BadCase{CONN "dpd_delay = \"10x\"\n", 5, "dpd_delay", "unknown unit 'x'"},
        BadCase{CONN "dpd_delay = -5\n", 5, "dpd_delay", "must be 0.."},
        BadCase{CONN "dpd_delay = \"soon\"\n", 5, "dpd_delay", "is not a duration"},
        BadCase{CONN "dpd_delay = 1.5\n", 5, "dpd_delay", "expected a duration"},
        BadCase{CONN "rekey_time = \"99999999d\"\n", 5, "rekey_time", "too long"},
        BadCase{CONN "rekey_time = \"1h\"\nlifetime = \"30m\"\n", 6, "lifetime", "longer than rekey_time"},
        BadCase{CONN "mobike = \"yes\"\n", 5, "mobike", "expected true or false"},
        BadCase{CONN "encap = 1\n", 5, "encap", "expected true or false"},
        BadCase{CONN "nat_traversal = \"no\"\n", 5, "nat_traversal", "expected true or false"},
        BadCase{CONN "responder_switch = false\n", 5, "responder_switch", "renamed to 'switch'"},
        BadCase{CONN "switch_response_to = \"both\"\n", 5, "switch_response_to", "unknown choice 'both'"},
        BadCase{CONN "switch_allow = [\"gw.example.org\"]\n", 5, "switch_allow", "not an address or a prefix"},
        BadCase{CONN "switch_prefer = \"10.0.0.0/8\"\n", 5, "switch_prefer", "not an IP address"},
        BadCase{CONN "return_routability = \"sometimes\"\n", 5, "return_routability",
                "unknown policy 'sometimes'"},
        BadCase{"[daemon]\nmobike_path_timeout = \"5x\"\n", 2, "mobike_path_timeout", "unknown unit 'x'"},
        BadCase{CONN "start = \"later\"\n", 5, "start", "unknown action 'later'"},
        BadCase{CONN "start = \"initiate\"\nremote_addrs = \"%any\"\n", 5, "start",
                "\"initiate\" needs an address or a DNS name in remote_addrs"},
        BadCase{CONN "start = \"trap\"\nremote_addrs = \"%any\"\n", 5, "start",
                "\"trap\" needs an address in remote_addrs"},
        BadCase{CONN "start = \"initiate\"\nremote_addrs = \"192.0.2.0/24\"\n", 5, "start",
                "needs an address"},
        BadCase{CONN "auth = \"xauth\"\n", 5, "auth", "unsupported method 'xauth'"},
        BadCase{CONN "send_cert = \"sometimes\"\n", 5, "send_cert", "unknown value 'sometimes'"},
        BadCase{CONN "remote_addrs = [\"192.0.2.1\", \"vpn_1.example.org\"]\n", 5, "remote_addrs",
                "'vpn_1.example.org' is not an IP address, a prefix, a DNS name or %any"},
        BadCase{CONN "remote_addrs = \"-vpn.example.org\"\n", 5, "remote_addrs",
                "is not an IP address, a prefix, a DNS name"},
        BadCase{CONN "remote_addrs = \"vpn..example.org\"\n", 5, "remote_addrs",
                "is not an IP address, a prefix, a DNS name"},
        BadCase{CONN "remote_addrs = \"192.0.2.300\"\n", 5, "remote_addrs", "'192.0.2.300' is not an IP address"},
        // A label of 64 characters, on the array's second line.
        BadCase{CONN "remote_addrs = [\"vpn.example.org\",\n"
                     "  \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.org\"]\n",
                6, "remote_addrs", "is not an IP address, a prefix, a DNS name or %any"},
        BadCase{CONN "start = \"trap\"\nremote_addrs = \"vpn.example.org\"\n", 5, "start",
                "\"trap\" needs an address in remote_addrs"},
        BadCase{CONN "local_addrs = [\"%any\", \"192.0.2.1\"]\n", 5, "local_addrs", "cannot be combined"},
        BadCase{CONN "local_addrs = \"192.0.2.0/24\"\n", 5, "local_addrs", "not an IP address"},
        BadCase{CONN "remote_port = 0\n", 5, "remote_port", "must be in 1..65535"},
        BadCase{CONN "remote_id = \"keyid:0xnothex\"\n", 5, "remote_id", "not a valid identity"},
        BadCase{"[[connection]]\nname = \"c\"\npsk = \"x\"\nlocal_id = \"%any\"\n", 4, "local_id",
                "not %any"},
        BadCase{"[[connection]]\nname = \"c\"\npsk = \"x\"\n", 1, "local_id", "required"},
        BadCase{"[[connection]]\nname = \"c\"\nlocal_id = \"a\"\n", 1, "psk", "required"},
        BadCase{"[[connection]]\nname = \"c\"\nlocal_id = \"a\"\npsk = \"x\"\npsk_file = \"/x\"\n", 5,
                "psk_file", "mutually exclusive"},
        BadCase{"[[connection]]\nname = \"c\"\nlocal_id = \"a\"\npsk = \"0xzz\"\n", 4, "psk", "not valid hex"},
        BadCase{"[[connection]]\nname = \"c\"\nlocal_id = \"a\"\npsk = \"\"\n", 4, "psk", "must not be empty"},
        BadCase{"[[connection]]\nlocal_id = \"a\"\npsk = \"x\"\n", 1, "name", "required"},
        BadCase{"[[connection]]\nname = \"my conn\"\nlocal_id = \"a\"\npsk = \"x\"\n", 2, "name",
                "is not 1-64 letters"},
        BadCase{CONN CONN, 6, "name", "duplicate connection name 'c' (first defined at line 1)"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nlocal_ts = \"10.0.0.0/33\"\n", 7, "local_ts",
                "'10.0.0.0/33' is not a prefix"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nremote_ts = [\"dynamic\", \"10.0.0.0/8\"]\n", 7,
                "remote_ts", "dynamic cannot be combined"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nesp_proposal = \"aes256gcm16\"\n", 7,
                "esp_proposal", "did you mean 'esp_proposals'"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nesp_proposals = \"aes256gcm16-prfsha256\"\n", 7,
                "esp_proposals", "only valid in IKE proposals"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nrekey_time = \"1h\"\nlifetime = \"1h\"\n", 8,
                "lifetime", "longer than rekey_time"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nrekey_bytes = \"4T\"\n", 7, "rekey_bytes",
                "not a byte count"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nrekey_bytes = -1\n", 7, "rekey_bytes", "must be in"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nrekey_bytes = \"1G\"\nlife_bytes = \"1024M\"\n", 8,
                "life_bytes", "must be above rekey_bytes"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nrekey_packets = 10\nlife_packets = 5\n", 8,
                "life_packets", "must be above rekey_packets"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\nrekey_packets = \"10K\"\n", 7, "rekey_packets",
                "integer"},
        BadCase{CONN "[[connection.child]]\nlocal_ts = \"10.0.0.0/8\"\n", 5, "name", "required"},
        BadCase{CONN "[[connection.child]]\nname = \"k\"\n[[connection.child]]\nname = \"k\"\n", 8, "name",
                "duplicate child name 'k'"},
        BadCase{CONN "[connection.child]\nname = \"k\"\n", 5, "child", "expected [[connection.child]]"},
        BadCase{CONN "child = []\n", 5, "child", "at least one child"}));

TEST(Config, ChildErrorsCarryConnectionAndChildNames) {
  TempDir dir;
  const auto cfg = dir.write("mobiked.toml", std::string(kMinimalConnection) +
                                                 "[[connection.child]]\nname = \"net\"\nlocal_ts = 5\n");
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), cfg + ":7: connection 'c': child 'net': key 'local_ts': expected a string or an "
                             "array of strings, got an integer");
}

TEST(Config, FormerKeyNameNamesTheNewOne) {
  TempDir dir;
  const auto cfg = dir.write("mobiked.toml", std::string(kMinimalConnection) + "responder_switch = true\n");
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), cfg + ":5: connection 'c': key 'responder_switch': renamed to 'switch'");
}

TEST(Config, SyntaxErrorNamesFileAndLine) {
  TempDir dir;
  const auto cfg = dir.write("mobiked.toml", "[daemon]\nsocket = \"/run/x.sock\"\nike_port = = 5\n");
  auto r = load_config(cfg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().rfind(cfg + ":3: syntax error: ", 0), 0u) << r.error();
}

TEST(Config, ParseConfigNamesTheGivenSource) {
  auto r = parse_config("[daemon]\nbogus = true\n", "/etc/mobiked/mobiked.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "/etc/mobiked/mobiked.toml:2: daemon: key 'bogus': unknown key");
}

TEST(Duration, StrongSwanUnits) {
  EXPECT_EQ(parse_duration("30s").value(), 30s);
  EXPECT_EQ(parse_duration("10m").value(), 10min);
  EXPECT_EQ(parse_duration("4h").value(), 4h);
  EXPECT_EQ(parse_duration("1d").value(), 24h);
  EXPECT_EQ(parse_duration("3600").value(), 1h);
  EXPECT_EQ(parse_duration("0").value(), 0s);
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration("1.5h"));
  EXPECT_FALSE(parse_duration("10 m"));
  EXPECT_FALSE(parse_duration("99999999999999999999999s"));
}

}  // namespace
}  // namespace mobike::daemon
