// What exchanges may ask of the engine: randomness, configuration, time and the
// outputs (events, data-plane operations, logs). Implemented by Engine; a narrow
// interface so that tasks stay independent of the SA table and the timer queue.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "crypto/random.h"
#include "ike/connection.h"
#include "ike/types.h"

namespace mobike::ike {

struct IkeSa;
struct ChildSa;
class Task;
class Mobility;

class AddressPool;

class Services {
 public:
  virtual ~Services() = default;
  virtual crypto::Random& random() = 0;
  virtual const EngineConfig& config() const = 0;
  virtual TimePoint now() const = 0;
  virtual Stats& stats() = 0;
  virtual std::uint64_t next_child_id() = 0;
  // `child_id`: the Child SA concerned; for kIkeRekeyed, the IKE SA replaced.
  virtual void event(EventKind kind, const IkeSa& sa, std::uint64_t child_id,
                     std::string detail) = 0;
  virtual void dataplane(DataplaneOp op) = 0;
  virtual void log(LogLevel level, const IkeSa* sa, std::string message) = 0;
  // Connections a peer may use, for the responder's choice by identity.
  virtual std::vector<const ConnectionConfig*> connections() const = 0;
  // Queues an exchange on an SA (started when the window allows).
  virtual void queue(IkeSa& sa, std::unique_ptr<Task> task) = 0;
  // IKE SA rekey: a new IKE SA in the table that inherits the old one's connection,
  // endpoints and conditions; its keys and Child SAs are set by the caller.
  virtual IkeSa& spawn_rekeyed(IkeSa& old, bool initiator, std::uint64_t spi_i, std::uint64_t spi_r) = 0;
  virtual std::uint64_t fresh_ike_spi() = 0;
  virtual IkeSa* find_sa(std::uint64_t id) = 0;
  // Ends an SA at once (its Child SAs, if still attached, leave the data plane).
  virtual void retire(IkeSa& sa, const std::string& why) = 0;
  // The address-mobility extension, if one is installed (see ike/mobility.h).
  virtual Mobility* mobility() = 0;
  // A gateway's virtual IP pool by name (Engine::set_pools); nullptr if none.
  virtual AddressPool* pool(const std::string& name) = 0;
  // The host's usable addresses, as last told by the daemon (empty: unknown). Which of
  // them a connection may use is mobility::usable_local_addresses().
  virtual const std::vector<HostAddress>& local_addresses() const = 0;
  // Other nodes of this node's gateway cluster (Engine::set_cluster_addresses): MOBIKE
  // announces them with our own additional addresses, so that a client accepts a
  // switch to them without a local policy that allows them.
  virtual const std::vector<IpAddress>& cluster_addresses() const = 0;
  // Sends an IKE message of `sa` on an explicit path (path probing, switch requests).
  virtual void send_on(const IkeSa& sa, const Endpoint& local, const Endpoint& remote, Bytes data) = 0;
  // Every datagram of one message (an SA's active_request: RFC 7383 fragments, or one).
  void send_on(const IkeSa& sa, const Endpoint& local, const Endpoint& remote, const std::vector<Bytes>& datagrams) {
    for (const auto& d : datagrams) send_on(sa, local, remote, d);
  }
};

}  // namespace mobike::ike
