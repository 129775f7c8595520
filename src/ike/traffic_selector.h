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

// Every non-empty intersection of a selector in `offered` with one in `allowed`.
TsList narrow(const TsList& offered, const TsList& allowed);
// True if every selector of `inner` lies within some selector of `outer`.
bool ts_subset(const TsList& inner, const TsList& outer);

std::string ts_to_string(const wire::TrafficSelector& ts);  // "10.0.0.0/24", "10.0.0.1-10.0.0.9[tcp/80]"

}  // namespace mobike::ike
