// Byte-exact checks of the XFRM message builders against requests captured from
// iproute2 (tests/data/xfrm/*.hex, made by tests/data/xfrm/capture.py; each file names
// the ip command and the parameters below mirror it) and, for XFRM_MSG_MIGRATE, which
// ip(8) cannot send, against bytes written out field by field from the uapi layout.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "platform/xfrm_messages.h"

namespace mobike::platform {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }
IpPrefix prefix(const char* text) { return *IpPrefix::parse(text); }

// first, first+1, ... (the key octets capture.py uses)
Bytes seq(std::uint8_t first, std::size_t count) {
  Bytes b(count);
  for (std::size_t i = 0; i < count; ++i) b[i] = static_cast<std::uint8_t>(first + i);
  return b;
}
Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes golden(const std::string& name) {
  std::ifstream f(std::string(MOBIKE_TEST_DATA) + "/xfrm/" + name + ".hex");
  EXPECT_TRUE(f.good()) << "missing golden " << name;
  std::string line, hex;
  while (std::getline(f, line))
    if (!line.empty() && line[0] != '#') hex += line + " ";
  Bytes b = from_hex(hex);
  EXPECT_FALSE(b.empty()) << "golden " << name << " holds no bytes";
  return b;
}

// Reports the first differing offset: a bare hex mismatch of 400 octets is unreadable.
void expect_same(const Bytes& got, const Bytes& want) {
  ASSERT_FALSE(want.empty());
  std::size_t n = std::min(got.size(), want.size());
  std::size_t first = n;
  for (std::size_t i = 0; i < n; ++i)
    if (got[i] != want[i]) {
      first = i;
      break;
    }
  if (first == n && got.size() == want.size()) return;
  auto window = [&](const Bytes& b) {
    std::size_t from = first >= 8 ? first - 8 : 0;
    std::size_t len = std::min<std::size_t>(24, b.size() > from ? b.size() - from : 0);
    return to_hex(ByteView(b.data() + from, len));
  };
  ADD_FAILURE() << "messages differ at offset " << first << " (sizes " << got.size() << " vs "
                << want.size() << ")\n  built:  ..." << window(got) << "\n  golden: ..."
                << window(want);
}

EspTransforms gcm128() {
  return EspTransforms{20, 128, 0, false, cat(seq(0x00, 16), from_hex("a0a1a2a3")), {}};
}
EspTransforms cbc128_sha256() {
  return EspTransforms{12, 128, 12, false, seq(0xc0, 16), seq(0xd0, 32)};
}

XfrmSa gcm_sa(bool inbound, std::uint32_t spi, std::uint16_t remote_port) {
  XfrmSa sa;
  sa.local = {ip("192.0.2.1"), 4500};
  sa.remote = {ip("198.51.100.10"), remote_port};
  sa.spi = spi;
  sa.inbound = inbound;
  sa.reqid = 7;
  sa.transforms = gcm128();
  sa.udp_encap = true;
  return sa;
}

Bytes built(const XfrmSa& sa, SaRequest kind = SaRequest::kNew,
            const SaCarryOver* carry = nullptr) {
  auto m = build_sa_add(sa, kind, carry);
  EXPECT_TRUE(m) << m.error().message();
  return m ? *m : Bytes{};
}

TEST(XfrmGolden, NewSaAesGcmOutboundWithUdpEncap) {
  expect_same(built(gcm_sa(false, 0xc0ffee01, 31337)), golden("sa_new_gcm128_out_encap_v4"));
}

TEST(XfrmGolden, NewSaAesGcmInboundSwapsEncapPorts) {
  expect_same(built(gcm_sa(true, 0xc0ffee02, 31337)), golden("sa_new_gcm128_in_encap_v4"));
}

TEST(XfrmGolden, UpdSaCarriesNewEncapPort) {
  expect_same(built(gcm_sa(false, 0xc0ffee01, 40000), SaRequest::kUpdate),
              golden("sa_upd_gcm128_out_encap_v4"));
}

