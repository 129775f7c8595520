#include "esp/esp_sa.h"

#include <gtest/gtest.h>

#include "esp/hmac_sha2.h"
#include "esp_test_util.h"

namespace mobike::esp {
namespace {

using test::hex;
using test::Keys;
using test::kSuites;
using test::Suite;

constexpr std::uint32_t kSpi = 0xc0ffee01;
constexpr std::size_t kHeadroom = 64;  // room for outer IP + UDP headers in front

struct Pair {
  OutboundEspSa out;
  InboundEspSa in;
};

Pair make_pair(const Suite& s, bool esn, std::uint32_t window = 1024) {
  const Keys k = test::make_keys(s, 42);
  EspSaParams p = test::params(s, k, kSpi, esn);
  p.replay_window = window;
  auto out = OutboundEspSa::create(p);
  auto in = InboundEspSa::create(p);
  if (!out || !in) throw std::runtime_error(out ? in.error() : out.error());
  return Pair{std::move(*out), std::move(*in)};
}

// Protects `inner` into a fresh buffer with headroom; returns the ESP packet alone.
Bytes protect(OutboundEspSa& sa, ByteView inner) {
  Bytes buf(kHeadroom + sa.protected_size(inner.size()));
  auto n = sa.protect(inner, buf, kHeadroom);
  if (!n) throw std::runtime_error(std::string("protect: ") + to_string(n.error()));
  return Bytes(buf.begin() + kHeadroom, buf.begin() + static_cast<long>(kHeadroom + *n));
}

// --- every suite -------------------------------------------------------------------

class EspSuite : public ::testing::TestWithParam<std::tuple<Suite, bool>> {
 protected:
  const Suite& suite() const { return std::get<0>(GetParam()); }
  bool esn() const { return std::get<1>(GetParam()); }
};

TEST_P(EspSuite, RoundTripIpv4AndIpv6AllSizes) {
  Pair sa = make_pair(suite(), esn());
  std::uint64_t expected_bytes = 0;
  for (std::size_t size = 40; size <= 1500; size += 37) {
    for (bool v6 : {false, true}) {
      const Bytes inner = v6 ? test::ipv6_packet("2001:db8::1", "2001:db8::2", size + 8)
                             : test::ipv4_packet("10.0.0.1", "10.0.0.2", size);
      Bytes esp = protect(sa.out, inner);
      ASSERT_EQ(esp.size(), sa.out.protected_size(inner.size()));
      // Ciphertext is block-aligned (4 octets for AEAD, RFC 4303 §2.4; 16 for CBC).
      const std::size_t ct = esp.size() - sa.out.header_size() - suite().icv_size();
      EXPECT_EQ(ct % (suite().aead() ? 4 : 16), 0u);
      EXPECT_LT(ct - inner.size() - 2, suite().aead() ? 4u : 16u);  // minimal padding
      auto d = sa.in.unprotect(esp);
      ASSERT_TRUE(d) << to_string(d.error()) << " size " << size;
      EXPECT_EQ(Bytes(d->inner.begin(), d->inner.end()), inner);
      EXPECT_EQ(d->next_header, v6 ? 41 : 4);
      EXPECT_EQ(d->seq, sa.out.last_seq());
      // The inner view lies inside the packet buffer: decrypted in place.
      EXPECT_EQ(d->inner.data(), esp.data() + sa.out.header_size());
      expected_bytes += inner.size();
    }
  }
  EXPECT_EQ(sa.out.counters().packets, sa.in.counters().packets);
  EXPECT_EQ(sa.out.counters().bytes, expected_bytes);
  EXPECT_EQ(sa.in.counters().bytes, expected_bytes);
  EXPECT_EQ(sa.in.counters().dropped_total(), 0u);
}

TEST_P(EspSuite, LayoutMatchesReferenceImplementation) {
  const Keys k = test::make_keys(suite(), 42);
  Pair sa = make_pair(suite(), esn());
  sa.out.skip_to(esn() ? 0x3fffffff5ull : 77);
  const Bytes inner = test::ipv4_packet("192.0.2.1", "198.51.100.1", 101);
  const Bytes esp = protect(sa.out, inner);
  const std::uint64_t seq = sa.out.last_seq();
  ASSERT_EQ(seq, esn() ? 0x3fffffff6ull : 78u);
  EXPECT_EQ(to_hex(ByteView(esp).first(4)), "c0ffee01");
  EXPECT_EQ(to_hex(ByteView(esp).subspan(4, 4)), esn() ? "fffffff6" : "0000004e");
  if (suite().aead()) {
    // RFC 4106 §3.1: the IV is the 64-bit sequence number.
    EXPECT_EQ(to_hex(ByteView(esp).subspan(8, 8)), esn() ? "00000003fffffff6" : "000000000000004e");
  }
  // An independent decryption (EVP directly, HMAC through EVP_MAC) must accept it
  // and find self-describing padding and next header 4.
  auto pt = test::reference_decrypt(suite(), k, seq, esn(), esp);
  ASSERT_TRUE(pt);
  ASSERT_GE(pt->size(), inner.size() + 2);
  EXPECT_EQ(Bytes(pt->begin(), pt->begin() + static_cast<long>(inner.size())), inner);
  const std::size_t pad = (*pt)[pt->size() - 2];
  EXPECT_EQ(pt->size(), inner.size() + pad + 2);
  for (std::size_t i = 0; i < pad; ++i) EXPECT_EQ((*pt)[inner.size() + i], i + 1);
  EXPECT_EQ(pt->back(), 4);
  // Under ESN the high half is authenticated: assuming it is 0 must fail.
  if (esn()) {
    EXPECT_FALSE(test::reference_decrypt(suite(), k, seq & 0xffffffffu, true, esp));
  }
}

TEST_P(EspSuite, TamperingAnyOctetFailsAuthentication) {
  Pair sa = make_pair(suite(), esn());
  const Bytes inner = test::ipv6_packet("2001:db8::1", "2001:db8::2", 61);
  const Bytes esp = protect(sa.out, inner);
  for (std::size_t i = 0; i < esp.size(); ++i) {
    Bytes bad = esp;
    bad[i] ^= 0x80;
    auto d = sa.in.unprotect(bad);
    ASSERT_FALSE(d) << "octet " << i;
    // The SPI octets name another SA; everything else is covered by the ICV.
    EXPECT_EQ(d.error(), i < 4 ? Drop::kUnknownSpi : Drop::kAuth) << "octet " << i;
  }
  EXPECT_EQ(sa.in.counters().dropped(Drop::kAuth), esp.size() - 4);
  EXPECT_EQ(sa.in.counters().packets, 0u);
  // None of the forgeries advanced the window: the genuine packet still passes.
  Bytes good = esp;
  EXPECT_TRUE(sa.in.unprotect(good));
}

TEST_P(EspSuite, TruncatedOrExtendedPacketsAreRejected) {
  Pair sa = make_pair(suite(), esn());
  const Bytes esp = protect(sa.out, test::ipv4_packet("10.0.0.1", "10.0.0.2", 100));
  for (std::size_t cut : {std::size_t{1}, std::size_t{4}, std::size_t{16}, esp.size() - 8, esp.size()}) {
    Bytes bad(esp.begin(), esp.end() - static_cast<long>(cut));
    auto d = sa.in.unprotect(bad);
    ASSERT_FALSE(d) << cut;
    EXPECT_TRUE(d.error() == Drop::kAuth || d.error() == Drop::kMalformed) << to_string(d.error());
  }
  Bytes longer = esp;
  longer.insert(longer.end(), 4, 0);
  auto d = sa.in.unprotect(longer);
  ASSERT_FALSE(d);
  EXPECT_TRUE(d.error() == Drop::kAuth || d.error() == Drop::kMalformed);
}

TEST_P(EspSuite, ReplayedAndTooOldPacketsAreDropped) {
  Pair sa = make_pair(suite(), esn());
  std::vector<Bytes> sent;
  for (int i = 0; i < 1100; ++i) sent.push_back(protect(sa.out, test::ipv4_packet("10.0.0.1", "10.0.0.2", 60)));
  Bytes p = sent[1099];  // seq 1100
  ASSERT_TRUE(sa.in.unprotect(p));
  p = sent[1099];
  auto again = sa.in.unprotect(p);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), Drop::kReplay);
  // Window 1024: 1100 - 1023 = 77 is the oldest acceptable, 76 is too old. Under ESN
  // a number below the window is taken as one 2^32 ahead (RFC 4303 A2.2), so the ICV
  // over the wrong high half rejects it instead of the window.
  p = sent[75];
  auto old = sa.in.unprotect(p);
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error(), esn() ? Drop::kAuth : Drop::kReplay);
  p = sent[76];
  EXPECT_TRUE(sa.in.unprotect(p));
  EXPECT_EQ(sa.in.counters().dropped(Drop::kReplay), esn() ? 1u : 2u);
  EXPECT_EQ(sa.in.counters().packets, 2u);
  EXPECT_EQ(sa.in.replay_window().highest(), 1100u);
}

