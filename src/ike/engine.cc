#include "ike/engine.h"

#include <algorithm>
#include <cmath>

#include "crypto/prf.h"
#include "ike/child_sa.h"
#include "ike/create_child.h"
#include "ike/fragmentation.h"
#include "ike/ike_rekey.h"
#include "ike/ike_auth.h"
#include "ike/ike_init.h"
#include "ike/informational.h"
#include "ike/protection.h"
#include "ike/task.h"
#include "wire/codec.h"

namespace mobike::ike {

using wire::ExchangeType;
using wire::NotifyType;

static std::uint64_t fresh_spi(crypto::Random& r, const std::unordered_map<std::uint64_t, std::unique_ptr<IkeSa>>& used) {
  for (;;) {
    auto spi = r.u64();
    if (spi && !used.count(spi)) return spi;
  }
}

std::string LogRecord::line() const {
  std::string out;
  if (sa) out = "[" + sa->connection_name + "|" + std::to_string(sa->id) + "] ";
  out += message;
  return out;
}

Engine::Engine(EngineConfig config, crypto::Random& random, LogSink log)
    : Engine(config, random,
             log ? LogRecordSink([log = std::move(log)](const LogRecord& r) { log(r.level, r.line()); })
                 : LogRecordSink()) {}

Engine::Engine(EngineConfig config, crypto::Random& random, LogRecordSink log)
    : config_(config), random_(random), log_(std::move(log)) {
  cookie_secret_ = random_.bytes(32);
}

Engine::~Engine() = default;

void Engine::set_connections(std::vector<ConnectionConfig> connections) {
  // SAs point at their ConnectionConfig: keep the old objects alive for them.
  for (auto& c : connections_) retired_connections_.push_back(std::move(c));
  connections_.clear();
  for (auto& c : connections) connections_.push_back(std::make_unique<ConnectionConfig>(std::move(c)));
}

void Engine::set_pools(std::vector<PoolConfig> pools) {
  std::map<std::string, std::unique_ptr<AddressPool>> next;
  for (auto& p : pools) {
    auto pool = std::make_unique<AddressPool>(std::move(p));
    if (auto it = pools_.find(pool->config().name); it != pools_.end()) pool->adopt_leases(*it->second);
    next[pool->config().name] = std::move(pool);
  }
  pools_ = std::move(next);
}

AddressPool* Engine::pool(const std::string& name) {
  auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : it->second.get();
}

std::vector<const ConnectionConfig*> Engine::connections() const {
  std::vector<const ConnectionConfig*> out;
  for (const auto& c : connections_) out.push_back(c.get());
  return out;
}

void Engine::event(EventKind kind, const IkeSa& sa, std::uint64_t child_id, std::string detail) {
  Event e{kind, sa.id, child_id, sa.connection_name, std::move(detail)};
  if (kind == EventKind::kIkeRekeyed) {
    // Services::event's id argument names the replaced IKE SA for this kind.
    e.replaces = child_id;
    e.child_sa_id = 0;
  }
  out_events_.push_back(std::move(e));
}

void Engine::log(LogLevel level, const IkeSa* sa, std::string message) {
  if (!log_) return;
  log_(LogRecord{level, message, sa});
}

IkeSa& Engine::create_sa(bool initiator, std::uint64_t spi_i, std::uint64_t spi_r) {
  auto sa = std::make_unique<IkeSa>();
  sa->id = ++last_ike_id_;
  sa->initiator = initiator;
  sa->original_initiator = initiator;
  sa->spi_i = spi_i;
  sa->spi_r = spi_r;
  sa->created = now_;
  sa->last_inbound = now_;
  IkeSa& ref = *sa;
  by_id_[ref.id] = &ref;
  by_spi_[ref.local_spi()] = std::move(sa);
  return ref;
}

std::uint64_t Engine::fresh_ike_spi() { return fresh_spi(random_, by_spi_); }

IkeSa* Engine::find_sa(std::uint64_t id) {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

IkeSa& Engine::spawn_rekeyed(IkeSa& old, bool initiator, std::uint64_t spi_i, std::uint64_t spi_r) {
  IkeSa& sa = create_sa(initiator, spi_i, spi_r);
  sa.original_initiator = old.original_initiator;
  sa.config = old.config;
  sa.connection_name = old.connection_name;
  sa.local = old.local;
  sa.remote = old.remote;
  sa.nat_local = old.nat_local;
  sa.nat_remote = old.nat_remote;
  sa.peer_mobike = old.peer_mobike;
  sa.peer_nat_d = old.peer_nat_d;
  // RFC 7383 support is the peer's, agreed once in IKE_SA_INIT: it stays with the rekeyed SA.
  sa.peer_fragmentation = old.peer_fragmentation;
  sa.fragmentation = old.fragmentation;
  // RFC 6311's capabilities belong to the IKE SA, rekeyed or not.
  sa.peer_mid_sync = old.peer_mid_sync;
  sa.peer_replay_sync = old.peer_replay_sync;
  sa.mid_sync = old.mid_sync;
  sa.replay_sync = old.replay_sync;
  sa.remote_id = old.remote_id;
  sa.remote_eap_id = old.remote_eap_id;
  // The new SA holds the peer's virtual IPs too; the old one lets go when it ends.
  sa.remote_vips = old.remote_vips;
  if (const IkeSaExtras& e = old.extras(); !e.local_vips.empty() || !e.dns_servers.empty() || !e.dns_domains.empty()) {
    IkeSaExtras& n = sa.edit_extras();
    n.local_vips = e.local_vips;
    n.dns_servers = e.dns_servers;
    n.dns_domains = e.dns_domains;
  }
  for (const auto& a : sa.remote_vips)
    for (auto& [name, pool] : pools_)
      if (pool->contains(a)) pool->retain(a);
  if (mobility_) mobility_->inherit(old, sa);
  sa.state = IkeState::kEstablished;
  sa.established_at = now_;
  arm_lifetimes(sa);
  reschedule(sa);
  return sa;
}

void Engine::arm_lifetimes(IkeSa& sa) {
  const auto& c = *sa.config;
  sa.expire_at = TimePoint::max();
  if (c.rekey_time.count() > 0) {
    auto jitter = Duration(static_cast<Duration::rep>(random_.u64() % (c.rekey_time.count() / 10 + 1)));
    sa.rekey_at = now_ + c.rekey_time - jitter;
    sa.expire_at = now_ + (c.lifetime.count() > 0 ? c.lifetime : c.rekey_time * 11 / 10);
  }
  if (c.dpd_delay.count() > 0) sa.dpd_at = now_ + c.dpd_delay;
  if (sa.nat_local) sa.keepalive_at = now_ + config_.keepalive_interval;
}

IkeSa* Engine::find_by_spi(std::uint64_t spi) {
  auto it = by_spi_.find(spi);
  return it == by_spi_.end() ? nullptr : it->second.get();
}

const IkeSa* Engine::find_ike_sa(std::uint64_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}


const ConnectionConfig* Engine::connection_for(const Endpoint& local, const Endpoint& remote) const {
  for (const auto& c : connections_)
    if (remote_address_allowed(*c, remote.address) && local_address_allowed(*c, local.address))
      return c.get();
  return nullptr;
}

// ---------------------------------------------------------------- input

void Engine::on_datagram(const Endpoint& local, const Endpoint& remote, ByteView data, TimePoint now) {
  now_ = now;
  stats_.datagrams_in++;
  auto m = wire::decode_message(data);
  if (!m) {
    stats_.dropped_malformed++;
    // An unprotected IKE_SA_INIT request gets the answer RFC 7296 asks for; anything
    // else malformed is dropped silently (it may be forged).
    // The header fields the answer needs, read directly: decode_header refuses a
    // header of another major version.
    struct {
      std::uint64_t spi_i = 0;
      ExchangeType exchange{};
      bool response = true;
      std::uint32_t message_id = 1;
    } raw, *h = nullptr;
    if (data.size() >= wire::kHeaderSize) {
      for (int i = 0; i < 8; ++i) raw.spi_i = raw.spi_i << 8 | data[i];
      raw.exchange = static_cast<ExchangeType>(data[18]);
      raw.response = data[19] & wire::kFlagResponse;
      raw.message_id = std::uint32_t{data[20]} << 24 | std::uint32_t{data[21]} << 16 | std::uint32_t{data[22]} << 8 | data[23];
      h = &raw;
    }
    if (h && h->exchange == ExchangeType::kIkeSaInit && !h->response && h->message_id == 0) {
      NotifyType t = NotifyType::kInvalidSyntax;
      Bytes notify_data;
      if (m.error().kind == wire::DecodeErrorKind::kUnsupportedCriticalPayload) {
        t = NotifyType::kUnsupportedCriticalPayload;
        notify_data = {m.error().payload_type};
      } else if (m.error().kind == wire::DecodeErrorKind::kInvalidMajorVersion) {
        t = NotifyType::kInvalidMajorVersion;
      } else {
        return;
      }
      IkeSa tmp;
      tmp.spi_i = h->spi_i;
      Bytes resp = build_message(tmp, ExchangeType::kIkeSaInit, true, 0, {wire::make_notify(t, notify_data)}, random_);
      out_datagrams_.push_back({OutDatagram::Kind::kIke, local, remote, std::move(resp)});
      stats_.datagrams_out++;
    }
    log(LogLevel::kDebug, nullptr, "dropped malformed datagram from " + remote.to_string() + ": " + m.error().detail);
    return;
  }
  const auto& h = m->header;
  if (h.exchange == ExchangeType::kIkeSaInit && !h.is_response()) {
    if (h.spi_r != 0 || h.message_id != 0) {
      stats_.dropped_unexpected++;
    } else {
      handle_init_request(local, remote, *m, data);
    }
  } else {
    std::uint64_t ours = h.from_original_initiator() ? h.spi_r : h.spi_i;
    IkeSa* sa = find_by_spi(ours);
    std::uint64_t theirs = h.from_original_initiator() ? h.spi_i : h.spi_r;
    std::uint64_t known = sa ? (sa->initiator ? sa->spi_r : sa->spi_i) : 0;
    bool init_response = sa && h.exchange == ExchangeType::kIkeSaInit && known == 0;
    if (!sa || sa->state == IkeState::kDead || (!init_response && theirs != known) ||
        h.from_original_initiator() == sa->initiator) {
      stats_.dropped_unknown_spi++;
    } else if (sa->handoff == Handoff::kExported && sa->relaying && h.is_response() && sa->active &&
               h.message_id == sa->active_mid) {
      // The answer to the request we relay for the new owner.
      handle_response(*sa, local, remote, *m, data);
      if (!sa->active) sa->handoff_answered = true;
    } else if (sa->handoff == Handoff::kExported) {
      handed_over(*sa, *m, data);
    } else if (h.is_response()) {
      handle_response(*sa, local, remote, *m, data);
    } else if (h.exchange == ExchangeType::kInformational && h.message_id == 0 && sa->state != IkeState::kConnecting &&
               handle_mid_sync(*sa, local, remote, *m, data)) {
      // RFC 6311: synchronisation requests all carry Message ID 0.
    } else {
      handle_request(*sa, local, remote, *m, data);
    }
    if (sa && sa->state != IkeState::kDead) reschedule(*sa);
  }
  reap();
}

Bytes Engine::cookie_for(const wire::Message& m, const Endpoint& remote) const {
  auto* nonce = wire::find_payload<wire::NoncePayload>(m.payloads, wire::PayloadType::kNonce);
  Bytes input;
  if (nonce) append(input, nonce->data);
  append(input, remote.address.bytes());
  for (int i = 7; i >= 0; --i) input.push_back(static_cast<std::uint8_t>(m.header.spi_i >> (i * 8)));
  return crypto::Prf(crypto::PrfId::kHmacSha256).compute(cookie_secret_, input);
}

bool Engine::cookie_required(const wire::Message& m, const Endpoint& remote) {
  if (half_open_ < config_.half_open_threshold) return false;
  // RFC 7296 §2.6: the cookie must be the first payload.
  if (!m.payloads.empty())
    if (auto* n = std::get_if<wire::NotifyPayload>(&m.payloads.front().body);
        n && n->notify_type() == NotifyType::kCookie && equal_ct(n->data, cookie_for(m, remote)))
      return false;
  return true;
}

void Engine::handle_init_request(const Endpoint& local, const Endpoint& remote, const wire::Message& m,
                                 ByteView data) {
  auto key = std::make_pair(m.header.spi_i, remote);
  if (auto it = init_index_.find(key); it != init_index_.end()) {
    if (IkeSa* sa = find_by_spi(it->second); sa && !sa->last_response.empty()) {
      stats_.retransmits_answered++;
      send_all(*sa, local, remote, sa->last_response.datagrams(*sa));
    }
    return;
  }
  IkeSa stateless;
  stateless.spi_i = m.header.spi_i;
  if (cookie_required(m, remote)) {
    stats_.cookies_sent++;
    send(stateless, local, remote,
         build_message(stateless, ExchangeType::kIkeSaInit, true, 0,
                       {wire::make_notify(NotifyType::kCookie, cookie_for(m, remote))}, random_));
    return;
  }
  const ConnectionConfig* cfg = connection_for(local, remote);
  if (!cfg) {
    log(LogLevel::kInfo, nullptr, "no connection for IKE_SA_INIT from " + remote.to_string());
    send(stateless, local, remote,
         build_message(stateless, ExchangeType::kIkeSaInit, true, 0,
                       {wire::make_notify(NotifyType::kNoProposalChosen)}, random_));
    return;
  }
  IkeSa& sa = create_sa(false, m.header.spi_i, fresh_spi(random_, by_spi_));
  sa.config = cfg;
  sa.connection_name = cfg->name;
  sa.local = local;
  sa.remote = remote;
  sa.setup().init_request.assign(data.begin(), data.end());
  sa.expire_at = now_ + config_.half_open_timeout;
  sa.half_open = true;
  half_open_++;
  auto r = respond_ike_sa_init(sa, *this, m.payloads);
  if (!r.ok) {
    // Error answers to IKE_SA_INIT keep no state and carry a zero responder SPI.
    send(stateless, local, remote,
         build_message(stateless, ExchangeType::kIkeSaInit, true, 0, r.payloads, random_));
    kill(sa, false, "");
    return;
  }
  Bytes resp = build_message(sa, ExchangeType::kIkeSaInit, true, 0, r.payloads, random_);
  sa.setup().init_response = resp;
  sa.last_response.keep_sealed({resp});
  stats_.exchanges[exchange_index(ExchangeType::kIkeSaInit)].responded++;
  sa.last_request_hash = request_hash(data);
  sa.expected_peer_mid = 1;
  init_index_[key] = sa.local_spi();
  sa.init_remote = remote;
  send(sa, local, remote, std::move(resp));
  reschedule(sa);
}

void Engine::handle_request(IkeSa& sa, const Endpoint& local, const Endpoint& remote, const wire::Message& m,
                            ByteView data) {
  std::uint32_t mid = m.header.message_id;
  std::uint64_t this_hash = request_hash(data);
  const auto* fragment = fragment_of(m);
  if (sa.expected_peer_mid > 0 && mid == sa.expected_peer_mid - 1 && !sa.last_response.empty()) {
    // RFC 7383 §2.6.1: of a retransmitted fragmented request only fragment 1 is
    // answered (its hash was kept), else one retransmission would be answered per fragment.
    if (fragment && fragment->fragment_number != 1) {
      stats_.dropped_fragment++;
      return;
    }
    if (this_hash != sa.last_request_hash) {
      stats_.dropped_bad_message_id++;
      return;
    }
    // A retransmission: answer from the cache (RFC 7296 §2.1), to where it came from —
    // or where the first answer went (a switch request answered towards the new
    // address), as long as the SA still uses that address: once it fell back, an answer
    // sent there would never arrive.
    stats_.retransmits_answered++;
    bool redirect = sa.last_response_redirected && sa.last_response_to == sa.remote;
    send_all(sa, local, redirect ? sa.last_response_to : remote, sa.last_response.datagrams(sa));
    return;
  }
  if (mid != sa.expected_peer_mid) {
    stats_.dropped_bad_message_id++;
    return;
  }
  auto opened = fragment ? take_fragment(sa, sa.reassembly_request, m, data) : open_message(sa, m, data);
  if (fragment) {
    // Until the last fragment is in, there is nothing to process (or the fragment was
    // dropped and counted); then the message is the whole one and so is its identity.
    if (!opened && opened.error().error == OpenError::kIncomplete) return;
    if (opened || opened.error().error != OpenError::kIntegrity) {
      this_hash = sa.reassembly_request->first_hash;
      sa.reassembly_request.reset();
    }
  }
  if (!opened) {
    if (opened.error().error == OpenError::kIntegrity || opened.error().error == OpenError::kNotProtected) {
      stats_.dropped_integrity++;
      return;
    }
    // Authentic but unparsable: answer so that the peer does not retransmit forever.
    stats_.dropped_malformed++;
    std::vector<wire::Payload> err;
    if (opened.error().error == OpenError::kUnsupportedCritical)
      err.push_back(wire::make_notify(NotifyType::kUnsupportedCriticalPayload, Bytes{opened.error().critical_type}));
    else
      err.push_back(wire::make_notify(NotifyType::kInvalidSyntax));
    auto datagrams = keep_response(sa, m.header.exchange, mid, err);
    sa.last_response_redirected = false;
    sa.last_request_hash = this_hash;
    sa.expected_peer_mid++;
    send_all(sa, local, remote, datagrams);
    if (m.header.exchange == ExchangeType::kIkeAuth) kill(sa, true, "malformed IKE_AUTH");
    return;
  }
  const auto& payloads = *opened;
  sa.last_inbound = now_;
  if (sa.state == IkeState::kEstablished && sa.config && sa.config->dpd_delay.count() > 0)
    sa.dpd_at = now_ + sa.config->dpd_delay;
  // The responder follows the initiator's float to the NAT-T port in IKE_AUTH; later,
  // only a peer behind a NAT without MOBIKE moves implicitly (RFC 7296 §2.23, RFC 4555 §3.8).
  if (m.header.exchange == ExchangeType::kIkeAuth || (sa.nat_remote && !sa.peer_mobike)) {
    bool moved = sa.local != local || sa.remote != remote;
    sa.local = local;
    sa.remote = remote;
    // The Child SAs' ESP follows (none exist yet at IKE_AUTH).
    if (moved)
      for (const auto& c : sa.children) dataplane(dataplane_op(DataplaneOp::Kind::kUpdateAddresses, sa, c));
  }

  std::vector<wire::Payload> response;
  Endpoint respond_to = remote;
  bool kill_after = false, failed = false;
  responding_ = &sa;
  struct Done {
    IkeSa*& r;
    ~Done() { r = nullptr; }
  } done{responding_};
  std::string why;
  switch (m.header.exchange) {
    case ExchangeType::kIkeAuth: {
      if (sa.state != IkeState::kConnecting || sa.initiator) {
        stats_.dropped_unexpected++;
        return;
      }
      auto r = respond_ike_auth(sa, *this, payloads);
      response = std::move(r.payloads);
      if (sa.half_open) {
        // No longer half-open: a late IKE_SA_INIT retransmission is now just stale.
        init_index_.erase({sa.spi_i, sa.init_remote});
        sa.half_open = false;
        half_open_--;
      }
      if (r.failed) {
        kill_after = failed = true;
        why = "authentication failed";
      } else if (r.pending) {
        // EAP rounds: each may take as long as a half-open SA may wait.
        sa.expire_at = now_ + config_.half_open_timeout;
      } else {
        arm_lifetimes(sa);
      }
      break;
    }
    case ExchangeType::kInformational: {
      if (sa.state == IkeState::kConnecting) {
        stats_.dropped_unexpected++;
        return;
      }
      auto r = respond_informational(sa, *this, payloads);
      response = std::move(r.payloads);
      if (!r.delete_ike && mobility_) mobility_->respond_informational(sa, *this, payloads, local, remote, respond_to, response);
      if (r.delete_ike) {
        kill_after = true;
        why = "deleted by peer";
      }
      break;
    }
    case ExchangeType::kCreateChildSa:
      if (sa.state == IkeState::kConnecting) {
        stats_.dropped_unexpected++;
        return;
      }
      response = respond_create_child_sa(sa, *this, payloads).payloads;
      break;
    default:
      stats_.dropped_unexpected++;
      return;
  }
  auto datagrams = keep_response(sa, m.header.exchange, mid, response);
  sa.last_response_to = respond_to;
  sa.last_response_redirected = respond_to != remote;
  sa.last_request_hash = this_hash;
  sa.expected_peer_mid++;
  send_all(sa, local, respond_to, datagrams);
  responding_ = nullptr;
  if (kill_after) {
    kill(sa, failed, why);
    return;
  }
  // The peer sends us a request only once it has handled the one the other node sent
  // for us (it came here because of it): that one is answered, wherever the answer went.
  if (sa.active && sa.active_adopted) drop_adopted(sa, true);
  start_next(sa);
}

void Engine::handle_response(IkeSa& sa, const Endpoint& local, const Endpoint& remote, const wire::Message& m,
                             ByteView data) {
  if (!sa.active || m.header.message_id != sa.active_mid || m.header.exchange != sa.active->exchange()) {
    // A request sent on several paths is answered on each that works: the late answers
    // tell path probing which paths work.
    if (mobility_ && m.header.exchange == ExchangeType::kInformational &&
        mobility_->wants_late_response(sa, m.header.message_id)) {
      // Any authentic fragment of the answer shows that the path works.
      if (fragment_of(m) ? open_fragment(sa, m, data).has_value() : open_message(sa, m, data).has_value()) {
        mobility_->late_response(sa, *this, local, remote);
        return;
      }
      stats_.dropped_integrity++;
      return;
    }
    stats_.dropped_bad_message_id++;
    return;
  }
  std::vector<wire::Payload> payloads;
  if (m.header.exchange == ExchangeType::kIkeSaInit) {
    payloads = m.payloads;
    if (m.header.spi_r != 0) {
      sa.spi_r = m.header.spi_r;
      sa.setup().init_response.assign(data.begin(), data.end());
    }
  } else {
    const bool fragment = fragment_of(m) != nullptr;
    auto opened = fragment ? take_fragment(sa, sa.reassembly_response, m, data) : open_message(sa, m, data);
    if (fragment) {
      if (!opened && opened.error().error == OpenError::kIncomplete) return;
      if (opened || opened.error().error != OpenError::kIntegrity) sa.reassembly_response.reset();
    }
    if (!opened) {
      if (opened.error().error == OpenError::kIntegrity || opened.error().error == OpenError::kNotProtected)
        stats_.dropped_integrity++;
      else
        stats_.dropped_malformed++;
      return;  // keep retransmitting: a forged response must not end the exchange
    }
    payloads = std::move(*opened);
    if (!sa.active->accepts_response(sa, payloads)) {
      stats_.dropped_sync++;
      log(LogLevel::kDebug, &sa, std::string("response ") + std::to_string(m.header.message_id) + " is not the " +
                                     sa.active->name() + " answer: dropped");
      return;
    }
  }
  sa.last_inbound = now_;
  if (mobility_ && sa.state != IkeState::kConnecting) mobility_->response_path(sa, *this, local, remote);
  std::unique_ptr<Task> task = std::move(sa.active);
  sa.retransmit_at = TimePoint::max();
  sa.active_request.clear();
  TaskResult result = task->process_response(sa, *this, payloads);
  if (sa.state == IkeState::kEstablished && sa.config->dpd_delay.count() > 0) sa.dpd_at = now_ + sa.config->dpd_delay;
  switch (result) {
    case TaskResult::kDone:
      if (sa.state == IkeState::kDead) {
        kill(sa, false, "deleted");
        return;
      }
      if (task->exchange() == ExchangeType::kIkeAuth && sa.state == IkeState::kEstablished) arm_lifetimes(sa);
      break;
    case TaskResult::kFailed:
      stats_.exchanges[exchange_index(task->exchange())].failed++;
      // We refused a responder that authenticated itself and holds the SA established:
      // tell it once, unacknowledged, rather than leave it to its liveness checks.
      if (task->exchange() == ExchangeType::kIkeAuth &&
          wire::find_payload<wire::AuthPayload>(payloads, wire::PayloadType::kAuth)) {
        std::vector<wire::Payload> del{{wire::PayloadType::kDelete, wire::DeletePayload{wire::ProtocolId::kIke, 0, {}}}};
        send(sa, sa.local, sa.remote,
             build_message(sa, ExchangeType::kInformational, false, sa.next_request_mid++, del, random_));
      }
      kill(sa, true, std::string(task->name()) + " failed");
      return;
    case TaskResult::kContinue:
      sa.queue.insert(sa.queue.begin(), std::move(task));
      break;
    case TaskResult::kRestart:
      sa.next_request_mid = sa.active_mid;
      sa.spi_r = 0;
      sa.queue.insert(sa.queue.begin(), std::move(task));
      break;
  }
  start_next(sa);
}

// ---------------------------------------------------------------- requests we send

void Engine::queue(IkeSa& sa, std::unique_ptr<Task> task) { queue_task(sa, std::move(task)); }

void Engine::queue_task(IkeSa& sa, std::unique_ptr<Task> task) {
  sa.queue.push_back(std::move(task));
  // A request queued while we answer one leaves after that answer (the initiator's
  // update after answering a switch request, say).
  if (responding_ != &sa) start_next(sa);
}

void Engine::start_next(IkeSa& sa) {
  // A quiesced SA still runs what the exchanges in flight queued (a rekey's delete);
  // new work waits: its timers stay due and commands are refused.
  if (sa.active || sa.queue.empty() || sa.state == IkeState::kDead || sa.handoff == Handoff::kExported) return;
  std::unique_ptr<Task> task;
  std::optional<std::vector<wire::Payload>> payloads;
  while (!payloads && !sa.queue.empty()) {
    task = std::move(sa.queue.front());
    sa.queue.erase(sa.queue.begin());
    payloads = task->build_request(sa, *this);
    // Without these two the SA cannot come up: end it rather than leave it half made
    // (IKE_AUTH: no key, or a signature the peer cannot check; the task logged why).
    if (!payloads && (task->exchange() == ExchangeType::kIkeSaInit || task->exchange() == ExchangeType::kIkeAuth)) {
      kill(sa, true, std::string("cannot build ") + task->name());
      return;
    }
  }
  if (!payloads) return;
  send_request(sa, std::move(task), *payloads);
}

void Engine::send_request(IkeSa& sa, std::unique_ptr<Task> task, const std::vector<wire::Payload>& payloads) {
  if (auto fixed = task->message_id())
    sa.active_mid = *fixed;
  else
    sa.active_mid = sa.next_request_mid++;
  std::vector<Bytes> msg = build(sa, task->exchange(), false, sa.active_mid, payloads);
  stats_.exchanges[exchange_index(task->exchange())].initiated++;
  if (task->exchange() == ExchangeType::kIkeSaInit) sa.setup().init_request = msg.front();
  log(LogLevel::kDebug, &sa, std::string("sending ") + task->name() + " request " + std::to_string(sa.active_mid));
  sa.active = std::move(task);
  sa.active_request = std::move(msg);
  sa.retransmits = 0;
  sa.active_sent = now_;
  sa.retransmit_at = now_ + config_.retransmit_timeout;
  send_active(sa);
  reschedule(sa);
}

void Engine::send_active(IkeSa& sa) {
  if (sa.active_request.empty()) return;  // adopted: the other node sent it
  if (mobility_ && sa.state != IkeState::kConnecting && mobility_->transmit(sa, *this)) return;
  send_all(sa, sa.local, sa.remote, sa.active_request);
}

void Engine::set_local_addresses(std::vector<HostAddress> addresses, TimePoint now) {
  now_ = now;
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  if (addresses == local_addresses_) return;
  local_addresses_ = std::move(addresses);
  if (!mobility_) return;
  for (auto& [id, sa] : by_id_) {
    if (sa->state == IkeState::kDead || sa->handoff == Handoff::kExported) continue;
    mobility_->local_addresses_changed(*sa, *this);
    if (sa->state != IkeState::kDead) reschedule(*sa);
  }
  reap();
}

void Engine::send(const IkeSa&, const Endpoint& local, const Endpoint& remote, Bytes data) {
  stats_.datagrams_out++;
  if (data.size() > wire::kHeaderSize && data[16] == static_cast<std::uint8_t>(wire::PayloadType::kSkf))
    stats_.fragments_sent++;
  out_datagrams_.push_back({OutDatagram::Kind::kIke, local, remote, std::move(data)});
}

void Engine::send_all(const IkeSa& sa, const Endpoint& local, const Endpoint& remote,
                      const std::vector<Bytes>& datagrams) {
  for (const auto& d : datagrams) send(sa, local, remote, d);
}

std::size_t Engine::fragment_limit(const IkeSa& sa) const {
  // The limit of the path the SA uses now: a message retransmitted after a MOBIKE move
  // to the other address family keeps its fragments (RFC 7383 §2.5.2 would allow
  // re-fragmenting; a few octets over IPv6's 1280 are fragmented by IP at worst).
  return sa.fragmentation
             ? ike_message_limit(config_.fragment_size, sa.remote.address.is_v6(), sa.local.port == config_.natt_port)
             : 0;
}

void Engine::log_fragments(const IkeSa& sa, ExchangeType exchange, bool response, std::uint32_t mid,
                           const std::vector<Bytes>& datagrams, std::size_t limit) {
  if (datagrams.size() <= 1) return;
  std::size_t octets = 0;
  for (const auto& d : datagrams) octets += d.size();
  log(LogLevel::kDebug, &sa, std::string(wire::exchange_name(exchange)) + (response ? " response " : " request ") +
                                 std::to_string(mid) + " in " + std::to_string(datagrams.size()) + " fragments (" +
                                 std::to_string(octets) + " octets, at most " + std::to_string(limit) + " each)");
}

std::vector<Bytes> Engine::build(const IkeSa& sa, ExchangeType exchange, bool response, std::uint32_t mid,
                                 const std::vector<wire::Payload>& payloads) {
  std::size_t limit = fragment_limit(sa);
  auto datagrams = build_datagrams(sa, exchange, response, mid, payloads, random_, limit);
  log_fragments(sa, exchange, response, mid, datagrams, limit);
  return datagrams;
}

std::vector<Bytes> Engine::keep_response(IkeSa& sa, ExchangeType exchange, std::uint32_t mid,
                                         const std::vector<wire::Payload>& payloads) {
  stats_.exchanges[exchange_index(exchange)].responded++;
  if (exchange == ExchangeType::kIkeSaInit || !sa.crypto.out) {
    auto datagrams = build(sa, exchange, true, mid, payloads);
    sa.last_response.keep_sealed(datagrams);
    return datagrams;
  }
  std::size_t limit = fragment_limit(sa);
  auto datagrams = sa.last_response.keep_protected(sa, exchange, mid, payloads, limit, random_);
  log_fragments(sa, exchange, true, mid, datagrams, limit);
  return datagrams;
}

const wire::SkfPayload* Engine::fragment_of(const wire::Message& m) {
  return m.payloads.empty() ? nullptr : std::get_if<wire::SkfPayload>(&m.payloads.back().body);
}

Expected<std::vector<wire::Payload>, OpenFailure> Engine::take_fragment(IkeSa& sa, std::unique_ptr<Reassembly>& r,
                                                                        const wire::Message& m, ByteView data) {
  switch (add_fragment(r, sa, m, data)) {
    case FragmentVerdict::kStored:
      stats_.fragments_received++;
      return unexpected(OpenFailure{OpenError::kIncomplete});
    case FragmentVerdict::kComplete:
      stats_.fragments_received++;
      stats_.reassembled++;
      log(LogLevel::kDebug, &sa, "reassembled message " + std::to_string(m.header.message_id) + " from " +
                                     std::to_string(r->total) + " fragments");
      return reassemble(*r);
    case FragmentVerdict::kIntegrity:
      // Reported as such: the caller counts it as any message failing its ICV.
      return unexpected(OpenFailure{OpenError::kIntegrity});
    case FragmentVerdict::kDuplicate:
    case FragmentVerdict::kStale:
    case FragmentVerdict::kTooLarge:
    case FragmentVerdict::kMalformed:
      break;
  }
  stats_.dropped_fragment++;
  return unexpected(OpenFailure{OpenError::kIncomplete});
}

// ---------------------------------------------------------------- commands

Expected<std::uint64_t, std::string> Engine::initiate(const std::string& name, const IpAddress& local, TimePoint now,
                                                      std::optional<IpAddress> remote) {
  now_ = now;
  const ConnectionConfig* cfg = nullptr;
  for (const auto& c : connections_)
    if (c->name == name) cfg = c.get();
  if (!cfg) return unexpected("no connection named '" + name + "'");
  if (remote && remote->family() != local.family())
    return unexpected("cannot initiate to " + remote->to_string() + " from " + local.to_string());
  for (const auto& r : cfg->remote_addrs) {
    if (remote) break;
    if (auto a = IpAddress::parse(r); a && a->family() == local.family()) remote = a;
  }
  if (!remote) return unexpected("connection '" + name + "' has no remote address to initiate to");
  IkeSa& sa = create_sa(true, fresh_spi(random_, by_spi_), 0);
  sa.config = cfg;
  sa.connection_name = cfg->name;
  sa.local = {local, config_.ike_port};
  sa.remote = {*remote, cfg->remote_port};
  log(LogLevel::kInfo, &sa, "initiating to " + sa.remote.to_string());
  sa.queue.push_back(std::make_unique<IkeInitTask>());
  sa.queue.push_back(std::make_unique<IkeAuthTask>());
  start_next(sa);
  std::uint64_t id = sa.id;
  reap();
  return id;
}

bool Engine::terminate_ike(std::uint64_t id, TimePoint now) {
  now_ = now;
  auto it = by_id_.find(id);
  if (it == by_id_.end() || it->second->state == IkeState::kDead) return false;
  IkeSa& sa = *it->second;
  if (sa.handoff == Handoff::kExported) return false;  // another node's now
  if (sa.state == IkeState::kConnecting) {
    kill(sa, false, "terminated");
  } else if (sa.state != IkeState::kDeleting) {
    // Our delete goes before anything else queued (RFC 7296 §1.4.1).
    sa.queue.clear();
    queue_task(sa, std::make_unique<IkeDeleteTask>());
    reschedule(sa);
  }
  reap();
  return true;
}

std::size_t Engine::terminate_connection(const std::string& name, TimePoint now) {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, sa] : by_id_)
    if (sa->connection_name == name) ids.push_back(id);
  std::size_t n = 0;
  for (auto id : ids) n += terminate_ike(id, now);
  return n;
}

