#include "crypto/sk_cipher.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto/aead.h"
#include "test_data.h"

namespace mobike::crypto {
namespace {

using test::hex;

// Hands out a fixed octet string (then zeros), so seal() output is predictable.
class FixedRandom final : public Random {
 public:
  explicit FixedRandom(Bytes b) : bytes_(std::move(b)) {}
  void fill(std::span<std::uint8_t> out) override {
    for (auto& o : out) o = pos_ < bytes_.size() ? bytes_[pos_++] : 0;
  }

 private:
  Bytes bytes_;
  std::size_t pos_ = 0;
};

struct Suite {
  const char* name;
  SkSuite suite;
};

const Suite kSuites[] = {
    {"aes128-sha256", {EncrId::kAesCbc, 128, IntegId::kHmacSha256_128}},
    {"aes128-sha384", {EncrId::kAesCbc, 128, IntegId::kHmacSha384_192}},
    {"aes128-sha512", {EncrId::kAesCbc, 128, IntegId::kHmacSha512_256}},
    {"aes256-sha256", {EncrId::kAesCbc, 256, IntegId::kHmacSha256_128}},
    {"aes256-sha384", {EncrId::kAesCbc, 256, IntegId::kHmacSha384_192}},
    {"aes256-sha512", {EncrId::kAesCbc, 256, IntegId::kHmacSha512_256}},
    {"aes128gcm16", {EncrId::kAesGcm16, 128, IntegId::kNone}},
    {"aes256gcm16", {EncrId::kAesGcm16, 256, IntegId::kNone}},
    {"chacha20poly1305", {EncrId::kChaCha20Poly1305, 256, IntegId::kNone}},
};

std::unique_ptr<SkCipher> make(const SkSuite& s, std::uint8_t seed = 1) {
  Bytes ek(encr_key_size(s)), ik(integ_key_size(s.integ));
  for (std::size_t i = 0; i < ek.size(); ++i) ek[i] = static_cast<std::uint8_t>(seed + i);
  for (std::size_t i = 0; i < ik.size(); ++i) ik[i] = static_cast<std::uint8_t>(seed * 3 + i);
  auto c = SkCipher::create(s, ek, ik);
  EXPECT_TRUE(c) << c.error();
  return c ? std::move(*c) : nullptr;
}

Bytes pattern(std::size_t n, std::uint8_t start) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(start + 7 * i);
  return b;
}

TEST(SkCipher, KeySizeTable) {
  EXPECT_EQ(encr_key_size({EncrId::kAesCbc, 128, IntegId::kHmacSha256_128}), 16u);
  EXPECT_EQ(encr_key_size({EncrId::kAesCbc, 256, IntegId::kHmacSha256_128}), 32u);
  EXPECT_EQ(encr_key_size({EncrId::kAesGcm16, 128, IntegId::kNone}), 20u);
  EXPECT_EQ(encr_key_size({EncrId::kAesGcm16, 256, IntegId::kNone}), 36u);
  EXPECT_EQ(encr_key_size({EncrId::kChaCha20Poly1305, 256, IntegId::kNone}), 36u);
  EXPECT_EQ(encr_key_size({EncrId::kAesCbc, 192, IntegId::kHmacSha256_128}), 0u);
  EXPECT_EQ(encr_key_size({EncrId::kChaCha20Poly1305, 128, IntegId::kNone}), 0u);
  EXPECT_EQ(encr_key_size({static_cast<EncrId>(3), 128, IntegId::kNone}), 0u);
  EXPECT_EQ(integ_key_size(IntegId::kHmacSha256_128), 32u);
  EXPECT_EQ(integ_key_size(IntegId::kHmacSha384_192), 48u);
  EXPECT_EQ(integ_key_size(IntegId::kHmacSha512_256), 64u);
  EXPECT_EQ(integ_key_size(IntegId::kNone), 0u);
  EXPECT_TRUE(is_aead(EncrId::kAesGcm16));
  EXPECT_TRUE(is_aead(EncrId::kChaCha20Poly1305));
  EXPECT_FALSE(is_aead(EncrId::kAesCbc));
}

TEST(SkCipher, CreateRejectsInconsistentSuitesAndKeys) {
  const SkSuite cbc{EncrId::kAesCbc, 128, IntegId::kHmacSha256_128};
  EXPECT_TRUE(SkCipher::create(cbc, Bytes(16), Bytes(32)));
  EXPECT_FALSE(SkCipher::create(cbc, Bytes(15), Bytes(32)));
  EXPECT_FALSE(SkCipher::create(cbc, Bytes(16), Bytes(31)));
  EXPECT_FALSE(SkCipher::create(cbc, Bytes(16), {}));
  EXPECT_FALSE(SkCipher::create({EncrId::kAesCbc, 128, IntegId::kNone}, Bytes(16), {}));
  EXPECT_FALSE(SkCipher::create({EncrId::kAesCbc, 192, IntegId::kHmacSha256_128}, Bytes(24),
                                Bytes(32)));
  const SkSuite gcm{EncrId::kAesGcm16, 256, IntegId::kNone};
  EXPECT_TRUE(SkCipher::create(gcm, Bytes(36), {}));
  EXPECT_FALSE(SkCipher::create(gcm, Bytes(32), {}));  // salt missing
  EXPECT_FALSE(SkCipher::create(gcm, Bytes(36), Bytes(32)));
  EXPECT_FALSE(SkCipher::create({EncrId::kAesGcm16, 256, IntegId::kHmacSha256_128}, Bytes(36),
                                Bytes(32)));
  EXPECT_FALSE(SkCipher::create({EncrId::kChaCha20Poly1305, 128, IntegId::kNone}, Bytes(20), {}));
  EXPECT_FALSE(SkCipher::create({static_cast<EncrId>(99), 128, IntegId::kNone}, Bytes(16), {}));
}

TEST(SkCipher, RoundTripAndExactSizeForEverySuite) {
  SeededRandom rng(5);
  const Bytes prefix = pattern(32, 0x40);
  for (const auto& s : kSuites) {
    SCOPED_TRACE(s.name);
    auto c = make(s.suite);
    ASSERT_TRUE(c);
    for (std::size_t len : {0, 1, 2, 14, 15, 16, 17, 31, 32, 33, 100, 255, 256, 1000, 4096}) {
      const Bytes inner = pattern(len, static_cast<std::uint8_t>(len));
      const Bytes body = c->seal(prefix, inner, rng);
      ASSERT_EQ(body.size(), c->sealed_size(len)) << len;
      auto opened = c->open(prefix, body);
      ASSERT_TRUE(opened) << len << ": " << opened.error();
      EXPECT_EQ(*opened, inner) << len;
    }
  }
}

// An SA that moves to another node takes its keys from its ciphers (they keep the only
// copy): what they give back is what they were made from, and a cipher made from that
// opens what the first sealed.
TEST(SkCipher, KeysComeBackAsGiven) {
  SeededRandom rng(9);
  const Bytes prefix = pattern(28, 0x11);
  for (const auto& s : kSuites) {
    SCOPED_TRACE(s.name);
    Bytes ek(encr_key_size(s.suite)), ik(integ_key_size(s.suite.integ));
    for (std::size_t i = 0; i < ek.size(); ++i) ek[i] = static_cast<std::uint8_t>(0xa0 + i);
    for (std::size_t i = 0; i < ik.size(); ++i) ik[i] = static_cast<std::uint8_t>(0x30 + i);
    auto c = SkCipher::create(s.suite, ek, ik);
    ASSERT_TRUE(c) << c.error();
    EXPECT_EQ((*c)->encr_key(), ek);
    EXPECT_EQ((*c)->integ_key(), ik);
    auto again = SkCipher::create(s.suite, (*c)->encr_key(), (*c)->integ_key());
    ASSERT_TRUE(again) << again.error();
    const Bytes inner = pattern(77, 3);
    auto opened = (*again)->open(prefix, (*c)->seal(prefix, inner, rng));
    ASSERT_TRUE(opened) << opened.error();
    EXPECT_EQ(*opened, inner);
  }
}

TEST(SkCipher, SealedSizeFormula) {
  // CBC: 16-octet IV + plaintext padded up (Pad Length included) to 16 + ICV.
  auto cbc = make({EncrId::kAesCbc, 128, IntegId::kHmacSha384_192});
  ASSERT_TRUE(cbc);
  EXPECT_EQ(cbc->sealed_size(0), 16u + 16 + 24);
  EXPECT_EQ(cbc->sealed_size(15), 16u + 16 + 24);
  EXPECT_EQ(cbc->sealed_size(16), 16u + 32 + 24);
  // AEAD: 8-octet IV + plaintext + Pad Length + 16-octet ICV.
  auto gcm = make({EncrId::kAesGcm16, 128, IntegId::kNone});
  ASSERT_TRUE(gcm);
  EXPECT_EQ(gcm->sealed_size(0), 8u + 1 + 16);
  EXPECT_EQ(gcm->sealed_size(100), 8u + 101 + 16);
}

TEST(SkCipher, FreshIvPerMessage) {
  SystemRandom rng;
  for (const auto& s : kSuites) {
    SCOPED_TRACE(s.name);
    auto c = make(s.suite);
    ASSERT_TRUE(c);
    const Bytes a = c->seal({}, to_bytes("same"), rng);
    const Bytes b = c->seal({}, to_bytes("same"), rng);
    EXPECT_NE(a, b);
  }
}

TEST(SkCipher, AnyModifiedOctetIsRejected) {
  SeededRandom rng(9);
  const Bytes prefix = pattern(32, 0x11);
  for (const auto& s : kSuites) {
    SCOPED_TRACE(s.name);
    auto c = make(s.suite);
    ASSERT_TRUE(c);
    const Bytes inner = pattern(37, 3);
    const Bytes body = c->seal(prefix, inner, rng);
    for (std::size_t i = 0; i < prefix.size(); ++i) {
      Bytes p = prefix;
      p[i] ^= 0x04;
      EXPECT_FALSE(c->open(p, body)) << "prefix octet " << i;
    }
    for (std::size_t i = 0; i < body.size(); ++i) {
      Bytes b = body;
      b[i] ^= 0x20;
      EXPECT_FALSE(c->open(prefix, b)) << "body octet " << i;
    }
    // A longer or shorter prefix is a different message as well.
    EXPECT_FALSE(c->open(ByteView(prefix).first(31), body));
    EXPECT_TRUE(c->open(prefix, body));
    // The other direction's (or another SA's) key must not open it.
    auto other = make(s.suite, 2);
    ASSERT_TRUE(other);
    EXPECT_FALSE(other->open(prefix, body));
  }
}

TEST(SkCipher, EveryTruncationIsRejected) {
  SeededRandom rng(11);
  for (const auto& s : kSuites) {
    SCOPED_TRACE(s.name);
    auto c = make(s.suite);
    ASSERT_TRUE(c);
    const Bytes body = c->seal({}, pattern(40, 1), rng);
    for (std::size_t n = 0; n < body.size(); ++n) {
      // A fresh, exactly-sized copy lets ASan catch any read past the end.
      Bytes cut(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(n));
      EXPECT_FALSE(c->open({}, cut)) << n;
    }
  }
}

// Builds an AES-CBC + HMAC SK body around an arbitrary (block-aligned) plaintext with
// OpenSSL directly, so the receiver's padding checks can be exercised with valid ICVs.
Bytes raw_cbc_body(const Bytes& key, const Bytes& integ_key, ByteView prefix, const Bytes& iv,
                   const Bytes& plain) {
  Bytes ct(plain.size() + 16);
  int len = 0, fin = 0;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EXPECT_EQ(EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), nullptr, key.data(), iv.data()), 1);
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  EXPECT_EQ(EVP_EncryptUpdate(ctx, ct.data(), &len, plain.data(), static_cast<int>(plain.size())),
            1);
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx, ct.data() + len, &fin), 1);
  EVP_CIPHER_CTX_free(ctx);
  ct.resize(static_cast<std::size_t>(len + fin));
  Bytes body = iv;
  append(body, ct);
  Bytes mac_in(prefix.begin(), prefix.end());
  append(mac_in, body);
  std::uint8_t mac[32];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), integ_key.data(), static_cast<int>(integ_key.size()), mac_in.data(),
       mac_in.size(), mac, &mac_len);
  append(body, ByteView(mac, 16));  // HMAC-SHA2-256-128
  return body;
}

