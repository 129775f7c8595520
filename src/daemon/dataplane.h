// The data plane behind the engine's DataplaneOps: "none" (control plane only) or
// "userspace" (ESP over a TUN device, userspace_dataplane.h) or "xfrm" (the kernel's
// IPsec, xfrm_dataplane.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <span>

#include <nlohmann/json.hpp>

#include "common/expected.h"
#include "common/ip_address.h"
#include "ike/types.h"

namespace mobike::daemon {

struct ChildTraffic {
  std::uint64_t bytes_in = 0, bytes_out = 0, packets_in = 0, packets_out = 0;
  std::map<std::string, std::uint64_t> drops;  // by reason, both directions
};

// The traffic of every Child SA this data plane carried since it started, deleted ones
// included, and its drops by reason (also those no Child SA is known for).
struct DataplaneTotals {
  std::uint64_t bytes_in = 0, bytes_out = 0, packets_in = 0, packets_out = 0;
  std::map<std::string, std::uint64_t> drops;
  // Where the numbers come from, for the metrics' HELP text; empty: counted by mobiked.
  std::string traffic_source, drops_source;
};

struct ChildExpire {
  std::uint64_t child_sa_id = 0;
  bool hard = false;
  ike::ExpireCause cause = ike::ExpireCause::kBytes;
  friend bool operator==(const ChildExpire&, const ChildExpire&) = default;
};

// What a trap (start = "trap") covers: a Child SA's selectors and outer addresses,
// before any SA exists.
struct TrapSpec {
  IpAddress local, remote;
  std::vector<wire::TrafficSelector> local_ts, remote_ts;
};

class Dataplane {
 public:
  virtual ~Dataplane() = default;
  virtual void apply(const ike::DataplaneOp& op) = 0;
  virtual std::optional<ChildTraffic> traffic(std::uint64_t child_sa_id) const = 0;
  // Sequence numbers, replay window and counts of a Child SA, for a cluster move
  // (ike::ChildSaSnapshot::esp); read after its kSuspendOutbound was applied. nullopt
  // when this backend cannot tell (the SA cannot move then).
  virtual std::optional<ike::EspState> esp_state(std::uint64_t child_sa_id) const = 0;
  virtual nlohmann::json stats() const = 0;
  // For the metrics endpoint (on the event loop, at each scrape); nullopt where the
  // backend does not count.
  virtual std::optional<DataplaneTotals> totals() const { return std::nullopt; }
  // An ESP packet that arrived UDP-encapsulated on the NAT-T port (marker-free).
  virtual void on_udp_esp(std::span<std::uint8_t> packet, const Endpoint& local, const Endpoint& remote) = 0;
  // Child SAs past a limit of their DataplaneOp::limits (RFC 4301 §4.4.2.1), or whose
  // sequence numbers are running out (RFC 4303 §3.3.3): for Engine::on_child_expire.
  virtual std::vector<ChildExpire> take_expires() { return {}; }
  // Called (at most once until take_expires()) when reports wait that came with
  // packets rather than on event_fd(): the daemon then collects them soon.
  virtual void set_report_callback(std::function<void()>) {}
  // Traps: traffic the selectors cover that no Child SA carries is reported
  // (take_acquires) instead of leaving unprotected or vanishing unnoticed.
  virtual Expected<void, std::string> install_trap(std::uint64_t trap_id, const TrapSpec&) {
    (void)trap_id;
    return unexpected(std::string("this data plane carries no traffic: nothing to trap"));
  }
  virtual void remove_trap(std::uint64_t) {}
  // Traps that traffic hit since the last call, each once.
  virtual std::vector<std::uint64_t> take_acquires() { return {}; }
  // A descriptor that becomes readable when the backend has reports for the engine (the
  // kernel's XFRM events); -1: none. Owned by the data plane.
  virtual int event_fd() const { return -1; }
  // Authenticated ESP of a Child SA (our SPI) that came from another endpoint than the
  // SA's peer: a NAT mapping changed. Read when event_fd() is readable.
  virtual std::vector<std::pair<std::uint32_t, Endpoint>> take_esp_mappings() { return {}; }
};

// dataplane = "none": SAs are negotiated, nothing is installed, ESP is dropped.
class NoDataplane final : public Dataplane {
 public:
  void apply(const ike::DataplaneOp&) override {}
  std::optional<ChildTraffic> traffic(std::uint64_t) const override { return std::nullopt; }
  // Nothing is ever sent or received: a fresh state is the exact one.
  std::optional<ike::EspState> esp_state(std::uint64_t) const override { return ike::EspState{}; }
  nlohmann::json stats() const override { return {{"backend", "none"}, {"esp_dropped", esp_dropped_}}; }
  std::optional<DataplaneTotals> totals() const override {
    DataplaneTotals t;
    if (esp_dropped_) t.drops["no_dataplane"] = esp_dropped_;
    return t;
  }
  void on_udp_esp(std::span<std::uint8_t>, const Endpoint&, const Endpoint&) override { ++esp_dropped_; }

 private:
  std::uint64_t esp_dropped_ = 0;
};

}  // namespace mobike::daemon
