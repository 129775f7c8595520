#include "ike/connection.h"

namespace mobike::ike {

bool remote_address_allowed(const ConnectionConfig& c, const IpAddress& address) {
  if (c.remote_addrs.empty()) return true;
  for (const auto& r : c.remote_addrs) {
    if (r == "%any" || r == "0.0.0.0/0" || r == "::/0") return true;
    auto p = IpPrefix::parse(r);
    if (p && p->address.family() == address.family() && p->first() <= address &&
        address <= p->last())
      return true;
  }
  return false;
}

bool local_address_allowed(const ConnectionConfig& c, const IpAddress& address) {
  if (c.local_addrs.empty()) return true;
  for (const auto& a : c.local_addrs)
    if (a == address) return true;
  return false;
}

}  // namespace mobike::ike
