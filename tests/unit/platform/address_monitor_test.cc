// The address monitor without a kernel: rtnetlink messages built by hand from the uapi
// structs (parsing, including broken ones), the link/address table fed with them, and
// the debouncer on an injected clock. One test opens the real socket.
#include <gtest/gtest.h>

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/ip_address.h"
#include "platform/address_monitor.h"

namespace mobike::platform {
namespace {

using namespace std::chrono_literals;

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

// A netlink message assembled the way the kernel lays it out: header, fixed struct,
// 4-aligned attributes. Remembers where each attribute starts, for the truncation test.
class Msg {
 public:
  explicit Msg(std::uint16_t type, std::uint16_t flags = 0, std::uint32_t seq = 0) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    h.nlmsg_seq = seq;
    put(&h, sizeof h);
  }
  template <class T>
  Msg& fixed(const T& v) {
    put(&v, sizeof v);
    pad();
    fixed_end_ = b_.size();
    return *this;
  }
  Msg& attr(std::uint16_t type, const void* data, std::size_t n) {
    starts_.push_back(b_.size());
    nlattr a{static_cast<std::uint16_t>(sizeof(nlattr) + n), type};
    put(&a, sizeof a);
    put(data, n);
    ends_.push_back(b_.size());
    pad();
    return *this;
  }
  Msg& attr(std::uint16_t type, const IpAddress& a) { return attr(type, a.bytes().data(), a.bytes().size()); }
  Msg& u32(std::uint16_t type, std::uint32_t v) { return attr(type, &v, sizeof v); }
  Msg& u8(std::uint16_t type, std::uint8_t v) { return attr(type, &v, 1); }
  Msg& str(std::uint16_t type, const std::string& s) { return attr(type, s.c_str(), s.size() + 1); }
  // Appends raw bytes that nlmsg_len will cover, e.g. a broken attribute.
  Msg& raw(Bytes bytes) {
    b_.insert(b_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  Bytes bytes() const {
    Bytes out = b_;
    auto len = static_cast<std::uint32_t>(out.size());
    std::memcpy(out.data(), &len, sizeof len);
    return out;
  }
  std::size_t fixed_end() const { return fixed_end_; }
  // Where a message may end and still be whole: at an attribute's start, or after an
  // attribute's payload with all, some or none of its padding.
  bool whole_at(std::size_t cut) const {
    if (std::find(starts_.begin(), starts_.end(), cut) != starts_.end()) return true;
    for (auto end : ends_)
      if (cut >= end && cut < ((end + 3) & ~std::size_t{3}) + 1) return true;
    return false;
  }

 private:
  void put(const void* p, std::size_t n) {
    const auto* c = static_cast<const std::uint8_t*>(p);
    b_.insert(b_.end(), c, c + n);
  }
  void pad() {
    while (b_.size() % 4) b_.push_back(0);
  }
  Bytes b_;
  std::size_t fixed_end_ = 0;
  std::vector<std::size_t> starts_;
  std::vector<std::size_t> ends_;
};

Msg addr_msg(std::uint16_t type, const char* address, std::uint8_t prefix, int ifindex,
             std::uint8_t ifa_flags = IFA_F_PERMANENT, std::uint8_t scope = RT_SCOPE_UNIVERSE) {
  IpAddress a = ip(address);
  ifaddrmsg ifa{};
  ifa.ifa_family = a.is_v4() ? AF_INET : AF_INET6;
  ifa.ifa_prefixlen = prefix;
  ifa.ifa_flags = ifa_flags;
  ifa.ifa_scope = scope;
  ifa.ifa_index = static_cast<std::uint32_t>(ifindex);
  Msg m(type);
  m.fixed(ifa).attr(IFA_ADDRESS, a);
  if (a.is_v4()) m.attr(IFA_LOCAL, a);
  return m;
}

Msg link_msg(std::uint16_t type, int ifindex, const std::string& name, std::uint32_t flags,
             std::optional<std::uint8_t> operstate = std::nullopt) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  ifi.ifi_flags = flags;
  Msg m(type);
  m.fixed(ifi).str(IFLA_IFNAME, name).u32(IFLA_MTU, 1500);
  if (operstate) m.u8(IFLA_OPERSTATE, *operstate);
  return m;
}

Msg route_msg(std::uint16_t type, const char* dst, std::uint8_t len, std::uint8_t table = RT_TABLE_MAIN,
              std::uint8_t rtype = RTN_UNICAST, std::uint32_t flags = 0) {
  IpAddress a = ip(dst);
  rtmsg rtm{};
  rtm.rtm_family = a.is_v4() ? AF_INET : AF_INET6;
  rtm.rtm_dst_len = len;
  rtm.rtm_table = table;
  rtm.rtm_type = rtype;
  rtm.rtm_flags = flags;
  rtm.rtm_protocol = RTPROT_KERNEL;
  Msg m(type);
  m.fixed(rtm);
  if (len) m.attr(RTA_DST, a);
  m.u32(RTA_OIF, 2);
  return m;
}

constexpr std::uint32_t kUp = IFF_UP | IFF_RUNNING | IFF_LOWER_UP;

RtnlMessage parse_ok(const Bytes& b) {
  auto m = parse_rtnl_message(b);
  EXPECT_TRUE(m.has_value()) << (m ? "" : m.error());
  return m ? *m : RtnlMessage{};
}

std::string parse_error(const Bytes& b) {
  auto m = parse_rtnl_message(b);
  return m ? std::string("(accepted)") : m.error();
}

// ------------------------------------------------------------------------- parsing

TEST(AddressMonitorParse, Ipv4AddressIsIfaLocalNotThePointToPointPeer) {
  ifaddrmsg ifa{AF_INET, 32, IFA_F_PERMANENT, RT_SCOPE_UNIVERSE, 7};
  auto b = Msg(RTM_NEWADDR, 0, 42).fixed(ifa).attr(IFA_ADDRESS, ip("10.0.0.2")).attr(IFA_LOCAL, ip("10.0.0.1"))
               .str(IFA_LABEL, "ppp0").bytes();
  auto m = parse_ok(b);
  EXPECT_EQ(m.type, RTM_NEWADDR);
  EXPECT_EQ(m.seq, 42u);
  const auto& a = std::get<RtnlAddress>(m.body);
  EXPECT_FALSE(a.removed);
  EXPECT_EQ(a.address, ip("10.0.0.1"));
  EXPECT_EQ(a.prefix_len, 32);
  EXPECT_EQ(a.ifindex, 7);
  EXPECT_EQ(a.flags, std::uint32_t{IFA_F_PERMANENT});
}

TEST(AddressMonitorParse, Ipv6AddressWithoutIfaLocalIsIfaAddress) {
  auto m = parse_ok(addr_msg(RTM_DELADDR, "2001:db8::5", 64, 3).bytes());
  const auto& a = std::get<RtnlAddress>(m.body);
  EXPECT_TRUE(a.removed);
  EXPECT_EQ(a.address, ip("2001:db8::5"));
  EXPECT_EQ(a.prefix_len, 64);
}

TEST(AddressMonitorParse, IfaFlagsAttributeWinsOverTheEightBitField) {
  // The kernel puts the low byte in ifa_flags and all 32 bits in IFA_FLAGS; flags above
  // bit 7 (IFA_F_MANAGETEMPADDR, IFA_F_NOPREFIXROUTE) exist only in the attribute.
  ifaddrmsg ifa{AF_INET6, 64, IFA_F_TENTATIVE, RT_SCOPE_UNIVERSE, 2};
  auto with = Msg(RTM_NEWADDR).fixed(ifa).attr(IFA_ADDRESS, ip("2001:db8::1"))
                  .u32(IFA_FLAGS, IFA_F_DEPRECATED | IFA_F_MANAGETEMPADDR).bytes();
  EXPECT_EQ(std::get<RtnlAddress>(parse_ok(with).body).flags, std::uint32_t{IFA_F_DEPRECATED | IFA_F_MANAGETEMPADDR});
  auto without = Msg(RTM_NEWADDR).fixed(ifa).attr(IFA_ADDRESS, ip("2001:db8::1")).bytes();
  EXPECT_EQ(std::get<RtnlAddress>(parse_ok(without).body).flags, std::uint32_t{IFA_F_TENTATIVE});
}

TEST(AddressMonitorParse, LinkNameFlagsAndOperstate) {
  auto m = parse_ok(link_msg(RTM_NEWLINK, 4, "wlan0", IFF_UP, IF_OPER_DORMANT).bytes());
  const auto& l = std::get<RtnlLink>(m.body);
  EXPECT_FALSE(l.removed);
  EXPECT_EQ(l.ifindex, 4);
  EXPECT_EQ(l.name, "wlan0");
  EXPECT_EQ(l.flags, std::uint32_t{IFF_UP});
  EXPECT_EQ(l.operstate, std::optional<std::uint8_t>(IF_OPER_DORMANT));

  ifinfomsg ifi{};
  ifi.ifi_index = 4;
  auto del = parse_ok(Msg(RTM_DELLINK).fixed(ifi).bytes());
  EXPECT_TRUE(std::get<RtnlLink>(del.body).removed);
  EXPECT_EQ(parse_error(Msg(RTM_NEWLINK).fixed(ifi).bytes()), "RTM_NEWLINK without IFLA_IFNAME");
}

TEST(AddressMonitorParse, RouteDestinationTableAndInterface) {
  auto m = parse_ok(route_msg(RTM_NEWROUTE, "198.51.100.0", 24).bytes());
  const auto& r = std::get<RtnlRoute>(m.body);
  EXPECT_EQ(r.dst.to_string(), "198.51.100.0/24");
  EXPECT_EQ(r.table, std::uint32_t{RT_TABLE_MAIN});
  EXPECT_EQ(r.oif, std::optional<int>(2));

  // A default route has no RTA_DST; a table above 255 is only in RTA_TABLE.
  auto def = route_msg(RTM_DELROUTE, "::", 0, RT_TABLE_COMPAT).u32(RTA_TABLE, 1000).bytes();
  auto d = std::get<RtnlRoute>(parse_ok(def).body);
  EXPECT_TRUE(d.removed);
  EXPECT_EQ(d.dst.to_string(), "::/0");
  EXPECT_EQ(d.table, 1000u);
}

TEST(AddressMonitorParse, DoneErrorAndUninterestingMessages) {
  int code = -EPERM;
  auto err = parse_ok(Msg(NLMSG_ERROR).fixed(code).bytes());
  EXPECT_EQ(std::get<RtnlError>(err.body).error, -EPERM);
  EXPECT_EQ(std::get<RtnlDone>(parse_ok(Msg(NLMSG_DONE).fixed(0).bytes()).body).error, 0);
  EXPECT_EQ(parse_error(Msg(NLMSG_ERROR).bytes()), "NLMSG_ERROR truncated");
  // Neighbours and non-IP address families are not ours, but not malformed either.
  ndmsg nd{};
  EXPECT_TRUE(std::holds_alternative<RtnlIgnored>(parse_ok(Msg(RTM_NEWNEIGH).fixed(nd).bytes()).body));
  ifaddrmsg ifa{AF_PACKET, 0, 0, 0, 1};
  EXPECT_TRUE(std::holds_alternative<RtnlIgnored>(parse_ok(Msg(RTM_NEWADDR).fixed(ifa).bytes()).body));
  rtmsg rtm{};
  rtm.rtm_family = 28;  // AF_MPLS
  EXPECT_TRUE(std::holds_alternative<RtnlIgnored>(parse_ok(Msg(RTM_NEWROUTE).fixed(rtm).bytes()).body));
}

TEST(AddressMonitorParse, RejectsBadLengthsAndValues) {
  ifaddrmsg v4{AF_INET, 24, 0, 0, 2};
  // An IPv6-sized address in an IPv4 message.
  EXPECT_EQ(parse_error(Msg(RTM_NEWADDR).fixed(v4).attr(IFA_LOCAL, ip("2001:db8::1")).bytes()),
            "IFA_LOCAL of 16 bytes, expected 4");
  EXPECT_EQ(parse_error(Msg(RTM_NEWADDR).fixed(v4).attr(IFA_FLAGS, "\1\0", 2).attr(IFA_LOCAL, ip("10.0.0.1")).bytes()),
            "IFA_FLAGS of 2 bytes, expected 4");
  EXPECT_EQ(parse_error(Msg(RTM_NEWADDR).fixed(v4).bytes()), "no IFA_LOCAL or IFA_ADDRESS");
  ifaddrmsg long_prefix{AF_INET, 33, 0, 0, 2};
  EXPECT_EQ(parse_error(Msg(RTM_NEWADDR).fixed(long_prefix).attr(IFA_LOCAL, ip("10.0.0.1")).bytes()),
            "prefix length 33");
  ifaddrmsg no_index{AF_INET, 24, 0, 0, 0};
  EXPECT_EQ(parse_error(Msg(RTM_NEWADDR).fixed(no_index).attr(IFA_LOCAL, ip("10.0.0.1")).bytes()), "bad ifindex 0");

  ifinfomsg ifi{};
  ifi.ifi_index = 2;
  EXPECT_EQ(parse_error(Msg(RTM_NEWLINK).fixed(ifi).attr(IFLA_IFNAME, "eth0", 4).bytes()),
            "IFLA_IFNAME not NUL-terminated");
  EXPECT_EQ(parse_error(Msg(RTM_NEWLINK).fixed(ifi).str(IFLA_IFNAME, "eth0").u32(IFLA_OPERSTATE, 6).bytes()),
            "IFLA_OPERSTATE of 4 bytes, expected 1");
  ifi.ifi_index = -1;
  EXPECT_EQ(parse_error(Msg(RTM_NEWLINK).fixed(ifi).str(IFLA_IFNAME, "eth0").bytes()), "bad ifindex -1");

  rtmsg rtm{};
  rtm.rtm_family = AF_INET6;
  rtm.rtm_dst_len = 129;
  EXPECT_EQ(parse_error(Msg(RTM_NEWROUTE).fixed(rtm).bytes()), "prefix length 129");
  rtm.rtm_dst_len = 64;
  EXPECT_EQ(parse_error(Msg(RTM_NEWROUTE).fixed(rtm).attr(RTA_DST, ip("10.0.0.0")).bytes()),
            "RTA_DST of 4 bytes, expected 16");
}

TEST(AddressMonitorParse, RejectsAttributesThatDoNotFit) {
  ifaddrmsg ifa{AF_INET, 24, 0, 0, 2};
  // nla_len claims 64 bytes, 8 follow.
  EXPECT_EQ(parse_error(Msg(RTM_NEWADDR).fixed(ifa).raw({64, 0, IFA_LOCAL, 0, 10, 0, 0, 1}).bytes()),
            "attribute length 64 with 8 bytes left");
  // nla_len below the attribute header would loop forever if taken at face value.
  EXPECT_EQ(parse_error(Msg(RTM_NEWADDR).fixed(ifa).raw({2, 0, IFA_LOCAL, 0}).bytes()),
            "attribute length 2 with 4 bytes left");
  EXPECT_EQ(parse_error(Msg(RTM_NEWADDR).fixed(ifa).attr(IFA_LOCAL, ip("10.0.0.1")).raw({8, 0}).bytes()),
            "attribute header truncated");
}

TEST(AddressMonitorParse, EveryTruncationInsideAStructOrAttributeIsRejected) {
  ifaddrmsg ifa{AF_INET6, 64, 0, RT_SCOPE_UNIVERSE, 2};
  Msg msg(RTM_NEWADDR);
  msg.fixed(ifa).attr(IFA_ADDRESS, ip("2001:db8::1")).u32(IFA_FLAGS, IFA_F_NODAD).str(IFA_LABEL, "eth0");
  Bytes full = msg.bytes();
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    // A buffer of exactly `cut` bytes with a header (when it fits) that claims exactly
    // that much: the sanitizers see any read past it.
    Bytes b(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
    auto len = static_cast<std::uint32_t>(cut);
    if (cut >= 4) std::memcpy(b.data(), &len, 4);
    auto m = parse_rtnl_message(b);
    bool whole = cut >= msg.fixed_end() + 4 + 16 && msg.whole_at(cut);  // IFA_ADDRESS is needed
    EXPECT_EQ(m.has_value(), whole) << "cut at " << cut;
  }
  // And the same without fixing nlmsg_len: the header then claims more than there is.
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    Bytes b(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_FALSE(parse_rtnl_message(b).has_value()) << "cut at " << cut;
    EXPECT_TRUE(parse_rtnl_buffer(b).messages.empty()) << "cut at " << cut;
  }
}

TEST(AddressMonitorParse, BufferWalkKeepsGoingPastABadMessageButNotPastABadLength) {
  Bytes datagram;
  append(datagram, link_msg(RTM_NEWLINK, 2, "eth0", kUp).bytes());
  ifaddrmsg ifa{AF_INET, 24, 0, 0, 2};
  append(datagram, Msg(RTM_NEWADDR).fixed(ifa).bytes());  // no address: rejected alone
  append(datagram, addr_msg(RTM_NEWADDR, "192.0.2.1", 24, 2).bytes());
  append(datagram, Msg(NLMSG_DONE).fixed(0).bytes());
  auto batch = parse_rtnl_buffer(datagram);
  ASSERT_EQ(batch.messages.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<RtnlLink>(batch.messages[0].body));
  EXPECT_EQ(std::get<RtnlAddress>(batch.messages[1].body).address, ip("192.0.2.1"));
  EXPECT_TRUE(std::holds_alternative<RtnlDone>(batch.messages[2].body));
  EXPECT_EQ(batch.errors, std::vector<std::string>{"no IFA_LOCAL or IFA_ADDRESS"});

  // nlmsg_len of the second message beyond the datagram: the third is unreachable.
  Bytes second = addr_msg(RTM_NEWADDR, "192.0.2.2", 24, 2).bytes();
  std::uint32_t bogus = 4096;
  std::memcpy(second.data(), &bogus, 4);
  Bytes broken = link_msg(RTM_NEWLINK, 2, "eth0", kUp).bytes();
  append(broken, second);
  append(broken, addr_msg(RTM_NEWADDR, "192.0.2.3", 24, 2).bytes());
  auto b2 = parse_rtnl_buffer(broken);
  EXPECT_EQ(b2.messages.size(), 1u);
  ASSERT_EQ(b2.errors.size(), 1u);
  EXPECT_EQ(b2.errors[0].rfind("nlmsg_len 4096", 0), 0u) << b2.errors[0];

  // Bytes too few for another header after the last message.
  Bytes tail = Msg(NLMSG_DONE).fixed(0).bytes();
  append(tail, Bytes{1, 2, 3});
  auto b3 = parse_rtnl_buffer(tail);
  EXPECT_EQ(b3.messages.size(), 1u);
  EXPECT_EQ(b3.errors, std::vector<std::string>{"3 trailing bytes"});
}

TEST(AddressMonitorParse, RandomCorruptionNeverYieldsAnImpossibleMessage) {
  std::vector<Bytes> seeds = {
      addr_msg(RTM_NEWADDR, "2001:db8::1", 64, 2).u32(IFA_FLAGS, IFA_F_TENTATIVE).bytes(),
      addr_msg(RTM_NEWADDR, "192.0.2.1", 24, 2).str(IFA_LABEL, "eth0:1").bytes(),
      link_msg(RTM_NEWLINK, 2, "eth0", kUp, IF_OPER_UP).bytes(),
      route_msg(RTM_NEWROUTE, "2001:db8::", 32).bytes(),
  };
  std::mt19937 rng(7);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes b = seeds[rng() % seeds.size()];
    for (int flips = 1 + static_cast<int>(rng() % 4); flips > 0; --flips)
      b[rng() % b.size()] = static_cast<std::uint8_t>(rng());
    if (rng() % 3 == 0) b.resize(rng() % b.size());
    for (const auto& m : parse_rtnl_buffer(b).messages) {
      ++accepted;
      if (const auto* a = std::get_if<RtnlAddress>(&m.body)) {
        EXPECT_LE(a->prefix_len, a->address.is_v4() ? 32 : 128);
        EXPECT_GT(a->ifindex, 0);
      } else if (const auto* l = std::get_if<RtnlLink>(&m.body)) {
        EXPECT_GT(l->ifindex, 0);
        EXPECT_LT(l->name.size(), std::size_t{IFNAMSIZ});
      } else if (const auto* r = std::get_if<RtnlRoute>(&m.body)) {
        EXPECT_LE(r->dst.length, r->dst.address.is_v4() ? 32 : 128);
      }
    }
  }
  // Mutations of unchecked bytes must still parse, or the invariants above saw nothing.
  EXPECT_GT(accepted, 1000);
}

// ------------------------------------------------------------------------- the table

struct Table {
  AddressTable t;
  std::vector<AddressEvent> events;
  Table& operator<<(const Msg& m) {
    auto parsed = parse_rtnl_message(m.bytes());
    EXPECT_TRUE(parsed.has_value());
    if (parsed) t.apply(*parsed, events);
    return *this;
  }
  std::vector<std::string> take() {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(to_string(e));
    events.clear();
    return out;
  }
  std::vector<std::string> usable() const {
    std::vector<std::string> out;
    for (const auto& a : t.snapshot()) out.push_back(a.to_string());
    return out;
  }
  AddressStatus status_of(const char* address) const {
    for (const auto& a : t.addresses())
      if (a.address == ip(address)) return t.status(a);
    ADD_FAILURE() << address << " not in the table";
    return AddressStatus::kUsable;
  }
};

using Strings = std::vector<std::string>;

TEST(AddressMonitorTable, GlobalAddressOnAnUpLinkIsUsable) {
  Table t;
  t << link_msg(RTM_NEWLINK, 1, "lo", kUp | IFF_LOOPBACK, IF_OPER_UNKNOWN)
    << link_msg(RTM_NEWLINK, 2, "eth0", kUp, IF_OPER_UP)
    << addr_msg(RTM_NEWADDR, "127.0.0.1", 8, 1, IFA_F_PERMANENT, RT_SCOPE_HOST)
    << addr_msg(RTM_NEWADDR, "::1", 128, 1, IFA_F_PERMANENT, RT_SCOPE_HOST)
    << addr_msg(RTM_NEWADDR, "192.0.2.1", 32, 1)  // a global address on lo
    << addr_msg(RTM_NEWADDR, "fe80::1", 64, 2, IFA_F_PERMANENT, RT_SCOPE_LINK)
    << addr_msg(RTM_NEWADDR, "169.254.7.7", 16, 2)
    << addr_msg(RTM_NEWADDR, "10.0.0.9", 24, 2, 0, RT_SCOPE_LINK)
    << addr_msg(RTM_NEWADDR, "198.51.100.5", 24, 2)
    << addr_msg(RTM_NEWADDR, "2001:db8::5", 64, 2);
  EXPECT_EQ(t.take(), (Strings{"link up lo (1)", "link up eth0 (2)",
                               "address added 127.0.0.1/8%lo (loopback)", "address added ::1/128%lo (loopback)",
                               "address added 192.0.2.1/32%lo (on loopback)", "address added fe80::1/64%eth0 (link-local)",
                               "address added 169.254.7.7/16%eth0 (link-local)",
                               "address added 10.0.0.9/24%eth0 (link-local)",
                               "address added 198.51.100.5/24%eth0 (usable)",
                               "address added 2001:db8::5/64%eth0 (usable)"}));
  // The global address on lo is kept apart, for connections that name it.
  EXPECT_EQ(t.usable(), (Strings{"192.0.2.1/32%lo", "198.51.100.5/24%eth0", "2001:db8::5/64%eth0"}));
  for (const auto& a : t.t.snapshot()) EXPECT_EQ(a.on_loopback, a.ifindex == 1) << a.to_string();
  EXPECT_EQ(t.t.addresses().size(), 8u);  // the unusable ones stay visible
}

TEST(AddressMonitorTable, TentativeAndDadFailedAreNotUsableOptimisticIs) {
  Table t;
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp);
  t.take();
  t << addr_msg(RTM_NEWADDR, "2001:db8::1", 64, 2).u32(IFA_FLAGS, IFA_F_TENTATIVE);
  EXPECT_EQ(t.take(), Strings{"address added 2001:db8::1/64%eth0 tentative (tentative)"});
  EXPECT_TRUE(t.usable().empty());
  // DAD done: the kernel re-sends the address without the flag.
  t << addr_msg(RTM_NEWADDR, "2001:db8::1", 64, 2).u32(IFA_FLAGS, IFA_F_PERMANENT);
  EXPECT_EQ(t.take(), Strings{"address changed 2001:db8::1/64%eth0 tentative -> 2001:db8::1/64%eth0 (usable)"});
  EXPECT_EQ(t.usable(), Strings{"2001:db8::1/64%eth0"});

