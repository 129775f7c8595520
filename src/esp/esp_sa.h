// One direction of an ESP SA in tunnel mode (RFC 4303): the packet transforms, without
// any I/O. AES-GCM-16 (RFC 4106), ChaCha20-Poly1305 (RFC 7634) and AES-CBC with
// HMAC-SHA2 (RFC 3602, RFC 4868); 32-bit or extended (64-bit) sequence numbers; no TFC
// padding is ever added.
//
// Wire layout written by protect() and read by unprotect():
//   SPI(4) | seq low(4) | IV(8 AEAD / 16 CBC) | encrypted(inner | pad 1,2,3.. | pad
//   length | next header) | ICV(16 AEAD / 16,24,32 HMAC)
//
// Zero-copy: both directions work in the caller's buffer. Outbound, place the inner
// packet header_size() octets after where the ESP packet should start, with room for
// the trailer behind it (max_trailer_size()) and for outer headers in front; protect()
// encrypts it where it lies. Inbound, unprotect() decrypts in place and returns a view
// into the same buffer.
//
// Neither class throws or locks per packet, nor allocates, except where an SA starts
// work: the first packet an SA drops allocates its drop counters (see SaCounters), and
// the first packet after creation or after release_idle_cipher() keys its OpenSSL
// cipher context (a provider's own context, without an EVP_CIPHER_CTX around it). The
// keyed context (key schedule and, for GCM, the GHASH table: ~960 octets of heap for
// AES-GCM) is most of an idle Child SA's memory, so an SA holds one only while it
// carries traffic; the key itself is kept, wiped when the SA goes.
// An SA object must be used by one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "common/bytes.h"
#include "common/expected.h"
#include "crypto/random.h"
#include "esp/hmac_sha2.h"
#include "esp/replay_window.h"

namespace mobike::esp {

// Why a packet was not protected or not delivered. One counter per reason.
enum class Drop : std::uint8_t {
  kMalformed,       // truncated, bad lengths, or not an IPv4/IPv6 packet
  kUnknownSpi,      // no inbound SA has this SPI
  kNoPolicy,        // outbound: no Child SA's selectors cover the packet
  kReplay,          // already received, behind the window, or sequence number 0
  kAuth,            // ICV verification failed
  kPadding,         // padding octets not 1, 2, 3, ... or Pad Length beyond the payload
  kNextHeader,      // not 4/41, or not the inner packet's IP version
  kDummy,           // next header 59 (RFC 4303 §2.6): discarded silently, not an error
  kPolicy,          // inbound: inner packet outside the SA's traffic selectors
  kSeqOverflow,     // outbound: sequence numbers exhausted; the Child SA must be rekeyed
  kBufferTooSmall,  // outbound: no room for the ESP packet at the given offset
  kExpired,         // the Child SA reached a hard limit (bytes, packets) and awaits its delete
  kInternal,        // OpenSSL refused an operation it should not (broken library)
};
inline constexpr std::size_t kDropReasons = static_cast<std::size_t>(Drop::kInternal) + 1;
const char* to_string(Drop d);

// Every SA has two of these while most never drop a packet, so the drop counts take
// the room of one pointer until the first drop, which allocates them: once per SA, not
// per packet.
class SaCounters {
 public:
  std::uint64_t packets = 0;  // protected (outbound) / delivered (inbound)
  std::uint64_t bytes = 0;    // inner IP packet octets of those packets

  SaCounters() = default;
  SaCounters(const SaCounters& o);
  SaCounters& operator=(const SaCounters& o);
  SaCounters(SaCounters&&) noexcept = default;
  SaCounters& operator=(SaCounters&&) noexcept = default;
  ~SaCounters() = default;

  std::uint64_t dropped(Drop d) const { return drops_ ? (*drops_)[static_cast<std::size_t>(d)] : 0; }
  std::uint64_t dropped_total() const;
  void count(Drop d);

 private:
  using Drops = std::array<std::uint64_t, kDropReasons>;
  std::unique_ptr<Drops> drops_;
};

// One direction's parameters, field for field as ike::ChildSaKeys carries them (IANA
// transform IDs) plus what only the data plane decides.
struct EspSaParams {
  std::uint32_t spi = 0;
  std::uint16_t encr_id = 0;        // 12 AES-CBC, 20 AES-GCM-16, 28 ChaCha20-Poly1305
  std::uint16_t encr_key_bits = 0;  // AES: 128, 192, 256; ChaCha20: 256
  std::uint16_t integ_id = 0;       // AES-CBC: 12, 13, 14 (HMAC-SHA2-256/384/512); AEAD: 0
  bool esn = false;
  ByteView encr_key;   // AEAD: key || 4-octet salt (RFC 4106 §8.1, RFC 7634 §2)
  ByteView integ_key;  // empty for AEAD
  // Inbound only: anti-replay window size, a power of two (ReplayWindow::valid_size).
  std::uint32_t replay_window = ReplayWindow::kDefaultSize;
  // Outbound AEAD only: IV = sequence number XOR iv_mask. 0 sends the sequence number
  // itself (RFC 4106 §3.1); strongSwan and Linux (seqiv) use a random mask. Either
  // keeps the IV unique per key.
  std::uint64_t iv_mask = 0;
  // Outbound AES-CBC only: source of the per-packet random IVs. Null: OpenSSL's CSPRNG
  // through a per-thread pool. Tests inject a seeded one to get repeatable packets.
  crypto::Random* random = nullptr;
};

namespace detail {

// One OpenSSL provider's implementation of one cipher, called without the EVP layer
// (esp_sa.cc says why).
struct ProviderCipher;

// A keyed cipher context of a ProviderCipher: two pointers, freed with it.
class CipherCtx {
 public:
  CipherCtx() = default;
  CipherCtx(const ProviderCipher* impl, void* ctx) : impl_(impl), ctx_(ctx) {}
  CipherCtx(CipherCtx&& o) noexcept : impl_(o.impl_), ctx_(std::exchange(o.ctx_, nullptr)) {}
  CipherCtx& operator=(CipherCtx&& o) noexcept;
  ~CipherCtx();

