#include "platform/address_monitor.h"

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace mobike::platform {

namespace {

// ------------------------------------------------------------------ byte-level helpers

// Through memcpy: a ByteView from a test or a fuzzer need not be aligned for the uapi
// structs, and the sanitizer build would (rightly) object to a cast.
template <class T>
T load(ByteView b) {
  static_assert(std::is_trivially_copyable_v<T>);
  T v;
  std::memcpy(&v, b.data(), sizeof v);
  return v;
}

constexpr std::size_t align4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

struct Attr {
  std::uint16_t type;
  ByteView payload;
};

// Every attribute must lie wholly inside `area`; the last one may lack its padding.
// Leftover bytes too short for an attribute header mean the lengths do not add up.
template <class F>
std::optional<std::string> walk_attrs(ByteView area, F&& on_attr) {
  std::size_t off = 0;
  while (off < area.size()) {
    std::size_t rem = area.size() - off;
    if (rem < sizeof(nlattr)) return "attribute header truncated";
    auto a = load<nlattr>(area.subspan(off));
    if (a.nla_len < sizeof(nlattr) || a.nla_len > rem)
      return "attribute length " + std::to_string(a.nla_len) + " with " + std::to_string(rem) + " bytes left";
    auto type = static_cast<std::uint16_t>(a.nla_type & NLA_TYPE_MASK);
    if (auto err = on_attr(Attr{type, area.subspan(off + sizeof(nlattr), a.nla_len - sizeof(nlattr))}))
      return err;
    off += align4(a.nla_len);
  }
  return std::nullopt;
}

std::optional<std::size_t> address_length(std::uint8_t family) {
  if (family == AF_INET) return 4;
  if (family == AF_INET6) return 16;
  return std::nullopt;
}

IpAddress zero_address(std::size_t len) { return len == 4 ? IpAddress::v4(0u) : IpAddress::v6({}); }

std::string attr_size_error(const char* name, std::size_t got, std::size_t want) {
  return std::string(name) + " of " + std::to_string(got) + " bytes, expected " + std::to_string(want);
}

Expected<RtnlBody, std::string> parse_link(ByteView p, bool removed) {
  if (p.size() < sizeof(ifinfomsg)) return unexpected(std::string("ifinfomsg truncated"));
  auto ifi = load<ifinfomsg>(p);
  if (ifi.ifi_index <= 0) return unexpected("bad ifindex " + std::to_string(ifi.ifi_index));
  RtnlLink l;
  l.removed = removed;
  l.ifindex = ifi.ifi_index;
  l.flags = ifi.ifi_flags;
  bool named = false;
  auto err = walk_attrs(p.subspan(align4(sizeof(ifinfomsg))), [&](const Attr& a) -> std::optional<std::string> {
    if (a.type == IFLA_IFNAME) {
      const auto* d = reinterpret_cast<const char*>(a.payload.data());
      std::size_t n = strnlen(d, a.payload.size());
      if (n == a.payload.size()) return "IFLA_IFNAME not NUL-terminated";
      if (n == 0 || n >= IFNAMSIZ) return "IFLA_IFNAME of length " + std::to_string(n);
      l.name.assign(d, n);
      named = true;
    } else if (a.type == IFLA_OPERSTATE) {
      if (a.payload.size() != 1) return attr_size_error("IFLA_OPERSTATE", a.payload.size(), 1);
      l.operstate = a.payload[0];
    }
    return std::nullopt;
  });
  if (err) return unexpected(*err);
  // Without a name the link could not be shown; the kernel always sends one with NEWLINK.
  if (!named && !removed) return unexpected(std::string("RTM_NEWLINK without IFLA_IFNAME"));
  return RtnlBody{l};
}

Expected<RtnlBody, std::string> parse_address(ByteView p, bool removed) {
  if (p.size() < sizeof(ifaddrmsg)) return unexpected(std::string("ifaddrmsg truncated"));
  auto ifa = load<ifaddrmsg>(p);
  auto alen = address_length(ifa.ifa_family);
  if (!alen) return RtnlBody{RtnlIgnored{}};
  if (ifa.ifa_prefixlen > *alen * 8) return unexpected("prefix length " + std::to_string(ifa.ifa_prefixlen));
  // ifa_index is unsigned in the uapi, but interface indexes are positive ints.
  if (ifa.ifa_index == 0 || ifa.ifa_index > INT32_MAX)
    return unexpected("bad ifindex " + std::to_string(ifa.ifa_index));
  std::optional<IpAddress> address, local;
  std::optional<std::uint32_t> flags;
  auto err = walk_attrs(p.subspan(align4(sizeof(ifaddrmsg))), [&](const Attr& a) -> std::optional<std::string> {
    switch (a.type) {
      case IFA_ADDRESS:
      case IFA_LOCAL: {
        if (a.payload.size() != *alen)
          return attr_size_error(a.type == IFA_LOCAL ? "IFA_LOCAL" : "IFA_ADDRESS", a.payload.size(), *alen);
        (a.type == IFA_LOCAL ? local : address) = IpAddress::from_bytes(a.payload);
        break;
      }
      case IFA_FLAGS:
        if (a.payload.size() != 4) return attr_size_error("IFA_FLAGS", a.payload.size(), 4);
        flags = load<std::uint32_t>(a.payload);
        break;
      default:
        break;
    }
    return std::nullopt;
  });
  if (err) return unexpected(*err);
  if (!local && !address) return unexpected(std::string("no IFA_LOCAL or IFA_ADDRESS"));
  RtnlAddress r;
  r.removed = removed;
  r.address = local ? *local : *address;
  r.prefix_len = ifa.ifa_prefixlen;
  r.ifindex = static_cast<int>(ifa.ifa_index);
  // ifa_flags has only 8 bits; IFA_FLAGS carries all 32 and wins when present.
  r.flags = flags ? *flags : ifa.ifa_flags;
  r.scope = ifa.ifa_scope;
  return RtnlBody{r};
}

Expected<RtnlBody, std::string> parse_route(ByteView p, bool removed) {
  if (p.size() < sizeof(rtmsg)) return unexpected(std::string("rtmsg truncated"));
  auto rtm = load<rtmsg>(p);
  auto alen = address_length(rtm.rtm_family);
  if (!alen) return RtnlBody{RtnlIgnored{}};
  if (rtm.rtm_dst_len > *alen * 8) return unexpected("prefix length " + std::to_string(rtm.rtm_dst_len));
  RtnlRoute r;
  r.removed = removed;
  r.dst = IpPrefix{zero_address(*alen), rtm.rtm_dst_len};
  r.table = rtm.rtm_table;
  r.type = rtm.rtm_type;
  r.flags = rtm.rtm_flags;
  auto err = walk_attrs(p.subspan(align4(sizeof(rtmsg))), [&](const Attr& a) -> std::optional<std::string> {
    switch (a.type) {
      case RTA_DST:
        if (a.payload.size() != *alen) return attr_size_error("RTA_DST", a.payload.size(), *alen);
        r.dst.address = *IpAddress::from_bytes(a.payload);
        break;
      case RTA_TABLE:  // rtm_table only holds tables below 256
        if (a.payload.size() != 4) return attr_size_error("RTA_TABLE", a.payload.size(), 4);
        r.table = load<std::uint32_t>(a.payload);
        break;
      case RTA_OIF:
        if (a.payload.size() != 4) return attr_size_error("RTA_OIF", a.payload.size(), 4);
        if (auto oif = load<std::uint32_t>(a.payload); oif <= INT32_MAX)
          r.oif = static_cast<int>(oif);
        else
          return "bad RTA_OIF " + std::to_string(oif);
        break;
      default:
        break;
    }
    return std::nullopt;
  });
  if (err) return unexpected(*err);
  return RtnlBody{r};
}

bool is_link_local(const IpAddress& a) {
  auto b = a.bytes();
  if (a.is_v4()) return b[0] == 169 && b[1] == 254;
  return b[0] == 0xfe && (b[1] & 0xc0) == 0x80;
}

// Only these flags bear on whether and how an address can be used; keeping the others
// (IFA_F_SECONDARY, IFA_F_PERMANENT...) out of LocalAddress keeps a change in them from
// looking like an address set change.
constexpr std::uint32_t kKeptFlags =
    IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TEMPORARY | IFA_F_OPTIMISTIC;

// Routes the kernel derives from addresses live in the local table, and cloned routes
// are cache entries; neither changes which path a peer is reached by.
bool route_matters(const RtnlRoute& r) {
  if (r.table == RT_TABLE_LOCAL || (r.flags & RTM_F_CLONED)) return false;
  switch (r.type) {
    case RTN_UNICAST:
    case RTN_BLACKHOLE:
    case RTN_UNREACHABLE:
    case RTN_PROHIBIT:
    case RTN_THROW:
      return true;
    default:
      return false;
  }
}

}  // namespace

// --------------------------------------------------------------------------- parsing

Expected<RtnlMessage, std::string> parse_rtnl_message(ByteView msg) {
  if (msg.size() < sizeof(nlmsghdr)) return unexpected(std::string("netlink header truncated"));
  auto h = load<nlmsghdr>(msg);
  if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len != msg.size())
    return unexpected("nlmsg_len " + std::to_string(h.nlmsg_len) + " for a message of " +
                      std::to_string(msg.size()) + " bytes");
  RtnlMessage m;
  m.type = h.nlmsg_type;
  m.flags = h.nlmsg_flags;
  m.seq = h.nlmsg_seq;
  m.pid = h.nlmsg_pid;
  ByteView p = msg.subspan(sizeof(nlmsghdr));
  Expected<RtnlBody, std::string> body = RtnlBody{RtnlIgnored{}};
  switch (h.nlmsg_type) {
    case NLMSG_DONE:
      // The payload is optional: an error code when a dump failed part-way.
      body = RtnlBody{RtnlDone{p.size() >= sizeof(int) ? load<int>(p) : 0}};
      break;
    case NLMSG_ERROR:
      if (p.size() < sizeof(int)) return unexpected(std::string("NLMSG_ERROR truncated"));
      body = RtnlBody{RtnlError{load<int>(p)}};
      break;
    case RTM_NEWLINK:
    case RTM_DELLINK:
      body = parse_link(p, h.nlmsg_type == RTM_DELLINK);
      break;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      body = parse_address(p, h.nlmsg_type == RTM_DELADDR);
      break;
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      body = parse_route(p, h.nlmsg_type == RTM_DELROUTE);
      break;
    default:
      break;
  }
  if (!body) return unexpected(body.error());
  m.body = std::move(*body);
  return m;
}

