#include "crypto/sk_cipher.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <climits>

#include "crypto/aead.h"
#include "crypto/openssl_util.h"

namespace mobike::crypto {

namespace {

constexpr std::size_t kCbcBlock = 16;
constexpr std::size_t kAeadIv = 8;    // explicit IV carried in the payload (RFC 5282 §3)
constexpr std::size_t kAeadSalt = 4;  // implicit, from the key material (RFC 5282 §7.1)

struct IntegInfo {
  const char* digest;
  std::size_t key_size;
  std::size_t icv_size;  // RFC 4868 §2.3: half the digest
};

bool integ_info(IntegId i, IntegInfo& out) {
  switch (i) {
    case IntegId::kHmacSha256_128: out = {"SHA256", 32, 16}; return true;
    case IntegId::kHmacSha384_192: out = {"SHA384", 48, 24}; return true;
    case IntegId::kHmacSha512_256: out = {"SHA512", 64, 32}; return true;
    case IntegId::kNone: break;
  }
  return false;
}

bool aes_bits_ok(std::uint16_t bits) { return bits == 128 || bits == 256; }

Unexpected<std::string> err(const char* msg) { return unexpected(std::string(msg)); }

// Strips the Padding and Pad Length octet (RFC 7296 §3.14). Any pad length that fits
// is accepted, as the RFC requires of receivers.
Expected<Bytes, std::string> strip_padding(Bytes plain) {
  if (plain.empty()) return err("SK payload has no Pad Length octet");
  const std::size_t pad = plain.back();
  if (pad + 1 > plain.size()) return err("SK payload Pad Length exceeds the plaintext");
  plain.resize(plain.size() - pad - 1);
  return plain;
}

class CbcHmacCipher final : public SkCipher {
 public:
  CbcHmacCipher(detail::CipherAlg alg, ByteView encr_key, ByteView integ_key, IntegInfo integ)
      : alg_(alg),
        encr_key_(encr_key.begin(), encr_key.end()),
        integ_key_(integ_key.begin(), integ_key.end()),
        integ_(integ) {}
  ~CbcHmacCipher() override {
    OPENSSL_cleanse(encr_key_.data(), encr_key_.size());
    OPENSSL_cleanse(integ_key_.data(), integ_key_.size());
  }

  std::size_t sealed_size(std::size_t plaintext_len) const override {
    return kCbcBlock + padded_size(plaintext_len) + integ_.icv_size;
  }

  Bytes seal(ByteView prefix, ByteView plaintext, Random& random) const override {
    const std::size_t padded = padded_size(plaintext.size());
    Bytes body(sealed_size(plaintext.size()));
    random.fill(std::span(body.data(), kCbcBlock));
    // Minimal padding; the octets themselves are unconstrained, zero is as good as any.
    Bytes plain(padded, 0);
    std::copy(plaintext.begin(), plaintext.end(), plain.begin());
    plain.back() = static_cast<std::uint8_t>(padded - plaintext.size() - 1);
    crypt(true, body.data(), plain, body.data() + kCbcBlock);
    OPENSSL_cleanse(plain.data(), plain.size());
    icv(prefix, ByteView(body.data(), kCbcBlock + padded),
        std::span(body.data() + kCbcBlock + padded, integ_.icv_size));
    return body;
  }

  Bytes encr_key() const override { return encr_key_; }
  Bytes integ_key() const override { return integ_key_; }

  Expected<Bytes, std::string> open(ByteView prefix, ByteView body) const override {
    if (body.size() < kCbcBlock + kCbcBlock + integ_.icv_size) {
      return err("SK payload too short");
    }
    const std::size_t ct_len = body.size() - kCbcBlock - integ_.icv_size;
    if (ct_len % kCbcBlock != 0) return err("SK payload not a multiple of the block size");
    // Encrypt-then-MAC: nothing is decrypted before the ICV is verified, so padding
    // errors cannot become an oracle.
    std::array<std::uint8_t, 32> expected{};
    auto want = std::span(expected.data(), integ_.icv_size);
    icv(prefix, body.first(kCbcBlock + ct_len), want);
    if (!equal_ct(want, body.last(integ_.icv_size))) return err("SK payload ICV mismatch");
    Bytes plain(ct_len);
    crypt(false, body.data(), body.subspan(kCbcBlock, ct_len), plain.data());
    return strip_padding(std::move(plain));
  }

 private:
  static std::size_t padded_size(std::size_t n) {
    return (n + 1 + kCbcBlock - 1) / kCbcBlock * kCbcBlock;
  }

  void crypt(bool encrypt, const std::uint8_t* iv, ByteView in, std::uint8_t* out) const {
    if (in.size() > static_cast<std::size_t>(INT_MAX)) detail::fatal("SK payload too large");
    detail::CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    if (!ctx ||
        EVP_CipherInit_ex2(ctx.get(), detail::cipher(alg_), encr_key_.data(), iv,
                           encrypt ? 1 : 0, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
        EVP_CipherUpdate(ctx.get(), out, &len, in.data(), static_cast<int>(in.size())) != 1 ||
        static_cast<std::size_t>(len) != in.size()) {
      detail::fatal("AES-CBC");
    }
  }

  void icv(ByteView prefix, ByteView iv_and_ct, std::span<std::uint8_t> out) const {
    std::array<std::uint8_t, 64> full{};
    auto digest = std::span(full.data(), integ_.icv_size * 2);
    detail::hmac(integ_.digest, integ_key_, {prefix, iv_and_ct}, digest);
    std::copy_n(full.begin(), out.size(), out.begin());
    OPENSSL_cleanse(full.data(), full.size());
  }

  detail::CipherAlg alg_;
  Bytes encr_key_;
  Bytes integ_key_;
  IntegInfo integ_;
};

class AeadCipher final : public SkCipher {
 public:
  AeadCipher(Aead aead, ByteView salt) : aead_(std::move(aead)) {
    std::copy(salt.begin(), salt.end(), salt_.begin());
  }

