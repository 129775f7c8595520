// The XFRM builders' parameter checks, the carried-over SA state, GETSA reply parsing,
// and traffic selector -> kernel selector conversion (range splitting).
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <random>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "platform/xfrm_messages.h"

namespace mobike::platform {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }
IpPrefix prefix(const char* text) { return *IpPrefix::parse(text); }

XfrmSa base_sa() {
  XfrmSa sa;
  sa.local = {ip("192.0.2.1"), 4500};
  sa.remote = {ip("198.51.100.10"), 4500};
  sa.spi = 0x11223344;
  sa.reqid = 5;
  sa.transforms = EspTransforms{20, 256, 0, false, Bytes(36, 0x11), {}};
  return sa;
}

int build_error(const XfrmSa& sa) {
  auto m = build_sa_add(sa);
  return m ? 0 : m.error().code;
}

TEST(XfrmMessages, MappingReportsRoundTripAndBadOnesAreRefused) {
  for (const char* family : {"v4", "v6"}) {
    SCOPED_TRACE(family);
    bool v6 = family[1] == '6';
    XfrmMapping m;
    m.dst = ip(v6 ? "2001:db8::10" : "198.51.100.10");
    m.spi = 0xc1000001;
    m.reqid = 7;
    m.old_src = {ip(v6 ? "2001:db8::2" : "198.51.100.2"), 4500};
    m.new_src = {ip(v6 ? "2001:db8::3" : "198.51.100.2"), 23078};
    Bytes msg = build_mapping(m);
    // The kernel's layout: nlmsghdr, then struct xfrm_user_mapping.
    ASSERT_EQ(msg.size(), NLMSG_SPACE(sizeof(xfrm_user_mapping)));
    auto back = parse_mapping(msg);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->dst, m.dst);
    EXPECT_EQ(back->spi, m.spi);
    EXPECT_EQ(back->reqid, 7u);
    EXPECT_EQ(back->old_src, m.old_src);
    EXPECT_EQ(back->new_src, m.new_src);

    // Every truncation is refused, and so are other message types and protocols.
    for (std::size_t n = 0; n < NLMSG_LENGTH(sizeof(xfrm_user_mapping)); n += 7) {
      Bytes cut(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(n));
      EXPECT_FALSE(parse_mapping(cut)) << n;
    }
    Bytes other = msg;
    other[4] = XFRM_MSG_EXPIRE;
    EXPECT_FALSE(parse_mapping(other));
    Bytes ah = msg;
    ah[NLMSG_HDRLEN + offsetof(xfrm_usersa_id, proto)] = IPPROTO_AH;
    EXPECT_FALSE(parse_mapping(ah));
  }
}

TEST(XfrmMessages, ExpireReportsRoundTripWithTheLimitReadOffTheCounters) {
  XfrmExpire e;
  e.src = ip("198.51.100.10");
  e.dst = ip("10.1.0.2");
  e.spi = 0xc1000001;
  e.reqid = 4;
  e.lifetime = {1000, 2000, 10, 20, 30, 40};
  struct Case {
    bool hard;
    std::uint64_t bytes, packets;
    XfrmExpire::Limit limit;
  };
  for (const Case& c : {Case{false, 1000, 3, XfrmExpire::Limit::kBytes}, Case{false, 500, 10, XfrmExpire::Limit::kPackets},
                        Case{false, 500, 3, XfrmExpire::Limit::kTime}, Case{true, 1500, 20, XfrmExpire::Limit::kPackets},
                        Case{true, 2000, 3, XfrmExpire::Limit::kBytes}, Case{true, 1999, 19, XfrmExpire::Limit::kTime}}) {
    e.hard = c.hard;
    e.usage = {c.bytes, c.packets, 1700000000, 1700000001};
    Bytes msg = build_expire(e);
    ASSERT_EQ(msg.size(), NLMSG_SPACE(sizeof(xfrm_user_expire)));
    auto back = parse_expire(msg);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->src, e.src);
    EXPECT_EQ(back->dst, e.dst);
    EXPECT_EQ(back->spi, e.spi);
    EXPECT_EQ(back->reqid, 4u);
    EXPECT_EQ(back->hard, c.hard);
    EXPECT_EQ(back->lifetime, e.lifetime);
    EXPECT_EQ(back->usage, e.usage);
    EXPECT_EQ(back->limit, c.limit) << c.bytes << " " << c.packets;
  }
  Bytes msg = build_expire(e);
  for (std::size_t n = 0; n < NLMSG_LENGTH(sizeof(xfrm_user_expire)); n += 13) {
    Bytes cut(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(parse_expire(cut)) << n;
  }
  Bytes other = msg;
  other[4] = XFRM_MSG_MAPPING;
  EXPECT_FALSE(parse_expire(other));
  // Unlimited (XFRM_INF) reads back as 0.
  e.lifetime = {};
  EXPECT_EQ(parse_expire(build_expire(e))->lifetime, SaLifetime{});
}

