#include "crypto/wipe.h"

#include <openssl/crypto.h>

namespace mobike::crypto {

void wipe(Bytes& secret) {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
}

void wipe(std::span<std::uint8_t> secret) {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
}

}  // namespace mobike::crypto
