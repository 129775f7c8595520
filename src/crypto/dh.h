// Key exchange (RFC 7296 §3.4): MODP 2048/3072 (RFC 3526), ECP 256/384 (RFC 5903),
// Curve25519 (RFC 8031), through OpenSSL 3.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/transform_ids.h"

namespace mobike::crypto {

// IANA Transform Type 4 numbers (kNone is no group to compute with).
using DhGroupId = ::mobike::DhGroup;

bool dh_group_supported(std::uint16_t group);
// Octets of the KE payload's data for this group (256, 384, 64, 96, 32).
std::size_t dh_public_size(DhGroupId group);

class KeyExchange {
 public:
  // Generates a fresh private key.
  static Expected<std::unique_ptr<KeyExchange>, std::string> create(DhGroupId group);
  // Test hook: a fixed private key (Curve25519: 32 octets; MODP: the exponent;
  // ECP: the scalar), for known-answer tests.
  static Expected<std::unique_ptr<KeyExchange>, std::string> create_with_private(DhGroupId group,
                                                                                ByteView priv);
  virtual ~KeyExchange() = default;

  virtual DhGroupId group() const = 0;
  // Our public value in the KE payload encoding (MODP: big-endian, zero-padded to the
  // prime size; ECP: x || y, each padded; Curve25519: the 32-octet u-coordinate).
  virtual const Bytes& public_value() const = 0;
  // g^ir from the peer's KE data. Rejects wrong sizes and invalid points/values.
  virtual Expected<Bytes, std::string> shared_secret(ByteView peer_public) const = 0;
};

}  // namespace mobike::crypto