TEST(XfrmMessages, AcquireReportsRoundTripAndBadOnesAreRefused) {
  XfrmAcquire a;
  a.src = ip("10.1.0.2");
  a.dst = ip("198.51.100.10");
  a.flow = XfrmSelector{prefix("192.0.2.1/32"), prefix("203.0.113.1/32"), 1, 0x0800, 0xffff, 0, 0xffff};
  a.policy = XfrmSelector{prefix("192.0.2.0/24"), prefix("203.0.113.0/24")};
  a.dir = XfrmDir::kOut;
  a.seq = 77;
  Bytes msg = build_acquire(a);
  ASSERT_EQ(msg.size(), NLMSG_SPACE(sizeof(xfrm_user_acquire)));
  auto back = parse_acquire(msg);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->src, a.src);
  EXPECT_EQ(back->dst, a.dst);
  EXPECT_EQ(back->flow, a.flow);
  EXPECT_EQ(back->policy, a.policy);
  EXPECT_EQ(back->dir, XfrmDir::kOut);
  EXPECT_EQ(back->seq, 77u);
  for (std::size_t n = 0; n < NLMSG_LENGTH(sizeof(xfrm_user_acquire)); n += 17) {
    Bytes cut(msg.begin(), msg.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(parse_acquire(cut)) << n;
  }
  Bytes other = msg;
  other[4] = XFRM_MSG_EXPIRE;
  EXPECT_FALSE(parse_acquire(other));
  Bytes ah = msg;
  ah[NLMSG_HDRLEN + offsetof(xfrm_user_acquire, id) + offsetof(xfrm_id, proto)] = IPPROTO_AH;
  EXPECT_FALSE(parse_acquire(ah));
  Bytes long_prefix = msg;
  long_prefix[NLMSG_HDRLEN + offsetof(xfrm_user_acquire, policy) + offsetof(xfrm_userpolicy_info, sel) +
              offsetof(xfrm_selector, prefixlen_d)] = 33;
  EXPECT_FALSE(parse_acquire(long_prefix));
}

TEST(XfrmMessages, RejectsTransformsTheKernelBackendDoesNotMap) {
  XfrmSa sa = base_sa();
  sa.transforms.encr_id = 3;  // 3DES
  EXPECT_EQ(build_error(sa), ENOTSUP);

  sa = base_sa();
  sa.transforms = EspTransforms{12, 128, 2, false, Bytes(16), Bytes(20)};  // HMAC-SHA1-96
  EXPECT_EQ(build_error(sa), ENOTSUP);

  sa.transforms.integ_id = 0;  // CBC needs integrity
  EXPECT_EQ(build_error(sa), ENOTSUP);
}

