#include "ike/ike_rekey.h"

#include "ike/create_child.h"
#include "ike/ike_init.h"
#include "ike/informational.h"
#include "ike/proposal_select.h"

namespace mobike::ike {

using wire::NotifyType;
using wire::Payload;
using wire::PayloadType;
using wire::ProtocolId;
using wire::TransformType;

namespace {

constexpr std::size_t kNonceSize = 32;

Bytes spi64_bytes(std::uint64_t v) {
  Bytes b;
  for (int i = 7; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(v >> (i * 8)));
  return b;
}

std::uint64_t spi64(ByteView b) {
  std::uint64_t v = 0;
  for (auto x : b) v = v << 8 | x;
  return b.size() == 8 ? v : 0;
}

}  // namespace

void move_children(IkeSa& from, IkeSa& to) {
  for (auto& c : from.children) to.children.push_back(std::move(c));
  from.children.clear();
}

std::optional<std::vector<Payload>> IkeRekeyTask::build_request(IkeSa& sa, Services& s) {
  if (sa.state != IkeState::kEstablished) return std::nullopt;
  sa.state = IkeState::kRekeying;
  if (!spi_) spi_ = s.fresh_ike_spi();
  if (!group_) group_ = transform_id(sa.ike_proposal, TransformType::kDh);
  if (!dh_ || static_cast<std::uint16_t>(dh_->group()) != group_) {
    auto dh = crypto::KeyExchange::create(static_cast<crypto::DhGroupId>(group_));
    if (!dh) return std::nullopt;
    dh_ = std::move(*dh);
  }
  nonce_ = s.random().bytes(kNonceSize);
  auto proposals = sa.config->ike_proposals;
  for (auto& p : proposals) p.spi = spi64_bytes(spi_);
  return std::vector<Payload>{{PayloadType::kSa, wire::SaPayload{proposals}},
                              {PayloadType::kNonce, wire::NoncePayload{nonce_}},
                              {PayloadType::kKe, wire::KePayload{group_, dh_->public_value()}}};
}

void IkeRekeyTask::abort(IkeSa& sa, Services&) {
  if (sa.state == IkeState::kRekeying && !sa.rekeyed_to) sa.state = IkeState::kEstablished;
}

TaskResult IkeRekeyTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  auto retry_later = [&](const std::string& why) {
    s.log(LogLevel::kInfo, &sa, "IKE rekey failed (" + why + "), retrying later");
    if (sa.state == IkeState::kRekeying && !sa.peer_rekeyed_to) sa.state = IkeState::kEstablished;
    sa.rekey_at = s.now() + Duration(30000);
    return TaskResult::kDone;
  };
  if (auto* ke = wire::find_notify(payloads, NotifyType::kInvalidKePayload)) {
    if (ke->data.size() == 2 && ++retries_ <= 2) {
      auto g = static_cast<std::uint16_t>(ke->data[0] << 8 | ke->data[1]);
      bool offered = false;
      for (const auto& p : sa.config->ike_proposals)
        for (const auto& t : p.transforms) offered |= t.type == TransformType::kDh && t.id == g;
      if (offered && crypto::dh_group_supported(g)) {
        group_ = g;
        sa.state = IkeState::kEstablished;
        return TaskResult::kRestart;
      }
    }
    return retry_later("INVALID_KE_PAYLOAD");
  }
  for (const auto& p : payloads)
    if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && wire::is_error(n->notify_type()))
      return retry_later(std::string(wire::notify_name(n->type)));
  auto* sa_p = wire::find_payload<wire::SaPayload>(payloads, PayloadType::kSa);
  auto* nonce = wire::find_payload<wire::NoncePayload>(payloads, PayloadType::kNonce);
  auto* ke = wire::find_payload<wire::KePayload>(payloads, PayloadType::kKe);
  if (!sa_p || !nonce || !ke || sa_p->proposals.size() != 1 || sa_p->proposals[0].spi.size() != 8 ||
      !proposal_acceptable(sa_p->proposals[0], sa.config->ike_proposals) ||
      transform_id(sa_p->proposals[0], TransformType::kDh) != group_ || ke->group != group_)
    return retry_later("response not acceptable");
  auto shared = dh_->shared_secret(ke->data);
  if (!shared) return retry_later("bad KE");
  std::uint64_t peer_spi = spi64(sa_p->proposals[0].spi);
  IkeSa& fresh = s.spawn_rekeyed(sa, true, spi_, peer_spi);
  fresh.ike_proposal = sa_p->proposals[0];
  fresh.setup().nonce_i = nonce_;
  fresh.setup().nonce_r = nonce->data;
  if (!derive_ike_sa_keys(fresh, *shared, &sa)) {
    s.retire(fresh, "key derivation failed");
    return retry_later("key derivation");
  }
  forget_auth_material(fresh);
  if (sa.peer_rekeyed_to) {
    // Both sides rekeyed at once (RFC 7296 §2.8.2): the new SA of the exchange with the
    // lowest nonce is redundant and deleted by its initiator.
    const Bytes& ours = min_nonce(nonce_, nonce->data);
    IkeSa* theirs = s.find_sa(sa.peer_rekeyed_to);
    if (!theirs || min_nonce(ours, sa.extras().peer_rekey_min_nonce) == ours) {
      s.log(LogLevel::kInfo, &sa, "IKE rekey collision: ours is redundant, deleting it");
      if (!theirs) move_children(sa, fresh);
      s.queue(fresh, std::make_unique<IkeDeleteTask>());
      return TaskResult::kDone;
    }
    s.log(LogLevel::kInfo, &sa, "IKE rekey collision: ours wins");
    move_children(*theirs, fresh);
  }
  move_children(sa, fresh);
  sa.rekeyed_to = fresh.id;
  s.event(EventKind::kIkeRekeyed, fresh, sa.id, "replaces IKE SA " + std::to_string(sa.id));
  s.queue(sa, std::make_unique<IkeDeleteTask>());
  return TaskResult::kDone;
}

