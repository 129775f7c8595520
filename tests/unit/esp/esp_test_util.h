// Shared by the ESP tests: suites, keys, inner packet builders, vector files, and an
// ESP encryptor/decryptor written directly against OpenSSL's EVP API so that tests can
// build packets our OutboundEspSa never would (bad padding, odd next headers) and check
// its output without trusting its own code.
#pragma once

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "crypto/random.h"
#include "esp/esp_sa.h"

namespace mobike::esp::test {

inline Bytes hex(std::string_view s) {
  Bytes b = from_hex(s);
  if (b.empty() && !s.empty()) throw std::invalid_argument("bad hex literal");
  return b;
}

class VectorFile {
 public:
  explicit VectorFile(const std::string& name) {
    const std::string path = std::string(MOBIKE_TEST_DATA) + "/esp/" + name;
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      const auto eq = line.find(" = ");
      if (eq == std::string::npos) throw std::runtime_error("bad line in " + path);
      values_[line.substr(0, eq)] = hex(line.substr(eq + 3));
    }
  }
  const Bytes& operator[](const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) throw std::out_of_range("missing vector " + key);
    return it->second;
  }
  bool has(const std::string& key) const { return values_.count(key) != 0; }

 private:
  std::map<std::string, Bytes> values_;
};

struct Suite {
  const char* name;
  std::uint16_t encr;
  std::uint16_t bits;
  std::uint16_t integ;
  bool aead() const { return encr != 12; }
  std::size_t encr_key_size() const { return bits / 8u + (aead() ? 4 : 0); }
  std::size_t integ_key_size() const { return integ == 12 ? 32 : integ == 13 ? 48 : integ == 14 ? 64 : 0; }
  std::size_t icv_size() const { return aead() ? 16 : integ_key_size() / 2; }
  std::size_t iv_size() const { return aead() ? 8 : 16; }
  const char* digest() const { return integ == 12 ? "SHA256" : integ == 13 ? "SHA384" : "SHA512"; }
  const EVP_CIPHER* cipher() const {
    if (encr == 28) return EVP_chacha20_poly1305();
    if (encr == 20) return bits == 128 ? EVP_aes_128_gcm() : bits == 192 ? EVP_aes_192_gcm() : EVP_aes_256_gcm();
    return bits == 128 ? EVP_aes_128_cbc() : bits == 192 ? EVP_aes_192_cbc() : EVP_aes_256_cbc();
  }
};

inline const Suite kSuites[] = {
    {"aes128gcm16", 20, 128, 0},      {"aes192gcm16", 20, 192, 0},   {"aes256gcm16", 20, 256, 0},
    {"chacha20poly1305", 28, 256, 0}, {"aes128-sha256", 12, 128, 12}, {"aes192-sha384", 12, 192, 13},
    {"aes256-sha512", 12, 256, 14},   {"aes256-sha256", 12, 256, 12},
};

inline std::string suite_name(const Suite& s) {
  std::string n = s.name;
  for (char& c : n)
    if (c == '-') c = '_';
  return n;
}

// Key material for one SA direction; `seed` makes each direction's keys different.
struct Keys {
  Bytes encr, integ;
};
inline Keys make_keys(const Suite& s, std::uint64_t seed) {
  crypto::SeededRandom r(seed);
  return {r.bytes(s.encr_key_size()), r.bytes(s.integ_key_size())};
}

inline EspSaParams params(const Suite& s, const Keys& k, std::uint32_t spi, bool esn = false) {
  EspSaParams p;
  p.spi = spi;
  p.encr_id = s.encr;
  p.encr_key_bits = s.bits;
  p.integ_id = s.integ;
  p.esn = esn;
  p.encr_key = k.encr;
  p.integ_key = k.integ;
  return p;
}