// The keyed cipher state comes with the first packet and goes after two sweeps without
// one; the SA works on afterwards with the same keys (a peer that never released its
// own context still understands it), and the release costs no sequence number.
TEST_P(EspSuite, IdleCipherIsReleasedAndRekeyedFromTheKey) {
  Pair sa = make_pair(suite(), esn());
  EXPECT_FALSE(sa.out.cipher_keyed());
  EXPECT_FALSE(sa.in.cipher_keyed());
  const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 80);
  Bytes first = protect(sa.out, inner);
  EXPECT_TRUE(sa.out.cipher_keyed());
  ASSERT_TRUE(sa.in.unprotect(first));
  EXPECT_TRUE(sa.in.cipher_keyed());

  // A sweep after traffic only notes that the SA was used.
  EXPECT_FALSE(sa.out.release_idle_cipher());
  EXPECT_FALSE(sa.in.release_idle_cipher());
  EXPECT_TRUE(sa.out.cipher_keyed());
  // The next one, with no packet in between, frees both directions' contexts.
  EXPECT_TRUE(sa.out.release_idle_cipher());
  EXPECT_TRUE(sa.in.release_idle_cipher());
  EXPECT_FALSE(sa.out.cipher_keyed());
  EXPECT_FALSE(sa.in.cipher_keyed());
  EXPECT_FALSE(sa.out.release_idle_cipher());  // nothing left to free

  // Outbound rekeyed from the kept key, read by an inbound SA that never released.
  Pair fresh = make_pair(suite(), esn());
  Bytes second = protect(sa.out, inner);
  EXPECT_EQ(sa.out.last_seq(), 2u);
  Bytes copy = second;
  auto d = sa.in.unprotect(second);  // the released inbound SA, rekeyed too
  ASSERT_TRUE(d) << to_string(d.error());
  EXPECT_EQ(Bytes(d->inner.begin(), d->inner.end()), inner);
  EXPECT_EQ(d->seq, 2u);
  // Same keys as a never-released pair: its first packet equals ours byte for byte
  // where the IV does not depend on a random source (AEAD: IV = sequence number).
  if (suite().aead()) {
    (void)protect(fresh.out, inner);
    const Bytes b = protect(fresh.out, inner);
    EXPECT_EQ(b, copy);
  }
  // A forged packet does not get past the rekeyed context either.
  Bytes third = protect(sa.out, inner);
  third[third.size() - 1] ^= 1;
  auto bad = sa.in.unprotect(third);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), Drop::kAuth);
}

