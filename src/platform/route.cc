#include "platform/route.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "platform/sockaddr.h"

namespace mobike::platform {

std::optional<IpAddress> source_address_for(const IpAddress& destination) {
  int fd = ::socket(destination.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  SockAddr to = to_sockaddr(Endpoint{destination, 9});
  std::optional<IpAddress> result;
  if (::connect(fd, to.get(), to.length) == 0) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0)
      if (auto ep = from_sockaddr(reinterpret_cast<sockaddr*>(&local), len)) result = ep->address;
  }
  ::close(fd);
  return result;
}

}  // namespace mobike::platform
