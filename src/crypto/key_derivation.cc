#include "crypto/key_derivation.h"

#include <openssl/crypto.h>

#include <string_view>

namespace mobike::crypto {

namespace {

void append_u64(Bytes& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

Bytes concat(std::initializer_list<ByteView> parts) {
  std::size_t n = 0;
  for (auto p : parts) n += p.size();
  Bytes out;
  out.reserve(n);
  for (auto p : parts) append(out, p);
  return out;
}

void wipe(Bytes& b) { OPENSSL_cleanse(b.data(), b.size()); }

}  // namespace

Bytes skeyseed(const Prf& prf, ByteView ni, ByteView nr, ByteView shared_secret) {
  // RFC 7296 §2.14: for HMAC PRFs the whole Ni | Nr is the key (only fixed-key-length
  // PRFs such as AES-XCBC split it, and none is supported here).
  Bytes key = concat({ni, nr});
  return prf.compute(key, shared_secret);
}

Bytes skeyseed_rekey(const Prf& old_prf, ByteView old_sk_d, ByteView shared_secret,
                     ByteView ni, ByteView nr) {
  Bytes data = concat({shared_secret, ni, nr});
  Bytes out = old_prf.compute(old_sk_d, data);
  wipe(data);
  return out;
}

IkeKeys derive_ike_keys(const Prf& prf, ByteView skeyseed, ByteView ni, ByteView nr,
                        std::uint64_t spi_i, std::uint64_t spi_r, IkeKeySizes sizes) {
  Bytes seed = concat({ni, nr});
  append_u64(seed, spi_i);
  append_u64(seed, spi_r);
  // SK_d, SK_pi and SK_pr take the PRF's preferred key size, its output size (§2.14).
  const std::size_t p = prf.output_size();
  Bytes km = prf.plus(skeyseed, seed, 3 * p + 2 * sizes.integ + 2 * sizes.encr);
  std::size_t off = 0;
  auto take = [&](std::size_t n) {
    Bytes b(km.begin() + static_cast<std::ptrdiff_t>(off),
            km.begin() + static_cast<std::ptrdiff_t>(off + n));
    off += n;
    return b;
  };
  IkeKeys k;
  k.sk_d = take(p);
  k.sk_ai = take(sizes.integ);
  k.sk_ar = take(sizes.integ);
  k.sk_ei = take(sizes.encr);
  k.sk_er = take(sizes.encr);
  k.sk_pi = take(p);
  k.sk_pr = take(p);
  wipe(km);
  return k;
}

Bytes child_keymat(const Prf& prf, ByteView sk_d, ByteView shared_secret_or_empty, ByteView ni,
                   ByteView nr, std::size_t length) {
  Bytes seed = concat({shared_secret_or_empty, ni, nr});
  Bytes out = prf.plus(sk_d, seed, length);
  wipe(seed);
  return out;
}

Bytes psk_auth(const Prf& prf, ByteView psk, ByteView signed_octets) {
  static constexpr std::string_view kKeyPad = "Key Pad for IKEv2";  // 17 octets, no NUL
  const ByteView pad(reinterpret_cast<const std::uint8_t*>(kKeyPad.data()), kKeyPad.size());
  Bytes inner = prf.compute(psk, pad);
  Bytes out = prf.compute(inner, signed_octets);
  wipe(inner);
  return out;
}

}  // namespace mobike::crypto
