#include "ike/ike_mobike.h"

#include "ike/child_sa.h"
#include "ike/ike_init.h"

namespace mobike::ike {

using wire::NotifyType;
using wire::Payload;

void move_ike_sa(IkeSa& sa, Services& s, const Endpoint& local, const Endpoint& remote) {
  bool changed = sa.local != local || sa.remote != remote;
  sa.local = local;
  sa.remote = remote;
  // Keepalives go with being behind a NAT (RFC 3948 §4), which the move may change.
  if (!sa.nat_local)
    sa.keepalive_at = TimePoint::max();
  else if (sa.keepalive_at == TimePoint::max())
    sa.keepalive_at = s.now() + s.config().keepalive_interval;
  for (auto& c : sa.children) s.dataplane(dataplane_op(DataplaneOp::Kind::kUpdateAddresses, sa, c));
  s.event(EventKind::kAddressesUpdated, sa, 0,
          sa.local.to_string() + " <-> " + sa.remote.to_string() + (sa.nat_local ? " (NAT here)" : "") +
              (sa.nat_remote ? " (NAT at peer)" : "") + (changed ? "" : " (unchanged)"));
}

std::optional<std::vector<Payload>> MobikeUpdateTask::build_request(IkeSa& sa, Services& s) {
  if (sa.state != IkeState::kEstablished) return std::nullopt;
  cookie2_ = s.random().bytes(16);
  sent_from_ = sa.local;
  std::vector<Payload> out{wire::make_notify(NotifyType::kUpdateSaAddresses)};
  add_nat_detection(sa, out, sa.config->encap_force, s.random());
  out.push_back(wire::make_notify(NotifyType::kCookie2, cookie2_));
  return out;
}

TaskResult MobikeUpdateTask::process_response(IkeSa& sa, Services& s, const std::vector<Payload>& payloads) {
  for (const auto& p : payloads)
    if (auto* n = std::get_if<wire::NotifyPayload>(&p.body); n && wire::is_error(n->notify_type())) {
      // UNACCEPTABLE_ADDRESSES, UNEXPECTED_NAT_DETECTED: the peer keeps the old path.
      s.log(LogLevel::kWarn, &sa, "address update refused: " + std::string(wire::notify_name(n->type)));
      s.event(EventKind::kAddressesUpdated, sa, 0, std::string("refused: ") + std::string(wire::notify_name(n->type)));
      return TaskResult::kDone;
    }
  // RFC 4555 §3.7: a wrong or missing COOKIE2 means the IKE SA must be closed.
  auto* cookie = wire::find_notify(payloads, NotifyType::kCookie2);
  if (!cookie || !equal_ct(cookie->data, cookie2_)) {
    s.log(LogLevel::kWarn, &sa, "COOKIE2 missing or wrong in the UPDATE_SA_ADDRESSES response");
    return TaskResult::kFailed;
  }
  evaluate_nat_detection(sa, payloads, sa.config->encap_force);
  // The SA may have moved again while this exchange ran: the newer update follows.
  move_ike_sa(sa, s, sa.local, sa.remote);
  return TaskResult::kDone;
}

void respond_mobike(IkeSa& sa, Services& s, const std::vector<Payload>& request, const Endpoint& local,
                    const Endpoint& remote, std::vector<Payload>& response) {
  bool update = wire::find_notify(request, NotifyType::kUpdateSaAddresses) != nullptr;
  bool nat_d = wire::find_notify(request, NotifyType::kNatDetectionDestinationIp) != nullptr;
  if (update && sa.peer_mobike && sa.original_initiator) {
    // Only the initiator of the first IKE SA may move it (RFC 4555 §3.5).
    s.log(LogLevel::kWarn, &sa, "UPDATE_SA_ADDRESSES from the MOBIKE responder ignored");
    update = false;
  }
  if (update && sa.peer_mobike) {
    sa.local = local;
    sa.remote = remote;
    if (nat_d) evaluate_nat_detection(sa, request, sa.config->encap_force);
    move_ike_sa(sa, s, local, remote);
  }
  if (nat_d) {
    Endpoint save_local = sa.local, save_remote = sa.remote;
    // Hashes of the path this request took, whatever the SA uses.
    sa.local = local;
    sa.remote = remote;
    add_nat_detection(sa, response, sa.config->encap_force, s.random());
    sa.local = save_local;
    sa.remote = save_remote;
  }
  if (auto* cookie = wire::find_notify(request, NotifyType::kCookie2))
    response.push_back(wire::make_notify(NotifyType::kCookie2, cookie->data));
}

}  // namespace mobike::ike
