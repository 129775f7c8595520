// Routes through rtnetlink (libmnl): the userspace data plane steers each Child SA's
// remote traffic selectors into its TUN device.
#pragma once

#include <cstdint>
#include <optional>

#include "common/expected.h"
#include "common/ip_address.h"
#include "platform/sys_error.h"

struct mnl_socket;

namespace mobike::platform {

class RouteControl {
 public:
  static Expected<RouteControl, SysError> open();
  RouteControl() = default;
  RouteControl(RouteControl&& o) noexcept;
  RouteControl& operator=(RouteControl&& o) noexcept;
  ~RouteControl();

  // `dst` via interface `ifindex`, with preferred source `src` if given (so that locally
  // originated packets carry the address the Child SA's selectors allow). Replaces an
  // existing route to the same prefix.
  Expected<void, SysError> add_route(const IpPrefix& dst, int ifindex, std::optional<IpAddress> src);
  // ENOENT (already gone) counts as success.
  Expected<void, SysError> del_route(const IpPrefix& dst, int ifindex);
  // `address` as a host address (/32, /128) on interface `ifindex` (a cluster node takes
  // a dead node's address over). EEXIST counts as success.
  Expected<void, SysError> add_address(const IpAddress& address, int ifindex);

 private:
  Expected<void, SysError> request(std::uint16_t type, std::uint16_t flags, const IpPrefix& dst, int ifindex,
                                   std::optional<IpAddress> src);
  mnl_socket* nl_ = nullptr;
  std::uint32_t seq_ = 0;
  std::uint32_t portid_ = 0;
};

}  // namespace mobike::platform
