#include "platform/proxy_arp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_packet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace mobike::platform {

namespace {

void put16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put(Bytes& out, ByteView b) { out.insert(out.end(), b.begin(), b.end()); }

Expected<void, SysError> write_sysctl(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return unexpected(SysError{errno, "open " + path});
  if (::write(fd.get(), "1\n", 2) != 2) return unexpected(SysError{errno, "write " + path});
  return {};
}

}  // namespace

std::string to_string(const MacAddress& mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return buf;
}

Bytes gratuitous_arp_frame(const MacAddress& mac, const IpAddress& address) {
  if (!address.is_v4()) return {};
  Bytes f;
  f.reserve(42);
  f.insert(f.end(), 6, 0xff);  // broadcast: every host on the LAN is to update its entry
  put(f, mac);
  put16(f, ETHERTYPE_ARP);
  put16(f, ARPHRD_ETHER);
  put16(f, ETHERTYPE_IP);
  f.push_back(6);
  f.push_back(4);
  // A request rather than a reply: Linux takes a gratuitous reply only when its target
  // hardware address equals the sender's, and other stacks differ on replies; requests
  // are what RFC 5227 announces with.
  put16(f, ARPOP_REQUEST);
  put(f, mac);
  put(f, address.bytes());
  f.insert(f.end(), 6, 0x00);
  put(f, address.bytes());
  return f;
}

Bytes unsolicited_neighbour_advertisement(const MacAddress& mac, const IpAddress& address) {
  if (!address.is_v6()) return {};
  Bytes m;
  m.reserve(32);
  m.push_back(ND_NEIGHBOR_ADVERT);
  m.push_back(0);  // code
  put16(m, 0);     // checksum: the kernel's, over the pseudo-header it alone knows
  // Override, so that hosts replace the old owner's address; not solicited, which a
  // host would drop when sent to a multicast address; not a router, as the address is a
  // client's.
  m.push_back(0x20);
  m.insert(m.end(), 3, 0x00);
  put(m, address.bytes());
  m.push_back(ND_OPT_TARGET_LINKADDR);
  m.push_back(1);  // option length in units of 8 octets
  put(m, mac);
  return m;
}

void ProxyArp::MnlClose::operator()(mnl_socket* s) const { mnl_socket_close(s); }

ProxyArp::~ProxyArp() = default;

Expected<ProxyArp, SysError> ProxyArp::open(const std::string& interface) {
  if (interface.empty() || interface.size() >= IFNAMSIZ) return unexpected(SysError{EINVAL, "interface '" + interface + "'"});
  ProxyArp p;
  p.interface_ = interface;
  p.ifindex_ = static_cast<int>(::if_nametoindex(interface.c_str()));
  if (p.ifindex_ == 0) return unexpected(SysError{errno, "interface " + interface});

  // Protocol 0: the socket is bound to no protocol, so no received frame is ever queued
  // on it; sendto() names the protocol per frame.
  p.packet_.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!p.packet_) return unexpected(SysError{errno, "AF_PACKET socket"});
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, interface.c_str(), interface.size());
  if (::ioctl(p.packet_.get(), SIOCGIFHWADDR, &ifr) < 0) return unexpected(SysError{errno, "SIOCGIFHWADDR " + interface});
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
    return unexpected(SysError{EINVAL, "interface " + interface + " is not Ethernet"});
  std::memcpy(p.mac_.data(), ifr.ifr_hwaddr.sa_data, p.mac_.size());

  p.nl_.reset(mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC));
  if (!p.nl_) return unexpected(SysError{errno, "netlink route socket"});
  if (mnl_socket_bind(p.nl_.get(), 0, MNL_SOCKET_AUTOPID) < 0) return unexpected(SysError{errno, "netlink bind"});
  p.portid_ = mnl_socket_get_portid(p.nl_.get());
  return p;
}

