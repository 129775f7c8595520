#include "esp/esp_sa.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>
#include <string_view>

#include "common/transform_ids.h"
#include "esp/inner_packet.h"

namespace mobike::esp {

const char* to_string(Drop d) {
  switch (d) {
    case Drop::kMalformed: return "malformed";
    case Drop::kUnknownSpi: return "unknown SPI";
    case Drop::kNoPolicy: return "no policy";
    case Drop::kReplay: return "replay";
    case Drop::kAuth: return "authentication";
    case Drop::kPadding: return "padding";
    case Drop::kNextHeader: return "next header";
    case Drop::kDummy: return "dummy packet";
    case Drop::kPolicy: return "policy";
    case Drop::kSeqOverflow: return "sequence number overflow";
    case Drop::kBufferTooSmall: return "buffer too small";
    case Drop::kExpired: return "expired";
    case Drop::kInternal: return "internal";
  }
  return "?";
}

SaCounters::SaCounters(const SaCounters& o)
    : packets(o.packets), bytes(o.bytes), drops_(o.drops_ ? std::make_unique<Drops>(*o.drops_) : nullptr) {}

SaCounters& SaCounters::operator=(const SaCounters& o) {
  if (this != &o) *this = SaCounters(o);
  return *this;
}

std::uint64_t SaCounters::dropped_total() const {
  return drops_ ? std::accumulate(drops_->begin(), drops_->end(), std::uint64_t{0}) : 0;
}

void SaCounters::count(Drop d) {
  if (!drops_) drops_ = std::make_unique<Drops>();  // zeroed
  ++(*drops_)[static_cast<std::size_t>(d)];
}

namespace {

// The transform ids as the engine hands them over (plain numbers, for switch cases).
constexpr std::uint16_t kEncrAesCbc = transform_number(EncrId::kAesCbc);
constexpr std::uint16_t kEncrAesGcm16 = transform_number(EncrId::kAesGcm16);
constexpr std::uint16_t kEncrChaCha20Poly1305 = transform_number(EncrId::kChaCha20Poly1305);
constexpr std::uint16_t kIntegSha256 = transform_number(IntegId::kHmacSha256_128);
constexpr std::uint16_t kIntegSha384 = transform_number(IntegId::kHmacSha384_192);
constexpr std::uint16_t kIntegSha512 = transform_number(IntegId::kHmacSha512_256);
constexpr std::uint8_t kNextHeaderIpv4 = 4, kNextHeaderIpv6 = 41, kNextHeaderNone = 59;
// Larger than any IPv4 or (non-jumbo) IPv6 packet; keeps every length an OpenSSL int.
constexpr std::size_t kMaxInner = 65535 + 40;

void put32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
std::uint32_t get32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
std::uint16_t get16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

namespace detail {

// Why the provider is called directly instead of through an EVP_CIPHER_CTX:
// - memory: the EVP_CIPHER_CTX is a 184-octet allocation around the provider's own
//   context, two per Child SA, and a gateway holds one Child SA per client;
// - time: re-initialising an EVP_CIPHER_CTX for each packet's IV asks the provider
//   for the IV length and sets the padding again, each an OSSL_PARAM exchange
//   (OSSL_PARAM_locate and strcmp were a quarter of the instructions per packet).
// The calls below are the ones EVP makes (evp_enc.c), with the same arguments, into
// the implementation of that name in the provider EVP_CIPHER_fetch() selects (a
// provider offers one implementation per cipher name), so the choice of provider is
// the same as through EVP.
struct ProviderCipher {
  EVP_CIPHER* fetched = nullptr;  // held for good: keeps the provider loaded
  void* provctx = nullptr;
  OSSL_FUNC_cipher_newctx_fn* newctx = nullptr;
  OSSL_FUNC_cipher_freectx_fn* freectx = nullptr;
  OSSL_FUNC_cipher_encrypt_init_fn* einit = nullptr;
  OSSL_FUNC_cipher_decrypt_init_fn* dinit = nullptr;
  OSSL_FUNC_cipher_update_fn* update = nullptr;
  OSSL_FUNC_cipher_final_fn* final = nullptr;
  OSSL_FUNC_cipher_get_ctx_params_fn* get_ctx_params = nullptr;
  OSSL_FUNC_cipher_set_ctx_params_fn* set_ctx_params = nullptr;
};

CipherCtx& CipherCtx::operator=(CipherCtx&& o) noexcept {
  if (this != &o) {
    if (ctx_) impl_->freectx(ctx_);
    impl_ = o.impl_;
    ctx_ = std::exchange(o.ctx_, nullptr);
  }
  return *this;
}

// The provider's freectx cleanses the key schedule.
CipherCtx::~CipherCtx() { reset(); }

void CipherCtx::reset() {
  if (ctx_) impl_->freectx(std::exchange(ctx_, nullptr));
}

}  // namespace detail

namespace {

using detail::ProviderCipher;

bool names_include(const char* names, const EVP_CIPHER* cipher) {
  // "AES-128-GCM:id-aes128-GCM:2.16.840.1.101.3.4.1.6": one implementation, its names.
  const std::string_view all(names);
  for (std::size_t at = 0; at <= all.size();) {
    const std::size_t end = std::min(all.find(':', at), all.size());
    if (EVP_CIPHER_is_a(cipher, std::string(all.substr(at, end - at)).c_str())) return true;
    at = end + 1;
  }
  return false;
}

// The implementation EVP_CIPHER_fetch() picks for `name`, or nullopt when there is
// none or it lacks one of the functions used here.
std::optional<ProviderCipher> resolve(const char* name) {
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, name, nullptr);
  if (!cipher) return std::nullopt;
  const OSSL_PROVIDER* prov = EVP_CIPHER_get0_provider(cipher);
  int no_cache = 0;
  const OSSL_ALGORITHM* algs = OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache);
  ProviderCipher r;
  r.fetched = cipher;
  r.provctx = OSSL_PROVIDER_get0_provider_ctx(prov);
  for (const OSSL_ALGORITHM* a = algs; a && a->algorithm_names; ++a) {
    if (!names_include(a->algorithm_names, cipher)) continue;
    for (const OSSL_DISPATCH* f = a->implementation; f->function_id != 0; ++f) {
      switch (f->function_id) {
        case OSSL_FUNC_CIPHER_NEWCTX: r.newctx = OSSL_FUNC_cipher_newctx(f); break;
        case OSSL_FUNC_CIPHER_FREECTX: r.freectx = OSSL_FUNC_cipher_freectx(f); break;
        case OSSL_FUNC_CIPHER_ENCRYPT_INIT: r.einit = OSSL_FUNC_cipher_encrypt_init(f); break;
        case OSSL_FUNC_CIPHER_DECRYPT_INIT: r.dinit = OSSL_FUNC_cipher_decrypt_init(f); break;
        case OSSL_FUNC_CIPHER_UPDATE: r.update = OSSL_FUNC_cipher_update(f); break;
        case OSSL_FUNC_CIPHER_FINAL: r.final = OSSL_FUNC_cipher_final(f); break;
        case OSSL_FUNC_CIPHER_GET_CTX_PARAMS: r.get_ctx_params = OSSL_FUNC_cipher_get_ctx_params(f); break;
        case OSSL_FUNC_CIPHER_SET_CTX_PARAMS: r.set_ctx_params = OSSL_FUNC_cipher_set_ctx_params(f); break;
        default: break;
      }
    }
    break;
  }
  // As EVP does after copying the function pointers out of the table.
  if (algs) OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);
  if (!r.newctx || !r.freectx || !r.einit || !r.dinit || !r.update || !r.final || !r.get_ctx_params ||
      !r.set_ctx_params) {
    EVP_CIPHER_free(cipher);
    return std::nullopt;
  }
  return r;
}

