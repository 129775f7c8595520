#include "crypto/mschapv2.h"

#include <openssl/evp.h>

#include <cstring>

#include "crypto/openssl_util.h"
#include "crypto/wipe.h"

namespace mobike::crypto::mschapv2 {

namespace {

std::uint32_t rotl(std::uint32_t x, int s) { return (x << s) | (x >> (32 - s)); }

void md4_block(std::uint32_t state[4], const std::uint8_t* block) {
  std::uint32_t x[16];
  for (int i = 0; i < 16; ++i)
    x[i] = std::uint32_t(block[4 * i]) | std::uint32_t(block[4 * i + 1]) << 8 |
           std::uint32_t(block[4 * i + 2]) << 16 | std::uint32_t(block[4 * i + 3]) << 24;
  std::uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  auto f = [](std::uint32_t u, std::uint32_t v, std::uint32_t w) { return (u & v) | (~u & w); };
  auto g = [](std::uint32_t u, std::uint32_t v, std::uint32_t w) { return (u & v) | (u & w) | (v & w); };
  auto h = [](std::uint32_t u, std::uint32_t v, std::uint32_t w) { return u ^ v ^ w; };
  // Round 1: each word in order, shifts 3 7 11 19.
  static constexpr int s1[4] = {3, 7, 11, 19};
  for (int i = 0; i < 16; ++i) {
    std::uint32_t t = a + f(b, c, d) + x[i];
    a = d, d = c, c = b, b = rotl(t, s1[i % 4]);
  }
  // Round 2: words by column, constant 0x5A827999, shifts 3 5 9 13.
  static constexpr int o2[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
  static constexpr int s2[4] = {3, 5, 9, 13};
  for (int i = 0; i < 16; ++i) {
    std::uint32_t t = a + g(b, c, d) + x[o2[i]] + 0x5A827999u;
    a = d, d = c, c = b, b = rotl(t, s2[i % 4]);
  }
  // Round 3: bit-reversed word order, constant 0x6ED9EBA1, shifts 3 9 11 15.
  static constexpr int o3[16] = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
  static constexpr int s3[4] = {3, 9, 11, 15};
  for (int i = 0; i < 16; ++i) {
    std::uint32_t t = a + h(b, c, d) + x[o3[i]] + 0x6ED9EBA1u;
    a = d, d = c, c = b, b = rotl(t, s3[i % 4]);
  }
  state[0] += a, state[1] += b, state[2] += c, state[3] += d;
  wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(x), sizeof x));
}

void sha1(std::initializer_list<ByteView> parts, std::uint8_t out[20]) {
  std::unique_ptr<EVP_MD_CTX, detail::Deleter<EVP_MD_CTX_free>> ctx(EVP_MD_CTX_new());
  unsigned len = 0;
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr) == 1;
  for (auto p : parts) ok = ok && EVP_DigestUpdate(ctx.get(), p.data(), p.size()) == 1;
  if (!ok || EVP_DigestFinal_ex(ctx.get(), out, &len) != 1 || len != 20) detail::fatal("SHA-1");
}

// The 8 octets RFC 2759 §8.2 encrypts: SHA-1(peer challenge | authenticator challenge | name).
std::array<std::uint8_t, 8> challenge_hash(const Challenge& peer, const Challenge& authenticator,
                                           std::string_view user_name) {
  std::uint8_t d[20];
  sha1({peer, authenticator, ByteView(reinterpret_cast<const std::uint8_t*>(user_name.data()), user_name.size())}, d);
  std::array<std::uint8_t, 8> out;
  std::memcpy(out.data(), d, 8);
  return out;
}

// DES with a 56-bit key spread over eight octets (parity bits left 0: DES ignores them).
void des_encrypt(const std::uint8_t key7[7], const std::uint8_t in[8], std::uint8_t out[8]) {
  std::uint8_t k[8];
  k[0] = key7[0] & 0xFE;
  for (int i = 1; i < 7; ++i) k[i] = static_cast<std::uint8_t>((key7[i - 1] << (8 - i)) | (key7[i] >> i)) & 0xFE;
  k[7] = static_cast<std::uint8_t>(key7[6] << 1);
  std::uint8_t k3[24];
  for (int i = 0; i < 3; ++i) std::memcpy(k3 + 8 * i, k, 8);
  detail::CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  EVP_CIPHER* des3 = EVP_CIPHER_fetch(nullptr, "DES-EDE3-ECB", nullptr);
  if (!ctx || !des3) detail::fatal("DES-EDE3-ECB");
  int len = 0, fin = 0;
  bool ok = EVP_EncryptInit_ex(ctx.get(), des3, nullptr, k3, nullptr) == 1 &&
            EVP_CIPHER_CTX_set_padding(ctx.get(), 0) == 1 && EVP_EncryptUpdate(ctx.get(), out, &len, in, 8) == 1 &&
            EVP_EncryptFinal_ex(ctx.get(), out + len, &fin) == 1;
  EVP_CIPHER_free(des3);
  wipe(std::span<std::uint8_t>(k3, sizeof k3));
  wipe(std::span<std::uint8_t>(k, sizeof k));
  if (!ok || len + fin != 8) detail::fatal("DES-EDE3-ECB encrypt");
}