  t << addr_msg(RTM_NEWADDR, "2001:db8::2", 64, 2).u32(IFA_FLAGS, IFA_F_TENTATIVE | IFA_F_DADFAILED)
    << addr_msg(RTM_NEWADDR, "2001:db8::3", 64, 2).u32(IFA_FLAGS, IFA_F_TENTATIVE | IFA_F_OPTIMISTIC);
  EXPECT_EQ(t.status_of("2001:db8::2"), AddressStatus::kDadFailed);
  EXPECT_EQ(t.status_of("2001:db8::3"), AddressStatus::kUsable);
}

TEST(AddressMonitorTable, DeprecatedStaysUsableButMarked) {
  Table t;
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp)
    << addr_msg(RTM_NEWADDR, "2001:db8::1", 64, 2).u32(IFA_FLAGS, IFA_F_DEPRECATED | IFA_F_TEMPORARY);
  auto snap = t.t.snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_TRUE(snap[0].deprecated());
  EXPECT_TRUE(snap[0].temporary());
}

TEST(AddressMonitorTable, RepeatedNotificationChangesNothing) {
  Table t;
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp) << addr_msg(RTM_NEWADDR, "192.0.2.1", 24, 2);
  t.take();
  // Lifetime refreshes and flags that do not bear on use (IFA_F_SECONDARY here).
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp)
    << addr_msg(RTM_NEWADDR, "192.0.2.1", 24, 2, IFA_F_PERMANENT | IFA_F_SECONDARY);
  EXPECT_EQ(t.take(), Strings{});
  // Deleting what is not there either.
  t << addr_msg(RTM_DELADDR, "192.0.2.99", 24, 2);
  EXPECT_TRUE(t.take().empty());
}