// Resolved once per process.
struct Ciphers {
  std::optional<ProviderCipher> cbc[3];  // AES-128, -192, -256
  std::optional<ProviderCipher> gcm[3];
  std::optional<ProviderCipher> chacha;
};

const Ciphers& ciphers() {
  static const Ciphers c = [] {
    Ciphers r;
    const char* cbc[] = {"AES-128-CBC", "AES-192-CBC", "AES-256-CBC"};
    const char* gcm[] = {"AES-128-GCM", "AES-192-GCM", "AES-256-GCM"};
    for (int i = 0; i < 3; ++i) {
      r.cbc[i] = resolve(cbc[i]);
      r.gcm[i] = resolve(gcm[i]);
    }
    r.chacha = resolve("ChaCha20-Poly1305");
    ERR_clear_error();
    return r;
  }();
  return c;
}

// The AEAD tag, in or out (EVP_CTRL_AEAD_GET_TAG / SET_TAG do the same).
bool get_tag(const ProviderCipher& c, void* ctx, std::uint8_t* tag) {
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, 16),
                     OSSL_PARAM_construct_end()};
  return c.get_ctx_params(ctx, p) == 1;
}
bool set_tag(const ProviderCipher& c, void* ctx, std::uint8_t* tag) {
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, 16),
                     OSSL_PARAM_construct_end()};
  return c.set_ctx_params(ctx, p) == 1;
}

