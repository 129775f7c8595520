// Cluster moves of live IKE SAs between engines (Engine::quiesce, export_sa, resume,
// release, import_sa): see engine.h and docs/cluster.md.
#include "ike/child_sa.h"
#include "ike/config_payload.h"
#include "ike/engine.h"
#include "ike/ike_init.h"
#include "ike/mid_sync.h"
#include "ike/protection.h"
#include "ike/task.h"

namespace mobike::ike {

namespace {

Duration since(TimePoint then, TimePoint now) { return std::chrono::duration_cast<Duration>(now - then); }

std::optional<Duration> remaining(TimePoint at, TimePoint now) {
  if (at == TimePoint::max()) return std::nullopt;
  return at > now ? std::chrono::duration_cast<Duration>(at - now) : Duration{0};
}

TimePoint deadline(const std::optional<Duration>& in, TimePoint now) {
  return in ? now + *in : TimePoint::max();
}

// Why the SA cannot be exported now, or empty.
std::string busy(const IkeSa& sa) {
  if (sa.handoff != Handoff::kQuiesced) return "not quiesced";
  if (sa.state != IkeState::kEstablished) return std::string("IKE SA is ") + std::string(to_string(sa.state));
  if (sa.active) return std::string("a ") + sa.active->name() + " request is outstanding";
  if (!sa.queue.empty()) return std::to_string(sa.queue.size()) + " request(s) queued";
  if (sa.rekeyed_to || sa.peer_rekeyed_to) return "IKE SA is being replaced";
  for (const auto& c : sa.children) {
    if (c.state != ChildState::kInstalled) return "Child SA " + c.name + " is " + std::string(to_string(c.state));
    if (c.rekeyed_to || c.peer_rekeyed_to) return "Child SA " + c.name + " is being rekeyed";
    if (c.outbound_deferred) return "Child SA " + c.name + " waits for the rekey's delete";
    if (c.outbound_held) return "Child SA " + c.name + " came from another node and is not confirmed here yet";
  }
  return {};
}

}  // namespace

bool Engine::quiesce(std::uint64_t id, TimePoint now) {
  now_ = now;
  IkeSa* sa = find_sa(id);
  if (!sa || sa->state != IkeState::kEstablished || sa->handoff == Handoff::kExported) return false;
  sa->handoff = Handoff::kQuiesced;
  reschedule(*sa);
  return true;
}

IkeSaSnapshot Engine::snapshot_of(const IkeSa& sa, TimePoint now) const {
  IkeSaSnapshot s;
  s.connection = sa.connection_name;
  s.initiator = sa.initiator;
  s.original_initiator = sa.original_initiator;
  s.spi_i = sa.spi_i;
  s.spi_r = sa.spi_r;
  s.local = sa.local;
  s.remote = sa.remote;
  s.nat_local = sa.nat_local;
  s.nat_remote = sa.nat_remote;
  s.peer_mobike = sa.peer_mobike;
  s.peer_nat_d = sa.peer_nat_d;
  s.peer_mid_sync = sa.peer_mid_sync;
  s.peer_replay_sync = sa.peer_replay_sync;
  s.mid_sync = sa.mid_sync;
  s.replay_sync = sa.replay_sync;
  s.nat_d_dest_seen = sa.nat_d_dest_seen;
  s.remote_id = sa.remote_id;
  s.remote_eap_id = sa.remote_eap_id;
  s.remote_vips = sa.remote_vips;
  s.ike_proposal = sa.ike_proposal;
  s.sk_d = sa.crypto.sk_d;
  // §2.14's names are by role: the initiator protects with SK_ei/SK_ai.
  if (sa.crypto.out && sa.crypto.in) {
    const crypto::SkCipher& by_initiator = sa.initiator ? *sa.crypto.out : *sa.crypto.in;
    const crypto::SkCipher& by_responder = sa.initiator ? *sa.crypto.in : *sa.crypto.out;
    s.sk_ei = by_initiator.encr_key();
    s.sk_ai = by_initiator.integ_key();
    s.sk_er = by_responder.encr_key();
    s.sk_ar = by_responder.integ_key();
  }
  s.next_request_mid = sa.next_request_mid;
  s.expected_peer_mid = sa.expected_peer_mid;
  s.peer_fragmentation = sa.peer_fragmentation;
  s.fragmentation = sa.fragmentation;
  s.last_response = sa.last_response.datagrams(sa);
  s.last_response_to = sa.last_response_to;
  s.last_response_redirected = sa.last_response_redirected;
  s.last_request_hash = sa.last_request_hash;
  s.age = since(sa.established_at, now);
  s.since_inbound = since(sa.last_inbound, now);
  s.rekey_in = remaining(sa.rekey_at, now);
  s.expire_in = remaining(sa.expire_at, now);
  for (const auto& c : sa.children) {
    ChildSaSnapshot cs;
    cs.config_name = c.config ? c.config->name : c.name;
    cs.spi_in = c.spi_in;
    cs.spi_out = c.spi_out;
    cs.proposal = c.proposal;
    cs.local_ts = c.local_ts;
    cs.remote_ts = c.remote_ts;
    cs.keys = c.keys;
    cs.age = since(c.established, now);
    cs.rekey_in = remaining(c.rekey_at, now);
    cs.expire_in = remaining(c.expire_at, now);
    s.children.push_back(std::move(cs));
  }
  return s;
}

Expected<IkeSaSnapshot, std::string> Engine::export_sa(std::uint64_t id, TimePoint now) {
  now_ = now;
  IkeSa* sa = find_sa(id);
  if (!sa || sa->state == IkeState::kDead) return unexpected("no IKE SA " + std::to_string(id));
  if (auto why = busy(*sa); !why.empty()) return unexpected(why);
  Bytes mobility;
  if (mobility_) {
    auto m = mobility_->export_state(*sa);
    if (!m) return unexpected(m.error());
    mobility = std::move(*m);
  }
  IkeSaSnapshot s = snapshot_of(*sa, now);
  s.mobility = std::move(mobility);
  // Stop sending before anyone reads the sequence numbers (docs/cluster.md).
  for (const auto& c : sa->children) dataplane(dataplane_op(DataplaneOp::Kind::kSuspendOutbound, *sa, c));
  sa->handoff = Handoff::kExported;
  stats_.ike_exported++;
  log(LogLevel::kInfo, sa, "exported for another node (" + std::to_string(s.children.size()) + " Child SA(s))");
  reschedule(*sa);
  return s;
}

Expected<IkeSaSnapshot, std::string> Engine::checkpoint(std::uint64_t id, TimePoint now) const {
  auto it = by_id_.find(id);
  if (it == by_id_.end() || it->second->state == IkeState::kDead) return unexpected("no IKE SA " + std::to_string(id));
  const IkeSa& sa = *it->second;
  if (sa.state != IkeState::kEstablished && sa.state != IkeState::kRekeying)
    return unexpected(std::string("IKE SA is ") + std::string(to_string(sa.state)));
  if (sa.handoff == Handoff::kExported) return unexpected(std::string("the SA runs on another node"));
  IkeSaSnapshot s = snapshot_of(sa, now);
  if (mobility_) {
    // An exchange of the extension under way: its state at the last quiet moment would
    // be stale anyway; the next checkpoint catches it.
    auto m = mobility_->export_state(sa);
    if (!m) return unexpected(m.error());
    s.mobility = std::move(*m);
  }
  // Child SAs still being made or replaced: the installed ones are what a failover can
  // continue; the others are rekeyed again after it.
  std::erase_if(s.children, [&](const ChildSaSnapshot& cs) {
    const ChildSa* c = nullptr;
    for (const auto& x : sa.children)
      if (x.spi_in == cs.spi_in) c = &x;
    return !c || c->state == ChildState::kCreating || c->state == ChildState::kDeleting;
  });
  return s;
}

void Engine::handed_over(IkeSa& sa, const wire::Message& m, ByteView data) {
  stats_.dropped_handed_over++;
  if (sa.handoff_reported) return;
  // The new owner's first request (a switch request from our address) carries our next
  // Message ID, and a peer that refuses answers it here. An answer without an error is
  // no refusal by itself: a generation-2 initiator that accepts answers here too, then
  // updates at the new address (docs/switch.md §6.3.4). What settles it, as for the
  // switch's own responder (§5.4), is the peer's next request arriving here after it.
  const auto& h = m.header;
  const bool answer = h.is_response() && h.message_id == sa.next_request_mid && !sa.handoff_answered;
  const bool request = !h.is_response() && h.message_id == sa.expected_peer_mid && sa.handoff_answered;
  if (!answer && !request) return;
  auto payloads = open_message(sa, m, data);
  if (!payloads) return;
  std::string detail;
  if (answer) {
    // Should the SA come back to us, that ID is used up (resume()).
    sa.handoff_answered = true;
    for (const auto& p : *payloads)
      if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && wire::is_error(n->notify_type()))
        detail = "the answer carried " + std::string(wire::notify_name(n->type));
    if (detail.empty()) return;
  } else {
    detail = "an answer without an error, then the peer's next request here";
  }
  sa.handoff_reported = true;
  log(LogLevel::kInfo, &sa, "the peer answered the new owner's request here and stays: " + detail);
  event(EventKind::kHandoffAnswered, sa, 0, std::move(detail));
}