TEST(AddressMonitorTable, AddressOnADownLinkIsVisibleButNotUsable) {
  Table t;
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp, IF_OPER_UP) << addr_msg(RTM_NEWADDR, "192.0.2.1", 24, 2);
  t.take();
  t << link_msg(RTM_NEWLINK, 2, "eth0", IFF_BROADCAST, IF_OPER_DOWN);  // ip link set down
  EXPECT_EQ(t.take(), Strings{"link down eth0 (2)"});
  EXPECT_TRUE(t.usable().empty());
  EXPECT_EQ(t.status_of("192.0.2.1"), AddressStatus::kLinkDown);
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp, IF_OPER_UP);
  EXPECT_EQ(t.take(), Strings{"link up eth0 (2)"});
  EXPECT_EQ(t.usable(), Strings{"192.0.2.1/24%eth0"});

  // Carrier lost: still administratively up.
  t << link_msg(RTM_NEWLINK, 2, "eth0", IFF_UP, IF_OPER_LOWERLAYERDOWN);
  EXPECT_EQ(t.take(), Strings{"link down eth0 (2)"});
  // IFF_RUNNING but an operstate that says otherwise: the operstate is believed.
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp, IF_OPER_DORMANT);
  EXPECT_TRUE(t.take().empty());
  EXPECT_TRUE(t.usable().empty());
  // UNKNOWN is what drivers without carrier reporting (tun, dummy) say when up.
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp, IF_OPER_UNKNOWN);
  EXPECT_EQ(t.take(), Strings{"link up eth0 (2)"});
}

