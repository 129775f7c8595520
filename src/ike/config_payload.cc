#include "ike/config_payload.h"

#include <algorithm>

#include "ike/address_pool.h"
#include "ike/services.h"

namespace mobike::ike {

using wire::CfgAttribute;

namespace {

wire::CpAttribute attribute(CfgAttribute type, Bytes value) {
  return {static_cast<std::uint16_t>(type), std::move(value)};
}

bool asks_for(const wire::CpPayload& cp, CfgAttribute type) {
  return std::any_of(cp.attributes.begin(), cp.attributes.end(),
                     [&](const wire::CpAttribute& a) { return a.type == static_cast<std::uint16_t>(type); });
}

}  // namespace

std::string lease_identity(const IkeSa& sa) {
  // With EAP the identity the user proved: many clients share one IKE identity (%any,
  // or the device's).
  if (!sa.remote_eap_id.empty()) return sa.remote_eap_id;
  return sa.remote_id ? sa.remote_id->to_string() : sa.remote.address.to_string();
}

std::optional<wire::Payload> respond_config_request(IkeSa& sa, Services& s, const std::vector<wire::Payload>& request) {
  auto* cp = wire::find_payload<wire::CpPayload>(request, wire::PayloadType::kCp);
  if (!cp || cp->cfg_type != wire::CfgType::kRequest || sa.config->pools.empty()) return std::nullopt;
  const std::string who = lease_identity(sa);
  wire::CpPayload reply{wire::CfgType::kReply, {}};
  std::vector<const AddressPool*> used;
  for (bool v4 : {true, false}) {
    if (!asks_for(*cp, v4 ? CfgAttribute::kInternalIp4Address : CfgAttribute::kInternalIp6Address)) continue;
    std::optional<IpAddress> got;
    for (const auto& name : sa.config->pools) {
      AddressPool* pool = s.pool(name);
      if (!pool || pool->is_v4() != v4) continue;
      if ((got = pool->acquire(who))) {
        used.push_back(pool);
        break;
      }
    }
    if (!got) {
      s.log(LogLevel::kWarn, &sa, std::string("no ") + (v4 ? "IPv4" : "IPv6") + " virtual IP left for " + who);
      continue;
    }
    sa.remote_vips.push_back(*got);
    Bytes value = got->to_bytes();
    if (!v4) value.push_back(128);  // prefix length: the one address
    reply.attributes.push_back(attribute(v4 ? CfgAttribute::kInternalIp4Address : CfgAttribute::kInternalIp6Address,
                                         std::move(value)));
    s.log(LogLevel::kInfo, &sa, "assigned virtual IP " + got->to_string() + " to " + who);
  }
  std::vector<IpAddress> dns;
  std::vector<std::string> domains;
  for (const auto* pool : used) {
    for (const auto& d : pool->config().dns)
      if (std::find(dns.begin(), dns.end(), d) == dns.end()) dns.push_back(d);
    for (const auto& d : pool->config().dns_domains)
      if (std::find(domains.begin(), domains.end(), d) == domains.end()) domains.push_back(d);
  }
  for (const auto& d : dns)
    reply.attributes.push_back(
        attribute(d.is_v4() ? CfgAttribute::kInternalIp4Dns : CfgAttribute::kInternalIp6Dns, d.to_bytes()));
  for (const auto& d : domains) reply.attributes.push_back(attribute(CfgAttribute::kInternalDnsDomain, to_bytes(d)));
  if (reply.attributes.empty()) return std::nullopt;
  return wire::Payload{wire::PayloadType::kCp, std::move(reply)};
}

std::optional<wire::Payload> config_request(const ConnectionConfig& c) {
  if (c.vips.empty()) return std::nullopt;
  wire::CpPayload req{wire::CfgType::kRequest, {}};
  bool v4 = false, v6 = false;
  for (const auto& v : c.vips) {
    Bytes value;
    if (!v.is_unspecified()) {
      value = v.to_bytes();
      if (!v.is_v4()) value.push_back(128);
    }
    req.attributes.push_back(
        attribute(v.is_v4() ? CfgAttribute::kInternalIp4Address : CfgAttribute::kInternalIp6Address, std::move(value)));
    (v.is_v4() ? v4 : v6) = true;
  }
  if (v4) req.attributes.push_back(attribute(CfgAttribute::kInternalIp4Dns, {}));
  if (v6) req.attributes.push_back(attribute(CfgAttribute::kInternalIp6Dns, {}));
  req.attributes.push_back(attribute(CfgAttribute::kInternalDnsDomain, {}));
  return wire::Payload{wire::PayloadType::kCp, std::move(req)};
}

void note_config_reply(IkeSa& sa, const std::vector<wire::Payload>& response) {
  auto* cp = wire::find_payload<wire::CpPayload>(response, wire::PayloadType::kCp);
  if (!cp || cp->cfg_type != wire::CfgType::kReply) return;
  for (const auto& a : cp->attributes) {
    switch (static_cast<CfgAttribute>(a.type)) {
      case CfgAttribute::kInternalIp4Address:
      case CfgAttribute::kInternalIp6Address: {
        const bool v4 = a.type == static_cast<std::uint16_t>(CfgAttribute::kInternalIp4Address);
        if (a.value.size() != (v4 ? 4u : 17u)) break;
        if (auto ip = IpAddress::from_bytes(ByteView(a.value).first(v4 ? 4 : 16)); ip && !ip->is_unspecified())
          sa.edit_extras().local_vips.push_back(*ip);
        break;
      }
      case CfgAttribute::kInternalIp4Dns:
      case CfgAttribute::kInternalIp6Dns:
        if (auto ip = IpAddress::from_bytes(a.value); ip && (a.value.size() == 4 || a.value.size() == 16))
          sa.edit_extras().dns_servers.push_back(*ip);
        break;
      case CfgAttribute::kInternalDnsDomain: {
        std::string d(a.value.begin(), a.value.end());
        bool ok = !d.empty() && d.size() <= 253 && std::all_of(d.begin(), d.end(), [](char ch) {
          return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
        });
        if (ok) sa.edit_extras().dns_domains.push_back(std::move(d));
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace mobike::ike
