// Protection of the SK payload (RFC 7296 §3.14): AES-CBC with HMAC-SHA2 integrity
// (RFC 3602, RFC 4868), AES-GCM-16 (RFC 5282) and ChaCha20-Poly1305 (RFC 7634).
// One SkCipher per direction, keys bound at creation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/transform_ids.h"
#include "crypto/random.h"

namespace mobike::crypto {

using ::mobike::EncrId;
using ::mobike::IntegId;

struct SkSuite {
  EncrId encr = EncrId::kAesGcm16;
  std::uint16_t key_bits = 128;  // 128 or 256 for AES; 256 for ChaCha20
  IntegId integ = IntegId::kNone;  // kNone exactly for the AEAD ciphers
};

bool is_aead(EncrId e);
// Key material octets the key derivation must produce for this suite
// (AES-GCM: key + 4-octet salt; ChaCha20-Poly1305: 32 + 4 salt; RFC 5282 §7.1, RFC 7634).
std::size_t encr_key_size(const SkSuite& s);
std::size_t integ_key_size(IntegId i);  // 32, 48, 64; 0 for kNone

class SkCipher {
 public:
  static Expected<std::unique_ptr<SkCipher>, std::string> create(const SkSuite& suite,
                                                                ByteView encr_key,
                                                                ByteView integ_key);
  virtual ~SkCipher() = default;

  // Size of the SK payload body (IV || ciphertext || ICV) for `plaintext_len` octets of
  // inner payloads, including padding and the Pad Length octet.
  virtual std::size_t sealed_size(std::size_t plaintext_len) const = 0;

  // `prefix` is everything before the SK body: IKE header + unprotected payloads + the
  // SK payload's 4-octet generic header, with final lengths already filled in. It is
  // the AAD for AEAD ciphers and the start of the ICV input for CBC+HMAC.
  // Returns the SK body, exactly sealed_size(plaintext.size()) octets.
  virtual Bytes seal(ByteView prefix, ByteView plaintext, Random& random) const = 0;

  // Verifies and decrypts an SK body; returns the inner payload octets with padding and
  // the Pad Length octet removed. Fails on a bad ICV or malformed padding/length.
  virtual Expected<Bytes, std::string> open(ByteView prefix, ByteView body) const = 0;

  // The keys it was created with (AEAD: key || salt; integrity: empty), for an SA that
  // moves to another node: the cipher is their only copy.
  virtual Bytes encr_key() const = 0;
  virtual Bytes integ_key() const = 0;
};

}  // namespace mobike::crypto
