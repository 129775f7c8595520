#include "crypto/openssl_util.h"

#include <openssl/err.h>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace mobike::crypto::detail {

std::string openssl_error(const char* what) {
  std::string msg = what;
  unsigned long code = 0;
  bool first = true;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    msg += first ? ": " : "; ";
    msg += buf;
    first = false;
  }
  return msg;
}

void clear_errors() { ERR_clear_error(); }

void fatal(const char* what) {
  std::string msg = openssl_error(what);
  std::fprintf(stderr, "mobike crypto: fatal: %s\n", msg.c_str());
  std::abort();
}

EVP_MAC* hmac_method() {
  static EVP_MAC* const mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (m == nullptr) fatal("EVP_MAC_fetch(HMAC)");
    return m;
  }();
  return mac;
}

const EVP_CIPHER* cipher(CipherAlg alg) {
  static const std::array<EVP_CIPHER*, 5> table = [] {
    static constexpr const char* kNames[] = {"AES-128-CBC", "AES-256-CBC", "AES-128-GCM",
                                             "AES-256-GCM", "ChaCha20-Poly1305"};
    std::array<EVP_CIPHER*, 5> t{};
    for (std::size_t i = 0; i < t.size(); ++i) {
      t[i] = EVP_CIPHER_fetch(nullptr, kNames[i], nullptr);
      if (t[i] == nullptr) fatal(kNames[i]);
    }
    return t;
  }();
  return table[static_cast<std::size_t>(alg)];
}

void hmac(const char* digest, ByteView key, std::initializer_list<ByteView> parts,
          std::span<std::uint8_t> out) {
  MacCtxPtr ctx(EVP_MAC_CTX_new(hmac_method()));
  if (!ctx) fatal("EVP_MAC_CTX_new");
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest), 0),
      OSSL_PARAM_construct_end()};
  // A null key pointer means "keep the previous key" to OpenSSL, and a fresh context
  // has none; an empty key must still be an explicit (zero-length) key.
  static const std::uint8_t kEmpty = 0;
  const std::uint8_t* key_ptr = key.empty() ? &kEmpty : key.data();
  if (EVP_MAC_init(ctx.get(), key_ptr, key.size(), params) != 1) fatal("EVP_MAC_init");
  for (ByteView part : parts) {
    if (!part.empty() && EVP_MAC_update(ctx.get(), part.data(), part.size()) != 1)
      fatal("EVP_MAC_update");
  }
  std::size_t len = 0;
  if (EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size())
    fatal("EVP_MAC_final");
}

}  // namespace mobike::crypto::detail