bool Engine::rekey_ike(std::uint64_t id, TimePoint now) {
  now_ = now;
  IkeSa* sa = find_sa(id);
  if (!sa || sa->state != IkeState::kEstablished || sa->handoff != Handoff::kNone) return false;
  queue_task(*sa, std::make_unique<IkeRekeyTask>());
  reschedule(*sa);
  return true;
}

bool Engine::initiate_child(std::uint64_t id, const std::string& child, TimePoint now) {
  now_ = now;
  IkeSa* sa = find_sa(id);
  if (!sa || sa->state != IkeState::kEstablished || sa->handoff != Handoff::kNone) return false;
  for (const auto& c : sa->config->children)
    if (c.name == child) {
      queue_task(*sa, std::make_unique<ChildCreateTask>(&c, 0));
      reschedule(*sa);
      return true;
    }
  return false;
}

bool Engine::rekey_child(std::uint64_t child_id, TimePoint now) {
  now_ = now;
  for (auto& [id, sa] : by_id_)
    if (ChildSa* c = sa->find_child(child_id); c && c->state == ChildState::kInstalled &&
                                               sa->state == IkeState::kEstablished && c->config &&
                                               sa->handoff == Handoff::kNone) {
      queue_task(*sa, std::make_unique<ChildCreateTask>(c->config, child_id));
      reschedule(*sa);
      return true;
    }
  return false;
}