RtnlBatch parse_rtnl_buffer(ByteView datagram) {
  RtnlBatch out;
  std::size_t off = 0;
  while (off < datagram.size()) {
    std::size_t rem = datagram.size() - off;
    if (rem < sizeof(nlmsghdr)) {
      out.errors.push_back(std::to_string(rem) + " trailing bytes");
      break;
    }
    auto len = load<nlmsghdr>(datagram.subspan(off)).nlmsg_len;
    if (len < sizeof(nlmsghdr) || len > rem) {
      out.errors.push_back("nlmsg_len " + std::to_string(len) + " with " + std::to_string(rem) + " bytes left");
      break;
    }
    auto m = parse_rtnl_message(datagram.subspan(off, len));
    if (m)
      out.messages.push_back(std::move(*m));
    else
      out.errors.push_back(m.error());
    off += align4(len);
  }
  return out;
}

// --------------------------------------------------------------------------- state

const char* to_string(AddressStatus s) {
  switch (s) {
    case AddressStatus::kUsable: return "usable";
    case AddressStatus::kOnLoopback: return "on loopback";
    case AddressStatus::kDadFailed: return "dadfailed";
    case AddressStatus::kTentative: return "tentative";
    case AddressStatus::kLoopback: return "loopback";
    case AddressStatus::kLinkLocal: return "link-local";
    case AddressStatus::kLinkDown: return "link-down";
    case AddressStatus::kNoLink: return "no-link";
  }
  return "?";
}

