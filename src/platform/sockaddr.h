// Conversions between Endpoint and the kernel's sockaddr structures.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>

#include "common/ip_address.h"

namespace mobike::platform {

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

int to_af(AddressFamily f);
SockAddr to_sockaddr(const Endpoint& e);
// nullopt for families other than AF_INET / AF_INET6 or a too short length.
std::optional<Endpoint> from_sockaddr(const sockaddr* sa, socklen_t length);

}  // namespace mobike::platform
