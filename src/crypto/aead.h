// Raw AEAD primitive with a 12-octet nonce and a 16-octet tag: AES-GCM (128/256) and
// ChaCha20-Poly1305 (RFC 8439). The SK payload (sk_cipher.h) and userspace ESP
// (RFC 4106 / RFC 7634: nonce = 4-octet salt || 8-octet IV, AAD = SPI || sequence
// number) build on it; callers assemble nonce and AAD themselves.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "common/bytes.h"
#include "common/expected.h"

namespace mobike::crypto {

enum class AeadAlg : std::uint8_t { kAes128Gcm, kAes256Gcm, kChaCha20Poly1305 };

class Aead {
 public:
  static constexpr std::size_t kNonceSize = 12;
  static constexpr std::size_t kTagSize = 16;
  static std::size_t key_size(AeadAlg alg);  // 16, 32, 32 (no salt)

  static Expected<Aead, std::string> create(AeadAlg alg, ByteView key);

  Aead(const Aead&) = default;
  Aead& operator=(const Aead&) = default;
  ~Aead();

  AeadAlg alg() const { return alg_; }
  ByteView key() const { return ByteView(key_.data(), key_size(alg_)); }

  // Writes ciphertext || tag into `out`, which must be plaintext.size() + kTagSize
  // octets; `out` may begin at plaintext.data() (in-place). False on a wrong nonce or
  // output size. Safe to call concurrently: no state is kept between calls.
  [[nodiscard]] bool seal(ByteView nonce, ByteView aad, ByteView plaintext,
                          std::span<std::uint8_t> out) const;
  // As above into a new buffer; empty only for a wrong nonce size (a sealed empty
  // plaintext still has its tag).
  Bytes seal(ByteView nonce, ByteView aad, ByteView plaintext) const;

  // Verifies and decrypts ciphertext || tag into `out` (ciphertext size octets; may
  // alias the input). On failure `out` is zeroed and false is returned.
  [[nodiscard]] bool open(ByteView nonce, ByteView aad, ByteView ciphertext_and_tag,
                          std::span<std::uint8_t> out) const;
  Expected<Bytes, std::string> open(ByteView nonce, ByteView aad,
                                    ByteView ciphertext_and_tag) const;

 private:
  Aead(AeadAlg alg, ByteView key);

  AeadAlg alg_;
  std::array<std::uint8_t, 32> key_{};
};

}  // namespace mobike::crypto
