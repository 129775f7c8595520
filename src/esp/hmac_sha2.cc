// Before every include: the low-level SHA-2 functions are deprecated in OpenSSL 3.0 and
// -Werror would refuse them (see hmac_sha2.h for why they are used anyway).
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "esp/hmac_sha2.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace mobike::esp {

namespace {

constexpr std::size_t kMaxBlock = 128;  // SHA-384/512; SHA-256 has 64

std::size_t block_size(HmacSha2::Hash h) { return h == HmacSha2::Hash::kSha256 ? 64 : 128; }

}  // namespace

std::size_t HmacSha2::digest_size(Hash h) {
  switch (h) {
    case Hash::kSha256: return 32;
    case Hash::kSha384: return 48;
    case Hash::kSha512: return 64;
  }
  return 0;
}

HmacSha2::HmacSha2(Hash hash, ByteView key) : hash_(hash) {
  const std::size_t bs = block_size(hash);
  std::array<std::uint8_t, kMaxBlock> k{};
  if (key.size() > bs) {
    // RFC 2104: longer keys are hashed first (RFC 4868 keys never are, but a key of
    // any length must give the standard result).
    switch (hash) {
      case Hash::kSha256: SHA256(key.data(), key.size(), k.data()); break;
      case Hash::kSha384: SHA384(key.data(), key.size(), k.data()); break;
      case Hash::kSha512: SHA512(key.data(), key.size(), k.data()); break;
    }
  } else if (!key.empty()) {
    std::memcpy(k.data(), key.data(), key.size());
  }
  std::array<std::uint8_t, kMaxBlock> ipad, opad;
  for (std::size_t i = 0; i < bs; ++i) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  switch (hash) {
    case Hash::kSha256:
      SHA256_Init(&st_.s256.inner);
      SHA256_Update(&st_.s256.inner, ipad.data(), bs);
      SHA256_Init(&st_.s256.outer);
      SHA256_Update(&st_.s256.outer, opad.data(), bs);
      break;
    case Hash::kSha384:
      SHA384_Init(&st_.s512.inner);
      SHA384_Update(&st_.s512.inner, ipad.data(), bs);
      SHA384_Init(&st_.s512.outer);
      SHA384_Update(&st_.s512.outer, opad.data(), bs);
      break;
    case Hash::kSha512:
      SHA512_Init(&st_.s512.inner);
      SHA512_Update(&st_.s512.inner, ipad.data(), bs);
      SHA512_Init(&st_.s512.outer);
      SHA512_Update(&st_.s512.outer, opad.data(), bs);
      break;
  }
  OPENSSL_cleanse(k.data(), k.size());
  OPENSSL_cleanse(ipad.data(), ipad.size());
  OPENSSL_cleanse(opad.data(), opad.size());
}

HmacSha2::~HmacSha2() { OPENSSL_cleanse(&st_, sizeof st_); }

void HmacSha2::compute(ByteView a, ByteView b, std::span<std::uint8_t> out) const {
  std::uint8_t md[64];
  const std::size_t n = std::min(out.size(), digest_size(hash_));
  if (hash_ == Hash::kSha256) {
    SHA256_CTX c = st_.s256.inner;
    SHA256_Update(&c, a.data(), a.size());
    if (!b.empty()) SHA256_Update(&c, b.data(), b.size());
    SHA256_Final(md, &c);
    c = st_.s256.outer;
    SHA256_Update(&c, md, 32);
    SHA256_Final(md, &c);
  } else {
    // SHA-384 is SHA-512 with other initial values and a shorter output: the same
    // update function, and SHA384_Final only differs in how much it writes.
    const bool is384 = hash_ == Hash::kSha384;
    SHA512_CTX c = st_.s512.inner;
    SHA512_Update(&c, a.data(), a.size());
    if (!b.empty()) SHA512_Update(&c, b.data(), b.size());
    is384 ? SHA384_Final(md, &c) : SHA512_Final(md, &c);
    c = st_.s512.outer;
    SHA512_Update(&c, md, is384 ? 48 : 64);
    is384 ? SHA384_Final(md, &c) : SHA512_Final(md, &c);
  }
  // No cleansing of `c` and `md` per packet: after the final steps they hold only
  // states that have absorbed the message, from which neither key-equivalent pad
  // state can be recovered, and the truncated digest is sent anyway.
  std::memcpy(out.data(), md, n);
}

}  // namespace mobike::esp