// IPv4 packet of `total` octets (>= 28) with a UDP/TCP/ICMP-looking header.
inline Bytes ipv4_packet(std::string_view src, std::string_view dst, std::size_t total,
                         std::uint8_t proto = 17, std::uint16_t sport = 1000, std::uint16_t dport = 2000) {
  Bytes p(total);
  p[0] = 0x45;
  p[2] = static_cast<std::uint8_t>(total >> 8);
  p[3] = static_cast<std::uint8_t>(total);
  p[8] = 64;
  p[9] = proto;
  const IpAddress s = *IpAddress::parse(src), d = *IpAddress::parse(dst);
  std::memcpy(&p[12], s.bytes().data(), 4);
  std::memcpy(&p[16], d.bytes().data(), 4);
  p[20] = static_cast<std::uint8_t>(sport >> 8);
  p[21] = static_cast<std::uint8_t>(sport);
  p[22] = static_cast<std::uint8_t>(dport >> 8);
  p[23] = static_cast<std::uint8_t>(dport);
  for (std::size_t i = 28; i < total; ++i) p[i] = static_cast<std::uint8_t>(i * 31);
  return p;
}

// IPv6 packet of `total` octets (>= 48) whose next header is `proto`.
inline Bytes ipv6_packet(std::string_view src, std::string_view dst, std::size_t total,
                         std::uint8_t proto = 17, std::uint16_t sport = 1000, std::uint16_t dport = 2000) {
  Bytes p(total);
  p[0] = 0x60;
  p[4] = static_cast<std::uint8_t>((total - 40) >> 8);
  p[5] = static_cast<std::uint8_t>(total - 40);
  p[6] = proto;
  p[7] = 64;
  const IpAddress s = *IpAddress::parse(src), d = *IpAddress::parse(dst);
  std::memcpy(&p[8], s.bytes().data(), 16);
  std::memcpy(&p[24], d.bytes().data(), 16);
  p[40] = static_cast<std::uint8_t>(sport >> 8);
  p[41] = static_cast<std::uint8_t>(sport);
  p[42] = static_cast<std::uint8_t>(dport >> 8);
  p[43] = static_cast<std::uint8_t>(dport);
  for (std::size_t i = 48; i < total; ++i) p[i] = static_cast<std::uint8_t>(i * 17);
  return p;
}

inline void put32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

inline Bytes hmac(const char* digest, ByteView key, ByteView data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t n = 0;
  if (!EVP_Q_mac(nullptr, "HMAC", nullptr, digest, nullptr, key.data(), key.size(), data.data(), data.size(),
                 out, sizeof out, &n))
    throw std::runtime_error("EVP_Q_mac");
  return Bytes(out, out + n);
}

