#include "esp/sa_table.h"

#include <gtest/gtest.h>

#include <deque>

#include "esp_test_util.h"

namespace mobike::esp {
namespace {

using test::Keys;
using test::kSuites;
using test::Suite;
using wire::TrafficSelector;

TrafficSelector prefix(std::string_view cidr, std::uint8_t proto = 0, std::uint16_t lo = 0, std::uint16_t hi = 65535) {
  const auto p = IpPrefix::parse(cidr);
  if (!p) throw std::invalid_argument("bad prefix");
  TrafficSelector ts;
  ts.ts_type = p->address.is_v4() ? wire::TsType::kIpv4AddrRange : wire::TsType::kIpv6AddrRange;
  ts.ip_protocol = proto;
  ts.start_port = lo;
  ts.end_port = hi;
  ts.start_address = p->first();
  ts.end_address = p->last();
  return ts;
}

EspPath path(std::string_view local, std::string_view remote, bool encap = true) {
  return EspPath{{*IpAddress::parse(local), 4500}, {*IpAddress::parse(remote), 4500}, encap};
}

constexpr std::size_t kInnerAt = 128;  // outer headers + ESP header go in front

// Two gateways, `a` and `b`, with mirrored Child SAs between them.
class SaTables : public ::testing::Test {
 protected:
  SaTable a, b;
  std::deque<Keys> keys;  // stable addresses: specs hold views into them

  // a's selectors as given, b's mirrored (unless overridden, to build a peer that
  // sends outside what a agreed to).
  void connect(std::uint64_t id, std::uint32_t spi_a, std::uint32_t spi_b, TsList a_local, TsList a_remote,
               const Suite& s = kSuites[0], std::optional<std::pair<TsList, TsList>> b_ts = std::nullopt,
               std::uint64_t ike_id = 1, VolumeLimits a_limits = {}, VolumeLimits b_limits = {}) {
    const Keys& ab = keys.emplace_back(test::make_keys(s, id * 2));
    const Keys& ba = keys.emplace_back(test::make_keys(s, id * 2 + 1));
    ChildSaSpec sa;
    sa.child_sa_id = id;
    sa.ike_sa_id = ike_id;
    sa.in = test::params(s, ba, spi_a);
    sa.out = test::params(s, ab, spi_b);
    sa.path = path("192.0.2.1", "198.51.100.1");
    sa.local_ts = a_local;
    sa.remote_ts = a_remote;
    sa.limits = a_limits;
    ChildSaSpec sb;
    sb.child_sa_id = id;
    sb.ike_sa_id = ike_id;
    sb.in = test::params(s, ab, spi_b);
    sb.out = test::params(s, ba, spi_a);
    sb.path = path("198.51.100.1", "192.0.2.1");
    sb.local_ts = b_ts ? b_ts->first : a_remote;
    sb.remote_ts = b_ts ? b_ts->second : a_local;
    sb.limits = b_limits;
    auto ra = a.install(sa);
    auto rb = b.install(sb);
    if (!ra || !rb) throw std::runtime_error(ra ? rb.error() : ra.error());
  }

  // Inner packet into a buffer at kInnerAt, protected by `from`; the ESP packet alone.
  static Expected<Bytes, Drop> send(SaTable& from, const Bytes& inner, std::uint64_t* child = nullptr,
                                    EspPath* p = nullptr) {
    Bytes buf(kInnerAt + inner.size() + OutboundEspSa::kMaxOverhead);
    std::copy(inner.begin(), inner.end(), buf.begin() + kInnerAt);
    auto r = from.protect(buf, kInnerAt, inner.size());
    if (!r) return unexpected(r.error());
    if (child) *child = r->child_sa_id;
    if (p) *p = r->path;
    return Bytes(buf.begin() + static_cast<long>(r->esp.offset),
                 buf.begin() + static_cast<long>(r->esp.offset + r->esp.length));
  }

