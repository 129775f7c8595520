// Path probing (RFC 4555 §3.4): when the IKE SA's path fails, the outstanding request
// goes out on every candidate pair of a local and a peer address; the pairs that answer
// are ranked by policy (configured local preference, then the original address family,
// then the peer's current address, then the first answer) and the SA updates to the best.
#pragma once

#include <vector>

#include "ike/task.h"
#include "mobility/mobike.h"
#include "mobility/sa_state.h"

namespace mobike::mobility {

// Candidate paths in rank order (best first). Our side uses the NAT-T port; the peer's
// current address keeps its port, other peer addresses get the NAT-T port.
std::vector<Path> candidate_paths(const ike::IkeSa& sa, ike::Services& s);

// Lower is better; equal ranks are decided by the order of answers.
int path_rank(const ike::IkeSa& sa, const Path& p);

// Starts probing: the outstanding request (or a new probe if there is none) goes out on
// every candidate path from now on.
void start_probing(ike::IkeSa& sa, ike::Services& s, const char* why);
// Sends the outstanding request on every candidate path; returns how many.
std::size_t transmit_probes(ike::IkeSa& sa, ike::Services& s);
// A path answered the probed request.
void probe_answered(ike::IkeSa& sa, ike::Services& s, const Config& config, const Path& path);
// The grace period after the first answer is over: take the best answer.
void decide_probe(ike::IkeSa& sa, ike::Services& s);

// An INFORMATIONAL request with NAT detection, sent when probing starts with nothing
// else outstanding.
class PathProbeTask final : public ike::Task {
 public:
  wire::ExchangeType exchange() const override { return wire::ExchangeType::kInformational; }
  const char* name() const override { return "MOBIKE_PROBE"; }
  std::optional<std::vector<wire::Payload>> build_request(ike::IkeSa& sa, ike::Services& s) override;
  ike::TaskResult process_response(ike::IkeSa&, ike::Services&, const std::vector<wire::Payload>&) override {
    return ike::TaskResult::kDone;
  }
};

}  // namespace mobike::mobility
