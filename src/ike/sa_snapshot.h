// A live IKE SA with its Child SAs as a plain value: what another engine needs to
// continue it so that the peer cannot tell (gateway clusters move SAs between nodes;
// docs/cluster.md). Engine::export_sa() makes one, Engine::import_sa() continues one.
//
// Times are relative to the moment of export (node clocks differ); ids are node-local
// and not carried. Key material is in clear here: it must be sealed (cluster/sa_blob.h)
// before it leaves the process.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "ike/connection.h"
#include "ike/types.h"
#include "wire/payloads.h"

namespace mobike::ike {

struct ChildSaSnapshot {
  std::string config_name;  // the ChildConfig of the connection it was made from
  std::uint32_t spi_in = 0;   // ours
  std::uint32_t spi_out = 0;  // the peer's
  wire::Proposal proposal;
  std::vector<wire::TrafficSelector> local_ts;
  std::vector<wire::TrafficSelector> remote_ts;
  ChildSaKeys keys;
  Duration age{0};
  std::optional<Duration> rekey_in;   // nullopt: no rekey scheduled
  std::optional<Duration> expire_in;  // nullopt: no hard lifetime
  // Sequence numbers and replay window, from the data plane that held the SA (the
  // engine leaves it empty; Dataplane::esp_state fills it in). Without it the importing
  // node may not send on the SA: it cannot know which sequence numbers were used.
  std::optional<EspState> esp;
  friend bool operator==(const ChildSaSnapshot&, const ChildSaSnapshot&) = default;
};

struct IkeSaSnapshot {
  std::string connection;
  bool initiator = false;           // we sent the IKE_SA_INIT of this SA (after rekeys: of the rekey)
  bool original_initiator = false;  // of the first IKE SA (RFC 4555 roles)
  std::uint64_t spi_i = 0;
  std::uint64_t spi_r = 0;
  Endpoint local;
  Endpoint remote;
  bool nat_local = false;
  bool nat_remote = false;
  bool peer_mobike = false;
  bool peer_nat_d = false;
  bool peer_mid_sync = false;     // RFC 6311, as the peer claimed in IKE_AUTH
  bool peer_replay_sync = false;
  bool mid_sync = false;          // ... and claimed by both sides: usable
  bool replay_sync = false;
  bool peer_fragmentation = false;  // RFC 7383, as agreed in IKE_SA_INIT
  bool fragmentation = false;
  Bytes nat_d_dest_seen;
  std::optional<Identity> remote_id;
  std::string remote_eap_id;            // version 5: the identity proved by EAP
  std::vector<IpAddress> remote_vips;   // version 5: virtual IPs we assigned the peer

  wire::Proposal ike_proposal;
  // RFC 7296 §2.14 keys by their names there, not by direction: SK_ei/SK_ai protect what
  // the original initiator of this IKE SA sends.
  Bytes sk_d, sk_ai, sk_ar, sk_ei, sk_er;

  // Message IDs (§2.3) and the cached response to the peer's last request (§2.1).
  std::uint32_t next_request_mid = 0;
  std::uint32_t expected_peer_mid = 0;
  std::vector<Bytes> last_response;  // its datagrams: RFC 7383 fragments, or one
  Endpoint last_response_to;
  bool last_response_redirected = false;
  std::uint64_t last_request_hash = 0;

  Duration age{0};
  Duration since_inbound{0};
  std::optional<Duration> rekey_in;
  std::optional<Duration> expire_in;
  // The address-mobility extension's per-SA state (Mobility::export_state), opaque here.
  Bytes mobility;

  std::vector<ChildSaSnapshot> children;
  friend bool operator==(const IkeSaSnapshot&, const IkeSaSnapshot&) = default;
};

}  // namespace mobike::ike