bool LocalAddress::deprecated() const { return flags & IFA_F_DEPRECATED; }
bool LocalAddress::temporary() const { return flags & IFA_F_TEMPORARY; }

std::string LocalAddress::to_string() const {
  std::string s = address.to_string();
  s += '/';
  s += std::to_string(prefix_len);
  s += '%';
  s += ifname.empty() ? std::to_string(ifindex) : ifname;
  if (flags & IFA_F_TENTATIVE) s += " tentative";
  if (flags & IFA_F_DADFAILED) s += " dadfailed";
  if (deprecated()) s += " deprecated";
  if (temporary()) s += " temporary";
  return s;
}

bool Link::up() const {
  if (!(flags & IFF_UP) || !(flags & IFF_RUNNING)) return false;
  return !operstate || *operstate == IF_OPER_UP || *operstate == IF_OPER_UNKNOWN;
}

bool Link::loopback() const { return flags & IFF_LOOPBACK; }

std::string to_string(const AddressEvent& e) {
  struct Visitor {
    std::string operator()(const AddressAdded& a) {
      return "address added " + a.address.to_string() + " (" + platform::to_string(a.status) + ")";
    }
    std::string operator()(const AddressRemoved& a) {
      return "address removed " + a.address.to_string() + " (" + platform::to_string(a.status) + ")";
    }
    std::string operator()(const AddressChanged& a) {
      return "address changed " + a.before.to_string() + " -> " + a.after.to_string() + " (" +
             platform::to_string(a.status) + ")";
    }
    std::string operator()(const LinkUp& l) { return "link up " + l.name + " (" + std::to_string(l.ifindex) + ")"; }
    std::string operator()(const LinkDown& l) {
      return "link down " + l.name + " (" + std::to_string(l.ifindex) + ")";
    }
    std::string operator()(const RoutesChanged& r) {
      return std::string("routes changed (") + (r.family == AddressFamily::kV4 ? "IPv4" : "IPv6") + ")";
    }
  };
  return std::visit(Visitor{}, e);
}

