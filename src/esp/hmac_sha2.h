// HMAC-SHA2 (RFC 2104 / RFC 4868) for ESP ICVs, keyed once per SA and then computed
// per packet without allocating.
//
// Why not EVP_MAC: in OpenSSL 3.0, EVP_MAC_init(ctx, NULL, 0, NULL) (reuse the key) and
// EVP_MD_CTX_copy_ex both duplicate the provider's digest context, i.e. two heap
// allocations per packet, and measured ~3x slower than this at 64 octets (see
// bench/esp_bench.cc, BM_Hmac*). Here the inner and outer digest states after absorbing
// the padded key are saved once, and each packet starts from plain struct copies of
// them. The SHA-2 compression itself is still OpenSSL's (SHA-NI/AVX2 code paths).
// The price: OpenSSL's low-level SHA-2 API is deprecated in 3.0 and bypasses providers
// (so no FIPS provider for ICVs); the .cc isolates that use.
//
// Only the chosen hash's pair of states is kept (a union): an SA holds one of these per
// direction, and a gateway holds many SAs.
#pragma once

#include <openssl/sha.h>

#include <cstdint>
#include <span>

#include "common/bytes.h"

namespace mobike::esp {

class HmacSha2 {
 public:
  enum class Hash : std::uint8_t { kSha256, kSha384, kSha512 };

  HmacSha2() = default;
  HmacSha2(Hash hash, ByteView key);
  HmacSha2(const HmacSha2&) = default;
  HmacSha2& operator=(const HmacSha2&) = default;
  ~HmacSha2();

  static std::size_t digest_size(Hash hash);  // 32, 48, 64
  Hash hash() const { return hash_; }

  // HMAC(key, a || b), truncated to out.size() octets (at most digest_size).
  void compute(ByteView a, ByteView b, std::span<std::uint8_t> out) const;

 private:
  // Both members are plain C structs, so the union copies as octets; hash_ says which
  // one is live.
  union States {
    struct {
      SHA256_CTX inner, outer;
    } s256;
    struct {
      SHA512_CTX inner, outer;  // SHA-384 too: the same state, other initial values
    } s512;
  };
  Hash hash_ = Hash::kSha256;
  States st_{};
};

}  // namespace mobike::esp
