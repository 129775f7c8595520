#include "platform/tun.h"

#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mobike::platform {

Expected<TunDevice, SysError> TunDevice::open(const std::string& name, int mtu) {
  if (name.empty() || name.size() >= IFNAMSIZ) return unexpected(SysError{EINVAL, "TUN name '" + name + "'"});
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return unexpected(SysError{errno, "open /dev/net/tun"});
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) return unexpected(SysError{errno, "TUNSETIFF " + name});

  // MTU and IFF_UP through an ordinary socket's interface ioctls.
  UniqueFd ctl(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!ctl) return unexpected(SysError{errno, "socket"});
  ifreq req{};
  std::memcpy(req.ifr_name, ifr.ifr_name, IFNAMSIZ);
  req.ifr_mtu = mtu;
  if (::ioctl(ctl.get(), SIOCSIFMTU, &req) < 0) return unexpected(SysError{errno, "SIOCSIFMTU " + name});
  if (::ioctl(ctl.get(), SIOCGIFFLAGS, &req) < 0) return unexpected(SysError{errno, "SIOCGIFFLAGS " + name});
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(ctl.get(), SIOCSIFFLAGS, &req) < 0) return unexpected(SysError{errno, "SIOCSIFFLAGS " + name});

  TunDevice t;
  t.fd_ = std::move(fd);
  t.name_ = ifr.ifr_name;
  t.ifindex_ = static_cast<int>(::if_nametoindex(t.name_.c_str()));
  t.mtu_ = mtu;
  return t;
}

std::optional<std::size_t> TunDevice::read(std::span<std::uint8_t> buf) {
  ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      last_error_.reset();
    else
      last_error_ = SysError{errno, "read " + name_};
    return std::nullopt;
  }
  return static_cast<std::size_t>(n);
}

bool TunDevice::write(ByteView packet) {
  ssize_t n = ::write(fd_.get(), packet.data(), packet.size());
  if (n < 0) {
    last_error_ = SysError{errno, "write " + name_};
    return false;
  }
  return true;
}

}  // namespace mobike::platform
