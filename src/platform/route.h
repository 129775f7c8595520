// Route lookups through the kernel: which local address would it use to reach a peer.
#pragma once

#include <optional>

#include "common/ip_address.h"

namespace mobike::platform {

// The source address the kernel picks for `destination` (a connected UDP socket's
// local address; nothing is sent). nullopt when there is no route.
std::optional<IpAddress> source_address_for(const IpAddress& destination);

}  // namespace mobike::platform
