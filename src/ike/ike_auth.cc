#include "ike/ike_auth.h"

#include "ike/authenticator.h"
#include "ike/child_sa.h"
#include "ike/config_payload.h"
#include "ike/mobility.h"
#include "ike/proposal_select.h"
#include "ike/protection.h"
#include "ike/traffic_selector.h"

namespace mobike::ike {

using wire::NotifyType;
using wire::Payload;
using wire::PayloadType;

namespace {

// RFC 6311 §5: each capability is claimed in IKE_AUTH and usable only if both sides
// claimed it; the responder claims none the initiator did not.
void note_ha_claims(IkeSa& sa, const std::vector<wire::Payload>& payloads) {
  sa.peer_mid_sync = wire::find_notify(payloads, NotifyType::kIkev2MessageIdSyncSupported) != nullptr;
  sa.peer_replay_sync = wire::find_notify(payloads, NotifyType::kIpsecReplayCounterSyncSupported) != nullptr;
}

// Our claims: the initiator's as its connection says, the responder's only as a
// cluster member and only those the initiator made.
void add_ha_claims(IkeSa& sa, Services& s, std::vector<wire::Payload>& out) {
  if (!sa.config->ha_sync) return;
  const bool ours = sa.initiator || s.config().ha_sync_member;
  if (!ours) return;
  const bool mid = sa.initiator || sa.peer_mid_sync;
  const bool replay = sa.initiator || sa.peer_replay_sync;
  if (mid) out.push_back(wire::make_notify(NotifyType::kIkev2MessageIdSyncSupported));
  if (replay) out.push_back(wire::make_notify(NotifyType::kIpsecReplayCounterSyncSupported));
  if (!sa.initiator) {
    sa.mid_sync = mid;
    sa.replay_sync = replay;
  }
}

std::optional<Identity> identity_of(const wire::IdPayload* id) {
  if (!id) return std::nullopt;
  return Identity{id->id_type, id->data};
}

Payload id_payload(PayloadType type, const Identity& id) {
  return {type, wire::IdPayload{id.type, id.data}};
}

// Frees the IKE_AUTH-only secrets when IKE_AUTH's last step ends, by whatever return:
// the first Child SA's keys are derived from the nonces after mark_established().
class ForgetAuthMaterial {
 public:
  explicit ForgetAuthMaterial(IkeSa& sa) : sa_(sa) {}
  ForgetAuthMaterial(const ForgetAuthMaterial&) = delete;
  ForgetAuthMaterial& operator=(const ForgetAuthMaterial&) = delete;
  ~ForgetAuthMaterial() { forget_auth_material(sa_); }

 private:
  IkeSa& sa_;
};

void mark_established(IkeSa& sa, Services& s) {
  sa.state = IkeState::kEstablished;
  sa.established_at = s.now();
  s.stats().ike_established++;
  s.event(EventKind::kIkeEstablished, sa, 0,
          sa.local.to_string() + " <-> " + sa.remote.to_string() +
              (sa.nat_local ? " (NAT here)" : "") + (sa.nat_remote ? " (NAT at peer)" : ""));
}

eap::Type eap_type(AuthClass c) { return c == AuthClass::kEapTls ? eap::Type::kTls : eap::Type::kMschapv2; }

// Passwords for MSCHAPv2; for EAP-TLS the connection's certificate, key and anchors, and
// (a client) the gateway's identity, which its TLS certificate must hold as well.
eap::Credentials eap_credentials(const ConnectionConfig& c, bool client) {
  eap::Credentials k(c.eap_secrets);
  k.key = c.private_key;
  k.certs = c.local_certs;
  k.trust = c.trust;
  if (c.eap_tls13_pre_rfc9190) k.tls13 = eap::Tls13Scheme::kPreRfc9190;
  if (client && c.remote_id && !c.remote_id->is_pattern()) {
    Identity gateway = *c.remote_id;
    k.check_peer = [gateway](const crypto::Certificate& cert) -> Expected<bool, std::string> {
      if (identity_in_certificate(gateway, cert)) return true;
      return unexpected("TLS certificate \"" + cert.subject() + "\" does not name " + gateway.to_string());
    };
  }
  return k;
}

// An identity as the EAP methods see it: the octets of a name, the text of an address.
std::string eap_identity_of(const Identity& id) {
  if (id.type == wire::IdType::kIpv4Addr || id.type == wire::IdType::kIpv6Addr) return id.to_string();
  return std::string(id.data.begin(), id.data.end());
}

Payload eap_payload(Bytes message) { return {PayloadType::kEap, wire::EapPayload{std::move(message)}}; }

// AUTH after EAP (RFC 7296 §2.16): the PSK computation with the MSK as the key.
Payload msk_auth(const IkeSa& sa, bool initiator_side, ByteView msk, const Identity& id) {
  return {PayloadType::kAuth, wire::AuthPayload{wire::AuthMethod::kSharedKeyMic, psk_auth_value(sa, initiator_side, msk, id)}};
}

const wire::NotifyPayload* first_error(const std::vector<Payload>& payloads) {
  for (const auto& p : payloads)
    if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && wire::is_error(n->notify_type()))
      return n;
  return nullptr;
}

}  // namespace

