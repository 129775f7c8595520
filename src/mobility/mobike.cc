#include "mobility/mobike.h"

#include <algorithm>
#include <cmath>

#include "ike/ike_init.h"
#include "ike/informational.h"
#include "ike/protection.h"
#include "mobility/address_list.h"
#include "mobility/address_policy.h"
#include "mobility/path_probe.h"
#include "mobility/return_routability.h"
#include "mobility/sa_state_codec.h"
#include "mobility/switch.h"
#include "mobility/update.h"

namespace mobike::mobility {

using ike::IkeSa;
using ike::IkeState;
using ike::LogLevel;
using ike::Services;
using wire::NotifyType;
using wire::Payload;

SaState& state(IkeSa& sa) {
  if (!sa.mobility_state) sa.mobility_state = std::make_unique<SaState>();
  return static_cast<SaState&>(*sa.mobility_state);
}

const SaState* find_state(const IkeSa& sa) { return static_cast<const SaState*>(sa.mobility_state.get()); }

bool waiting(const IkeSa& sa, std::string_view task_name) {
  return std::any_of(sa.queue.begin(), sa.queue.end(), [&](const auto& t) { return t->name() == task_name; });
}

bool may_update(const IkeSa& sa) {
  return sa.peer_mobike && sa.original_initiator && sa.config && sa.config->mobike;
}

namespace {

void take_peer_list(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  std::string skipped;
  auto list = parse_address_list(payloads, &skipped);
  if (!skipped.empty()) s.log(LogLevel::kWarn, &sa, "ignored peer addresses: " + skipped);
  if (list) state(sa).peer_addresses = std::move(*list);
}

// Whether a NAT_DETECTION_DESTINATION_IP answer says our public address or port changed.
bool mapping_changed(const IkeSa& sa, ByteView seen) {
  if (!sa.nat_local) return !equal_ct(seen, ike::nat_detection_hash(sa.spi_i, sa.spi_r, sa.local));
  return !sa.nat_d_dest_seen.empty() && !equal_ct(seen, sa.nat_d_dest_seen);
}

// An INFORMATIONAL request that only checks liveness: nothing but NAT detection.
bool liveness_check(const std::vector<Payload>& request) {
  return std::all_of(request.begin(), request.end(), [](const Payload& p) {
    auto* n = std::get_if<wire::NotifyPayload>(&p.body);
    return n && (n->notify_type() == NotifyType::kNatDetectionSourceIp ||
                 n->notify_type() == NotifyType::kNatDetectionDestinationIp);
  });
}

}  // namespace

void Mobike::auth_payloads(IkeSa& sa, Services& s, std::vector<Payload>& out) {
  // The initiator's MOBIKE_SUPPORTED carries the one octet that announces the
  // responder-initiated switch (spec §4.1); the responder's stays empty.
  Bytes flags;
  if (sa.initiator && sa.config->switch_enabled) flags.push_back(kResponderSwitchFlag);
  out.push_back(wire::make_notify(NotifyType::kMobikeSupported, std::move(flags)));
  auto& st = state(sa);
  st.announced = our_additional_addresses(sa, s);
  st.announced_once = true;
  add_address_list(st.announced, out);
  if (sa.initiator && !sa.config->nat_traversal)
    out.push_back(wire::make_notify(NotifyType::kNoNatsAllowed, no_nats_data(sa.local, sa.remote)));
}

void Mobike::auth_received(IkeSa& sa, Services& s, const std::vector<Payload>& in) {
  auto* supported = wire::find_notify(in, NotifyType::kMobikeSupported);
  sa.peer_mobike = supported != nullptr;
  if (!sa.peer_mobike) return;
  auto& st = state(sa);
  // Lenient on receipt (spec Q13): any octet 0x52.
  if (!sa.initiator)
    st.peer_switch = std::find(supported->data.begin(), supported->data.end(), kResponderSwitchFlag) !=
                      supported->data.end();
  take_peer_list(sa, s, in);
  st.committed = {sa.local, sa.remote};
  if (sa.initiator && sa.nat_local && sa.config->nat_traversal) {
    // The NAT-D of IKE_SA_INIT hashed our port-500 mapping; learn the one of the NAT-T
    // port now, so that a later change of it shows (§3.8).
    sa.nat_d_dest_seen.clear();
    s.queue(sa, std::make_unique<ike::LivenessTask>());
  }
}

std::optional<NotifyType> Mobike::auth_refusal(const IkeSa& sa, Services& s, const std::vector<Payload>& request) {
  // §3.9: the initiator forbade NATs; the addresses and ports it saw must be those of the
  // packet (sa.local and sa.remote are the IKE_AUTH request's path here).
  auto* n = wire::find_notify(request, NotifyType::kNoNatsAllowed);
  if (!n || equal_ct(n->data, no_nats_data(sa.remote, sa.local))) return std::nullopt;
  s.log(LogLevel::kWarn, &sa, "NO_NATS_ALLOWED in IKE_AUTH does not match the packet from " + sa.remote.to_string());
  return NotifyType::kUnexpectedNatDetected;
}

void Mobike::respond_informational(IkeSa& sa, Services& s, const std::vector<Payload>& request,
                                   const Endpoint& local, const Endpoint& remote, Endpoint& respond_to,
                                   std::vector<Payload>& response) {
  if (sa.peer_mobike) {
    if (auto* n = wire::find_notify(request, NotifyType::kNoNatsAllowed);
        n && !equal_ct(n->data, no_nats_data(remote, local))) {
      // §3.9: the peer forbade NATs and one rewrote its packet.
      s.log(LogLevel::kWarn, &sa, "NO_NATS_ALLOWED does not match the packet from " + remote.to_string());
      response.push_back(wire::make_notify(NotifyType::kUnexpectedNatDetected));
      return;
    }
    bool update = wire::find_notify(request, NotifyType::kUpdateSaAddresses) != nullptr;
    // An update and a switch are judged against the list announced before them: the
    // list inside an update never holds the address of its own IP header, and a switch
    // target counts as announced only if an earlier message announced it.
    if (update) respond_update(sa, s, request, local, remote, response);
    if (auto* sw = wire::find_notify(request, s.config().switch_notify_type))
      handle_switch_request(sa, s, *sw, remote, respond_to);
    take_peer_list(sa, s, request);
    auto& st = state(sa);
    if (!update && liveness_check(request) && st.switch_state == SaState::Switch::kAwaitUpdate &&
        local.address == st.switch_from)
      // Our initiator answers a switch it refuses and then checks the old path with a
      // liveness check (empty, or with NAT detection behind a NAT, §3.8): the switch is
      // not going to happen.
      end_switch(sa, s, SwitchOutcome::kRefused, "the initiator checked the old path instead");
  }
  if (wire::find_notify(request, NotifyType::kNatDetectionDestinationIp) && sa.config->nat_traversal) {
    // Hashes of the path this request took, whatever path the SA uses.
    Endpoint save_local = std::exchange(sa.local, local), save_remote = std::exchange(sa.remote, remote);
    ike::add_nat_detection(sa, response, sa.config->encap_force, s.random());
    sa.local = save_local;
    sa.remote = save_remote;
  }
  if (auto* cookie = wire::find_notify(request, NotifyType::kCookie2))
    response.push_back(wire::make_notify(NotifyType::kCookie2, cookie->data));
}

void Mobike::liveness_request(IkeSa& sa, Services& s, std::vector<Payload>& out) {
  if (may_update(sa) && sa.config->nat_traversal && sa.peer_nat_d)
    ike::add_nat_detection(sa, out, sa.config->encap_force, s.random());
}

void Mobike::liveness_response(IkeSa& sa, Services& s, const std::vector<Payload>& in) {
  if (!may_update(sa)) return;
  auto& st = state(sa);
  auto* dest = wire::find_notify(in, NotifyType::kNatDetectionDestinationIp);
  if (!dest || st.probing || st.deciding || st.committed != Path{sa.local, sa.remote}) return;
  if (sa.nat_local && sa.nat_d_dest_seen.empty()) {
    sa.nat_d_dest_seen = dest->data;
    return;
  }
  if (mapping_changed(sa, dest->data)) {
    s.log(LogLevel::kInfo, &sa, "the NAT in front of us changed our public address or port: updating");
    queue_update(sa, s);
  }
}

void Mobike::response_path(IkeSa& sa, Services& s, const Endpoint& local, const Endpoint& remote) {
  if (!sa.peer_mobike) return;
  auto& st = state(sa);
  st.last_response_path = {local, remote};
  if (st.probing && sa.active_mid == st.probe_mid) probe_answered(sa, s, config_, {local, remote});
}

bool Mobike::wants_late_response(const IkeSa& sa, std::uint32_t message_id) const {
  const SaState* st = find_state(sa);
  return st && st->deciding && st->probe_mid == message_id;
}

void Mobike::late_response(IkeSa& sa, Services& s, const Endpoint& local, const Endpoint& remote) {
  probe_answered(sa, s, config_, {local, remote});
}

bool Mobike::transmit(IkeSa& sa, Services& s) {
  const SaState* st = find_state(sa);
  if (!st || !st->probing) return false;
  transmit_probes(sa, s);
  return true;
}

ike::Mobility::RetransmitVerdict Mobike::on_retransmit(IkeSa& sa, Services& s) {
  if (!sa.peer_mobike || !sa.config || !sa.config->mobike) return RetransmitVerdict::kDefault;
  const auto& ec = s.config();
  // In double and capped before the cast: after tens of retransmissions the back-off
  // would not fit the integer any more.
  double ms = std::min(static_cast<double>(ec.retransmit_timeout.count()) * std::pow(ec.retransmit_base, sa.retransmits + 1),
                       static_cast<double>(config_.max_retransmit_interval.count()));
  auto interval = Duration(static_cast<Duration::rep>(ms));
  if (may_update(sa)) {
    auto& st = state(sa);
    if (!st.probing && sa.retransmits + 1 >= config_.probe_after_retransmits) {
      st.probing = true;  // this retransmission goes out on every path
      st.deciding = false;
      st.answers.clear();
      st.probed.clear();
      st.probing_since = s.now();
      st.no_path_reported = false;
      s.log(LogLevel::kInfo, &sa, "no answer on " + sa.local.to_string() + " -> " + sa.remote.to_string() +
                                      ": probing " + std::to_string(candidate_paths(sa, s).size()) + " path(s)");
    } else if (st.probing && !st.no_path_reported && !st.probed.empty()) {
      // A whole round went out on every known path and nothing came back.
      st.no_path_reported = true;
      s.event(ike::EventKind::kNoPath, sa, 0, "no answer on any of " + std::to_string(st.probed.size()) + " path(s)");
    }
    if (!st.probing) return RetransmitVerdict::kDefault;
    if (s.now() - st.probing_since >= config_.path_timeout) return RetransmitVerdict::kGiveUp;
    sa.retransmit_at = s.now() + interval;
    return RetransmitVerdict::kKeepTrying;
  }
  // §3.11: the responder waits long, so that the initiator has time to find a path.
  if (sa.retransmits < ec.retransmit_tries) return RetransmitVerdict::kDefault;
  if (auto* task = dynamic_cast<SwitchTask*>(sa.active.get())) {
    auto& st = state(sa);
    if (task->switch_id() == st.switch_id) end_switch(sa, s, SwitchOutcome::kFailed, "no answer from the initiator");
    // Spec §6.2.8: without the old address and without another one the initiator knows
    // of, nothing can reach this SA any more.
    const auto& locals = s.local_addresses();
    bool old_gone = !locals.empty() && !host_has(locals, sa.local.address);
    if (old_gone && st.announced.empty()) return RetransmitVerdict::kGiveUp;
  }
  if (s.now() - sa.active_sent >= config_.path_timeout) return RetransmitVerdict::kGiveUp;
  sa.retransmit_at = s.now() + interval;
  return RetransmitVerdict::kKeepTrying;
}

namespace {

// Work deferred during an IKE SA rekey (SaState::update_due, rr_due): on the successor
// if there is one, here once established again, else a little later.
void run_deferred(IkeSa& sa, Services& s) {
  auto& st = state(sa);
  if (!st.update_due && !st.rr_due) return;
  IkeSa* target = &sa;
  if (IkeSa* next = sa.rekeyed_to ? s.find_sa(sa.rekeyed_to) : nullptr; next && next->state != IkeState::kDead)
    target = next;
  if (target->state != IkeState::kEstablished) {
    defer_during_rekey(sa, s);
    return;
  }
  auto& tst = state(*target);
  if (std::exchange(st.update_due, false) && may_update(*target)) queue_update(*target, s);
  if (std::exchange(st.rr_due, false)) {
    tst.rr_pending = true;
    queue_return_routability(*target, s);
  }
}

}  // namespace

void Mobike::on_timer(IkeSa& sa, Services& s) {
  decide_probe(sa, s);
  run_deferred(sa, s);
  if (auto* st = find_state(sa); st && st->list_due) {
    if (sa.state == IkeState::kEstablished) {
      state(sa).list_due = false;
      if (!waiting(sa, kAddressListTaskName)) s.queue(sa, std::make_unique<AddressListTask>());
    } else if (sa.state == IkeState::kRekeying) {
      defer_during_rekey(sa, s);  // the new SA inherits it otherwise
    }
  }
  if (auto* st = find_state(sa); st && st->switch_state == SaState::Switch::kAwaitUpdate) {
    if (s.now() >= st->switch_deadline)
      end_switch(sa, s, SwitchOutcome::kFailed, "no UPDATE_SA_ADDRESSES at the new address; staying");
    else
      sa.mobility_at = std::min(sa.mobility_at, st->switch_deadline);
  }
}

void Mobike::local_addresses_changed(IkeSa& sa, Services& s) {
  if (sa.state != IkeState::kEstablished || !sa.peer_mobike || !sa.config->mobike) return;
  auto& st = state(sa);
  if (!sa.original_initiator) {
    bool queued = waiting(sa, kAddressListTaskName);
    const auto& locals = s.local_addresses();
    bool lost = !locals.empty() && !host_has(locals, sa.local.address);
    if (queued || (st.announced_once && our_additional_addresses(sa, s) == st.announced)) {
      // nothing new to say
    } else if (lost && st.peer_switch) {
      // Our own address went away. The answer to a list sent from it could never reach
      // us and would hold up every later request — the switch to another address that
      // follows (the daemon, a cluster manager) must go first. The list leaves at the
      // next timer, behind that switch if one was started meanwhile.
      st.list_due = true;
      sa.mobility_at = std::min(sa.mobility_at, s.now());
    } else {
      s.queue(sa, std::make_unique<AddressListTask>());
    }
  } else if (st.probing && sa.active) {
    // A new address may be the way out: try every path now rather than at the next
    // back-off step.
    transmit_probes(sa, s);
    sa.retransmit_at = s.now() + s.config().retransmit_timeout;
  }
}

void Mobike::inherit(const IkeSa& old, IkeSa& fresh) {
  const SaState* st = find_state(old);
  if (!st) return;
  auto& to = state(fresh);
  to.peer_addresses = st->peer_addresses;
  to.looked_up = st->looked_up;
  to.announced = st->announced;
  to.announced_once = st->announced_once;
  to.committed = st->committed;
  to.updates = st->updates;
  to.peer_switch = st->peer_switch;
  // Whatever waited for the rekey is the new SA's to do (spec §8).
  to.list_due = st->list_due;
  to.update_due = st->update_due;
  to.rr_pending = st->rr_pending;
  to.rr_due = st->rr_due || st->rr_pending;
  if (to.list_due || to.update_due || to.rr_due) fresh.mobility_at = TimePoint{};
  // A switch answered on the old IKE SA completes with the update on the new one.
  if (st->switch_state == SaState::Switch::kAwaitUpdate) {
    to.switch_state = st->switch_state;
    to.switch_to = st->switch_to;
    to.switch_from = st->switch_from;
    to.switch_since = st->switch_since;
    to.switch_deadline = st->switch_deadline;
    fresh.mobility_at = std::min(fresh.mobility_at, st->switch_deadline);
  }
}

Expected<Bytes, std::string> Mobike::export_state(const IkeSa& sa) const {
  const SaState* st = find_state(sa);
  if (!st) return encode(SaState{});
  if (auto why = busy(*st); !why.empty()) return unexpected(why);
  return encode(*st);
}

Expected<void, std::string> Mobike::import_state(IkeSa& sa, Services&, ByteView in) {
  SaState decoded;
  if (auto ok = decode(in, decoded); !ok) return ok;
  auto& st = state(sa);
  st.peer_addresses = std::move(decoded.peer_addresses);
  st.announced = std::move(decoded.announced);
  st.announced_once = decoded.announced_once;
  st.committed = decoded.committed;
  st.updates = decoded.updates;
  st.peer_switch = decoded.peer_switch;
  st.list_due = decoded.list_due;
  st.update_due = decoded.update_due;
  st.rr_due = decoded.rr_due;
  if (st.list_due || st.update_due || st.rr_due) sa.mobility_at = TimePoint{};
  return {};
}

void install(ike::Engine& engine, Config config) { engine.set_mobility(std::make_unique<Mobike>(config)); }

bool update_addresses(ike::Engine& engine, std::uint64_t id, const IpAddress& local, TimePoint now) {
  return engine.with_sa(id, now, [&](IkeSa& sa, Services& s) {
    if (sa.state != IkeState::kEstablished || !may_update(sa) || sa.handoff != ike::Handoff::kNone) return false;
    auto& st = state(sa);
    st.probing = st.deciding = false;
    st.answers.clear();
    sa.local = {local, s.config().natt_port};
    queue_update(sa, s);
    return true;
  });
}

bool probe_paths(ike::Engine& engine, std::uint64_t id, TimePoint now) {
  return engine.with_sa(id, now, [&](IkeSa& sa, Services& s) {
    if (sa.state != IkeState::kEstablished || !may_update(sa) || sa.handoff != ike::Handoff::kNone) return false;
    start_probing(sa, s, "path lost");
    return true;
  });
}

bool add_peer_addresses(ike::Engine& engine, std::uint64_t id, std::vector<IpAddress> addresses, TimePoint now) {
  return engine.with_sa(id, now, [&](IkeSa& sa, Services& s) {
    if (sa.state != IkeState::kEstablished || !may_update(sa) || sa.handoff != ike::Handoff::kNone) return false;
    auto& st = state(sa);
    std::vector<IpAddress> fresh;
    for (const auto& a : addresses)
      if (a != sa.remote.address &&
          std::find(st.peer_addresses.begin(), st.peer_addresses.end(), a) == st.peer_addresses.end() &&
          std::find(st.looked_up.begin(), st.looked_up.end(), a) == st.looked_up.end())
        fresh.push_back(a);
    st.looked_up = std::move(addresses);
    if (fresh.empty()) return true;
    std::string list;
    for (const auto& a : fresh) list += (list.empty() ? "" : ", ") + a.to_string();
    s.log(LogLevel::kInfo, &sa, "peer addresses by lookup: " + list + (st.probing ? ", probed from now on" : ""));
    if (st.probing && sa.active) {
      // Now rather than at the next back-off step, as for a new local address.
      transmit_probes(sa, s);
      sa.retransmit_at = s.now() + s.config().retransmit_timeout;
    }
    return true;
  });
}

Expected<void, std::string> switch_address(ike::Engine& engine, std::uint64_t id, const IpAddress& to,
                                           TimePoint now) {
  std::string why = "no IKE SA #" + std::to_string(id);
  engine.with_sa(id, now, [&](IkeSa& sa, Services& s) {
    auto ok = switch_allowed(sa, to);
    if (!ok) {
      why = ok.error();
      return false;
    }
    start_switch(sa, s, to);
    why.clear();
    return true;
  });
  if (!why.empty()) return unexpected(why);
  return {};
}

Expected<void, std::string> relay_switch(ike::Engine& engine, std::uint64_t id, const IpAddress& to,
                                         TimePoint now) {
  std::uint64_t switch_id = 0;
  std::string why = "no IKE SA #" + std::to_string(id);
  engine.with_sa(id, now, [&](IkeSa& sa, Services& s) {
    const SaState* st = find_state(sa);
    if (sa.handoff != ike::Handoff::kExported) why = "the SA was not handed over";
    else if (!st || !st->peer_switch) why = "peer did not announce SWITCH_TO_IP_ADDRESS support";
    else if (st->switch_state != SaState::Switch::kIdle) why = "a switch to " + st->switch_to.to_string() + " is in flight";
    else if (to == sa.local.address) why = "already on " + to.to_string();
    else {
      s.log(ike::LogLevel::kInfo, &sa, "asking the initiator to switch to " + to.to_string() + " for the new node");
      switch_id = begin_switch(sa, to, s.now());
      why.clear();
    }
    return true;
  });
  if (!why.empty()) return unexpected(why);
  if (!engine.relay(id, std::make_unique<SwitchTask>(switch_id), now)) {
    engine.with_sa(id, now, [](IkeSa& sa, Services&) {
      state(sa).switch_state = SaState::Switch::kIdle;
      return true;
    });
    return unexpected(std::string("the SA cannot send for the new node"));
  }
  return {};
}

Expected<void, std::string> adopt_switch(ike::Engine& engine, std::uint64_t id, const IpAddress& to,
                                         TimePoint until, TimePoint now) {
  std::uint64_t switch_id = 0;
  std::string why = "no IKE SA #" + std::to_string(id);
  engine.with_sa(id, now, [&](IkeSa& sa, Services& s) {
    if (auto ok = switch_allowed(sa, to); !ok) {
      why = ok.error();
      return false;
    }
    s.log(ike::LogLevel::kInfo, &sa,
          "waiting for the initiator's answer to the old node's request to switch to " + to.to_string());
    switch_id = begin_switch(sa, to, s.now());
    why.clear();
    return true;
  });
  if (!why.empty()) return unexpected(why);
  if (!engine.adopt_request(id, std::make_unique<SwitchTask>(switch_id), until, now)) {
    engine.with_sa(id, now, [](IkeSa& sa, Services&) {
      state(sa).switch_state = SaState::Switch::kIdle;
      return true;
    });
    return unexpected(std::string("a request of the SA is outstanding"));
  }
  return {};
}

std::optional<SaView> view(const IkeSa& sa) {
  const SaState* st = find_state(sa);
  if (!st) return std::nullopt;
  SaView v;
  v.peer_addresses = st->peer_addresses;
  v.announced = st->announced;
  v.committed = st->committed;
  v.probing = st->probing || st->deciding;
  v.rr_pending = st->rr_pending;
  v.updates = st->updates;
  v.peer_switch = st->peer_switch;
  if (st->switch_state != SaState::Switch::kIdle) v.switching_to = st->switch_to;
  return v;
}

}  // namespace mobike::mobility
