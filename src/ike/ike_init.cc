#include "ike/ike_init.h"

#include "ike/authenticator.h"

#include "crypto/key_derivation.h"
#include "crypto/wipe.h"
#include "ike/proposal_select.h"
#include "ike/protection.h"

namespace mobike::ike {

using wire::NotifyType;
using wire::Payload;
using wire::PayloadType;
using wire::TransformType;

namespace {

constexpr std::size_t kNonceSize = 32;

crypto::SkSuite suite_of(const wire::Proposal& p) {
  crypto::SkSuite s;
  s.encr = static_cast<crypto::EncrId>(transform_id(p, TransformType::kEncr));
  s.key_bits = key_bits(p);
  if (s.encr == crypto::EncrId::kChaCha20Poly1305 && s.key_bits == 0) s.key_bits = 256;
  s.integ = static_cast<crypto::IntegId>(transform_id(p, TransformType::kInteg));
  return s;
}

std::uint16_t first_group(const std::vector<wire::Proposal>& proposals) {
  for (const auto& p : proposals)
    if (auto g = transform_id(p, TransformType::kDh)) return g;
  return 0;
}

bool group_offered(const std::vector<wire::Proposal>& proposals, std::uint16_t group) {
  for (const auto& p : proposals)
    for (const auto& t : p.transforms)
      if (t.type == TransformType::kDh && t.id == group) return true;
  return false;
}

Bytes u16_bytes(std::uint16_t v) {
  return {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
}

}  // namespace

bool set_ike_keys(IkeCrypto& crypto, const wire::Proposal& proposal, bool initiator, Bytes sk_d, Bytes sk_ai,
                  Bytes sk_ar, Bytes sk_ei, Bytes sk_er) {
  auto prf_id = transform_id(proposal, TransformType::kPrf);
  if (!crypto::prf_supported(prf_id)) return false;
  auto suite = suite_of(proposal);
  if (crypto::encr_key_size(suite) == 0) return false;
  auto ci = crypto::SkCipher::create(suite, sk_ei, sk_ai);
  auto cr = crypto::SkCipher::create(suite, sk_er, sk_ar);
  if (!ci || !cr) return false;
  crypto.prf = std::make_unique<crypto::Prf>(static_cast<crypto::PrfId>(prf_id));
  crypto.out = std::move(initiator ? *ci : *cr);
  crypto.in = std::move(initiator ? *cr : *ci);
  crypto.sk_d = std::move(sk_d);
  for (Bytes* k : {&sk_ai, &sk_ar, &sk_ei, &sk_er}) crypto::wipe(*k);
  return true;
}

bool derive_ike_sa_keys(IkeSa& sa, ByteView shared_secret, const IkeSa* rekeyed) {
  auto prf_id = transform_id(sa.ike_proposal, TransformType::kPrf);
  if (!crypto::prf_supported(prf_id)) return false;
  crypto::Prf prf(static_cast<crypto::PrfId>(prf_id));
  auto suite = suite_of(sa.ike_proposal);
  if (crypto::encr_key_size(suite) == 0) return false;
  crypto::IkeKeySizes sizes{crypto::encr_key_size(suite), crypto::integ_key_size(suite.integ)};
  // A rekeyed SA's SKEYSEED comes from the old SA's SK_d and PRF (RFC 7296 §2.18).
  Bytes seed = rekeyed ? crypto::skeyseed_rekey(*rekeyed->crypto.prf, rekeyed->crypto.sk_d, shared_secret,
                                                sa.setup().nonce_i, sa.setup().nonce_r)
                       : crypto::skeyseed(prf, sa.setup().nonce_i, sa.setup().nonce_r, shared_secret);
  auto keys = crypto::derive_ike_keys(prf, seed, sa.setup().nonce_i, sa.setup().nonce_r, sa.spi_i, sa.spi_r, sizes);
  if (!set_ike_keys(sa.crypto, sa.ike_proposal, sa.initiator, std::move(keys.sk_d), std::move(keys.sk_ai),
                    std::move(keys.sk_ar), std::move(keys.sk_ei), std::move(keys.sk_er)))
    return false;
  sa.setup().sk_pi = std::move(keys.sk_pi);
  sa.setup().sk_pr = std::move(keys.sk_pr);
  return true;
}

void add_nat_detection(const IkeSa& sa, std::vector<Payload>& out, bool force_encap,
                       crypto::Random& random) {
  // A faked source hash makes the peer see a NAT in front of us (strongSwan's encap=yes).
  Bytes src = force_encap ? random.bytes(20) : nat_detection_hash(sa.spi_i, sa.spi_r, sa.local);
  out.push_back(wire::make_notify(NotifyType::kNatDetectionSourceIp, std::move(src)));
  out.push_back(wire::make_notify(NotifyType::kNatDetectionDestinationIp,
                                  nat_detection_hash(sa.spi_i, sa.spi_r, sa.remote)));
}

void evaluate_nat_detection(IkeSa& sa, const std::vector<Payload>& payloads, bool force_encap) {
  auto sources = wire::find_notifies(payloads, static_cast<std::uint16_t>(NotifyType::kNatDetectionSourceIp));
  auto* dest = wire::find_notify(payloads, NotifyType::kNatDetectionDestinationIp);
  if (sources.empty() || !dest) {
    sa.peer_nat_d = false;
    return;
  }
  sa.peer_nat_d = true;
  sa.nat_d_dest_seen = dest->data;
  Bytes expect_src = nat_detection_hash(sa.spi_i, sa.spi_r, sa.remote);
  bool src_match = false;
  for (auto* n : sources) src_match |= equal_ct(n->data, expect_src);
  sa.nat_remote = !src_match;
  sa.nat_local = force_encap || !equal_ct(dest->data, nat_detection_hash(sa.spi_i, sa.spi_r, sa.local));
}

std::optional<std::vector<Payload>> IkeInitTask::build_request(IkeSa& sa, Services& s) {
  const auto& proposals = sa.config->ike_proposals;
  if (group_ == 0) group_ = first_group(proposals);
  if (!sa.setup().dh || static_cast<std::uint16_t>(sa.setup().dh->group()) != group_) {
    auto dh = crypto::KeyExchange::create(static_cast<crypto::DhGroupId>(group_));
    if (!dh) {
      s.log(LogLevel::kError, &sa, "key exchange group " + std::to_string(group_) + ": " + dh.error());
      return std::nullopt;
    }
    sa.setup().dh = std::move(*dh);
  }
  if (sa.setup().nonce_i.empty()) sa.setup().nonce_i = s.random().bytes(kNonceSize);
  std::vector<Payload> out;
  if (!sa.extras().cookie.empty()) out.push_back(wire::make_notify(NotifyType::kCookie, sa.extras().cookie));
  wire::SaPayload sa_payload{proposals};
  for (auto& p : sa_payload.proposals) p.spi.clear();
  out.push_back({PayloadType::kSa, sa_payload});
  out.push_back({PayloadType::kKe, wire::KePayload{group_, sa.setup().dh->public_value()}});
  out.push_back({PayloadType::kNonce, wire::NoncePayload{sa.setup().nonce_i}});
  if (sa.config->nat_traversal) add_nat_detection(sa, out, sa.config->encap_force, s.random());
  if (sa.config->fragmentation) out.push_back(wire::make_notify(NotifyType::kIkev2FragmentationSupported));
  add_init_auth_payloads(s, sa.config, out);
  return out;
}

TaskResult IkeInitTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  if (auto* cookie = wire::find_notify(payloads, NotifyType::kCookie)) {
    if (cookie->data.empty() || cookie->data.size() > 64 || ++retries_ > 3) return TaskResult::kFailed;
    sa.edit_extras().cookie = cookie->data;
    return TaskResult::kRestart;
  }
  if (auto* ke = wire::find_notify(payloads, NotifyType::kInvalidKePayload)) {
    if (ke->data.size() != 2 || ++retries_ > 3) return TaskResult::kFailed;
    std::uint16_t group = static_cast<std::uint16_t>(ke->data[0] << 8 | ke->data[1]);
    if (group == group_ || !group_offered(sa.config->ike_proposals, group) ||
        !crypto::dh_group_supported(group)) {
      s.log(LogLevel::kWarn, &sa, "peer asked for key exchange group " + std::to_string(group) + ", not offered");
      return TaskResult::kFailed;
    }
    s.log(LogLevel::kInfo, &sa, "peer asked for key exchange group " + std::to_string(group) + ", retrying");
    group_ = group;
    sa.setup().dh.reset();
    return TaskResult::kRestart;
  }
  for (const auto& p : payloads)
    if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && wire::is_error(n->notify_type())) {
      s.log(LogLevel::kWarn, &sa, std::string("IKE_SA_INIT failed: ") + std::string(wire::notify_name(n->type)));
      return TaskResult::kFailed;
    }
  auto* sa_p = wire::find_payload<wire::SaPayload>(payloads, PayloadType::kSa);
  auto* ke = wire::find_payload<wire::KePayload>(payloads, PayloadType::kKe);
  auto* nonce = wire::find_payload<wire::NoncePayload>(payloads, PayloadType::kNonce);
  if (!sa_p || !ke || !nonce || sa_p->proposals.size() != 1 || sa.spi_r == 0) {
    s.log(LogLevel::kWarn, &sa, "IKE_SA_INIT response incomplete");
    return TaskResult::kFailed;
  }
  const auto& chosen = sa_p->proposals.front();
  if (!proposal_acceptable(chosen, sa.config->ike_proposals) ||
      transform_id(chosen, TransformType::kDh) != group_ || ke->group != group_) {
    s.log(LogLevel::kWarn, &sa, "IKE_SA_INIT response chose a proposal we did not offer");
    return TaskResult::kFailed;
  }
  sa.ike_proposal = chosen;
  sa.setup().nonce_r = nonce->data;
  auto shared = sa.setup().dh->shared_secret(ke->data);
  if (!shared) {
    s.log(LogLevel::kWarn, &sa, "bad KE from peer: " + shared.error());
    return TaskResult::kFailed;
  }
  if (!derive_ike_sa_keys(sa, *shared, nullptr)) return TaskResult::kFailed;
  sa.setup().dh.reset();
  evaluate_nat_detection(sa, payloads, sa.config->encap_force);
  // RFC 7296 §2.23 and RFC 4555 §3.3: float to the NAT-T port when a NAT is in the path
  // or when we want MOBIKE and the peer does NAT-T.
  if (sa.peer_nat_d && (sa.nat_local || sa.nat_remote || sa.config->mobike)) {
    sa.local.port = s.config().natt_port;
    if (sa.remote.port == s.config().ike_port) sa.remote.port = s.config().natt_port;
  }
  sa.peer_mobike = sa.peer_mobike || wire::find_notify(payloads, NotifyType::kMobikeSupported);
  sa.peer_fragmentation = wire::find_notify(payloads, NotifyType::kIkev2FragmentationSupported);
  sa.fragmentation = sa.peer_fragmentation && sa.config->fragmentation;
  note_peer_auth_payloads(sa, payloads);
  return TaskResult::kDone;
}