  static std::uint32_t spi_of(const Bytes& esp) {
    return std::uint32_t{esp[0]} << 24 | std::uint32_t{esp[1]} << 16 | std::uint32_t{esp[2]} << 8 | esp[3];
  }
};

TEST_F(SaTables, RoundTripBothWaysWithCounters) {
  for (std::uint32_t i = 0; i < 3; ++i) {
    const Suite& s = kSuites[i == 0 ? 0 : i == 1 ? 3 : 5];
    SCOPED_TRACE(s.name);
    const std::string ours = "10." + std::to_string(10 + i) + ".0.", theirs = "10." + std::to_string(20 + i) + ".0.";
    connect(i + 1, 0xa0000001 + i, 0xb0000001 + i, {prefix(ours + "0/24")}, {prefix(theirs + "0/24")}, s);
    const Bytes req = test::ipv4_packet(ours + "5", theirs + "9", 300);
    const Bytes rep = test::ipv4_packet(theirs + "9", ours + "5", 1200);
    for (int n = 0; n < 3; ++n) {
      std::uint64_t child = 0;
      EspPath p;
      auto esp = send(a, req, &child, &p);
      ASSERT_TRUE(esp) << to_string(esp.error());
      EXPECT_EQ(child, i + 1);
      EXPECT_EQ(p, path("192.0.2.1", "198.51.100.1"));
      EXPECT_EQ(spi_of(*esp), 0xb0000001u + i);  // the peer's inbound SPI
      auto got = b.unprotect(*esp);
      ASSERT_TRUE(got) << to_string(got.error());
      EXPECT_EQ(Bytes(got->inner.begin(), got->inner.end()), req);
      EXPECT_EQ(got->child_sa_id, i + 1);
      EXPECT_EQ(got->next_header, 4);

      auto back = send(b, rep);
      ASSERT_TRUE(back);
      auto got2 = a.unprotect(*back);
      ASSERT_TRUE(got2) << to_string(got2.error());
      EXPECT_EQ(Bytes(got2->inner.begin(), got2->inner.end()), rep);
    }
    const ChildSaCounters ca = a.find(i + 1)->counters(), cb = b.find(i + 1)->counters();
    EXPECT_EQ(ca.out.packets, 3u);
    EXPECT_EQ(ca.out.bytes, 900u);
    EXPECT_EQ(ca.in.packets, 3u);
    EXPECT_EQ(ca.in.bytes, 3600u);
    EXPECT_EQ(cb.in.packets, 3u);
    EXPECT_EQ(cb.in.bytes, 900u);
    EXPECT_EQ(cb.out.bytes, 3600u);
    EXPECT_EQ(ca.in.dropped_total() + ca.out.dropped_total(), 0u);
  }
}

// Idle Child SAs hold no keyed cipher state: none before their first packet, and the
// sweep frees what a direction without packets since the previous sweep holds, while
// a busy Child SA keeps its contexts and both keep working.
TEST_F(SaTables, SweepsReleaseIdleCiphersOnly) {
  connect(1, 0xa0000001, 0xb0000001, {prefix("10.10.0.0/24")}, {prefix("10.20.0.0/24")});
  connect(2, 0xa0000002, 0xb0000002, {prefix("10.11.0.0/24")}, {prefix("10.21.0.0/24")});
  EXPECT_EQ(a.keyed_ciphers(), 0u);
  const Bytes to1 = test::ipv4_packet("10.10.0.5", "10.20.0.9", 100);
  const Bytes to2 = test::ipv4_packet("10.11.0.5", "10.21.0.9", 100);
  auto round = [&](const Bytes& inner) {
    auto esp = send(a, inner);
    ASSERT_TRUE(esp) << to_string(esp.error());
    ASSERT_TRUE(b.unprotect(*esp));
  };
  round(to1);
  round(to2);
  EXPECT_EQ(a.keyed_ciphers(), 2u);  // outbound of each; nothing came in yet
  EXPECT_EQ(b.keyed_ciphers(), 2u);
  auto s1 = a.release_idle_ciphers();  // both were used since creation
  EXPECT_EQ(s1.released, 0u);
  EXPECT_EQ(s1.keyed, 2u);
  round(to1);  // only Child SA 1 stays busy
  auto s2 = a.release_idle_ciphers();
  EXPECT_EQ(s2.released, 1u);
  EXPECT_EQ(s2.keyed, 1u);
  EXPECT_TRUE(a.find(1)->outbound().cipher_keyed());
  EXPECT_FALSE(a.find(2)->outbound().cipher_keyed());
  round(to2);  // keyed again from its key, and the peer still reads it
  EXPECT_EQ(a.keyed_ciphers(), 2u);
  EXPECT_EQ(a.find(2)->counters().out.packets, 2u);
  EXPECT_EQ(b.find(2)->counters().in.packets, 2u);
}

TEST_F(SaTables, Ipv6InnerAndExtensionHeaders) {
  connect(1, 1, 2, {prefix("2001:db8:1::/48")}, {prefix("2001:db8:2::/48", 6, 443, 443)});
  // Hop-by-hop options (8 octets) before TCP: the selector must see TCP port 443.
  Bytes inner = test::ipv6_packet("2001:db8:1::5", "2001:db8:2::9", 88, 0);
  inner[40] = 6;  // hop-by-hop: next header TCP
  inner[41] = 0;  // length: 8 octets
  inner[48] = 0x30;
  inner[49] = 0x39;  // sport 12345
  inner[50] = 0x01;
  inner[51] = 0xbb;  // dport 443
  const auto flow = parse_flow(inner);
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->protocol, 6);
  EXPECT_EQ(flow->dst_port, 443);
  EXPECT_FALSE(flow->opaque_ports);
  auto esp = send(a, inner);
  ASSERT_TRUE(esp) << to_string(esp.error());
  auto got = b.unprotect(*esp);
  ASSERT_TRUE(got) << to_string(got.error());
  EXPECT_EQ(got->next_header, 41);
  EXPECT_EQ(Bytes(got->inner.begin(), got->inner.end()), inner);
  // Port 80 is outside the selectors.
  inner[51] = 80;
  inner[50] = 0;
  auto no = send(a, inner);
  ASSERT_FALSE(no);
  EXPECT_EQ(no.error(), Drop::kNoPolicy);
}

TEST_F(SaTables, OutboundLookupByDestinationAndSource) {
  connect(1, 0x11, 0x21, {prefix("10.1.0.0/16")}, {prefix("10.2.0.0/16")});
  connect(2, 0x12, 0x22, {prefix("10.1.0.0/16")}, {prefix("10.3.0.0/16"), prefix("10.4.0.7/32")});
  std::uint64_t child = 0;
  auto e1 = send(a, test::ipv4_packet("10.1.2.3", "10.2.9.9", 60), &child);
  ASSERT_TRUE(e1);
  EXPECT_EQ(child, 1u);
  EXPECT_EQ(spi_of(*e1), 0x21u);
  auto e2 = send(a, test::ipv4_packet("10.1.2.3", "10.3.0.1", 60), &child);
  ASSERT_TRUE(e2);
  EXPECT_EQ(child, 2u);
  EXPECT_EQ(spi_of(*e2), 0x22u);
  auto e3 = send(a, test::ipv4_packet("10.1.2.3", "10.4.0.7", 60), &child);
  ASSERT_TRUE(e3);
  EXPECT_EQ(child, 2u);
  for (const Bytes& miss : {test::ipv4_packet("10.1.2.3", "10.4.0.8", 60),     // no remote selector
                            test::ipv4_packet("10.9.2.3", "10.2.0.1", 60),     // source outside
                            test::ipv6_packet("2001:db8::1", "2001:db8::2", 60)}) {  // other family
    auto r = send(a, miss);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Drop::kNoPolicy);
  }
  EXPECT_EQ(a.unattributed_out().dropped(Drop::kNoPolicy), 3u);
  Bytes garbage(40, 0x11);
  auto g = send(a, garbage);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error(), Drop::kMalformed);
  EXPECT_EQ(a.unattributed_out().dropped(Drop::kMalformed), 1u);
}

