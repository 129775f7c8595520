#include "platform/sockaddr.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace mobike::platform {

int to_af(AddressFamily f) { return f == AddressFamily::kV4 ? AF_INET : AF_INET6; }

SockAddr to_sockaddr(const Endpoint& e) {
  SockAddr out;
  if (e.address.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out.storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(e.port);
    std::memcpy(&sin->sin_addr, e.address.bytes().data(), 4);
    out.length = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(e.port);
    std::memcpy(&sin6->sin6_addr, e.address.bytes().data(), 16);
    out.length = sizeof(sockaddr_in6);
  }
  return out;
}

std::optional<Endpoint> from_sockaddr(const sockaddr* sa, socklen_t length) {
  if (sa == nullptr || length < static_cast<socklen_t>(sizeof(sa_family_t))) return std::nullopt;
  if (sa->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in sin;
    std::memcpy(&sin, sa, sizeof sin);
    std::array<std::uint8_t, 4> o;
    std::memcpy(o.data(), &sin.sin_addr, 4);
    return Endpoint{IpAddress::v4(o), ntohs(sin.sin_port)};
  }
  if (sa->sa_family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, sa, sizeof sin6);
    std::array<std::uint8_t, 16> o;
    std::memcpy(o.data(), &sin6.sin6_addr, 16);
    return Endpoint{IpAddress::v6(o), ntohs(sin6.sin6_port)};
  }
  return std::nullopt;
}

}  // namespace mobike::platform
