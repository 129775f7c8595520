#include "mobility/switch.h"

#include <algorithm>

#include "ike/connection.h"
#include "ike/informational.h"
#include "mobility/address_list.h"
#include "mobility/address_policy.h"
#include "mobility/update.h"

namespace mobike::mobility {

using ike::EventKind;
using ike::IkeSa;
using ike::LogLevel;
using ike::Services;
using ike::TaskResult;
using Switch = SaState::Switch;

namespace {

bool rekey_in_flight(const IkeSa& sa) {
  auto is_rekey = [](const ike::Task& t) { return std::string_view(t.name()) == "IKE_REKEY"; };
  if (sa.state == ike::IkeState::kRekeying || (sa.active && is_rekey(*sa.active))) return true;
  return std::any_of(sa.queue.begin(), sa.queue.end(), [&](const auto& t) { return is_rekey(*t); });
}

}  // namespace

Expected<void, std::string> switch_allowed(const IkeSa& sa, const IpAddress& to) {
  if (sa.state != ike::IkeState::kEstablished && sa.state != ike::IkeState::kRekeying)
    return unexpected(std::string("not established"));
  if (sa.original_initiator) return unexpected(std::string("we are the initiator (use update-addresses)"));
  if (sa.handoff != ike::Handoff::kNone) return unexpected(std::string("the SA is moving to another node"));
  const SaState* st = find_state(sa);
  if (!sa.peer_mobike || !st) return unexpected(std::string("peer does not do MOBIKE"));
  if (!st->peer_switch) return unexpected(std::string("peer did not announce SWITCH_TO_IP_ADDRESS support"));
  if (st->switch_state != Switch::kIdle) return unexpected("a switch to " + st->switch_to.to_string() + " is in flight");
  auto is_switch = [](const auto& t) { return std::string_view(t->name()) == kSwitchTaskName; };
  if ((sa.active && is_switch(sa.active)) || std::any_of(sa.queue.begin(), sa.queue.end(), is_switch))
    return unexpected(std::string("an earlier switch request is still unanswered"));
  if (rekey_in_flight(sa)) return unexpected(std::string("an IKE SA rekey is in flight"));
  if (!usable_address(to)) return unexpected(to.to_string() + " is not a usable address");
  if (to == sa.local.address) return unexpected("already on " + to.to_string());
  return {};
}

std::uint64_t begin_switch(IkeSa& sa, const IpAddress& to, TimePoint now) {
  auto& st = state(sa);
  st.switch_since = now;
  st.switch_state = Switch::kSent;
  st.switch_to = to;
  st.switch_from = sa.local.address;
  st.switch_deadline = TimePoint::max();
  st.switch_id++;
  return st.switch_id;
}

void start_switch(IkeSa& sa, Services& s, const IpAddress& to) {
  s.log(LogLevel::kInfo, &sa, "asking the initiator to switch to " + to.to_string());
  s.queue(sa, std::make_unique<SwitchTask>(begin_switch(sa, to, s.now())));
}

void end_switch(IkeSa& sa, Services& s, SwitchOutcome outcome, const std::string& detail) {
  const bool succeeded = outcome == SwitchOutcome::kSucceeded;
  auto& st = state(sa);
  if (st.switch_state == Switch::kIdle) return;
  std::string what = st.switch_from.to_string() + " -> " + st.switch_to.to_string() + ": " + detail;
  st.switch_state = Switch::kIdle;
  st.switch_deadline = TimePoint::max();
  s.stats().switches[static_cast<std::size_t>(outcome)].observe(
      std::chrono::duration_cast<ike::Duration>(s.now() - st.switch_since));
  // An IKE SA rekey copied the expectation to the new SA: this is its outcome too.
  if (IkeSa* next = sa.rekeyed_to ? s.find_sa(sa.rekeyed_to) : nullptr; next && next->mobility_state) {
    auto& nst = state(*next);
    if (nst.switch_state != Switch::kIdle && nst.switch_to == st.switch_to) {
      nst.switch_state = Switch::kIdle;
      nst.switch_deadline = TimePoint::max();
    }
  }
  s.log(succeeded ? LogLevel::kInfo : LogLevel::kWarn, &sa, "switch " + what);
  s.event(succeeded                            ? EventKind::kSwitchSucceeded
          : outcome == SwitchOutcome::kRefused ? EventKind::kSwitchRefused
                                               : EventKind::kSwitchFailed,
          sa, 0, what);
  // The address the SA left is an additional one now, the new one is in the IP header
  // (RFC 4555 §3.6): the initiator's list must say so, or it could neither probe the
  // old address nor accept a switch back to it as announced.
  if (succeeded && !waiting(sa, kAddressListTaskName) && st.announced_once && our_additional_addresses(sa, s) != st.announced)
    s.queue(sa, std::make_unique<AddressListTask>());
}

std::optional<std::vector<wire::Payload>> SwitchTask::build_request(IkeSa& sa, Services& s) {
  auto& st = state(sa);
  if (st.switch_state != Switch::kSent || st.switch_id != switch_id_) return std::nullopt;
  if (sa.state != ike::IkeState::kEstablished) {
    end_switch(sa, s, SwitchOutcome::kFailed, "the IKE SA is no longer established");
    return std::nullopt;
  }
  // From the SA's current (old) address: the only one the initiator's NAT lets in.
  return std::vector<wire::Payload>{wire::make_notify(s.config().switch_notify_type, st.switch_to.to_bytes())};
}

TaskResult SwitchTask::process_response(IkeSa& sa, Services& s, const std::vector<wire::Payload>& payloads) {
  auto& st = state(sa);
  // The update came first, or this switch ended (unanswered) before the answer did.
  if (st.switch_state != Switch::kSent || st.switch_id != switch_id_) return TaskResult::kDone;
  for (const auto& p : payloads)
    if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && wire::is_error(n->notify_type())) {
      end_switch(sa, s, SwitchOutcome::kRefused, std::string(wire::notify_name(n->type)));
      return TaskResult::kDone;
    }
  // The empty answer may come to either address (the drafts differ); either way the
  // initiator's UPDATE_SA_ADDRESSES at the new address is what moves the SA.
  st.switch_state = Switch::kAwaitUpdate;
  st.switch_deadline = s.now() + std::max(s.config().retransmit_timeout * 5, ike::Duration(5000));
  sa.mobility_at = std::min(sa.mobility_at, st.switch_deadline);
  // An IKE SA rekey completed while the request was out: the update will arrive on the
  // new SA, which carries the expectation from now on (spec §8).
  if (IkeSa* next = sa.rekeyed_to ? s.find_sa(sa.rekeyed_to) : nullptr; next && next->state != ike::IkeState::kDead) {
    auto& nst = state(*next);
    nst.switch_state = Switch::kAwaitUpdate;
    nst.switch_to = st.switch_to;
    nst.switch_from = st.switch_from;
    nst.switch_since = st.switch_since;
    nst.switch_deadline = st.switch_deadline;
    next->mobility_at = std::min(next->mobility_at, st.switch_deadline);
    st.switch_state = Switch::kIdle;
    st.switch_deadline = TimePoint::max();
  }
  return TaskResult::kDone;
}

