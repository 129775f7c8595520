// Traffic selectors (RFC 7296 §2.9): narrowing by the responder, checking by the
// initiator, conversion from configured prefixes.
#pragma once

#include <string>
#include <vector>

#include "common/ip_address.h"
#include "wire/payloads.h"

namespace mobike::ike {

using TsList = std::vector<wire::TrafficSelector>;

wire::TrafficSelector ts_from_prefix(const IpPrefix& prefix);
wire::TrafficSelector ts_from_address(const IpAddress& address);
// The configured prefixes, or the IKE address alone when none are configured.
TsList ts_from_config(const std::vector<IpPrefix>& prefixes, const IpAddress& ike_address);
// One side's selectors of a Child SA (or of a trap for one). Configured prefixes are
// used as they are. Without them the side is "dynamic", the host's own address: once the
// gateway has assigned that host virtual IPs (RFC 7296 §2.19) those, each alone, for
// every Child SA of the IKE SA and in either role; while a client still asks for them
// (`requested_vips`, e.g. 0.0.0.0) every address of each requested family, for the
// gateway to narrow to what it assigns; otherwise the side's IKE address.
TsList dynamic_ts(const std::vector<IpPrefix>& prefixes, const std::vector<IpAddress>& requested_vips,
                  const std::vector<IpAddress>& assigned_vips, const IpAddress& ike_address);

// Every non-empty intersection of a selector in `offered` with one in `allowed`.
TsList narrow(const TsList& offered, const TsList& allowed);
// True if every selector of `inner` lies within some selector of `outer`.
bool ts_subset(const TsList& inner, const TsList& outer);

std::string ts_to_string(const wire::TrafficSelector& ts);  // "10.0.0.0/24", "10.0.0.1-10.0.0.9[tcp/80]"

}  // namespace mobike::ike
