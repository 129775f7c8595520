#include "crypto/aead.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <climits>

#include "crypto/openssl_util.h"

namespace mobike::crypto {

namespace {

detail::CipherAlg cipher_alg(AeadAlg a) {
  switch (a) {
    case AeadAlg::kAes128Gcm: return detail::CipherAlg::kAes128Gcm;
    case AeadAlg::kAes256Gcm: return detail::CipherAlg::kAes256Gcm;
    case AeadAlg::kChaCha20Poly1305: return detail::CipherAlg::kChaCha20Poly1305;
  }
  detail::fatal("unknown AEAD");
}

bool fits_int(std::size_t n) { return n <= static_cast<std::size_t>(INT_MAX); }

}  // namespace

std::size_t Aead::key_size(AeadAlg alg) { return alg == AeadAlg::kAes128Gcm ? 16 : 32; }

Aead::Aead(AeadAlg alg, ByteView key) : alg_(alg) {
  std::copy(key.begin(), key.end(), key_.begin());
}

Aead::~Aead() { OPENSSL_cleanse(key_.data(), key_.size()); }

Expected<Aead, std::string> Aead::create(AeadAlg alg, ByteView key) {
  if (alg != AeadAlg::kAes128Gcm && alg != AeadAlg::kAes256Gcm &&
      alg != AeadAlg::kChaCha20Poly1305) {
    return unexpected(std::string("unknown AEAD algorithm"));
  }
  if (key.size() != key_size(alg)) {
    return unexpected("AEAD key has " + std::to_string(key.size()) + " octets, expected " +
                      std::to_string(key_size(alg)));
  }
  return Aead(alg, key);
}

bool Aead::seal(ByteView nonce, ByteView aad, ByteView plaintext,
                std::span<std::uint8_t> out) const {
  if (nonce.size() != kNonceSize || out.size() != plaintext.size() + kTagSize ||
      !fits_int(plaintext.size()) || !fits_int(aad.size())) {
    return false;
  }
  detail::CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) detail::fatal("EVP_CIPHER_CTX_new");
  int len = 0;
  // The default nonce length is 12 octets for both AES-GCM and ChaCha20-Poly1305.
  if (EVP_EncryptInit_ex2(ctx.get(), detail::cipher(cipher_alg(alg_)), key_.data(),
                          nonce.data(), nullptr) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) !=
           1) ||
      (!plaintext.empty() &&
       EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(),
                         static_cast<int>(plaintext.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + plaintext.size(), &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagSize),
                          out.data() + plaintext.size()) != 1) {
    detail::fatal("AEAD encrypt");
  }
  return true;
}

Bytes Aead::seal(ByteView nonce, ByteView aad, ByteView plaintext) const {
  Bytes out(plaintext.size() + kTagSize);
  if (!seal(nonce, aad, plaintext, out)) return {};
  return out;
}

bool Aead::open(ByteView nonce, ByteView aad, ByteView ct, std::span<std::uint8_t> out) const {
  if (nonce.size() != kNonceSize || ct.size() < kTagSize ||
      out.size() != ct.size() - kTagSize || !fits_int(ct.size()) || !fits_int(aad.size())) {
    return false;
  }
  const std::size_t n = ct.size() - kTagSize;
  // Copied first: OpenSSL takes the expected tag through a non-const pointer, and the
  // caller may decrypt in place over the input.
  std::uint8_t tag[kTagSize];
  std::copy(ct.begin() + static_cast<std::ptrdiff_t>(n), ct.end(), tag);
  detail::CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) detail::fatal("EVP_CIPHER_CTX_new");
  int len = 0;
  if (EVP_DecryptInit_ex2(ctx.get(), detail::cipher(cipher_alg(alg_)), key_.data(),
                          nonce.data(), nullptr) != 1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) !=
           1) ||
      (n != 0 && EVP_DecryptUpdate(ctx.get(), out.data(), &len, ct.data(),
                                   static_cast<int>(n)) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagSize), tag) !=
          1) {
    detail::fatal("AEAD decrypt");
  }
  // The tag comparison inside OpenSSL's final step is constant-time (CRYPTO_memcmp).
  std::uint8_t scratch[16];
  if (EVP_DecryptFinal_ex(ctx.get(), scratch, &len) != 1) {
    detail::clear_errors();
    OPENSSL_cleanse(out.data(), out.size());
    return false;
  }
  return true;
}

Expected<Bytes, std::string> Aead::open(ByteView nonce, ByteView aad, ByteView ct) const {
  if (nonce.size() != kNonceSize) return unexpected(std::string("AEAD nonce must be 12 octets"));
  if (ct.size() < kTagSize) return unexpected(std::string("AEAD input shorter than the tag"));
  Bytes out(ct.size() - kTagSize);
  if (!open(nonce, aad, ct, out)) return unexpected(std::string("AEAD authentication failed"));
  return out;
}

}  // namespace mobike::crypto
