#include "ike/child_sa.h"

#include <algorithm>
#include <chrono>
#include <tuple>

#include "crypto/key_derivation.h"
#include "crypto/sk_cipher.h"
#include "ike/proposal_select.h"
#include "ike/traffic_selector.h"

namespace mobike::ike {

using wire::TransformType;

std::uint32_t allocate_spi(Services& s) {
  std::uint32_t spi = 0;
  // SPIs below 256 are reserved (RFC 4303 §2.1).
  while (spi < 256) spi = static_cast<std::uint32_t>(s.random().u64());
  return spi;
}

std::uint32_t spi_from_bytes(ByteView b) {
  if (b.size() != 4) return 0;
  return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3];
}

Bytes spi_bytes(std::uint32_t spi) {
  return {static_cast<std::uint8_t>(spi >> 24), static_cast<std::uint8_t>(spi >> 16),
          static_cast<std::uint8_t>(spi >> 8), static_cast<std::uint8_t>(spi)};
}

std::vector<wire::Proposal> esp_offer(const ChildConfig& child, std::uint32_t spi_in, bool with_pfs) {
  auto out = child.esp_proposals;
  for (auto& p : out) {
    p.spi = spi_bytes(spi_in);
    // No key exchange in IKE_AUTH (RFC 7296 §1.2): the first Child SA takes its keys
    // from the IKE SA, so its proposals carry no DH transform.
    if (!with_pfs)
      std::erase_if(p.transforms, [](const wire::Transform& t) { return t.type == TransformType::kDh; });
  }
  return out;
}

std::uint16_t pfs_group(const ChildConfig& child) {
  for (const auto& p : child.esp_proposals)
    if (auto g = transform_id(p, TransformType::kDh)) return g;
  return 0;
}

namespace {

std::size_t esp_encr_key_size(std::uint16_t encr, std::uint16_t bits) {
  crypto::SkSuite s;
  s.encr = static_cast<crypto::EncrId>(encr);
  s.key_bits = bits ? bits : 256;
  return crypto::encr_key_size(s);
}

}  // namespace

bool derive_child_keys(const IkeSa& sa, ChildSa& child, ByteView shared, ByteView ni, ByteView nr,
                       bool we_initiated) {
  auto& k = child.keys;
  k.encr_id = transform_id(child.proposal, TransformType::kEncr);
  k.encr_key_bits = key_bits(child.proposal);
  if (k.encr_id == static_cast<std::uint16_t>(crypto::EncrId::kChaCha20Poly1305) && !k.encr_key_bits)
    k.encr_key_bits = 256;
  k.integ_id = transform_id(child.proposal, TransformType::kInteg);
  k.esn = transform_id(child.proposal, TransformType::kEsn) == 1;
  std::size_t ek = esp_encr_key_size(k.encr_id, k.encr_key_bits);
  std::size_t ak = crypto::integ_key_size(static_cast<crypto::IntegId>(k.integ_id));
  if (ek == 0) return false;
  Bytes keymat = crypto::child_keymat(*sa.crypto.prf, sa.crypto.sk_d, shared, ni, nr, 2 * (ek + ak));
  auto at = keymat.begin();
  Bytes ei(at, at + ek), ai(at + ek, at + ek + ak);
  at += ek + ak;
  Bytes er(at, at + ek), ar(at + ek, at + ek + ak);
  // The first half protects initiator -> responder traffic of this exchange.
  if (we_initiated) {
    k.encr_out = std::move(ei), k.integ_out = std::move(ai);
    k.encr_in = std::move(er), k.integ_in = std::move(ar);
  } else {
    k.encr_in = std::move(ei), k.integ_in = std::move(ai);
    k.encr_out = std::move(er), k.integ_out = std::move(ar);
  }
  return true;
}