INSTANTIATE_TEST_SUITE_P(All, EspSuite, ::testing::Combine(::testing::ValuesIn(kSuites), ::testing::Bool()),
                         [](const auto& info) {
                           return test::suite_name(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_esn" : "");
                         });

// --- sequence numbers --------------------------------------------------------------

TEST(EspSequence, RefusesToCycleWithoutEsn) {
  Pair sa = make_pair(kSuites[0], false);
  sa.out.skip_to(0xfffffffeu);
  EXPECT_EQ(sa.out.remaining(), 1u);
  const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 40);
  const Bytes last = protect(sa.out, inner);
  EXPECT_EQ(to_hex(ByteView(last).subspan(4, 4)), "ffffffff");
  EXPECT_TRUE(sa.out.exhausted());
  Bytes buf(200);
  auto r = sa.out.protect(inner, buf, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Drop::kSeqOverflow);
  EXPECT_EQ(sa.out.last_seq(), 0xffffffffu);
  EXPECT_EQ(sa.out.counters().dropped(Drop::kSeqOverflow), 1u);
  EXPECT_EQ(sa.out.counters().packets, 1u);
}

TEST(EspSequence, RefusesToCycleWithEsn) {
  Pair sa = make_pair(kSuites[4], true);
  sa.out.skip_to(~std::uint64_t{0} - 1);
  const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 40);
  EXPECT_NO_THROW(protect(sa.out, inner));
  EXPECT_TRUE(sa.out.exhausted());
  Bytes buf(200);
  auto r = sa.out.protect(inner, buf, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Drop::kSeqOverflow);
}