Bytes utf16le(std::string_view utf8) {
  Bytes out;
  auto put = [&](std::uint32_t u) {
    out.push_back(static_cast<std::uint8_t>(u & 0xFF));
    out.push_back(static_cast<std::uint8_t>(u >> 8));
  };
  for (std::size_t i = 0; i < utf8.size();) {
    auto c = static_cast<std::uint8_t>(utf8[i]);
    std::uint32_t cp = c;
    std::size_t n = 1;
    if (c >= 0xF0) n = 4, cp = c & 0x07;
    else if (c >= 0xE0) n = 3, cp = c & 0x0F;
    else if (c >= 0xC0) n = 2, cp = c & 0x1F;
    if (i + n > utf8.size()) n = 1, cp = c;  // truncated sequence: taken octet by octet
    for (std::size_t k = 1; k < n; ++k) cp = cp << 6 | (static_cast<std::uint8_t>(utf8[i + k]) & 0x3F);
    i += n;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      put(0xD800 | (cp >> 10));
      put(0xDC00 | (cp & 0x3FF));
    } else {
      put(cp);
    }
  }
  return out;
}

constexpr char kMagic1[] = "Magic server to client signing constant";
constexpr char kMagic2[] = "Pad to make it do more than one iteration";
constexpr char kMasterMagic[] = "This is the MPPE Master Key";
constexpr char kClientSendMagic[] = "On the client side, this is the send key; on the server side, it is the receive key.";
constexpr char kClientReceiveMagic[] = "On the client side, this is the receive key; on the server side, it is the send key.";

ByteView text(const char* s, std::size_t n) { return ByteView(reinterpret_cast<const std::uint8_t*>(s), n); }
#define MAGIC(m) text(m, sizeof(m) - 1)

}  // namespace

Hash16 md4(ByteView data) {
  std::uint32_t state[4] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u};
  std::size_t full = data.size() / 64;
  for (std::size_t i = 0; i < full; ++i) md4_block(state, data.data() + 64 * i);
  // Padding: 0x80, zeros to 56 mod 64, then the bit length, little-endian.
  std::uint8_t tail[128] = {};
  std::size_t rest = data.size() - 64 * full;
  if (rest) std::memcpy(tail, data.data() + 64 * full, rest);
  tail[rest] = 0x80;
  std::size_t tail_len = rest < 56 ? 64 : 128;
  std::uint64_t bits = static_cast<std::uint64_t>(data.size()) * 8;
  for (int i = 0; i < 8; ++i) tail[tail_len - 8 + i] = static_cast<std::uint8_t>(bits >> (8 * i));
  for (std::size_t off = 0; off < tail_len; off += 64) md4_block(state, tail + off);
  wipe(std::span<std::uint8_t>(tail, sizeof tail));
  Hash16 out;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<std::uint8_t>(state[i] >> (8 * j));
  return out;
}

Hash16 nt_password_hash(std::string_view password) {
  Bytes u = utf16le(password);
  Hash16 h = md4(u);
  wipe(u);
  return h;
}

std::string_view user_name_of(std::string_view identity) {
  auto slash = identity.find('\\');
  return slash == std::string_view::npos ? identity : identity.substr(slash + 1);
}

NtResponse nt_response(const Challenge& authenticator_challenge, const Challenge& peer_challenge,
                       std::string_view user_name, const Hash16& password_hash) {
  auto ch = challenge_hash(peer_challenge, authenticator_challenge, user_name);
  std::uint8_t z[21] = {};
  std::memcpy(z, password_hash.data(), 16);
  NtResponse out;
  for (int i = 0; i < 3; ++i) des_encrypt(z + 7 * i, ch.data(), out.data() + 8 * i);
  wipe(std::span<std::uint8_t>(z, sizeof z));
  return out;
}

std::array<std::uint8_t, 20> authenticator_response(const Hash16& password_hash, const NtResponse& nt,
                                                    const Challenge& peer_challenge,
                                                    const Challenge& authenticator_challenge,
                                                    std::string_view user_name) {
  Hash16 hh = md4(password_hash);
  std::uint8_t digest[20];
  sha1({hh, nt, MAGIC(kMagic1)}, digest);
  auto ch = challenge_hash(peer_challenge, authenticator_challenge, user_name);
  std::array<std::uint8_t, 20> out;
  sha1({ByteView(digest, 20), ch, MAGIC(kMagic2)}, out.data());
  return out;
}

Hash16 master_key(const Hash16& password_hash, const NtResponse& nt) {
  Hash16 hh = md4(password_hash);
  std::uint8_t d[20];
  sha1({hh, nt, MAGIC(kMasterMagic)}, d);
  Hash16 out;
  std::memcpy(out.data(), d, 16);
  wipe(std::span<std::uint8_t>(hh));
  return out;
}

Hash16 asymmetric_start_key(const Hash16& master, bool is_send, bool is_server) {
  static constexpr std::uint8_t pad1[40] = {};
  std::uint8_t pad2[40];
  std::memset(pad2, 0xF2, sizeof pad2);
  // The client's send key is the server's receive key.
  const bool client_send = is_send != is_server;
  std::uint8_t d[20];
  sha1({master, ByteView(pad1, 40), client_send ? MAGIC(kClientSendMagic) : MAGIC(kClientReceiveMagic),
        ByteView(pad2, 40)},
       d);
  Hash16 out;
  std::memcpy(out.data(), d, 16);
  return out;
}

Bytes msk(const Hash16& password_hash, const NtResponse& nt) {
  Hash16 master = master_key(password_hash, nt);
  Hash16 receive = asymmetric_start_key(master, false, true);  // magic "client send": the server's receive key
  Hash16 send = asymmetric_start_key(master, true, true);
  Bytes out(receive.begin(), receive.end());
  out.insert(out.end(), send.begin(), send.end());
  out.resize(64, 0);
  wipe(std::span<std::uint8_t>(master));
  return out;
}

}  // namespace mobike::crypto::mschapv2
