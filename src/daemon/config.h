// The daemon's TOML configuration file: a [daemon] table and any number of
// [[connection]] tables, each with [[connection.child]] tables. Every key the loader
// does not know and every bad value is an error naming file:line and key, so a typo never
// silently falls back to a default.
//
//   [daemon]
//   socket = "/run/mobiked.sock"       # control socket
//   listen = ["0.0.0.0", "::"]         # addresses to bind IKE sockets to
//   ike_port = 500
//   natt_port = 4500
//   dataplane = "none"                 # none | userspace | xfrm
//   log_level = "info"                 # trace | debug | info | warn | error
//   half_open_threshold = 1000         # half-open IKE SAs before cookies are demanded
//   half_open_timeout = "30s"
//   retransmit_timeout = 2.0           # seconds, first retransmission
//   retransmit_tries = 5
//   retransmit_base = 1.8              # back-off factor
//   keepalive_interval = "20s"         # NAT keepalives
//   switch_notify_type = 61440         # SWITCH_TO_IP_ADDRESS notify (private range)
//   mobike_path_timeout = "5m"         # MOBIKE: how long an SA without a working path is
//                                      #   kept (initiator probing, responder retransmitting)
//
//   [[connection]]
//   name = "home"                      # required, unique
//   local_addrs = ["192.0.2.1"]        # string or array; default any
//   remote_addrs = ["198.51.100.1"]    # addresses, prefixes or "%any"; default any
//   remote_port = 500
//   local_id = "client.example.org"    # default: the single local_addrs entry
//   remote_id = "%any"                 # default: accept any
//   auth = "psk"                       # only PSK so far
//   psk = "secret"                     # or "0x..." hex; or psk_file = "home.psk"
//   ike_proposals = "aes128gcm16-prfsha256-x25519"
//   esp_proposals = "aes128gcm16"      # default for the children
//   dpd_delay = "30s"                  # durations: "30s", "10m", "4h", "1d", or seconds
//   rekey_time = "4h"
//   lifetime = 0                       # 0 = rekey_time * 11/10
//   mobike = true
//   encap = false                      # force UDP encapsulation (fake NAT-D)
//   nat_traversal = true               # false: no NAT detection; MOBIKE sends NO_NATS_ALLOWED
//   return_routability = "always"      # MOBIKE responder: always | unannounced | never
//   switch = true                      # initiator: announce and follow SWITCH_TO_IP_ADDRESS
//   switch_response_to = "new"         # initiator: answer a switch request towards the new
//                                      #   address (first drafts) or "old" (later drafts)
//   switch_allow = ["198.51.100.0/24"] # initiator: switch targets allowed besides those the
//                                      #   gateway announced
//   switch_prefer = ["198.51.100.20"]  # responder: where SAs go when their address vanishes
//   start = "none"                     # none | initiate
//
//   [[connection.child]]
//   name = "net"                       # required, unique within the connection
//   local_ts = ["10.1.0.0/16"]         # prefixes (string or array); "dynamic" or
//   remote_ts = "10.2.0.0/16"          #   omitted = the IKE address
//   esp_proposals = "aes256gcm16-x25519"
//   rekey_time = "1h"
//   lifetime = 0
//
// A connection without [[connection.child]] gets one host-to-host child named after the
// connection. A relative psk_file is relative to the directory of the config file; the
// file must not be readable or writable by group or others.
#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/expected.h"
#include "common/ip_address.h"
#include "ike/connection.h"

namespace mobike::daemon {

enum class DataplaneKind : std::uint8_t { kNone, kUserspace, kXfrm };

struct DaemonConfig {
  std::string socket = "/run/mobiked.sock";
  std::vector<IpAddress> listen = {IpAddress::v4(0u), IpAddress::v6({})};
  std::uint16_t ike_port = 500;
  std::uint16_t natt_port = 4500;
  DataplaneKind dataplane = DataplaneKind::kNone;
  std::string tun_name = "mobike0";  // userspace data plane
  int tun_mtu = 1400;
  std::uint32_t replay_window = 1024;  // packets (RFC 4303 §3.4.3)
  spdlog::level::level_enum log_level = spdlog::level::info;
  std::size_t half_open_threshold = 1000;
  ike::Duration half_open_timeout{std::chrono::seconds(30)};
  ike::Duration retransmit_timeout{std::chrono::milliseconds(2000)};
  int retransmit_tries = 5;
  double retransmit_base = 1.8;
  ike::Duration keepalive_interval{std::chrono::seconds(20)};
  std::uint16_t switch_notify_type = 61440;
  std::chrono::milliseconds mobike_path_timeout{std::chrono::minutes(5)};
};

struct Config {
  DaemonConfig daemon;
  std::vector<ike::ConnectionConfig> connections;
};

inline constexpr std::string_view kDefaultIkeProposals = "aes128gcm16-prfsha256-x25519";
inline constexpr std::string_view kDefaultEspProposals = "aes128gcm16";

// Reads and checks the file. On failure the error holds one line per problem found,
// each "FILE:LINE: [context: ]key 'KEY': what is wrong".
Expected<Config, std::string> load_config(const std::string& path);

// The same for text already in memory; `source_name` stands for the file in messages
// and its directory anchors relative psk_file paths.
Expected<Config, std::string> parse_config(std::string_view text, const std::string& source_name);

// "30s", "10m", "4h", "1d", or a bare number of seconds ("3600").
Expected<ike::Duration, std::string> parse_duration(std::string_view text);

}  // namespace mobike::daemon
