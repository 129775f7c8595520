#include "mobility/update.h"

#include <algorithm>

#include "ike/child_sa.h"
#include "ike/ike_init.h"
#include "mobility/address_list.h"
#include "mobility/mobike.h"
#include "mobility/return_routability.h"
#include "mobility/switch.h"

namespace mobike::mobility {

using ike::EventKind;
using ike::IkeSa;
using ike::LogLevel;
using ike::Services;
using ike::TaskResult;
using wire::NotifyType;
using wire::Payload;

namespace {

IkeSa* live_successor(IkeSa& sa, Services& s) {
  IkeSa* next = sa.rekeyed_to ? s.find_sa(sa.rekeyed_to) : nullptr;
  return next && next->state == ike::IkeState::kEstablished ? next : nullptr;
}

}  // namespace

void move_ike_sa(IkeSa& sa, Services& s, const Endpoint& local, const Endpoint& remote) {
  auto& st = state(sa);
  bool changed = st.committed != Path{local, remote};
  sa.local = local;
  sa.remote = remote;
  st.committed = {local, remote};
  st.rr_pending = false;
  st.updates++;
  // Keepalives go with being behind a NAT (RFC 3948 §4), which the move may change.
  if (!sa.nat_local)
    sa.keepalive_at = TimePoint::max();
  else if (sa.keepalive_at == TimePoint::max())
    sa.keepalive_at = s.now() + s.config().keepalive_interval;
  for (auto& c : sa.children) s.dataplane(ike::dataplane_op(ike::DataplaneOp::Kind::kUpdateAddresses, sa, c));
  s.event(EventKind::kAddressesUpdated, sa, 0,
          sa.local.to_string() + " <-> " + sa.remote.to_string() + (sa.nat_local ? " (NAT here)" : "") +
              (sa.nat_remote ? " (NAT at peer)" : "") + (changed ? "" : " (unchanged)"));
  // An IKE SA rekey crossed the update (it ran on this SA while the rekey moved the
  // Child SAs to the new one): the new SA and its Child SAs move too.
  if (IkeSa* next = sa.rekeyed_to ? s.find_sa(sa.rekeyed_to) : nullptr;
      next && next->state != ike::IkeState::kDead && next->peer_mobike) {
    next->nat_local = sa.nat_local;
    next->nat_remote = sa.nat_remote;
    state(*next).peer_addresses = st.peer_addresses;
    move_ike_sa(*next, s, local, remote);
  }
}

void queue_update(IkeSa& sa, Services& s, std::optional<TimePoint> since) {
  if (!waiting(sa, kUpdateTaskName)) s.queue(sa, std::make_unique<MobikeUpdateTask>(since.value_or(s.now())));
}

void record_move(Services& s, ike::MobilityOutcome outcome, TimePoint since) {
  s.stats().moves[static_cast<std::size_t>(outcome)].observe(std::chrono::duration_cast<ike::Duration>(s.now() - since));
}

void MobikeUpdateTask::abort(IkeSa& sa, Services& s) {
  // The IKE SA was rekeyed (and the old one deleted) before the update was answered:
  // the new SA, which has the Child SAs and the pending path, runs it (spec §8).
  IkeSa* next = live_successor(sa, s);
  if (next && may_update(*next) && state(*next).committed != Path{next->local, next->remote})
    queue_update(*next, s, since_);
  else
    record_move(s, ike::MobilityOutcome::kFailed, since_);
}

void defer_during_rekey(IkeSa& sa, Services& s) {
  if (sa.state == ike::IkeState::kDead) return;
  sa.mobility_at = std::min(sa.mobility_at, s.now() + ike::Duration(50));
}

void forward_update(IkeSa& sa, Services& s) {
  if (IkeSa* next = live_successor(sa, s)) {
    if (may_update(*next)) queue_update(*next, s);
    return;
  }
  state(sa).update_due = true;
  defer_during_rekey(sa, s);
}

void forward_return_routability(IkeSa& sa, Services& s) {
  if (IkeSa* next = live_successor(sa, s)) {
    state(*next).rr_pending = true;
    queue_return_routability(*next, s);
    return;
  }
  state(sa).rr_due = true;
  defer_during_rekey(sa, s);
}

std::optional<std::vector<Payload>> MobikeUpdateTask::build_request(IkeSa& sa, Services& s) {
  if (sa.state != ike::IkeState::kEstablished) {
    // Not lost: the IKE SA rekey in flight will be followed by this update (spec §8).
    if (sa.state == ike::IkeState::kRekeying || sa.rekeyed_to)
      forward_update(sa, s);
    else
      record_move(s, ike::MobilityOutcome::kFailed, since_);
    return std::nullopt;
  }
  cookie2_ = s.random().bytes(16);
  sent_ = {sa.local, sa.remote};
  std::vector<Payload> out{wire::make_notify(NotifyType::kUpdateSaAddresses)};
  if (sa.config->nat_traversal)
    ike::add_nat_detection(sa, out, sa.config->encap_force, s.random());
  else
    out.push_back(wire::make_notify(NotifyType::kNoNatsAllowed, no_nats_data(sa.local, sa.remote)));
  out.push_back(wire::make_notify(NotifyType::kCookie2, cookie2_));
  add_address_list(our_additional_addresses(sa, s), out);
  return out;
}

TaskResult MobikeUpdateTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  auto& st = state(sa);
  // Where the SA is now: sent_, or a newer path whose update is queued behind this one.
  Path pending{sa.local, sa.remote};
  for (const auto& p : payloads)
    if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && wire::is_error(n->notify_type())) {
      // UNACCEPTABLE_ADDRESSES, UNEXPECTED_NAT_DETECTED: the peer keeps the old path,
      // and so do we — unless we moved on meanwhile: the queued update tries that path.
      std::string why(wire::notify_name(n->type));
      s.log(LogLevel::kWarn, &sa, "address update to " + sent_.local.to_string() + " <-> " +
                                      sent_.remote.to_string() + " refused: " + why);
      if (pending == sent_) {
        sa.local = st.committed.local;
        sa.remote = st.committed.remote;
      }
      s.event(EventKind::kAddressUpdateRefused, sa, 0, why);
      record_move(s, ike::MobilityOutcome::kRefused, since_);
      return TaskResult::kDone;
    }
  // RFC 4555 §3.7: a wrong or missing COOKIE2 means the IKE SA must be closed.
  auto* cookie = wire::find_notify(payloads, NotifyType::kCookie2);
  if (!cookie || !equal_ct(cookie->data, cookie2_)) {
    s.log(LogLevel::kWarn, &sa, "COOKIE2 missing or wrong in the UPDATE_SA_ADDRESSES response");
    record_move(s, ike::MobilityOutcome::kFailed, since_);
    return TaskResult::kFailed;
  }
  if (st.last_response_path != sent_) {
    // The request went out on several paths (path probing) and the answer came on
    // another one: that proves nothing about the path it announced (§3.7), and the peer
    // may not even be there. Path probing has taken that answer as a probe result; the
    // update it queues confirms the chosen path.
    s.log(LogLevel::kInfo, &sa, "address update to " + sent_.local.to_string() + " <-> " + sent_.remote.to_string() +
                                    " answered on another path: not moving there");
    if (pending == sent_) {
      sa.local = st.committed.local;
      sa.remote = st.committed.remote;
    }
    return TaskResult::kDone;
  }
  // The answer confirms the path this request announced, and its NAT detection hashes
  // are of that path. The SA may have moved again while this exchange ran: it stays on
  // the newer path, whose update follows.
  sa.local = sent_.local;
  sa.remote = sent_.remote;
  if (sa.config->nat_traversal) ike::evaluate_nat_detection(sa, payloads, sa.config->encap_force);
  if (auto list = parse_address_list(payloads, nullptr)) st.peer_addresses = std::move(*list);
  move_ike_sa(sa, s, sent_.local, sent_.remote);
  record_move(s, ike::MobilityOutcome::kSucceeded, since_);
  if (pending != sent_) {
    sa.local = pending.local;
    sa.remote = pending.remote;
  }
  return TaskResult::kDone;
}