  const ProviderCipher* impl() const { return impl_; }
  void* get() const { return ctx_; }
  explicit operator bool() const { return ctx_ != nullptr; }
  // Frees the context; the cipher it was of stays known.
  void reset();

 private:
  const ProviderCipher* impl_ = nullptr;
  void* ctx_ = nullptr;
};

// What both directions share: the suite's sizes and its keyed primitives.
struct EspCrypto {
  enum class Suite : std::uint8_t { kAesGcm, kChaCha20Poly1305, kAesCbcHmac };

  // Checks the parameters and that OpenSSL has the cipher; keys nothing yet.
  static Expected<EspCrypto, std::string> create(const EspSaParams& p, bool encrypt);

  EspCrypto() = default;
  EspCrypto(EspCrypto&&) noexcept = default;
  EspCrypto& operator=(EspCrypto&&) noexcept = default;
  ~EspCrypto();

  // Before each packet: marks the SA used and keys the context if it has none. False
  // only when OpenSSL cannot (out of memory).
  bool ready() {
    used = true;
    return ctx || key_context();
  }
  bool key_context();
  // Frees the keyed context when no packet needed it since the last call; true when
  // it did.
  bool release_if_idle() {
    if (std::exchange(used, false) || !ctx) return false;
    ctx.reset();
    return true;
  }

  bool aead() const { return suite != Suite::kAesCbcHmac; }
  // Octets of ciphertext for `inner_len` octets of payload: payload, padding, Pad
  // Length and Next Header, rounded up to the cipher's block (AEAD: RFC 4303's 4-octet
  // alignment).
  std::size_t padded_size(std::size_t inner_len) const {
    return (inner_len + 2 + align - 1) / align * align;
  }

  // Laid out small: a gateway holds two of these per Child SA. The sizes are at most
  // 16 (IV), 32 (ICV) and 16 (block), hence octets.
  std::uint32_t spi = 0;
  std::array<std::uint8_t, 4> salt{};
  Suite suite = Suite::kAesGcm;
  bool esn = false;
  std::uint8_t iv_size = 8;
  std::uint8_t icv_size = 16;
  std::uint8_t align = 4;
  bool encrypt = false;
  bool used = false;  // a packet since the last release_if_idle()
  std::uint8_t key_len = 0;
  std::array<std::uint8_t, 32> key{};  // the cipher key (AEAD: without the salt)
  CipherCtx ctx;  // of the suite's cipher; keyed with `key`, or empty while the SA is idle
  // AES-CBC only, so out of line: AEAD SAs, the common case, carry no HMAC state.
  std::unique_ptr<const HmacSha2> hmac;
};

}  // namespace detail

// Where protect() put the ESP packet inside the caller's buffer.
struct EspSpan {
  std::size_t offset = 0;
  std::size_t length = 0;
};

class OutboundEspSa {
 public:
  static Expected<OutboundEspSa, std::string> create(const EspSaParams& params);

  OutboundEspSa(OutboundEspSa&&) = default;
  OutboundEspSa& operator=(OutboundEspSa&&) = default;
  ~OutboundEspSa() = default;

  std::uint32_t spi() const { return c_.spi; }
  bool esn() const { return c_.esn; }

  // SPI, sequence number and IV: the inner packet starts this far into the ESP packet.
  std::size_t header_size() const { return 8 + c_.iv_size; }
  // Padding, Pad Length, Next Header and ICV at most (AES-CBC + HMAC-SHA-512: 15+2+32).
  std::size_t max_trailer_size() const { return c_.align - 1 + 2 + c_.icv_size; }
  static constexpr std::size_t kMaxOverhead = 24 + 15 + 2 + 32;  // any suite
  // Size of the ESP packet for an inner packet of `inner_len` octets.
  std::size_t protected_size(std::size_t inner_len) const {
    return header_size() + c_.padded_size(inner_len) + c_.icv_size;
  }

