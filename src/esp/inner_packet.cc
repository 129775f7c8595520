#include "esp/inner_packet.h"

#include <array>
#include <cstring>

namespace mobike::esp {

namespace {

constexpr std::uint8_t kIcmp = 1, kTcp = 6, kUdp = 17, kDccp = 33, kIcmpV6 = 58,
                       kSctp = 132, kUdpLite = 136;

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

void transport_ports(Flow& f, ByteView l4) {
  switch (f.protocol) {
    case kTcp:
    case kUdp:
    case kDccp:
    case kSctp:
    case kUdpLite:
      if (l4.size() >= 4) {
        f.src_port = be16(l4.data());
        f.dst_port = be16(l4.data() + 2);
        f.opaque_ports = false;
      }
      break;
    case kIcmp:
    case kIcmpV6:
      if (l4.size() >= 2) {
        f.src_port = f.dst_port = be16(l4.data());
        f.opaque_ports = false;
      }
      break;
    default: break;
  }
}

std::optional<Flow> parse_v4(ByteView p) {
  if (p.size() < 20) return std::nullopt;
  const std::size_t ihl = (p[0] & 0x0f) * 4u;
  if (ihl < 20 || ihl > p.size()) return std::nullopt;
  Flow f;
  f.src = IpAddress::v4({p[12], p[13], p[14], p[15]});
  f.dst = IpAddress::v4({p[16], p[17], p[18], p[19]});
  f.protocol = p[9];
  const bool later_fragment = (be16(p.data() + 6) & 0x1fff) != 0;
  if (!later_fragment) transport_ports(f, p.subspan(ihl));
  return f;
}

std::optional<Flow> parse_v6(ByteView p) {
  if (p.size() < 40) return std::nullopt;
  std::array<std::uint8_t, 16> a;
  Flow f;
  std::memcpy(a.data(), p.data() + 8, 16);
  f.src = IpAddress::v6(a);
  std::memcpy(a.data(), p.data() + 24, 16);
  f.dst = IpAddress::v6(a);
  std::uint8_t nh = p[6];
  std::size_t off = 40;
  // Walk the extension headers to the upper-layer protocol. Bounded: a packet made of
  // nothing but extension headers must not cost more than a few steps.
  for (int i = 0; i < 8; ++i) {
    if (nh == 0 || nh == 43 || nh == 60) {  // hop-by-hop, routing, destination options
      if (p.size() < off + 2) break;
      const std::uint8_t next = p[off];
      off += (p[off + 1] + 1u) * 8;
      nh = next;
    } else if (nh == 44) {  // fragment
      if (p.size() < off + 8) break;
      const std::uint8_t next = p[off];
      const bool later_fragment = (be16(p.data() + off + 2) & 0xfff8) != 0;
      off += 8;
      nh = next;
      if (later_fragment) {
        f.protocol = nh;
        return f;
      }
    } else if (nh == 51) {  // AH
      if (p.size() < off + 2) break;
      const std::uint8_t next = p[off];
      off += (p[off + 1] + 2u) * 4;
      nh = next;
    } else {
      f.protocol = nh;
      if (off <= p.size()) transport_ports(f, p.subspan(off));
      return f;
    }
  }
  // Headers cut off or too many of them: the protocol is what we reached, ports opaque.
  f.protocol = nh;
  return f;
}

}  // namespace

std::optional<Flow> parse_flow(ByteView packet) {
  if (packet.empty()) return std::nullopt;
  switch (packet[0] >> 4) {
    case 4: return parse_v4(packet);
    case 6: return parse_v6(packet);
    default: return std::nullopt;
  }
}

std::uint8_t next_header_for(ByteView packet) {
  if (packet.empty()) return 0;
  switch (packet[0] >> 4) {
    case 4: return packet.size() >= 20 ? 4 : 0;
    case 6: return packet.size() >= 40 ? 41 : 0;
    default: return 0;
  }
}

}  // namespace mobike::esp
