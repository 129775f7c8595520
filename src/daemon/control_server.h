// The daemon's end of the control socket (protocol in control/protocol.h): a Unix
// stream socket, mode 0600, serving newline-delimited JSON requests on an Asio
// io_context. It knows nothing of commands: each request object goes to the handler and
// the handler's answer goes back as one line.
//
// Garbage is answered, not fatal: a line that is not a JSON object gets an error
// response and the connection stays open; a line longer than control::kMaxRequestLine
// gets an error response and the connection is closed (the rest of that line cannot be
// told apart from the next request). A handler that throws produces an error response.
//
// A request with "progress": true (control/protocol.h) may get interim lines before its
// response: the async handler is given a Progress sender for it (empty when the client
// did not ask, so that such clients see exactly one line per request). Interim lines
// queue behind the line being written; an unsent one is replaced by a newer one, so a
// client that stops reading costs at most a line or two of memory. A client that hangs
// up mid-command is noticed at the next write: the connection closes, the command runs
// on, and its later lines and reply go nowhere.
#pragma once

#include <asio/io_context.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/expected.h"

namespace mobike::daemon {

class ControlServer {
 public:
  using Handler = std::function<nlohmann::json(const nlohmann::json& request)>;
  // For commands that finish later (a switch of many SAs): the handler calls `reply`
  // exactly once, on the io_context's thread. The connection reads its next request
  // only after the reply, so answers stay in order.
  using Reply = std::function<void(nlohmann::json response)>;
  // Sends one interim line (control::progress_line) ahead of the reply; ignored after the
  // reply, once the client is gone, or when the server stops. On the io_context's thread.
  using Progress = std::function<void(nlohmann::json line)>;
  using AsyncHandler = std::function<void(const nlohmann::json& request, Reply reply, Progress progress)>;

  // At most this many clients at once; more are told so and closed.
  static constexpr std::size_t kMaxConnections = 64;

  // Binds `path` and starts accepting on `io`. A socket file nobody listens on (left by
  // a crash) is removed first; a live one, or a path that is not a socket, is an error.
  static Expected<std::unique_ptr<ControlServer>, std::string> start(asio::io_context& io,
                                                                     const std::string& path,
                                                                     Handler handler);
  static Expected<std::unique_ptr<ControlServer>, std::string> start_async(asio::io_context& io,
                                                                           const std::string& path,
                                                                           AsyncHandler handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Stops accepting, closes every connection and removes the socket file (if it is still
  // the one we created). The handler is not called again. Call on the io_context's thread
  // or while it is not running; the destructor calls it.
  void stop();

  const std::string& path() const;
  std::size_t connection_count() const;

  struct Impl;

 private:
  explicit ControlServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace mobike::daemon