TEST(EspSequence, EsnCarriesOnPast32Bits) {
  for (const Suite& s : {kSuites[0], kSuites[3], kSuites[6]}) {
    SCOPED_TRACE(s.name);
    Pair sa = make_pair(s, true, 64);
    const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 48);
    // Bring the receiver's window into view of the boundary the way traffic would.
    sa.out.skip_to(1999);
    Bytes p = protect(sa.out, inner);
    ASSERT_TRUE(sa.in.unprotect(p));
    sa.out.skip_to(0xfffffffcull);
    std::vector<Bytes> pk;
    for (int i = 0; i < 6; ++i) pk.push_back(protect(sa.out, inner));  // ..fd .. 1_00000002
    EXPECT_EQ(sa.out.last_seq(), 0x100000002ull);
    EXPECT_EQ(to_hex(ByteView(pk[3]).subspan(4, 4)), "00000000");  // 2^32 sends low half 0
    // Delivered out of order across the boundary.
    for (int i : {0, 4, 1, 3, 5, 2}) {
      Bytes q = pk[i];
      auto d = sa.in.unprotect(q);
      ASSERT_TRUE(d) << i << ": " << to_string(d.error());
      EXPECT_EQ(d->seq, 0xfffffffdull + i);
    }
    for (int i = 0; i < 6; ++i) {
      Bytes q = pk[i];
      auto d = sa.in.unprotect(q);
      ASSERT_FALSE(d);
      EXPECT_EQ(d.error(), Drop::kReplay);
    }
    EXPECT_EQ(sa.in.replay_window().highest(), 0x100000002ull);
  }
}

TEST(EspSequence, WithoutEsnAWrappedNumberIsTooOld) {
  Pair sa = make_pair(kSuites[0], false);
  sa.out.skip_to(0xfffffff0u);
  Bytes p = protect(sa.out, test::ipv4_packet("10.0.0.1", "10.0.0.2", 48));
  ASSERT_TRUE(sa.in.unprotect(p));
  // A sender that wrongly cycled to 1 cannot get through the window.
  Pair fresh = make_pair(kSuites[0], false);
  Bytes one = protect(fresh.out, test::ipv4_packet("10.0.0.1", "10.0.0.2", 48));
  auto d = sa.in.unprotect(one);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), Drop::kReplay);
}

// --- buffers and zero copy --------------------------------------------------------

TEST(EspBuffers, InPlaceAndCopyingGiveTheSameBytes) {
  // AES-GCM is deterministic here (IV = sequence number): the two paths must agree.
  Pair a = make_pair(kSuites[0], false), b = make_pair(kSuites[0], false);
  const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 333);
  Bytes copied(kHeadroom + 512, 0xee);
  auto n = a.out.protect(inner, copied, kHeadroom);
  ASSERT_TRUE(n);

  Bytes in_place(kHeadroom + 512, 0xee);
  const std::size_t inner_at = kHeadroom + b.out.header_size();
  std::copy(inner.begin(), inner.end(), in_place.begin() + static_cast<long>(inner_at));
  auto span = b.out.protect_in_place(in_place, inner_at, inner.size());
  ASSERT_TRUE(span);
  EXPECT_EQ(span->offset, kHeadroom);
  EXPECT_EQ(span->length, *n);
  EXPECT_EQ(in_place, copied);
  // Headroom is left alone for the caller's outer headers.
  for (std::size_t i = 0; i < kHeadroom; ++i) ASSERT_EQ(copied[i], 0xee);
  for (std::size_t i = kHeadroom + *n; i < copied.size(); ++i) ASSERT_EQ(copied[i], 0xee);
}

TEST(EspBuffers, OverlappingInnerIsMovedSafely) {
  Pair sa = make_pair(kSuites[4], false);
  const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 300);
  // Inner packet 5 octets into the buffer, ESP packet asked for at 0: they overlap.
  Bytes buf(600);
  std::copy(inner.begin(), inner.end(), buf.begin() + 5);
  auto n = sa.out.protect(ByteView(buf.data() + 5, inner.size()), buf, 0);
  ASSERT_TRUE(n);
  Bytes esp(buf.begin(), buf.begin() + static_cast<long>(*n));
  auto d = sa.in.unprotect(esp);
  ASSERT_TRUE(d);
  EXPECT_EQ(Bytes(d->inner.begin(), d->inner.end()), inner);
}

TEST(EspBuffers, TooSmallBufferConsumesNoSequenceNumber) {
  Pair sa = make_pair(kSuites[5], false);
  const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 100);
  Bytes buf(sa.out.protected_size(inner.size()) - 1);
  auto r = sa.out.protect(inner, buf, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Drop::kBufferTooSmall);
  Bytes big(500);
  auto bad_offset = sa.out.protect(inner, big, 499);
  ASSERT_FALSE(bad_offset);
  EXPECT_EQ(bad_offset.error(), Drop::kBufferTooSmall);
  auto no_headroom = sa.out.protect_in_place(big, 3, 100);
  ASSERT_FALSE(no_headroom);
  EXPECT_EQ(no_headroom.error(), Drop::kBufferTooSmall);
  EXPECT_EQ(sa.out.last_seq(), 0u);
  EXPECT_EQ(sa.out.counters().dropped(Drop::kBufferTooSmall), 3u);
  EXPECT_LE(sa.out.protected_size(inner.size()) - inner.size(), OutboundEspSa::kMaxOverhead);
}

