// The engine's inputs and outputs besides raw datagrams: time, data-plane operations,
// events for logs and the control socket, counters.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/histogram.h"
#include "common/ip_address.h"
#include "wire/payloads.h"

namespace mobike::ike {

// The engine never reads a clock: every input carries `now`. Simulations start at
// TimePoint{} and advance virtually.
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::milliseconds;

// One address of the host, as the daemon's address monitor reports it.
struct HostAddress {
  IpAddress address;
  // On a loopback device: a routed or anycast service address (reaches peers only
  // when a connection names it), or an address that reaches no peer at all.
  bool on_loopback = false;
  friend auto operator<=>(const HostAddress&, const HostAddress&) = default;
  friend bool operator==(const HostAddress&, const HostAddress&) = default;
};

struct OutDatagram {
  enum class Kind : std::uint8_t { kIke, kNatKeepalive };
  Kind kind = Kind::kIke;
  // Explicit source: the daemon must send from exactly this address and port (the
  // responder-initiated switch sends from an address the host may no longer own).
  Endpoint local;
  Endpoint remote;
  // The IKE message (no non-ESP marker: the daemon adds it on the NAT-T port), or the
  // single 0xFF octet of a NAT keepalive (RFC 3948 §2.3).
  Bytes data;
};

// Keys and parameters of one direction-pair of an ESP SA, for the data plane.
struct ChildSaKeys {
  std::uint16_t encr_id = 0;
  std::uint16_t encr_key_bits = 0;
  std::uint16_t integ_id = 0;
  bool esn = false;
  Bytes encr_in, integ_in, encr_out, integ_out;
  friend bool operator==(const ChildSaKeys&, const ChildSaKeys&) = default;
};

// What only the data plane knows of a Child SA and another node needs to continue it
// (cluster moves): sequence numbers, the replay window and the traffic counted.
struct EspState {
  std::uint64_t out_seq = 0;      // the last outbound sequence number used
  std::uint64_t out_iv_mask = 0;  // AEAD: IV = sequence number XOR mask; stays with the key
  std::uint64_t in_top = 0;       // the highest authenticated inbound sequence number
  // Bit k (word k / 64, bit k % 64): `in_top - k` was received.
  std::vector<std::uint64_t> in_received;
  std::uint64_t bytes_in = 0, bytes_out = 0, packets_in = 0, packets_out = 0;
  friend bool operator==(const EspState&, const EspState&) = default;
};

// Limits a data plane enforces on each direction of a Child SA (0: none): past a soft
// one it reports the SA for a rekey, past a hard one it stops using it and reports it
// for deletion (Engine::on_child_expire). Seconds count from the install.
struct ChildLimits {
  std::uint64_t soft_bytes = 0, hard_bytes = 0;
  std::uint64_t soft_packets = 0, hard_packets = 0;
  std::uint64_t soft_seconds = 0, hard_seconds = 0;
  friend bool operator==(const ChildLimits&, const ChildLimits&) = default;
};

// Why a data plane reports a Child SA: a limit of ChildLimits, or (soft only) its
// outbound sequence numbers running out (RFC 4303 §3.3.3).
enum class ExpireCause : std::uint8_t { kBytes, kPackets, kTime, kSequence };
std::string_view to_string(ExpireCause c);

struct DataplaneOp {
  enum class Kind : std::uint8_t {
    kInstall,         // a new Child SA: both directions and its policies
    kDelete,          // remove both directions and policies
    kUpdateAddresses,  // outer addresses / encapsulation changed (MOBIKE)
    kActivateOutbound,  // a rekeyed Child SA installed receive-only may now send
    kSuspendOutbound,   // send nothing more on this SA (it is about to move to another node)
    kAdvanceOutbound,   // skip `advance` outbound sequence numbers (RFC 6311 §7, the peer asked)
  };
  Kind kind = Kind::kInstall;
  std::uint64_t ike_sa_id = 0;
  std::uint64_t child_sa_id = 0;
  std::uint32_t spi_in = 0;
  std::uint32_t spi_out = 0;
  Endpoint local;
  Endpoint remote;
  bool udp_encap = false;
  std::vector<wire::TrafficSelector> local_ts;
  std::vector<wire::TrafficSelector> remote_ts;
  ChildSaKeys keys;  // only for kInstall
  ChildLimits limits;  // only for kInstall
  // kInstall: send nothing on this SA before kActivateOutbound (the responder of a
  // rekey, until the initiator has deleted the SA it replaces).
  bool outbound_deferred = false;
  // kInstall of a Child SA that another node held: continue its sequence numbers and
  // replay window (sending strictly after out_seq).
  std::optional<EspState> resume;
  std::uint64_t advance = 0;  // kAdvanceOutbound
  // kInstall: virtual IPs the gateway assigned us (among local_ts), to put on the host
  // before the routes that use them as source.
  std::vector<IpAddress> virtual_ips;
};

enum class EventKind : std::uint8_t {
  kIkeEstablished,
  kIkeRekeyed,
  kIkeDeleted,
  kIkeFailed,
  kChildEstablished,
  kChildRekeyed,
  kChildDeleted,
  kChildFailed,
  kAddressesUpdated,      // MOBIKE: the IKE SA and its Child SAs moved (detail: the new path)
  kAddressUpdateRefused,  // MOBIKE: the peer refused our update (detail: its error notify)
  kSwitchSucceeded,  // responder-initiated switch (SWITCH_TO_IP_ADDRESS) completed
  kSwitchRefused,    // ... refused: by the initiator (responder's event), or by us (initiator's)
  kSwitchFailed,     // ... not answered, no update came, or the initiator went elsewhere
  // Cluster moves: the peer of an exported SA answered here the request the new owner
  // sent with our next Message ID, and stays with this node — the answer carried an
  // error, or the peer sent its next request here after it (detail: which).
  kHandoffAnswered,
  // RFC 6311: the IKE SA's Message IDs were synchronised after a cluster failover
  // (detail: the new values), as the peer or as the member that took the SA over.
  kMidSynced,
  // MOBIKE initiator: a round of path probing got no answer on any path to the peer's
  // known addresses (detail: how many). Probing goes on; addresses learnt elsewhere
  // (the daemon looks the peer's name up again) join it (mobility::add_peer_addresses).
  kNoPath,
};

struct Event {
  EventKind kind = EventKind::kIkeEstablished;
  std::uint64_t ike_sa_id = 0;
  std::uint64_t child_sa_id = 0;
  std::string connection;
  std::string detail;
  std::uint64_t replaces = 0;  // kIkeRekeyed: the IKE SA this one replaces
  // kIkeFailed: our IKE_SA_INIT got no answer after every retransmission (the peer's
  // address may be wrong or dead; another of its addresses may answer).
  bool unanswered = false;
};

enum class LogLevel : std::uint8_t { kTrace, kDebug, kInfo, kWarn, kError };

struct EngineConfig {
  std::uint16_t ike_port = 500;
  std::uint16_t natt_port = 4500;
  Duration retransmit_timeout{2000};
  double retransmit_base = 1.8;
  int retransmit_tries = 5;
  std::size_t half_open_threshold = 1000;  // cookies above this many half-open SAs
  Duration half_open_timeout{30000};
  Duration keepalive_interval{20000};
  std::uint16_t switch_notify_type = 61440;
  // A member of a gateway cluster: as the responder, claim the RFC 6311 capabilities
  // the initiator claims (a node that fails over can then synchronise its SAs).
  bool ha_sync_member = false;
  // RFC 7427 signature authentication announced in IKE_SA_INIT (strongSwan's
  // charon.signature_authentication); without it, the classic AUTH methods.
  bool signature_authentication = true;
  // RFC 7383: the largest IP packet an IKE message may fill (strongSwan's
  // charon.fragment_size). A protected message that would not fit leaves as fragments
  // when both sides announced fragmentation; the IP/UDP headers and the non-ESP marker
  // of the path are subtracted (§2.5.1). 1280 is IPv6's minimum MTU.
  std::size_t fragment_size = 1280;
};

// The exchanges as the metrics tell them apart (index of Stats::exchanges); an
// unknown exchange type cannot occur (the parser refuses it): kExchangeKinds of them.
inline constexpr std::size_t kExchangeKinds = 4;
inline std::size_t exchange_index(wire::ExchangeType t) {
  auto i = static_cast<std::size_t>(t) - static_cast<std::size_t>(wire::ExchangeType::kIkeSaInit);
  return i < kExchangeKinds ? i : kExchangeKinds - 1;
}
inline constexpr std::array<const char*, kExchangeKinds> kExchangeNames = {"IKE_SA_INIT", "IKE_AUTH",
                                                                           "CREATE_CHILD_SA", "INFORMATIONAL"};

// How a move (UPDATE_SA_ADDRESSES we sent) or a switch (SWITCH_TO_IP_ADDRESS we asked
// for) ended: index of Stats::moves and Stats::switches.
enum class MobilityOutcome : std::uint8_t { kSucceeded, kRefused, kFailed };
inline constexpr std::size_t kMobilityOutcomes = 3;
inline constexpr std::array<const char*, kMobilityOutcomes> kMobilityOutcomeNames = {"succeeded", "refused", "failed"};

// Counters for `mobikectl stats` and the metrics endpoint. Every dropped datagram is
// counted under one reason.
struct Stats {
  // Per exchange kind (exchange_index): requests we sent (not their retransmissions);
  // the peer's requests we answered (not retransmissions answered from the cache); our
  // requests given up unanswered; and answers that ended the IKE SA (the task failed).
  struct Exchanges {
    std::uint64_t initiated = 0;
    std::uint64_t responded = 0;
    std::uint64_t unanswered = 0;
    std::uint64_t failed = 0;
  };
  std::array<Exchanges, kExchangeKinds> exchanges{};
  // Moves this side asked for (MOBIKE updates as the original initiator: from queuing
  // the update to its answer, refusal or abandonment) and switches this side asked for
  // (the responder's SWITCH_TO_IP_ADDRESS: from its start to the initiator's update at
  // the new address, a refusal or failure), by MobilityOutcome, with their durations as
  // the engine's clock measured them.
  std::array<LatencyHistogram, kMobilityOutcomes> moves{};
  std::array<LatencyHistogram, kMobilityOutcomes> switches{};
  // Responder: the peer's updates that moved an SA (at once, or after the return-
  // routability check).
  std::uint64_t moves_followed = 0;
  std::uint64_t datagrams_in = 0;
  std::uint64_t datagrams_out = 0;
  std::uint64_t dropped_malformed = 0;
  std::uint64_t dropped_unknown_spi = 0;
  std::uint64_t dropped_bad_message_id = 0;
  std::uint64_t dropped_integrity = 0;
  std::uint64_t dropped_unexpected = 0;
  std::uint64_t retransmits_sent = 0;
  std::uint64_t retransmits_answered = 0;
  std::uint64_t cookies_sent = 0;
  std::uint64_t ike_established = 0;
  std::uint64_t ike_failed = 0;
  std::uint64_t child_established = 0;
  // Reports of the data plane (Engine::on_child_expire) that started a rekey or a
  // delete; those for a Child SA already being rekeyed or deleted are not counted.
  std::uint64_t child_soft_expired = 0;
  std::uint64_t child_hard_expired = 0;
  std::uint64_t half_open_expired = 0;
  // Cluster moves: IKE SAs handed to another node / taken over from one, and datagrams
  // for an SA already handed over (its new owner answers them).
  std::uint64_t ike_exported = 0;
  std::uint64_t ike_imported = 0;
  std::uint64_t dropped_handed_over = 0;
  // RFC 6311: synchronisation requests answered (the peer side), synchronisations we
  // completed after taking SAs over (the member side), and synchronisation messages
  // dropped: stale, replayed, malformed, not negotiated, or a response whose nonce did
  // not match.
  std::uint64_t mid_syncs_answered = 0;
  std::uint64_t mid_syncs_completed = 0;
  std::uint64_t dropped_sync = 0;
  std::uint64_t esp_mappings_followed = 0;  // on_esp_mapping() moved the SA
  std::uint64_t esp_mappings_ignored = 0;   // ... was told of an SA that does not follow ESP
  // Engine::acquire: traffic for a trapped child started an IKE SA or a Child SA, or found
  // one under way.
  std::uint64_t acquires_initiated = 0;
  std::uint64_t acquires_under_way = 0;
  // RFC 7383: SKF datagrams we sent (retransmissions included), authentic fragments
  // the peer sent that were kept, messages put back together from them, and fragments
  // dropped though authentic: duplicates, stale (fewer Total Fragments), beyond the
  // reassembly bounds, of an answered request other than fragment 1, or unusable.
  // A fragment failing its ICV counts as dropped_integrity.
  std::uint64_t fragments_sent = 0;
  std::uint64_t fragments_received = 0;
  std::uint64_t reassembled = 0;
  std::uint64_t dropped_fragment = 0;
};

}  // namespace mobike::ike
