// mobiked's wiring: the Asio event loop around the sans-IO engine — UDP sockets in and
// out, one timer for the engine's next deadline, the control socket, signals.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/expected.h"
#include "crypto/random.h"
#include "daemon/config.h"
#include "daemon/control_server.h"
#include "control/protocol.h"
#include "daemon/dataplane.h"
#include "daemon/switch_job.h"
#include "ike/engine.h"
#include "platform/address_monitor.h"
#include "platform/udp_socket.h"

namespace mobike::daemon {

struct DaemonStats {
  std::uint64_t keepalives_in = 0;
  std::uint64_t send_errors = 0;
  std::uint64_t oversize_datagrams = 0;
  std::uint64_t address_changes = 0;
  std::uint64_t automatic_moves = 0;
  std::uint64_t automatic_switches = 0;  // responder: SAs switched because their address went away
};

class Daemon {
 public:
  Daemon(Config config, std::string config_path);
  ~Daemon();
  // Opens sockets and the control socket, starts connections with start = initiate.
  Expected<void, std::string> start();
  void run() { io_.run(); }

 private:
  struct Socket {
    platform::UdpSocket udp;
    std::unique_ptr<asio::posix::stream_descriptor> watch;
    bool natt = false;
  };

  void wait_readable(Socket& s);
  void on_readable(Socket& s);
  void handle_datagram(Socket& s, const platform::UdpSocket::Received& r, std::span<std::uint8_t> buf);
  void flush();
  void arm_timer();
  void log_event(const ike::Event& e);
  Socket* socket_for(const Endpoint& local);
  void handle(const nlohmann::json& request, ControlServer::Reply reply);
  nlohmann::json handle_now(const nlohmann::json& request);
  // mobikectl switch: one job at a time, answered when every SA's switch has ended.
  void start_switch_job(const control::SwitchRequest& r, ControlServer::Reply reply);
  void drive_switch_job();
  nlohmann::json list_sas() const;
  nlohmann::json stats() const;
  Expected<std::uint64_t, std::string> initiate(const std::string& connection);
  Expected<void, std::string> reload();
  void shutdown();
  void wait_signals();
  // MOBIKE initiator: follow the host's address changes (rtnetlink).
  void start_address_monitor();
  void watch_addresses();
  void on_addresses_changed(const platform::AddressSetChange& change);
  void arm_debounce_timer();
  Expected<void, std::string> update_addresses(std::uint64_t sa, std::optional<IpAddress> local);
  std::vector<ike::HostAddress> engine_addresses(const platform::AddressSet& set) const;

  Config config_;
  std::string config_path_;
  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer timer_;
  ike::TimePoint timer_at_ = ike::TimePoint::max();
  crypto::SystemRandom random_;
  ike::Engine engine_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<Dataplane> dataplane_;
  std::optional<platform::AddressMonitor> addresses_;
  std::unique_ptr<asio::posix::stream_descriptor> addresses_watch_;
  std::optional<platform::Debouncer> debouncer_;
  asio::steady_timer debounce_timer_;
  DaemonStats stats_;
  std::unique_ptr<SwitchJob> switch_job_;
  ControlServer::Reply switch_reply_;
  asio::steady_timer switch_timer_;
  std::vector<std::uint8_t> buffer_;
  static constexpr std::size_t kBatchDatagramSize = 65536;  // UDP GRO hands over up to 64 KiB
  std::vector<std::vector<std::uint8_t>> batch_storage_;
  std::vector<std::span<std::uint8_t>> batch_bufs_;
  std::vector<platform::UdpSocket::Received> batch_received_;
  bool stopping_ = false;
};

ike::EngineConfig engine_config(const DaemonConfig& d);

}  // namespace mobike::daemon