bool Engine::terminate_child(std::uint64_t child_id, TimePoint now) {
  now_ = now;
  for (auto& [id, sa] : by_id_) {
    if (sa->find_child(child_id) && sa->state == IkeState::kEstablished && sa->handoff == Handoff::kNone) {
      queue_task(*sa, std::make_unique<ChildDeleteTask>(child_id));
      reschedule(*sa);
      return true;
    }
  }
  return false;
}

void Engine::shutdown(TimePoint now) {
  now_ = now;
  for (auto& [id, sa] : by_id_) {
    if (sa->state == IkeState::kDead) continue;
    if (sa->state != IkeState::kConnecting && sa->handoff != Handoff::kExported) {
      // A request outside the window would be ignored: use the next free Message ID only
      // if no exchange is in flight, else the delete is best effort anyway.
      std::uint32_t mid = sa->active ? sa->active_mid + 1 : sa->next_request_mid;
      Bytes msg = build_message(*sa, ExchangeType::kInformational, false, mid,
                                {{wire::PayloadType::kDelete, wire::DeletePayload{wire::ProtocolId::kIke, 0, {}}}},
                                random_);
      send(*sa, sa->local, sa->remote, std::move(msg));
    }
    kill(*sa, false, "shutdown");
  }
  reap();
}

