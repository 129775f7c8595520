// The control protocol between mobikectl and mobiked: over a Unix stream socket, one
// compact JSON object per line in each direction, one response per request, in order.
//
// Requests ("command" plus the arguments of that command, nothing else):
//   {"command": "list-sas"}
//   {"command": "initiate",  "connection": "home"}
//   {"command": "terminate", "connection": "home"}      or  {"command": "terminate", "sa": 3}
//   {"command": "rekey",     "ike": 3}                  or  {"command": "rekey", "child": 7}
//   {"command": "stats"}
//   {"command": "reload"}
//   {"command": "update-addresses", "sa": 3}         or  {..., "local": "192.0.2.7"}
//   {"command": "list-addresses"}                     the host's usable local addresses
//   {"command": "list-pools"}                         virtual IP pools and their leases:
//       [{"name": "rw", "first": "10.3.0.1", "last": "10.3.0.254", "size": 254,
//         "online": 1, "offline": 1, "dns": [...], "split_dns": [...],
//         "leases": [{"address": "10.3.0.1", "identity": "...", "online": true}, ...]}, ...]
//   {"command": "switch", "to": "198.51.100.20", "sa": 3}   (or "connection": "c", or
//       "all": true; optional "rate": SAs started per second, 0 = all at once): the
//       responder asks the initiators to move to its address "to" (SWITCH_TO_IP_ADDRESS);
//       answered when every switch has ended:
//       {"switched": 2, "refused": 1, "failed": 0, "not_started": 1, "seconds": 0.012,
//        "sas": [{"sa": 3, "result": "switched", "detail": "..."}, ...]}
//       (on daemon shutdown: answered at once, switches in flight counted as failed)
//   {"command": "switch-cancel"}                      stops the running switch from
//       starting more SAs: {"cancelled": N} (those not started); the switch itself is
//       answered once the switches in flight have ended
//   {"command": "cluster-status"}                     this node, the cluster's nodes as
//       etcd lists them, etcd's reachability, moves in flight, counters
//   {"command": "cluster-move", "sa": 3, "to": "gw2"} hands IKE SA 3 to node gw2
//   {"command": "cluster-drain"}  (or "node": "gw1")  moves every SA of this node (or
//       asks node "node", through etcd, to drain itself) to the other active nodes
//   {"command": "cluster-rebalance"}                  moves this node's SAs beyond the
//       cluster's mean to the nodes below it
//       move, drain (of this node) and rebalance are answered when every move has ended:
//       {"moved": 2, "returned": 1, "failed": 0, "not_asked": 1, "seconds": 0.4,
//        "sas": [{"sa": 3, "to": "gw2", "result": "moved", "detail": "..."}, ...]}
//       ("not_asked": SAs whose client cannot follow a switch, left where they are)
// Progress (every command may carry it; only the bulk ones -- switch, cluster-move,
// cluster-drain of this node, cluster-rebalance -- ever send any):
//   {"command": ..., "progress": true}   asks for interim lines before the response:
//   {"progress": {"done": 40, "failed": 2, "remaining": 60, "in_flight": 8, "seconds": 1.5}}
//       done: SAs whose outcome is known (any outcome); failed: those of them that did not
//       end as asked (refused, failed, not started, returned); remaining: not ended yet
//       (in_flight of them started); seconds: since the job started. Sent as SAs finish,
//       at most about 10 a second, at least one a second while the job runs (so that a
//       client can time out on silence), and one when it ends; then the response as
//       usual. Without "progress" (or with false) nothing but the response is sent.
// Responses:
//   {"ok": true,  "result": <value>}      list-sas: an array of IKE SAs (below);
//                                        stats: an object of counters (may nest);
//                                        list-addresses: [{"addr": "10.1.0.2", "prefix": 24,
//                                          "interface": "eth0", "deprecated": false,
//                                          "on_loopback": false}, ...]
//                                        others: whatever the daemon reports, or null
//   {"ok": false, "error": "message"}
//
// An IKE SA in list-sas:
//   {"id": 1, "name": "home", "state": "ESTABLISHED", "initiator": true,
//    "local": {"addr": "192.0.2.1", "port": 4500}, "remote": {"addr": "...", "port": 4500},
//    "local_id": "client.example.org", "remote_id": "vpn.example.org",
//    "spi_i": "0123456789abcdef", "spi_r": "fedcba9876543210",      (16 hex digits)
//    "nat_local": true, "nat_remote": false,
//    "mobike": true, "peer_addresses": ["198.51.100.20"],  (MOBIKE: the peer's additional
//    "path_probing": false, "rr_pending": false, "moves": 0,  addresses, path state, moves)
//    "switch": true, "switching_to": "198.51.100.20",  (the initiator announced
//                                        SWITCH_TO_IP_ADDRESS support; a switch in flight)
//    "owner": "gw1", "moving_to": "gw2",  (in a cluster: the node that runs the SA, and
//                                        the node it is being handed to)
//    "ha_sync": ["message_id", "replay_counter"],  (RFC 6311 capabilities the peer
//                                        claimed; omitted when none)
//    "ike_proposal": "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519",
//    "established_seconds": 3600,
//    "children": [{"id": 2, "name": "net", "state": "INSTALLED",
//                  "spi_in": "c0ffee01", "spi_out": "c0ffee02",     (8 hex digits)
//                  "local_ts": ["10.1.0.0/16"], "remote_ts": ["10.2.0.0/16"],
//                  "esp_proposal": "AES_GCM_16-128"}]}
// "local_id", "remote_id", the child "id" and the MOBIKE fields are optional when reading
// (older daemons);
// every other field is required.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/expected.h"
#include "common/ip_address.h"

