// Building and opening IKE messages of an IKE SA: header fields by role, the SK
// payload (RFC 7296 §3.14), NAT detection hashes (§2.23) and PSK AUTH octets (§2.15).
#pragma once

#include <cstdint>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "crypto/random.h"
#include "ike/ike_sa.h"
#include "wire/codec.h"

namespace mobike::ike {

// Plain (IKE_SA_INIT) or protected message from this SA, with flags set for our role.
Bytes build_message(const IkeSa& sa, wire::ExchangeType exchange, bool response,
                    std::uint32_t message_id, const std::vector<wire::Payload>& payloads,
                    crypto::Random& random);

// The message as the datagrams that carry it: one, or (RFC 7383) the SKF fragments of a
// protected message whose single datagram would exceed `fragment_limit` octets (0: never
// fragment; the caller knows whether both sides announced fragmentation).
std::vector<Bytes> build_datagrams(const IkeSa& sa, wire::ExchangeType exchange, bool response,
                                   std::uint32_t message_id, const std::vector<wire::Payload>& payloads,
                                   crypto::Random& random, std::size_t fragment_limit);
// The same from inner payloads already encoded (`first_inner`: the type of the first).
std::vector<Bytes> seal_datagrams(const IkeSa& sa, wire::ExchangeType exchange, bool response,
                                  std::uint32_t message_id, std::uint8_t first_inner, ByteView inner,
                                  crypto::Random& random, std::size_t fragment_limit);

// kIncomplete: an RFC 7383 fragment was taken (or dropped and counted); the message is
// not whole yet, and there is nothing to answer.
enum class OpenError : std::uint8_t { kMalformed, kIntegrity, kUnsupportedCritical, kNotProtected, kIncomplete };
struct OpenFailure {
  OpenError error = OpenError::kMalformed;
  std::uint8_t critical_type = 0;
};

// Verifies and decrypts a message of an established SA; returns its inner payloads.
Expected<std::vector<wire::Payload>, OpenFailure> open_message(const IkeSa& sa,
                                                               const wire::Message& message,
                                                               ByteView datagram);

Bytes nat_detection_hash(std::uint64_t spi_i, std::uint64_t spi_r, const Endpoint& ep);

// The ID payload body as AUTH signs it: type, three reserved octets, data.
Bytes id_payload_body(const Identity& id);
// What AUTH covers (§2.15): the side's IKE_SA_INIT message | the other side's nonce |
// prf(SK_p, ID'), for a signature or the PSK MAC alike.
Bytes signed_octets(const IkeSa& sa, bool initiator_side, const Identity& id);
// prf(prf(PSK, "Key Pad for IKEv2"), message | peer nonce | prf(SK_p, ID'))
// `initiator_side`: the AUTH of the IKE SA's initiator (else the responder's).
Bytes psk_auth_value(const IkeSa& sa, bool initiator_side, ByteView psk, const Identity& id);

}  // namespace mobike::ike
