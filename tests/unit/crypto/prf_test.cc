#include "crypto/prf.h"

#include <gtest/gtest.h>

#include "test_data.h"

namespace mobike::crypto {
namespace {

using test::hex;
using test::view;

struct HmacCase {
  int number;
  Bytes key;
  Bytes data;
  const char* sha256;
  const char* sha384;
  const char* sha512;
};

// RFC 4231 §4.2-§4.8 (test case 5 is handled separately: it checks truncation).
std::vector<HmacCase> rfc4231_cases() {
  const Bytes key131(131, 0xaa);
  return {
      {1, Bytes(20, 0x0b), to_bytes("Hi There"),
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
       "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
       "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4"
       "be9d914eeb61f1702e696c203a126854"},
      {2, to_bytes("Jefe"), to_bytes("what do ya want for nothing?"),
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
       "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
       "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fd"
       "caeab1a34d4a6b4b636e070a38bce737"},
      {3, Bytes(20, 0xaa), Bytes(50, 0xdd),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
       "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27",
       "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807"
       "b946a337bee8942674278859e13292fb"},
      {4, hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), Bytes(50, 0xcd),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
       "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb",
       "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063"
       "a5f19741120c4f2de2adebeb10a298dd"},
      {6, key131, to_bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
       "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
       "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e52"
       "95e64f73f63f0aec8b915a985d786598"},
      {7, key131,
       to_bytes("This is a test using a larger than block-size key and a larger than block-size "
                "data. The key needs to be hashed before being used by the HMAC algorithm."),
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
       "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5a678cc31e799176d3860e6110c46523e",
       "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15"
       "134676fb6de0446065c97440fa8c6a58"},
  };
}

TEST(Prf, Rfc4231Vectors) {
  const Prf p256(PrfId::kHmacSha256), p384(PrfId::kHmacSha384), p512(PrfId::kHmacSha512);
  for (const auto& c : rfc4231_cases()) {
    SCOPED_TRACE("RFC 4231 test case " + std::to_string(c.number));
    EXPECT_EQ(to_hex(p256.compute(c.key, c.data)), c.sha256);
    EXPECT_EQ(to_hex(p384.compute(c.key, c.data)), c.sha384);
    EXPECT_EQ(to_hex(p512.compute(c.key, c.data)), c.sha512);
  }
}

TEST(Prf, Rfc4231Case5Truncated) {
  const Bytes key(20, 0x0c);
  const Bytes data = to_bytes("Test With Truncation");
  auto first16 = [](const Bytes& b) { return to_hex(ByteView(b.data(), 16)); };
  EXPECT_EQ(first16(Prf(PrfId::kHmacSha256).compute(key, data)), "a3b6167473100ee06e0c796c2955552b");
  EXPECT_EQ(first16(Prf(PrfId::kHmacSha384).compute(key, data)), "3abf34c3503b2a23a46efc619baef897");
  EXPECT_EQ(first16(Prf(PrfId::kHmacSha512).compute(key, data)), "415fad6271580a531d4179bc891d87a6");
}

TEST(Prf, SizesAndSupport) {
  EXPECT_EQ(Prf(PrfId::kHmacSha256).output_size(), 32u);
  EXPECT_EQ(Prf(PrfId::kHmacSha384).output_size(), 48u);
  EXPECT_EQ(Prf(PrfId::kHmacSha512).output_size(), 64u);
  EXPECT_TRUE(prf_supported(5));
  EXPECT_TRUE(prf_supported(6));
  EXPECT_TRUE(prf_supported(7));
  EXPECT_FALSE(prf_supported(0));
  EXPECT_FALSE(prf_supported(2));  // HMAC-SHA1
  EXPECT_FALSE(prf_supported(4));  // AES128-XCBC
  EXPECT_FALSE(prf_supported(8));
}

TEST(Prf, EmptyKeyAndData) {
  // An empty key must reach OpenSSL as a real zero-length key (a null pointer would mean
  // "no key"). HMAC zero-pads keys to the block size, so it equals a one-zero-octet key.
  const Prf p(PrfId::kHmacSha256);
  EXPECT_EQ(p.compute({}, {}), p.compute(Bytes(1, 0), {}));
  EXPECT_EQ(to_hex(p.compute({}, {})),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(PrfPlus, MatchesRfc7296Construction) {
  // T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), built here from compute().
  for (PrfId id : {PrfId::kHmacSha256, PrfId::kHmacSha384, PrfId::kHmacSha512}) {
    const Prf p(id);
    const Bytes key = hex("000102030405060708090a0b0c0d0e0f");
    const Bytes seed = to_bytes("a seed of some length");
    Bytes expected, t;
    for (std::uint8_t n = 1; n <= 5; ++n) {
      Bytes in = t;
      append(in, seed);
      in.push_back(n);
      t = p.compute(key, in);
      append(expected, t);
    }
    const std::size_t len = 4 * p.output_size() + 7;  // ends inside the fifth block
    expected.resize(len);
    EXPECT_EQ(p.plus(key, seed, len), expected);
    // Shorter outputs are prefixes of longer ones.
    const Bytes short_out = p.plus(key, seed, 10);
    EXPECT_EQ(short_out, Bytes(expected.begin(), expected.begin() + 10));
    EXPECT_TRUE(p.plus(key, seed, 0).empty());
  }
}

TEST(PrfPlus, LongestAllowedOutput) {
  const Prf p(PrfId::kHmacSha256);
  const Bytes out = p.plus(Bytes(32, 1), Bytes(8, 2), 255 * 32);
  ASSERT_EQ(out.size(), 255u * 32);
  // Consecutive blocks differ (the counter is part of each block's input).
  EXPECT_NE(Bytes(out.end() - 64, out.end() - 32), Bytes(out.end() - 32, out.end()));
}

TEST(Sha1, Fips180Vectors) {
  EXPECT_EQ(to_hex(sha1(view("abc"))), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(to_hex(sha1({})), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(to_hex(sha1(view("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

}  // namespace
}  // namespace mobike::crypto
