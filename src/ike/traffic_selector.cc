#include "ike/traffic_selector.h"

#include <algorithm>

namespace mobike::ike {

using wire::TrafficSelector;
using wire::TsType;

TrafficSelector ts_from_prefix(const IpPrefix& prefix) {
  TrafficSelector ts;
  ts.ts_type = prefix.address.is_v4() ? TsType::kIpv4AddrRange : TsType::kIpv6AddrRange;
  ts.start_address = prefix.first();
  ts.end_address = prefix.last();
  return ts;
}

TrafficSelector ts_from_address(const IpAddress& address) {
  return ts_from_prefix(IpPrefix{address, static_cast<std::uint8_t>(address.is_v4() ? 32 : 128)});
}

TsList ts_from_config(const std::vector<IpPrefix>& prefixes, const IpAddress& ike_address) {
  TsList out;
  for (const auto& p : prefixes) out.push_back(ts_from_prefix(p));
  if (out.empty()) out.push_back(ts_from_address(ike_address));
  return out;
}

TsList dynamic_ts(const std::vector<IpPrefix>& prefixes, const std::vector<IpAddress>& requested_vips,
                  const std::vector<IpAddress>& assigned_vips, const IpAddress& ike_address) {
  if (!prefixes.empty()) return ts_from_config(prefixes, ike_address);
  TsList out;
  if (!assigned_vips.empty()) {
    for (const auto& v : assigned_vips) out.push_back(ts_from_address(v));
    return out;
  }
  for (const auto& v : requested_vips) {
    auto all = ts_from_prefix(IpPrefix{v, 0});
    if (std::find(out.begin(), out.end(), all) == out.end()) out.push_back(all);
  }
  if (out.empty()) out.push_back(ts_from_address(ike_address));
  return out;
}

namespace {

bool intersect(const TrafficSelector& a, const TrafficSelector& b, TrafficSelector* out) {
  if (a.ts_type != b.ts_type) return false;
  if (a.ip_protocol && b.ip_protocol && a.ip_protocol != b.ip_protocol) return false;
  TrafficSelector r;
  r.ts_type = a.ts_type;
  r.ip_protocol = a.ip_protocol ? a.ip_protocol : b.ip_protocol;
  r.start_port = std::max(a.start_port, b.start_port);
  r.end_port = std::min(a.end_port, b.end_port);
  r.start_address = std::max(a.start_address, b.start_address);
  r.end_address = std::min(a.end_address, b.end_address);
  if (r.start_port > r.end_port || r.end_address < r.start_address) return false;
  *out = r;
  return true;
}

bool within(const TrafficSelector& in, const TrafficSelector& out) {
  return in.ts_type == out.ts_type && (out.ip_protocol == 0 || out.ip_protocol == in.ip_protocol) &&
         out.start_port <= in.start_port && in.end_port <= out.end_port &&
         out.start_address <= in.start_address && in.end_address <= out.end_address;
}

}  // namespace

TsList narrow(const TsList& offered, const TsList& allowed) {
  TsList out;
  for (const auto& a : offered)
    for (const auto& b : allowed) {
      TrafficSelector r;
      if (intersect(a, b, &r) && std::find(out.begin(), out.end(), r) == out.end())
        out.push_back(r);
    }
  return out;
}

bool ts_subset(const TsList& inner, const TsList& outer) {
  return std::all_of(inner.begin(), inner.end(), [&](const TrafficSelector& i) {
    return std::any_of(outer.begin(), outer.end(),
                       [&](const TrafficSelector& o) { return within(i, o); });
  });
}

std::string ts_to_string(const TrafficSelector& ts) {
  std::string s;
  // A range that is exactly a prefix prints as one.
  unsigned bits = ts.start_address.is_v4() ? 32 : 128;
  std::string range;
  for (unsigned len = 0; len <= bits; ++len) {
    IpPrefix p{ts.start_address, static_cast<std::uint8_t>(len)};
    if (p.first() == ts.start_address && p.last() == ts.end_address) {
      range = p.to_string();
      break;
    }
  }
  if (range.empty()) range = ts.start_address.to_string() + "-" + ts.end_address.to_string();
  s = range;
  if (ts.ip_protocol || ts.start_port != 0 || ts.end_port != 65535) {
    s += "[" + std::to_string(ts.ip_protocol);
    if (ts.start_port != 0 || ts.end_port != 65535) {
      s += "/" + std::to_string(ts.start_port);
      if (ts.end_port != ts.start_port) s += "-" + std::to_string(ts.end_port);
    }
    s += "]";
  }
  return s;
}

}  // namespace mobike::ike
