#include "ike/informational.h"

#include <algorithm>

#include "ike/child_sa.h"
#include "ike/mobility.h"

namespace mobike::ike {

using wire::Payload;
using wire::PayloadType;
using wire::ProtocolId;

void remove_child(IkeSa& sa, std::uint64_t child_id, Services& s) {
  auto it = std::find_if(sa.children.begin(), sa.children.end(),
                         [&](const ChildSa& c) { return c.id == child_id; });
  if (it == sa.children.end()) return;
  // After a rekey collision the peer's SA (peer_rekeyed_to) is the survivor unless ours won.
  std::uint64_t successor = it->rekeyed_to ? it->rekeyed_to : it->peer_rekeyed_to;
  // The SA this one was replaced by may now send (it was receive-only, see
  // create_child.cc): the peer has deleted, so it knows the new SA. Before the old SA
  // goes: a kernel data plane between the two would find no outbound SA and drop.
  if (ChildSa* next = successor ? sa.find_child(successor) : nullptr) activate_outbound(sa, *next, s);
  emit_child_delete(sa, *it, s);
  sa.children.erase(it);
}

std::optional<std::vector<Payload>> LivenessTask::build_request(IkeSa& sa, Services& s) {
  std::vector<Payload> out;
  if (auto* m = s.mobility(); m && sa.peer_mobike) m->liveness_request(sa, s, out);
  return out;
}

TaskResult LivenessTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  if (auto* m = s.mobility(); m && sa.peer_mobike) m->liveness_response(sa, s, payloads);
  return TaskResult::kDone;
}

std::optional<std::vector<Payload>> IkeDeleteTask::build_request(IkeSa& sa, Services&) {
  sa.state = IkeState::kDeleting;
  return std::vector<Payload>{{PayloadType::kDelete, wire::DeletePayload{ProtocolId::kIke, 0, {}}}};
}

TaskResult IkeDeleteTask::process_response(IkeSa& sa, Services&, const std::vector<Payload>&) {
  sa.state = IkeState::kDead;
  return TaskResult::kDone;
}

std::optional<std::vector<Payload>> ChildDeleteTask::build_request(IkeSa& sa, Services&) {
  auto* child = sa.find_child(child_id_);
  if (!child) return std::nullopt;
  child->state = ChildState::kDeleting;
  spi_in_ = child->spi_in;
  return std::vector<Payload>{{PayloadType::kDelete, wire::DeletePayload{ProtocolId::kEsp, 4, {spi_bytes(child->spi_in)}}}};
}

TaskResult ChildDeleteTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>&) {
  // Whatever the peer answers, the SA is gone on our side (RFC 7296 §1.4.1).
  remove_child(sa, child_id_, s);
  return TaskResult::kDone;
}

InformationalResponse respond_informational(IkeSa& sa, Services& s,
                                            const std::vector<Payload>& request) {
  InformationalResponse r;
  std::vector<Bytes> our_spis;
  for (const auto& p : request) {
    auto* d = std::get_if<wire::DeletePayload>(&p.body);
    if (!d) continue;
    if (d->protocol == ProtocolId::kIke) {
      r.delete_ike = true;
      continue;
    }
    if (d->protocol != ProtocolId::kEsp) continue;
    for (const auto& spi : d->spis) {
      auto* child = sa.find_child_by_outbound(spi_from_bytes(spi));
      if (!child) continue;
      // A Child SA we are deleting ourselves at the same time is already answered by
      // our own request; either way it is gone (RFC 7296 §1.4.1).
      if (child->state != ChildState::kDeleting) our_spis.push_back(spi_bytes(child->spi_in));
      remove_child(sa, child->id, s);
    }
  }
  if (r.delete_ike) return r;  // empty response
  if (!our_spis.empty())
    r.payloads.push_back({PayloadType::kDelete, wire::DeletePayload{ProtocolId::kEsp, 4, std::move(our_spis)}});
  return r;
}

}  // namespace mobike::ike