TEST(AddressMonitorTable, AddressBeforeItsLinkWaitsForIt) {
  Table t;
  t << addr_msg(RTM_NEWADDR, "192.0.2.1", 24, 5);
  EXPECT_EQ(t.take(), Strings{"address added 192.0.2.1/24%5 (no-link)"});
  t << link_msg(RTM_NEWLINK, 5, "wg0", kUp);
  EXPECT_EQ(t.take(), Strings{"link up wg0 (5)"});
  EXPECT_EQ(t.usable(), Strings{"192.0.2.1/24%wg0"});
}

TEST(AddressMonitorTable, RemovedLinkTakesItsAddressesAlong) {
  Table t;
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp) << link_msg(RTM_NEWLINK, 3, "eth1", kUp)
    << addr_msg(RTM_NEWADDR, "192.0.2.1", 24, 2) << addr_msg(RTM_NEWADDR, "198.51.100.1", 24, 3);
  t.take();
  t << link_msg(RTM_DELLINK, 2, "eth0", 0);
  EXPECT_EQ(t.take(), (Strings{"link down eth0 (2)", "address removed 192.0.2.1/24%eth0 (usable)"}));
  EXPECT_EQ(t.usable(), Strings{"198.51.100.1/24%eth1"});
  EXPECT_EQ(t.t.links().count(2), 0u);
}

