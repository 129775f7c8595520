// Starting connections as the initiator (start = "initiate", `mobikectl initiate`). The
// peer's candidate addresses are the addresses its remote_addrs list and every address
// its DNS names resolve to (off the event loop), in the order listed and resolved. An
// IKE SA goes to the first candidate we have a local address for; when its IKE_SA_INIT
// got no answer after every retransmission, a new IKE SA goes to the next. Once every
// candidate has failed the names are resolved again, and the addresses not tried yet
// are the next candidates; the attempt ends when a lookup brings none.
//
// An established IKE SA whose MOBIKE path probing found no answer on any known path
// (EventKind::kNoPath) has the names looked up again too: their addresses join the
// probing (mobility::add_peer_addresses), so that a gateway that moved to a new address
// and could not tell us (its announcement lost behind our NAT) is found where DNS says.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/expected.h"
#include "common/ip_address.h"
#include "ike/engine.h"

namespace mobike::daemon {

class Initiator {
 public:
  using Addresses = Expected<std::vector<IpAddress>, std::string>;  // or why not
  struct Hooks {
    // Looks a host name up off the event loop; the answer comes later, on the loop.
    std::function<void(const std::string& name, std::function<void(Addresses)>)> resolve;
    // The address to initiate `c` from towards `remote`, if we have one.
    std::function<std::optional<IpAddress>(const ike::ConnectionConfig& c, const IpAddress& remote)> local_for;
    // Runs a function later on the event loop (not inside the engine's batch of events).
    std::function<void(std::function<void()>)> post;
    // Gives an established IKE SA the peer's addresses by lookup (mobility::add_peer_addresses).
    std::function<bool(std::uint64_t ike_sa, std::vector<IpAddress> addresses)> add_peer_addresses;
    // Sends what the engine queued (Daemon::flush).
    std::function<void()> flush;
    std::function<ike::TimePoint()> now;
  };
  // The first IKE SA's id, or why none started.
  using Done = std::function<void(Expected<std::uint64_t, std::string>)>;

  Initiator(ike::Engine& engine, Hooks hooks) : engine_(engine), hooks_(std::move(hooks)) {}

  // Starts `connection`. `done` is called at once when remote_addrs hold no name, else
  // once the names are resolved.
  void initiate(const std::string& connection, Done done);
  // Every engine event (Daemon::flush): an attempt's IKE SA that got no answer makes way
  // for the next candidate; its establishment or any other end ends the attempt. An IKE
  // SA without a working path has its peer's names looked up again.
  void on_event(const ike::Event& e);
  // The daemon stops: no attempt goes on; callers still waiting hear why.
  void stop();
  std::size_t attempts() const { return attempts_.size(); }

 private:
  struct Attempt {
    std::string connection;
    std::vector<std::string> entries;  // its remote_addrs when the attempt started
    std::uint64_t for_sa = 0;          // a lookup for this established IKE SA (kNoPath), not an initiation
    Done done;                         // until the first IKE SA started
    std::vector<std::string> names;    // the DNS names among remote_addrs
    std::uint64_t round = 0;           // lookups of all names so far
    std::size_t pending = 0;           // lookups of this round still out
    std::map<std::string, std::vector<IpAddress>> answers;  // of this round
    std::vector<std::string> errors;                        // of this round
    std::deque<IpAddress> queue;                            // candidates not tried yet, in order
    std::vector<IpAddress> tried;                           // initiated to (no answer) or without a local address
    std::vector<IpAddress> unanswered, unroutable;
    IpAddress current;
    std::uint64_t sa = 0;  // the IKE SA trying `current`
  };
  const ike::ConnectionConfig* config(const std::string& name) const;
  std::uint64_t start(const std::string& connection, const std::vector<std::string>& remote_addrs);
  void look_up_for(std::uint64_t ike_sa);
  void resolve_all(std::uint64_t id);
  void resolved(std::uint64_t id, std::uint64_t round, const std::string& name, Addresses answer);
  // Initiates to the next candidate; without one, resolves again unless `fresh` (the
  // candidates come from a lookup just made), else ends the attempt.
  void try_next(std::uint64_t id, bool fresh);
  void finish(std::uint64_t id, const std::string& why);

  ike::Engine& engine_;
  Hooks hooks_;
  std::map<std::uint64_t, Attempt> attempts_;
  std::uint64_t last_id_ = 0;
};

// "a, b, c"
std::string join_addresses(const std::vector<IpAddress>& addresses);

}  // namespace mobike::daemon