std::optional<std::vector<Payload>> IkeAuthTask::build_request(IkeSa& sa, Services& s) {
  const auto& c = *sa.config;
  if (round_ == Round::kEap) return std::vector<Payload>{eap_payload(eap_out_)};
  if (round_ == Round::kEapAuth) return std::vector<Payload>{msk_auth(sa, true, eap_->msk(), c.local_id)};
  std::vector<Payload> out;
  out.push_back(id_payload(PayloadType::kIdi, c.local_id));
  std::vector<Payload> auth;
  // An EAP client sends no AUTH (and no certificate) until EAP has succeeded.
  if (!is_eap(c.local_auth)) {
    if (auto ok = add_own_auth(sa, c, true, auth); !ok) {
      s.log(LogLevel::kError, &sa, "cannot authenticate: " + ok.error());
      return std::nullopt;
    }
  }
  // CERT before CERTREQ and IDr, AUTH after them (RFC 7296 §1.2's order).
  for (auto& p : auth)
    if (p.type == PayloadType::kCert) out.push_back(std::move(p));
  if (c.remote_auth == AuthClass::kPubkey && c.send_certreq) add_certreq(c, out);
  // A pattern ("*@example.org") is what we accept, not a name the responder could be.
  if (c.remote_id && !c.remote_id->is_pattern()) out.push_back(id_payload(PayloadType::kIdr, *c.remote_id));
  for (auto& p : auth)
    if (p.type == PayloadType::kAuth) out.push_back(std::move(p));
  if (auto cp = config_request(c)) out.push_back(std::move(*cp));
  if (auto* m = s.mobility(); m && c.mobike) m->auth_payloads(sa, s, out);
  add_ha_claims(sa, s, out);
  if (!c.children.empty()) {
    child_config_ = &c.children.front();
    if (!spi_in_) spi_in_ = allocate_spi(s);
    // Asking for virtual IPs: whatever the gateway assigns, it narrows these to them.
    ts_local_ = dynamic_ts(child_config_->local_ts, c.vips, sa.extras().local_vips, sa.local.address);
    ts_remote_ = ts_from_config(child_config_->remote_ts, sa.remote.address);
    out.push_back({PayloadType::kSa, wire::SaPayload{esp_offer(*child_config_, spi_in_, false)}});
    out.push_back({PayloadType::kTsi, wire::TsPayload{ts_local_}});
    out.push_back({PayloadType::kTsr, wire::TsPayload{ts_remote_}});
  }
  return out;
}

TaskResult IkeAuthTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  const auto& c = *sa.config;
  if (wire::find_notify(payloads, NotifyType::kAuthenticationFailed)) {
    s.log(LogLevel::kWarn, &sa, "peer refused our authentication (AUTHENTICATION_FAILED)");
    return TaskResult::kFailed;
  }
  if (round_ == Round::kEap) return process_eap(sa, s, payloads);
  if (round_ == Round::kEapAuth) {
    auto* auth = wire::find_payload<wire::AuthPayload>(payloads, PayloadType::kAuth);
    if (!auth || auth->method != wire::AuthMethod::kSharedKeyMic ||
        !equal_ct(auth->data, psk_auth_value(sa, false, eap_->msk(), *sa.remote_id))) {
      s.log(LogLevel::kWarn, &sa, auth ? "the gateway's AUTH with the EAP MSK does not verify" : "no AUTH after EAP");
      return TaskResult::kFailed;
    }
    return finish(sa, s, payloads);
  }
  auto idr = identity_of(wire::find_payload<wire::IdPayload>(payloads, PayloadType::kIdr));
  auto* auth = wire::find_payload<wire::AuthPayload>(payloads, PayloadType::kAuth);
  if (!idr || !auth) {
    const auto* err = first_error(payloads);
    s.log(LogLevel::kWarn, &sa, std::string("IKE_AUTH failed: ") +
                                    (err ? std::string(wire::notify_name(err->type)) : "no IDr/AUTH"));
    return TaskResult::kFailed;
  }
  if (c.remote_id && !identity_matches(*idr, *c.remote_id)) {
    s.log(LogLevel::kWarn, &sa, "peer identity " + idr->to_string() + " does not match the configured " +
                                    c.remote_id->to_string());
    return TaskResult::kFailed;
  }
  if (auto ok = verify_peer_auth(sa, c, *idr, payloads); !ok) {
    s.log(LogLevel::kWarn, &sa, "AUTH of " + idr->to_string() + " refused: " + ok.error());
    return TaskResult::kFailed;
  } else {
    s.log(LogLevel::kInfo, &sa, "authenticated " + idr->to_string() + " by " + *ok);
  }
  sa.remote_id = idr;
  if (is_eap(c.local_auth)) {
    const std::string identity = c.eap_id.value_or(eap_identity_of(c.local_id));
    eap_ = std::make_unique<eap::Peer>(eap_type(c.local_auth), identity, eap_credentials(c, true), s.random());
    return process_eap(sa, s, payloads);
  }
  return finish(sa, s, payloads);
}