void SwitchTask::abort(IkeSa& sa, Services& s) {
  if (state(sa).switch_id == switch_id_) end_switch(sa, s, SwitchOutcome::kFailed, "the IKE SA ended");
}

void SwitchTask::abandon(IkeSa& sa, Services& s) {
  // Only an unanswered request is abandoned: an answered one left kSent already.
  if (auto& st = state(sa); st.switch_id == switch_id_ && st.switch_state == Switch::kSent)
    end_switch(sa, s, SwitchOutcome::kFailed, "no answer to the switch request");
}

void handle_switch_request(IkeSa& sa, Services& s, const wire::NotifyPayload& notify, const Endpoint& remote,
                           Endpoint& respond_to) {
  if (!may_update(sa)) {
    // Only the responder may ask (spec §6.3.1): complete the exchange, do nothing.
    s.log(LogLevel::kWarn, &sa, "SWITCH_TO_IP_ADDRESS from the initiator ignored");
    return;
  }
  if (!sa.config->switch_enabled) return;  // we did not announce it: an unknown status notify
  auto refuse = [&](const std::string& why) {
    s.log(LogLevel::kWarn, &sa, "switch request refused: " + why + "; checking the current path");
    s.event(EventKind::kSwitchRefused, sa, 0, why);
    // Spec §6.3.3: answer on the current path and make sure it still works (one check
    // at a time, however many requests a misbehaving gateway sends).
    bool checking = (sa.active && std::string_view(sa.active->name()) == "DPD") || waiting(sa, "DPD");
    if (!checking) s.queue(sa, std::make_unique<ike::LivenessTask>());
  };
  auto to = notify.data.size() == 4 || notify.data.size() == 16 ? IpAddress::from_bytes(notify.data) : std::nullopt;
  if (!to) return refuse("malformed address (" + std::to_string(notify.data.size()) + " octets)");
  if (*to == sa.remote.address) return;  // already there
  if (!usable_address(*to)) return refuse(to->to_string() + " is not a usable address");
  const auto& locals = s.local_addresses();
  const auto usable = usable_local_addresses(*sa.config, locals);
  auto of_family = [&](const IpAddress& a) { return a.family() == to->family(); };
  bool family = locals.empty() ? to->family() == sa.local.address.family()
                               : std::any_of(usable.begin(), usable.end(), of_family);
  // Another family (Q11): the update leaves from our most preferred address of that
  // family.
  std::optional<IpAddress> local;
  if (family && to->family() != sa.local.address.family()) {
    if (auto it = std::find_if(usable.begin(), usable.end(), of_family); it != usable.end()) local = *it;
    family = local.has_value();
  }
  if (!family) return refuse("no local address of the family of " + to->to_string());
  auto& st = state(sa);
  bool announced = std::find(st.peer_addresses.begin(), st.peer_addresses.end(), *to) != st.peer_addresses.end();
  bool allowed = std::any_of(sa.config->switch_allow.begin(), sa.config->switch_allow.end(),
                             [&](const IpPrefix& p) { return p.contains(*to); });
  if (!announced && !allowed) return refuse(to->to_string() + " was not announced and is not allowed");

  Endpoint target{*to, sa.remote.port};
  // Generation 1 answers towards the new address — from the address the request came
  // in on, so not across address families: then the answer goes back to the source.
  if (sa.config->switch_response_to_new && to->family() == remote.address.family()) respond_to = target;
  s.log(LogLevel::kInfo, &sa, "the responder asks to switch to " + target.to_string() + " (from " +
                                  remote.to_string() + "): updating");
  // Our own pending change is superseded by this one (spec §6.3.8).
  st.probing = st.deciding = false;
  st.answers.clear();
  if (local) sa.local = {*local, s.config().natt_port};
  sa.remote = target;
  queue_update(sa, s);
  // The update waits for our outstanding request, which may have just gone to the
  // address the gateway is leaving: send it again to the new one rather than at the next
  // back-off step, seconds away.
  if (sa.active && !sa.active_request.empty()) s.send_on(sa, sa.local, sa.remote, sa.active_request);
}

}  // namespace mobike::mobility