TEST(XfrmMessages, RejectsKeyLengthsThatDoNotFitTheTransform) {
  XfrmSa sa = base_sa();
  sa.transforms.encr_key.resize(32);  // AES-256-GCM without the salt
  EXPECT_EQ(build_error(sa), EINVAL);

  sa = base_sa();
  sa.transforms.encr_key_bits = 160;
  sa.transforms.encr_key.resize(24);
  EXPECT_EQ(build_error(sa), EINVAL);

  sa = base_sa();
  sa.transforms.integ_id = 12;  // AEAD plus integrity
  sa.transforms.integ_key = Bytes(32);
  EXPECT_EQ(build_error(sa), EINVAL);

  sa = base_sa();
  sa.transforms = EspTransforms{12, 128, 13, false, Bytes(16), Bytes(32)};  // SHA-384 wants 48
  EXPECT_EQ(build_error(sa), EINVAL);

  sa = base_sa();
  sa.transforms = EspTransforms{28, 128, 0, false, Bytes(20), {}};  // ChaCha20 is 256-bit only
  EXPECT_EQ(build_error(sa), EINVAL);

  sa = base_sa();
  sa.transforms = EspTransforms{28, 0, 0, false, Bytes(36), {}};  // key size implied
  EXPECT_EQ(build_error(sa), 0);
}

TEST(XfrmMessages, RejectsWhatTheKernelWouldRefuse) {
  XfrmSa sa = base_sa();
  sa.remote.address = ip("2001:db8::1");
  EXPECT_EQ(build_error(sa), EINVAL);

  sa = base_sa();
  sa.transforms.esn = true;
  sa.replay_window = 0;
  EXPECT_EQ(build_error(sa), EINVAL);

  sa = base_sa();
  sa.replay_window = XFRMA_REPLAY_ESN_MAX + 1;
  EXPECT_EQ(build_error(sa), EINVAL);
  sa.replay_window = XFRMA_REPLAY_ESN_MAX;
  EXPECT_EQ(build_error(sa), 0);
}

// Walks the attributes after the fixed header; returns the payload of `type`.
std::optional<Bytes> attribute(const Bytes& msg, std::size_t fixed, std::uint16_t type) {
  std::size_t off = 16 + fixed;
  while (off + 4 <= msg.size()) {
    std::uint16_t len, t;
    std::memcpy(&len, &msg[off], 2);
    std::memcpy(&t, &msg[off + 2], 2);
    if (len < 4 || off + len > msg.size()) return std::nullopt;
    if (t == type)
      return Bytes(msg.begin() + static_cast<std::ptrdiff_t>(off + 4),
                   msg.begin() + static_cast<std::ptrdiff_t>(off + len));
    off += (len + 3u) & ~3u;
  }
  return std::nullopt;
}

std::uint32_t u32_at(const Bytes& b, std::size_t off) {
  std::uint32_t v;
  std::memcpy(&v, &b[off], 4);
  return v;
}
std::uint64_t u64_at(const Bytes& b, std::size_t off) {
  std::uint64_t v;
  std::memcpy(&v, &b[off], 8);
  return v;
}

TEST(XfrmMessages, CarryOverKeepsEsnCountersBitmapAndLifetimeCounters) {
  XfrmSa sa = base_sa();
  sa.transforms.esn = true;
  sa.replay_window = 64;
  SaCarryOver carry;
  carry.replay = SaReplayState{0x10, 0x20, 1, 2, 64, {0xdeadbeef, 0x01234567}, true};
  carry.usage = SaUsage{1000, 10, 1700000000, 1700000100};
  auto m = build_sa_add(sa, SaRequest::kNew, &carry);
  ASSERT_TRUE(m) << m.error().message();

  auto esn = attribute(*m, sizeof(xfrm_usersa_info), XFRMA_REPLAY_ESN_VAL);
  ASSERT_TRUE(esn);
  // The full form this time: 24 octets plus bmp_len words, so the bitmap survives.
  ASSERT_EQ(esn->size(), sizeof(xfrm_replay_state_esn) + 2 * 4);
  EXPECT_EQ(u32_at(*esn, 0), 2u);     // bmp_len
  EXPECT_EQ(u32_at(*esn, 4), 0x10u);  // oseq
  EXPECT_EQ(u32_at(*esn, 8), 0x20u);  // seq
  EXPECT_EQ(u32_at(*esn, 12), 1u);    // oseq_hi
  EXPECT_EQ(u32_at(*esn, 16), 2u);    // seq_hi
  EXPECT_EQ(u32_at(*esn, 20), 64u);   // replay_window
  EXPECT_EQ(u32_at(*esn, 24), 0xdeadbeefu);
  EXPECT_EQ(u32_at(*esn, 28), 0x01234567u);

  auto lt = attribute(*m, sizeof(xfrm_usersa_info), XFRMA_LTIME_VAL);
  ASSERT_TRUE(lt);
  ASSERT_EQ(lt->size(), sizeof(xfrm_lifetime_cur));
  EXPECT_EQ(u64_at(*lt, 0), 1000u);
  EXPECT_EQ(u64_at(*lt, 8), 10u);
  EXPECT_EQ(u64_at(*lt, 16), 1700000000u);
  EXPECT_EQ(u64_at(*lt, 24), 1700000100u);

  // ESN flag set, legacy window field 0 (the kernel refuses both at once).
  xfrm_usersa_info info;
  std::memcpy(&info, m->data() + 16, sizeof info);
  EXPECT_EQ(info.flags & XFRM_STATE_ESN, XFRM_STATE_ESN);
  EXPECT_EQ(info.replay_window, 0);
}