bool Engine::resume(std::uint64_t id, TimePoint now, bool answered_elsewhere) {
  now_ = now;
  IkeSa* sa = find_sa(id);
  if (!sa || sa->state == IkeState::kDead || sa->handoff == Handoff::kNone) return false;
  if (sa->handoff == Handoff::kExported) {
    for (const auto& c : sa->children) dataplane(dataplane_op(DataplaneOp::Kind::kActivateOutbound, *sa, c));
    const bool answered = sa->handoff_answered || answered_elsewhere;
    if (sa->relaying) {
      // Our request for the new owner asked the peer to go there: never send it again.
      // Unanswered anywhere, the peer may never have seen it, and its ID is free again.
      if (std::unique_ptr<Task> task = std::move(sa->active)) {
        sa->active_request.clear();
        sa->retransmit_at = TimePoint::max();
        if (!answered) sa->next_request_mid = sa->active_mid;
        task->abandon(*sa, *this);
      }
      sa->relaying = false;
    } else if (answered) {
      sa->next_request_mid++;  // the other node's request took that ID
    }
    sa->handoff_answered = sa->handoff_reported = false;
    log(LogLevel::kInfo, sa, "stays here: the move did not complete");
  }
  sa->handoff = Handoff::kNone;
  reschedule(*sa);
  start_next(*sa);
  reap();
  return true;
}

