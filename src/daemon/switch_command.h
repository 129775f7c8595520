// `mobikectl switch` in the daemon: one job at a time (daemon/switch_job.h) started at
// its rate, answered when every SA's switch has ended; `switch-cancel` stops it from
// starting more, and a daemon that stops answers with what it has.
#pragma once

#include <functional>
#include <memory>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "control/protocol.h"
#include "daemon/control_server.h"
#include "daemon/progress_reporter.h"
#include "daemon/switch_job.h"
#include "ike/engine.h"

namespace mobike::daemon {

class SwitchCommand {
 public:
  // `flush` sends what the engine queued and feeds its events back (on_event).
  SwitchCommand(asio::io_context& io, ike::Engine& engine, std::function<void()> flush);

  // `progress`: the client's interim sender when it asked for progress lines, else empty.
  void start(const control::SwitchRequest& request, ControlServer::Reply reply, ControlServer::Progress progress = {});
  // The answer to switch-cancel.
  nlohmann::json cancel();
  // Every engine event, then finish_if_done() once the batch is through.
  void on_event(const ike::Event& e);
  void finish_if_done();
  // The daemon stops: the waiting client gets the partial result now.
  void shutdown();

 private:
  void drive();
  void reply_now();

  asio::io_context& io_;
  ike::Engine& engine_;
  std::function<void()> flush_;
  std::unique_ptr<SwitchJob> job_;
  ControlServer::Reply reply_;
  std::unique_ptr<ProgressReporter> progress_;  // when the client asked
  asio::steady_timer timer_;
};

}  // namespace mobike::daemon
