#include "daemon/metrics_server.h"

#include <cerrno>
#include <cstring>
#include <future>

#include <asio/post.hpp>
#include <httplib.h>
#include <spdlog/spdlog.h>

namespace mobike::daemon {

namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";
// How often a scrape waiting for the loop looks whether the server is stopping.
constexpr auto kPoll = std::chrono::milliseconds(20);

}  // namespace

MetricsServer::MetricsServer(asio::io_context& io, Render render, std::chrono::milliseconds loop_timeout)
    : io_(io), render_(std::move(render)), loop_timeout_(loop_timeout), server_(std::make_unique<httplib::Server>()) {}

Expected<std::unique_ptr<MetricsServer>, std::string> MetricsServer::start(asio::io_context& io, const Endpoint& at,
                                                                           Render render,
                                                                           std::chrono::milliseconds loop_timeout) {
  std::unique_ptr<MetricsServer> m(new MetricsServer(io, std::move(render), loop_timeout));
  auto& svr = *m->server_;
  // Scrapes are few: two workers, short timeouts, so that stop() never waits long.
  svr.new_task_queue = [] { return new httplib::ThreadPool(2); };
  svr.set_keep_alive_timeout(1);
  svr.set_read_timeout(2, 0);
  svr.set_write_timeout(2, 0);
  svr.set_payload_max_length(4096);
  MetricsServer* self = m.get();
  svr.Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    bool ok = false;
    std::string body = self->scrape(ok);
    if (ok) {
      res.set_content(std::move(body), kContentType);
    } else {
      res.status = 503;
      res.set_content(std::move(body), "text/plain; charset=utf-8");
    }
  });
  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) res.set_content("not found: the metrics are at /metrics\n", "text/plain; charset=utf-8");
  });
  const std::string host = at.address.to_string();
  if (!svr.bind_to_port(host, at.port))
    return unexpected("metrics: cannot listen on " + at.to_string() + ": " + std::strerror(errno));
  m->port_ = at.port;
  m->thread_ = std::thread([self] { self->server_->listen_after_bind(); });
  // httplib's stop() does nothing until the server runs: wait for that, so that a
  // daemon stopped right after starting never joins a thread that serves on.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!svr.is_running() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!svr.is_running()) {
    m->server_->stop();
    return unexpected("metrics: the HTTP server on " + at.to_string() + " did not start");
  }
  spdlog::info("metrics: serving http://{}/metrics", at.to_string());
  return m;
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::stop() {
  stopping_ = true;
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string MetricsServer::scrape(bool& ok) {
  // The loop renders; this thread only waits. The handler owns its promise and a copy
  // of render_, so that it stays valid should it run after this server is gone.
  auto promise = std::make_shared<std::promise<std::string>>();
  auto result = promise->get_future();
  asio::post(io_, [promise, render = render_] {
    try {
      promise->set_value(render());
    } catch (...) {
      promise->set_exception(std::current_exception());
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + loop_timeout_;
  while (result.wait_for(kPoll) != std::future_status::ready) {
    if (stopping_ || std::chrono::steady_clock::now() >= deadline) {
      ok = false;
      return stopping_ ? "mobiked is stopping\n" : "mobiked's event loop did not answer in time\n";
    }
  }
  try {
    ok = true;
    return result.get();
  } catch (const std::exception& e) {
    ok = false;
    return std::string("cannot collect the metrics: ") + e.what() + "\n";
  }
}

}  // namespace mobike::daemon