TEST(XfrmGolden, NewSaAesCbcHmacSha256) {
  XfrmSa sa;
  sa.local = {ip("192.0.2.1"), 500};
  sa.remote = {ip("198.51.100.10"), 500};
  sa.spi = 0x01020304;
  sa.reqid = 1;
  sa.transforms = cbc128_sha256();
  expect_same(built(sa), golden("sa_new_cbc128_sha256_out_v4"));
}

TEST(XfrmGolden, NewSaAesCbc256HmacSha512InboundIpv6WithLimits) {
  XfrmSa sa;
  sa.local = {ip("2001:db8::1"), 500};
  sa.remote = {ip("2001:db8::10"), 500};
  sa.spi = 0x1234;
  sa.inbound = true;
  sa.reqid = 9;
  sa.transforms = EspTransforms{12, 256, 14, false, seq(0x10, 32), seq(0x40, 64)};
  sa.lifetime = SaLifetime{900000, 1000000, 9000, 10000, 3000, 3600};
  expect_same(built(sa), golden("sa_new_cbc256_sha512_in_v6_limits"));
}

TEST(XfrmGolden, NewSaWindowAbove32UsesEsnAttribute) {
  XfrmSa sa;
  sa.local = {ip("192.0.2.1"), 500};
  sa.remote = {ip("198.51.100.10"), 500};
  sa.spi = 0x0badcafe;
  sa.reqid = 3;
  sa.transforms = EspTransforms{12, 192, 13, false, seq(0x30, 24), seq(0x50, 48)};
  sa.replay_window = 128;
  expect_same(built(sa), golden("sa_new_cbc192_sha384_window128_v4"));
}

TEST(XfrmGolden, NewSaChaCha20Poly1305WithEsn) {
  XfrmSa sa;
  sa.local = {ip("2001:db8::1"), 500};
  sa.remote = {ip("2001:db8::10"), 500};
  sa.spi = 0xfeedf00d;
  sa.reqid = 4;
  sa.transforms = EspTransforms{28, 256, 0, true, cat(seq(0x80, 32), from_hex("b0b1b2b3")), {}};
  sa.replay_window = 1024;
  expect_same(built(sa), golden("sa_new_chacha_esn_v6"));
}

TEST(XfrmGolden, NewSaWithCarriedSequenceNumbers) {
  XfrmSa sa;
  sa.local = {ip("192.0.2.7"), 500};
  sa.remote = {ip("198.51.100.10"), 500};
  sa.spi = 0x01020304;
  sa.reqid = 1;
  sa.transforms = cbc128_sha256();
  SaCarryOver carry;
  carry.replay = SaReplayState{0x1234, 0x55, 0, 0, 32, {0}, false};
  expect_same(built(sa, SaRequest::kNew, &carry), golden("sa_new_cbc128_sha256_counters_v4"));
}

TEST(XfrmGolden, DeleteSa) {
  expect_same(build_sa_delete(ip("192.0.2.1"), ip("198.51.100.10"), 0xc0ffee01),
              golden("sa_del_v4"));
}

TEST(XfrmGolden, GetSaIpv6) {
  expect_same(build_sa_get(ip("2001:db8::10"), ip("2001:db8::1"), 0x1234), golden("sa_get_v6"));
}

TEST(XfrmGolden, NewOutboundPolicyFromTrafficSelectors) {
  wire::TrafficSelector local{
      wire::TsType::kIpv4AddrRange, 0, 0, 65535, ip("10.1.0.0"), ip("10.1.255.255")};
  wire::TrafficSelector remote{
      wire::TsType::kIpv4AddrRange, 0, 0, 65535, ip("10.2.0.0"), ip("10.2.255.255")};
  auto sels = selectors_for(local, remote);
  ASSERT_TRUE(sels);
  ASSERT_EQ(sels->size(), 1u);
  XfrmPolicy p{sels->front(), XfrmDir::kOut, ip("192.0.2.1"), ip("198.51.100.10"), 7, 1871};
  expect_same(build_policy_add(p), golden("policy_new_out_v4"));
}

