// mobiked's wiring and lifecycle: the Asio event loop around the sans-IO engine — the
// IKE sockets in and out, one timer for the engine's next deadline, the data plane, the
// control socket, signals. The pieces with a job of their own live beside it: the
// address follower (address_follower.h), the operator switch (switch_command.h), the
// initiator with its DNS lookups (initiator.h, host_resolver.h), the JSON views (views.h).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/expected.h"
#include "control/protocol.h"
#include "crypto/random.h"
#include "daemon/address_follower.h"
#include "daemon/cluster_member.h"
#include "daemon/config.h"
#include "daemon/control_server.h"
#include "daemon/dataplane.h"
#include "daemon/host_resolver.h"
#include "daemon/initiator.h"
#include "daemon/metrics_server.h"
#include "daemon/return_path.h"
#include "daemon/switch_command.h"
#include "daemon/views.h"
#include "ike/engine.h"
#include "platform/ike_sockets.h"
#include "platform/systemd_notify.h"

namespace mobike::daemon {

class Daemon {
 public:
  Daemon(Config config, std::string config_path);
  ~Daemon();
  // Opens sockets and the control socket, starts connections with start = initiate.
  Expected<void, std::string> start();
  void run() { io_.run(); }

 private:
  Expected<void, std::string> open_sockets();
  Expected<void, std::string> open_dataplane();
  void wait_readable(std::size_t socket);
  void wait_dataplane_events();
  // The data plane's Child SA limit reports, to the engine.
  void take_expires();
  // start = "trap": the data plane's traps for every child of such connections (again
  // on reload), and the traffic they caught, to the engine.
  void install_traps();
  void take_acquires();
  // The address to initiate `c` from towards `remote`: its first usable local address
  // of that family (else the first it names of that family), or without local_addrs
  // the route's source towards `remote`.
  std::optional<IpAddress> local_address_for(const ike::ConnectionConfig& c, const IpAddress& remote) const;
  // The same towards the first address in remote_addrs that we have one for (traps).
  std::optional<IpAddress> local_address_for(const ike::ConnectionConfig& c) const;
  void on_readable(std::size_t socket);
  void handle_datagram(platform::IkeSockets::Socket& s, const platform::UdpSocket::Received& r,
                       std::span<std::uint8_t> buf);
  // Sends what the engine queued, applies its data-plane operations, passes its events
  // on, and re-arms the engine's timer.
  void flush();
  // Applies the engine's queued data-plane operations (a cluster export needs its
  // kSuspendOutbound in force before it reads the sequence numbers).
  void apply_dataplane_ops();
  void arm_timer();
  void log_event(const ike::Event& e);

  // Control commands.
  void handle(const nlohmann::json& request, ControlServer::Reply reply, ControlServer::Progress progress);
  nlohmann::json handle_now(const control::Request& request);
  Expected<void, std::string> update_addresses(std::uint64_t sa, std::optional<IpAddress> local);
  // Reads the configuration file again; tells a service manager RELOADING=1 before and
  // READY=1 after, also when the file is refused (the old configuration stays).
  Expected<void, std::string> reload();
  Expected<void, std::string> apply_config_file();
  // STATUS= for the service manager: what is loaded.
  std::string status_text() const;
  // WATCHDOG=1 from the event loop itself, so that a stuck loop stops the pings.
  void ping_watchdog();
  // The metrics endpoint's text (MetricsServer::Render), on the loop's thread.
  std::string render_metrics() const;

  void wait_signals();
  void shutdown();

  Config config_;
  std::string config_path_;
  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer timer_;
  ike::TimePoint timer_at_ = ike::TimePoint::max();
  asio::steady_timer drain_timer_;
  platform::SystemdNotifier notifier_ = platform::SystemdNotifier::from_environment();
  asio::steady_timer watchdog_timer_;
  crypto::SystemRandom random_;
  ike::Engine engine_;
  platform::IkeSockets sockets_;
  std::vector<std::unique_ptr<asio::posix::stream_descriptor>> watches_;  // one per socket
  std::unique_ptr<asio::posix::stream_descriptor> dataplane_events_;       // on Dataplane::event_fd()
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<Dataplane> dataplane_;
  std::map<std::uint64_t, std::pair<std::string, std::string>> traps_;  // id -> (connection, child)
  std::uint64_t next_trap_id_ = 1;
  AddressFollower addresses_;
  SwitchCommand switch_;
  HostResolver resolver_;
  Initiator initiator_;
  std::unique_ptr<ClusterMember> cluster_;  // with a [cluster] section
  std::unique_ptr<ReturnPath> return_path_;  // with a [cluster] section's return_traffic
  IoCounters io_counters_;
  std::vector<std::uint8_t> buffer_;
  static constexpr std::size_t kBatchDatagramSize = 65536;  // UDP GRO hands over up to 64 KiB
  std::vector<std::vector<std::uint8_t>> batch_storage_;
  std::vector<std::span<std::uint8_t>> batch_bufs_;
  std::vector<platform::UdpSocket::Received> batch_received_;
  bool stopping_ = false;
  // Last, so that it goes first: its thread is joined before anything it asks for.
  std::unique_ptr<MetricsServer> metrics_;  // with [daemon] metrics
};

ike::EngineConfig engine_config(const DaemonConfig& d, const std::optional<ClusterConfig>& cluster = std::nullopt);

}  // namespace mobike::daemon
