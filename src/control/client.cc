#include "control/client.h"

#include <csignal>
#include <memory>
#include <optional>

#include <asio.hpp>

namespace mobike::control {

namespace {

using asio::local::stream_protocol;

// One request on a new connection. Every line read goes to `on_line`, which says whether
// it was the last one (a response rather than a progress line); `done` gets the failure
// or "" once the last line is in.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  using OnLine = std::function<bool(std::string line)>;  // true: that was the answer
  Exchange(asio::io_context& io, std::string socket_path, const json& request)
      : socket_(io), path_(std::move(socket_path)), out_(to_line(request)) {}

  void start(OnLine on_line, std::function<void(std::string failure)> done) {
    on_line_ = std::move(on_line);
    done_ = std::move(done);
    // Asynchronous only so that a timer can bound the exchange.
    socket_.async_connect(stream_protocol::endpoint(path_), [self = shared_from_this()](const asio::error_code& ec) {
      if (ec) return self->fail("cannot connect to " + self->path_ + ": " + ec.message() + " (is mobiked running?)");
      asio::async_write(self->socket_, asio::buffer(self->out_), [self](const asio::error_code& ec, std::size_t) {
        if (ec) return self->fail("cannot send to " + self->path_ + ": " + ec.message());
        self->read();
      });
    });
  }

 private:
  void read() {
    asio::async_read_until(socket_, asio::dynamic_buffer(in_, kMaxResponseLine), '\n',
                           [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                             if (ec == asio::error::eof)
                               return self->fail("mobiked closed the connection without answering");
                             if (ec == asio::error::not_found)
                               return self->fail("answer from mobiked is longer than " +
                                                 std::to_string(kMaxResponseLine) + " bytes");
                             if (ec) return self->fail("cannot read from " + self->path_ + ": " + ec.message());
                             std::string line = self->in_.substr(0, n);
                             self->in_.erase(0, n);
                             if (self->on_line_(std::move(line))) return self->done_("");
                             self->read();
                           });
  }

  void fail(std::string why) { done_(std::move(why)); }

  stream_protocol::socket socket_;
  std::string path_;
  std::string out_;
  std::string in_;
  OnLine on_line_;
  std::function<void(std::string)> done_;
};

Expected<json, std::string> parse_answer(const std::string& line) {
  auto j = from_line(line);
  if (!j) return unexpected("answer from mobiked is " + j.error());
  return std::move(*j);
}

// The deadline is on silence: every line from mobiked re-arms it. Without progress lines
// that is the one answer's deadline, as it always was.
class Deadline {
 public:
  Deadline(asio::io_context& io, std::chrono::milliseconds timeout, std::function<void()> expired)
      : timer_(io), timeout_(timeout), expired_(std::move(expired)) {
    rearm();
  }
  void rearm() {
    timer_.expires_after(timeout_);
    timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) expired_();
    });
  }

 private:
  asio::steady_timer timer_;
  std::chrono::milliseconds timeout_;
  std::function<void()> expired_;
};

}  // namespace

Expected<json, std::string> call_cancellable(const std::string& socket_path, const json& request, const json& cancel,
                                             const std::function<void(const std::string&)>& on_cancel,
                                             std::chrono::milliseconds timeout, const OnProgress& on_progress) {
  asio::io_context io;
  std::string answer, failure;
  bool done = false, timed_out = false, progressed = false;
  // The answer to the request often arrives together with the cancel's own answer (the
  // cancel is what ends the request), so stop only when neither is still outstanding.
  int cancels_in_flight = 0;
  Deadline deadline(io, timeout, [&] {
    timed_out = true;
    io.stop();
  });
  auto stop_if_finished = [&] {
    if (done && cancels_in_flight == 0) io.stop();
  };
  auto on_line = [&](std::string line) {
    deadline.rearm();
    auto j = from_line(line);
    if (j && is_progress_line(*j)) {
      auto p = progress_from_json(*j);
      if (!p) {
        failure = "bad progress line from mobiked: " + p.error();
        done = true;
        stop_if_finished();
        return true;
      }
      progressed = true;
      if (on_progress) on_progress(*p);
      return false;
    }
    answer = std::move(line);
    return true;
  };
  std::make_shared<Exchange>(io, socket_path, request)->start(on_line, [&](std::string why) {
    if (failure.empty()) failure = std::move(why);
    done = true;
    stop_if_finished();  // the deadline stays: it also bounds a cancel still under way
  });
  // Only a cancellable call takes SIGINT over; otherwise Ctrl-C ends the process as usual.
  std::optional<asio::signal_set> signals;
  int interrupts = 0;
  std::function<void()> wait_signal = [&] {
    signals->async_wait([&](const asio::error_code& ec, int) {
      if (ec) return;
      if (++interrupts > 1) {
        failure = "interrupted";
        io.stop();
        return;
      }
      ++cancels_in_flight;
      auto said = std::make_shared<std::string>();
      std::make_shared<Exchange>(io, socket_path, cancel)
          ->start(
              [said](std::string line) {
                *said = std::move(line);
                return true;  // the cancel's answer is its one line
              },
              [&, said](std::string why) {
                --cancels_in_flight;
                if (!why.empty()) {
                  on_cancel(why);
                } else {
                  auto j = parse_answer(*said);
                  on_cancel(j ? j->dump() : j.error());
                }
                stop_if_finished();
              });
      wait_signal();
    });
  };
  if (!cancel.is_null()) {
    signals.emplace(io, SIGINT);
    wait_signal();
  }
  io.run();
  if (!failure.empty()) return unexpected(std::move(failure));
  if (!done && timed_out)
    return unexpected(progressed ? "mobiked on " + socket_path + " went silent for " + std::to_string(timeout.count()) +
                                       " ms in the middle of the command"
                                 : "no answer from mobiked on " + socket_path + " within " +
                                       std::to_string(timeout.count()) + " ms");
  if (!done) return unexpected(std::string("interrupted"));
  return parse_answer(answer);
}

Expected<json, std::string> call(const std::string& socket_path, const json& request,
                                 std::chrono::milliseconds timeout) {
  return call_cancellable(socket_path, request, nullptr, {}, timeout, {});
}

}  // namespace mobike::control