AddressStatus AddressTable::status(const LocalAddress& a) const {
  if (a.flags & IFA_F_DADFAILED) return AddressStatus::kDadFailed;
  // An optimistic address (RFC 4429) may be sent from while DAD runs.
  if ((a.flags & IFA_F_TENTATIVE) && !(a.flags & IFA_F_OPTIMISTIC)) return AddressStatus::kTentative;
  auto link = links_.find(a.ifindex);
  if (a.address.is_loopback() || a.scope >= RT_SCOPE_HOST) return AddressStatus::kLoopback;
  if (is_link_local(a.address) || a.scope >= RT_SCOPE_LINK) return AddressStatus::kLinkLocal;
  if (link == links_.end()) return AddressStatus::kNoLink;
  if (!link->second.up()) return AddressStatus::kLinkDown;
  // A global address on a loopback device may be a gateway's service address (routed
  // or anycast) or something that reaches no peer (a virtual IP): only the
  // configuration can tell, so it is kept apart rather than dropped.
  if (link->second.loopback()) return AddressStatus::kOnLoopback;
  return AddressStatus::kUsable;
}

AddressSet AddressTable::snapshot() const {
  AddressSet out;
  for (const auto& [key, a] : addresses_) {
    auto st = status(a);
    if (st != AddressStatus::kUsable && st != AddressStatus::kOnLoopback) continue;
    out.push_back(a);
    out.back().on_loopback = st == AddressStatus::kOnLoopback;
  }
  return out;
}

AddressSet AddressTable::addresses() const {
  AddressSet out;
  for (const auto& [key, a] : addresses_) out.push_back(a);
  return out;
}

void AddressTable::apply(const RtnlMessage& m, std::vector<AddressEvent>& events) {
  if (const auto* l = std::get_if<RtnlLink>(&m.body)) {
    apply_link(*l, events);
  } else if (const auto* a = std::get_if<RtnlAddress>(&m.body)) {
    apply_address(*a, events);
  } else if (const auto* r = std::get_if<RtnlRoute>(&m.body)) {
    if (!route_matters(*r)) return;
    if (r->oif) {
      auto l = links_.find(*r->oif);
      if (l != links_.end() && std::find(ignored_route_links_.begin(), ignored_route_links_.end(), l->second.name) !=
                                   ignored_route_links_.end())
        return;
    }
    RoutesChanged rc{r->dst.address.family()};
    // One per family in a row: a link going down withdraws its routes one message each.
    if (!events.empty())
      if (const auto* last = std::get_if<RoutesChanged>(&events.back()); last && last->family == rc.family) return;
    events.push_back(rc);
  }
}