std::vector<Payload> respond_ike_rekey(IkeSa& sa, Services& s, const std::vector<Payload>& request) {
  auto error = [](NotifyType t, Bytes data = {}) { return std::vector<Payload>{wire::make_notify(t, std::move(data))}; };
  bool collision = sa.state == IkeState::kRekeying && sa.active &&
                   std::string_view(sa.active->name()) == "IKE_REKEY" && !sa.peer_rekeyed_to;
  if (sa.state != IkeState::kEstablished && !collision) return error(NotifyType::kTemporaryFailure);
  // RFC 7296 §2.25: while we rekey a Child SA (or create one), a simultaneous IKE rekey
  // is refused; the peer retries.
  if (!collision && sa.active && sa.active->exchange() == wire::ExchangeType::kCreateChildSa)
    return error(NotifyType::kTemporaryFailure);
  auto* sa_p = wire::find_payload<wire::SaPayload>(request, PayloadType::kSa);
  auto* nonce = wire::find_payload<wire::NoncePayload>(request, PayloadType::kNonce);
  auto* ke = wire::find_payload<wire::KePayload>(request, PayloadType::kKe);
  if (!ke) return error(NotifyType::kInvalidSyntax);
  auto chosen = select_proposal(sa_p->proposals, sa.config->ike_proposals);
  if (!chosen || chosen->spi.size() != 8 || spi64(chosen->spi) == 0) return error(NotifyType::kNoProposalChosen);
  std::uint16_t group = transform_id(*chosen, TransformType::kDh);
  if (ke->group != group)
    return error(NotifyType::kInvalidKePayload, {static_cast<std::uint8_t>(group >> 8), static_cast<std::uint8_t>(group)});
  auto dh = crypto::KeyExchange::create(static_cast<crypto::DhGroupId>(group));
  if (!dh) return error(NotifyType::kNoProposalChosen);
  auto shared = (*dh)->shared_secret(ke->data);
  if (!shared) return error(NotifyType::kInvalidSyntax);
  std::uint64_t our_spi = s.fresh_ike_spi();
  IkeSa& fresh = s.spawn_rekeyed(sa, false, spi64(chosen->spi), our_spi);
  fresh.ike_proposal = *chosen;
  fresh.setup().nonce_i = nonce->data;
  fresh.setup().nonce_r = s.random().bytes(kNonceSize);
  if (!derive_ike_sa_keys(fresh, *shared, &sa)) {
    s.retire(fresh, "key derivation failed");
    return error(NotifyType::kNoProposalChosen);
  }
  chosen->spi = spi64_bytes(our_spi);
  std::vector<Payload> out{{PayloadType::kSa, wire::SaPayload{{*chosen}}},
                           {PayloadType::kNonce, wire::NoncePayload{fresh.setup().nonce_r}},
                           {PayloadType::kKe, wire::KePayload{group, (*dh)->public_value()}}};
  move_children(sa, fresh);
  if (collision) {
    sa.peer_rekeyed_to = fresh.id;
    sa.edit_extras().peer_rekey_min_nonce = min_nonce(fresh.setup().nonce_i, fresh.setup().nonce_r);
  } else {
    // The old SA waits for the peer's DELETE.
    sa.state = IkeState::kRekeying;
    sa.rekeyed_to = fresh.id;
    sa.rekey_at = TimePoint::max();
  }
  forget_auth_material(fresh);
  s.event(EventKind::kIkeRekeyed, fresh, sa.id, "replaces IKE SA " + std::to_string(sa.id));
  return out;
}

}  // namespace mobike::ike
