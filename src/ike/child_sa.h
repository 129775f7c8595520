// Child SA set-up shared by IKE_AUTH and CREATE_CHILD_SA: SPIs, keymat (RFC 7296
// §2.17), lifetimes and the data-plane install.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ike/ike_sa.h"
#include "ike/services.h"

namespace mobike::ike {

std::uint32_t allocate_spi(Services& s);
// Our ESP proposals with our inbound SPI in each; without `with_pfs` the DH transforms
// are left out (IKE_AUTH).
std::vector<wire::Proposal> esp_offer(const ChildConfig& child, std::uint32_t spi_in, bool with_pfs);
// The PFS group of a child config (its first proposal's DH transform), 0 if none.
std::uint16_t pfs_group(const ChildConfig& child);
// Responder half of a Child SA negotiation (IKE_AUTH and CREATE_CHILD_SA): picks a
// child config by traffic selectors, a proposal, and fills `response` with SA, TSi, TSr
// or an error notify. Returns the new Child SA (keys not yet derived) or nullopt.
std::optional<ChildSa> respond_child(IkeSa& sa, Services& s, const std::vector<wire::Payload>& request,
                                     std::vector<wire::Payload>& response, const ChildConfig** config_out,
                                     bool with_pfs, const ChildSa* rekeyed = nullptr);
// Keys for `child` from prf+(SK_d, [g^ir |] Ni | Nr); `we_initiated` says which half
// is inbound for us.
bool derive_child_keys(const IkeSa& sa, ChildSa& child, ByteView shared, ByteView ni, ByteView nr,
                       bool we_initiated);
// A data-plane operation for `child` with the IKE SA's current endpoints filled in.
DataplaneOp dataplane_op(DataplaneOp::Kind kind, const IkeSa& sa, const ChildSa& child);
// What the data plane enforces on `child` (from its config; seconds from its timers).
ChildLimits child_limits(const ChildConfig& config, const ChildSa& child, Services& s);
// Marks the Child SA installed, sets its timers and emits the install operation.
// `defer_outbound`: receive-only until activate_outbound() (rekey responder).
void install_child(IkeSa& sa, ChildSa& child, Services& s, const ChildConfig* config,
                   bool defer_outbound = false);
// Lets a Child SA installed receive-only send.
void activate_outbound(const IkeSa& sa, ChildSa& child, Services& s);
void emit_child_delete(const IkeSa& sa, const ChildSa& child, Services& s);
std::uint32_t spi_from_bytes(ByteView b);
Bytes spi_bytes(std::uint32_t spi);

}  // namespace mobike::ike
