#include "platform/rtnetlink.h"

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <utility>
#include <vector>

namespace mobike::platform {

Expected<RouteControl, SysError> RouteControl::open() {
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!nl) return unexpected(SysError{errno, "netlink route socket"});
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    mnl_socket_close(nl);
    return unexpected(SysError{e, "netlink bind"});
  }
  RouteControl r;
  r.nl_ = nl;
  r.portid_ = mnl_socket_get_portid(nl);
  return r;
}

RouteControl::RouteControl(RouteControl&& o) noexcept
    : nl_(std::exchange(o.nl_, nullptr)), seq_(o.seq_), portid_(o.portid_) {}

RouteControl& RouteControl::operator=(RouteControl&& o) noexcept {
  if (this != &o) {
    if (nl_) mnl_socket_close(nl_);
    nl_ = std::exchange(o.nl_, nullptr);
    seq_ = o.seq_;
    portid_ = o.portid_;
  }
  return *this;
}

RouteControl::~RouteControl() {
  if (nl_) mnl_socket_close(nl_);
}

Expected<void, SysError> RouteControl::exchange(nlmsghdr* nlh, int (*cb)(const nlmsghdr*, void*), void* data,
                                                const std::string& what) {
  if (!nl_) return unexpected(SysError{EBADF, "netlink route socket not open"});
  nlh->nlmsg_seq = ++seq_;
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return unexpected(SysError{errno, "netlink sendto"});
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  for (;;) {
    int n = static_cast<int>(mnl_socket_recvfrom(nl_, buf.data(), buf.size()));
    if (n < 0) return unexpected(SysError{errno, "netlink recv"});
    int r = mnl_cb_run(buf.data(), static_cast<std::size_t>(n), seq_, portid_, cb, data);
    if (r < 0) return unexpected(SysError{errno, what});
    if (r == MNL_CB_STOP) return {};
  }
}

Expected<void, SysError> RouteControl::route_request(std::uint16_t type, std::uint16_t flags, const RouteSpec& route) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  const IpPrefix& dst = route.dst;
  rtm->rtm_family = static_cast<unsigned char>(dst.address.is_v4() ? AF_INET : AF_INET6);
  rtm->rtm_dst_len = dst.length;
  rtm->rtm_table = route.table < 256 ? static_cast<unsigned char>(route.table) : static_cast<unsigned char>(RT_TABLE_UNSPEC);
  rtm->rtm_protocol = RTPROT_STATIC;
  // A deletion matches any scope (as ip(8) asks): a route through a gateway has scope
  // universe, one on the link scope link, and the deletion need not know which.
  rtm->rtm_scope = type == RTM_DELROUTE ? RT_SCOPE_NOWHERE : route.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  auto first = dst.first();
  mnl_attr_put(nlh, RTA_DST, first.bytes().size(), first.bytes().data());
  if (route.table >= 256) mnl_attr_put_u32(nlh, RTA_TABLE, route.table);
  if (route.ifindex > 0) mnl_attr_put_u32(nlh, RTA_OIF, static_cast<std::uint32_t>(route.ifindex));
  if (route.gateway && route.gateway->family() == dst.address.family())
    mnl_attr_put(nlh, RTA_GATEWAY, route.gateway->bytes().size(), route.gateway->bytes().data());
  if (route.source && route.source->family() == dst.address.family())
    mnl_attr_put(nlh, RTA_PREFSRC, route.source->bytes().size(), route.source->bytes().data());
  return exchange(nlh, nullptr, nullptr, (type == RTM_NEWROUTE ? "add route " : "delete route ") + dst.to_string());
}

Expected<void, SysError> RouteControl::add_route(const IpPrefix& dst, int ifindex, std::optional<IpAddress> src) {
  return add_route(RouteSpec{dst, ifindex, std::nullopt, src});
}

Expected<void, SysError> RouteControl::add_route(const RouteSpec& route) {
  return route_request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route);
}

Expected<void, SysError> RouteControl::del_route(const RouteSpec& route) {
  RouteSpec key{route.dst, route.ifindex, std::nullopt, std::nullopt, route.table};
  auto r = route_request(RTM_DELROUTE, 0, key);
  if (!r && (r.error().code == ESRCH || r.error().code == ENOENT)) return {};
  return r;
}

namespace {

std::optional<IpAddress> address_attr(const nlattr* a, unsigned char family) {
  auto len = mnl_attr_get_payload_len(a);
  const auto* p = static_cast<const std::uint8_t*>(mnl_attr_get_payload(a));
  if (family == AF_INET && len == 4) return IpAddress::from_bytes(ByteView(p, 4));
  if (family == AF_INET6 && len == 16) return IpAddress::from_bytes(ByteView(p, 16));
  return std::nullopt;
}

int on_route(const nlmsghdr* nlh, void* data) {
  auto* hop = static_cast<RouteHop*>(data);
  const auto* rtm = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
  std::array<const nlattr*, RTA_MAX + 1> tb{};
  auto collect = [](const nlattr* a, void* d) -> int {
    if (mnl_attr_type_valid(a, RTA_MAX) < 0) return MNL_CB_OK;  // newer than our headers
    (*static_cast<std::array<const nlattr*, RTA_MAX + 1>*>(d))[mnl_attr_get_type(a)] = a;
    return MNL_CB_OK;
  };
  if (mnl_attr_parse(nlh, sizeof(rtmsg), collect, &tb) < 0) return MNL_CB_ERROR;
  if (tb[RTA_OIF] && mnl_attr_validate(tb[RTA_OIF], MNL_TYPE_U32) >= 0)
    hop->ifindex = static_cast<int>(mnl_attr_get_u32(tb[RTA_OIF]));
  if (tb[RTA_GATEWAY]) hop->gateway = address_attr(tb[RTA_GATEWAY], rtm->rtm_family);
  if (tb[RTA_PREFSRC]) hop->source = address_attr(tb[RTA_PREFSRC], rtm->rtm_family);
  return MNL_CB_OK;
}

}  // namespace

