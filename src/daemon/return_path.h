// Return traffic follows the SA (docs/cluster.md): the protected side must send packets
// for a Child SA's remote traffic selectors to the node that holds the SA now. Driven by
// the data plane's installs and deletes, so it follows every way an SA arrives (new,
// rekeyed, taken from another node) or leaves (deleted, handed over), with a count per
// address so that a rekey's overlap does not withdraw it.
//  - proxy_arp: this node answers ARP / neighbour solicitations on the LAN for the
//    selectors' single addresses and announces them when it takes them (gratuitous ARP),
//    as strongSwan's farp plugin does for virtual IPs. Ranges and subnets are left to a
//    router (the hook): proxying a whole subnet would answer for hosts that are not there.
//  - hook: a command run on every change, the selectors in its environment, in the
//    manner of strongSwan's updown script (for BGP, a router's API, ...).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/expected.h"
#include "daemon/config.h"
#include "ike/types.h"

namespace mobike::platform {
class ProxyArp;
}

namespace mobike::daemon {

class ReturnPath {
 public:
  static Expected<std::unique_ptr<ReturnPath>, std::string> create(const ClusterConfig& config);
  ~ReturnPath();

  // Every data-plane operation the daemon applies.
  void on_dataplane_op(const ike::DataplaneOp& op);
  // Announce again what the Child SAs of an IKE SA attract (its move came back here).
  void announce(std::uint64_t ike_sa_id);

  struct Counters {
    std::uint64_t taken = 0, released = 0, announced = 0, hook_runs = 0, hook_failures = 0, errors = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  explicit ReturnPath(const ClusterConfig& config);
  struct Child {
    std::uint64_t ike_sa_id = 0;
    std::vector<IpAddress> hosts;         // single-address selectors (proxy ARP)
    std::vector<std::string> selectors;   // all of them, as text (hook)
  };
  void take(std::uint64_t child_sa_id, Child c, bool moved_here);
  void release(std::uint64_t child_sa_id);
  void run_hook(const char* verb, std::uint64_t child_sa_id, const Child& c);
  void reap();

  ReturnPath(const ReturnPath&) = delete;
  ReturnPath& operator=(const ReturnPath&) = delete;

  ReturnTraffic mode_;
  std::string node_;
  std::string hook_;
  std::unique_ptr<platform::ProxyArp> arp_;
  std::map<std::uint64_t, Child> children_;     // by Child SA id
  std::map<std::string, int> refs_;             // proxied address -> Child SAs using it
  std::vector<pid_t> hooks_running_;
  bool v6_enabled_ = false;
  Counters counters_;
};

}  // namespace mobike::daemon
