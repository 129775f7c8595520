// Key derivation checked against a real strongSwan 5.9.8 session (tests/data/crypto/
// strongswan-5.9.8-session.txt, extracted from a recorded session with keys logged): IKE SA
// AES_CBC_128 / HMAC_SHA2_256_128 / PRF_HMAC_SHA2_256 / CURVE_25519, Child SA ESP
// AES_GCM_16_128 without PFS, then an IKE SA rekey.
#include "crypto/key_derivation.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "crypto/aead.h"
#include "crypto/dh.h"
#include "crypto/sk_cipher.h"
#include "test_data.h"

namespace mobike::crypto {
namespace {

using test::hex;
using test::view;

std::uint64_t be64(const Bytes& b) {
  EXPECT_EQ(b.size(), 8u);
  std::uint64_t v = 0;
  for (auto x : b) v = v << 8 | x;
  return v;
}

bool contains(const Bytes& hay, const Bytes& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

class StrongswanSession : public ::testing::Test {
 protected:
  const test::VectorFile v{"strongswan-5.9.8-session.txt"};
  const Prf prf{PrfId::kHmacSha256};
  // AES-CBC-128 key and HMAC-SHA2-256-128 key, per direction.
  const IkeKeySizes sizes{16, 32};

  void expect_keys(const std::string& sa, const IkeKeys& k) {
    EXPECT_EQ(to_hex(k.sk_d), to_hex(v[sa + ".sk_d"]));
    EXPECT_EQ(to_hex(k.sk_ai), to_hex(v[sa + ".sk_ai"]));
    EXPECT_EQ(to_hex(k.sk_ar), to_hex(v[sa + ".sk_ar"]));
    EXPECT_EQ(to_hex(k.sk_ei), to_hex(v[sa + ".sk_ei"]));
    EXPECT_EQ(to_hex(k.sk_er), to_hex(v[sa + ".sk_er"]));
    EXPECT_EQ(to_hex(k.sk_pi), to_hex(v[sa + ".sk_pi"]));
    EXPECT_EQ(to_hex(k.sk_pr), to_hex(v[sa + ".sk_pr"]));
  }

  // Opens the SK payload of a logged message whose first payload is SK (the header's
  // Next Payload is 46): prefix = 28-octet IKE header + 4-octet SK header.
  Expected<Bytes, std::string> open_message(const Bytes& msg, const Bytes& encr_key,
                                            const Bytes& integ_key) {
    EXPECT_EQ(msg.at(16), 46);
    auto c = SkCipher::create({EncrId::kAesCbc, 128, IntegId::kHmacSha256_128}, encr_key,
                              integ_key);
    if (!c) return unexpected(c.error());
    return (*c)->open(ByteView(msg).first(32), ByteView(msg).subspan(32));
  }
};

TEST_F(StrongswanSession, SkeyseedAndIkeSaKeys) {
  EXPECT_EQ(v["ike1.ke_i"].size(), dh_public_size(DhGroupId::kCurve25519));
  EXPECT_EQ(v["ike1.ke_r"].size(), dh_public_size(DhGroupId::kCurve25519));
  const Bytes seed = skeyseed(prf, v["ike1.ni"], v["ike1.nr"], v["ike1.g_ir"]);
  EXPECT_EQ(to_hex(seed), to_hex(v["ike1.skeyseed"]));
  const IkeKeys k = derive_ike_keys(prf, seed, v["ike1.ni"], v["ike1.nr"], be64(v["ike1.spi_i"]),
                                    be64(v["ike1.spi_r"]), sizes);
  expect_keys("ike1", k);
}

TEST_F(StrongswanSession, IkeSaRekey) {
  // RFC 7296 §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), new SPIs in the seed.
  const Bytes seed =
      skeyseed_rekey(prf, v["ike1.sk_d"], v["ike2.g_ir"], v["ike2.ni"], v["ike2.nr"]);
  EXPECT_EQ(to_hex(seed), to_hex(v["ike2.skeyseed"]));
  const IkeKeys k = derive_ike_keys(prf, seed, v["ike2.ni"], v["ike2.nr"], be64(v["ike2.spi_i"]),
                                    be64(v["ike2.spi_r"]), sizes);
  expect_keys("ike2", k);
  // Swapping the nonce order (a classic rekey bug) gives different keys.
  EXPECT_NE(skeyseed_rekey(prf, v["ike1.sk_d"], v["ike2.g_ir"], v["ike2.nr"], v["ike2.ni"]),
            seed);
}

TEST_F(StrongswanSession, PskAuthValues) {
  EXPECT_EQ(v["psk"], to_bytes("testbed-shared-secret"));
  EXPECT_EQ(to_hex(psk_auth(prf, v["psk"], v["ike1.auth_octets_i"])), to_hex(v["ike1.auth_i"]));
  EXPECT_EQ(to_hex(psk_auth(prf, v["psk"], v["ike1.auth_octets_r"])), to_hex(v["ike1.auth_r"]));
  // The signed octets end with prf(SK_px, IDx'); rebuild that tail from the derived keys.
  // IDi' = ID type 3 (RFC822) + 3 reserved octets + "ini@example.test".
  Bytes idi = hex("03000000");
  append(idi, view("ini@example.test"));
  const Bytes mac_i = prf.compute(v["ike1.sk_pi"], idi);
  const Bytes& oct_i = v["ike1.auth_octets_i"];
  EXPECT_TRUE(std::equal(mac_i.begin(), mac_i.end(), oct_i.end() - 32));
  // ... preceded by Nr (RFC 7296 §2.15: RealMessage1 | NonceRData | MACedIDForI).
  const Bytes& nr = v["ike1.nr"];
  EXPECT_TRUE(std::equal(nr.begin(), nr.end(), oct_i.end() - 32 - static_cast<long>(nr.size())));
}

TEST_F(StrongswanSession, NatDetectionHash) {
  EXPECT_EQ(to_hex(sha1(v["natd.input"])), to_hex(v["natd.sha1"]));
}

TEST_F(StrongswanSession, DecryptsIkeAuthRequest) {
  const Bytes& msg = v["ike1.auth_request"];
  auto inner = open_message(msg, v["ike1.sk_ei"], v["ike1.sk_ai"]);
  ASSERT_TRUE(inner) << inner.error();
  EXPECT_EQ(to_hex(*inner), to_hex(v["ike1.auth_request_inner"]));
  // SK's Next Payload is IDi (35); IDi: next N (41), length 24, RFC822 "ini@example.test".
  EXPECT_EQ(msg[28], 35);
  Bytes idi = hex("2900001803000000");
  append(idi, view("ini@example.test"));
  ASSERT_GE(inner->size(), idi.size());
  EXPECT_EQ(Bytes(inner->begin(), inner->begin() + static_cast<long>(idi.size())), idi);
  // The AUTH payload inside carries the value psk_auth() computes.
  EXPECT_TRUE(contains(*inner, v["ike1.auth_i"]));
  // The responder-to-initiator keys must not open it.
  EXPECT_FALSE(open_message(msg, v["ike1.sk_er"], v["ike1.sk_ar"]));
}

TEST_F(StrongswanSession, DecryptsIkeAuthResponse) {
  const Bytes& msg = v["ike1.auth_response"];
  auto inner = open_message(msg, v["ike1.sk_er"], v["ike1.sk_ar"]);
  ASSERT_TRUE(inner) << inner.error();
  EXPECT_EQ(to_hex(*inner), to_hex(v["ike1.auth_response_inner"]));
  Bytes idr = hex("2700001803000000");
  append(idr, view("res@example.test"));
  EXPECT_EQ(Bytes(inner->begin(), inner->begin() + static_cast<long>(idr.size())), idr);
  // AUTH follows IDr: header 21 00 00 28, method 2 (shared key MIC), 3 reserved octets.
  Bytes auth = hex("2100002802000000");
  append(auth, v["ike1.auth_r"]);
  EXPECT_TRUE(contains(*inner, auth));
}

TEST_F(StrongswanSession, DecryptsRekeyRequestAndMessageOnRekeyedSa) {
  auto rekey = open_message(v["ike1.rekey_request"], v["ike1.sk_ei"], v["ike1.sk_ai"]);
  ASSERT_TRUE(rekey) << rekey.error();
  EXPECT_TRUE(contains(*rekey, v["ike2.ni"]));
  EXPECT_TRUE(contains(*rekey, v["ike2.spi_i"]));

  // The final DELETE travels on the new SA: Delete payload, protocol IKE, no SPIs.
  const Bytes& del = v["ike2.delete_request"];
  EXPECT_EQ(Bytes(del.begin(), del.begin() + 8), v["ike2.spi_i"]);
  auto inner = open_message(del, v["ike2.sk_ei"], v["ike2.sk_ai"]);
  ASSERT_TRUE(inner) << inner.error();
  EXPECT_EQ(to_hex(*inner), "0000000801000000");
  EXPECT_EQ(to_hex(*inner), to_hex(v["ike2.delete_request_inner"]));
  EXPECT_FALSE(open_message(del, v["ike1.sk_ei"], v["ike1.sk_ai"]));
}

TEST_F(StrongswanSession, ChildSaKeymatDecryptsEsp) {
  // AES-GCM-16-128: 16-octet key + 4-octet salt per direction, initiator's first.
  const Bytes keymat = child_keymat(prf, v["ike1.sk_d"], {}, v["ike1.ni"], v["ike1.nr"], 40);
  EXPECT_EQ(to_hex(keymat), to_hex(v["child1.keymat"]));

  struct Dir {
    const char* packet;
    std::size_t off;
    const char* src;
    const char* dst;
  };
  // Inner addresses: initiator 10.1.99.2, responder's protected host 192.0.2.1.
  for (const Dir& d : {Dir{"child1.esp_i_to_r", 0, "0a016302", "c0000201"},
                       Dir{"child1.esp_r_to_i", 20, "c0000201", "0a016302"}}) {
    SCOPED_TRACE(d.packet);
    const Bytes& esp = v[d.packet];
    auto aead = Aead::create(AeadAlg::kAes128Gcm, ByteView(keymat).subspan(d.off, 16));
    ASSERT_TRUE(aead);
    // RFC 4106: nonce = salt || 8-octet IV; AAD = SPI || 32-bit sequence number.
    Bytes nonce(keymat.begin() + static_cast<long>(d.off + 16),
                keymat.begin() + static_cast<long>(d.off + 20));
    append(nonce, ByteView(esp).subspan(8, 8));
    auto plain = aead->open(nonce, ByteView(esp).first(8), ByteView(esp).subspan(16));
    ASSERT_TRUE(plain) << plain.error();
    ASSERT_GE(plain->size(), 22u);
    EXPECT_EQ((*plain)[0], 0x45);  // IPv4, 20-octet header
    EXPECT_EQ((*plain)[9], 1);     // ICMP
    EXPECT_EQ(to_hex(ByteView(*plain).subspan(12, 4)), d.src);
    EXPECT_EQ(to_hex(ByteView(*plain).subspan(16, 4)), d.dst);
    EXPECT_EQ(plain->back(), 4);  // ESP trailer Next Header: IPv4
  }
}

TEST(KeyDerivation, SizesAndSplitOrder) {
  // The split must follow RFC 7296 §2.14's order; check it against prf+ directly.
  const Prf prf(PrfId::kHmacSha384);
  const Bytes seed = hex("0102030405060708"), ni(32, 0x11), nr(24, 0x22);
  const IkeKeySizes sizes{36, 0};  // AES-GCM-256: key + salt, no integrity keys
  const IkeKeys k = derive_ike_keys(prf, seed, ni, nr, 0x0102030405060708ull,
                                    0x1112131415161718ull, sizes);
  Bytes s = ni;
  append(s, nr);
  append(s, hex("01020304050607081112131415161718"));
  const Bytes all = prf.plus(seed, s, 48 * 3 + 36 * 2);
  Bytes joined;
  for (const Bytes* b : {&k.sk_d, &k.sk_ai, &k.sk_ar, &k.sk_ei, &k.sk_er, &k.sk_pi, &k.sk_pr})
    append(joined, *b);
  EXPECT_EQ(joined, all);
  EXPECT_EQ(k.sk_d.size(), 48u);
  EXPECT_TRUE(k.sk_ai.empty());
  EXPECT_EQ(k.sk_ei.size(), 36u);
  EXPECT_EQ(k.sk_pr.size(), 48u);
}

TEST(KeyDerivation, ChildKeymatWithPfsPrependsSharedSecret) {
  const Prf prf(PrfId::kHmacSha256);
  const Bytes sk_d(32, 1), gir(32, 2), ni(16, 3), nr(16, 4);
  Bytes s = gir;
  append(s, ni);
  append(s, nr);
  EXPECT_EQ(child_keymat(prf, sk_d, gir, ni, nr, 72), prf.plus(sk_d, s, 72));
  EXPECT_NE(child_keymat(prf, sk_d, gir, ni, nr, 72), child_keymat(prf, sk_d, {}, ni, nr, 72));
}

TEST(KeyDerivation, SkeyseedUsesNonceConcatenationAsKey) {
  const Prf prf(PrfId::kHmacSha512);
  const Bytes ni(20, 5), nr(40, 6), gir(64, 7);
  Bytes key = ni;
  append(key, nr);
  EXPECT_EQ(skeyseed(prf, ni, nr, gir), prf.compute(key, gir));
  EXPECT_EQ(skeyseed(prf, ni, nr, gir).size(), 64u);
}

}  // namespace
}  // namespace mobike::crypto
