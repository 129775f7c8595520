#include "daemon/control_server.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <unordered_set>
#include <utility>

#include "control/protocol.h"

namespace mobike::daemon {

using asio::local::stream_protocol;
using json = nlohmann::json;

class Session;

struct ControlServer::Impl : std::enable_shared_from_this<ControlServer::Impl> {
  Impl(asio::io_context& io, std::string p, AsyncHandler h)
      : path(std::move(p)), handler(std::move(h)), acceptor(io), retry_timer(io) {}

  void accept();
  void handle(std::string_view line, Reply reply, Progress progress);

  std::string path;
  AsyncHandler handler;
  stream_protocol::acceptor acceptor;
  asio::steady_timer retry_timer;
  std::unordered_set<Session*> sessions;
  dev_t dev = 0;
  ino_t ino = 0;
  bool stopped = false;
};

namespace {

// What a client can do wrong does not deserve more than debug level: the socket is
// root-only and mobikectl is the usual client.
constexpr auto kClientLogLevel = spdlog::level::debug;

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<ControlServer::Impl> server, stream_protocol::socket socket)
      : server_(std::move(server)), socket_(std::move(socket)) {}

  void start() {
    server_->sessions.insert(this);
    read();
  }

  // Tells the client why and hangs up, without counting it as a connection.
  void reject(std::string_view why) { send(control::error_response(why), Kind::kFinalThenClose); }

  void close() {
    closed_ = true;  // the queue stays: a write in flight may still point into it
    asio::error_code ignored;
    socket_.shutdown(stream_protocol::socket::shutdown_both, ignored);
    socket_.close(ignored);
    server_->sessions.erase(this);
  }

  ~Session() { server_->sessions.erase(this); }

 private:
  void read() {
    // One byte more than the longest line, for its '\n'.
    asio::async_read_until(socket_, asio::dynamic_buffer(in_, control::kMaxRequestLine + 1), '\n',
                           [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
                             self->on_read(ec, n);
                           });
  }

  void on_read(const asio::error_code& ec, std::size_t n) {
    if (server_->stopped || ec == asio::error::operation_aborted) return;
    if (ec == asio::error::not_found) {
      spdlog::log(kClientLogLevel, "control: request longer than {} bytes, closing", control::kMaxRequestLine);
      write(control::error_response("request line longer than " +
                                    std::to_string(control::kMaxRequestLine) + " bytes"),
            /*then_close=*/true);
      return;
    }
    if (ec) {  // eof or a reset: the client is gone
      close();
      return;
    }
    std::string line = in_.substr(0, n);
    in_.erase(0, n);
    std::weak_ptr<Session> weak = shared_from_this();
    server_->handle(
        line,
        [self = shared_from_this()](json response) {
          if (self->server_->stopped) return;
          self->send(response, Kind::kFinal);
        },
        // Weak: a job's progress sender must not keep a closed connection alive.
        [weak](json interim) {
          auto self = weak.lock();
          if (!self || self->server_->stopped) return;
          self->send(interim, Kind::kInterim);
        });
  }

  // kFinal: the response (then the next request is read); kInterim: a progress line.
  enum class Kind : std::uint8_t { kInterim, kFinal, kFinalThenClose };
  struct Out {
    std::string data;
    Kind kind;
  };

  void send(const json& j, Kind kind) {
    if (closed_) return;
    // An interim line not yet on its way is out of date: the newer one replaces it.
    if (kind == Kind::kInterim && !queue_.empty() && queue_.back().kind == Kind::kInterim &&
        (queue_.size() > 1 || !writing_)) {
      queue_.back().data = control::to_line(j);
      return;
    }
    queue_.push_back({control::to_line(j), kind});
    pump();
  }

  void pump() {
    if (writing_ || queue_.empty() || closed_) return;
    writing_ = true;
    asio::async_write(socket_, asio::buffer(queue_.front().data),
                      [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
                        self->writing_ = false;
                        if (self->server_->stopped || ec == asio::error::operation_aborted || self->closed_) return;
                        if (ec) {  // the client is gone (EPIPE, a reset)
                          spdlog::log(kClientLogLevel, "control: client gone while answering: {}", ec.message());
                          self->close();
                          return;
                        }
                        const Kind kind = self->queue_.front().kind;
                        self->queue_.pop_front();
                        if (kind == Kind::kFinalThenClose) return self->close();
                        if (kind == Kind::kFinal) self->read();  // a pipelined request may already be in in_
                        self->pump();
                      });
  }

  void write(const json& response, bool then_close) {
    send(response, then_close ? Kind::kFinalThenClose : Kind::kFinal);
  }

  std::shared_ptr<ControlServer::Impl> server_;
  stream_protocol::socket socket_;
  std::string in_;
  std::deque<Out> queue_;  // front: being written while writing_
  bool writing_ = false;
  bool closed_ = false;
};

