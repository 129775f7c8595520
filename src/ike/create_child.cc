#include "ike/create_child.h"

#include <algorithm>

#include "ike/child_sa.h"
#include "ike/ike_rekey.h"
#include "ike/informational.h"
#include "ike/proposal_select.h"
#include "ike/traffic_selector.h"

namespace mobike::ike {

using wire::NotifyType;
using wire::Payload;
using wire::PayloadType;
using wire::ProtocolId;

namespace {

constexpr std::size_t kNonceSize = 32;

Bytes u16_bytes(std::uint16_t v) { return {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)}; }

const wire::NotifyPayload* first_error(const std::vector<Payload>& payloads) {
  for (const auto& p : payloads)
    if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && wire::is_error(n->notify_type())) return n;
  return nullptr;
}

}  // namespace

const Bytes& min_nonce(const Bytes& a, const Bytes& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end()) ? a : b;
}

std::optional<std::vector<Payload>> ChildCreateTask::build_request(IkeSa& sa, Services& s) {
  std::vector<Payload> out;
  if (rekey_of_) {
    ChildSa* old = sa.find_child(rekey_of_);
    if (!old || old->state != ChildState::kInstalled) return std::nullopt;
    old->state = ChildState::kRekeying;
    ts_local_ = old->local_ts;
    ts_remote_ = old->remote_ts;
    out.push_back(wire::make_notify(NotifyType::kRekeySa, {}, ProtocolId::kEsp, spi_bytes(old->spi_in)));
  } else {
    // A client with virtual IPs sends from them on this Child SA as on IKE_AUTH's, and
    // a gateway starting one towards such a client means them, not its outer address.
    ts_local_ = dynamic_ts(config_->local_ts, sa.config ? sa.config->vips : std::vector<IpAddress>{},
                           sa.extras().local_vips, sa.local.address);
    ts_remote_ = dynamic_ts(config_->remote_ts, {}, sa.remote_vips, sa.remote.address);
  }
  if (!spi_in_) spi_in_ = allocate_spi(s);
  if (!group_) group_ = pfs_group(*config_);
  nonce_ = s.random().bytes(kNonceSize);
  out.push_back({PayloadType::kSa, wire::SaPayload{esp_offer(*config_, spi_in_, true)}});
  out.push_back({PayloadType::kNonce, wire::NoncePayload{nonce_}});
  if (group_) {
    if (!dh_ || static_cast<std::uint16_t>(dh_->group()) != group_) {
      auto dh = crypto::KeyExchange::create(static_cast<crypto::DhGroupId>(group_));
      if (!dh) return std::nullopt;
      dh_ = std::move(*dh);
    }
    out.push_back({PayloadType::kKe, wire::KePayload{group_, dh_->public_value()}});
  }
  out.push_back({PayloadType::kTsi, wire::TsPayload{ts_local_}});
  out.push_back({PayloadType::kTsr, wire::TsPayload{ts_remote_}});
  return out;
}

void ChildCreateTask::abort(IkeSa& sa, Services&) {
  if (ChildSa* old = rekey_of_ ? sa.find_child(rekey_of_) : nullptr; old && old->state == ChildState::kRekeying)
    old->state = ChildState::kInstalled;
}

