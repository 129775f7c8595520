// A deterministic simulated network with a virtual clock: engines exchange datagrams
// with latency, loss and NATs modelled, so every exchange can be tested in-process.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "crypto/random.h"
#include "ike/engine.h"

namespace mobike::sim {

using ike::Duration;
using ike::TimePoint;

struct Packet {
  Endpoint src;
  Endpoint dst;
  Bytes data;
  bool keepalive = false;
  std::string from;  // sending host, for loss rules and logs
};

// A NAT like Linux MASQUERADE: endpoint-independent mapping (the source port is kept
// when free) and address-and-port-dependent filtering (only peers the inside host has
// sent to may answer) — the "restricted cone" of the seed slides.
class Nat {
 public:
  Nat(std::string name, IpAddress public_address) : name_(std::move(name)), public_(public_address) {}
  const IpAddress& public_address() const { return public_; }
  void set_public_address(const IpAddress& a) { public_ = a; }  // renumbered NAT
  void clear() { mappings_.clear(), reverse_.clear(), allowed_.clear(); }  // rebooted NAT
  // New mappings get the inside port plus this offset (a NAT that allocates other
  // public ports, e.g. after clear()); 0: the inside port is kept when free.
  std::uint16_t port_offset = 0;
  // Outbound translation (always succeeds).
  Endpoint translate_out(const Endpoint& inside, const Endpoint& remote);
  // Inbound: the inside endpoint, if a mapping exists and filtering lets `remote` in.
  std::optional<Endpoint> translate_in(const Endpoint& public_ep, const Endpoint& remote) const;
  std::size_t dropped_by_filter = 0;

 private:
  std::string name_;
  IpAddress public_;
  std::map<Endpoint, std::uint16_t> mappings_;
  std::map<std::uint16_t, Endpoint> reverse_;
  std::set<std::pair<Endpoint, Endpoint>> allowed_;  // (inside, remote)
};

struct Host {
  std::string name;
  std::unique_ptr<crypto::SeededRandom> random;
  std::unique_ptr<ike::Engine> engine;
  std::vector<IpAddress> addresses;
  // Addresses among `addresses` that sit on a loopback device (service addresses).
  std::set<IpAddress> on_loopback;
  // What the engine is told: `addresses`, flagged with `on_loopback`.
  std::vector<ike::HostAddress> host_addresses() const;
  // Addresses the host may still send from without owning them (the daemon's
  // IP_TRANSPARENT / IP_FREEBIND sockets: a gateway whose address went away, a cluster
  // node sending as a failed one). Nothing is delivered to them.
  std::vector<IpAddress> nonlocal_sources;
  Nat* nat = nullptr;  // the NAT this host sits behind, if any
  // Multihomed hosts: the NAT in front of one address (nullptr: that address is
  // direct); addresses not listed use `nat`.
  std::map<IpAddress, Nat*> nat_by_address;
  Nat* nat_for(const IpAddress& a) const {
    auto it = nat_by_address.find(a);
    return it != nat_by_address.end() ? it->second : nat;
  }
  std::vector<ike::DataplaneOp> dataplane;
  std::vector<ike::Event> events;
  std::vector<std::string> log;
  // The same lines with what the engine said they concern (the daemon's journal fields).
  struct LoggedSa {
    std::uint64_t id = 0;
    std::string connection;
    Endpoint remote;
  };
  struct Logged {
    std::string message;  // without the "[connection|id] " of `log`
    std::optional<LoggedSa> sa;
  };
  std::vector<Logged> records;
  std::size_t keepalives_sent = 0;
};

class Network {
 public:
  Network() = default;
  Host& add_host(const std::string& name, std::vector<IpAddress> addresses, ike::EngineConfig cfg = {},
                 std::uint64_t seed = 0);
  Nat& add_nat(const std::string& name, const IpAddress& public_address);
  void put_behind(Host& host, Nat& nat) { host.nat = &nat; }
  // Only `address` of `host` sits behind `nat` (nullptr: `address` is direct).
  void put_behind(Host& host, Nat* nat, const IpAddress& address) { host.nat_by_address[address] = nat; }
  // Changes a host's addresses and tells its engine, as the daemon's address monitor does.
  void set_addresses(Host& host, std::vector<IpAddress> addresses);

  TimePoint now() const { return now_; }
  Duration latency{10};
  // Extra delay per packet (reordering), and duplicates: both return values in ms / count.
  std::function<Duration(const Packet&)> jitter;
  std::function<int(const Packet&)> duplicates;
  // Return true to drop the packet.
  std::function<bool(const Packet&)> drop;
  std::size_t delivered = 0, dropped = 0;
  // Datagrams a host could not send: a source address it neither owns nor may send from
  // (nonlocal_sources), or source and destination of different address families.
  std::size_t unsendable = 0;

  // More components with timers besides the engines (a cluster node): when each wants to
  // be woken; run_until() then calls `until`, which drives them.
  std::vector<std::function<std::optional<TimePoint>()>> wakeups;

  // Delivers packets and fires timers until `until` returns true or `limit` passes.
  bool run_until(const std::function<bool()>& until, Duration limit = Duration(120000));
  void run_for(Duration d);
  void collect(Host& h);  // moves the host's engine outputs into the network / host
  void inject(const Packet& p) { schedule(p); }

 private:
  void schedule(const Packet& p);
  void deliver(const Packet& p);
  Host* owner_of(const IpAddress& a);
  Nat* nat_with(const IpAddress& a);
  void step_all();

  TimePoint now_{};
  std::vector<std::unique_ptr<Host>> hosts_;
  std::vector<std::unique_ptr<Nat>> nats_;
  struct InFlight {
    TimePoint at;
    std::uint64_t seq;
    Packet packet;
    bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<InFlight>> in_flight_;
  std::uint64_t seq_ = 0;
};

// Helpers for tests.
ike::ConnectionConfig psk_connection(const std::string& name, const std::string& remote,
                                     const std::string& local_id, const std::string& remote_id,
                                     const std::string& ike = "aes128gcm16-prfsha256-x25519",
                                     const std::string& esp = "aes128gcm16");
const ike::IkeSa* only_sa(const Host& h);
std::size_t count_events(const Host& h, ike::EventKind kind);

}  // namespace mobike::sim
