#include "platform/rtnetlink.h"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

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

Expected<void, SysError> RouteControl::request(std::uint16_t type, std::uint16_t flags, const IpPrefix& dst,
                                               int ifindex, std::optional<IpAddress> src) {
  if (!nl_) return unexpected(SysError{EBADF, "netlink route socket not open"});
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  nlh->nlmsg_seq = ++seq_;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<unsigned char>(dst.address.is_v4() ? AF_INET : AF_INET6);
  rtm->rtm_dst_len = dst.length;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  auto first = dst.first();
  mnl_attr_put(nlh, RTA_DST, first.bytes().size(), first.bytes().data());
  mnl_attr_put_u32(nlh, RTA_OIF, static_cast<std::uint32_t>(ifindex));
  if (src && src->family() == dst.address.family()) mnl_attr_put(nlh, RTA_PREFSRC, src->bytes().size(), src->bytes().data());
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return unexpected(SysError{errno, "netlink sendto"});
  int n = static_cast<int>(mnl_socket_recvfrom(nl_, buf.data(), buf.size()));
  if (n < 0) return unexpected(SysError{errno, "netlink recv"});
  if (mnl_cb_run(buf.data(), static_cast<std::size_t>(n), seq_, portid_, nullptr, nullptr) < 0)
    return unexpected(SysError{errno, (type == RTM_NEWROUTE ? "add route " : "delete route ") + dst.to_string()});
  return {};
}

Expected<void, SysError> RouteControl::add_route(const IpPrefix& dst, int ifindex, std::optional<IpAddress> src) {
  return request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, dst, ifindex, src);
}

Expected<void, SysError> RouteControl::add_address(const IpAddress& address, int ifindex) {
  if (!nl_) return unexpected(SysError{EBADF, "netlink route socket not open"});
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = RTM_NEWADDR;
  nlh->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  nlh->nlmsg_seq = ++seq_;
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = static_cast<unsigned char>(address.is_v4() ? AF_INET : AF_INET6);
  ifa->ifa_prefixlen = static_cast<unsigned char>(address.is_v4() ? 32 : 128);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<unsigned>(ifindex);
  // No duplicate address detection: the address's owner is dead, and we must answer at once.
  if (!address.is_v4()) ifa->ifa_flags = IFA_F_NODAD;
  mnl_attr_put(nlh, IFA_LOCAL, address.bytes().size(), address.bytes().data());
  mnl_attr_put(nlh, IFA_ADDRESS, address.bytes().size(), address.bytes().data());
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return unexpected(SysError{errno, "netlink sendto"});
  int n = static_cast<int>(mnl_socket_recvfrom(nl_, buf.data(), buf.size()));
  if (n < 0) return unexpected(SysError{errno, "netlink recv"});
  if (mnl_cb_run(buf.data(), static_cast<std::size_t>(n), seq_, portid_, nullptr, nullptr) < 0) {
    if (errno == EEXIST) return {};
    return unexpected(SysError{errno, "add address " + address.to_string()});
  }
  return {};
}

Expected<void, SysError> RouteControl::del_route(const IpPrefix& dst, int ifindex) {
  auto r = request(RTM_DELROUTE, 0, dst, ifindex, std::nullopt);
  if (!r && r.error().code == ESRCH) return {};
  if (!r && r.error().code == ENOENT) return {};
  return r;
}

}  // namespace mobike::platform
