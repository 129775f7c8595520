// The daemon's TOML configuration file: a [daemon] table, a [cluster] table when the node
// is one of a gateway cluster, and any number of [[connection]] tables, each with
// [[connection.child]] tables. Every key the loader
// does not know and every bad value is an error naming file:line and key, so a typo never
// silently falls back to a default.
//
// The keys, with an example value and a line of documentation each, are the tables in
// config_keys.cc; config_reference() renders them (`mobiked --config-reference`, and
// README.md's Configuration section, which a unit test keeps equal to it).
//
// A connection without [[connection.child]] gets one host-to-host child named after the
// connection. A relative psk_file or key_file is relative to the directory of the config
// file; the file must not be readable or writable by group or others.
#pragma once

#include <spdlog/common.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/switch_sender.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "ike/address_pool.h"
#include "ike/connection.h"

namespace mobike::daemon {

enum class DataplaneKind : std::uint8_t { kNone, kUserspace, kXfrm };

struct DaemonConfig {
  std::string socket = "/run/mobiked/mobiked.sock";
  std::vector<IpAddress> listen = {IpAddress::v4(0u), IpAddress::v6({})};
  std::uint16_t ike_port = 500;
  std::uint16_t natt_port = 4500;
  DataplaneKind dataplane = DataplaneKind::kNone;
  std::string tun_name = "mobike0";  // userspace data plane
  int tun_mtu = 1400;
  std::uint32_t replay_window = 1024;  // packets (RFC 4303 §3.4.3)
  // userspace: a Child SA direction that carried no packet for between this and twice
  // this frees its keyed cipher state (rebuilt from the key on its next packet); 0 keeps it.
  ike::Duration cipher_idle_release{std::chrono::seconds(30)};
  bool install_routes = true;          // xfrm: routes to remote selectors (strongSwan's install_routes)
  std::uint32_t routing_table = 220;   // xfrm: their table and its rule's priority (strongSwan's 220)
  spdlog::level::level_enum log_level = spdlog::level::info;
  std::size_t half_open_threshold = 1000;
  ike::Duration half_open_timeout{std::chrono::seconds(30)};
  ike::Duration retransmit_timeout{std::chrono::milliseconds(2000)};
  int retransmit_tries = 5;
  double retransmit_base = 1.8;
  ike::Duration keepalive_interval{std::chrono::seconds(20)};
  std::uint16_t switch_notify_type = 61440;
  std::chrono::milliseconds mobike_path_timeout{std::chrono::minutes(5)};
  std::size_t fragment_size = 1280;  // RFC 7383 (strongSwan's charon.fragment_size)
  // Where the Prometheus metrics endpoint listens (HTTP, GET /metrics); none: no endpoint.
  std::optional<Endpoint> metrics;
};

// How traffic for an SA's addresses reaches the node that took the SA over.
enum class ReturnTraffic : std::uint8_t { kNone, kProxyArp, kHook };

struct ClusterConfig {
  std::string node;                       // this node's name (required), valid_name() rules
  std::vector<IpAddress> addresses;       // this node's own public addresses (required, >= 1, no duplicates)
  std::vector<std::string> etcd;          // etcd endpoints (required, >= 1), normalized "http://host:port"
  std::array<std::uint8_t, 32> key{};     // from key_file (required)
  std::string key_file;                   // the resolved path, for messages
  std::string prefix = "/mobiked/";       // key prefix in etcd; must start and end with '/'
  std::chrono::seconds lease_ttl{10};     // 2s..300s (etcd's minimum TTL is a few seconds)
  std::uint32_t rebalance_tolerance = 0;  // 0: no automatic rebalancing; else SA-count difference that triggers it
  ReturnTraffic return_traffic = ReturnTraffic::kNone;
  std::string lan_interface;              // proxy_arp: the interface of the shared LAN (required with proxy_arp)
  std::string hook;                       // hook: the command run on every ownership change (required with hook)
  std::chrono::milliseconds move_timeout{std::chrono::seconds(60)};  // how long a move may take before it is reported failed
  // Which node sends a move's switch request: the node the SA leaves, from its own
  // address (needs nothing of the network), or the new node from the old node's address
  // (one etcd round trip less; the network must accept that source address from it).
  cluster::SwitchSender switch_sender = cluster::SwitchSender::kOldNode;
  // Announce the other nodes' addresses to clients (MOBIKE additional addresses), so that
  // a client follows a move there without a switch_allow of its own.
  bool announce_addresses = true;
  // Failover (docs/cluster.md): checkpoint every SA into its record and continue a dead
  // node's SAs on the survivors (RFC 6311; the combined switch where the client has it).
  bool failover = true;
  // How often changed SAs are checkpointed (established, rekeyed, moved and synchronised
  // SAs at once).
  std::chrono::milliseconds checkpoint_interval{std::chrono::seconds(10)};
};

struct Config {
  DaemonConfig daemon;
  // Set by a [cluster] table; without one the daemon runs alone.
  std::optional<ClusterConfig> cluster;
  std::vector<ike::ConnectionConfig> connections;
  std::vector<ike::PoolConfig> pools;  // [[pool]]: virtual IPs for clients
};

inline constexpr std::string_view kDefaultIkeProposals = "aes128gcm16-prfsha256-x25519";
inline constexpr std::string_view kDefaultEspProposals = "aes128gcm16";

// Reads and checks the file. On failure the error holds one line per problem found,
// each "FILE:LINE: [context: ]key 'KEY': what is wrong".
Expected<Config, std::string> load_config(const std::string& path);

// The same for text already in memory; `source_name` stands for the file in messages
// and its directory anchors relative psk_file and key_file paths.
Expected<Config, std::string> parse_config(std::string_view text, const std::string& source_name);

// Every key of every section as a commented TOML example ("key = value   # what it does"),
// itself a valid configuration (given the psk_file and key_file it names).
std::string config_reference();

// The same keys as the KEYS section of mobiked.toml(5), in man(7) roff: per section, each
// key with its TOML type, the reference's example value and its description.
std::string config_reference_roff();

// "30s", "10m", "4h", "1d", or a bare number of seconds ("3600").
Expected<ike::Duration, std::string> parse_duration(std::string_view text);

}  // namespace mobike::daemon