int aes_index(std::uint16_t bits) { return bits == 128 ? 0 : bits == 192 ? 1 : bits == 256 ? 2 : -1; }

// Fresh IVs for AES-CBC (RFC 3602 §3: unpredictable). One RAND_bytes call costs ~1 us
// for 16 octets and ~1.4 us for 4 KiB (bench/esp_bench.cc, BM_CbcIv_*), so one call
// fills IVs for 256 packets. Per thread, so no lock and no per-SA memory; the values
// are independent of which SA uses them.
void next_cbc_iv(std::uint8_t* iv, crypto::Random* random) {
  if (random) {
    random->fill(std::span<std::uint8_t>(iv, 16));
    return;
  }
  constexpr std::size_t kPool = 4096;
  thread_local std::array<std::uint8_t, kPool> pool;
  thread_local std::size_t pos = kPool;
  if (pos == kPool) {
    // RAND_bytes; SystemRandom stops the daemon rather than hand out guessable IVs.
    crypto::SystemRandom().fill(pool);
    pos = 0;
  }
  std::memcpy(iv, pool.data() + pos, 16);
  pos += 16;
}

}  // namespace

namespace detail {

Expected<EspCrypto, std::string> EspCrypto::create(const EspSaParams& p, bool encrypt) {
  EspCrypto c;
  c.spi = p.spi;
  c.esn = p.esn;
  const ProviderCipher* cipher = nullptr;
  std::size_t key_len = 0;
  switch (p.encr_id) {
    case kEncrAesGcm16:
    case kEncrChaCha20Poly1305: {
      if (p.integ_id != 0) return unexpected(std::string("an AEAD cipher takes no integrity algorithm"));
      if (p.encr_id == kEncrAesGcm16) {
        const int i = aes_index(p.encr_key_bits);
        if (i < 0) return unexpected("AES-GCM key of " + std::to_string(p.encr_key_bits) + " bits");
        c.suite = Suite::kAesGcm;
        cipher = ciphers().gcm[i] ? &*ciphers().gcm[i] : nullptr;
        key_len = p.encr_key_bits / 8u;
      } else {
        if (p.encr_key_bits != 256 && p.encr_key_bits != 0)
          return unexpected("ChaCha20 key of " + std::to_string(p.encr_key_bits) + " bits");
        c.suite = Suite::kChaCha20Poly1305;
        cipher = ciphers().chacha ? &*ciphers().chacha : nullptr;
        key_len = 32;
      }
      if (p.encr_key.size() != key_len + 4)
        return unexpected("AEAD key material has " + std::to_string(p.encr_key.size()) +
                          " octets, expected key + 4-octet salt = " + std::to_string(key_len + 4));
      std::memcpy(c.salt.data(), p.encr_key.data() + key_len, 4);
      c.iv_size = 8;
      c.icv_size = 16;
      c.align = 4;
      break;
    }
    case kEncrAesCbc: {
      const int i = aes_index(p.encr_key_bits);
      if (i < 0) return unexpected("AES-CBC key of " + std::to_string(p.encr_key_bits) + " bits");
      key_len = p.encr_key_bits / 8u;
      if (p.encr_key.size() != key_len)
        return unexpected("AES-CBC key has " + std::to_string(p.encr_key.size()) + " octets, expected " +
                          std::to_string(key_len));
      HmacSha2::Hash h;
      switch (p.integ_id) {
        case kIntegSha256: h = HmacSha2::Hash::kSha256; break;
        case kIntegSha384: h = HmacSha2::Hash::kSha384; break;
        case kIntegSha512: h = HmacSha2::Hash::kSha512; break;
        default:
          return unexpected("AES-CBC needs HMAC-SHA2-256/384/512 integrity, not transform " +
                            std::to_string(p.integ_id));
      }
      // RFC 4868 §2.1.1: the key is as long as the hash output, the ICV half of it.
      const std::size_t digest = HmacSha2::digest_size(h);
      if (p.integ_key.size() != digest)
        return unexpected("HMAC key has " + std::to_string(p.integ_key.size()) + " octets, expected " +
                          std::to_string(digest));
      c.suite = Suite::kAesCbcHmac;
      cipher = ciphers().cbc[i] ? &*ciphers().cbc[i] : nullptr;
      c.hmac = std::make_unique<const HmacSha2>(h, p.integ_key);
      c.iv_size = 16;
      c.icv_size = static_cast<std::uint8_t>(digest / 2);
      c.align = 16;
      break;
    }
    default: return unexpected("unsupported ESP encryption transform " + std::to_string(p.encr_id));
  }
  if (!cipher) return unexpected(std::string("OpenSSL lacks the cipher"));
  c.ctx = CipherCtx(cipher, nullptr);
  c.encrypt = encrypt;
  c.key_len = static_cast<std::uint8_t>(key_len);
  std::memcpy(c.key.data(), p.encr_key.data(), key_len);
  return c;
}

EspCrypto::~EspCrypto() {
  OPENSSL_cleanse(key.data(), key.size());
  OPENSSL_cleanse(salt.data(), salt.size());
}

bool EspCrypto::key_context() {
  const ProviderCipher* cipher = ctx.impl();
  CipherCtx fresh(cipher, cipher->newctx(cipher->provctx));
  if (!fresh) {
    ERR_clear_error();
    return false;
  }
  // Keyed once: per packet only the IV/nonce is set, which reuses the key schedule.
  // ESP pads itself (RFC 4303 §2.4): the block cipher must not; the setting outlives
  // the per-packet re-initialisations.
  unsigned int padding = 0;
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_end(), OSSL_PARAM_construct_end()};
  if (suite == Suite::kAesCbcHmac) params[0] = OSSL_PARAM_construct_uint(OSSL_CIPHER_PARAM_PADDING, &padding);
  if ((encrypt ? cipher->einit : cipher->dinit)(fresh.get(), key.data(), key_len, nullptr, 0, params) != 1) {
    ERR_clear_error();
    return false;
  }
  ctx = std::move(fresh);
  return true;
}

}  // namespace detail

