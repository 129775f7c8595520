#include "mobility/address_list.h"

#include <algorithm>

#include "ike/connection.h"
#include "mobility/address_policy.h"
#include "mobility/sa_state.h"

namespace mobike::mobility {

using wire::NotifyType;

bool usable_address(const IpAddress& a) {
  if (a.is_unspecified() || a.is_loopback() || a.is_multicast()) return false;
  auto b = a.bytes();
  // IPv4: not link-local, "this network", or the reserved 240/4 (broadcast included).
  if (a.is_v4()) return !(b[0] == 169 && b[1] == 254) && b[0] != 0 && b[0] < 240;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false;  // link-local
  // IPv4-mapped (::ffff:0:0/96) and -compatible (::/96) forms: an IPv4 address in IPv6
  // clothing, which an IPv6-only socket cannot reach.
  bool zero80 = std::all_of(b.begin(), b.begin() + 10, [](std::uint8_t x) { return x == 0; });
  return !(zero80 && ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0)));
}

std::vector<IpAddress> our_additional_addresses(const ike::IkeSa& sa, ike::Services& s) {
  std::vector<IpAddress> out;
  if (!sa.config) return out;
  for (const auto& a : usable_local_addresses(*sa.config, s.local_addresses())) {
    if (out.size() == kMaxAddresses) break;
    if (a != sa.local.address) out.push_back(a);
  }
  // A cluster's other nodes: where a move may send the SA (docs/cluster.md).
  for (const auto& a : s.cluster_addresses()) {
    if (out.size() == kMaxAddresses) break;
    if (a != sa.local.address && std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  return out;
}

void add_address_list(const std::vector<IpAddress>& addresses, std::vector<wire::Payload>& out) {
  if (addresses.empty()) {
    out.push_back(wire::make_notify(NotifyType::kNoAdditionalAddresses));
    return;
  }
  for (const auto& a : addresses)
    out.push_back(wire::make_notify(a.is_v4() ? NotifyType::kAdditionalIp4Address : NotifyType::kAdditionalIp6Address,
                                    a.to_bytes()));
}

std::optional<std::vector<IpAddress>> parse_address_list(const std::vector<wire::Payload>& payloads,
                                                         std::string* skipped) {
  bool present = false;
  std::vector<IpAddress> out;
  for (const auto& p : payloads) {
    auto* n = std::get_if<wire::NotifyPayload>(&p.body);
    if (!n) continue;
    auto t = n->notify_type();
    if (t == NotifyType::kNoAdditionalAddresses) {
      present = true;
      continue;
    }
    if (t != NotifyType::kAdditionalIp4Address && t != NotifyType::kAdditionalIp6Address) continue;
    present = true;
    std::size_t want = t == NotifyType::kAdditionalIp4Address ? 4 : 16;
    auto a = n->data.size() == want ? IpAddress::from_bytes(n->data) : std::nullopt;
    if (!a || !usable_address(*a)) {
      if (skipped)
        *skipped += std::string(skipped->empty() ? "" : ", ") +
                    (a ? a->to_string() : std::to_string(n->data.size()) + " octets for " +
                                              std::string(wire::notify_name(n->type)));
      continue;
    }
    if (out.size() < kMaxAddresses && std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  }
  if (!present) return std::nullopt;
  return out;
}

Bytes no_nats_data(const Endpoint& source, const Endpoint& destination) {
  Bytes out = source.address.to_bytes();
  append(out, destination.address.bytes());
  out.push_back(static_cast<std::uint8_t>(source.port >> 8));
  out.push_back(static_cast<std::uint8_t>(source.port));
  out.push_back(static_cast<std::uint8_t>(destination.port >> 8));
  out.push_back(static_cast<std::uint8_t>(destination.port));
  return out;
}

}  // namespace mobike::mobility

namespace mobike::mobility {

std::optional<std::vector<wire::Payload>> AddressListTask::build_request(ike::IkeSa& sa, ike::Services& s) {
  if (sa.state != ike::IkeState::kEstablished) return std::nullopt;
  auto& st = state(sa);
  auto list = our_additional_addresses(sa, s);
  if (st.announced_once && list == st.announced) return std::nullopt;  // nothing new by now
  st.announced = list;
  st.announced_once = true;
  std::vector<wire::Payload> out;
  add_address_list(list, out);
  if (!sa.config->nat_traversal)
    out.push_back(wire::make_notify(NotifyType::kNoNatsAllowed, no_nats_data(sa.local, sa.remote)));
  return out;
}

ike::TaskResult AddressListTask::process_response(ike::IkeSa& sa, ike::Services& s,
                                                  const std::vector<wire::Payload>& payloads) {
  for (const auto& p : payloads)
    if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && wire::is_error(n->notify_type()))
      s.log(ike::LogLevel::kWarn, &sa, "address list refused: " + std::string(wire::notify_name(n->type)));
  return ike::TaskResult::kDone;
}

}  // namespace mobike::mobility