DataplaneOp dataplane_op(DataplaneOp::Kind kind, const IkeSa& sa, const ChildSa& child) {
  DataplaneOp op;
  op.kind = kind;
  op.ike_sa_id = sa.id;
  op.child_sa_id = child.id;
  op.spi_in = child.spi_in;
  op.spi_out = child.spi_out;
  op.local = sa.local;
  op.remote = sa.remote;
  op.udp_encap = sa.nat_local || sa.nat_remote;
  return op;
}

namespace {

// The hard limit (`life`, default soft + 10%) and the soft one less up to a tenth, so
// that Child SAs made together (a gateway's clients) do not all rekey at once.
std::pair<std::uint64_t, std::uint64_t> volume_limits(std::uint64_t rekey, std::uint64_t life, crypto::Random& random) {
  if (rekey == 0) return {0, life};
  if (life == 0) life = rekey + rekey / 10;
  std::uint64_t spread = std::min(rekey / 10, life > rekey ? life - rekey : 0);
  return {rekey - random.u64() % (spread + 1), life};
}

std::uint64_t seconds_until(TimePoint t, TimePoint now) {
  if (t == TimePoint::max()) return 0;
  if (t <= now) return 1;
  // Rounded up: the engine's own timer should come first.
  return static_cast<std::uint64_t>((std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 999) / 1000);
}

}  // namespace

ChildLimits child_limits(const ChildConfig& config, const ChildSa& child, Services& s) {
  ChildLimits l;
  std::tie(l.soft_bytes, l.hard_bytes) = volume_limits(config.rekey_bytes, config.life_bytes, s.random());
  std::tie(l.soft_packets, l.hard_packets) = volume_limits(config.rekey_packets, config.life_packets, s.random());
  l.soft_seconds = seconds_until(child.rekey_at, s.now());
  l.hard_seconds = seconds_until(child.expire_at, s.now());
  return l;
}

void install_child(IkeSa& sa, ChildSa& child, Services& s, const ChildConfig* config, bool defer_outbound) {
  child.state = ChildState::kInstalled;
  child.established = s.now();
  child.config = config;
  if (config && config->rekey_time.count() > 0) {
    // Spread rekeys a little so that many SAs made at once do not rekey at once.
    auto jitter = Duration(static_cast<Duration::rep>(s.random().u64() % (config->rekey_time.count() / 10 + 1)));
    child.rekey_at = s.now() + config->rekey_time - jitter;
  }
  if (config && config->lifetime.count() > 0)
    child.expire_at = s.now() + config->lifetime;
  else if (config && config->rekey_time.count() > 0)
    child.expire_at = s.now() + config->rekey_time * 11 / 10;
  DataplaneOp op = dataplane_op(DataplaneOp::Kind::kInstall, sa, child);
  op.local_ts = child.local_ts;
  op.remote_ts = child.remote_ts;
  op.keys = child.keys;
  if (config) op.limits = child_limits(*config, child, s);
  op.outbound_deferred = defer_outbound;
  op.virtual_ips = sa.extras().local_vips;
  child.outbound_deferred = defer_outbound;
  s.dataplane(std::move(op));
  s.stats().child_established++;
  s.event(EventKind::kChildEstablished, sa, child.id, child.name);
}

void activate_outbound(const IkeSa& sa, ChildSa& child, Services& s) {
  if (!child.outbound_deferred) return;
  child.outbound_deferred = false;
  s.dataplane(dataplane_op(DataplaneOp::Kind::kActivateOutbound, sa, child));
}

void emit_child_delete(const IkeSa& sa, const ChildSa& child, Services& s) {
  s.dataplane(dataplane_op(DataplaneOp::Kind::kDelete, sa, child));
  s.event(EventKind::kChildDeleted, sa, child.id, child.name);
}

using wire::NotifyType;
using wire::Payload;
using wire::PayloadType;