InitResponse respond_ike_sa_init(IkeSa& sa, Services& s, const std::vector<Payload>& request) {
  InitResponse r;
  auto fail = [&](NotifyType t, Bytes data = {}) {
    r.payloads = {wire::make_notify(t, std::move(data))};
    r.ok = false;
    return r;
  };
  auto* sa_p = wire::find_payload<wire::SaPayload>(request, PayloadType::kSa);
  auto* ke = wire::find_payload<wire::KePayload>(request, PayloadType::kKe);
  auto* nonce = wire::find_payload<wire::NoncePayload>(request, PayloadType::kNonce);
  if (!sa_p || !ke || !nonce) return fail(NotifyType::kInvalidSyntax);
  auto chosen = select_proposal(sa_p->proposals, sa.config->ike_proposals);
  if (!chosen || !crypto::prf_supported(transform_id(*chosen, TransformType::kPrf)))
    return fail(NotifyType::kNoProposalChosen);
  auto group = transform_id(*chosen, TransformType::kDh);
  if (ke->group != group) return fail(NotifyType::kInvalidKePayload, u16_bytes(group));
  auto dh = crypto::KeyExchange::create(static_cast<crypto::DhGroupId>(group));
  if (!dh) return fail(NotifyType::kNoProposalChosen);
  auto shared = (*dh)->shared_secret(ke->data);
  if (!shared) return fail(NotifyType::kInvalidSyntax);
  sa.ike_proposal = *chosen;
  sa.setup().nonce_i = nonce->data;
  sa.setup().nonce_r = s.random().bytes(kNonceSize);
  if (!derive_ike_sa_keys(sa, *shared, nullptr)) return fail(NotifyType::kNoProposalChosen);
  // The initiator hashed with the responder SPI still zero, as its header carried it.
  auto spi_r = std::exchange(sa.spi_r, 0);
  evaluate_nat_detection(sa, request, sa.config->encap_force);
  sa.spi_r = spi_r;

  r.payloads.push_back({PayloadType::kSa, wire::SaPayload{{*chosen}}});
  r.payloads.push_back({PayloadType::kKe, wire::KePayload{group, (*dh)->public_value()}});
  r.payloads.push_back({PayloadType::kNonce, wire::NoncePayload{sa.setup().nonce_r}});
  if (sa.peer_nat_d && sa.config->nat_traversal) add_nat_detection(sa, r.payloads, sa.config->encap_force, s.random());
  // RFC 7383 §2.3. The connection chosen by address decides: the one IKE_AUTH may
  // switch to inherits what was agreed here, as the IKE SA does.
  sa.peer_fragmentation = wire::find_notify(request, NotifyType::kIkev2FragmentationSupported);
  if (sa.config->fragmentation) r.payloads.push_back(wire::make_notify(NotifyType::kIkev2FragmentationSupported));
  sa.fragmentation = sa.peer_fragmentation && sa.config->fragmentation;
  note_peer_auth_payloads(sa, request);
  // The connection is not known before IKE_AUTH: announce for all of them.
  add_init_auth_payloads(s, nullptr, r.payloads);
  r.ok = true;
  return r;
}

}  // namespace mobike::ike