  // Writes the ESP packet for `inner` (an IPv4 or IPv6 packet) at buf[offset..] and
  // returns its length, protected_size(inner.size()). When `inner` already lies at
  // buf[offset + header_size()] it is encrypted in place; anywhere else (also
  // overlapping) it is moved there first. Fails, consuming no sequence number, with
  // kMalformed, kBufferTooSmall or kSeqOverflow.
  Expected<std::size_t, Drop> protect(ByteView inner, std::span<std::uint8_t> buf,
                                      std::size_t offset);
  // The zero-copy form: the inner packet is buf[inner_offset, inner_offset +
  // inner_len); the ESP packet starts header_size() octets before it.
  Expected<EspSpan, Drop> protect_in_place(std::span<std::uint8_t> buf,
                                           std::size_t inner_offset, std::size_t inner_len);

  // Sequence number of the last protected packet (0 before the first).
  std::uint64_t last_seq() const { return seq_; }
  // Packets that can still be sent before the sequence number would have to cycle
  // (RFC 4303 §3.3.3): the engine should rekey well before this reaches 0.
  std::uint64_t remaining() const { return max_seq() - seq_; }
  bool exhausted() const { return seq_ == max_seq(); }
  // For tests and benchmarks: continue as if `last_seq` packets had been sent.
  void skip_to(std::uint64_t last_seq) { seq_ = last_seq < max_seq() ? last_seq : max_seq(); }
  std::uint64_t iv_mask() const { return iv_mask_; }
  // Continues an SA another node sent on (cluster moves): after its last sequence
  // number, with its counts.
  void resume(std::uint64_t last_seq, std::uint64_t packets, std::uint64_t bytes) {
    skip_to(last_seq);
    counters_.packets = packets;
    counters_.bytes = bytes;
  }

  const SaCounters& counters() const { return counters_; }
  // A drop decided outside (the Child SA's limits), charged to this SA.
  void count_drop(Drop d) { counters_.count(d); }

  // Whether the cipher context is keyed (it is from the first packet on until a
  // release); release_idle_cipher() frees it unless a packet was protected since the
  // last call, so calling it every T frees contexts idle for between T and 2T.
  bool cipher_keyed() const { return static_cast<bool>(c_.ctx); }
  bool release_idle_cipher() { return c_.release_if_idle(); }

 private:
  explicit OutboundEspSa(detail::EspCrypto c) : c_(std::move(c)) {}
  std::uint64_t max_seq() const { return c_.esn ? ~std::uint64_t{0} : 0xffffffffu; }
  Expected<std::size_t, Drop> fail(Drop d) {
    counters_.count(d);
    return unexpected(d);
  }

  detail::EspCrypto c_;
  std::uint64_t seq_ = 0;
  std::uint64_t iv_mask_ = 0;
  crypto::Random* random_ = nullptr;
  SaCounters counters_;
};

// What unprotect() delivers.
struct Decapsulated {
  std::span<std::uint8_t> inner;  // the inner IP packet, inside the caller's buffer
  std::uint8_t next_header = 0;   // 4 (IPv4) or 41 (IPv6)
  std::uint64_t seq = 0;          // full sequence number (with the inferred ESN bits)
};

// An inbound policy check (RFC 4301 §5.2 step 4), run on the authenticated and
// decrypted inner packet before it is delivered.
class InnerPolicy {
 public:
  virtual bool allows(ByteView inner) const = 0;

 protected:
  ~InnerPolicy() = default;
};

class InboundEspSa {
 public:
  static Expected<InboundEspSa, std::string> create(const EspSaParams& params);

  InboundEspSa(InboundEspSa&&) = default;
  InboundEspSa& operator=(InboundEspSa&&) = default;
  ~InboundEspSa() = default;

  std::uint32_t spi() const { return c_.spi; }
  bool esn() const { return c_.esn; }

  // `packet` is one ESP packet starting at the SPI (after any UDP encapsulation).
  // Order (RFC 4303 §3.4): replay check, ICV, decryption in place, padding, window
  // update (for every authentic packet, also ones dropped later), next header, policy.
  // On kAuth the decrypted octets are wiped; on any failure the buffer content is
  // unspecified.
  Expected<Decapsulated, Drop> unprotect(std::span<std::uint8_t> packet,
                                         const InnerPolicy* policy = nullptr);

  const ReplayWindow& replay_window() const { return window_; }
  const SaCounters& counters() const { return counters_; }
  void count_drop(Drop d) { counters_.count(d); }
  // As OutboundEspSa's: every packet that reaches the ICV check counts as use.
  bool cipher_keyed() const { return static_cast<bool>(c_.ctx); }
  bool release_idle_cipher() { return c_.release_if_idle(); }
  // Continues an SA another node received on (cluster moves): its replay window and counts.
  void resume(const ReplayWindow::State& window, std::uint64_t packets, std::uint64_t bytes) {
    window_.restore(window);
    counters_.packets = packets;
    counters_.bytes = bytes;
  }

 private:
  InboundEspSa(detail::EspCrypto c, ReplayWindow w) : c_(std::move(c)), window_(std::move(w)) {}
  Expected<Decapsulated, Drop> fail(Drop d) {
    counters_.count(d);
    return unexpected(d);
  }

  detail::EspCrypto c_;
  ReplayWindow window_;
  SaCounters counters_;
};

}  // namespace mobike::esp
