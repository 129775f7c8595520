#include "crypto/mschapv2.h"

#include <gtest/gtest.h>

#include "common/bytes.h"

namespace mobike::crypto::mschapv2 {
namespace {

template <std::size_t N>
std::string hex_of(const std::array<std::uint8_t, N>& a) {
  return to_hex(ByteView(a.data(), a.size()));
}
template <std::size_t N>
std::array<std::uint8_t, N> arr(std::string_view hex) {
  auto b = from_hex(hex);
  std::array<std::uint8_t, N> a{};
  std::copy(b.begin(), b.end(), a.begin());
  return a;
}
ByteView text(std::string_view s) { return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

// RFC 1320 Appendix A.5.
TEST(Md4, Rfc1320Vectors) {
  EXPECT_EQ(hex_of(md4(text(""))), "31d6cfe0d16ae931b73c59d7e0c089c0");
  EXPECT_EQ(hex_of(md4(text("a"))), "bde52cb31de33e46245e05fbdbd6fb24");
  EXPECT_EQ(hex_of(md4(text("abc"))), "a448017aaf21d8525fc10ae87aa6729d");
  EXPECT_EQ(hex_of(md4(text("message digest"))), "d9130a8164549fe818874806e1c7014b");
  EXPECT_EQ(hex_of(md4(text("abcdefghijklmnopqrstuvwxyz"))), "d79e1c308aa5bbcdeea8ed63df412da9");
  EXPECT_EQ(hex_of(md4(text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))),
            "043f8582f241db351ce627e153e7f0e4");
  EXPECT_EQ(hex_of(md4(text("12345678901234567890123456789012345678901234567890123456789012345678901234567890"))),
            "e33b4ddc9c38f2199c3e7b164fcc0536");
}

// RFC 2759 §9.2.
TEST(MsChapV2, Rfc2759Vectors) {
  const auto auth_challenge = arr<16>("5b5d7c7d7b3f2f3e3c2c602132262628");
  const auto peer_challenge = arr<16>("21402324255e262a28295f2b3a337c7e");
  const Hash16 ph = nt_password_hash("clientPass");
  EXPECT_EQ(hex_of(ph), "44ebba8d5312b8d611474411f56989ae");
  EXPECT_EQ(hex_of(md4(ph)), "41c00c584bd2d91c4017a2a12fa59f3f");
  const NtResponse nt = nt_response(auth_challenge, peer_challenge, "User", ph);
  EXPECT_EQ(hex_of(nt), "82309ecd8d708b5ea08faa3981cd83544233114a3d85d6df");
  EXPECT_EQ(hex_of(authenticator_response(ph, nt, peer_challenge, auth_challenge, "User")),
            "407a5589115fd0d6209f510fe9c04566932cda56");
  // The name the hashes cover drops a domain prefix.
  EXPECT_EQ(user_name_of("CORP\\User"), "User");
  EXPECT_EQ(user_name_of("User"), "User");
  EXPECT_EQ(hex_of(nt_response(auth_challenge, peer_challenge, user_name_of("CORP\\User"), ph)), hex_of(nt));
}

// RFC 3079 §3.5.3 (128-bit keys from the same password and NT-Response).
TEST(MsChapV2, Rfc3079MasterKeys) {
  const Hash16 ph = nt_password_hash("clientPass");
  const auto nt = arr<24>("82309ecd8d708b5ea08faa3981cd83544233114a3d85d6df");
  const Hash16 master = master_key(ph, nt);
  EXPECT_EQ(hex_of(master), "fdece3717a8c838cb388e527ae3cdd31");
  // The server's send key (Magic3); the server's receive key is the client's send key.
  EXPECT_EQ(hex_of(asymmetric_start_key(master, true, true)), "8b7cdc149b993a1ba118cb153f56dccb");
  EXPECT_EQ(asymmetric_start_key(master, true, true), asymmetric_start_key(master, false, false));
  EXPECT_EQ(asymmetric_start_key(master, false, true), asymmetric_start_key(master, true, false));
  EXPECT_NE(asymmetric_start_key(master, false, true), asymmetric_start_key(master, true, true));
  // MSK = MasterReceiveKey | MasterSendKey | 32 zeros, the server's receive key first.
  Bytes k = msk(ph, nt);
  ASSERT_EQ(k.size(), 64u);
  EXPECT_EQ(to_hex(ByteView(k).subspan(0, 16)), hex_of(asymmetric_start_key(master, false, true)));
  EXPECT_EQ(to_hex(ByteView(k).subspan(16, 16)), "8b7cdc149b993a1ba118cb153f56dccb");
  EXPECT_EQ(Bytes(k.begin() + 32, k.end()), Bytes(32, 0));
}

TEST(MsChapV2, PasswordsBeyondAscii) {
  // "ü" is U+00FC: FC 00 in UTF-16LE; an emoji becomes a surrogate pair.
  EXPECT_EQ(nt_password_hash("\xc3\xbc"), md4(from_hex("fc00")));
  EXPECT_EQ(nt_password_hash("\xf0\x9f\x94\x91"), md4(from_hex("3dd811dd")));
}

}  // namespace
}  // namespace mobike::crypto::mschapv2
