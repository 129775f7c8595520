// The state of one IKE SA and its Child SAs. Coarse states plus orthogonal conditions
// (NAT here/there, original initiator, ...), as strongSwan keeps them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "crypto/dh.h"
#include "crypto/prf.h"
#include "crypto/sk_cipher.h"
#include "ike/connection.h"
#include "ike/response_cache.h"
#include "ike/types.h"
#include "wire/payloads.h"

namespace mobike::ike {

class Task;
struct MobilityState;
struct Reassembly;
struct EapSession;

enum class IkeState : std::uint8_t {
  kConnecting,   // IKE_SA_INIT / IKE_AUTH in progress
  kEstablished,
  kRekeying,
  kDeleting,
  kDead,         // to be reaped
};
std::string_view to_string(IkeState s);

enum class ChildState : std::uint8_t { kCreating, kInstalled, kRekeying, kDeleting };
std::string_view to_string(ChildState s);

struct ChildSa {
  std::uint64_t id = 0;
  std::string name;
  ChildState state = ChildState::kCreating;
  std::uint32_t spi_in = 0;   // chosen by us
  std::uint32_t spi_out = 0;  // chosen by the peer
  wire::Proposal proposal;    // the selected ESP proposal
  std::vector<wire::TrafficSelector> local_ts;
  std::vector<wire::TrafficSelector> remote_ts;
  ChildSaKeys keys;
  TimePoint established{};
  TimePoint rekey_at = TimePoint::max();
  TimePoint expire_at = TimePoint::max();
  std::uint64_t rekeyed_to = 0;  // after a rekey: the replacing Child SA
  // Set when the peer rekeyed this Child SA while our own rekey of it was in flight:
  // the lower of that exchange's nonces decides which new SA is redundant (§2.8.1).
  std::uint64_t peer_rekeyed_to = 0;
  Bytes peer_rekey_min_nonce;
  const ChildConfig* config = nullptr;
  bool outbound_deferred = false;  // see DataplaneOp::outbound_deferred
  // Imported from another node and not yet confirmed as ours (Engine::confirm_import):
  // installed receive-only, so that the node the SA came from may still take it back.
  bool outbound_held = false;
  // The data plane reported a soft limit and a rekey was queued: its other SA, or
  // packets racing the report, report again (Engine::on_child_expire).
  bool soft_expired = false;
};

// Everything the IKE SA needs for the SK payload once keys exist.
struct IkeCrypto {
  std::unique_ptr<crypto::Prf> prf;
  std::unique_ptr<crypto::SkCipher> out;  // protects what we send
  std::unique_ptr<crypto::SkCipher> in;   // verifies what we receive
  Bytes sk_d;  // SK_pi and SK_pr are in IkeSaSetup: only IKE_AUTH uses them
  // SK_ai, SK_ar, SK_ei, SK_er live only in `out` and `in` (their encr_key() and
  // integ_key() give them back to Engine::export_sa).
};

// Builds `crypto` for an IKE SA from its negotiated proposal and SK_* keys (the
// §2.14 names; `initiator`: we are the initiator of this IKE SA). False if the proposal
// names an unsupported PRF or cipher or the keys do not fit it.
bool set_ike_keys(IkeCrypto& crypto, const wire::Proposal& proposal, bool initiator, Bytes sk_d, Bytes sk_ai,
                  Bytes sk_ar, Bytes sk_ei, Bytes sk_er);

// Wipes and frees what only IKE_AUTH uses (IkeSaSetup): the IKE_SA_INIT messages, the
// nonces and SK_pi/SK_pr. An established or rekeyed IKE SA needs none of them; later
// exchanges bring their own nonces.
struct IkeSa;
void forget_auth_material(IkeSa& sa);

// A hash of a whole request that is the same on every node (the cached response is
// only for a bit-identical retransmission, RFC 7296 §2.1, also after a cluster move).
std::uint64_t request_hash(ByteView request);

// Cluster moves (Engine::quiesce, export_sa): kQuiesced starts no new exchange of ours
// (liveness checks and rekeys wait, commands are refused) but finishes those in flight
// and answers the peer; kExported answers and sends nothing: another node continues it.
enum class Handoff : std::uint8_t { kNone, kQuiesced, kExported };

// What only IKE_SA_INIT and IKE_AUTH (or an IKE SA rekey) use: AUTH covers the
// IKE_SA_INIT messages, the other end's nonce and the identity under SK_pi/SK_pr
// (RFC 7296 §2.15), and the first Child SA's keys come from the nonces. Out of line,
// and freed once IKE_AUTH is done (forget_auth_material), wiped.
struct IkeSaSetup {
  Bytes init_request;  // the IKE_SA_INIT request as sent/received
  Bytes init_response;
  Bytes nonce_i, nonce_r;
  std::unique_ptr<crypto::KeyExchange> dh;
  Bytes sk_pi, sk_pr;