void ControlServer::Impl::handle(std::string_view line, Reply reply, Progress progress) {
  auto request = control::from_line(line);
  if (!request) {
    spdlog::log(kClientLogLevel, "control: request is not valid JSON");
    return reply(control::error_response("bad request: not valid JSON"));
  }
  if (!request->is_object()) return reply(control::error_response("bad request: not a JSON object"));
  // A handler that throws after replying must not reply twice.
  auto replied = std::make_shared<bool>(false);
  Reply once = [reply, replied](json response) {
    if (std::exchange(*replied, true)) return;
    reply(std::move(response));
  };
  // Only for a client that asked; never after the reply (it would be read as the answer
  // to the next request).
  Progress interim;
  if (control::wants_progress(*request))
    interim = [progress = std::move(progress), replied](json line) {
      if (!*replied) progress(std::move(line));
    };
  try {
    handler(*request, once, interim);
  } catch (const std::exception& e) {
    spdlog::warn("control: handler failed: {}", e.what());
    once(control::error_response(std::string("internal error: ") + e.what()));
  } catch (...) {
    spdlog::warn("control: handler failed");
    once(control::error_response("internal error"));
  }
}

void ControlServer::Impl::accept() {
  acceptor.async_accept([self = shared_from_this()](const asio::error_code& ec,
                                                    stream_protocol::socket socket) {
    if (self->stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Typically EMFILE: retrying at once would spin, so wait for descriptors to free up.
      spdlog::warn("control: accept on {} failed: {}", self->path, ec.message());
      self->retry_timer.expires_after(std::chrono::milliseconds(100));
      self->retry_timer.async_wait([self](const asio::error_code& tec) {
        if (!tec && !self->stopped) self->accept();
      });
      return;
    }
    auto session = std::make_shared<Session>(self, std::move(socket));
    if (self->sessions.size() >= kMaxConnections)
      session->reject("too many control connections");
    else
      session->start();
    self->accept();
  });
}

ControlServer::ControlServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

ControlServer::~ControlServer() { stop(); }

Expected<std::unique_ptr<ControlServer>, std::string> ControlServer::start(asio::io_context& io,
                                                                           const std::string& path,
                                                                           Handler handler) {
  return start_async(io, path, [handler = std::move(handler)](const json& request, Reply reply, Progress) {
    reply(handler(request));
  });
}

Expected<std::unique_ptr<ControlServer>, std::string> ControlServer::start_async(asio::io_context& io,
                                                                                 const std::string& path,
                                                                                 AsyncHandler handler) {
  auto fail = [&](const std::string& what) {
    return unexpected("control socket " + path + ": " + what);
  };
  if (path.empty()) return fail("empty path");
  stream_protocol::endpoint endpoint;
  try {
    endpoint = stream_protocol::endpoint(path);
  } catch (const std::exception&) {
    return fail("path too long for a Unix socket");
  }

  // The default lives in a directory of its own (/run/mobiked/), which systemd creates
  // as the unit's RuntimeDirectory=; started any other way, create it (root only: the
  // socket is 0600 anyway). One level only: a deeper missing path is a typo to report.
  if (auto slash = path.rfind('/'); slash != std::string::npos && slash > 0) {
    std::string dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0700) == 0)
      spdlog::info("control: created {}", dir);
    else if (errno != EEXIST)
      return fail("cannot create directory " + dir + ": " + std::strerror(errno));
  }

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail("exists and is not a socket; not removing it");
    stream_protocol::socket probe(io);
    asio::error_code ec;
    probe.connect(endpoint, ec);
    if (!ec) return fail("another process is listening on it (is mobiked already running?)");
    if (ec != asio::error::connection_refused) return fail("cannot probe existing socket: " + ec.message());
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return fail(std::string("cannot remove stale socket: ") + std::strerror(errno));
    spdlog::info("control: removed stale socket {}", path);
  }

  auto impl = std::make_shared<Impl>(io, path, std::move(handler));
  asio::error_code ec;
  impl->acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("cannot create socket: " + ec.message());
  impl->acceptor.bind(endpoint, ec);
  if (ec) return fail("cannot bind: " + ec.message());
  // Nobody can connect before listen(), so tightening the mode here leaves no window.
  if (::chmod(path.c_str(), 0600) != 0) {
    std::string why = std::strerror(errno);
    ::unlink(path.c_str());
    return fail("cannot set mode 0600: " + why);
  }
  if (::lstat(path.c_str(), &st) == 0) {
    impl->dev = st.st_dev;
    impl->ino = st.st_ino;
  }
  impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    ::unlink(path.c_str());
    return fail("cannot listen: " + ec.message());
  }
  impl->accept();
  spdlog::debug("control: listening on {}", path);
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

void ControlServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  asio::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->retry_timer.cancel();
  // close() erases from the set, so walk a copy.
  auto sessions = impl_->sessions;
  for (auto* s : sessions) s->close();
  // Another daemon may have replaced the file since; only remove our own.
  struct stat st {};
  if (::lstat(impl_->path.c_str(), &st) == 0 && st.st_dev == impl_->dev && st.st_ino == impl_->ino)
    ::unlink(impl_->path.c_str());
}

const std::string& ControlServer::path() const { return impl_->path; }

std::size_t ControlServer::connection_count() const { return impl_->sessions.size(); }

}  // namespace mobike::daemon