// A GETSA reply laid out by hand the way the kernel sends one (copy_to_user_state and
// copy_to_user_state_extra), including an attribute newer than our headers.
Bytes kernel_reply() {
  Bytes m(16 + sizeof(xfrm_usersa_info), 0);
  xfrm_usersa_info info;
  std::memset(&info, 0, sizeof info);
  auto v6 = [](const char* t) {
    xfrm_address_t a;
    std::memset(&a, 0, sizeof a);
    auto b = IpAddress::parse(t)->to_bytes();
    std::memcpy(&a, b.data(), b.size());
    return a;
  };
  info.id.daddr = v6("2001:db8::1");
  info.id.spi = htonl(0xcafe0001);
  info.id.proto = IPPROTO_ESP;
  info.saddr = v6("2001:db8::10");
  info.curlft.bytes = 123456;
  info.curlft.packets = 789;
  info.curlft.add_time = 1700000000;
  info.curlft.use_time = 1700000042;
  info.reqid = 77;
  info.family = AF_INET6;
  info.mode = XFRM_MODE_TUNNEL;
  info.flags = XFRM_STATE_AF_UNSPEC | XFRM_STATE_ESN;
  std::memcpy(m.data() + 16, &info, sizeof info);
  auto attr = [&](std::uint16_t type, const void* data, std::size_t len) {
    std::uint16_t l = static_cast<std::uint16_t>(4 + len);
    std::size_t at = m.size();
    m.resize(at + ((l + 3u) & ~3u), 0);
    std::memcpy(&m[at], &l, 2);
    std::memcpy(&m[at + 2], &type, 2);
    std::memcpy(&m[at + 4], data, len);
  };
  xfrm_encap_tmpl e;
  std::memset(&e, 0, sizeof e);
  e.encap_type = 2;
  e.encap_sport = htons(31337);
  e.encap_dport = htons(4500);
  attr(XFRMA_ENCAP, &e, sizeof e);
  std::uint64_t last = 1700000099;
  attr(XFRMA_LASTUSED, &last, sizeof last);
  std::uint32_t esn[6 + 2] = {2, 0x500, 0x400, 0, 0, 64, 0xffffffff, 0x1};
  attr(XFRMA_REPLAY_ESN_VAL, esn, sizeof esn);
  std::uint32_t future = 1;
  attr(XFRMA_MAX + 5, &future, sizeof future);
  std::uint32_t len = static_cast<std::uint32_t>(m.size());
  std::uint16_t type = XFRM_MSG_NEWSA;
  std::memcpy(&m[0], &len, 4);
  std::memcpy(&m[4], &type, 2);
  return m;
}

TEST(XfrmMessages, ParsesTheKernelsGetSaReply) {
  auto info = parse_sa(kernel_reply());
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->src, ip("2001:db8::10"));
  EXPECT_EQ(info->dst, ip("2001:db8::1"));
  EXPECT_EQ(info->spi, 0xcafe0001u);
  EXPECT_EQ(info->reqid, 77u);
  EXPECT_EQ(info->usage, (SaUsage{123456, 789, 1700000000, 1700000042}));
  EXPECT_EQ(info->last_used, 1700000099u);
  EXPECT_EQ(info->encap_sport, 31337);
  EXPECT_EQ(info->encap_dport, 4500);
  ASSERT_TRUE(info->replay);
  EXPECT_EQ(*info->replay, (SaReplayState{0x500, 0x400, 0, 0, 64, {0xffffffff, 0x1}, true}));
}