XfrmSelector tcp_selector() {
  return XfrmSelector{prefix("10.2.0.0/16"), prefix("10.1.2.3/32"), 6, 443, 0xffff, 0, 0};
}

TEST(XfrmGolden, NewInboundPolicyWithProtocolAndPort) {
  XfrmPolicy p{tcp_selector(), XfrmDir::kIn, ip("198.51.100.10"), ip("192.0.2.1"), 7, 1800};
  expect_same(build_policy_add(p), golden("policy_new_in_tcp_v4"));
}

TEST(XfrmGolden, NewForwardPolicyIpv6InsideIpv4Tunnel) {
  XfrmSelector sel{prefix("2001:db8:2::/48"), prefix("2001:db8:1::/48")};
  XfrmPolicy p{sel, XfrmDir::kFwd, ip("198.51.100.10"), ip("192.0.2.1"), 11, 1600};
  expect_same(build_policy_add(p), golden("policy_new_fwd_v6_over_v4"));
}

TEST(XfrmGolden, UpdatePolicyWithNewTunnelAddresses) {
  XfrmSelector sel{prefix("10.1.0.0/16"), prefix("10.2.0.0/16")};
  XfrmPolicy p{sel, XfrmDir::kOut, ip("192.0.2.99"), ip("198.51.100.20"), 7, 1871};
  expect_same(build_policy_add(p, true), golden("policy_upd_out_v4"));
}

TEST(XfrmGolden, DeletePolicies) {
  expect_same(build_policy_delete(XfrmSelector{prefix("10.1.0.0/16"), prefix("10.2.0.0/16")},
                                  XfrmDir::kOut),
              golden("policy_del_out_v4"));
  expect_same(build_policy_delete(tcp_selector(), XfrmDir::kIn), golden("policy_del_in_tcp_v4"));
}

// --- XFRM_MSG_MIGRATE, written out from <linux/xfrm.h> by hand (ip(8) has no command
// for it). Native byte order is little-endian on the machines this runs on; the
// netlink header and the __u16/__u32 fields are native, __be16/__be32 are network order.

struct Writer {
  Bytes b;
  void u8(std::uint8_t v) { b.push_back(v); }
  void le16(std::uint16_t v) { u8(v & 0xff), u8(v >> 8); }
  void le32(std::uint32_t v) { le16(v & 0xffff), le16(v >> 16); }
  void be16(std::uint16_t v) { u8(v >> 8), u8(v & 0xff); }
  void zeros(std::size_t n) { b.insert(b.end(), n, 0); }
  // xfrm_address_t: 16 octets, an IPv4 address in the first four.
  void addr(const char* text) {
    auto a = ip(text).to_bytes();
    b.insert(b.end(), a.begin(), a.end());
    zeros(16 - a.size());
  }
};