TEST_F(SaTables, MostSpecificSelectorsWin) {
  // Installed from the most specific to the least, so "newest wins" alone would be wrong.
  connect(3, 0x13, 0x23, {prefix("0.0.0.0/0")}, {prefix("10.2.3.4/32")});
  connect(2, 0x12, 0x22, {prefix("0.0.0.0/0")}, {prefix("10.2.0.0/16")});
  connect(1, 0x11, 0x21, {prefix("0.0.0.0/0")}, {prefix("10.0.0.0/8")});
  auto flow = [](std::string_view dst) { return *parse_flow(test::ipv4_packet("192.168.0.1", dst, 40)); };
  ASSERT_NE(a.find_outbound(flow("10.2.3.4")), nullptr);
  EXPECT_EQ(a.find_outbound(flow("10.2.3.4"))->child_sa_id(), 3u);
  EXPECT_EQ(a.find_outbound(flow("10.2.3.5"))->child_sa_id(), 2u);
  EXPECT_EQ(a.find_outbound(flow("10.9.0.1"))->child_sa_id(), 1u);
  EXPECT_EQ(a.find_outbound(flow("11.0.0.1")), nullptr);
  // Equally specific on the remote side: the narrower local selector decides.
  connect(4, 0x14, 0x24, {prefix("192.168.0.0/24")}, {prefix("10.0.0.0/8")});
  EXPECT_EQ(a.find_outbound(flow("10.9.0.1"))->child_sa_id(), 4u);
}