  IkeSaSetup() = default;
  IkeSaSetup(const IkeSaSetup&) = delete;
  IkeSaSetup& operator=(const IkeSaSetup&) = delete;
  ~IkeSaSetup();
};

// The parts of an IKE SA that few SAs ever use, out of line: a gateway holds an IkeSa
// per client, so every octet inline is paid once per client (and most of these are
// client-side or exceptional).
struct IkeSaExtras {
  // Engine::acquire: when traffic last asked for a child (by name) of this SA, so that
  // the data plane's repeated reports do not queue one CREATE_CHILD_SA each.
  std::map<std::string, TimePoint> acquired;
  // What the gateway assigned to us (RFC 7296 §3.15): virtual IPs, DNS servers and
  // split-DNS domains.
  std::vector<IpAddress> local_vips;
  std::vector<IpAddress> dns_servers;
  std::vector<std::string> dns_domains;
  // The peer side of RFC 6311 §5.1: the highest M1 a synchronisation request carried
  // (a request with one no higher is stale or replayed), and the answer to the last
  // one, for its bit-identical retransmissions.
  bool sync_seen = false;
  std::uint32_t sync_highest_m1 = 0;
  std::uint64_t sync_request_hash = 0;
  Bytes sync_response;
  Endpoint sync_response_to;
  Bytes cookie;  // from the responder, echoed in our retried IKE_SA_INIT
  // The lower nonce of the peer's rekey of this SA that raced ours (§2.8.2).
  Bytes peer_rekey_min_nonce;
};

struct IkeSa {
  std::uint64_t id = 0;
  const ConnectionConfig* config = nullptr;  // owned by the engine; may be replaced on reload
  std::string connection_name;

  IkeState state = IkeState::kConnecting;
  bool initiator = false;           // we sent the IKE_SA_INIT of this SA
  bool original_initiator = false;  // of the first IKE SA of the chain (RFC 4555 roles)
  std::uint64_t spi_i = 0;
  std::uint64_t spi_r = 0;
  std::uint64_t local_spi() const { return initiator ? spi_i : spi_r; }

  Endpoint local;
  Endpoint remote;
  bool nat_local = false;   // we are behind a NAT
  bool nat_remote = false;  // the peer is behind a NAT
  bool peer_mobike = false;
  bool peer_nat_d = false;  // the peer sent NAT detection payloads
  // Authentication: the RFC 7427 hashes the peer announced (bit 1 << HashAlgorithm),
  // and whether it sent CERTREQ (send_cert = "ifasked").
  std::uint8_t peer_sig_hashes = 0;
  bool certreq_received = false;
  // Virtual IPs we assigned to the peer from our pools (RFC 7296 §3.15); those the
  // gateway assigned to us are in extras().
  std::vector<IpAddress> remote_vips;
  // The identity the peer proved by EAP (gateway), when it authenticated that way.
  std::string remote_eap_id;
  // The gateway's EAP conversation while IKE_AUTH runs (ike/ike_auth.h).
  std::unique_ptr<EapSession> eap;
  // RFC 7383 in IKE_SA_INIT: the peer announced IKEV2_FRAGMENTATION_SUPPORTED, and both
  // did (only then do our large protected messages leave as SKF fragments).
  bool peer_fragmentation = false;
  bool fragmentation = false;
  // RFC 6311 in IKE_AUTH (IKEV2_MESSAGE_ID_SYNC_SUPPORTED,
  // IPSEC_REPLAY_COUNTER_SYNC_SUPPORTED): what the peer claimed, and what both claimed
  // (only those may be used: what a cluster can do for this SA when its node fails).
  bool peer_mid_sync = false;
  bool peer_replay_sync = false;
  bool mid_sync = false;
  bool replay_sync = false;
  // The peer's last NAT_DETECTION_DESTINATION_IP: the hash of our address as it saw it
  // (RFC 4555 §3.8 compares it to notice a NAT mapping change).
  Bytes nat_d_dest_seen;