void AddressTable::apply_link(const RtnlLink& l, std::vector<AddressEvent>& events) {
  auto it = links_.find(l.ifindex);
  if (l.removed) {
    if (it == links_.end()) return;
    // The kernel sends RTM_DELADDR first, but a table that missed those must not keep
    // addresses of a link that no longer exists.
    std::vector<AddressEvent> removed;
    for (auto a = addresses_.begin(); a != addresses_.end();) {
      if (a->second.ifindex == l.ifindex) {
        removed.push_back(AddressRemoved{a->second, status(a->second)});
        a = addresses_.erase(a);
      } else {
        ++a;
      }
    }
    if (it->second.up()) events.push_back(LinkDown{l.ifindex, it->second.name});
    links_.erase(it);
    events.insert(events.end(), removed.begin(), removed.end());
    return;
  }
  Link fresh{l.ifindex, l.name, l.flags, l.operstate};
  if (it == links_.end()) {
    links_.emplace(l.ifindex, fresh);
    if (fresh.up()) events.push_back(LinkUp{l.ifindex, l.name});
    // Addresses seen before their link change status only (from no-link); the LinkUp
    // above is what makes a consumer look at the set again.
    for (auto& [key, a] : addresses_)
      if (a.ifindex == l.ifindex) a.ifname = l.name;
    return;
  }
  Link old = std::exchange(it->second, fresh);
  if (old.name != fresh.name) {
    for (auto& [key, a] : addresses_) {
      if (a.ifindex != l.ifindex) continue;
      LocalAddress before = a;
      a.ifname = fresh.name;
      events.push_back(AddressChanged{before, a, status(a)});
    }
  }
  if (old.up() && !fresh.up()) events.push_back(LinkDown{l.ifindex, fresh.name});
  if (!old.up() && fresh.up()) events.push_back(LinkUp{l.ifindex, fresh.name});
}

void AddressTable::apply_address(const RtnlAddress& m, std::vector<AddressEvent>& events) {
  Key key{m.address, m.prefix_len, m.ifindex};
  auto it = addresses_.find(key);
  if (m.removed) {
    if (it == addresses_.end()) return;
    events.push_back(AddressRemoved{it->second, status(it->second)});
    addresses_.erase(it);
    return;
  }
  LocalAddress a;
  a.address = m.address;
  a.prefix_len = m.prefix_len;
  a.ifindex = m.ifindex;
  if (auto l = links_.find(m.ifindex); l != links_.end()) a.ifname = l->second.name;
  // Bit 0 is IFA_F_TEMPORARY for IPv6 but IFA_F_SECONDARY for IPv4.
  a.flags = m.flags & (m.address.is_v6() ? kKeptFlags : kKeptFlags & ~std::uint32_t{IFA_F_SECONDARY});
  a.scope = m.scope;
  if (it == addresses_.end()) {
    addresses_.emplace(key, a);
    events.push_back(AddressAdded{a, status(a)});
  } else if (it->second != a) {
    LocalAddress before = std::exchange(it->second, a);
    events.push_back(AddressChanged{before, a, status(a)});
  }
}

void AddressTable::replace(AddressTable fresh, std::vector<AddressEvent>& events) {
  for (const auto& [ifindex, old] : links_) {
    auto n = fresh.links_.find(ifindex);
    bool now_up = n != fresh.links_.end() && n->second.up();
    if (old.up() && !now_up) events.push_back(LinkDown{ifindex, old.name});
  }
  for (const auto& [ifindex, l] : fresh.links_) {
    auto o = links_.find(ifindex);
    bool was_up = o != links_.end() && o->second.up();
    if (!was_up && l.up()) events.push_back(LinkUp{ifindex, l.name});
  }
  for (const auto& [key, old] : addresses_)
    if (!fresh.addresses_.contains(key)) events.push_back(AddressRemoved{old, status(old)});
  for (const auto& [key, a] : fresh.addresses_) {
    auto o = addresses_.find(key);
    if (o == addresses_.end())
      events.push_back(AddressAdded{a, fresh.status(a)});
    else if (o->second != a)
      events.push_back(AddressChanged{o->second, a, fresh.status(a)});
  }
  events.push_back(RoutesChanged{AddressFamily::kV4});
  events.push_back(RoutesChanged{AddressFamily::kV6});
  *this = std::move(fresh);
}

// --------------------------------------------------------------------------- debouncing

Debouncer::Debouncer(AddressSet initial) : Debouncer(std::move(initial), Config{}) {}

Debouncer::Debouncer(AddressSet initial, Config config)
    : config_(config), before_(std::move(initial)), current_(before_) {}

