// PRFs (HMAC-SHA2, RFC 4868) and prf+ (RFC 7296 §2.13), plus SHA-1 for NAT detection.
#pragma once

#include <cstdint>

#include "common/bytes.h"
#include "common/transform_ids.h"

namespace mobike::crypto {

using ::mobike::PrfId;

bool prf_supported(std::uint16_t id);

class Prf {
 public:
  explicit Prf(PrfId id) : id_(id) {}
  PrfId id() const { return id_; }
  // Output size, which is also the preferred key size (RFC 4868 §2.1.2): 32, 48, 64.
  std::size_t output_size() const;
  Bytes compute(ByteView key, ByteView data) const;
  // prf+ (RFC 7296 §2.13): T1 | T2 | ... truncated to `length` octets.
  // `length` must not exceed 255 * output_size().
  Bytes plus(ByteView key, ByteView seed, std::size_t length) const;

 private:
  PrfId id_;
};

// SHA-1 (NAT_DETECTION_*_IP, RFC 7296 §2.23). 20 octets.
Bytes sha1(ByteView data);

}  // namespace mobike::crypto
