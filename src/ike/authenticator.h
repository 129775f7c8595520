// Authentication of IKE_AUTH, both roles: pre-shared keys (RFC 7296 §2.15) and public-key
// signatures with X.509 certificates (§3.6-§3.8, RFC 4754 ECDSA, RFC 7427 Digital
// Signature with SIGNATURE_HASH_ALGORITHMS), CERT and CERTREQ both ways.
#pragma once

#include <string>
#include <vector>

#include "common/expected.h"
#include "ike/connection.h"
#include "ike/ike_sa.h"
#include "wire/payloads.h"

namespace mobike::ike {

class Services;

// IKE_SA_INIT, both roles: SIGNATURE_HASH_ALGORITHMS when public keys are configured,
// and (the responder) CERTREQ naming every anchor a connection trusts.
void add_init_auth_payloads(Services& s, const ConnectionConfig* initiator_config, std::vector<wire::Payload>& out);
// Records what the peer's IKE_SA_INIT (or its IKE_AUTH request's CERTREQ) said.
void note_peer_auth_payloads(IkeSa& sa, const std::vector<wire::Payload>& payloads);

// Whether an AUTH method is of the class a connection expects of the peer.
bool auth_method_fits(AuthClass expected, wire::AuthMethod method);

// CERTREQ for our trust anchors (when the connection verifies certificates).
void add_certreq(const ConnectionConfig& c, std::vector<wire::Payload>& out);
// CERT payloads (as send_cert says) and our AUTH, as the IKE SA's initiator or
// responder. On failure (no key, a scheme the peer cannot verify) returns the reason.
Expected<bool, std::string> add_own_auth(const IkeSa& sa, const ConnectionConfig& c, bool initiator_side,
                                         std::vector<wire::Payload>& out);
// Checks the peer's AUTH, and for public keys its certificate chain and that the
// certificate names `peer_id`. The value says how, for the log.
Expected<std::string, std::string> verify_peer_auth(const IkeSa& sa, const ConnectionConfig& c, const Identity& peer_id,
                                             const std::vector<wire::Payload>& payloads);

// Whether a certificate names an identity: the subject DN, or a subjectAltName of the
// identity's kind.
bool identity_in_certificate(const Identity& id, const crypto::Certificate& cert);

// Our own credentials must fit together or every peer refuses us. These say why they do
// not, in words that follow the name of the setting at fault (the config loader's key,
// mobike-bench's option), or nothing when they do.
std::optional<std::string> key_not_of_certificate(const crypto::PrivateKey& key, const crypto::Certificate& cert);
// A DN identity naming the certificate's subject takes the certificate's own encoding of
// it, whatever string types its text gave: peers compare the ID with the certificate byte
// by byte.
std::optional<std::string> identity_not_in_certificate(Identity& id, const crypto::Certificate& cert);
std::optional<std::string> not_a_trust_anchor(const crypto::Certificate& cert);

}  // namespace mobike::ike
