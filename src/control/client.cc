#include "control/client.h"

#include <csignal>
#include <memory>

#include <asio.hpp>

namespace mobike::control {

namespace {

using asio::local::stream_protocol;

// One request on a new connection; `done` gets the answer line or the failure.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(asio::io_context& io, std::string socket_path, const json& request)
      : socket_(io), path_(std::move(socket_path)), out_(to_line(request)) {}

  void start(std::function<void(std::string line, std::string failure)> done) {
    done_ = std::move(done);
    // Asynchronous only so that run_for() can bound the whole exchange.
    socket_.async_connect(stream_protocol::endpoint(path_), [self = shared_from_this()](const asio::error_code& ec) {
      if (ec) return self->fail("cannot connect to " + self->path_ + ": " + ec.message() + " (is mobiked running?)");
      asio::async_write(self->socket_, asio::buffer(self->out_), [self](const asio::error_code& ec, std::size_t) {
        if (ec) return self->fail("cannot send to " + self->path_ + ": " + ec.message());
        asio::async_read_until(
            self->socket_, asio::dynamic_buffer(self->in_, kMaxResponseLine), '\n',
            [self](const asio::error_code& ec, std::size_t n) {
              if (ec == asio::error::eof) return self->fail("mobiked closed the connection without answering");
              if (ec == asio::error::not_found)
                return self->fail("answer from mobiked is longer than " + std::to_string(kMaxResponseLine) + " bytes");
              if (ec) return self->fail("cannot read from " + self->path_ + ": " + ec.message());
              self->in_.resize(n);
              self->done_(std::move(self->in_), "");
            });
      });
    });
  }

 private:
  void fail(std::string why) { done_("", std::move(why)); }

  stream_protocol::socket socket_;
  std::string path_;
  std::string out_;
  std::string in_;
  std::function<void(std::string, std::string)> done_;
};

Expected<json, std::string> parse_answer(const std::string& line) {
  auto j = from_line(line);
  if (!j) return unexpected("answer from mobiked is " + j.error());
  return std::move(*j);
}

}  // namespace

Expected<json, std::string> call_cancellable(const std::string& socket_path, const json& request, const json& cancel,
                                             const std::function<void(const std::string&)>& on_cancel,
                                             std::chrono::milliseconds timeout) {
  asio::io_context io;
  std::string answer, failure;
  bool done = false;
  // The answer to the request often arrives together with the cancel's own answer (the
  // cancel is what ends the request), so stop only when neither is still outstanding.
  int cancels_in_flight = 0;
  auto stop_if_finished = [&] {
    if (done && cancels_in_flight == 0) io.stop();
  };
  std::make_shared<Exchange>(io, socket_path, request)->start([&](std::string line, std::string why) {
    answer = std::move(line);
    failure = std::move(why);
    done = true;
    stop_if_finished();
  });
  asio::signal_set signals(io, SIGINT);
  int interrupts = 0;
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const asio::error_code& ec, int) {
      if (ec) return;
      if (++interrupts > 1) {
        failure = "interrupted";
        io.stop();
        return;
      }
      ++cancels_in_flight;
      std::make_shared<Exchange>(io, socket_path, cancel)->start([&](std::string line, std::string why) {
        --cancels_in_flight;
        if (!why.empty()) {
          on_cancel(why);
        } else {
          auto j = parse_answer(line);
          on_cancel(j ? j->dump() : j.error());
        }
        stop_if_finished();
      });
      wait_signal();
    });
  };
  wait_signal();
  io.run_for(timeout);
  if (!failure.empty()) return unexpected(std::move(failure));
  if (!done)
    return unexpected("no answer from mobiked on " + socket_path + " within " + std::to_string(timeout.count()) + " ms");
  return parse_answer(answer);
}

Expected<json, std::string> call(const std::string& socket_path, const json& request,
                                 std::chrono::milliseconds timeout) {
  asio::io_context io;
  std::string answer, failure;
  bool done = false;
  std::make_shared<Exchange>(io, socket_path, request)->start([&](std::string line, std::string why) {
    answer = std::move(line);
    failure = std::move(why);
    done = true;
    io.stop();
  });
  io.run_for(timeout);
  if (!failure.empty()) return unexpected(std::move(failure));
  if (!done)
    return unexpected("no answer from mobiked on " + socket_path + " within " + std::to_string(timeout.count()) + " ms");
  return parse_answer(answer);
}

}  // namespace mobike::control