// ESP packet around `plaintext` (payload, padding, Pad Length and Next Header as the
// test wants them; for CBC a multiple of 16 octets). AEAD: IV = `iv` (8 octets);
// CBC: IV = `iv` (16 octets).
inline Bytes reference_encrypt(const Suite& s, const Keys& k, std::uint32_t spi, std::uint64_t seq, bool esn,
                               ByteView plaintext, ByteView iv) {
  Bytes out(8);
  put32(out.data(), spi);
  put32(out.data() + 4, static_cast<std::uint32_t>(seq));
  append(out, iv);
  Bytes ct(plaintext.size() + 16);
  int len = 0, fin = 0;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (s.aead()) {
    const std::size_t kl = k.encr.size() - 4;
    Bytes nonce(k.encr.begin() + static_cast<long>(kl), k.encr.end());
    append(nonce, iv);
    Bytes aad(out.begin(), out.begin() + 4);
    if (esn) {
      std::uint8_t hi[4];
      put32(hi, static_cast<std::uint32_t>(seq >> 32));
      append(aad, ByteView(hi, 4));
    }
    append(aad, ByteView(out.data() + 4, 4));
    std::uint8_t tag[16];
    if (EVP_EncryptInit_ex2(ctx, s.cipher(), k.encr.data(), nonce.data(), nullptr) != 1 ||
        EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
        EVP_EncryptUpdate(ctx, ct.data(), &len, plaintext.data(), static_cast<int>(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx, ct.data() + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1)
      throw std::runtime_error("reference AEAD");
    ct.resize(plaintext.size());
    append(out, ct);
    append(out, ByteView(tag, 16));
  } else {
    if (EVP_EncryptInit_ex2(ctx, s.cipher(), k.encr.data(), iv.data(), nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
        EVP_EncryptUpdate(ctx, ct.data(), &len, plaintext.data(), static_cast<int>(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx, ct.data() + len, &fin) != 1)
      throw std::runtime_error("reference CBC");
    ct.resize(plaintext.size());
    append(out, ct);
    Bytes mac_in = out;
    if (esn) {
      std::uint8_t hi[4];
      put32(hi, static_cast<std::uint32_t>(seq >> 32));
      append(mac_in, ByteView(hi, 4));
    }
    Bytes icv = hmac(s.digest(), k.integ, mac_in);
    icv.resize(s.icv_size());
    append(out, icv);
  }
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

// The plaintext (payload || padding || Pad Length || Next Header) of an ESP packet,
// or nullopt when its ICV does not verify.
inline std::optional<Bytes> reference_decrypt(const Suite& s, const Keys& k, std::uint64_t seq, bool esn,
                                              ByteView packet) {
  const std::size_t hdr = 8 + s.iv_size();
  if (packet.size() < hdr + s.icv_size()) return std::nullopt;
  const std::size_t n = packet.size() - hdr - s.icv_size();
  ByteView iv = packet.subspan(8, s.iv_size()), ct = packet.subspan(hdr, n), icv = packet.subspan(hdr + n);
  std::uint8_t hi[4];
  put32(hi, static_cast<std::uint32_t>(seq >> 32));
  Bytes pt(n + 16);
  int len = 0, fin = 0;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  bool ok = true;
  if (s.aead()) {
    const std::size_t kl = k.encr.size() - 4;
    Bytes nonce(k.encr.begin() + static_cast<long>(kl), k.encr.end());
    append(nonce, iv);
    Bytes aad(packet.begin(), packet.begin() + 4);
    if (esn) append(aad, ByteView(hi, 4));
    append(aad, packet.subspan(4, 4));
    Bytes tag(icv.begin(), icv.end());
    ok = EVP_DecryptInit_ex2(ctx, s.cipher(), k.encr.data(), nonce.data(), nullptr) == 1 &&
         EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1 &&
         EVP_DecryptUpdate(ctx, pt.data(), &len, ct.data(), static_cast<int>(n)) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag.data()) == 1 &&
         EVP_DecryptFinal_ex(ctx, pt.data() + len, &fin) == 1;
  } else {
    Bytes mac_in(packet.begin(), packet.begin() + static_cast<long>(hdr + n));
    if (esn) append(mac_in, ByteView(hi, 4));
    Bytes mac = hmac(s.digest(), k.integ, mac_in);
    ok = std::equal(icv.begin(), icv.end(), mac.begin()) &&
         EVP_DecryptInit_ex2(ctx, s.cipher(), k.encr.data(), iv.data(), nullptr) == 1 &&
         EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
         EVP_DecryptUpdate(ctx, pt.data(), &len, ct.data(), static_cast<int>(n)) == 1 &&
         EVP_DecryptFinal_ex(ctx, pt.data() + len, &fin) == 1;
  }
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return std::nullopt;
  pt.resize(n);
  return pt;
}

// Hands out exactly the bytes queued, to reproduce given AES-CBC IVs.
class QueuedRandom final : public crypto::Random {
 public:
  void push(ByteView b) { q_.insert(q_.end(), b.begin(), b.end()); }
  void fill(std::span<std::uint8_t> out) override {
    if (q_.size() < out.size()) throw std::runtime_error("QueuedRandom ran dry");
    for (auto& b : out) {
      b = q_.front();
      q_.pop_front();
    }
  }

 private:
  std::deque<std::uint8_t> q_;
};

}  // namespace mobike::esp::test
