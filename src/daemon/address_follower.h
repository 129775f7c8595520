// Follows the host's addresses for the engine: the rtnetlink monitor, debounced, tells
// the engine the new set (MOBIKE announces it) and has the mobility layer's plan for the
// change carried out (mobility/address_policy.h: moves, switches). Holds no policy.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "ike/engine.h"
#include "platform/address_monitor.h"

namespace mobike::daemon {

class AddressFollower {
 public:
  struct Counters {
    std::uint64_t address_changes = 0;
    std::uint64_t automatic_moves = 0;     // initiator: moves and path probes started
    std::uint64_t automatic_switches = 0;  // responder: switches started
  };

  // `tun_name`: the userspace data plane's device, whose inner addresses are never a
  // path to a peer. `changed` runs after each change was handed to the engine (the
  // daemon sends what the engine queued).
  AddressFollower(asio::io_context& io, ike::Engine& engine, std::string tun_name, std::function<void()> changed);
  ~AddressFollower();
  AddressFollower(const AddressFollower&) = delete;
  AddressFollower& operator=(const AddressFollower&) = delete;

  // Opens the monitor and tells the engine the current set. Without rtnetlink it logs
  // a warning and MOBIKE moves only on request.
  void start();
  void stop();

  // `mobikectl list-addresses`.
  nlohmann::json view() const;
  const Counters& counters() const { return counters_; }

 private:
  std::vector<ike::HostAddress> engine_addresses(const platform::AddressSet& set) const;
  void watch();
  void arm_debounce_timer();
  void on_change(const platform::AddressSetChange& change);

  asio::io_context& io_;
  ike::Engine& engine_;
  std::string tun_name_;
  std::function<void()> changed_;
  std::optional<platform::AddressMonitor> monitor_;
  std::unique_ptr<asio::posix::stream_descriptor> watch_;
  std::optional<platform::Debouncer> debouncer_;
  asio::steady_timer debounce_timer_;
  Counters counters_;
  bool stopped_ = false;
};

}  // namespace mobike::daemon