TEST_F(SaTables, ProtocolPortsAndFragments) {
  connect(1, 0x11, 0x21, {prefix("10.1.0.0/16")}, {prefix("10.2.0.0/16", 6, 443, 443)});
  connect(2, 0x12, 0x22, {prefix("10.1.0.0/16")}, {prefix("10.2.0.0/16")});
  connect(3, 0x13, 0x23, {prefix("10.1.0.0/16")}, {prefix("10.3.0.0/16", 1)});
  auto child = [&](const Bytes& p) {
    const ChildSaEntry* e = a.find_outbound(*parse_flow(p));
    return e ? e->child_sa_id() : 0;
  };
  EXPECT_EQ(child(test::ipv4_packet("10.1.0.1", "10.2.0.1", 60, 6, 5555, 443)), 1u);
  EXPECT_EQ(child(test::ipv4_packet("10.1.0.1", "10.2.0.1", 60, 6, 5555, 80)), 2u);
  EXPECT_EQ(child(test::ipv4_packet("10.1.0.1", "10.2.0.1", 60, 17, 5555, 443)), 2u);
  // A non-initial fragment carries no ports (OPAQUE): only the any-port SA fits.
  Bytes frag = test::ipv4_packet("10.1.0.1", "10.2.0.1", 60, 6, 5555, 443);
  frag[7] = 0x10;  // fragment offset 16 x 8 octets
  EXPECT_TRUE(parse_flow(frag)->opaque_ports);
  EXPECT_EQ(child(frag), 2u);
  // ICMP: the protocol selector matches, type/code stand in the port fields.
  EXPECT_EQ(child(test::ipv4_packet("10.1.0.1", "10.3.0.1", 60, 1, 0x0800, 0)), 3u);
  EXPECT_EQ(child(test::ipv4_packet("10.1.0.1", "10.3.0.1", 60, 17)), 0u);
  EXPECT_EQ(parse_flow(test::ipv4_packet("10.1.0.1", "10.3.0.1", 60, 1, 0x0800, 0))->src_port, 0x0800);
}

TEST_F(SaTables, InboundPolicyDropsForeignInnerAddresses) {
  // b believes it may send from all of 10.0.0.0/8 and to all of it; a agreed to
  // 10.2.0.0/16 -> 10.1.0.0/16 only.
  connect(1, 0x11, 0x21, {prefix("10.1.0.0/16")}, {prefix("10.2.0.0/16")}, kSuites[4],
          std::pair{TsList{prefix("10.0.0.0/8")}, TsList{prefix("10.0.0.0/8")}});
  auto ok = send(b, test::ipv4_packet("10.2.0.1", "10.1.0.1", 80));
  ASSERT_TRUE(ok);
  EXPECT_TRUE(a.unprotect(*ok));
  for (const Bytes& bad : {test::ipv4_packet("10.9.0.1", "10.1.0.1", 80),    // spoofed source
                           test::ipv4_packet("10.2.0.1", "10.7.0.1", 80)}) {  // foreign destination
    auto esp = send(b, bad);
    ASSERT_TRUE(esp);
    auto r = a.unprotect(*esp);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), Drop::kPolicy);
  }
  const ChildSaCounters c = a.find(1)->counters();
  EXPECT_EQ(c.in.dropped(Drop::kPolicy), 2u);
  EXPECT_EQ(c.in.packets, 1u);
  EXPECT_EQ(c.in.bytes, 80u);
}