bool Engine::relay(std::uint64_t id, std::unique_ptr<Task> task, TimePoint now) {
  now_ = now;
  IkeSa* sa = find_sa(id);
  if (!sa || sa->state != IkeState::kEstablished || sa->handoff != Handoff::kExported || sa->relaying || sa->active)
    return false;
  auto payloads = task->build_request(*sa, *this);
  if (!payloads) return false;
  sa->relaying = true;
  log(LogLevel::kInfo, sa, std::string("sending ") + task->name() + " for the node that took the SA over");
  send_request(*sa, std::move(task), *payloads);
  reap();
  return true;
}

bool Engine::adopt_request(std::uint64_t id, std::unique_ptr<Task> task, TimePoint until, TimePoint now) {
  now_ = now;
  IkeSa* sa = find_sa(id);
  if (!sa || sa->state != IkeState::kEstablished || sa->handoff != Handoff::kNone || sa->active) return false;
  sa->active_mid = sa->next_request_mid++;
  sa->active = std::move(task);
  sa->active_adopted = true;
  sa->active_request.clear();
  sa->retransmits = 0;
  sa->active_sent = now;
  sa->retransmit_at = until;
  reschedule(*sa);
  return true;
}

bool Engine::confirm_import(std::uint64_t id, TimePoint now) {
  now_ = now;
  IkeSa* sa = find_sa(id);
  if (!sa || sa->state == IkeState::kDead) return false;
  bool held = false;
  for (auto& c : sa->children) {
    if (!c.outbound_held) continue;
    held = true;
    c.outbound_held = false;
    dataplane(dataplane_op(DataplaneOp::Kind::kActivateOutbound, *sa, c));
  }
  return held;
}

bool Engine::release(std::uint64_t id, TimePoint now) {
  now_ = now;
  IkeSa* sa = find_sa(id);
  if (!sa || sa->state == IkeState::kDead) return false;
  log(LogLevel::kInfo, sa, sa->handoff == Handoff::kExported ? "handed over to another node" : "left to another node");
  if (sa->relaying) sa->active.reset();  // the new owner completes what it asked for
  kill(*sa, false, "");  // no DELETE, no event: the SA lives on elsewhere
  reap();
  return true;
}