TaskResult ChildCreateTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  ChildSa* old = rekey_of_ ? sa.find_child(rekey_of_) : nullptr;
  auto give_up = [&](const std::string& why) {
    s.log(LogLevel::kWarn, &sa, std::string(name()) + " of '" + config_->name + "' failed: " + why);
    if (old && old->state == ChildState::kRekeying) {
      old->state = ChildState::kInstalled;
      // Try again later rather than let the SA expire unrekeyed.
      old->rekey_at = s.now() + Duration(30000);
    }
    s.event(EventKind::kChildFailed, sa, 0, config_->name);
    return TaskResult::kDone;
  };
  if (auto* ke = wire::find_notify(payloads, NotifyType::kInvalidKePayload)) {
    if (ke->data.size() == 2 && ++retries_ <= 2) {
      auto g = static_cast<std::uint16_t>(ke->data[0] << 8 | ke->data[1]);
      bool offered = false;
      for (const auto& p : config_->esp_proposals)
        for (const auto& t : p.transforms) offered |= t.type == wire::TransformType::kDh && t.id == g;
      if (offered && crypto::dh_group_supported(g)) {
        group_ = g;
        dh_.reset();
        if (old) old->state = ChildState::kInstalled;
        return TaskResult::kRestart;
      }
    }
    return give_up("INVALID_KE_PAYLOAD");
  }
  if (auto* err = first_error(payloads)) return give_up(std::string(wire::notify_name(err->type)));
  auto* sa_p = wire::find_payload<wire::SaPayload>(payloads, PayloadType::kSa);
  auto* nonce = wire::find_payload<wire::NoncePayload>(payloads, PayloadType::kNonce);
  auto* ke = wire::find_payload<wire::KePayload>(payloads, PayloadType::kKe);
  auto* tsi = wire::find_payload<wire::TsPayload>(payloads, PayloadType::kTsi);
  auto* tsr = wire::find_payload<wire::TsPayload>(payloads, PayloadType::kTsr);
  if (!sa_p || !nonce || !tsi || !tsr || sa_p->proposals.size() != 1 || sa_p->proposals[0].spi.size() != 4 ||
      !proposal_acceptable(sa_p->proposals[0], esp_offer(*config_, 0, true)) ||
      !ts_subset(tsi->selectors, ts_local_) || !ts_subset(tsr->selectors, ts_remote_))
    return give_up("response not acceptable");
  const auto& chosen = sa_p->proposals[0];
  std::uint16_t group = transform_id(chosen, wire::TransformType::kDh);
  Bytes shared;
  if (group) {
    if (!ke || ke->group != group || !dh_ || static_cast<std::uint16_t>(dh_->group()) != group)
      return give_up("key exchange mismatch");
    auto sh = dh_->shared_secret(ke->data);
    if (!sh) return give_up("bad KE: " + sh.error());
    shared = std::move(*sh);
  }
  ChildSa child;
  child.id = s.next_child_id();
  child.name = config_->name;
  child.spi_in = spi_in_;
  child.spi_out = spi_from_bytes(chosen.spi);
  child.proposal = chosen;
  child.local_ts = tsi->selectors;
  child.remote_ts = tsr->selectors;
  if (!derive_child_keys(sa, child, shared, nonce_, nonce->data, true)) return give_up("key derivation");
  std::uint64_t new_id = child.id;
  sa.children.push_back(std::move(child));
  install_child(sa, sa.children.back(), s, config_);
  if (!rekey_of_) return TaskResult::kDone;

  old = sa.find_child(rekey_of_);
  if (!old) return TaskResult::kDone;  // the peer deleted it meanwhile
  if (old->peer_rekeyed_to) {
    // Both sides rekeyed this SA at once: the SA made by the exchange with the lowest
    // nonce is redundant and its initiator deletes it (RFC 7296 §2.8.1).
    const Bytes& ours = min_nonce(nonce_, nonce->data);
    if (min_nonce(ours, old->peer_rekey_min_nonce) == ours) {
      s.log(LogLevel::kInfo, &sa, "rekey collision: ours is redundant, deleting it");
      s.queue(sa, std::make_unique<ChildDeleteTask>(new_id));
      return TaskResult::kDone;
    }
  }
  old->rekeyed_to = new_id;
  s.event(EventKind::kChildRekeyed, sa, new_id, config_->name);
  s.queue(sa, std::make_unique<ChildDeleteTask>(old->id));
  return TaskResult::kDone;
}