TEST(SkCipher, CbcLayoutAndPadLengthHandling) {
  const Bytes key = pattern(16, 1), integ_key = pattern(32, 2), iv = pattern(16, 3);
  const Bytes prefix = pattern(28 + 4, 4);
  auto c = SkCipher::create({EncrId::kAesCbc, 128, IntegId::kHmacSha256_128}, key, integ_key);
  ASSERT_TRUE(c);

  // Independent construction: 20 inner octets, 11 pad octets of any value, Pad Length 11.
  Bytes plain = pattern(20, 9);
  for (int i = 0; i < 11; ++i) plain.push_back(0xa5);
  plain.push_back(11);
  auto opened = (*c)->open(prefix, raw_cbc_body(key, integ_key, prefix, iv, plain));
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_EQ(*opened, pattern(20, 9));

  // More padding than needed is legal (RFC 7296 §3.14: accept any aligned length).
  Bytes padded_more = pattern(4, 9);
  padded_more.resize(31, 0);
  padded_more.push_back(27);
  opened = (*c)->open(prefix, raw_cbc_body(key, integ_key, prefix, iv, padded_more));
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_EQ(*opened, pattern(4, 9));

  // Pad Length covering the whole block except itself: empty inner payloads.
  Bytes all_pad(15, 0);
  all_pad.push_back(15);
  opened = (*c)->open(prefix, raw_cbc_body(key, integ_key, prefix, iv, all_pad));
  ASSERT_TRUE(opened);
  EXPECT_TRUE(opened->empty());

  // Pad Length pointing before the start of the plaintext: rejected, not read.
  for (std::uint8_t bad : {16, 17, 31, 200, 255}) {
    Bytes p(15, 0);
    p.push_back(bad);
    EXPECT_FALSE((*c)->open(prefix, raw_cbc_body(key, integ_key, prefix, iv, p))) << int(bad);
  }
  Bytes two_blocks(31, 0);
  two_blocks.push_back(32);
  EXPECT_FALSE((*c)->open(prefix, raw_cbc_body(key, integ_key, prefix, iv, two_blocks)));

  // Ciphertext not a multiple of the block size.
  Bytes body = raw_cbc_body(key, integ_key, prefix, iv, all_pad);
  body.insert(body.begin() + 20, 0);
  EXPECT_FALSE((*c)->open(prefix, body));
}