using Suite = detail::EspCrypto::Suite;

// ---------------------------------------------------------------------------------
// Outbound

Expected<OutboundEspSa, std::string> OutboundEspSa::create(const EspSaParams& params) {
  auto c = detail::EspCrypto::create(params, true);
  if (!c) return unexpected(c.error());
  OutboundEspSa sa(std::move(*c));
  sa.iv_mask_ = params.iv_mask;
  sa.random_ = params.random;
  return sa;
}

Expected<EspSpan, Drop> OutboundEspSa::protect_in_place(std::span<std::uint8_t> buf,
                                                        std::size_t inner_offset,
                                                        std::size_t inner_len) {
  if (inner_offset < header_size() || inner_offset > buf.size() ||
      inner_len > buf.size() - inner_offset) {
    counters_.count(Drop::kBufferTooSmall);
    return unexpected(Drop::kBufferTooSmall);
  }
  const std::size_t offset = inner_offset - header_size();
  auto n = protect(ByteView(buf.data() + inner_offset, inner_len), buf, offset);
  if (!n) return unexpected(n.error());
  return EspSpan{offset, *n};
}

Expected<std::size_t, Drop> OutboundEspSa::protect(ByteView inner, std::span<std::uint8_t> buf,
                                                   std::size_t offset) {
  const std::uint8_t next_header = next_header_for(inner);
  if (next_header == 0 || inner.size() > kMaxInner) return fail(Drop::kMalformed);
  if (exhausted()) return fail(Drop::kSeqOverflow);
  const std::size_t padded = c_.padded_size(inner.size());
  const std::size_t total = header_size() + padded + c_.icv_size;
  if (offset > buf.size() || buf.size() - offset < total) return fail(Drop::kBufferTooSmall);
  if (!c_.ready()) return fail(Drop::kInternal);

  std::uint8_t* const p = buf.data() + offset;
  std::uint8_t* const payload = p + header_size();
  if (inner.data() != payload) std::memmove(payload, inner.data(), inner.size());
  const std::uint64_t seq = ++seq_;
  put32(p, c_.spi);
  put32(p + 4, static_cast<std::uint32_t>(seq));
  // Self-describing padding (RFC 4303 §2.4): 1, 2, 3, ... so the receiver can check it.
  const std::size_t pad = padded - inner.size() - 2;
  for (std::size_t i = 0; i < pad; ++i) payload[inner.size() + i] = static_cast<std::uint8_t>(i + 1);
  payload[padded - 2] = static_cast<std::uint8_t>(pad);
  payload[padded - 1] = next_header;
  std::uint8_t* const icv = payload + padded;

  const ProviderCipher& cipher = *c_.ctx.impl();
  void* const ctx = c_.ctx.get();
  std::size_t len = 0, fin = 0;
  if (c_.aead()) {
    const std::uint64_t iv = seq ^ iv_mask_;
    put32(p + 8, static_cast<std::uint32_t>(iv >> 32));
    put32(p + 12, static_cast<std::uint32_t>(iv));
    std::uint8_t nonce[12];
    std::memcpy(nonce, c_.salt.data(), 4);
    std::memcpy(nonce + 4, p + 8, 8);
    // RFC 4106 §5: AAD is SPI || sequence number, with the high half in between the
    // two 32-bit fields under ESN.
    std::uint8_t aad_esn[12];
    const std::uint8_t* aad = p;
    std::size_t aad_len = 8;
    if (c_.esn) {
      put32(aad_esn, c_.spi);
      put32(aad_esn + 4, static_cast<std::uint32_t>(seq >> 32));
      put32(aad_esn + 8, static_cast<std::uint32_t>(seq));
      aad = aad_esn;
      aad_len = 12;
    }
    // A null output buffer makes the update AAD. The output sizes are what EVP
    // passes: the input size (block size 1), plus a block for CBC.
    if (cipher.einit(ctx, nullptr, 0, nonce, sizeof nonce, nullptr) != 1 ||
        cipher.update(ctx, nullptr, &len, aad_len, aad, aad_len) != 1 ||
        cipher.update(ctx, payload, &len, padded, payload, padded) != 1 ||
        cipher.final(ctx, payload + len, &fin, padded - len) != 1 || !get_tag(cipher, ctx, icv)) {
      ERR_clear_error();
      return fail(Drop::kInternal);
    }
  } else {
    next_cbc_iv(p + 8, random_);
    if (cipher.einit(ctx, nullptr, 0, p + 8, 16, nullptr) != 1 ||
        cipher.update(ctx, payload, &len, padded + 16, payload, padded) != 1 ||
        cipher.final(ctx, payload + len, &fin, 16) != 1) {
      ERR_clear_error();
      return fail(Drop::kInternal);
    }
    // RFC 4303 §3.3.2.1: under ESN the high 32 bits join the ICV input, unsent.
    std::uint8_t hi[4];
    put32(hi, static_cast<std::uint32_t>(seq >> 32));
    c_.hmac->compute(ByteView(p, header_size() + padded), c_.esn ? ByteView(hi, 4) : ByteView(),
                     std::span<std::uint8_t>(icv, c_.icv_size));
  }
  ++counters_.packets;
  counters_.bytes += inner.size();
  return total;
}