Expected<void, SysError> ProxyArp::neighbour_request(std::uint16_t type, std::uint16_t flags,
                                                     const IpAddress& address) {
  if (!nl_) return unexpected(SysError{EBADF, "proxy ARP not open"});
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  nlh->nlmsg_seq = ++seq_;
  auto* ndm = static_cast<ndmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ndmsg)));
  ndm->ndm_family = static_cast<std::uint8_t>(address.is_v4() ? AF_INET : AF_INET6);
  ndm->ndm_ifindex = ifindex_;
  ndm->ndm_flags = NTF_PROXY;
  ndm->ndm_state = NUD_PERMANENT;
  mnl_attr_put(nlh, NDA_DST, address.bytes().size(), address.bytes().data());
  if (mnl_socket_sendto(nl_.get(), nlh, nlh->nlmsg_len) < 0) return unexpected(SysError{errno, "netlink sendto"});
  int n = static_cast<int>(mnl_socket_recvfrom(nl_.get(), buf.data(), buf.size()));
  if (n < 0) return unexpected(SysError{errno, "netlink recv"});
  if (mnl_cb_run(buf.data(), static_cast<std::size_t>(n), seq_, portid_, nullptr, nullptr) < 0)
    return unexpected(SysError{errno, (type == RTM_NEWNEIGH ? "add proxy entry " : "delete proxy entry ") +
                                          address.to_string() + " on " + interface_});
  return {};
}

Expected<void, SysError> ProxyArp::add(const IpAddress& address) {
  auto r = neighbour_request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, address);
  if (!r) return r;
  return announce(address);
}

Expected<void, SysError> ProxyArp::remove(const IpAddress& address) {
  auto r = neighbour_request(RTM_DELNEIGH, 0, address);
  if (!r && r.error().code == ENOENT) return {};
  return r;
}

Expected<void, SysError> ProxyArp::announce(const IpAddress& address) {
  return address.is_v4() ? send_arp(address) : send_na(address);
}

Expected<void, SysError> ProxyArp::send_arp(const IpAddress& address) {
  if (!packet_) return unexpected(SysError{EBADF, "proxy ARP not open"});
  Bytes frame = gratuitous_arp_frame(mac_, address);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = ifindex_;
  if (::sendto(packet_.get(), frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
    return unexpected(SysError{errno, "send gratuitous ARP for " + address.to_string() + " on " + interface_});
  return {};
}

Expected<void, SysError> ProxyArp::send_na(const IpAddress& address) {
  if (!packet_) return unexpected(SysError{EBADF, "proxy ARP not open"});
  if (!icmp6_) {
    UniqueFd fd(::socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
    if (!fd) return unexpected(SysError{errno, "ICMPv6 socket"});
    // Send-only: without the filter every ICMPv6 message the node receives would pile up
    // in this socket's queue.
    icmp6_filter filter;
    ICMP6_FILTER_SETBLOCKALL(&filter);
    if (::setsockopt(fd.get(), IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) < 0)
      return unexpected(SysError{errno, "ICMP6_FILTER"});
    // Hosts drop Neighbour Discovery messages with any other hop limit (RFC 4861 7.1.2).
    int hops = 255;
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0)
      return unexpected(SysError{errno, "IPV6_MULTICAST_HOPS"});
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex_, sizeof ifindex_) < 0)
      return unexpected(SysError{errno, "IPV6_MULTICAST_IF " + interface_});
    int loop = 0;
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop) < 0)
      return unexpected(SysError{errno, "IPV6_MULTICAST_LOOP"});
    icmp6_ = std::move(fd);
  }
  Bytes message = unsolicited_neighbour_advertisement(mac_, address);
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_addr.s6_addr[0] = 0xff;  // ff02::1, all nodes on the link
  to.sin6_addr.s6_addr[1] = 0x02;
  to.sin6_addr.s6_addr[15] = 0x01;
  to.sin6_scope_id = static_cast<std::uint32_t>(ifindex_);
  if (::sendto(icmp6_.get(), message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
    return unexpected(SysError{errno, "send neighbour advertisement for " + address.to_string() + " on " + interface_});
  return {};
}

Expected<void, SysError> ProxyArp::enable_sysctls(AddressFamily family) {
  if (interface_.empty()) return unexpected(SysError{EBADF, "proxy ARP not open"});
  if (family == AddressFamily::kV4) return write_sysctl("/proc/sys/net/ipv4/conf/" + interface_ + "/forwarding");
  auto r = write_sysctl("/proc/sys/net/ipv6/conf/" + interface_ + "/forwarding");
  if (!r) return r;
  return write_sysctl("/proc/sys/net/ipv6/conf/" + interface_ + "/proxy_ndp");
}

}  // namespace mobike::platform
