// IKEv2 transform IDs (IANA registry "Internet Key Exchange Version 2 (IKEv2)
// Parameters", Transform Types 1 to 5), defined once for every layer that names an
// algorithm: the codec (wire), the key derivation and SK ciphers (crypto), the
// userspace ESP (esp) and the kernel's XFRM (platform).
#pragma once

#include <cstdint>

namespace mobike {

enum class EncrId : std::uint16_t {  // Type 1
  kAesCbc = 12,
  kAesGcm16 = 20,
  kChaCha20Poly1305 = 28,
};
enum class PrfId : std::uint16_t {  // Type 2
  kHmacSha256 = 5,
  kHmacSha384 = 6,
  kHmacSha512 = 7,
};
enum class IntegId : std::uint16_t {  // Type 3
  kNone = 0,
  kHmacSha256_128 = 12,
  kHmacSha384_192 = 13,
  kHmacSha512_256 = 14,
};
enum class DhGroup : std::uint16_t {  // Type 4
  kNone = 0,
  kModp2048 = 14,
  kModp3072 = 15,
  kEcp256 = 19,
  kEcp384 = 20,
  kCurve25519 = 31,
};
enum class EsnId : std::uint16_t {  // Type 5
  kNoEsn = 0,
  kEsn = 1,
};

// The number on the wire, for the places that carry IDs as plain integers.
template <class E>
constexpr std::uint16_t transform_number(E id) {
  return static_cast<std::uint16_t>(id);
}

}  // namespace mobike
