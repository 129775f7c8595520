#include "control/client.h"

#include <asio.hpp>

namespace mobike::control {

Expected<json, std::string> call(const std::string& socket_path, const json& request,
                                 std::chrono::milliseconds timeout) {
  using asio::local::stream_protocol;
  asio::io_context io;
  stream_protocol::socket socket(io);
  const std::string out = to_line(request);
  std::string in;
  std::string failure;
  bool done = false;

  // Asynchronous only so that run_for() can bound the whole exchange.
  socket.async_connect(stream_protocol::endpoint(socket_path), [&](const asio::error_code& ec) {
    if (ec) {
      failure = "cannot connect to " + socket_path + ": " + ec.message() + " (is mobiked running?)";
      return;
    }
    asio::async_write(socket, asio::buffer(out), [&](const asio::error_code& ec, std::size_t) {
      if (ec) {
        failure = "cannot send to " + socket_path + ": " + ec.message();
        return;
      }
      asio::async_read_until(
          socket, asio::dynamic_buffer(in, kMaxResponseLine), '\n',
          [&](const asio::error_code& ec, std::size_t n) {
            if (ec == asio::error::eof)
              failure = "mobiked closed the connection without answering";
            else if (ec == asio::error::not_found)
              failure = "answer from mobiked is longer than " + std::to_string(kMaxResponseLine) + " bytes";
            else if (ec)
              failure = "cannot read from " + socket_path + ": " + ec.message();
            else {
              in.resize(n);
              done = true;
            }
          });
    });
  });
  io.run_for(timeout);
  if (!failure.empty()) return unexpected(std::move(failure));
  if (!done)
    return unexpected("no answer from mobiked on " + socket_path + " within " +
                      std::to_string(timeout.count()) + " ms");
  auto j = from_line(in);
  if (!j) return unexpected("answer from mobiked is " + j.error());
  return std::move(*j);
}

}  // namespace mobike::control