void Debouncer::feed(const AddressEvent& event, const AddressSet& current, TimePoint now) {
  if (!pending_) {
    pending_ = true;
    routes_changed_ = false;
    first_ = now;
    events_.clear();
  }
  last_ = std::max(last_, now);
  current_ = current;
  if (const auto* rc = std::get_if<RoutesChanged>(&event)) {
    routes_changed_ = true;
    // A busy routing table must not grow the burst without bound: one per family says it all.
    for (const auto& e : events_)
      if (const auto* seen = std::get_if<RoutesChanged>(&e); seen && seen->family == rc->family) return;
  }
  events_.push_back(event);
}

void Debouncer::feed(std::span<const AddressEvent> events, const AddressSet& current, TimePoint now) {
  for (const auto& e : events) feed(e, current, now);
}

std::optional<Debouncer::TimePoint> Debouncer::next_deadline() const {
  if (!pending_) return std::nullopt;
  return std::min(last_ + config_.quiet, first_ + config_.max_delay);
}

std::optional<AddressSetChange> Debouncer::due(TimePoint now) {
  auto deadline = next_deadline();
  if (!deadline || now < *deadline) return std::nullopt;
  pending_ = false;
  AddressSetChange change{before_, current_, routes_changed_, std::move(events_)};
  events_.clear();
  before_ = current_;
  if (change.before == change.after && !change.routes_changed) return std::nullopt;
  return change;
}

// --------------------------------------------------------------------------- the socket

namespace {

constexpr std::size_t kRecvBuffer = 64 * 1024;  // dumps come in datagrams of up to 32 KiB
constexpr int kMaxDatagramsPerCall = 256;        // the rest waits for the next poll round

enum class RecvResult { kData, kAgain, kOverrun, kError };

// Only the kernel (port id 0) speaks for the routing tables: a datagram from another
// process (a root one could send to our port) is dropped.
RecvResult receive(int fd, std::vector<std::uint8_t>& buf, std::size_t& n, int& err) {
  for (;;) {
    sockaddr_nl from{};
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t r = ::recvmsg(fd, &msg, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return RecvResult::kAgain;
      if (errno == ENOBUFS) return RecvResult::kOverrun;
      err = errno;
      return RecvResult::kError;
    }
    // A cut datagram lost messages just like an overrun.
    if (msg.msg_flags & MSG_TRUNC) return RecvResult::kOverrun;
    if (msg.msg_namelen != sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0) continue;
    n = static_cast<std::size_t>(r);
    return RecvResult::kData;
  }
}

// On a socket of its own: replies would otherwise interleave with notifications, and a
// notification older than the dump applied after it would undo newer state.
Expected<AddressTable, SysError> dump_table(std::vector<std::uint8_t>& buf, std::uint64_t& malformed) {
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!nl) return unexpected(SysError{errno, "netlink route socket (dump)"});
  struct Closer {
    mnl_socket* nl;
    ~Closer() { mnl_socket_close(nl); }
  } closer{nl};
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) return unexpected(SysError{errno, "netlink bind (dump)"});
  // The kernel answers a dump at once; a daemon must never hang on it regardless.
  timeval tv{5, 0};
  if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
    return unexpected(SysError{errno, "netlink SO_RCVTIMEO"});

  AddressTable table;
  std::vector<AddressEvent> ignored;
  std::uint32_t seq = 0;
  // Links first, so that addresses find their interface's name and state.
  for (std::uint16_t type : {std::uint16_t{RTM_GETLINK}, std::uint16_t{RTM_GETADDR}}) {
    const char* what = type == RTM_GETLINK ? "RTM_GETLINK dump" : "RTM_GETADDR dump";
    std::array<char, 64> req{};
    nlmsghdr* nlh = mnl_nlmsg_put_header(req.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = ++seq;
    if (type == RTM_GETLINK)
      static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)))->ifi_family = AF_UNSPEC;
    else
      static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)))->ifa_family = AF_UNSPEC;
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return unexpected(SysError{errno, what});
    bool done = false;
    while (!done) {
      std::size_t n = 0;
      int err = 0;
      switch (receive(mnl_socket_get_fd(nl), buf, n, err)) {
        case RecvResult::kData:
          break;
        case RecvResult::kAgain:
          return unexpected(SysError{ETIMEDOUT, what});
        case RecvResult::kOverrun:
          return unexpected(SysError{ENOBUFS, what});
        case RecvResult::kError:
          return unexpected(SysError{err, what});
      }
      auto batch = parse_rtnl_buffer(ByteView(buf.data(), n));
      malformed += batch.errors.size();
      // NLM_F_DUMP_INTR (the tables changed mid-dump) needs no retry: those changes'
      // notifications wait on the monitor socket, subscribed earlier, for process().
      for (const auto& m : batch.messages) {
        if (m.seq != seq) continue;
        if (const auto* d = std::get_if<RtnlDone>(&m.body)) {
          if (d->error < 0) return unexpected(SysError{-d->error, what});
          done = true;
          break;
        }
        if (const auto* e = std::get_if<RtnlError>(&m.body)) {
          if (e->error < 0) return unexpected(SysError{-e->error, what});
          continue;
        }
        table.apply(m, ignored);
      }
      ignored.clear();
    }
  }
  return table;
}

}  // namespace

