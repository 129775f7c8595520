// The configuration payload of IKE_AUTH (RFC 7296 §2.19, §3.15): a gateway answers a
// client's CFG_REQUEST with virtual IPs from the connection's pools, their DNS servers
// and split-DNS domains (RFC 8598 INTERNAL_DNS_DOMAIN).
#pragma once

#include <optional>
#include <vector>

#include "ike/ike_sa.h"
#include "wire/payloads.h"

namespace mobike::ike {

class Services;

// The CFG_REPLY for the request's CFG_REQUEST (nullopt: none asked, or no pools). The
// addresses it hands out are recorded in sa.remote_vips; a requested family no pool
// can serve is left out (the client then fails or goes on without, as it chooses).
// Whom a gateway's lease belongs to: the EAP identity, else the IKE one, else the address.
std::string lease_identity(const IkeSa& sa);

std::optional<wire::Payload> respond_config_request(IkeSa& sa, Services& s, const std::vector<wire::Payload>& request);

// Client: the CFG_REQUEST for the connection's vips (and DNS), nullopt if it asks none.
std::optional<wire::Payload> config_request(const ConnectionConfig& c);
// Client: what a CFG_REPLY assigned: sets sa.local_vips, dns_servers, dns_domains.
// Malformed attributes are skipped.
void note_config_reply(IkeSa& sa, const std::vector<wire::Payload>& response);

}  // namespace mobike::ike
