#include "platform/resolver.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "platform/sockaddr.h"

namespace mobike::platform {

Expected<std::vector<IpAddress>, std::string> resolve_host(const std::string& name) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &found); rc != 0)
    return unexpected(std::string(rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc)));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(found, &::freeaddrinfo);
  std::vector<IpAddress> out;
  for (const addrinfo* a = found; a; a = a->ai_next)
    if (auto ep = from_sockaddr(a->ai_addr, a->ai_addrlen))
      if (std::find(out.begin(), out.end(), ep->address) == out.end()) out.push_back(ep->address);
  if (out.empty()) return unexpected(std::string("no IPv4 or IPv6 address"));
  return out;
}

}  // namespace mobike::platform