TaskResult IkeAuthTask::process_eap(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  auto* e = wire::find_payload<wire::EapPayload>(payloads, PayloadType::kEap);
  if (!e) {
    const auto* err = first_error(payloads);
    s.log(LogLevel::kWarn, &sa, std::string("IKE_AUTH failed: ") + (err ? std::string(wire::notify_name(err->type)) : "no EAP payload"));
    return TaskResult::kFailed;
  }
  eap::Step step = eap_->process(e->data);
  switch (step.outcome) {
    case eap::Outcome::kContinue:
      eap_out_ = std::move(step.message);
      round_ = Round::kEap;
      return TaskResult::kContinue;
    case eap::Outcome::kSuccess:
      if (std::string n = eap_->negotiated(); !n.empty())
        s.log(LogLevel::kInfo, &sa,
              std::string("EAP-") + eap::type_name(eap_type(sa.config->local_auth)) + ": negotiated " + n);
      s.log(LogLevel::kInfo, &sa, std::string("EAP-") + eap::type_name(eap_type(sa.config->local_auth)) + " succeeded as '" +
                                      sa.config->eap_id.value_or(eap_identity_of(sa.config->local_id)) + "'");
      round_ = Round::kEapAuth;
      return TaskResult::kContinue;
    case eap::Outcome::kFailure: break;
  }
  s.log(LogLevel::kWarn, &sa, "EAP failed: " + step.why);
  return TaskResult::kFailed;
}

TaskResult IkeAuthTask::finish(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  const auto& c = *sa.config;
  note_config_reply(sa, payloads);
  if (!c.vips.empty() && sa.extras().local_vips.empty()) {
    s.log(LogLevel::kWarn, &sa, "the gateway assigned no virtual IP");
    return TaskResult::kFailed;
  }
  for (const auto& v : sa.extras().local_vips) s.log(LogLevel::kInfo, &sa, "virtual IP " + v.to_string() + " assigned");
  note_ha_claims(sa, payloads);
  sa.mid_sync = c.ha_sync && sa.peer_mid_sync;
  sa.replay_sync = c.ha_sync && sa.peer_replay_sync;
  if (auto* m = s.mobility(); m && c.mobike) m->auth_received(sa, s, payloads);
  mark_established(sa, s);
  const ForgetAuthMaterial forget(sa);

  if (!child_config_) return TaskResult::kDone;
  const ChildConfig& cc = *child_config_;
  if (const auto* err = first_error(payloads)) {
    s.log(LogLevel::kWarn, &sa, "Child SA '" + cc.name + "' refused: " + std::string(wire::notify_name(err->type)));
    s.event(EventKind::kChildFailed, sa, 0, cc.name);
    return TaskResult::kDone;
  }
  auto* sa_p = wire::find_payload<wire::SaPayload>(payloads, PayloadType::kSa);
  auto* tsi = wire::find_payload<wire::TsPayload>(payloads, PayloadType::kTsi);
  auto* tsr = wire::find_payload<wire::TsPayload>(payloads, PayloadType::kTsr);
  bool ok = sa_p && tsi && tsr && sa_p->proposals.size() == 1 &&
            sa_p->proposals[0].protocol == wire::ProtocolId::kEsp && sa_p->proposals[0].spi.size() == 4 &&
            proposal_acceptable(sa_p->proposals[0], esp_offer(cc, 0, false)) &&
            ts_subset(tsi->selectors, ts_local_) && ts_subset(tsr->selectors, ts_remote_) &&
            !tsi->selectors.empty() && !tsr->selectors.empty();
  if (!ok) {
    s.log(LogLevel::kWarn, &sa, "Child SA '" + cc.name + "': response not acceptable");
    s.event(EventKind::kChildFailed, sa, 0, cc.name);
    return TaskResult::kDone;
  }
  ChildSa child;
  child.id = s.next_child_id();
  child.name = cc.name;
  child.spi_in = spi_in_;
  child.spi_out = spi_from_bytes(sa_p->proposals[0].spi);
  child.proposal = sa_p->proposals[0];
  child.local_ts = tsi->selectors;
  child.remote_ts = tsr->selectors;
  if (!derive_child_keys(sa, child, {}, sa.setup().nonce_i, sa.setup().nonce_r, true)) {
    s.event(EventKind::kChildFailed, sa, 0, cc.name);
    return TaskResult::kDone;
  }
  sa.children.push_back(std::move(child));
  install_child(sa, sa.children.back(), s, &cc);
  return TaskResult::kDone;
}