  wire::Proposal ike_proposal;
  IkeCrypto crypto;
  std::optional<Identity> remote_id;

  // IKE_SA_INIT material kept until IKE_AUTH completes (AUTH signs it); see setup().
  std::unique_ptr<IkeSaSetup> setup_;

  // Message IDs (RFC 7296 §2.3, window size 1).
  std::uint32_t next_request_mid = 0;   // ours
  std::uint32_t expected_peer_mid = 0;  // the peer's next request
  // For a retransmitted request (RFC 7296 §2.1).
  ResponseCache last_response;
  Endpoint last_response_to;
  // The response went elsewhere than to the request's source (a switch request answered
  // towards the new address): retransmissions are answered there too.
  bool last_response_redirected = false;
  // Of the request last answered: a retransmission is bit-identical (RFC 7296 §2.1), so
  // anything else with its Message ID is not answered from the cache.
  std::uint64_t last_request_hash = 0;

  // Our outstanding request.
  std::unique_ptr<Task> active;
  // Rarely more than two entries; a vector, unlike a deque, costs nothing while empty.
  std::vector<std::unique_ptr<Task>> queue;
  std::uint32_t active_mid = 0;
  std::vector<Bytes> active_request;  // its datagrams (RFC 7383 fragments, or one)
  int retransmits = 0;
  TimePoint retransmit_at = TimePoint::max();
  TimePoint active_sent{};  // when the outstanding request was first sent

  std::vector<ChildSa> children;

  // RFC 7383: the peer's fragmented request (of expected_peer_mid) and response (to
  // active_mid) being put together; null while none is under way.
  std::unique_ptr<Reassembly> reassembly_request;
  std::unique_ptr<Reassembly> reassembly_response;

  // IKE SA rekey (RFC 7296 §2.18, collisions §2.8.2).
  std::uint64_t rekeyed_to = 0;       // the IKE SA that replaced this one
  std::uint64_t peer_rekeyed_to = 0;  // the peer's replacement made while ours was in flight

  TimePoint created{};
  TimePoint established_at{};
  TimePoint last_inbound{};
  TimePoint dpd_at = TimePoint::max();
  TimePoint keepalive_at = TimePoint::max();
  TimePoint rekey_at = TimePoint::max();
  TimePoint expire_at = TimePoint::max();  // half-open timeout or hard lifetime
  TimePoint mobility_at = TimePoint::max();  // Mobility::on_timer
  TimePoint scheduled_at = TimePoint::max();  // the engine's timer queue entry
  std::unique_ptr<MobilityState> mobility_state;  // owned by the Mobility extension
  bool half_open = false;  // counted against the responder's cookie threshold
  bool doomed = false;     // handed to the engine's reaper
  Handoff handoff = Handoff::kNone;
  bool handoff_answered = false;  // exported: a response to next_request_mid arrived here
  bool handoff_reported = false;  // ... and kHandoffAnswered went out
  // Exported, and sending one request on the new owner's behalf (Engine::relay): its
  // answer is processed here, everything else stays handed over.
  bool relaying = false;
  // The outstanding request was sent by the node the SA came from (Engine::adopt_request):
  // there is nothing to retransmit here, only an answer to wait for.
  bool active_adopted = false;
  Endpoint init_remote;    // responder: where the IKE_SA_INIT came from (its index key)
  std::unique_ptr<IkeSaExtras> extras_;

  // Allocated by the first use, until forget_auth_material(); the const form reads an
  // empty one when there is none.
  IkeSaSetup& setup();
  const IkeSaSetup& setup() const;
  // What few SAs use, read without allocating; edit_extras() allocates on first use.
  const IkeSaExtras& extras() const;
  IkeSaExtras& edit_extras();

  ChildSa* find_child_by_inbound(std::uint32_t spi);
  ChildSa* find_child_by_outbound(std::uint32_t spi);
  ChildSa* find_child(std::uint64_t id);

  IkeSa();
  ~IkeSa();
  IkeSa(const IkeSa&) = delete;
  IkeSa& operator=(const IkeSa&) = delete;
};

}  // namespace mobike::ike