TEST(EspBuffers, NonIpInnerIsMalformed) {
  Pair sa = make_pair(kSuites[0], false);
  Bytes buf(300);
  for (const Bytes& bad : {Bytes{}, Bytes(30, 0x50), Bytes(10, 0x45), Bytes(39, 0x60)}) {
    auto r = sa.out.protect(bad, buf, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Drop::kMalformed);
  }
  EXPECT_EQ(sa.out.last_seq(), 0u);
}

// --- trailer checks, with packets only a test encryptor builds -------------------

struct Crafted {
  const Suite& s;
  Keys k;
  InboundEspSa in;
  std::uint64_t seq = 0;

  explicit Crafted(const Suite& suite)
      : s(suite), k(test::make_keys(suite, 42)), in(std::move(*InboundEspSa::create(test::params(suite, k, kSpi)))) {}

  // `payload` then pad octets `pad`, Pad Length `pad_len`, Next Header `nh`; for CBC
  // the caller makes the total a multiple of 16.
  Expected<Decapsulated, Drop> send(const Bytes& payload, const Bytes& pad, std::uint8_t pad_len, std::uint8_t nh) {
    Bytes pt = payload;
    append(pt, pad);
    pt.push_back(pad_len);
    pt.push_back(nh);
    ++seq;
    Bytes iv(s.iv_size(), 0x5a);
    if (s.aead()) {
      for (int i = 0; i < 8; ++i) iv[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(seq >> (56 - 8 * i));
    }
    packet = test::reference_encrypt(s, k, kSpi, seq, false, pt, iv);
    return in.unprotect(packet);
  }
  Bytes packet;
};

Bytes counting(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i + 1);
  return b;
}

class EspTrailer : public ::testing::TestWithParam<Suite> {};

TEST_P(EspTrailer, ReferencePacketsAreAccepted) {
  Crafted c(GetParam());
  // The receiver must accept any valid padding the sender chose, also more than the
  // minimum (RFC 4303 §2.4 allows up to 255 octets, e.g. to hide packet sizes).
  const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 58);
  const std::size_t pad = 36;  // 58 + 36 + 2 = 96, a multiple of 16
  auto d = c.send(inner, counting(pad), static_cast<std::uint8_t>(pad), 4);
  ASSERT_TRUE(d) << to_string(d.error());
  EXPECT_EQ(Bytes(d->inner.begin(), d->inner.end()), inner);
}

TEST_P(EspTrailer, WrongPaddingOctets) {
  Crafted c(GetParam());
  const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 58);
  Bytes pad = counting(4);
  pad[2] = 0;  // 1, 2, 0, 4
  auto d = c.send(inner, pad, 4, 4);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), Drop::kPadding);
  // Authentic, so the window learnt it: the same packet again is a replay.
  auto again = c.in.unprotect(c.packet);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), Drop::kReplay);
  EXPECT_EQ(c.in.counters().dropped(Drop::kPadding), 1u);
}

TEST_P(EspTrailer, PadLengthBeyondPayload) {
  Crafted c(GetParam());
  // 14 octets of "payload" then Pad Length 200: more padding than there is packet.
  auto d = c.send(counting(14), {}, 200, 4);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), Drop::kPadding);
}

TEST_P(EspTrailer, NextHeaderMustBeIpOfTheRightVersion) {
  Crafted c(GetParam());
  const Bytes v4 = test::ipv4_packet("10.0.0.1", "10.0.0.2", 58);
  const Bytes v6 = test::ipv6_packet("2001:db8::1", "2001:db8::2", 58);
  for (auto [inner, nh] : {std::pair{v4, 17}, std::pair{v4, 41}, std::pair{v6, 4}, std::pair{v6, 6}}) {
    auto d = c.send(inner, counting(4), 4, static_cast<std::uint8_t>(nh));
    ASSERT_FALSE(d) << nh;
    EXPECT_EQ(d.error(), Drop::kNextHeader) << nh;
  }
  EXPECT_EQ(c.in.counters().dropped(Drop::kNextHeader), 4u);
  EXPECT_EQ(c.in.counters().packets, 0u);
}