TEST(AddressMonitorTable, RenamedLinkRenamesItsAddresses) {
  Table t;
  t << link_msg(RTM_NEWLINK, 2, "eth0", kUp) << addr_msg(RTM_NEWADDR, "192.0.2.1", 24, 2);
  t.take();
  t << link_msg(RTM_NEWLINK, 2, "wan", kUp);
  EXPECT_EQ(t.take(), Strings{"address changed 192.0.2.1/24%eth0 -> 192.0.2.1/24%wan (usable)"});
}

TEST(AddressMonitorTable, RoutesThroughAnIgnoredLinkDoNotCount) {
  // The userspace data plane's TUN device: a route per Child SA, never a path to a peer.
  Table tun;
  tun.t.ignore_routes_via("mobike0");
  tun << link_msg(RTM_NEWLINK, 2, "mobike0", kUp, IF_OPER_UNKNOWN);
  tun.take();
  tun << route_msg(RTM_NEWROUTE, "192.0.2.7", 32) << route_msg(RTM_DELROUTE, "192.0.2.7", 32);
  EXPECT_TRUE(tun.take().empty());
  // The same routes out of another link do.
  Table eth;
  eth.t.ignore_routes_via("mobike0");
  eth << link_msg(RTM_NEWLINK, 2, "eth0", kUp, IF_OPER_UP);
  eth.take();
  eth << route_msg(RTM_NEWROUTE, "192.0.2.7", 32);
  EXPECT_EQ(eth.take(), (Strings{"routes changed (IPv4)"}));
}

