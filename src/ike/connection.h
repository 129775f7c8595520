// What a configured connection asks of the engine: identities, credentials, proposals,
// traffic selectors and timers. Filled by the daemon's config loader (or by tests);
// the engine only reads it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "crypto/certificate.h"
#include "crypto/signature.h"
#include "wire/payloads.h"

namespace mobike::ike {

using Duration = std::chrono::milliseconds;

struct Identity {
  wire::IdType type = wire::IdType::kFqdn;
  Bytes data;  // as carried in the ID payload
  // "192.0.2.1" -> IPV4_ADDR, "2001:db8::1" -> IPV6_ADDR, "user@host" -> RFC822_ADDR,
  // "keyid:..." (hex after "keyid:0x" or text) -> KEY_ID, anything else -> FQDN.
  // "C=CH, O=Example, CN=gw" (or "/C=CH/O=...") -> DER_ASN1_DN.
  static std::optional<Identity> parse(const std::string& text);
  std::string to_string() const;
  // Whether the text holds a wildcard ('*' in an FQDN, RFC822 or DN value): such an
  // identity is a pattern for matching, never sent as our IDr wish.
  bool is_pattern() const;
  friend bool operator==(const Identity&, const Identity&) = default;
};

// `id` against a configured remote identity that may hold wildcards (swanctl's
// "*@example.org", "*.example.org", "C=CH, O=Example, CN=*"): FQDN and RFC822 compare as
// globs ignoring case, DNs attribute by attribute (crypto::dn_matches), others exactly.
bool identity_matches(const Identity& id, const Identity& pattern);

// How one side authenticates (swanctl's local.auth / remote.auth).
// kEapMschapv2, kEapTls: EAP in IKE_AUTH (RFC 7296 §2.16); the client authenticates by EAP, the
// gateway by its own class (usually a certificate).
enum class AuthClass : std::uint8_t { kPsk, kPubkey, kEapMschapv2, kEapTls };
inline bool is_eap(AuthClass c) { return c == AuthClass::kEapMschapv2 || c == AuthClass::kEapTls; }
// swanctl's words for it ("psk", "pubkey", "eap-mschapv2", "eap-tls"), one table both ways.
std::string_view to_string(AuthClass c);
std::optional<AuthClass> auth_class_from_string(std::string_view word);
enum class SendCert : std::uint8_t { kAlways, kIfAsked, kNever };

struct ChildConfig {
  std::string name;
  std::vector<IpPrefix> local_ts;   // empty = the local IKE address as a /32 or /128
  std::vector<IpPrefix> remote_ts;  // empty = the remote IKE address
  std::vector<wire::Proposal> esp_proposals;  // protocol ESP, SPI filled at use
  Duration rekey_time{std::chrono::hours(1)};  // soft lifetime; 0 = never rekey
  Duration lifetime{0};  // hard lifetime; 0 = rekey_time * 11 / 10
  // Volume limits per direction, enforced by the data plane; 0 = none. The hard ones
  // default to the soft ones + 10%.
  std::uint64_t rekey_bytes = 0, life_bytes = 0;
  std::uint64_t rekey_packets = 0, life_packets = 0;
};

enum class ReturnRoutability : std::uint8_t {
  kAlways,       // every update (the RFC's SHOULD)
  kUnannounced,  // only when the new address was not in the peer's address list
  kNever,
};

// kTrap: the data plane reports traffic for a child's selectors (Engine::acquire).
enum class StartAction : std::uint8_t { kNone, kInitiate, kTrap };
// "none", "initiate", "trap" (swanctl's start_action), one table both ways.
std::string_view to_string(StartAction a);
std::optional<StartAction> start_action_from_string(std::string_view word);

struct ConnectionConfig {
  std::string name;
  std::vector<IpAddress> local_addrs;  // empty = any
  std::vector<std::string> remote_addrs;  // addresses or "%any"
  std::uint16_t remote_port = 500;
  Identity local_id;
  std::optional<Identity> remote_id;  // nullopt = accept any
  Bytes psk;
  AuthClass local_auth = AuthClass::kPsk, remote_auth = AuthClass::kPsk;
  // Public-key authentication: our key and certificates (ours first, then intermediates
  // to send), the anchors and CRLs the peer's certificate must chain to.
  std::shared_ptr<const crypto::PrivateKey> private_key;
  std::vector<std::shared_ptr<const crypto::Certificate>> local_certs;
  std::shared_ptr<const crypto::TrustStore> trust;
  SendCert send_cert = SendCert::kIfAsked;
  bool send_certreq = true;
  bool rsa_pss = false;  // sign with RSA-PSS (RFC 7427) rather than PKCS#1 v1.5
  // EAP: the client's EAP identity (default: local_id's text); on the gateway, the
  // identity to authenticate (default: the client's IKE identity), "%any" to ask the
  // client with EAP-Identity. Passwords by EAP identity, from an eap_secrets file.
  std::optional<std::string> eap_id;
  std::shared_ptr<const std::map<std::string, std::string, std::less<>>> eap_secrets;
  // EAP-TLS with TLS 1.3 as before RFC 9190 (strongSwan 5.9.2 to 5.9.9): the MSK with
  // TLS 1.2's exporter label, no commitment message (eap::Tls13Scheme).
  bool eap_tls13_pre_rfc9190 = false;
  // Gateway: the address pools a client's CFG_REQUEST is answered from, in order.
  std::vector<std::string> pools;
  // Client: virtual IPs to ask for (0.0.0.0 / :: for any of that family); every
  // child's "dynamic" local selectors become the addresses assigned (dynamic_ts()).
  std::vector<IpAddress> vips;
  std::vector<wire::Proposal> ike_proposals;  // protocol IKE, no SPI
  std::vector<ChildConfig> children;
  Duration dpd_delay{std::chrono::seconds(30)};  // 0 = no liveness checks
  Duration rekey_time{std::chrono::hours(4)};   // IKE SA soft lifetime; 0 = never
  Duration lifetime{0};                          // IKE SA hard lifetime; 0 = rekey * 11/10
  bool mobike = true;
  bool encap_force = false;  // pretend a NAT (RFC 7296 §2.23 fake NAT-D)
  // false: no NAT detection; MOBIKE updates carry NO_NATS_ALLOWED (RFC 4555 §3.9).
  bool nat_traversal = true;
  // RFC 7383: announce IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT and fragment large
  // protected messages for a peer that announced it too.
  bool fragmentation = true;
  // MOBIKE responder: when to check that the initiator's new address really reaches it
  // (COOKIE2, RFC 4555 §3.7) before moving the Child SAs there.
  ReturnRoutability return_routability = ReturnRoutability::kAlways;
  // Responder-initiated switch (SWITCH_TO_IP_ADDRESS, docs/switch.md).
  // Initiator: announce support (the 0x52 octet in MOBIKE_SUPPORTED) and follow requests.
  bool switch_enabled = true;
  // Initiator: answer a switch request towards the new address (the first drafts), or
  // towards the request's source (the later drafts, RFC 7296 §2.11).
  bool switch_response_to_new = true;
  // Initiator: addresses a gateway may switch to besides those it announced.
  std::vector<IpPrefix> switch_allow;
  // Responder: where to switch SAs to when their address goes away, in order.
  std::vector<IpAddress> switch_prefer;
  StartAction start = StartAction::kNone;
  // RFC 6311 (IKEv2 message ID and IPsec replay counter synchronisation): claimed in
  // IKE_AUTH, so that a gateway cluster can fail our SAs over to another node. The
  // responder claims it only as a cluster member (EngineConfig::ha_sync_member).
  bool ha_sync = true;
};

// Address policy of a connection: remote_addrs entries are addresses, prefixes or
// "%any"; an empty list allows any.
bool remote_address_allowed(const ConnectionConfig& c, const IpAddress& address);
bool local_address_allowed(const ConnectionConfig& c, const IpAddress& address);

}  // namespace mobike::ike