// ---------------------------------------------------------------- timers

void Engine::kill(IkeSa& sa, bool failed, const std::string& why, bool unanswered) {
  if (sa.doomed) return;
  sa.doomed = true;
  for (const auto& c : sa.children) emit_child_delete(sa, c, *this);
  sa.children.clear();
  for (const auto& a : sa.remote_vips)
    for (auto& [name, pool] : pools_)
      if (pool->contains(a)) pool->release(a);
  sa.remote_vips.clear();
  if (sa.active) sa.active->abort(sa, *this);
  for (auto& t : sa.queue) t->abort(sa, *this);
  if (sa.half_open) {
    init_index_.erase({sa.spi_i, sa.init_remote});
    sa.half_open = false;
    half_open_--;
  }
  if (!why.empty()) {
    log(failed ? LogLevel::kWarn : LogLevel::kInfo, &sa, "IKE SA " + std::string(failed ? "failed" : "deleted") + ": " + why);
    if (failed) stats_.ike_failed++;
    event(failed ? EventKind::kIkeFailed : EventKind::kIkeDeleted, sa, 0, why);
    out_events_.back().unanswered = failed && unanswered;
  }
  sa.state = IkeState::kDead;
  dead_.push_back(sa.local_spi());
}

void Engine::reap() {
  for (auto spi : dead_) {
    auto it = by_spi_.find(spi);
    if (it == by_spi_.end()) continue;
    IkeSa& sa = *it->second;
    if (sa.half_open) init_index_.erase({sa.spi_i, sa.init_remote});
    by_id_.erase(sa.id);
    by_spi_.erase(it);
  }
  dead_.clear();
}