namespace {
AuthResponse complete_ike_auth(IkeSa& sa, Services& s, const std::vector<Payload>& request,
                               std::vector<Payload> own_auth, bool send_idr);
AuthResponse continue_eap(IkeSa& sa, Services& s, const std::vector<Payload>& request);
}  // namespace

AuthResponse respond_ike_auth(IkeSa& sa, Services& s, const std::vector<Payload>& request) {
  AuthResponse r;
  auto idi = identity_of(wire::find_payload<wire::IdPayload>(request, PayloadType::kIdi));
  auto idr_req = identity_of(wire::find_payload<wire::IdPayload>(request, PayloadType::kIdr));
  auto* auth = wire::find_payload<wire::AuthPayload>(request, PayloadType::kAuth);
  auto refuse = [&](const std::string& why) {
    s.log(LogLevel::kWarn, &sa, "IKE_AUTH refused: " + why);
    r.payloads = {wire::make_notify(NotifyType::kAuthenticationFailed)};
    r.failed = true;
    return r;
  };
  if (sa.eap) return continue_eap(sa, s, request);
  if (!idi) return refuse("no IDi");
  // Pick the connection by identities among those the addresses allow.
  const ConnectionConfig* cfg = nullptr;
  for (const auto* c : s.connections()) {
    if (!remote_address_allowed(*c, sa.remote.address) || !local_address_allowed(*c, sa.local.address))
      continue;
    if (c->remote_id && !identity_matches(*idi, *c->remote_id)) continue;
    if (idr_req && !identity_matches(c->local_id, *idr_req)) continue;
    if (auth ? !auth_method_fits(c->remote_auth, auth->method) : !is_eap(c->remote_auth)) continue;
    if (!proposal_acceptable(sa.ike_proposal, c->ike_proposals)) continue;
    cfg = c;
    break;
  }
  if (!cfg) return refuse("no connection for peer identity " + idi->to_string() + (auth ? "" : " with EAP"));
  sa.config = cfg;
  sa.connection_name = cfg->name;
  note_peer_auth_payloads(sa, request);
  if (auth) {
    if (auto ok = verify_peer_auth(sa, *cfg, *idi, request); !ok)
      return refuse("AUTH of " + idi->to_string() + ": " + ok.error());
    else
      s.log(LogLevel::kInfo, &sa, "authenticated " + idi->to_string() + " by " + *ok);
  }
  std::vector<Payload> own_auth;
  if (auto ok = add_own_auth(sa, *cfg, false, own_auth); !ok) return refuse("cannot authenticate: " + ok.error());
  sa.remote_id = idi;
  if (!auth) {
    // EAP: we authenticate now, the client once EAP has succeeded. Without a configured
    // EAP identity the IKE one serves; "%any" asks for it with EAP-Identity.
    std::optional<std::string> eap_id = eap_identity_of(*idi);
    if (cfg->eap_id) eap_id = *cfg->eap_id == "%any" ? std::nullopt : cfg->eap_id;
    auto session = std::make_unique<EapSession>();
    session->server =
        std::make_unique<eap::Server>(eap_type(cfg->remote_auth), eap_id, eap_credentials(*cfg, false), s.random());
    session->first_request = request;
    session->peer_id = *idi;
    r.payloads.push_back(id_payload(PayloadType::kIdr, cfg->local_id));
    for (auto& p : own_auth) r.payloads.push_back(std::move(p));
    r.payloads.push_back(eap_payload(session->server->start()));
    r.pending = true;
    sa.eap = std::move(session);
    return r;
  }
  return complete_ike_auth(sa, s, request, std::move(own_auth), true);
}

