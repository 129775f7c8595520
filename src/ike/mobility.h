// The seam between the RFC 7296 core and address mobility (src/mobility: RFC 4555 and the
// responder-initiated switch). The engine calls these hooks at fixed points of its
// exchanges; it knows nothing of MOBIKE itself. Without a Mobility installed the engine
// is plain IKEv2: no MOBIKE_SUPPORTED, no address updates.
#pragma once

#include <optional>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "ike/types.h"
#include "wire/payloads.h"

namespace mobike::ike {

struct IkeSa;
class Services;

// Per-IKE-SA state owned by the extension (IkeSa::mobility_state).
struct MobilityState {
  virtual ~MobilityState() = default;
};

class Mobility {
 public:
  virtual ~Mobility() = default;

  // IKE_AUTH: notifies to add to our request (initiator) or response (responder), and
  // the peer's IKE_AUTH payloads (its request, or its response), seen before `add`
  // on the responder.
  virtual void auth_payloads(IkeSa& sa, Services& s, std::vector<wire::Payload>& out) = 0;
  virtual void auth_received(IkeSa& sa, Services& s, const std::vector<wire::Payload>& in) = 0;
  // The responder's last word on an authenticated IKE_AUTH request, before anything is
  // established: the error notify to refuse it with, or nullopt. (MOBIKE: a
  // NO_NATS_ALLOWED that the packet's own addresses contradict, RFC 4555 §3.9.)
  virtual std::optional<wire::NotifyType> auth_refusal(const IkeSa& sa, Services& s,
                                                       const std::vector<wire::Payload>& request) = 0;

  // An INFORMATIONAL request that does not delete the IKE SA arrived on (local, remote):
  // add to the response. `respond_to` starts as `remote`; the hook may send the
  // response elsewhere (a switch request answered towards the new address).
  virtual void respond_informational(IkeSa& sa, Services& s, const std::vector<wire::Payload>& request,
                                     const Endpoint& local, const Endpoint& remote, Endpoint& respond_to,
                                     std::vector<wire::Payload>& response) = 0;

  // Liveness checks (RFC 7296 §2.4) may carry NAT detection (RFC 4555 §3.8).
  virtual void liveness_request(IkeSa& sa, Services& s, std::vector<wire::Payload>& out) = 0;
  virtual void liveness_response(IkeSa& sa, Services& s, const std::vector<wire::Payload>& in) = 0;

  // The response to our request arrived on (local, remote), before the task sees it.
  virtual void response_path(IkeSa& sa, Services& s, const Endpoint& local, const Endpoint& remote) = 0;
  // A response that authenticates but no longer matches an outstanding request: a late
  // answer to a request that was sent on several paths. True if it was wanted.
  virtual bool wants_late_response(const IkeSa& sa, std::uint32_t message_id) const = 0;
  virtual void late_response(IkeSa& sa, Services& s, const Endpoint& local, const Endpoint& remote) = 0;

  // Sends the outstanding request (first time or again). False: the engine sends it on
  // the IKE SA's path itself.
  virtual bool transmit(IkeSa& sa, Services& s) = 0;
  enum class RetransmitVerdict : std::uint8_t { kDefault, kKeepTrying, kGiveUp };
  // The retransmission timer fired. kKeepTrying: send again (through transmit()) at the
  // IkeSa::retransmit_at the hook has set; kDefault: the engine's back-off and give-up
  // rule (retransmit_tries) apply.
  virtual RetransmitVerdict on_retransmit(IkeSa& sa, Services& s) = 0;

  // IkeSa::mobility_at is due.
  virtual void on_timer(IkeSa& sa, Services& s) = 0;
  // The host's address set changed (Services::local_addresses()).
  virtual void local_addresses_changed(IkeSa& sa, Services& s) = 0;
  // An IKE SA rekey made `fresh` the successor of `old`.
  virtual void inherit(const IkeSa& old, IkeSa& fresh) = 0;

  // Cluster moves (Engine::export_sa / import_sa): the extension's per-SA state as
  // octets the extension of another engine reads back, or an error while an exchange
  // of the extension is under way (the SA cannot move then).
  virtual Expected<Bytes, std::string> export_state(const IkeSa& sa) const = 0;
  virtual Expected<void, std::string> import_state(IkeSa& sa, Services& s, ByteView state) = 0;
};

}  // namespace mobike::ike
