#include "crypto/prf.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>

#include "crypto/openssl_util.h"

namespace mobike::crypto {

namespace {

const char* digest_name(PrfId id) {
  switch (id) {
    case PrfId::kHmacSha256: return "SHA256";
    case PrfId::kHmacSha384: return "SHA384";
    case PrfId::kHmacSha512: return "SHA512";
  }
  // Prf values are built from negotiated transforms, which prf_supported() filtered.
  detail::fatal("unsupported PRF id");
}

}  // namespace

bool prf_supported(std::uint16_t id) {
  return id == static_cast<std::uint16_t>(PrfId::kHmacSha256) ||
         id == static_cast<std::uint16_t>(PrfId::kHmacSha384) ||
         id == static_cast<std::uint16_t>(PrfId::kHmacSha512);
}

std::size_t Prf::output_size() const {
  switch (id_) {
    case PrfId::kHmacSha256: return 32;
    case PrfId::kHmacSha384: return 48;
    case PrfId::kHmacSha512: return 64;
  }
  detail::fatal("unsupported PRF id");
}

Bytes Prf::compute(ByteView key, ByteView data) const {
  Bytes out(output_size());
  detail::hmac(digest_name(id_), key, {data}, out);
  return out;
}

Bytes Prf::plus(ByteView key, ByteView seed, std::size_t length) const {
  const std::size_t block = output_size();
  // The counter octet would wrap after 255 blocks (RFC 7296 §2.13); every caller asks
  // for a length fixed by the negotiated transforms, far below this.
  if (length > 255 * block) detail::fatal("prf+ length exceeds 255 blocks");
  Bytes out;
  out.reserve(length + block);
  Bytes t(block);
  std::size_t prev = 0;  // T0 is empty
  for (std::uint8_t counter = 1; out.size() < length; ++counter) {
    const std::uint8_t c[1] = {counter};
    detail::hmac(digest_name(id_), key, {ByteView(t.data(), prev), seed, ByteView(c, 1)}, t);
    prev = block;
    append(out, t);
  }
  OPENSSL_cleanse(t.data(), t.size());
  OPENSSL_cleanse(out.data() + length, out.size() - length);
  out.resize(length);
  return out;
}

Bytes sha1(ByteView data) {
  Bytes out(20);
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha1(), nullptr) != 1 ||
      len != out.size()) {
    detail::fatal("EVP_Digest(SHA1)");
  }
  return out;
}

}  // namespace mobike::crypto
