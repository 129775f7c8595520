#include "ike/proposal_select.h"

#include <algorithm>

namespace mobike::ike {

using wire::Proposal;
using wire::Transform;
using wire::TransformType;

namespace {

constexpr TransformType kTypes[] = {TransformType::kEncr, TransformType::kPrf,
                                    TransformType::kInteg, TransformType::kDh,
                                    TransformType::kEsn};

bool has_type(const Proposal& p, TransformType t) {
  return std::any_of(p.transforms.begin(), p.transforms.end(),
                     [t](const Transform& x) { return x.type == t; });
}

bool contains(const Proposal& p, const Transform& t) {
  return std::find(p.transforms.begin(), p.transforms.end(), t) != p.transforms.end();
}

// Integrity "NONE" (id 0) and an absent integrity transform mean the same for AEAD.
bool type_effectively_absent(const Proposal& p, TransformType t) {
  for (const auto& x : p.transforms)
    if (x.type == t && !(x.id == 0 && (t == TransformType::kInteg || t == TransformType::kDh)))
      return false;
  return true;
}

std::optional<Proposal> match(const Proposal& offer, const Proposal& ours) {
  if (offer.protocol != ours.protocol) return std::nullopt;
  Proposal chosen;
  chosen.number = offer.number;
  chosen.protocol = offer.protocol;
  chosen.spi = offer.spi;
  for (auto type : kTypes) {
    bool offer_has = has_type(offer, type), ours_has = has_type(ours, type);
    if (!offer_has && !ours_has) continue;
    if (type_effectively_absent(offer, type) && type_effectively_absent(ours, type)) continue;
    const Transform* pick = nullptr;
    for (const auto& t : offer.transforms)
      if (t.type == type && contains(ours, t)) {
        pick = &t;
        break;
      }
    if (!pick) return std::nullopt;
    chosen.transforms.push_back(*pick);
  }
  return chosen;
}

}  // namespace

std::optional<Proposal> select_proposal(const std::vector<Proposal>& offered,
                                        const std::vector<Proposal>& configured) {
  for (const auto& offer : offered)
    for (const auto& ours : configured)
      if (auto m = match(offer, ours)) return m;
  return std::nullopt;
}

bool proposal_acceptable(const Proposal& chosen, const std::vector<Proposal>& configured) {
  for (auto type : kTypes) {
    auto n = std::count_if(chosen.transforms.begin(), chosen.transforms.end(),
                           [type](const Transform& x) { return x.type == type; });
    if (n > 1) return false;
  }
  for (const auto& ours : configured) {
    auto m = match(chosen, ours);
    if (m && m->transforms.size() == chosen.transforms.size()) return true;
  }
  return false;
}

const Transform* find_transform(const Proposal& p, TransformType t) {
  for (const auto& x : p.transforms)
    if (x.type == t) return &x;
  return nullptr;
}

std::uint16_t transform_id(const Proposal& p, TransformType t) {
  auto* x = find_transform(p, t);
  return x ? x->id : 0;
}

std::uint16_t key_bits(const Proposal& p) {
  auto* x = find_transform(p, TransformType::kEncr);
  return x && x->key_length ? *x->key_length : 0;
}

}  // namespace mobike::ike