TEST_F(SaTables, UnknownSpiShortPacketsAndPerSaDrops) {
  connect(1, 0x11, 0x21, {prefix("10.1.0.0/16")}, {prefix("10.2.0.0/16")});
  Bytes unknown = {0, 0, 0, 0x99, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  auto r = a.unprotect(unknown);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Drop::kUnknownSpi);
  Bytes tiny = {0, 0, 0, 0x11, 0};
  auto t = a.unprotect(tiny);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error(), Drop::kMalformed);
  EXPECT_EQ(a.unattributed_in().dropped(Drop::kUnknownSpi), 1u);
  EXPECT_EQ(a.unattributed_in().dropped(Drop::kMalformed), 1u);

  auto esp = send(b, test::ipv4_packet("10.2.0.1", "10.1.0.1", 100));
  ASSERT_TRUE(esp);
  Bytes forged = *esp;
  forged[20] ^= 1;
  auto f = a.unprotect(forged);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error(), Drop::kAuth);
  Bytes copy = *esp;
  ASSERT_TRUE(a.unprotect(copy));
  copy = *esp;
  auto again = a.unprotect(copy);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), Drop::kReplay);
  const SaCounters in = a.find(1)->counters().in;
  EXPECT_EQ(in.dropped(Drop::kAuth), 1u);
  EXPECT_EQ(in.dropped(Drop::kReplay), 1u);
  EXPECT_EQ(in.packets, 1u);
}

TEST_F(SaTables, RekeyOverlap) {
  const TsList l{prefix("10.1.0.0/16")}, r{prefix("10.2.0.0/16")};
  connect(1, 0x11, 0x21, l, r);
  const Bytes from_b = test::ipv4_packet("10.2.0.1", "10.1.0.1", 64);
  const Bytes from_a = test::ipv4_packet("10.1.0.1", "10.2.0.1", 64);
  auto in_flight = send(b, from_b);  // still on the old SA when the rekey completes
  ASSERT_TRUE(in_flight);
  EXPECT_EQ(spi_of(*in_flight), 0x11u);

  connect(2, 0x12, 0x22, l, r);  // the rekeyed Child SA, same selectors
  std::uint64_t child = 0;
  auto out = send(a, from_a, &child);
  ASSERT_TRUE(out);
  EXPECT_EQ(child, 2u);  // outbound switched at install
  EXPECT_EQ(spi_of(*out), 0x22u);
  auto fresh = send(b, from_b);
  ASSERT_TRUE(fresh);
  // Both inbound SAs work while both exist.
  Bytes p = *in_flight;
  auto old_ok = a.unprotect(p);
  ASSERT_TRUE(old_ok);
  EXPECT_EQ(old_ok->child_sa_id, 1u);
  p = *fresh;
  auto new_ok = a.unprotect(p);
  ASSERT_TRUE(new_ok);
  EXPECT_EQ(new_ok->child_sa_id, 2u);

  EXPECT_EQ(spi_of(*fresh), 0x12u);  // b switched at its install too
  // The old SA is deleted: its packets still in flight are now unknown.
  EXPECT_TRUE(a.remove(1));
  EXPECT_FALSE(a.remove(1));
  EXPECT_EQ(a.find_inbound(0x11), nullptr);
  p = *in_flight;
  auto gone = a.unprotect(p);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error(), Drop::kUnknownSpi);
  auto still = send(a, from_a, &child);
  ASSERT_TRUE(still);
  EXPECT_EQ(child, 2u);
  EXPECT_EQ(a.size(), 1u);
}

TEST_F(SaTables, InstallRejectsConflicts) {
  connect(1, 0x11, 0x21, {prefix("10.1.0.0/16")}, {prefix("10.2.0.0/16")});
  const Keys& k = keys.emplace_back(test::make_keys(kSuites[0], 99));
  ChildSaSpec s;
  s.child_sa_id = 1;
  s.in = test::params(kSuites[0], k, 0x55);
  s.out = test::params(kSuites[0], k, 0x56);
  s.local_ts = {prefix("10.5.0.0/16")};
  s.remote_ts = {prefix("10.6.0.0/16")};
  EXPECT_FALSE(a.install(s));  // same Child SA id
  s.child_sa_id = 9;
  s.in.spi = 0x11;
  EXPECT_FALSE(a.install(s));  // same inbound SPI
  s.in.spi = 0;
  EXPECT_FALSE(a.install(s));  // reserved SPI
  s.in.spi = 0x55;
  s.out.spi = 0;
  EXPECT_FALSE(a.install(s));
  s.out.spi = 0x56;
  s.local_ts.clear();
  EXPECT_FALSE(a.install(s));  // no selectors
  s.local_ts = {prefix("10.5.0.0/16")};
  s.out.encr_key = ByteView(k.encr).first(3);
  auto bad = a.install(s);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("outbound"), std::string::npos);
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(a.find_inbound(0x55), nullptr);
  s.out.encr_key = k.encr;
  EXPECT_TRUE(a.install(s));
  EXPECT_EQ(a.size(), 2u);
  ASSERT_NE(a.find_inbound(0x55), nullptr);
  EXPECT_EQ(a.find_inbound(0x55)->spi_out(), 0x56u);
}

