// Host names to addresses through the system's resolver (getaddrinfo: /etc/hosts, DNS as
// nsswitch.conf and resolv.conf say). It blocks: call it off the event loop
// (daemon/host_resolver.h runs it on a thread of its own).
#pragma once

#include <string>
#include <vector>

#include "common/expected.h"
#include "common/ip_address.h"

namespace mobike::platform {

// Every IPv4 and IPv6 address of `name` (AF_UNSPEC, SOCK_DGRAM), each once, in the
// order getaddrinfo sorts them (RFC 6724); or its gai_strerror text.
Expected<std::vector<IpAddress>, std::string> resolve_host(const std::string& name);

}  // namespace mobike::platform