Expected<IkeSa*, std::string> Engine::continue_sa(const IkeSaSnapshot& s, bool hold_outbound, TimePoint now) {
  const ConnectionConfig* cfg = nullptr;
  for (const auto& c : connections_)
    if (c->name == s.connection) cfg = c.get();
  if (!cfg) return unexpected("no connection '" + s.connection + "' here");
  const std::uint64_t ours = s.initiator ? s.spi_i : s.spi_r;
  if (ours == 0 || (s.initiator ? s.spi_r : s.spi_i) == 0) return unexpected(std::string("SPI 0 in the snapshot"));
  if (by_spi_.count(ours)) return unexpected("an IKE SA with SPI " + std::to_string(ours) + " exists here already");
  std::vector<const ChildConfig*> child_configs;
  for (const auto& cs : s.children) {
    const ChildConfig* cc = nullptr;
    for (const auto& c : cfg->children)
      if (c.name == cs.config_name) cc = &c;
    if (!cc) return unexpected("connection '" + s.connection + "' has no child '" + cs.config_name + "' here");
    if (!cs.esp)
      return unexpected("Child SA " + cs.config_name + " has no data-plane state: its sequence numbers are unknown");
    if (cs.spi_in == 0 || cs.spi_out == 0) return unexpected(std::string("Child SA SPI 0 in the snapshot"));
    child_configs.push_back(cc);
  }
  IkeCrypto crypto;
  if (!set_ike_keys(crypto, s.ike_proposal, s.initiator, s.sk_d, s.sk_ai, s.sk_ar, s.sk_ei, s.sk_er))
    return unexpected(std::string("the snapshot's IKE proposal or keys are unusable"));

  IkeSa& sa = create_sa(s.initiator, s.spi_i, s.spi_r);
  sa.original_initiator = s.original_initiator;
  sa.config = cfg;
  sa.connection_name = cfg->name;
  sa.local = s.local;
  sa.remote = s.remote;
  sa.nat_local = s.nat_local;
  sa.nat_remote = s.nat_remote;
  sa.peer_mobike = s.peer_mobike;
  sa.peer_nat_d = s.peer_nat_d;
  sa.peer_mid_sync = s.peer_mid_sync;
  sa.peer_replay_sync = s.peer_replay_sync;
  sa.mid_sync = s.mid_sync;
  sa.replay_sync = s.replay_sync;
  sa.nat_d_dest_seen = s.nat_d_dest_seen;
  sa.remote_id = s.remote_id;
  sa.remote_eap_id = s.remote_eap_id;
  sa.remote_vips = s.remote_vips;
  sa.ike_proposal = s.ike_proposal;
  sa.crypto = std::move(crypto);
  sa.next_request_mid = s.next_request_mid;
  sa.expected_peer_mid = s.expected_peer_mid;
  sa.peer_fragmentation = s.peer_fragmentation;
  sa.fragmentation = s.fragmentation;
  sa.last_response.keep_sealed(s.last_response);
  sa.last_response_to = s.last_response_to;
  sa.last_response_redirected = s.last_response_redirected;
  sa.last_request_hash = s.last_request_hash;
  sa.state = IkeState::kEstablished;
  sa.created = sa.established_at = now - s.age;
  sa.last_inbound = now - s.since_inbound;
  sa.rekey_at = deadline(s.rekey_in, now);
  sa.expire_at = deadline(s.expire_in, now);
  if (cfg->dpd_delay.count() > 0) sa.dpd_at = now + cfg->dpd_delay;
  if (sa.nat_local) sa.keepalive_at = now + config_.keepalive_interval;
  if (!s.mobility.empty()) {
    Expected<void, std::string> ok = unexpected(std::string("no mobility extension here for its MOBIKE state"));
    if (mobility_) ok = mobility_->import_state(sa, *this, s.mobility);
    if (!ok) {
      sa.doomed = true;  // nothing of it left this engine yet
      sa.state = IkeState::kDead;
      dead_.push_back(sa.local_spi());
      reap();
      return unexpected("MOBIKE state: " + ok.error());
    }
  }
  for (std::size_t i = 0; i < s.children.size(); ++i) {
    const auto& cs = s.children[i];
    ChildSa c;
    c.id = next_child_id();
    c.name = child_configs[i]->name;
    c.config = child_configs[i];
    c.state = ChildState::kInstalled;
    c.spi_in = cs.spi_in;
    c.spi_out = cs.spi_out;
    c.proposal = cs.proposal;
    c.local_ts = cs.local_ts;
    c.remote_ts = cs.remote_ts;
    c.keys = cs.keys;
    c.established = now - cs.age;
    c.rekey_at = deadline(cs.rekey_in, now);
    c.expire_at = deadline(cs.expire_in, now);
    DataplaneOp op = dataplane_op(DataplaneOp::Kind::kInstall, sa, c);
    op.local_ts = c.local_ts;
    op.remote_ts = c.remote_ts;
    op.keys = c.keys;
    op.limits = child_limits(*c.config, c, *this);
    op.resume = cs.esp;
    // Moves: the node it came from continues from the same sequence numbers if the move
    // fails, so until the move is settled only one of us may send (docs/cluster.md).
    op.outbound_deferred = c.outbound_held = hold_outbound;
    dataplane(std::move(op));
    sa.children.push_back(std::move(c));
  }
  // The leases travel with their SAs: this node's pools hold them from now on.
  const std::string lease_owner = lease_identity(sa);
  for (const auto& a : sa.remote_vips)
    for (auto& [name, pool] : pools_)
      if (pool->contains(a)) pool->claim(a, lease_owner);
  return &sa;
}