TEST(XfrmGolden, MigrateOutboundPolicyWithEncapsulation) {
  XfrmSelector sel{prefix("10.1.0.0/16"), prefix("10.2.0.0/16")};
  XfrmMigration m{ip("192.0.2.1"), ip("198.51.100.10"), ip("192.0.2.99"), ip("198.51.100.10"), 7};
  Bytes got = build_migrate(sel, XfrmDir::kOut, m, EncapPorts{4500, 31337});

  Writer w;
  // struct nlmsghdr
  w.le32(188);     // nlmsg_len: 16 + 64 + 80 + 28
  w.le16(0x21);    // XFRM_MSG_MIGRATE (XFRM_MSG_BASE 0x10 + 17)
  w.le16(0x0005);  // NLM_F_REQUEST | NLM_F_ACK
  w.le32(0);       // nlmsg_seq (the socket fills it)
  w.le32(0);       // nlmsg_pid
  // struct xfrm_userpolicy_id: struct xfrm_selector sel
  w.addr("10.2.0.0");  // daddr
  w.addr("10.1.0.0");  // saddr
  w.be16(0);           // dport
  w.be16(0);           // dport_mask
  w.be16(0);           // sport
  w.be16(0);           // sport_mask
  w.le16(2);           // family AF_INET
  w.u8(16);            // prefixlen_d
  w.u8(16);            // prefixlen_s
  w.u8(0);             // proto: any
  w.zeros(3);          // padding before int ifindex
  w.le32(0);           // ifindex
  w.le32(0);           // user
  w.le32(0);           // index: find the policy by selector
  w.u8(1);             // dir XFRM_POLICY_OUT
  w.zeros(3);          // tail padding to 4
  // nlattr XFRMA_MIGRATE (17), one struct xfrm_user_migrate (76 octets)
  w.le16(80);
  w.le16(17);
  w.addr("198.51.100.10");  // old_daddr
  w.addr("192.0.2.1");      // old_saddr
  w.addr("198.51.100.10");  // new_daddr
  w.addr("192.0.2.99");     // new_saddr
  w.u8(50);                 // proto IPPROTO_ESP
  w.u8(1);                  // mode XFRM_MODE_TUNNEL
  w.le16(0);                // reserved
  w.le32(7);                // reqid
  w.le16(2);                // old_family
  w.le16(2);                // new_family
  // nlattr XFRMA_ENCAP (4), struct xfrm_encap_tmpl (24 octets)
  w.le16(28);
  w.le16(4);
  w.le16(2);      // encap_type UDP_ENCAP_ESPINUDP
  w.be16(4500);   // encap_sport: our port on the outbound SA
  w.be16(31337);  // encap_dport
  w.zeros(2);     // padding before xfrm_address_t
  w.zeros(16);    // encap_oa: unused in tunnel mode
  expect_same(got, w.b);
}

TEST(XfrmGolden, MigrateForwardPolicyFromIpv4ToIpv6WithoutEncapsulation) {
  XfrmSelector sel{prefix("10.2.0.0/16"), prefix("10.1.0.0/16"), 17, 0, 0, 53, 0xffff};
  XfrmMigration m{ip("198.51.100.10"), ip("192.0.2.1"), ip("2001:db8::10"), ip("2001:db8::1"), 42};
  Bytes got = build_migrate(sel, XfrmDir::kFwd, m, std::nullopt);

  Writer w;
  w.le32(160);  // 16 + 64 + 80: no XFRMA_ENCAP
  w.le16(0x21);
  w.le16(0x0005);
  w.le32(0);
  w.le32(0);
  w.addr("10.1.0.0");  // sel.daddr
  w.addr("10.2.0.0");  // sel.saddr
  w.be16(53);          // dport
  w.be16(0xffff);      // dport_mask
  w.be16(0);           // sport
  w.be16(0);           // sport_mask
  w.le16(2);           // family: the selector's (inner) family stays IPv4
  w.u8(16);
  w.u8(16);
  w.u8(17);  // proto UDP
  w.zeros(3);
  w.le32(0);
  w.le32(0);
  w.le32(0);  // index
  w.u8(2);    // dir XFRM_POLICY_FWD
  w.zeros(3);
  w.le16(80);
  w.le16(17);
  w.addr("192.0.2.1");      // old_daddr (fwd: towards us)
  w.addr("198.51.100.10");  // old_saddr
  w.addr("2001:db8::1");    // new_daddr
  w.addr("2001:db8::10");   // new_saddr
  w.u8(50);
  w.u8(1);
  w.le16(0);
  w.le32(42);  // reqid
  w.le16(2);   // old_family AF_INET
  w.le16(10);  // new_family AF_INET6
  expect_same(got, w.b);
}

}  // namespace
}  // namespace mobike::platform