namespace {

// What the responder sends once the client is authenticated: our identity and AUTH
// (unless sent in an earlier round), the configuration reply, MOBIKE and RFC 6311
// notifies, and the first Child SA, all for the first request of the exchange.
AuthResponse complete_ike_auth(IkeSa& sa, Services& s, const std::vector<Payload>& request,
                               std::vector<Payload> own_auth, bool send_idr) {
  AuthResponse r;
  const ConnectionConfig* cfg = sa.config;
  note_ha_claims(sa, request);
  auto* mobility = cfg->mobike ? s.mobility() : nullptr;
  if (auto error = mobility ? mobility->auth_refusal(sa, s, request) : std::nullopt) {
    s.log(LogLevel::kWarn, &sa, "IKE_AUTH refused: " + std::string(wire::notify_name(static_cast<std::uint16_t>(*error))));
    r.payloads = {wire::make_notify(*error)};
    r.failed = true;
    return r;
  }
  if (mobility) mobility->auth_received(sa, s, request);

  if (send_idr) r.payloads.push_back(id_payload(PayloadType::kIdr, cfg->local_id));
  for (auto& p : own_auth) r.payloads.push_back(std::move(p));
  if (auto cp = respond_config_request(sa, s, request)) r.payloads.push_back(std::move(*cp));
  if (mobility && sa.peer_mobike) mobility->auth_payloads(sa, s, r.payloads);
  add_ha_claims(sa, s, r.payloads);
  mark_established(sa, s);
  const ForgetAuthMaterial forget(sa);

  if (wire::find_payload<wire::SaPayload>(request, PayloadType::kSa)) {
    const ChildConfig* cc = nullptr;
    auto child = respond_child(sa, s, request, r.payloads, &cc, false);
    if (child && derive_child_keys(sa, *child, {}, sa.setup().nonce_i, sa.setup().nonce_r, false)) {
      sa.children.push_back(std::move(*child));
      install_child(sa, sa.children.back(), s, cc);
    } else {
      s.event(EventKind::kChildFailed, sa, 0, cc ? cc->name : "");
    }
  }
  return r;
}

AuthResponse continue_eap(IkeSa& sa, Services& s, const std::vector<Payload>& request) {
  AuthResponse r;
  EapSession& e = *sa.eap;
  auto fail = [&](const std::string& why, Bytes eap_message) {
    s.log(LogLevel::kWarn, &sa, "IKE_AUTH refused: " + why);
    if (!eap_message.empty())
      r.payloads.push_back(eap_payload(std::move(eap_message)));
    else
      r.payloads.push_back(wire::make_notify(NotifyType::kAuthenticationFailed));
    r.failed = true;
    return r;
  };
  const char* method = eap::type_name(e.server->method_type());
  if (!e.succeeded) {
    auto* in = wire::find_payload<wire::EapPayload>(request, PayloadType::kEap);
    if (!in) return fail("expected an EAP payload", {});
    eap::Step step = e.server->process(in->data);
    switch (step.outcome) {
      case eap::Outcome::kContinue: break;
      case eap::Outcome::kSuccess:
        e.succeeded = true;
        sa.remote_eap_id = e.server->identity();
        if (std::string n = e.server->negotiated(); !n.empty())
          s.log(LogLevel::kInfo, &sa, std::string("EAP-") + method + ": negotiated " + n);
        s.log(LogLevel::kInfo, &sa, std::string("EAP-") + method + " authenticated '" + sa.remote_eap_id + "'");
        break;
      case eap::Outcome::kFailure:
        return fail(std::string("EAP-") + method + ": " + step.why, std::move(step.message));
    }
    r.payloads.push_back(eap_payload(std::move(step.message)));
    r.pending = true;
    return r;
  }
  auto* auth = wire::find_payload<wire::AuthPayload>(request, PayloadType::kAuth);
  if (!auth) return fail("no AUTH after EAP", {});
  if (auth->method != wire::AuthMethod::kSharedKeyMic ||
      !equal_ct(auth->data, psk_auth_value(sa, true, e.server->msk(), e.peer_id)))
    return fail("the AUTH of " + e.peer_id.to_string() + " with the EAP MSK does not verify", {});
  s.log(LogLevel::kInfo, &sa, "authenticated " + e.peer_id.to_string() + " by EAP-" + method + " as '" + sa.remote_eap_id + "'");
  std::vector<Payload> own{msk_auth(sa, false, e.server->msk(), sa.config->local_id)};
  // The session goes (and its MSK with it) before the Child SA is made.
  std::vector<Payload> first = std::move(e.first_request);
  sa.eap.reset();
  return complete_ike_auth(sa, s, first, std::move(own), false);
}

}  // namespace

}  // namespace mobike::ike