TEST(XfrmMessages, RefusesTruncatedOrForeignReplies) {
  Bytes good = kernel_reply();
  Bytes cut(good.begin(), good.begin() + 100);
  EXPECT_EQ(parse_sa(cut).error().code, EBADMSG);

  Bytes wrong = good;
  wrong[4] = XFRM_MSG_NEWPOLICY;
  EXPECT_EQ(parse_sa(wrong).error().code, EBADMSG);

  // An ESN attribute whose bmp_len promises more words than it carries.
  Bytes lying = good;
  std::size_t esn_at = 16 + sizeof(xfrm_usersa_info) + 28 + 12;  // after ENCAP, LASTUSED
  std::uint16_t type;
  std::memcpy(&type, &lying[esn_at + 2], 2);
  ASSERT_EQ(type, XFRMA_REPLAY_ESN_VAL);
  std::uint32_t huge = 100;
  std::memcpy(&lying[esn_at + 4], &huge, 4);
  EXPECT_EQ(parse_sa(lying).error().code, EBADMSG);
}

TEST(XfrmMessages, ParsesWhatItBuilds) {
  // The builder writes the same layout the kernel answers with, which the data-plane
  // tests rely on when a fake kernel replays built messages as GETSA answers.
  XfrmSa sa = base_sa();
  sa.udp_encap = true;
  sa.remote.port = 31337;
  SaCarryOver carry;
  carry.replay = SaReplayState{7, 9, 0, 0, 32, {0x3}, false};
  auto m = build_sa_add(sa, SaRequest::kNew, &carry);
  ASSERT_TRUE(m);
  auto info = parse_sa(*m);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->src, sa.local.address);
  EXPECT_EQ(info->dst, sa.remote.address);
  EXPECT_EQ(info->spi, sa.spi);
  EXPECT_EQ(info->encap_sport, 4500);
  EXPECT_EQ(info->encap_dport, 31337);
  ASSERT_TRUE(info->replay);
  EXPECT_EQ(info->replay->oseq, 7u);
  EXPECT_EQ(info->replay->bitmap, std::vector<std::uint32_t>{0x3});
}

// --- ranges and selectors

