// Internal to src/crypto: RAII owners for OpenSSL objects and the shared HMAC helper.
// Not part of the module's contract; other layers use the public headers.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

#include "common/bytes.h"

namespace mobike::crypto::detail {

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};

using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX_free>>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, Deleter<EVP_MAC_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_clear_free>>;
using BnCtxPtr = std::unique_ptr<BN_CTX, Deleter<BN_CTX_free>>;
using EcGroupPtr = std::unique_ptr<EC_GROUP, Deleter<EC_GROUP_free>>;
using EcPointPtr = std::unique_ptr<EC_POINT, Deleter<EC_POINT_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;

// Drains OpenSSL's per-thread error queue into one message. Every failure path calls
// this (or clear_errors) so that a peer's bad input cannot leave stale entries behind
// that a later, unrelated call would then report.
std::string openssl_error(const char* what);
void clear_errors();

// For failures that only allocation exhaustion or a broken OpenSSL installation can
// cause; continuing with an unset key or MAC would be worse than stopping.
[[noreturn]] void fatal(const char* what);

// Fetched once: an implicit fetch on every operation costs a locked method-store lookup.
enum class CipherAlg { kAes128Cbc, kAes256Cbc, kAes128Gcm, kAes256Gcm, kChaCha20Poly1305 };
EVP_MAC* hmac_method();
const EVP_CIPHER* cipher(CipherAlg alg);

// Full-length HMAC over the concatenation of `parts`; `out` must be the digest size.
void hmac(const char* digest, ByteView key, std::initializer_list<ByteView> parts,
          std::span<std::uint8_t> out);

}  // namespace mobike::crypto::detail