TEST(AddressMonitorTable, OnlyRoutesThatSteerTrafficCount) {
  Table t;
  t << route_msg(RTM_NEWROUTE, "192.0.2.1", 32, RT_TABLE_LOCAL, RTN_LOCAL)
    << route_msg(RTM_NEWROUTE, "198.51.100.0", 24, RT_TABLE_MAIN, RTN_UNICAST, RTM_F_CLONED)
    << route_msg(RTM_NEWROUTE, "ff00::", 8, RT_TABLE_MAIN, RTN_MULTICAST);
  EXPECT_TRUE(t.take().empty());
  // A link going down withdraws many routes; consecutive ones of a family count once.
  t << route_msg(RTM_DELROUTE, "198.51.100.0", 24) << route_msg(RTM_DELROUTE, "0.0.0.0", 0)
    << route_msg(RTM_DELROUTE, "2001:db8::", 64) << route_msg(RTM_NEWROUTE, "203.0.113.0", 24, 100, RTN_BLACKHOLE);
  EXPECT_EQ(t.take(), (Strings{"routes changed (IPv4)", "routes changed (IPv6)", "routes changed (IPv4)"}));
}

TEST(AddressMonitorTable, ReplaceReportsTheDifference) {
  Table old;
  old << link_msg(RTM_NEWLINK, 2, "eth0", kUp) << link_msg(RTM_NEWLINK, 3, "eth1", kUp)
      << addr_msg(RTM_NEWADDR, "192.0.2.1", 24, 2) << addr_msg(RTM_NEWADDR, "2001:db8::1", 64, 2)
      << addr_msg(RTM_NEWADDR, "198.51.100.1", 24, 3);
  Table fresh;
  fresh << link_msg(RTM_NEWLINK, 2, "eth0", kUp) << link_msg(RTM_NEWLINK, 3, "eth1", IFF_UP)
        << link_msg(RTM_NEWLINK, 4, "eth2", kUp)
        << addr_msg(RTM_NEWADDR, "2001:db8::1", 64, 2).u32(IFA_FLAGS, IFA_F_DEPRECATED)
        << addr_msg(RTM_NEWADDR, "198.51.100.1", 24, 3) << addr_msg(RTM_NEWADDR, "203.0.113.1", 24, 4);
  old.take();
  old.t.replace(fresh.t, old.events);
  EXPECT_EQ(old.take(), (Strings{"link down eth1 (3)", "link up eth2 (4)",
                                 "address removed 192.0.2.1/24%eth0 (usable)",
                                 "address added 203.0.113.1/24%eth2 (usable)",
                                 "address changed 2001:db8::1/64%eth0 -> 2001:db8::1/64%eth0 deprecated (usable)",
                                 "routes changed (IPv4)",
                                 "routes changed (IPv6)"}));
  EXPECT_EQ(old.usable(), fresh.usable());
}