void Engine::reschedule(IkeSa& sa) {
  TimePoint t = TimePoint::max();
  if (sa.handoff == Handoff::kNone) {
    t = std::min({sa.retransmit_at, sa.dpd_at, sa.keepalive_at, sa.rekey_at, sa.expire_at, sa.mobility_at});
    for (const auto& c : sa.children) t = std::min({t, c.rekey_at, c.expire_at});
  } else if (sa.handoff == Handoff::kQuiesced) {
    // Liveness checks and rekeys wait (service_timers leaves them due) until resume().
    t = std::min({sa.retransmit_at, sa.keepalive_at, sa.expire_at, sa.mobility_at});
  } else if (sa.relaying) {
    t = std::min(sa.retransmit_at, sa.mobility_at);
  }
  if (t == sa.scheduled_at) return;
  sa.scheduled_at = t;
  if (t != TimePoint::max()) timers_.push({t, sa.local_spi()});
}

std::optional<TimePoint> Engine::next_timeout() {
  while (!timers_.empty()) {
    const auto& w = timers_.top();
    IkeSa* sa = find_by_spi(w.spi);
    if (sa && sa->state != IkeState::kDead && sa->scheduled_at == w.at) return w.at;
    timers_.pop();
  }
  return std::nullopt;
}

void Engine::on_timeout(TimePoint now) {
  now_ = now;
  while (!timers_.empty() && timers_.top().at <= now) {
    Wakeup w = timers_.top();
    timers_.pop();
    IkeSa* sa = find_by_spi(w.spi);
    if (!sa || sa->state == IkeState::kDead || sa->scheduled_at != w.at) continue;
    sa->scheduled_at = TimePoint::max();
    service_timers(*sa);
    if (sa->state != IkeState::kDead) reschedule(*sa);
  }
  reap();
}