TEST(SkCipher, AeadLayoutAndPadLengthHandling) {
  // Body = IV(8) || AEAD(key, salt || IV, AAD = prefix, inner || padding || Pad Length).
  const Bytes key = pattern(16, 1), salt = hex("01020304"), iv = hex("a0a1a2a3a4a5a6a7");
  const Bytes prefix = pattern(32, 5);
  Bytes key_material = key;
  append(key_material, salt);
  auto c = SkCipher::create({EncrId::kAesGcm16, 128, IntegId::kNone}, key_material, {});
  ASSERT_TRUE(c);
  auto aead = Aead::create(AeadAlg::kAes128Gcm, key);
  ASSERT_TRUE(aead);
  auto body_for = [&](const Bytes& plain) {
    Bytes nonce = salt;
    append(nonce, iv);
    Bytes body = iv;
    append(body, aead->seal(nonce, prefix, plain));
    return body;
  };

  Bytes plain = to_bytes("abc");
  plain.push_back(0x99);
  plain.push_back(1);  // one pad octet
  auto opened = (*c)->open(prefix, body_for(plain));
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_EQ(*opened, to_bytes("abc"));

  opened = (*c)->open(prefix, body_for(Bytes{0}));
  ASSERT_TRUE(opened);
  EXPECT_TRUE(opened->empty());

  EXPECT_FALSE((*c)->open(prefix, body_for(Bytes{1})));
  EXPECT_FALSE((*c)->open(prefix, body_for(Bytes{0, 0, 0, 255})));
  // No Pad Length octet at all (empty AEAD plaintext) is malformed.
  EXPECT_FALSE((*c)->open(prefix, body_for(Bytes{})));

  // seal() produces exactly this layout: Pad Length 0, IV from the Random.
  FixedRandom fixed(iv);
  Bytes expected_plain = to_bytes("abc");
  expected_plain.push_back(0);
  EXPECT_EQ(to_hex((*c)->seal(prefix, to_bytes("abc"), fixed)), to_hex(body_for(expected_plain)));
}

TEST(SkCipher, Rfc7634IkeV2Example) {
  // RFC 7634 Appendix B: an INFORMATIONAL request protected with ChaCha20-Poly1305.
  const Bytes keymat = hex(
      "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
      "a0a1a2a3");
  const Bytes prefix = hex(
      "c0c1c2c3c4c5c6c7d0d1d2d3d4d5d6d72e20250000000009000000452900002"
      "9");
  const Bytes inner = hex("0000000c000040010000000a");  // N(SET_WINDOW_SIZE) = 10
  const Bytes body = hex(
      "1011121314151617"
      "610394701f8d017f7c129248896b71bfe25236efd7cdc67066906315b2");
  auto c = SkCipher::create({EncrId::kChaCha20Poly1305, 256, IntegId::kNone}, keymat, {});
  ASSERT_TRUE(c) << c.error();
  FixedRandom rng(hex("1011121314151617"));
  EXPECT_EQ(to_hex((*c)->seal(prefix, inner, rng)), to_hex(body));
  auto opened = (*c)->open(prefix, body);
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_EQ(*opened, inner);
  // The SK payload length in the prefix (0x29) matches header + body.
  EXPECT_EQ(4 + body.size(), 0x29u);
}

}  // namespace
}  // namespace mobike::crypto
