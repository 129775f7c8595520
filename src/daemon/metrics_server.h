// The Prometheus metrics endpoint (`[daemon] metrics`): cpp-httplib's server on a
// thread of its own, serving GET /metrics (404 for anything else). That thread never
// reads the daemon's state: each scrape posts `render` to the event loop (asio::post,
// which wakes the loop through the descriptor it already polls) and waits for the text
// it returns. A loop that does not answer in time (stopping, or stuck) gets the scrape
// a 503.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <asio/io_context.hpp>

#include "common/expected.h"
#include "common/ip_address.h"

namespace httplib {
class Server;
}

namespace mobike::daemon {

class MetricsServer {
 public:
  // Runs on the event loop's thread and returns the exposition text.
  using Render = std::function<std::string()>;

  // Binds `at` now (an error names the address) and serves from a new thread.
  static Expected<std::unique_ptr<MetricsServer>, std::string> start(asio::io_context& io, const Endpoint& at,
                                                                     Render render,
                                                                     std::chrono::milliseconds loop_timeout =
                                                                         std::chrono::seconds(5));
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Closes the socket, ends scrapes in progress and joins the thread. Idempotent; from
  // the event loop's thread (a scrape waiting for the loop gives up at once).
  void stop();
  // The port bound (for "127.0.0.1:0" in tests).
  int port() const { return port_; }

 private:
  MetricsServer(asio::io_context& io, Render render, std::chrono::milliseconds loop_timeout);
  std::string scrape(bool& ok);

  asio::io_context& io_;
  Render render_;
  std::chrono::milliseconds loop_timeout_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  int port_ = 0;
};

}  // namespace mobike::daemon