CreateChildResponse respond_create_child_sa(IkeSa& sa, Services& s, const std::vector<Payload>& request) {
  CreateChildResponse r;
  auto* sa_p = wire::find_payload<wire::SaPayload>(request, PayloadType::kSa);
  auto* nonce = wire::find_payload<wire::NoncePayload>(request, PayloadType::kNonce);
  if (!sa_p || !nonce || sa_p->proposals.empty()) {
    r.payloads.push_back(wire::make_notify(NotifyType::kInvalidSyntax));
    return r;
  }
  if (sa_p->proposals[0].protocol == ProtocolId::kIke) {
    r.payloads = respond_ike_rekey(sa, s, request);
    return r;
  }
  if (sa.state != IkeState::kEstablished) {
    r.payloads.push_back(wire::make_notify(NotifyType::kTemporaryFailure));
    return r;
  }
  ChildSa* old = nullptr;
  if (auto* rekey = wire::find_notify(request, NotifyType::kRekeySa)) {
    old = sa.find_child_by_outbound(spi_from_bytes(rekey->spi));
    if (!old || old->state == ChildState::kDeleting) {
      r.payloads.push_back(wire::make_notify(NotifyType::kChildSaNotFound, {}, ProtocolId::kEsp, rekey->spi));
      return r;
    }
  }
  const ChildConfig* cc = nullptr;
  std::vector<Payload> body;
  auto child = respond_child(sa, s, request, body, &cc, true, old);
  if (!child) {
    r.payloads = std::move(body);
    return r;
  }
  std::uint16_t group = transform_id(child->proposal, wire::TransformType::kDh);
  auto* ke = wire::find_payload<wire::KePayload>(request, PayloadType::kKe);
  Bytes shared;
  std::unique_ptr<crypto::KeyExchange> dh;
  if (group) {
    if (!ke || ke->group != group) {
      r.payloads.push_back(wire::make_notify(NotifyType::kInvalidKePayload, u16_bytes(group)));
      return r;
    }
    auto d = crypto::KeyExchange::create(static_cast<crypto::DhGroupId>(group));
    if (!d) {
      r.payloads.push_back(wire::make_notify(NotifyType::kNoProposalChosen));
      return r;
    }
    dh = std::move(*d);
    auto sh = dh->shared_secret(ke->data);
    if (!sh) {
      r.payloads.push_back(wire::make_notify(NotifyType::kInvalidSyntax));
      return r;
    }
    shared = std::move(*sh);
  }
  Bytes nr = s.random().bytes(kNonceSize);
  if (!derive_child_keys(sa, *child, shared, nonce->data, nr, false)) {
    r.payloads.push_back(wire::make_notify(NotifyType::kNoProposalChosen));
    return r;
  }
  // SA, Nr, [KEr], TSi, TSr in the order RFC 7296 §1.3 shows.
  r.payloads.push_back(std::move(body[0]));
  r.payloads.push_back({PayloadType::kNonce, wire::NoncePayload{nr}});
  if (dh) r.payloads.push_back({PayloadType::kKe, wire::KePayload{group, dh->public_value()}});
  r.payloads.push_back(std::move(body[1]));
  r.payloads.push_back(std::move(body[2]));
  std::uint64_t new_id = child->id;
  std::uint64_t old_id = old ? old->id : 0;
  sa.children.push_back(std::move(*child));
  // A rekey's initiator can decrypt the new SA only once it has our response: until it
  // deletes the old SA we keep sending on the old one.
  install_child(sa, sa.children.back(), s, cc, /*defer_outbound=*/old_id != 0);
  if (old_id) {
    old = sa.find_child(old_id);
    if (old->state == ChildState::kRekeying) {
      // Our own rekey of it is in flight: remember this one for the collision rule.
      old->peer_rekeyed_to = new_id;
      old->peer_rekey_min_nonce = min_nonce(nonce->data, nr);
    } else {
      // The old inbound SA stays until the peer deletes it (no packet lost).
      old->state = ChildState::kRekeying;
      old->rekeyed_to = new_id;
      old->rekey_at = TimePoint::max();
    }
    s.event(EventKind::kChildRekeyed, sa, new_id, cc ? cc->name : "");
  }
  return r;
}

}  // namespace mobike::ike