TEST(SaTableRekey, RequestsARekeyOnceWhenSequenceNumbersRunLow) {
  // A margin just below 2^32 - 1 so that a handful of packets cross it.
  SaTable t(SaTableOptions{0xffffffffull - 3});
  const Keys k = test::make_keys(kSuites[0], 5);
  for (std::uint64_t id : {1, 2}) {
    ChildSaSpec s;
    s.child_sa_id = id;
    s.in = test::params(kSuites[0], k, static_cast<std::uint32_t>(0x10 + id));
    s.out = test::params(kSuites[0], k, static_cast<std::uint32_t>(0x20 + id));
    s.local_ts = {prefix("10.1.0.0/16")};
    s.remote_ts = {prefix(id == 1 ? "10.2.0.0/16" : "10.3.0.0/16")};
    ASSERT_TRUE(t.install(s));
  }
  const Bytes inner = test::ipv4_packet("10.1.0.1", "10.2.0.1", 60);
  Bytes buf(kInnerAt + 200);
  auto send1 = [&] {
    std::copy(inner.begin(), inner.end(), buf.begin() + kInnerAt);
    return t.protect(buf, kInnerAt, inner.size()).has_value();
  };
  ASSERT_TRUE(send1());
  ASSERT_TRUE(send1());
  EXPECT_TRUE(t.take_expires().empty());
  ASSERT_TRUE(send1());  // 2^32 - 1 - 3 left now
  EXPECT_EQ(t.take_expires(), (std::vector<ExpireReport>{{1, false, ExpireReport::Cause::kSequence}}));
  ASSERT_TRUE(send1());
  EXPECT_TRUE(t.take_expires().empty());  // once per Child SA
  EXPECT_EQ(t.find(1)->outbound().remaining(), 0xffffffffull - 4);
  EXPECT_EQ(t.find(2)->outbound().last_seq(), 0u);
}

TEST_F(SaTables, VolumeLimitsReportSoftOnceThenHardAndStopTheSa) {
  using C = ExpireReport::Cause;
  // a: packets 3 (soft) / 5 (hard); b: bytes, soft after two 100-octet packets, hard
  // after four; child 2 has no limits and never reports.
  connect(1, 0x11, 0x21, {prefix("10.1.0.0/16")}, {prefix("10.2.0.0/16")}, kSuites[0], std::nullopt, 1,
          VolumeLimits{0, 0, 3, 5}, VolumeLimits{200, 400, 0, 0});
  connect(2, 0x12, 0x22, {prefix("10.1.0.0/16")}, {prefix("10.3.0.0/16")});
  const Bytes inner = test::ipv4_packet("10.1.0.1", "10.2.0.1", 100);
  ASSERT_EQ(inner.size(), 100u);
  auto one = [&]() -> Expected<void, Drop> {
    auto esp = send(a, inner);
    if (!esp) return unexpected(esp.error());
    auto d = b.unprotect(*esp);
    if (!d) return unexpected(d.error());
    return {};
  };
  ASSERT_TRUE(one());
  EXPECT_TRUE(a.take_expires().empty());
  EXPECT_TRUE(b.take_expires().empty());
  ASSERT_TRUE(one());  // b: 200 octets in
  EXPECT_TRUE(a.take_expires().empty());
  EXPECT_EQ(b.take_expires(), (std::vector<ExpireReport>{{1, false, C::kBytes}}));
  ASSERT_TRUE(one());  // a: 3 packets out
  EXPECT_EQ(a.take_expires(), (std::vector<ExpireReport>{{1, false, C::kPackets}}));
  EXPECT_TRUE(b.take_expires().empty());  // soft once
  ASSERT_TRUE(one());  // b: 400 octets
  EXPECT_EQ(b.take_expires(), (std::vector<ExpireReport>{{1, true, C::kBytes}}));
  EXPECT_TRUE(b.find(1)->expired());
  // b's inbound SA is done: a still sends (packet 5, its hard limit), b drops it.
  auto esp = send(a, inner);
  ASSERT_TRUE(esp);
  EXPECT_EQ(a.take_expires(), (std::vector<ExpireReport>{{1, true, C::kPackets}}));
  auto dropped = b.unprotect(*esp);
  ASSERT_FALSE(dropped);
  EXPECT_EQ(dropped.error(), Drop::kExpired);
  EXPECT_EQ(b.find(1)->counters().in.dropped(Drop::kExpired), 1u);
  EXPECT_EQ(b.find(1)->counters().in.packets, 4u);
  // And a sends nothing more on it.
  auto refused = send(a, inner);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), Drop::kExpired);
  EXPECT_EQ(a.find(1)->counters().out.dropped(Drop::kExpired), 1u);
  EXPECT_EQ(a.find(1)->counters().out.packets, 5u);
  EXPECT_TRUE(a.take_expires().empty());
  // Child SA 2 without limits goes on.
  ASSERT_TRUE(send(a, test::ipv4_packet("10.1.0.1", "10.3.0.1", 100)));
  EXPECT_TRUE(a.take_expires().empty());
  // Reports of a removed Child SA are forgotten.
  EXPECT_FALSE(one());  // still expired
  EXPECT_TRUE(a.remove(1));
  EXPECT_TRUE(a.take_expires().empty());
}