namespace mobike::control {

using json = nlohmann::json;

inline constexpr std::string_view kDefaultSocketPath = "/run/mobiked/mobiked.sock";
// Longest request line the daemon accepts (responses may be longer: list-sas grows
// with the number of SAs).
inline constexpr std::size_t kMaxRequestLine = 64 * 1024;

enum class Command : std::uint8_t {
  kListSas,
  kInitiate,
  kTerminate,
  kRekey,
  kStats,
  kReload,
  kUpdateAddresses,
  kListAddresses,
  kSwitch,
  kSwitchCancel,
  kClusterStatus,
  kClusterMove,
  kClusterDrain,
  kClusterRebalance,
  kListPools,
  kListConns
};
std::string_view command_name(Command c);  // "list-sas", ...
std::optional<Command> command_from_name(std::string_view name);
// Every command's name, in the order of the protocol's table (mobikectl.8 lists them all).
std::vector<std::string_view> command_names();

struct ListSasRequest {
  friend bool operator==(const ListSasRequest&, const ListSasRequest&) = default;
};
struct InitiateRequest {
  std::string connection;
  friend bool operator==(const InitiateRequest&, const InitiateRequest&) = default;
};
struct TerminateRequest {  // exactly one of the two
  std::optional<std::string> connection;
  std::optional<std::uint64_t> sa;
  friend bool operator==(const TerminateRequest&, const TerminateRequest&) = default;
};
struct RekeyRequest {
  enum class Kind : std::uint8_t { kIke, kChild };
  Kind kind = Kind::kIke;
  std::uint64_t id = 0;
  friend bool operator==(const RekeyRequest&, const RekeyRequest&) = default;
};
struct StatsRequest {
  friend bool operator==(const StatsRequest&, const StatsRequest&) = default;
};
struct ReloadRequest {
  friend bool operator==(const ReloadRequest&, const ReloadRequest&) = default;
};
// MOBIKE: move IKE SA `sa` to local address `local` (default: the kernel's source
// address towards the peer now).
struct UpdateAddressesRequest {
  std::uint64_t sa = 0;
  std::optional<std::string> local;
  friend bool operator==(const UpdateAddressesRequest&, const UpdateAddressesRequest&) = default;
};
struct ListAddressesRequest {
  friend bool operator==(const ListAddressesRequest&, const ListAddressesRequest&) = default;
};
struct ListPoolsRequest {
  friend bool operator==(const ListPoolsRequest&, const ListPoolsRequest&) = default;
};
// The loaded connections as configured (swanctl --list-conns).
struct ListConnsRequest {
  friend bool operator==(const ListConnsRequest&, const ListConnsRequest&) = default;
};
// Responder-initiated switch of IKE SAs (exactly one of sa / connection / all).
struct SwitchRequest {
  std::string to;
  std::optional<std::uint64_t> sa;
  std::optional<std::string> connection;
  bool all = false;
  double rate = 0;  // SAs per second; 0 = all at once
  friend bool operator==(const SwitchRequest&, const SwitchRequest&) = default;
};
// Cancels the running switch: SAs not started yet are not started; the switch request
// is answered once the switches in flight have ended.
struct SwitchCancelRequest {
  friend bool operator==(const SwitchCancelRequest&, const SwitchCancelRequest&) = default;
};
struct ClusterStatusRequest {
  friend bool operator==(const ClusterStatusRequest&, const ClusterStatusRequest&) = default;
};
struct ClusterMoveRequest {
  std::uint64_t sa = 0;
  std::string to;  // a node name
  friend bool operator==(const ClusterMoveRequest&, const ClusterMoveRequest&) = default;
};
struct ClusterDrainRequest {
  std::optional<std::string> node;  // nullopt: this node
  friend bool operator==(const ClusterDrainRequest&, const ClusterDrainRequest&) = default;
};
struct ClusterRebalanceRequest {
  friend bool operator==(const ClusterRebalanceRequest&, const ClusterRebalanceRequest&) = default;
};
using Request = std::variant<ListSasRequest, InitiateRequest, TerminateRequest, RekeyRequest,
                             StatsRequest, ReloadRequest, UpdateAddressesRequest, ListAddressesRequest,
                             SwitchRequest, SwitchCancelRequest, ClusterStatusRequest, ClusterMoveRequest,
                             ClusterDrainRequest, ClusterRebalanceRequest, ListPoolsRequest,
                             ListConnsRequest>;

Command command_of(const Request& r);
// `progress`: ask for interim progress lines ("progress": true).
json request_to_json(const Request& r, bool progress = false);
// Checks the command name, that the arguments are present with the right types, and that
// no unknown argument is given; the error is meant to be sent back as is. "progress" is
// accepted on every command and must be a boolean.
Expected<Request, std::string> request_from_json(const json& j);
// Whether a request object asks for progress lines ("progress": true exactly); the
// control server reads it before any handler, so it does not validate (request_from_json does).
bool wants_progress(const json& request);

// One interim line of a bulk command (see "Progress" above).
struct Progress {
  std::uint64_t done = 0;
  std::uint64_t failed = 0;  // of done
  std::uint64_t remaining = 0;
  std::uint64_t in_flight = 0;  // of remaining
  double seconds = 0;
  std::uint64_t total() const { return done + remaining; }
  friend bool operator==(const Progress&, const Progress&) = default;
};
// {"progress": {...}}
json progress_line(const Progress& p);
// Whether a line from the daemon is a progress line (an object with a "progress" key)
// rather than the response.
bool is_progress_line(const json& j);
// Strict: the line is exactly {"progress": {...}} with every field above, of its type
// (counts: unsigned integers; seconds: a non-negative number), failed <= done,
// in_flight <= remaining, and nothing else.
Expected<Progress, std::string> progress_from_json(const json& j);

struct Response {
  bool ok = false;
  json result;        // when ok
  std::string error;  // when !ok
};
json ok_response(json result = nullptr);
json error_response(std::string_view message);
Expected<Response, std::string> response_from_json(const json& j);

// One line of the protocol: compact JSON and '\n'. Bytes that are not UTF-8 (peer
// identities, say) are replaced rather than making serialisation throw.
std::string to_line(const json& j);
// Parses one line (with or without its '\n'); never throws.
Expected<json, std::string> from_line(std::string_view line);

struct ChildSaInfo {
  std::uint64_t id = 0;
  std::string name;
  std::string state;
  std::uint32_t spi_in = 0;
  std::uint32_t spi_out = 0;
  std::vector<std::string> local_ts;
  std::vector<std::string> remote_ts;
  std::string esp_proposal;
  // Data-plane counters (present when a data plane carries the SA): inner octets and
  // packets, and dropped packets by reason ("auth", "replay", "policy", ...).
  std::optional<std::uint64_t> bytes_in, bytes_out, packets_in, packets_out;
  std::map<std::string, std::uint64_t> drops;
  friend bool operator==(const ChildSaInfo&, const ChildSaInfo&) = default;
};

struct IkeSaInfo {
  std::uint64_t id = 0;
  std::string name;
  std::string state;
  bool initiator = false;
  Endpoint local;
  Endpoint remote;
  std::string local_id;
  std::string remote_id;
  std::string remote_eap_id;  // the identity the peer proved by EAP, if it did
  std::uint64_t spi_i = 0;
  std::uint64_t spi_r = 0;
  bool nat_local = false;
  bool nat_remote = false;
  std::string ike_proposal;
  std::uint64_t established_seconds = 0;
  std::vector<ChildSaInfo> children;
  bool mobike = false;  // both peers negotiated MOBIKE
  std::vector<std::string> ha_sync;  // RFC 6311: "message_id", "replay_counter" as the peer claimed
  std::vector<std::string> peer_addresses;
  bool path_probing = false;
  bool rr_pending = false;
  std::uint64_t moves = 0;
  bool peer_switch = false;
  std::string switching_to;  // empty: no switch in flight
  std::string owner;         // cluster node running the SA; empty outside a cluster
  std::string moving_to;     // cluster node it is being handed to; empty: none
  friend bool operator==(const IkeSaInfo&, const IkeSaInfo&) = default;
};

// nlohmann's ADL hooks; from_json throws (nlohmann::json::exception or
// std::invalid_argument) on a bad shape: prefer the Expected wrappers below.
void to_json(json& j, const ChildSaInfo& c);
void from_json(const json& j, ChildSaInfo& c);
void to_json(json& j, const IkeSaInfo& s);
void from_json(const json& j, IkeSaInfo& s);

Expected<std::vector<IkeSaInfo>, std::string> sa_list_from_json(const json& j);

// Human output for mobikectl, in the manner of swanctl --list-sas:
//   home: #1, ESTABLISHED, IKEv2, 0123456789abcdef_i* fedcba9876543210_r
//     local  'client.example.org' @ 192.0.2.1[4500] behind NAT
//     remote 'vpn.example.org' @ 198.51.100.1[4500]
//     AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519
//     established 3600s ago
//     net: #2, INSTALLED, ESP:AES_GCM_16-128
//       in  c0ffee01
//       out c0ffee02
//       local  10.1.0.0/16
//       remote 10.2.0.0/16
// '*' marks our own SPI, as swanctl does.
std::string format_sa_list(const std::vector<IkeSaInfo>& sas);
// The switch result: one line per SA, then the totals.
std::string format_switch_result(const json& result);
// The result of cluster-move / -drain / -rebalance: one line per SA, then the totals.
std::string format_cluster_moves(const json& result);
// cluster-status for humans.
std::string format_cluster_status(const json& status);
// One line per address: "10.1.0.2/24 eth0", " deprecated" when so.
std::string format_address_list(const json& addresses);
// "key: value" lines, nested objects flattened to "a.b", keys sorted and aligned.
std::string format_stats(const json& stats);
// list-pools, as swanctl --list-pools --leases shows them.
std::string format_pool_list(const json& pools);
std::string format_conn_list(const json& conns);

}  // namespace mobike::control