TEST(XfrmSelectors, SplitsAddressRangesIntoPrefixes) {
  using V = std::vector<IpPrefix>;
  EXPECT_EQ(range_to_prefixes(ip("10.0.0.0"), ip("10.0.0.255")), V{prefix("10.0.0.0/24")});
  EXPECT_EQ(range_to_prefixes(ip("10.0.0.1"), ip("10.0.0.6")),
            (V{prefix("10.0.0.1/32"), prefix("10.0.0.2/31"), prefix("10.0.0.4/31"),
               prefix("10.0.0.6/32")}));
  EXPECT_EQ(range_to_prefixes(ip("0.0.0.0"), ip("255.255.255.255")), V{prefix("0.0.0.0/0")});
  EXPECT_EQ(range_to_prefixes(ip("255.255.255.255"), ip("255.255.255.255")),
            V{prefix("255.255.255.255/32")});
  EXPECT_EQ(range_to_prefixes(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            V{prefix("::/0")});
  EXPECT_EQ(range_to_prefixes(ip("2001:db8::ffff"), ip("2001:db8::1:0")),
            (V{prefix("2001:db8::ffff/128"), prefix("2001:db8::1:0/128")}));
  EXPECT_EQ(range_to_prefixes(ip("8000::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            V{prefix("8000::/1")});
  EXPECT_TRUE(range_to_prefixes(ip("10.0.0.2"), ip("10.0.0.1")).empty());
  EXPECT_TRUE(range_to_prefixes(ip("10.0.0.1"), ip("::1")).empty());
}

std::uint32_t v4_int(const IpAddress& a) {
  auto b = a.bytes();
  return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
}

TEST(XfrmSelectors, RandomRangesAreCoveredExactlyByMaximalPrefixes) {
  std::mt19937 rng(4555);
  for (int i = 0; i < 2000; ++i) {
    std::uint32_t a = rng(), b = rng();
    if (i % 3 == 0) b = a + (rng() % 5000);  // short ranges too
    if (a > b) std::swap(a, b);
    auto out = range_to_prefixes(IpAddress::v4(a), IpAddress::v4(b));
    ASSERT_FALSE(out.empty());
    ASSERT_LE(out.size(), 62u) << "more prefixes than any 32-bit range needs";
    std::uint64_t next = a;
    for (std::size_t k = 0; k < out.size(); ++k) {
      std::uint32_t first = v4_int(out[k].first()), last = v4_int(out[k].last());
      ASSERT_EQ(out[k].address, out[k].first()) << "prefix not aligned: " << out[k].to_string();
      ASSERT_EQ(first, next) << "gap or overlap before " << out[k].to_string();
      next = std::uint64_t{last} + 1;
      // Maximal: the block twice as large starting here would not be aligned or would
      // overrun the range.
      if (out[k].length > 0) {
        std::uint64_t size = std::uint64_t{1} << (32 - out[k].length);
        bool aligned_double = first % (2 * size) == 0;
        ASSERT_FALSE(aligned_double && std::uint64_t{first} + 2 * size - 1 <= b)
            << out[k].to_string() << " could have been wider in [" << a << "," << b << "]";
      }
    }
    ASSERT_EQ(next, std::uint64_t{b} + 1) << "range end not covered";
  }
}

TEST(XfrmSelectors, SplitsPortRangesIntoMaskedBlocks) {
  using V = std::vector<PortBlock>;
  EXPECT_EQ(port_range_to_blocks(0, 65535), (V{PortBlock{0, 0}}));
  EXPECT_EQ(port_range_to_blocks(443, 443), (V{PortBlock{443, 0xffff}}));
  EXPECT_EQ(port_range_to_blocks(1024, 65535), (V{{1024, 0xfc00},
                                                  {2048, 0xf800},
                                                  {4096, 0xf000},
                                                  {8192, 0xe000},
                                                  {16384, 0xc000},
                                                  {32768, 0x8000}}));
  EXPECT_EQ(port_range_to_blocks(65535, 65535), (V{PortBlock{65535, 0xffff}}));
  EXPECT_TRUE(port_range_to_blocks(2, 1).empty());
}

wire::TrafficSelector ts4(const char* first, const char* last, std::uint8_t proto = 0,
                          std::uint16_t port_lo = 0, std::uint16_t port_hi = 65535) {
  return {wire::TsType::kIpv4AddrRange, proto, port_lo, port_hi, ip(first), ip(last)};
}

TEST(XfrmSelectors, PrefixPairMapsToOneSelector) {
  auto s = selectors_for(ts4("10.1.0.0", "10.1.255.255"), ts4("10.2.3.4", "10.2.3.4"));
  ASSERT_TRUE(s);
  ASSERT_EQ(s->size(), 1u);
  EXPECT_EQ(s->front(), (XfrmSelector{prefix("10.1.0.0/16"), prefix("10.2.3.4/32")}));
}

TEST(XfrmSelectors, NonPrefixRangeBecomesSeveralSelectors) {
  auto s = selectors_for(ts4("10.0.0.1", "10.0.0.6"), ts4("10.2.0.0", "10.2.0.255"));
  ASSERT_TRUE(s);
  ASSERT_EQ(s->size(), 4u);
  EXPECT_EQ((*s)[1].src, prefix("10.0.0.2/31"));
  for (const auto& sel : *s) EXPECT_EQ(sel.dst, prefix("10.2.0.0/24"));
}

TEST(XfrmSelectors, PortsOfTheSourceTsBecomeSportAndOfTheDestinationDport) {
  auto s = selectors_for(ts4("10.1.0.0", "10.1.0.255", 6, 0, 65535),
                         ts4("10.2.0.9", "10.2.0.9", 6, 80, 80));
  ASSERT_TRUE(s);
  ASSERT_EQ(s->size(), 1u);
  EXPECT_EQ(s->front().proto, 6);
  EXPECT_EQ(s->front().sport_mask, 0);
  EXPECT_EQ(s->front().dport, 80);
  EXPECT_EQ(s->front().dport_mask, 0xffff);
  // One side "any protocol" narrows to the other's.
  auto t = selectors_for(ts4("10.1.0.0", "10.1.0.255"), ts4("10.2.0.9", "10.2.0.9", 17, 53, 53));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->front().proto, 17);
}

TEST(XfrmSelectors, IcmpTypeAndCodeGoToSportAndDport) {
  // Echo request only (type 8, code 0), the other side any.
  auto s = selectors_for(ts4("10.1.0.0", "10.1.0.255", 1, 0x0800, 0x0800),
                         ts4("10.2.0.0", "10.2.0.255", 1));
  ASSERT_TRUE(s);
  ASSERT_EQ(s->size(), 1u);
  EXPECT_EQ(s->front().sport, 8);
  EXPECT_EQ(s->front().sport_mask, 0xffff);
  EXPECT_EQ(s->front().dport, 0);
  EXPECT_EQ(s->front().dport_mask, 0xffff);
  // All codes of destination-unreachable: the code is not matched.
  auto u = selectors_for(ts4("10.1.0.0", "10.1.0.255", 1, 0x0300, 0x03ff),
                         ts4("10.2.0.0", "10.2.0.255", 1));
  ASSERT_TRUE(u);
  ASSERT_EQ(u->size(), 1u);
  EXPECT_EQ(u->front().sport, 3);
  EXPECT_EQ(u->front().sport_mask, 0xffff);
  EXPECT_EQ(u->front().dport_mask, 0);
  // Disjoint type ranges on the two sides: nothing can match.
  auto none = selectors_for(ts4("10.1.0.0", "10.1.0.255", 1, 0x0800, 0x0800),
                            ts4("10.2.0.0", "10.2.0.255", 1, 0x0000, 0x00ff));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(XfrmSelectors, PairsThatCannotMatchYieldNothing) {
  wire::TrafficSelector v6{wire::TsType::kIpv6AddrRange, 0, 0, 65535, ip("2001:db8::"),
                           ip("2001:db8::ffff")};
  auto s = selectors_for(ts4("10.1.0.0", "10.1.0.255"), v6);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->empty());
  auto t = selectors_for(ts4("10.1.0.0", "10.1.0.255", 6), ts4("10.2.0.0", "10.2.0.255", 17));
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->empty());
}

TEST(XfrmSelectors, RefusesPairsNeedingTooManySelectors) {
  auto s = selectors_for(ts4("0.0.0.1", "255.255.255.254", 6, 1, 65534),
                         ts4("10.2.0.0", "10.2.0.255", 6));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, E2BIG);
  auto empty_ports =
      selectors_for(ts4("10.1.0.0", "10.1.0.255", 6, 100, 99), ts4("10.2.0.0", "10.2.0.255", 6));
  ASSERT_FALSE(empty_ports);
  EXPECT_EQ(empty_ports.error().code, EINVAL);
}

TEST(XfrmSelectors, NarrowerSelectorsGetPreferredPriorities) {
  XfrmSelector wide{prefix("10.0.0.0/8"), prefix("0.0.0.0/0")};
  XfrmSelector narrow{prefix("10.1.0.0/16"), prefix("10.2.0.0/16")};
  XfrmSelector port = narrow;
  port.proto = 6;
  port.dport = 80;
  port.dport_mask = 0xffff;
  EXPECT_LT(default_priority(narrow), default_priority(wide));
  EXPECT_LT(default_priority(port), default_priority(narrow));
  XfrmSelector host6{prefix("2001:db8::1/128"), prefix("2001:db8::2/128"), 6, 1, 0xffff, 2, 0xffff};
  EXPECT_GT(default_priority(host6), 0u);
}

}  // namespace
}  // namespace mobike::platform