TEST_F(SaTables, PathUpdatesForMobike) {
  connect(1, 0x11, 0x21, {prefix("10.1.0.0/16")}, {prefix("10.2.0.0/16")}, kSuites[0], std::nullopt, 7);
  connect(2, 0x12, 0x22, {prefix("10.1.0.0/16")}, {prefix("10.3.0.0/16")}, kSuites[0], std::nullopt, 7);
  connect(3, 0x13, 0x23, {prefix("10.1.0.0/16")}, {prefix("10.4.0.0/16")}, kSuites[0], std::nullopt, 8);
  const EspPath moved = path("203.0.113.5", "198.51.100.1", false);
  EXPECT_EQ(a.update_ike_sa_path(7, moved), 2u);
  EXPECT_EQ(a.find(1)->path(), moved);
  EXPECT_EQ(a.find(2)->path(), moved);
  EXPECT_EQ(a.find(3)->path(), path("192.0.2.1", "198.51.100.1"));
  EspPath p;
  ASSERT_TRUE(send(a, test::ipv4_packet("10.1.0.1", "10.3.0.1", 60), nullptr, &p));
  EXPECT_EQ(p, moved);
  const EspPath again = path("203.0.113.9", "198.51.100.77", true);
  EXPECT_TRUE(a.update_path(3, again));
  ASSERT_TRUE(send(a, test::ipv4_packet("10.1.0.1", "10.4.0.1", 60), nullptr, &p));
  EXPECT_EQ(p, again);
  EXPECT_FALSE(a.update_path(42, again));
  EXPECT_EQ(a.update_ike_sa_path(42, again), 0u);
}

TEST_F(SaTables, ManyClientsByVirtualAddress) {
  // A gateway with one Child SA per client /32: the exact-address index must find
  // each one, and removing some must leave the others reachable.
  for (std::uint32_t i = 1; i <= 300; ++i) {
    const std::string addr = "10.200." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    connect(i, 0x1000 + i, 0x2000 + i, {prefix("10.0.0.0/16")}, {prefix(addr + "/32")});
  }
  for (std::uint32_t i = 1; i <= 300; i += 2) ASSERT_TRUE(a.remove(i));
  for (std::uint32_t i = 1; i <= 300; ++i) {
    const std::string addr = "10.200." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    const ChildSaEntry* e = a.find_outbound(*parse_flow(test::ipv4_packet("10.0.0.1", addr, 40)));
    if (i % 2) {
      EXPECT_EQ(e, nullptr) << addr;
    } else {
      ASSERT_NE(e, nullptr) << addr;
      EXPECT_EQ(e->child_sa_id(), i);
    }
  }
}

}  // namespace
}  // namespace mobike::esp

