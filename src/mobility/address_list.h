// The address sets of RFC 4555 §3.6: ADDITIONAL_IP4_ADDRESS / ADDITIONAL_IP6_ADDRESS /
// NO_ADDITIONAL_ADDRESSES, and the NO_NATS_ALLOWED data of §3.9.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "ike/ike_sa.h"
#include "ike/services.h"
#include "ike/task.h"
#include "wire/payloads.h"

namespace mobike::mobility {

// At most this many additional addresses are sent or kept: a list is not a way to make
// the peer probe without end.
inline constexpr std::size_t kMaxAddresses = 16;

// An address worth announcing or accepting: unicast, not loopback, not link-local.
bool usable_address(const IpAddress& a);

// Our additional addresses for `sa`: the addresses its connection may use
// (usable_local_addresses), except the one the SA uses.
std::vector<IpAddress> our_additional_addresses(const ike::IkeSa& sa, ike::Services& s);

// ADDITIONAL_* for each address, or NO_ADDITIONAL_ADDRESSES for an empty list.
void add_address_list(const std::vector<IpAddress>& addresses, std::vector<wire::Payload>& out);

// The peer's list if the payloads carry one (a complete replacement, §3.6). Entries of
// the wrong length or unusable addresses are skipped and described in `skipped`.
std::optional<std::vector<IpAddress>> parse_address_list(const std::vector<wire::Payload>& payloads,
                                                         std::string* skipped);

// NO_NATS_ALLOWED data: source address, destination address, source port, destination
// port, as the sender puts them on the wire.
Bytes no_nats_data(const Endpoint& source, const Endpoint& destination);

}  // namespace mobike::mobility

namespace mobike::mobility {

// An INFORMATIONAL request that announces our complete address list (§3.6), sent by
// the responder when its addresses change.
inline constexpr const char* kAddressListTaskName = "MOBIKE_ADDRESSES";

class AddressListTask final : public ike::Task {
 public:
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return kAddressListTaskName; }
  std::optional<std::vector<wire::Payload>> build_request(ike::IkeSa& sa, ike::Services& s) override;
  ike::TaskResult process_response(ike::IkeSa& sa, ike::Services& s,
                                   const std::vector<wire::Payload>& payloads) override;
};

}  // namespace mobike::mobility