TEST_P(EspTrailer, DummyPacketsAreDiscarded) {
  Crafted c(GetParam());
  // RFC 4303 §2.6: next header 59 marks a dummy packet, payload arbitrary.
  auto d = c.send(Bytes(30, 0xab), counting(32), 32, 59);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), Drop::kDummy);
  EXPECT_EQ(c.in.counters().dropped(Drop::kDummy), 1u);
  EXPECT_EQ(c.in.counters().dropped(Drop::kMalformed), 0u);
}

TEST_P(EspTrailer, TfcPaddingIsTrimmedAndShortPacketsRefused) {
  Crafted c(GetParam());
  const Bytes inner = test::ipv4_packet("10.0.0.1", "10.0.0.2", 50);
  Bytes tfc = inner;
  tfc.insert(tfc.end(), 12, 0x00);  // RFC 4303 §2.7 TFC padding after the IP packet
  auto d = c.send(tfc, counting(0), 0, 4);  // 62 + 2 = 64
  ASSERT_TRUE(d) << to_string(d.error());
  EXPECT_EQ(d->inner.size(), 50u);
  EXPECT_EQ(Bytes(d->inner.begin(), d->inner.end()), inner);

  // IPv4 total length larger than what arrived.
  Bytes cut(inner.begin(), inner.begin() + 46);
  auto short_one = c.send(cut, counting(0), 0, 4);  // 46 + 2 = 48
  ASSERT_FALSE(short_one);
  EXPECT_EQ(short_one.error(), Drop::kMalformed);
}

INSTANTIATE_TEST_SUITE_P(All, EspTrailer, ::testing::ValuesIn(kSuites),
                         [](const auto& info) { return test::suite_name(info.param); });

// --- parameters --------------------------------------------------------------------

TEST(EspCreate, RejectsBadParameters) {
  const Suite& gcm = kSuites[0];
  const Suite& cbc = kSuites[4];
  const Keys kg = test::make_keys(gcm, 1), kc = test::make_keys(cbc, 1);
  auto refused = [](const EspSaParams& p) { return !OutboundEspSa::create(p) && !InboundEspSa::create(p); };

  EspSaParams p = test::params(gcm, kg, 1);
  EXPECT_FALSE(refused(p));
  p.encr_key = ByteView(kg.encr).first(16);  // salt missing
  EXPECT_TRUE(refused(p));
  p = test::params(gcm, kg, 1);
  p.encr_key_bits = 256;  // 20 octets of material do not make an AES-256 key + salt
  EXPECT_TRUE(refused(p));
  p = test::params(gcm, kg, 1);
  p.integ_id = 12;  // AEAD with an integrity algorithm
  EXPECT_TRUE(refused(p));
  p = test::params(gcm, kg, 1);
  p.encr_id = 3;  // 3DES: not supported
  EXPECT_TRUE(refused(p));
  p = test::params(gcm, kg, 1);
  p.encr_id = 28;  // ChaCha20 needs 36 octets
  p.encr_key_bits = 256;
  EXPECT_TRUE(refused(p));

  p = test::params(cbc, kc, 1);
  EXPECT_FALSE(refused(p));
  p.integ_id = 0;  // CBC without integrity
  EXPECT_TRUE(refused(p));
  p = test::params(cbc, kc, 1);
  p.integ_key = ByteView(kc.integ).first(20);  // RFC 4868 keys are as long as the hash
  EXPECT_TRUE(refused(p));
  p = test::params(cbc, kc, 1);
  p.encr_key_bits = 100;
  EXPECT_TRUE(refused(p));

  // The replay window size only matters inbound.
  p = test::params(gcm, kg, 1);
  p.replay_window = 1000;
  EXPECT_FALSE(InboundEspSa::create(p));
  EXPECT_TRUE(OutboundEspSa::create(p));
  p.replay_window = 64;
  auto in = InboundEspSa::create(p);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->replay_window().size(), 64u);
}

TEST(EspCreate, ChaChaKeyBitsMayBeOmitted) {
  const Suite& cc = kSuites[3];
  const Keys k = test::make_keys(cc, 3);
  EspSaParams p = test::params(cc, k, 9);
  p.encr_key_bits = 0;  // no Key Length attribute for ChaCha20-Poly1305 (RFC 7634 §2)
  auto out = OutboundEspSa::create(p);
  auto in = InboundEspSa::create(p);
  ASSERT_TRUE(out && in);
  Bytes esp = protect(*out, test::ipv4_packet("10.0.0.1", "10.0.0.2", 64));
  EXPECT_TRUE(in->unprotect(esp));
}

