// dataplane = "xfrm": the Linux kernel does ESP. Every DataplaneOp becomes netlink
// requests through platform::XfrmChildSas (SAs, out/in/fwd policies, MIGRATE); the
// kernel then encrypts what its policies select and decrypts what arrives, plain or
// UDP-encapsulated on the NAT-T socket (UDP_ENCAP, see prepare_ike_socket_for_xfrm).
//
// A request the kernel refuses is logged with the kernel's own message and counted in
// stats(); it never stops the daemon: the IKE SA stays up and the next Child SA (a
// rekey) tries again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/expected.h"
#include "daemon/config.h"
#include "daemon/dataplane.h"
#include "platform/rtnetlink.h"
#include "platform/sys_error.h"
#include "platform/xfrm.h"

namespace mobike::daemon {

class XfrmDataplane final : public Dataplane {
 public:
  // Opens the NETLINK_XFRM socket.
  static Expected<std::unique_ptr<XfrmDataplane>, std::string> create(const DaemonConfig& config);
  // On any transport (tests); `kernel` must outlive the data plane.
  XfrmDataplane(platform::XfrmTransport& kernel, const DaemonConfig& config);
  // Removes whatever is still installed: the kernel would otherwise keep enforcing our
  // policies after the daemon is gone.
  ~XfrmDataplane() override;

  void apply(const ike::DataplaneOp& op) override;
  std::optional<ChildTraffic> traffic(std::uint64_t child_sa_id) const override;
  // Not yet read from the kernel (XFRMA_REPLAY_ESN_VAL): kernel-held SAs cannot move.
  std::optional<ike::EspState> esp_state(std::uint64_t) const override { return std::nullopt; }
  nlohmann::json stats() const override;
  // Traffic: what the SAs mobiked deleted (rekeys, deletes, address changes that
  // re-created an SA without its counters) or the kernel expired carried, as last read
  // (GETSA right before the delete, or the hard XFRM_MSG_EXPIRE), plus the live SAs'
  // counters from one XFRM_MSG_GETSA dump. Drops: /proc/net/xfrm_stat
  // (xfrm_drop_reasons), the whole network namespace's.
  std::optional<DataplaneTotals> totals() const override;
  int event_fd() const override { return events_ ? events_->fd() : -1; }
  std::vector<std::pair<std::uint32_t, Endpoint>> take_esp_mappings() override;
  // The kernel's XFRM_MSG_EXPIRE of our SAs, one report per Child SA and kind.
  std::vector<ChildExpire> take_expires() override;
  // Trap policies (out, in, fwd with the Child SA's template, no SA): the kernel drops
  // what they match and sends XFRM_MSG_ACQUIRE.
  Expected<void, std::string> install_trap(std::uint64_t trap_id, const TrapSpec& spec) override;
  void remove_trap(std::uint64_t trap_id) override;
  std::vector<std::uint64_t> take_acquires() override;
  void on_udp_esp(std::span<std::uint8_t> packet, const Endpoint& local, const Endpoint& remote) override;

  // What the event socket brought (exposed for tests): mappings and expires of our SAs
  // wait for take_esp_mappings() / take_expires().
  void on_events(const platform::XfrmEvents& events);

  // The kernel's view of a kInstall op (exposed for tests).
  static platform::XfrmChild child_of(const ike::DataplaneOp& op, std::uint32_t replay_window);
  // Where totals() reads the kernel's XFRM statistics (tests).
  void set_xfrm_stat_path(std::string path) { xfrm_stat_path_ = std::move(path); }

 private:
  void record_error(const char* op, const platform::SysError& e);
  // Routes for the remote selectors of a Child SA (see install_routes in config.h):
  // shared by Child SAs with the same selectors, re-pointed when the SA moves.
  void add_routes(const ike::DataplaneOp& op);
  void remove_routes(std::uint64_t child_sa_id);
  void reroute(const ike::DataplaneOp& op);
  // Adds the last counters of SAs that are gone to the totals.
  void retire(const platform::XfrmChildUsage& u);
  void retire(bool inbound, const platform::SaUsage& u);

  std::unique_ptr<platform::XfrmSocket> socket_;  // when create() opened it
  // usage() only reads from the kernel, but is not const; traffic() is.
  mutable platform::XfrmChildSas xfrm_;
  std::uint32_t replay_window_;
  std::optional<platform::RouteControl> routes_;  // when install_routes is on
  // Reads the event socket into the pending lists.
  void read_events();
  std::optional<platform::XfrmEventSocket> events_;  // XFRM_MSG_MAPPING, XFRM_MSG_EXPIRE
  std::vector<std::pair<std::uint32_t, Endpoint>> pending_mappings_;
  std::vector<ChildExpire> pending_expires_;
  std::vector<std::uint64_t> pending_acquires_;
  std::uint64_t acquires_ = 0, acquires_unmatched_ = 0;
  std::uint64_t mappings_ = 0, events_malformed_ = 0, expires_soft_ = 0, expires_hard_ = 0;
  std::uint32_t routing_table_ = 220;
  struct RouteRef {
    platform::RouteSpec spec;
    std::uint64_t owner = 0;  // the Child SA whose path the route follows
    int refs = 0;
  };
  std::map<std::pair<IpAddress, std::uint8_t>, RouteRef> route_refs_;
  std::map<std::uint64_t, std::vector<IpPrefix>> child_routes_;
  struct VipRef {
    int refs = 0;
    int ifindex = 0;
  };
  std::map<IpAddress, VipRef> vip_refs_;
  std::map<std::uint64_t, std::vector<IpAddress>> child_vips_;
  bool rule_added_[2] = {false, false};  // v4, v6
  std::uint64_t routes_installed_ = 0, route_errors_ = 0;
  struct {
    std::uint64_t installs = 0, removals = 0, updates = 0, activations = 0;
    std::uint64_t install_errors = 0, remove_errors = 0, update_errors = 0;
    std::uint64_t esp_udp_dropped = 0;
  } stats_;
  mutable std::uint64_t usage_errors_ = 0;
  // The traffic of SAs no longer in the kernel (packets/bytes only).
  DataplaneTotals retired_;
  // Our SAs that were already gone when we came to delete them: a hard expire of theirs
  // may still wait on the event socket, with their last counters. The newest few.
  std::vector<platform::XfrmSaRef> vanished_;
  std::string xfrm_stat_path_ = "/proc/net/xfrm_stat";
  mutable std::uint64_t xfrm_stat_errors_ = 0;
  std::optional<platform::SysError> last_error_;
};

// The kernel's XFRM statistics (platform::parse_xfrm_stat) as drops by reason, every
// counter once: those with a userspace data plane counterpart (esp::Drop) under its
// name ("unknown SPI", "replay", "authentication", ...), the others under the kernel's
// own (XfrmInNoPols, XfrmOutNoStates, ...).
std::map<std::string, std::uint64_t> xfrm_drop_reasons(
    const std::vector<std::pair<std::string, std::uint64_t>>& xfrm_stat);

// For every IKE socket of the daemon with the xfrm backend: exempts it from IPsec
// policies (a policy covering the peer would otherwise capture IKE itself) and, on the
// NAT-T port, hands ESP-in-UDP to the kernel.
Expected<void, std::string> prepare_ike_socket_for_xfrm(int fd, AddressFamily family, bool natt);

}  // namespace mobike::daemon