Expected<RouteHop, SysError> RouteControl::lookup(const IpAddress& dst) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<unsigned char>(dst.is_v4() ? AF_INET : AF_INET6);
  rtm->rtm_dst_len = static_cast<unsigned char>(dst.bytes().size() * 8);
  mnl_attr_put(nlh, RTA_DST, dst.bytes().size(), dst.bytes().data());
  RouteHop hop;
  if (auto r = exchange(nlh, on_route, &hop, "route to " + dst.to_string()); !r) return unexpected(r.error());
  if (hop.ifindex == 0) return unexpected(SysError{ENETUNREACH, "route to " + dst.to_string()});
  return hop;
}

Expected<void, SysError> RouteControl::rule_request(std::uint16_t type, std::uint16_t flags, AddressFamily family,
                                                    std::uint32_t table, std::uint32_t priority) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  // struct fib_rule_hdr has rtmsg's layout (family, dst_len, src_len, tos, table, ...).
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<unsigned char>(family == AddressFamily::kV4 ? AF_INET : AF_INET6);
  rtm->rtm_table = table < 256 ? static_cast<unsigned char>(table) : static_cast<unsigned char>(RT_TABLE_UNSPEC);
  rtm->rtm_type = FR_ACT_TO_TBL;
  mnl_attr_put_u32(nlh, FRA_TABLE, table);
  mnl_attr_put_u32(nlh, FRA_PRIORITY, priority);
  return exchange(nlh, nullptr, nullptr, std::string(type == RTM_NEWRULE ? "add" : "delete") + " rule lookup " +
                                             std::to_string(table));
}

Expected<void, SysError> RouteControl::add_rule(AddressFamily family, std::uint32_t table, std::uint32_t priority) {
  auto r = rule_request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, family, table, priority);
  if (!r && r.error().code == EEXIST) return {};
  return r;
}

Expected<void, SysError> RouteControl::del_rule(AddressFamily family, std::uint32_t table, std::uint32_t priority) {
  auto r = rule_request(RTM_DELRULE, 0, family, table, priority);
  if (!r && (r.error().code == ENOENT || r.error().code == ESRCH)) return {};
  return r;
}

namespace {

// RTM_NEWADDR / RTM_DELADDR of a host address.
void put_address(nlmsghdr* nlh, const IpAddress& address, int ifindex) {
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<unsigned char>(address.is_v4() ? AF_INET : AF_INET6);
  ifa->ifa_prefixlen = static_cast<unsigned char>(address.is_v4() ? 32 : 128);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<unsigned>(ifindex);
  // No duplicate address detection: a dead node's address must answer at once, and a
  // virtual IP is ours by the gateway's assignment.
  if (!address.is_v4()) ifa->ifa_flags = IFA_F_NODAD;
  mnl_attr_put(nlh, IFA_LOCAL, address.bytes().size(), address.bytes().data());
  mnl_attr_put(nlh, IFA_ADDRESS, address.bytes().size(), address.bytes().data());
}

}  // namespace

Expected<void, SysError> RouteControl::add_address(const IpAddress& address, int ifindex) {
  return address_request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, address, ifindex, EEXIST, "add address ");
}

Expected<void, SysError> RouteControl::del_address(const IpAddress& address, int ifindex) {
  return address_request(RTM_DELADDR, 0, address, ifindex, EADDRNOTAVAIL, "delete address ");
}

Expected<void, SysError> RouteControl::address_request(std::uint16_t type, std::uint16_t flags,
                                                       const IpAddress& address, int ifindex, int harmless,
                                                       const char* what) {
  if (!nl_) return unexpected(SysError{EBADF, "netlink route socket not open"});
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  nlh->nlmsg_seq = ++seq_;
  put_address(nlh, address, ifindex);
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return unexpected(SysError{errno, "netlink sendto"});
  int n = static_cast<int>(mnl_socket_recvfrom(nl_, buf.data(), buf.size()));
  if (n < 0) return unexpected(SysError{errno, "netlink recv"});
  if (mnl_cb_run(buf.data(), static_cast<std::size_t>(n), seq_, portid_, nullptr, nullptr) < 0) {
    // Already there (add) or already gone (delete): what was asked holds.
    if (errno == harmless) return {};
    return unexpected(SysError{errno, what + address.to_string()});
  }
  return {};
}

Expected<void, SysError> RouteControl::del_route(const IpPrefix& dst, int ifindex) {
  return del_route(RouteSpec{dst, ifindex, std::nullopt, std::nullopt});
}

}  // namespace mobike::platform
