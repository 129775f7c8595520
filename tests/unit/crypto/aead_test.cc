#include "crypto/aead.h"

#include <gtest/gtest.h>

#include <optional>

#include "test_data.h"

namespace mobike::crypto {
namespace {

using test::hex;

struct AeadVector {
  const char* name;
  AeadAlg alg;
  const char* key;
  const char* nonce;
  const char* aad;
  const char* plaintext;
  const char* ciphertext;
  const char* tag;
};

constexpr const char* kK3 = "feffe9928665731c6d6a8f9467308308";
constexpr const char* kK15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr const char* kIv3 = "cafebabefacedbaddecaf888";
constexpr const char* kP3 =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
constexpr const char* kP4 =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
constexpr const char* kA4 = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 1-4 (AES-128) and
// 13-16 (AES-256); the ones with a 96-bit IV. RFC 8439 §2.8.2 for ChaCha20-Poly1305.
const AeadVector kVectors[] = {
    {"GCM TC1", AeadAlg::kAes128Gcm, "00000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"},
    {"GCM TC2", AeadAlg::kAes128Gcm, "00000000000000000000000000000000", "000000000000000000000000",
     "", "00000000000000000000000000000000", "0388dace60b6a392f328c2b971b2fe78",
     "ab6e47d42cec13bdf53a67b21257bddf"},
    {"GCM TC3", AeadAlg::kAes128Gcm, kK3, kIv3, "", kP3,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"},
    {"GCM TC4", AeadAlg::kAes128Gcm, kK3, kIv3, kA4, kP4,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
    {"GCM TC13", AeadAlg::kAes256Gcm,
     "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"GCM TC14", AeadAlg::kAes256Gcm,
     "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "00000000000000000000000000000000",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"GCM TC15", AeadAlg::kAes256Gcm, kK15, kIv3, "", kP3,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"GCM TC16", AeadAlg::kAes256Gcm, kK15, kIv3, kA4, kP4,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
    {"RFC 8439 2.8.2", AeadAlg::kChaCha20Poly1305,
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
     "070000004041424344454647", "50515253c0c1c2c3c4c5c6c7",
     // "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for
     // the future, sunscreen would be it."
     "4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
     "73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
     "6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
     "637265656e20776f756c642062652069742e",
     "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
     "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
     "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
     "3ff4def08e4b7a9de576d26586cec64b6116",
     "1ae10b594f09e26a7e902ecbd0600691"},
};

Bytes maybe_hex(const char* s) { return *s ? hex(s) : Bytes{}; }

TEST(Aead, KnownAnswerSealAndOpen) {
  for (const auto& v : kVectors) {
    SCOPED_TRACE(v.name);
    auto aead = Aead::create(v.alg, hex(v.key));
    ASSERT_TRUE(aead) << aead.error();
    const Bytes nonce = hex(v.nonce), aad = maybe_hex(v.aad), pt = maybe_hex(v.plaintext);
    Bytes expected = maybe_hex(v.ciphertext);
    append(expected, hex(v.tag));

    EXPECT_EQ(to_hex(aead->seal(nonce, aad, pt)), to_hex(expected));
    auto opened = aead->open(nonce, aad, expected);
    ASSERT_TRUE(opened) << opened.error();
    EXPECT_EQ(*opened, pt);
  }
}

TEST(Aead, RejectsAnyModification) {
  for (const auto& v : kVectors) {
    SCOPED_TRACE(v.name);
    auto aead = Aead::create(v.alg, hex(v.key));
    ASSERT_TRUE(aead);
    Bytes nonce = hex(v.nonce), aad = maybe_hex(v.aad);
    Bytes sealed = maybe_hex(v.ciphertext);
    append(sealed, hex(v.tag));
    for (std::size_t i = 0; i < sealed.size(); ++i) {
      Bytes bad = sealed;
      bad[i] ^= 0x01;
      EXPECT_FALSE(aead->open(nonce, aad, bad)) << "ciphertext/tag octet " << i;
    }
    for (std::size_t i = 0; i < aad.size(); ++i) {
      Bytes bad = aad;
      bad[i] ^= 0x80;
      EXPECT_FALSE(aead->open(nonce, bad, sealed)) << "AAD octet " << i;
    }
    nonce[11] ^= 1;
    EXPECT_FALSE(aead->open(nonce, aad, sealed));
    nonce[11] ^= 1;
    Bytes extra_aad = aad;
    extra_aad.push_back(0);
    EXPECT_FALSE(aead->open(nonce, extra_aad, sealed));
    EXPECT_FALSE(aead->open(nonce, aad, ByteView(sealed.data(), sealed.size() - 1)));
  }
}

TEST(Aead, InPlaceSealAndOpen) {
  auto aead = Aead::create(AeadAlg::kChaCha20Poly1305, Bytes(32, 7));
  ASSERT_TRUE(aead);
  const Bytes nonce(12, 1), aad = to_bytes("header");
  const Bytes msg = to_bytes("in-place payload of some length");
  Bytes buf = msg;
  buf.resize(msg.size() + Aead::kTagSize);
  ASSERT_TRUE(aead->seal(nonce, aad, ByteView(buf.data(), msg.size()), buf));
  EXPECT_EQ(buf, aead->seal(nonce, aad, msg));
  ASSERT_TRUE(aead->open(nonce, aad, buf, std::span(buf.data(), msg.size())));
  EXPECT_EQ(Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(msg.size())), msg);
}

TEST(Aead, FailedOpenZeroesOutput) {
  auto aead = Aead::create(AeadAlg::kAes128Gcm, Bytes(16, 3));
  ASSERT_TRUE(aead);
  const Bytes nonce(12, 0);
  Bytes sealed = aead->seal(nonce, {}, Bytes(40, 0x5a));
  sealed.back() ^= 1;
  Bytes out(40, 0xee);
  EXPECT_FALSE(aead->open(nonce, {}, sealed, out));
  EXPECT_EQ(out, Bytes(40, 0));
}

TEST(Aead, RejectsBadSizes) {
  EXPECT_FALSE(Aead::create(AeadAlg::kAes128Gcm, Bytes(32, 0)));
  EXPECT_FALSE(Aead::create(AeadAlg::kAes256Gcm, Bytes(16, 0)));
  EXPECT_FALSE(Aead::create(AeadAlg::kChaCha20Poly1305, Bytes(36, 0)));
  EXPECT_FALSE(Aead::create(static_cast<AeadAlg>(9), Bytes(16, 0)));
  EXPECT_EQ(Aead::key_size(AeadAlg::kAes128Gcm), 16u);
  EXPECT_EQ(Aead::key_size(AeadAlg::kAes256Gcm), 32u);
  EXPECT_EQ(Aead::key_size(AeadAlg::kChaCha20Poly1305), 32u);

  auto aead = Aead::create(AeadAlg::kAes256Gcm, Bytes(32, 0));
  ASSERT_TRUE(aead);
  const Bytes pt(10, 0);
  Bytes out(pt.size() + Aead::kTagSize);
  EXPECT_FALSE(aead->seal(Bytes(8, 0), {}, pt, out));
  EXPECT_FALSE(aead->seal(Bytes(12, 0), {}, pt, std::span(out.data(), out.size() - 1)));
  EXPECT_TRUE(aead->seal(Bytes(8, 0), {}, pt).empty());
  EXPECT_FALSE(aead->open(Bytes(12, 0), {}, Bytes(15, 0)));
  EXPECT_FALSE(aead->open(Bytes(16, 0), {}, Bytes(32, 0)));
}

TEST(Aead, CopiesAreIndependentOfTheOriginal) {
  Bytes key(16, 9);
  auto aead = Aead::create(AeadAlg::kAes128Gcm, key);
  ASSERT_TRUE(aead);
  key.assign(16, 0);  // the key was copied at creation
  std::optional<Aead> copy(*aead);
  const Bytes nonce(12, 4);
  const Bytes sealed = aead->seal(nonce, {}, to_bytes("x"));
  copy.reset();  // destroying a copy must not wipe the original's key
  auto fresh = Aead::create(AeadAlg::kAes128Gcm, Bytes(16, 9));
  ASSERT_TRUE(fresh);
  EXPECT_EQ(aead->seal(nonce, {}, to_bytes("x")), sealed);
  EXPECT_EQ(fresh->seal(nonce, {}, to_bytes("x")), sealed);
}

}  // namespace
}  // namespace mobike::crypto