// ------------------------------------------------------------------------- debouncing

using TimePoint = Debouncer::TimePoint;
const TimePoint t0 = TimePoint{} + 1h;

LocalAddress local(const char* address, const char* ifname = "eth0") {
  LocalAddress a;
  a.address = ip(address);
  a.prefix_len = a.address.is_v4() ? 24 : 64;
  a.ifindex = 2;
  a.ifname = ifname;
  return a;
}

AddressEvent added(const char* address) { return AddressAdded{local(address)}; }
AddressEvent removed(const char* address) { return AddressRemoved{local(address)}; }

TEST(AddressMonitorDebouncer, OneEventIsReportedAfterTheQuietPeriod) {
  AddressSet before{local("192.0.2.1")};
  AddressSet after{local("192.0.2.1"), local("198.51.100.1")};
  Debouncer d(before);
  EXPECT_FALSE(d.next_deadline());
  EXPECT_FALSE(d.due(t0));
  d.feed(added("198.51.100.1"), after, t0);
  EXPECT_EQ(d.next_deadline(), t0 + 100ms);
  EXPECT_FALSE(d.due(t0 + 99ms));
  auto change = d.due(t0 + 100ms);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->before, before);
  EXPECT_EQ(change->after, after);
  EXPECT_FALSE(change->routes_changed);
  EXPECT_EQ(change->events.size(), 1u);
  EXPECT_FALSE(d.next_deadline());
  EXPECT_FALSE(d.due(t0 + 1s));  // reported once only
}

TEST(AddressMonitorDebouncer, ABurstBecomesOneNotification) {
  Debouncer d(AddressSet{});
  AddressSet one{local("192.0.2.1")}, two{local("192.0.2.1"), local("192.0.2.2")};
  d.feed(added("192.0.2.1"), one, t0);
  d.feed(RoutesChanged{AddressFamily::kV4}, one, t0 + 50ms);
  d.feed(added("192.0.2.2"), two, t0 + 120ms);
  d.feed(RoutesChanged{AddressFamily::kV4}, two, t0 + 200ms);  // a duplicate, kept once
  for (auto t = t0; t < t0 + 300ms; t += 10ms) EXPECT_FALSE(d.due(t)) << (t - t0).count();
  auto change = d.due(t0 + 300ms);
  ASSERT_TRUE(change);
  EXPECT_TRUE(change->before.empty());
  EXPECT_EQ(change->after, two);
  EXPECT_TRUE(change->routes_changed);
  EXPECT_EQ(change->events.size(), 3u);
}

