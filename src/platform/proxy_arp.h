// Proxy ARP / proxy NDP for the inner addresses of the Child SAs a cluster node holds:
// hosts on the LAN behind the nodes send traffic for a client's inner address (a /32 or
// /128 in the LAN's subnet) to whichever node answers ARP / neighbour solicitations for
// it, so the node that takes an SA starts answering and announces itself, and the node
// that gives it up stops answering.
//
// What the kernel needs (found by trying it in namespaces, and read in net/ipv4/arp.c
// arp_process() and net/ipv6/ndisc.c ndisc_recv_ns(), ndisc_recv_na();
// tests/netns/test_proxy_arp.py checks what is answered when, what a host takes from the
// announcements, and the link going down; the proxy delay, the multicast group, the
// override flag of the kernel's answers and the locktime are from reading the code):
//
//  * IPv4: a proxy entry (RTM_NEWNEIGH with NTF_PROXY, `ip neigh add proxy A dev IF`) is
//    answered only while the interface forwards (net.ipv4.conf.<if>.forwarding = 1; the
//    global ip_forward sets it for every interface) and only while the node has a route
//    to A through another interface (the client's inner address is routed into the
//    TUN device, so that holds). net.ipv4.conf.<if>.proxy_arp is NOT needed, and must
//    stay 0: with it the kernel answers for every address it routes through another
//    interface, entry or not, so a node that gave an SA away (its route to the inner
//    address possibly still in place) would keep answering for it.
//  * IPv6: a proxy entry is answered while the interface forwards
//    (net.ipv6.conf.<if>.forwarding = 1) and proxy_ndp is on (net.ipv6.conf.<if>.proxy_ndp
//    or .all.proxy_ndp), whatever the routes: unlike ARP, the entry alone decides, so
//    the old owner's remove() is all that silences it. Adding the entry makes the kernel
//    join the solicited-node multicast group of the address, so solicitations reach the
//    node.
//  * Both: solicitations that arrive as broadcast / multicast are answered after a random
//    delay of up to neigh.<if>.proxy_delay (default 0.8 s), unicast ones at once. The
//    kernel's proxy answers to IPv6 solicitations do not set the override flag, so they
//    do not move a host's existing neighbour entry: only the announcement below does.
//  * Both: the kernel drops every proxy entry of an interface when the interface goes
//    down; the owner of the SAs has to add them again when it comes back up.
//
// A LAN host (Linux, default sysctls) takes the announcement: an ARP request with sender
// = target = A (RFC 5227's "ARP announcement") replaces the link-layer address of an
// existing entry at once, its locktime notwithstanding, and an unsolicited Neighbour
// Advertisement with the override flag does the same for IPv6. Neither creates an entry a
// host does not have (arp_accept / accept_untracked_na are off by default); such a host
// asks when it next sends to A, and then the new owner answers.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "platform/sys_error.h"
#include "platform/unique_fd.h"

struct mnl_socket;

namespace mobike::platform {

using MacAddress = std::array<std::uint8_t, 6>;

std::string to_string(const MacAddress& mac);

// The ARP announcement of `address` by `mac`, a whole Ethernet frame (broadcast): an
// ARP request with sender = target = address and a zero target hardware address. Empty
// when `address` is not IPv4.
Bytes gratuitous_arp_frame(const MacAddress& mac, const IpAddress& address);

// The unsolicited Neighbour Advertisement of `address` by `mac` (RFC 4861 4.4, override
// flag set, solicited and router flags clear, a target link-layer address option), the
// ICMPv6 message alone with a zero checksum: it goes out through a raw ICMPv6 socket,
// where the kernel fills in the checksum. Empty when `address` is not IPv6.
Bytes unsolicited_neighbour_advertisement(const MacAddress& mac, const IpAddress& address);

class ProxyArp {
 public:
  // Looks `interface` up (its index and MAC address, once: a renamed or re-created
  // interface needs a new ProxyArp) and opens the netlink and AF_PACKET sockets. The
  // interface must be Ethernet (ARPHRD_ETHER). The ICMPv6 socket is opened on the first
  // IPv6 announcement, so that IPv4-only hosts need no IPv6.
  static Expected<ProxyArp, SysError> open(const std::string& interface);

  ProxyArp() = default;
  ProxyArp(ProxyArp&&) noexcept = default;
  ProxyArp& operator=(ProxyArp&&) noexcept = default;
  ~ProxyArp();

  // Adds the proxy entry for `address` on the interface (replacing an existing one is not
  // an error) and sends one announcement. Hosts that miss it (it is a single broadcast)
  // keep the old owner's address until their entry goes stale and they ask again; a
  // caller that wants more certainty calls announce() again after a short while (a
  // timer is the caller's: this class does not keep one). If the announcement fails the
  // entry stays in place, and the error is returned.
  Expected<void, SysError> add(const IpAddress& address);
  // Deletes the proxy entry; one that does not exist (ENOENT) counts as deleted.
  Expected<void, SysError> remove(const IpAddress& address);
  // Sends the announcement only: gratuitous ARP for IPv4, an unsolicited Neighbour
  // Advertisement (to ff02::1, hop limit 255, from an address the kernel chooses on
  // the interface) for IPv6.
  Expected<void, SysError> announce(const IpAddress& address);
  // Writes the interface's sysctls that the kernel reads before it answers for proxy
  // entries of `family` (see the top of this file): IPv4 net.ipv4.conf.<if>.forwarding;
  // IPv6 net.ipv6.conf.<if>.forwarding and .proxy_ndp. Per family because IPv6
  // forwarding turns the interface into a router's (it then ignores Router
  // Advertisements unless accept_ra = 2), which an IPv4-only node should not get.
  // Never writes proxy_arp (see above). Needs root / CAP_NET_ADMIN.
  Expected<void, SysError> enable_sysctls(AddressFamily family);

  int ifindex() const { return ifindex_; }
  const std::string& interface() const { return interface_; }
  const MacAddress& mac() const { return mac_; }

 private:
  struct MnlClose {
    void operator()(mnl_socket* s) const;
  };
  Expected<void, SysError> neighbour_request(std::uint16_t type, std::uint16_t flags, const IpAddress& address);
  Expected<void, SysError> send_arp(const IpAddress& address);
  Expected<void, SysError> send_na(const IpAddress& address);

  std::unique_ptr<mnl_socket, MnlClose> nl_;
  std::uint32_t seq_ = 0;
  std::uint32_t portid_ = 0;
  UniqueFd packet_;  // AF_PACKET, protocol 0: sends only, receives nothing
  UniqueFd icmp6_;   // raw ICMPv6, every type filtered out on receive
  std::string interface_;
  int ifindex_ = 0;
  MacAddress mac_{};
};

}  // namespace mobike::platform