Expected<AddressMonitor, SysError> AddressMonitor::open() {
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (!nl) return unexpected(SysError{errno, "netlink route socket"});
  unsigned groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
  if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    mnl_socket_close(nl);
    return unexpected(SysError{e, "netlink bind (link, address and route groups)"});
  }
  AddressMonitor m;
  m.nl_ = nl;
  m.buf_.resize(kRecvBuffer);
  // A link going down with many routes is a burst; a larger queue makes an overrun (and
  // the re-dump it costs) rarer. Best effort: the default queue works, only less well.
  (void)m.set_receive_buffer(1 << 20);
  return m;
}

AddressMonitor::AddressMonitor(AddressMonitor&& o) noexcept
    : nl_(std::exchange(o.nl_, nullptr)),
      table_(std::move(o.table_)),
      buf_(std::move(o.buf_)),
      malformed_(o.malformed_),
      resyncs_(o.resyncs_) {}

AddressMonitor& AddressMonitor::operator=(AddressMonitor&& o) noexcept {
  if (this != &o) {
    if (nl_) mnl_socket_close(nl_);
    nl_ = std::exchange(o.nl_, nullptr);
    table_ = std::move(o.table_);
    buf_ = std::move(o.buf_);
    malformed_ = o.malformed_;
    resyncs_ = o.resyncs_;
  }
  return *this;
}

AddressMonitor::~AddressMonitor() {
  if (nl_) mnl_socket_close(nl_);
}

int AddressMonitor::fd() const { return nl_ ? mnl_socket_get_fd(nl_) : -1; }

Expected<void, SysError> AddressMonitor::set_receive_buffer(int bytes) {
  if (!nl_) return unexpected(SysError{EBADF, "address monitor not open"});
  if (setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0) return {};
  if (setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) == 0) return {};
  return unexpected(SysError{errno, "netlink SO_RCVBUF"});
}

Expected<std::vector<AddressEvent>, SysError> AddressMonitor::dump() {
  if (!nl_) return unexpected(SysError{EBADF, "address monitor not open"});
  auto fresh = dump_table(buf_, malformed_);
  if (!fresh) return unexpected(fresh.error());
  std::vector<AddressEvent> events;
  table_.replace(std::move(*fresh), events);
  return events;
}

Expected<std::vector<AddressEvent>, SysError> AddressMonitor::process() {
  if (!nl_) return unexpected(SysError{EBADF, "address monitor not open"});
  std::vector<AddressEvent> events;
  bool lost = false;
  for (int i = 0; i < kMaxDatagramsPerCall; ++i) {
    std::size_t n = 0;
    int err = 0;
    auto r = receive(fd(), buf_, n, err);
    if (r == RecvResult::kAgain) break;
    if (r == RecvResult::kError) return unexpected(SysError{err, "netlink recv (address monitor)"});
    if (r == RecvResult::kOverrun) {
      // Keep reading what is still queued; the re-dump below sets the table right.
      lost = true;
      continue;
    }
    auto batch = parse_rtnl_buffer(ByteView(buf_.data(), n));
    malformed_ += batch.errors.size();
    for (const auto& m : batch.messages) table_.apply(m, events);
  }
  if (lost) {
    ++resyncs_;
    auto fresh = dump_table(buf_, malformed_);
    if (!fresh) return unexpected(fresh.error());
    table_.replace(std::move(*fresh), events);
  }
  return events;
}

}  // namespace mobike::platform