TEST(EspCreate, DirectionsWithDifferentKeysDoNotMix) {
  const Suite& s = kSuites[2];
  const Keys a = test::make_keys(s, 1), b = test::make_keys(s, 2);
  auto out = OutboundEspSa::create(test::params(s, a, 5));
  auto in = InboundEspSa::create(test::params(s, b, 5));
  ASSERT_TRUE(out && in);
  Bytes esp = protect(*out, test::ipv4_packet("10.0.0.1", "10.0.0.2", 64));
  auto d = in->unprotect(esp);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), Drop::kAuth);
}

// --- HMAC ----------------------------------------------------------------------------

struct HmacVector {
  HmacSha2::Hash hash;
  const char* key;
  const char* data;
  const char* mac;
};

TEST(HmacSha2, Rfc4231Vectors) {
  // RFC 4231 test cases 1, 2 and 6 (a 131-octet key, hashed first).
  const std::string key6(262, 'a');  // 0xaa x 131
  const char* data6 = "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374";
  const HmacVector v[] = {
      {HmacSha2::Hash::kSha256, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {HmacSha2::Hash::kSha384, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
       "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"},
      {HmacSha2::Hash::kSha512, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
       "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
      {HmacSha2::Hash::kSha256, "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {HmacSha2::Hash::kSha256, key6.c_str(), data6,
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {HmacSha2::Hash::kSha512, key6.c_str(), data6,
       "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"},
  };
  for (const auto& t : v) {
    const Bytes key = hex(t.key), data = hex(t.data);
    HmacSha2 h(t.hash, key);
    Bytes out(HmacSha2::digest_size(t.hash));
    h.compute(data, {}, out);
    EXPECT_EQ(to_hex(out), t.mac);
    // Split input and truncation give the same octets.
    Bytes split(out.size() / 2);
    h.compute(ByteView(data).first(3), ByteView(data).subspan(3), split);
    EXPECT_EQ(to_hex(split), std::string(t.mac).substr(0, split.size() * 2));
  }
}

TEST(HmacSha2, MatchesEvpMacOnManyLengths) {
  crypto::SeededRandom r(11);
  for (auto [hash, name] : {std::pair{HmacSha2::Hash::kSha256, "SHA256"}, std::pair{HmacSha2::Hash::kSha384, "SHA384"},
                            std::pair{HmacSha2::Hash::kSha512, "SHA512"}}) {
    const Bytes key = r.bytes(HmacSha2::digest_size(hash));
    HmacSha2 h(hash, key);
    for (std::size_t n : {0, 1, 55, 56, 63, 64, 111, 112, 127, 128, 129, 1500}) {
      const Bytes data = r.bytes(n);
      Bytes out(HmacSha2::digest_size(hash));
      h.compute(data, {}, out);
      EXPECT_EQ(out, test::hmac(name, key, data)) << name << " " << n;
    }
  }
}

// --- known answers -------------------------------------------------------------------

// Packets built by tests/data/esp/make_esp_kat.py (python3-cryptography): our output
// must be byte-identical and our receiver must accept theirs.
class EspKat : public ::testing::TestWithParam<std::tuple<const char*, bool>> {};

TEST_P(EspKat, ByteExactBothWays) {
  static const test::VectorFile v("esp-kat.txt");
  const std::string name = std::get<0>(GetParam());
  const bool esn = std::get<1>(GetParam());
  const Suite* suite = nullptr;
  for (const auto& s : kSuites)
    if (name == s.name) suite = &s;
  ASSERT_NE(suite, nullptr);
  Keys k{v[name + ".encr_key"], suite->aead() ? Bytes{} : v[name + ".integ_key"]};
  for (const char* ver : {"v4", "v6"}) {
    test::QueuedRandom ivs;
    EspSaParams p = test::params(*suite, k, 0x01020304, esn);
    p.random = &ivs;
    auto out = OutboundEspSa::create(p);
    auto in = InboundEspSa::create(p);
    ASSERT_TRUE(out && in);
    int checked = 0;
    for (int i = 0; i < 3; ++i) {
      const std::string key = name + ".esn" + (esn ? "1." : "0.") + ver + "." + std::to_string(i);
      if (!v.has(key + ".packet")) break;
      SCOPED_TRACE(key);
      const Bytes& seq_b = v[key + ".seq"];
      std::uint64_t seq = 0;
      for (auto b : seq_b) seq = seq << 8 | b;
      if (!suite->aead()) ivs.push(v[key + ".iv"]);
      out->skip_to(seq - 1);
      const Bytes mine = protect(*out, v[key + ".inner"]);
      EXPECT_EQ(to_hex(mine), to_hex(v[key + ".packet"]));
      Bytes theirs = v[key + ".packet"];
      auto d = in->unprotect(theirs);
      ASSERT_TRUE(d) << to_string(d.error());
      EXPECT_EQ(d->seq, seq);
      EXPECT_EQ(Bytes(d->inner.begin(), d->inner.end()), v[key + ".inner"]);
      ++checked;
    }
    EXPECT_EQ(checked, esn ? 3 : 1);
  }
}

INSTANTIATE_TEST_SUITE_P(Python, EspKat,
                         ::testing::Combine(::testing::Values("aes128gcm16", "aes256gcm16", "chacha20poly1305",
                                                              "aes128-sha256", "aes192-sha384", "aes256-sha512"),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param);
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n + (std::get<1>(info.param) ? "_esn" : "");
                         });

// Real packets of a strongSwan 5.9.8 session (tests/data/esp/strongswan-5.9.8-esp.txt):
// AES-GCM-16-128, ESP in UDP, an ICMP echo each way.
class StrongswanEsp : public ::testing::Test {
 protected:
  const test::VectorFile v{"strongswan-5.9.8-esp.txt"};

  EspSaParams dir(const std::string& d) const {
    EspSaParams p;
    const Bytes& spi = v[d + ".spi"];
    p.spi = std::uint32_t{spi[0]} << 24 | std::uint32_t{spi[1]} << 16 | std::uint32_t{spi[2]} << 8 | spi[3];
    p.encr_id = 20;
    p.encr_key_bits = 128;
    p.encr_key = v[d + ".key"];
    return p;
  }
};

TEST_F(StrongswanEsp, DecapsulatesBothDirections) {
  for (const std::string d : {"i_to_r", "r_to_i"}) {
    SCOPED_TRACE(d);
    auto in = InboundEspSa::create(dir(d));
    ASSERT_TRUE(in) << in.error();
    for (int seq : {1, 2}) {
      const std::string name = d + ".seq" + std::to_string(seq);
      Bytes packet = v[name];
      auto got = in->unprotect(packet);
      ASSERT_TRUE(got) << to_string(got.error());
      EXPECT_EQ(got->seq, static_cast<std::uint64_t>(seq));
      EXPECT_EQ(got->next_header, 4);
      const Bytes inner(got->inner.begin(), got->inner.end());
      EXPECT_EQ(inner, v[name + ".inner"]);
      // IPv4, ICMP; echo request from 10.1.99.2 to 192.0.2.1, the reply back.
      ASSERT_EQ(inner.size(), 84u);
      EXPECT_EQ(inner[0], 0x45);
      EXPECT_EQ(inner[9], 1);
      const bool request = d == "i_to_r";
      EXPECT_EQ(to_hex(ByteView(inner).subspan(12, 4)), request ? "0a016302" : "c0000201");
      EXPECT_EQ(to_hex(ByteView(inner).subspan(16, 4)), request ? "c0000201" : "0a016302");
      EXPECT_EQ(inner[20], request ? 8 : 0);  // ICMP echo request / reply
    }
    Bytes replay = v[d + ".seq1"];
    auto r = in->unprotect(replay);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Drop::kReplay);
    // The other direction's keys must not open these packets.
    auto wrong = InboundEspSa::create(dir(d == "i_to_r" ? "r_to_i" : "i_to_r"));
    ASSERT_TRUE(wrong);
    Bytes p = v[d + ".seq2"];
    EXPECT_FALSE(wrong->unprotect(p));
  }
}

TEST_F(StrongswanEsp, ProtectsExactlyLikeStrongswan) {
  // strongSwan (like Linux's seqiv) sends IV = sequence number XOR a random 64-bit
  // value; with that value as our iv_mask the packets must come out bit for bit equal,
  // which pins SPI, sequence number, IV, padding, next header, AAD and tag placement.
  for (const std::string d : {"i_to_r", "r_to_i"}) {
    SCOPED_TRACE(d);
    const Bytes& first = v[d + ".seq1"];
    std::uint64_t iv1 = 0;
    for (int i = 8; i < 16; ++i) iv1 = iv1 << 8 | first[static_cast<std::size_t>(i)];
    EspSaParams p = dir(d);
    p.iv_mask = iv1 ^ 1;
    auto out = OutboundEspSa::create(p);
    ASSERT_TRUE(out);
    for (int seq : {1, 2}) {
      const std::string name = d + ".seq" + std::to_string(seq);
      EXPECT_EQ(to_hex(protect(*out, v[name + ".inner"])), to_hex(v[name]));
    }
  }
}

}  // namespace
}  // namespace mobike::esp