bool Engine::retransmit_due(IkeSa& sa) {
  if (!sa.active || sa.retransmit_at > now_) return true;
  if (sa.active_adopted) {
    drop_adopted(sa, false);
    return sa.state != IkeState::kDead;
  }
  auto verdict = mobility_ && sa.state != IkeState::kConnecting ? mobility_->on_retransmit(sa, *this)
                                                                : Mobility::RetransmitVerdict::kDefault;
  if (verdict == Mobility::RetransmitVerdict::kGiveUp ||
      (verdict == Mobility::RetransmitVerdict::kDefault && sa.retransmits >= config_.retransmit_tries)) {
    const bool init = sa.state == IkeState::kConnecting && sa.active->exchange() == ExchangeType::kIkeSaInit;
    stats_.exchanges[exchange_index(sa.active->exchange())].unanswered++;
    kill(sa, true,
         std::string(sa.active->name()) + " request not answered after " + std::to_string(sa.retransmits) +
             " retransmissions",
         init);
    return false;
  }
  sa.retransmits++;
  stats_.retransmits_sent++;
  log(LogLevel::kDebug, &sa, "retransmit " + std::to_string(sa.retransmits) + " of request " + std::to_string(sa.active_mid));
  if (verdict == Mobility::RetransmitVerdict::kDefault) {
    // Capped (at an hour) before the cast: a large base and many tries would overflow.
    double ms = std::min(static_cast<double>(config_.retransmit_timeout.count()) *
                             std::pow(config_.retransmit_base, sa.retransmits),
                         3.6e6);
    sa.retransmit_at = now_ + Duration(static_cast<Duration::rep>(ms));
  }
  send_active(sa);
  return true;
}

