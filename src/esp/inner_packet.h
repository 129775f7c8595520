// What the SA table needs to know about an inner (plaintext) IP packet: the selector
// fields of RFC 4301 §4.4.1.1 (addresses, next-layer protocol, ports).
#pragma once

#include <cstdint>
#include <optional>

#include "common/bytes.h"
#include "common/ip_address.h"

namespace mobike::esp {

struct Flow {
  IpAddress src;
  IpAddress dst;
  std::uint8_t protocol = 0;  // upper-layer protocol, after IPv6 extension headers
  // Ports for TCP, UDP, SCTP, UDP-Lite and DCCP; for ICMP and ICMPv6 both carry
  // type << 8 | code (the 16-bit form IKEv2 selectors use for them).
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  // RFC 4301's OPAQUE: the protocol has no ports, the packet is a non-initial
  // fragment, or the transport header is cut off. Such a flow matches only selectors
  // with the full port range.
  bool opaque_ports = true;
};

// Selector fields of an IPv4 or IPv6 packet; nullopt when the IP header itself is
// truncated or not IPv4/IPv6.
std::optional<Flow> parse_flow(ByteView packet);

// The IP version of a packet and the ESP next header value for it (RFC 4303 §2.6):
// 4 for IPv4, 41 for IPv6; 0 when it is neither or shorter than its fixed header.
std::uint8_t next_header_for(ByteView packet);

}  // namespace mobike::esp