  std::size_t sealed_size(std::size_t plaintext_len) const override {
    return kAeadIv + plaintext_len + 1 + Aead::kTagSize;
  }

  Bytes seal(ByteView prefix, ByteView plaintext, Random& random) const override {
    Bytes body(sealed_size(plaintext.size()));
    // A random 64-bit IV keeps the cipher stateless; IKE's message volume per SA stays
    // many orders of magnitude below the birthday bound.
    random.fill(std::span(body.data(), kAeadIv));
    auto nonce = make_nonce(body.data());
    // With a block size of 1 no padding is needed, only the Pad Length octet (zero).
    std::uint8_t* inner = body.data() + kAeadIv;
    std::copy(plaintext.begin(), plaintext.end(), inner);
    inner[plaintext.size()] = 0;
    const std::size_t n = plaintext.size() + 1;
    if (!aead_.seal(nonce, prefix, ByteView(inner, n), std::span(inner, n + Aead::kTagSize))) {
      detail::fatal("SK AEAD seal");
    }
    return body;
  }

  Bytes encr_key() const override {
    Bytes k(aead_.key().begin(), aead_.key().end());
    k.insert(k.end(), salt_.begin(), salt_.end());
    return k;
  }
  Bytes integ_key() const override { return {}; }

  Expected<Bytes, std::string> open(ByteView prefix, ByteView body) const override {
    if (body.size() < kAeadIv + 1 + Aead::kTagSize) return err("SK payload too short");
    auto nonce = make_nonce(body.data());
    ByteView sealed = body.subspan(kAeadIv);
    Bytes plain(sealed.size() - Aead::kTagSize);
    if (!aead_.open(nonce, prefix, sealed, plain)) return err("SK payload ICV mismatch");
    return strip_padding(std::move(plain));
  }

 private:
  std::array<std::uint8_t, Aead::kNonceSize> make_nonce(const std::uint8_t* iv) const {
    std::array<std::uint8_t, Aead::kNonceSize> nonce{};
    std::copy(salt_.begin(), salt_.end(), nonce.begin());
    std::copy_n(iv, kAeadIv, nonce.begin() + kAeadSalt);
    return nonce;
  }

  Aead aead_;
  std::array<std::uint8_t, kAeadSalt> salt_{};
};

}  // namespace

bool is_aead(EncrId e) { return e == EncrId::kAesGcm16 || e == EncrId::kChaCha20Poly1305; }

std::size_t encr_key_size(const SkSuite& s) {
  switch (s.encr) {
    case EncrId::kAesCbc: return aes_bits_ok(s.key_bits) ? s.key_bits / 8 : 0;
    case EncrId::kAesGcm16: return aes_bits_ok(s.key_bits) ? s.key_bits / 8 + kAeadSalt : 0;
    case EncrId::kChaCha20Poly1305: return s.key_bits == 256 ? 32 + kAeadSalt : 0;
  }
  return 0;
}

std::size_t integ_key_size(IntegId i) {
  IntegInfo info{};
  return integ_info(i, info) ? info.key_size : 0;
}

Expected<std::unique_ptr<SkCipher>, std::string> SkCipher::create(const SkSuite& suite,
                                                                 ByteView encr_key,
                                                                 ByteView integ_key) {
  const std::size_t want_encr = encr_key_size(suite);
  if (want_encr == 0) return err("unsupported encryption algorithm or key length");
  if (encr_key.size() != want_encr) return err("encryption key has the wrong length");

  if (!is_aead(suite.encr)) {
    IntegInfo integ{};
    if (!integ_info(suite.integ, integ)) return err("AES-CBC needs an integrity algorithm");
    if (integ_key.size() != integ.key_size) return err("integrity key has the wrong length");
    const auto alg = suite.key_bits == 128 ? detail::CipherAlg::kAes128Cbc
                                           : detail::CipherAlg::kAes256Cbc;
    return std::unique_ptr<SkCipher>(
        std::make_unique<CbcHmacCipher>(alg, encr_key, integ_key, integ));
  }

  // RFC 7296 §3.3.4 / RFC 5282 §8: combined-mode ciphers take no integrity transform.
  if (suite.integ != IntegId::kNone) return err("AEAD cipher must not have an integrity algorithm");
  if (!integ_key.empty()) return err("AEAD cipher takes no integrity key");
  AeadAlg alg = AeadAlg::kChaCha20Poly1305;
  if (suite.encr == EncrId::kAesGcm16) {
    alg = suite.key_bits == 128 ? AeadAlg::kAes128Gcm : AeadAlg::kAes256Gcm;
  }
  const std::size_t key_len = encr_key.size() - kAeadSalt;
  auto aead = Aead::create(alg, encr_key.first(key_len));
  if (!aead) return unexpected(aead.error());
  return std::unique_ptr<SkCipher>(
      std::make_unique<AeadCipher>(std::move(*aead), encr_key.last(kAeadSalt)));
}

}  // namespace mobike::crypto