void respond_update(IkeSa& sa, Services& s, const std::vector<Payload>& request, const Endpoint& local,
                    const Endpoint& remote, std::vector<Payload>& response) {
  if (!sa.peer_mobike || sa.original_initiator) {
    // Only the initiator of the first IKE SA may move it (§3.5).
    s.log(LogLevel::kWarn, &sa, "UPDATE_SA_ADDRESSES from the MOBIKE responder ignored");
    return;
  }
  auto& st = state(sa);
  bool switching = st.switch_state != SaState::Switch::kIdle;
  if (switching && local.address != st.switch_to)
    end_switch(sa, s, SwitchOutcome::kFailed, "the initiator updated to " + local.to_string() + " instead");
  if (!ike::remote_address_allowed(*sa.config, remote.address) || !usable_address(remote.address)) {
    s.log(LogLevel::kWarn, &sa, "address update to " + remote.to_string() + " refused: not an allowed peer address");
    response.push_back(wire::make_notify(NotifyType::kUnacceptableAddresses));
    return;
  }
  bool announced = remote.address == st.committed.remote.address ||
                   std::find(st.peer_addresses.begin(), st.peer_addresses.end(), remote.address) !=
                       st.peer_addresses.end();
  bool moved = sa.local != local || sa.remote != remote;
  sa.local = local;
  sa.remote = remote;
  // Our own outstanding request (a liveness check, a return-routability check) went to
  // the old path: send it on the new one now rather than at its next back-off step,
  // which may be 15 s away — the return-routability check waits behind it.
  // Not our switch request: its answer is on its way already (the initiator runs this
  // update right after answering it).
  bool answering_switch = switching && sa.active && std::string_view(sa.active->name()) == kSwitchTaskName;
  if (moved && sa.active && !sa.active_request.empty() && !answering_switch)
    s.send_on(sa, sa.local, sa.remote, sa.active_request);
  if (wire::find_notify(request, NotifyType::kNatDetectionDestinationIp))
    ike::evaluate_nat_detection(sa, request, sa.config->encap_force);
  else if (wire::find_notify(request, NotifyType::kNoNatsAllowed))
    sa.nat_local = sa.nat_remote = false;  // checked by the caller: the header matched
  auto policy = sa.config->return_routability;
  bool check = policy == ike::ReturnRoutability::kAlways ||
               (policy == ike::ReturnRoutability::kUnannounced && !announced);
  if (switching && local.address == st.switch_to) {
    // We asked for this path and the initiator just reached us on it: no check needed
    // (spec Q9).
    check = false;
    move_ike_sa(sa, s, local, remote);
    s.stats().moves_followed++;
    end_switch(sa, s, SwitchOutcome::kSucceeded, "switched; initiator at " + remote.to_string());
    return;
  }
  if (check && st.committed != Path{local, remote}) {
    // The IKE SA answers on the new path at once; ESP follows once the path has shown
    // that the peer really receives there (§3.7).
    st.rr_pending = true;
    s.log(LogLevel::kInfo, &sa, "initiator moved to " + remote.to_string() + "; checking return routability");
    queue_return_routability(sa, s);
    return;
  }
  move_ike_sa(sa, s, local, remote);
  s.stats().moves_followed++;
}

}  // namespace mobike::mobility