// ---------------------------------------------------------------------------------
// Inbound

Expected<InboundEspSa, std::string> InboundEspSa::create(const EspSaParams& params) {
  if (!ReplayWindow::valid_size(params.replay_window))
    return unexpected("replay window of " + std::to_string(params.replay_window) +
                      " packets: must be a power of two from " + std::to_string(ReplayWindow::kMinSize) +
                      " to " + std::to_string(ReplayWindow::kMaxSize));
  auto c = detail::EspCrypto::create(params, false);
  if (!c) return unexpected(c.error());
  return InboundEspSa(std::move(*c), ReplayWindow(params.replay_window, params.esn));
}

Expected<Decapsulated, Drop> InboundEspSa::unprotect(std::span<std::uint8_t> packet,
                                                     const InnerPolicy* policy) {
  const std::size_t header = 8 + c_.iv_size;
  if (packet.size() < header + 2 + c_.icv_size || packet.size() > kMaxInner + 128)
    return fail(Drop::kMalformed);
  std::uint8_t* const p = packet.data();
  std::uint8_t* const ct = p + header;
  const std::size_t ct_len = packet.size() - header - c_.icv_size;
  std::uint8_t* const icv = ct + ct_len;
  if (ct_len % c_.align != 0 && !c_.aead()) return fail(Drop::kMalformed);
  if (get32(p) != c_.spi) return fail(Drop::kUnknownSpi);

  const auto seq = window_.check(get32(p + 4));
  if (!seq) return fail(Drop::kReplay);
  if (!c_.ready()) return fail(Drop::kInternal);

  const ProviderCipher& cipher = *c_.ctx.impl();
  void* const ctx = c_.ctx.get();
  std::size_t len = 0, fin = 0;
  if (c_.aead()) {
    std::uint8_t nonce[12];
    std::memcpy(nonce, c_.salt.data(), 4);
    std::memcpy(nonce + 4, p + 8, 8);
    std::uint8_t aad_esn[12];
    const std::uint8_t* aad = p;
    std::size_t aad_len = 8;
    if (c_.esn) {
      std::memcpy(aad_esn, p, 4);
      put32(aad_esn + 4, static_cast<std::uint32_t>(*seq >> 32));
      std::memcpy(aad_esn + 8, p + 4, 4);
      aad = aad_esn;
      aad_len = 12;
    }
    if (cipher.dinit(ctx, nullptr, 0, nonce, sizeof nonce, nullptr) != 1 ||
        cipher.update(ctx, nullptr, &len, aad_len, aad, aad_len) != 1 ||
        cipher.update(ctx, ct, &len, ct_len, ct, ct_len) != 1 || !set_tag(cipher, ctx, icv)) {
      ERR_clear_error();
      return fail(Drop::kInternal);
    }
    // The tag comparison in the final step is constant-time (CRYPTO_memcmp).
    if (cipher.final(ctx, ct + len, &fin, ct_len - len) != 1) {
      ERR_clear_error();
      // Decrypted in place before the tag could be checked: do not leave plaintext
      // of a forged or corrupted packet behind in the caller's buffer.
      OPENSSL_cleanse(ct, ct_len);
      return fail(Drop::kAuth);
    }
  } else {
    std::uint8_t hi[4];
    put32(hi, static_cast<std::uint32_t>(*seq >> 32));
    std::uint8_t mac[32];
    c_.hmac->compute(ByteView(p, header + ct_len), c_.esn ? ByteView(hi, 4) : ByteView(),
                     std::span<std::uint8_t>(mac, c_.icv_size));
    if (CRYPTO_memcmp(mac, icv, c_.icv_size) != 0) return fail(Drop::kAuth);
    if (cipher.dinit(ctx, nullptr, 0, p + 8, 16, nullptr) != 1 ||
        cipher.update(ctx, ct, &len, ct_len + 16, ct, ct_len) != 1 ||
        cipher.final(ctx, ct + len, &fin, 16) != 1) {
      ERR_clear_error();
      return fail(Drop::kInternal);
    }
  }

  // Authentic from here on: the window must learn this number even if the content is
  // dropped below, or the same packet could be replayed to cost us a decryption again.
  window_.update(*seq);

  const std::size_t pad = ct[ct_len - 2];
  const std::uint8_t next_header = ct[ct_len - 1];
  if (pad + 2 > ct_len) return fail(Drop::kPadding);
  const std::size_t payload_len = ct_len - 2 - pad;
  for (std::size_t i = 0; i < pad; ++i)
    if (ct[payload_len + i] != static_cast<std::uint8_t>(i + 1)) return fail(Drop::kPadding);

  if (next_header == kNextHeaderNone) return fail(Drop::kDummy);
  if (next_header != kNextHeaderIpv4 && next_header != kNextHeaderIpv6) return fail(Drop::kNextHeader);
  std::span<std::uint8_t> inner(ct, payload_len);
  const unsigned version = inner.empty() ? 0 : inner[0] >> 4;
  if (version != (next_header == kNextHeaderIpv4 ? 4u : 6u)) return fail(Drop::kNextHeader);
  // The IP length field decides where the packet ends: anything behind it is TFC
  // padding (RFC 4303 §2.7), which a peer may add even though we never do.
  std::size_t ip_len;
  if (next_header == kNextHeaderIpv4) {
    if (inner.size() < 20) return fail(Drop::kMalformed);
    ip_len = get16(inner.data() + 2);
    if (ip_len < 20) return fail(Drop::kMalformed);
  } else {
    if (inner.size() < 40) return fail(Drop::kMalformed);
    const std::size_t plen = get16(inner.data() + 4);
    ip_len = plen == 0 ? inner.size() : 40 + plen;  // 0: a jumbogram, no trimming
  }
  if (ip_len > inner.size()) return fail(Drop::kMalformed);
  inner = inner.first(ip_len);

  if (policy && !policy->allows(inner)) return fail(Drop::kPolicy);
  ++counters_.packets;
  counters_.bytes += inner.size();
  return Decapsulated{inner, next_header, *seq};
}

}  // namespace mobike::esp
