// Routes through rtnetlink (libmnl): the userspace data plane steers each Child SA's
// remote traffic selectors into its TUN device; the xfrm data plane routes them, in a
// table of their own, along the path to the peer with a source inside the local
// selectors (as strongSwan's install_routes does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/expected.h"
#include "common/ip_address.h"
#include "platform/sys_error.h"

struct mnl_socket;
struct nlmsghdr;

namespace mobike::platform {

// The kernel's path to an address (RTM_GETROUTE).
struct RouteHop {
  int ifindex = 0;
  std::optional<IpAddress> gateway;
  std::optional<IpAddress> source;
};

// A route as add_route()/del_route() take it.
struct RouteSpec {
  IpPrefix dst;
  int ifindex = 0;
  std::optional<IpAddress> gateway;
  std::optional<IpAddress> source;  // preferred source (RTA_PREFSRC)
  std::uint32_t table = 254;        // RT_TABLE_MAIN
};

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
  // The same, for any table, next hop and source.
  Expected<void, SysError> add_route(const RouteSpec& route);
  // The route to route.dst in route.table; ENOENT/ESRCH count as success.
  Expected<void, SysError> del_route(const RouteSpec& route);
  // Where the kernel would send a packet to `dst` (no policy routing marks).
  Expected<RouteHop, SysError> lookup(const IpAddress& dst);
  // "from all lookup `table`" at `priority` for one family; EEXIST / ENOENT count as
  // success (the rule is shared with other daemons that use the table).
  Expected<void, SysError> add_rule(AddressFamily family, std::uint32_t table, std::uint32_t priority);
  Expected<void, SysError> del_rule(AddressFamily family, std::uint32_t table, std::uint32_t priority);
  // `address` as a host address (/32, /128) on interface `ifindex` (a cluster node takes
  // a dead node's address over). EEXIST counts as success.
  Expected<void, SysError> add_address(const IpAddress& address, int ifindex);
  // Its removal; EADDRNOTAVAIL (already gone) counts as success.
  Expected<void, SysError> del_address(const IpAddress& address, int ifindex);

 private:
  Expected<void, SysError> route_request(std::uint16_t type, std::uint16_t flags, const RouteSpec& route);
  Expected<void, SysError> address_request(std::uint16_t type, std::uint16_t flags, const IpAddress& address,
                                           int ifindex, int harmless, const char* what);
  Expected<void, SysError> rule_request(std::uint16_t type, std::uint16_t flags, AddressFamily family,
                                        std::uint32_t table, std::uint32_t priority);
  // Sends and runs the answer through `cb` (may be null); the errno of an error answer.
  Expected<void, SysError> exchange(nlmsghdr* nlh, int (*cb)(const nlmsghdr*, void*), void* data,
                                    const std::string& what);
  mnl_socket* nl_ = nullptr;
  std::uint32_t seq_ = 0;
  std::uint32_t portid_ = 0;
};

}  // namespace mobike::platform