namespace mobike::esp {
namespace {

TEST(SaTableRekey, DeferredOutboundReceivesButSendsOnlyOnceActivated) {
  SaTable t;
  const Keys k = test::make_keys(kSuites[0], 9);
  for (std::uint64_t id : {1, 2}) {
    ChildSaSpec s;
    s.child_sa_id = id;
    s.in = test::params(kSuites[0], k, static_cast<std::uint32_t>(0x10 + id));
    s.out = test::params(kSuites[0], k, static_cast<std::uint32_t>(0x20 + id));
    s.local_ts = {prefix("10.1.0.0/16")};
    s.remote_ts = {prefix("10.2.0.0/16")};
    s.outbound_active = id == 1;  // 2 is the rekey responder's new SA
    ASSERT_TRUE(t.install(s));
  }
  const Bytes inner = test::ipv4_packet("10.1.0.1", "10.2.0.1", 60);
  Bytes buf(kInnerAt + 200);
  auto sent_on = [&] {
    std::copy(inner.begin(), inner.end(), buf.begin() + kInnerAt);
    auto p = t.protect(buf, kInnerAt, inner.size());
    return p ? p->child_sa_id : 0;
  };
  EXPECT_EQ(sent_on(), 1u);  // the newer SA is not used yet
  EXPECT_FALSE(t.find(2)->outbound_active());
  ASSERT_TRUE(t.activate_outbound(2));
  EXPECT_EQ(sent_on(), 2u);
  ASSERT_TRUE(t.remove(1));
  EXPECT_EQ(sent_on(), 2u);
  EXPECT_FALSE(t.activate_outbound(1));
}

// Cluster moves: a's Child SA goes to another table (another node) mid-traffic. The new
// table sends strictly after a's last sequence number, refuses what a already received
// and accepts what is new; the counts continue.
TEST_F(SaTables, AChildSaContinuesInAnotherTable) {
  connect(1, 0xa0000001, 0xb0000001, {prefix("10.1.0.0/24")}, {prefix("10.2.0.0/24")});
  const Bytes out = test::ipv4_packet("10.1.0.5", "10.2.0.9", 100);
  const Bytes in = test::ipv4_packet("10.2.0.9", "10.1.0.5", 200);
  std::vector<Bytes> received_by_a;
  for (int n = 0; n < 5; ++n) {
    auto esp = send(a, out);
    ASSERT_TRUE(esp);
    ASSERT_TRUE(b.unprotect(*esp));
    auto back = send(b, in);
    ASSERT_TRUE(back);
    received_by_a.push_back(*back);
    ASSERT_TRUE(a.unprotect(received_by_a.back()));
  }
  auto late = send(b, in);  // sent by b before the move, arrives after it
  ASSERT_TRUE(late);

  // a stops sending before its state is read.
  ASSERT_TRUE(a.suspend_outbound(1));
  EXPECT_EQ(send(a, out).error(), Drop::kNoPolicy);
  const ChildSaProgress progress = a.find(1)->progress();
  EXPECT_EQ(progress.out_seq, 5u);
  EXPECT_EQ(progress.in.top, 5u);
  EXPECT_EQ(progress.packets_out, 5u);
  EXPECT_EQ(progress.bytes_in, 1000u);

  SaTable moved;
  ChildSaSpec spec;
  spec.child_sa_id = 7;  // ids are per node
  spec.ike_sa_id = 3;
  spec.in = test::params(kSuites[0], keys[1], 0xa0000001);
  spec.out = test::params(kSuites[0], keys[0], 0xb0000001);
  spec.path = path("192.0.2.2", "198.51.100.1");
  spec.local_ts = {prefix("10.1.0.0/24")};
  spec.remote_ts = {prefix("10.2.0.0/24")};
  spec.resume = progress;
  ASSERT_TRUE(moved.install(spec));

  auto next = send(moved, out);
  ASSERT_TRUE(next);
  ASSERT_TRUE(b.unprotect(*next)) << "b refused the new node's first packet";
  EXPECT_EQ(b.find(1)->inbound().replay_window().highest(), 6u);
  for (Bytes old : received_by_a) EXPECT_EQ(moved.unprotect(old).error(), Drop::kReplay);
  auto got = moved.unprotect(*late);
  ASSERT_TRUE(got) << to_string(got.error());
  EXPECT_EQ(moved.find(7)->counters().out.packets, 6u);
  EXPECT_EQ(moved.find(7)->counters().in.packets, 6u);
  EXPECT_EQ(moved.find(7)->counters().in.bytes, 1200u);
}

}  // namespace
}  // namespace mobike::esp