void Engine::drop_adopted(IkeSa& sa, bool answered_elsewhere) {
  std::unique_ptr<Task> task = std::move(sa.active);
  sa.active_adopted = false;
  sa.retransmit_at = TimePoint::max();
  log(LogLevel::kDebug, &sa, std::string("the other node's ") + task->name() + " request " +
                                 std::to_string(sa.active_mid) +
                                 (answered_elsewhere ? " was answered there" : " got no answer here"));
  if (!answered_elsewhere) {
    // Nothing here knows that the peer saw it: its Message ID counts as free, which is
    // what the node it came from assumes too if the SA goes back (Node::answered_here).
    sa.next_request_mid = sa.active_mid;
    task->abandon(sa, *this);
  }
  start_next(sa);
}

void Engine::service_timers(IkeSa& sa) {
  if (sa.handoff == Handoff::kExported) {
    // Relaying for the new owner: that one request and what its task waits for.
    if (!sa.relaying || !retransmit_due(sa)) return;
    if (sa.mobility_at <= now_) {
      sa.mobility_at = TimePoint::max();
      if (mobility_) mobility_->on_timer(sa, *this);
    }
    return;
  }
  if (sa.expire_at <= now_) {
    if (sa.state == IkeState::kConnecting) {
      stats_.half_open_expired++;
      kill(sa, true, "not established in time");
    } else {
      kill(sa, false, "hard lifetime reached");
    }
    return;
  }
  if (!retransmit_due(sa)) return;
  if (sa.mobility_at <= now_) {
    sa.mobility_at = TimePoint::max();
    if (mobility_) mobility_->on_timer(sa, *this);
    if (sa.state == IkeState::kDead) return;
  }
  if (sa.dpd_at <= now_) {
    sa.dpd_at = TimePoint::max();
    if (sa.state == IkeState::kEstablished && sa.config->dpd_delay.count() > 0) {
      sa.dpd_at = now_ + sa.config->dpd_delay;
      if (!sa.active && sa.queue.empty()) queue_task(sa, std::make_unique<LivenessTask>());
    }
  }
  if (sa.keepalive_at <= now_) {
    sa.keepalive_at = TimePoint::max();
    if (sa.state != IkeState::kConnecting && sa.nat_local) {
      out_datagrams_.push_back({OutDatagram::Kind::kNatKeepalive, sa.local, sa.remote, Bytes{0xff}});
      sa.keepalive_at = now_ + config_.keepalive_interval;
    }
  }
  if (sa.handoff != Handoff::kNone) return;
  std::vector<std::unique_ptr<Task>> due;
  for (auto& c : sa.children) {
    if (c.expire_at <= now_) {
      c.expire_at = TimePoint::max();
      c.rekey_at = TimePoint::max();
      due.push_back(std::make_unique<ChildDeleteTask>(c.id));
    } else if (c.rekey_at <= now_) {
      c.rekey_at = TimePoint::max();
      if (c.state == ChildState::kInstalled && c.config && sa.state == IkeState::kEstablished)
        due.push_back(std::make_unique<ChildCreateTask>(c.config, c.id));
    }
  }
  for (auto& t : due) queue_task(sa, std::move(t));
  if (sa.rekey_at <= now_) {
    sa.rekey_at = TimePoint::max();
    if (sa.state == IkeState::kEstablished) queue_task(sa, std::make_unique<IkeRekeyTask>());
  }
}

}  // namespace mobike::ike
