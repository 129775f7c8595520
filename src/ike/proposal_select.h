// SA proposal negotiation (RFC 7296 §2.7, §3.3.6): the responder picks one transform of
// each type from one of the initiator's proposals that its own configuration allows.
#pragma once

#include <optional>
#include <vector>

#include "wire/payloads.h"

namespace mobike::ike {

// Returns the chosen proposal (number and SPI taken from the peer's offer, exactly one
// transform per type), or nullopt if none is acceptable. The peer's order wins.
std::optional<wire::Proposal> select_proposal(const std::vector<wire::Proposal>& offered,
                                              const std::vector<wire::Proposal>& configured);

// The initiator's check of the responder's answer: one transform per type, and a
// combination that one of our own proposals contains.
bool proposal_acceptable(const wire::Proposal& chosen,
                         const std::vector<wire::Proposal>& configured);

// First transform of a type, if any.
const wire::Transform* find_transform(const wire::Proposal& p, wire::TransformType t);
std::uint16_t transform_id(const wire::Proposal& p, wire::TransformType t);  // 0 if absent
std::uint16_t key_bits(const wire::Proposal& p);  // key length of the ENCR transform

}  // namespace mobike::ike