Expected<std::uint64_t, std::string> Engine::import_sa(const IkeSaSnapshot& s, TimePoint now) {
  now_ = now;
  auto continued = continue_sa(s, true, now);
  if (!continued) return unexpected(continued.error());
  IkeSa& sa = **continued;
  stats_.ike_imported++;
  log(LogLevel::kInfo, &sa,
      "continued from another node: " + sa.local.to_string() + " <-> " + sa.remote.to_string() + ", " +
          std::to_string(sa.children.size()) + " Child SA(s), next message IDs " +
          std::to_string(sa.next_request_mid) + "/" + std::to_string(sa.expected_peer_mid));
  reschedule(sa);
  return sa.id;
}

Expected<std::uint64_t, std::string> Engine::take_over(const IkeSaSnapshot& checkpoint, std::unique_ptr<Task> sync,
                                                       TimePoint now) {
  now_ = now;
  if (!checkpoint.mid_sync)
    return unexpected(std::string("the peer cannot synchronise Message IDs (no RFC 6311 support negotiated)"));
  IkeSaSnapshot s = checkpoint;
  // RFC 6311 §5.1: M1 must exceed every Message ID the dead node used; P1 is the
  // peer's next request as the checkpoint knew it (the peer answers with the truth).
  s.next_request_mid += kMidSyncMargin;
  s.last_response.clear();
  s.last_request_hash = 0;
  const std::uint64_t delta_in = s.replay_sync ? kSeqJump : 0;
  for (auto& c : s.children) {
    if (!c.esp) continue;
    const std::uint64_t max = c.keys.esn ? ~std::uint64_t{0} : 0xffffffffu;
    // §7: our own outbound numbers jump past whatever the dead node sent after the
    // checkpoint; inbound, once the peer skipped `delta_in`, everything up to the
    // checkpoint's top plus that is old.
    c.esp->out_seq += seq_jump(c.esp->out_seq, max);
    if (delta_in) {
      c.esp->in_top = std::min(max, c.esp->in_top + delta_in);
      std::fill(c.esp->in_received.begin(), c.esp->in_received.end(), ~std::uint64_t{0});
    }
  }
  auto continued = continue_sa(s, false, now);
  if (!continued) return unexpected(continued.error());
  IkeSa& sa = **continued;
  stats_.ike_imported++;
  log(LogLevel::kInfo, &sa,
      "taken over from a failed node: " + sa.local.to_string() + " <-> " + sa.remote.to_string() + ", " +
          std::to_string(sa.children.size()) + " Child SA(s), synchronising from message IDs " +
          std::to_string(sa.next_request_mid) + "/" + std::to_string(sa.expected_peer_mid));
  if (!sync) sync = std::make_unique<MidSyncTask>(delta_in);
  // Before anything else (a rekey due, a liveness check): no other request may go out
  // with an unsynchronised Message ID.
  sa.queue.insert(sa.queue.begin(), std::move(sync));
  start_next(sa);
  reschedule(sa);
  reap();
  return sa.id;
}

}  // namespace mobike::ike