std::optional<ChildSa> respond_child(IkeSa& sa, Services& s, const std::vector<Payload>& request,
                                     std::vector<Payload>& response, const ChildConfig** config_out,
                                     bool with_pfs, const ChildSa* rekeyed) {
  auto* sa_p = wire::find_payload<wire::SaPayload>(request, PayloadType::kSa);
  auto* tsi = wire::find_payload<wire::TsPayload>(request, PayloadType::kTsi);
  auto* tsr = wire::find_payload<wire::TsPayload>(request, PayloadType::kTsr);
  if (!sa_p || !tsi || !tsr) {
    response.push_back(wire::make_notify(NotifyType::kInvalidSyntax));
    return std::nullopt;
  }
  const ChildConfig* chosen_cfg = nullptr;
  TsList narrowed_i, narrowed_r;
  for (const auto& cc : sa.config->children) {
    // TSi is the initiator's side: our remote selectors; TSr is ours.
    // Without configured remote selectors the peer's own address is meant; behind a NAT
    // we only know its translated one, so accept the single host it offers instead.
    TsList allowed_remote = ts_from_config(cc.remote_ts, sa.remote.address);
    if (cc.remote_ts.empty() && !sa.remote_vips.empty()) {
      // "dynamic" for a client with virtual IPs: those addresses, not its outer one.
      allowed_remote.clear();
      for (const auto& v : sa.remote_vips) {
        auto host = ts_from_config({}, v);
        allowed_remote.insert(allowed_remote.end(), host.begin(), host.end());
      }
    } else if (cc.remote_ts.empty() && sa.nat_remote) {
      allowed_remote.clear();
      for (const auto& t : tsi->selectors)
        if (t.start_address == t.end_address) allowed_remote.push_back(t);
    }
    // Ours: a client's virtual IPs once it has them (a gateway starting a Child SA).
    TsList allowed_local = dynamic_ts(cc.local_ts, {}, sa.extras().local_vips, sa.local.address);
    if (rekeyed && rekeyed->config == &cc) {
      // A rekey keeps the selectors of the SA it replaces (RFC 7296 §2.9.2), even when
      // they came from IKE addresses that MOBIKE has moved since.
      allowed_remote = rekeyed->remote_ts;
      allowed_local = rekeyed->local_ts;
    }
    auto ni = narrow(tsi->selectors, allowed_remote);
    auto nr = narrow(tsr->selectors, allowed_local);
    if (!ni.empty() && !nr.empty()) {
      chosen_cfg = &cc;
      narrowed_i = std::move(ni);
      narrowed_r = std::move(nr);
      break;
    }
  }
  if (!chosen_cfg) {
    s.log(LogLevel::kInfo, &sa, "no child config matches the proposed traffic selectors");
    response.push_back(wire::make_notify(NotifyType::kTsUnacceptable));
    return std::nullopt;
  }
  auto proposal = select_proposal(sa_p->proposals, esp_offer(*chosen_cfg, 0, with_pfs));
  if (!proposal || proposal->spi.size() != 4) {
    s.log(LogLevel::kInfo, &sa, "no acceptable ESP proposal for '" + chosen_cfg->name + "'");
    response.push_back(wire::make_notify(NotifyType::kNoProposalChosen));
    return std::nullopt;
  }
  ChildSa child;
  child.id = s.next_child_id();
  child.name = chosen_cfg->name;
  child.spi_out = spi_from_bytes(proposal->spi);
  child.spi_in = allocate_spi(s);
  proposal->spi = spi_bytes(child.spi_in);
  child.proposal = *proposal;
  child.local_ts = narrowed_r;
  child.remote_ts = narrowed_i;
  response.push_back({PayloadType::kSa, wire::SaPayload{{*proposal}}});
  response.push_back({PayloadType::kTsi, wire::TsPayload{narrowed_i}});
  response.push_back({PayloadType::kTsr, wire::TsPayload{narrowed_r}});
  *config_out = chosen_cfg;
  return child;
}

}  // namespace mobike::ike