TEST(AddressMonitorDebouncer, MaxDelayBoundsAnEndlessStream) {
  Debouncer d(AddressSet{});
  AddressSet set;
  std::optional<AddressSetChange> change;
  auto t = t0;
  // An event every 50 ms never leaves 100 ms of quiet.
  for (; t < t0 + 3s && !change; t += 50ms) {
    set = AddressSet{local(t < t0 + 500ms ? "192.0.2.1" : "192.0.2.2")};
    d.feed(added("192.0.2.1"), set, t);
    change = d.due(t);
  }
  ASSERT_TRUE(change);
  EXPECT_EQ(t - 50ms, t0 + 1s);
  EXPECT_EQ(change->after, AddressSet{local("192.0.2.2")});
  // The stream goes on; the next burst starts afresh from what was reported.
  d.feed(added("192.0.2.3"), AddressSet{local("192.0.2.3")}, t);
  EXPECT_EQ(d.next_deadline(), t + 100ms);
  auto next = d.due(t + 100ms);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->before, AddressSet{local("192.0.2.2")});
}

TEST(AddressMonitorDebouncer, ABurstThatEndsWhereItStartedIsNotReported) {
  AddressSet base{local("192.0.2.1")};
  Debouncer d(base);
  d.feed(added("192.0.2.9"), AddressSet{local("192.0.2.1"), local("192.0.2.9")}, t0);
  d.feed(removed("192.0.2.9"), base, t0 + 10ms);
  EXPECT_FALSE(d.due(t0 + 1s));
  EXPECT_FALSE(d.next_deadline());
  EXPECT_EQ(d.last_notified(), base);
  // Unless routes changed: the engine may need another source address for a peer.
  d.feed(RoutesChanged{AddressFamily::kV6}, base, t0 + 2s);
  auto change = d.due(t0 + 3s);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->before, change->after);
  EXPECT_TRUE(change->routes_changed);
}

TEST(AddressMonitorDebouncer, FlagChangesCount) {
  // A deprecated address is still in the usable set, but the engine should now prefer
  // another one, so the change must reach it.
  LocalAddress dep = local("2001:db8::1");
  dep.flags = IFA_F_DEPRECATED;
  Debouncer d(AddressSet{local("2001:db8::1")});
  d.feed(AddressChanged{local("2001:db8::1"), dep}, AddressSet{dep}, t0);
  auto change = d.due(t0 + 100ms);
  ASSERT_TRUE(change);
  EXPECT_TRUE(change->after[0].deprecated());
}

TEST(AddressMonitorDebouncer, PeriodsAreConfigurable) {
  Debouncer d(AddressSet{}, Debouncer::Config{10ms, 25ms});
  std::vector<AddressEvent> burst{added("192.0.2.1"), RoutesChanged{AddressFamily::kV4}};
  d.feed(burst, AddressSet{local("192.0.2.1")}, t0);
  EXPECT_EQ(d.next_deadline(), t0 + 10ms);
  d.feed(added("192.0.2.2"), AddressSet{local("192.0.2.1"), local("192.0.2.2")}, t0 + 9ms);
  d.feed(added("192.0.2.3"), AddressSet{local("192.0.2.1")}, t0 + 18ms);
  EXPECT_EQ(d.next_deadline(), t0 + 25ms);  // max delay before quiet (28 ms)
  EXPECT_FALSE(d.due(t0 + 24ms));
  auto change = d.due(t0 + 25ms);
  ASSERT_TRUE(change);
  EXPECT_EQ(change->events.size(), 4u);
}

// ------------------------------------------------------------------------- the socket

TEST(AddressMonitorSocket, DumpFindsTheLoopbackInterface) {
  auto m = AddressMonitor::open();
  if (!m && (m.error().code == EPERM || m.error().code == EACCES || m.error().code == EAFNOSUPPORT))
    GTEST_SKIP() << m.error().message();
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_GE(m->fd(), 0);
  auto events = m->dump();
  ASSERT_TRUE(events) << events.error().message();
  // Every network namespace has lo, and it is ifindex 1.
  const auto& links = m->table().links();
  ASSERT_TRUE(links.count(1));
  EXPECT_EQ(links.at(1).name, "lo");
  EXPECT_TRUE(links.at(1).loopback());
  for (const auto& a : m->snapshot()) {
    EXPECT_FALSE(a.address.is_loopback()) << a.to_string();
    EXPECT_EQ(a.on_loopback, a.ifindex == 1) << a.to_string();
  }
  // A second dump of an unchanged system reports no address or link differences.
  auto again = m->dump();
  ASSERT_TRUE(again);
  for (const auto& e : *again) EXPECT_TRUE(std::holds_alternative<RoutesChanged>(e)) << to_string(e);
  auto pending = m->process();
  EXPECT_TRUE(pending) << pending.error().message();
  EXPECT_EQ(m->malformed(), 0u);
}

}  // namespace
}  // namespace mobike::platform
