#include "daemon/daemon.h"

#include <csignal>

#include <asio/post.hpp>

#include <spdlog/spdlog.h>

#include "daemon/journal_log.h"
#include "daemon/log_sink.h"
#include "daemon/metrics.h"
#include "daemon/userspace_dataplane.h"
#include "daemon/xfrm_dataplane.h"
#include "ike/traffic_selector.h"
#include "mobility/address_policy.h"
#include "mobility/mobike.h"
#include "platform/route.h"

namespace mobike::daemon {

using nlohmann::json;

namespace {

constexpr int kEspSocketBuffer = 4 << 20;
constexpr int kIkeSocketBuffer = 16 << 20;
// How long a stopping daemon keeps its loop running for answers still being written
// (a switch's partial result) before it exits.
constexpr auto kDrainTime = std::chrono::milliseconds(200);

ike::TimePoint now() { return ike::Clock::now(); }

}  // namespace

ike::EngineConfig engine_config(const DaemonConfig& d, const std::optional<ClusterConfig>& cluster) {
  ike::EngineConfig e;
  e.ha_sync_member = cluster && cluster->failover;
  e.ike_port = d.ike_port;
  e.natt_port = d.natt_port;
  e.retransmit_timeout = d.retransmit_timeout;
  e.retransmit_base = d.retransmit_base;
  e.retransmit_tries = d.retransmit_tries;
  e.half_open_threshold = d.half_open_threshold;
  e.half_open_timeout = d.half_open_timeout;
  e.keepalive_interval = d.keepalive_interval;
  e.switch_notify_type = d.switch_notify_type;
  e.fragment_size = d.fragment_size;
  return e;
}

Daemon::Daemon(Config config, std::string config_path)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      timer_(io_),
      drain_timer_(io_),
      watchdog_timer_(io_),
      engine_(engine_config(config_.daemon, config_.cluster), random_, log_record),
      addresses_(io_, engine_, config_.daemon.tun_name, [this] { flush(); }),
      switch_(io_, engine_, [this] { flush(); }),
      resolver_(io_),
      initiator_(engine_, Initiator::Hooks{
                              .resolve =
                                  [this](const std::string& name, std::function<void(Initiator::Addresses)> done) {
                                    resolver_.resolve(name, [this, done = std::move(done)](Initiator::Addresses r) {
                                      if (!stopping_) done(std::move(r));
                                    });
                                  },
                              .local_for = [this](const ike::ConnectionConfig& c,
                                                  const IpAddress& remote) { return local_address_for(c, remote); },
                              .post =
                                  [this](std::function<void()> f) {
                                    asio::post(io_, [this, f = std::move(f)] {
                                      if (!stopping_) f();
                                    });
                                  },
                              .add_peer_addresses =
                                  [this](std::uint64_t sa, std::vector<IpAddress> addresses) {
                                    return mobility::add_peer_addresses(engine_, sa, std::move(addresses), now());
                                  },
                              .flush = [this] { flush(); },
                              .now = [] { return now(); },
                          }),
      buffer_(65536) {
  // Room for any datagram, or for what UDP GRO coalesced (up to 64 KiB) on the NAT-T port.
  batch_storage_.assign(32, std::vector<std::uint8_t>(kBatchDatagramSize));
  for (auto& b : batch_storage_) batch_bufs_.emplace_back(b);
  batch_received_.resize(batch_storage_.size());
  mobility::Config mobike;
  mobike.path_timeout = config_.daemon.mobike_path_timeout;
  mobility::install(engine_, mobike);
  engine_.set_connections(config_.connections);
  engine_.set_pools(config_.pools);
}

Daemon::~Daemon() {
  if (metrics_) metrics_->stop();
  for (auto& w : watches_) w->release();  // the sockets own their descriptors
  if (dataplane_events_) dataplane_events_->release();  // and the data plane its own
}

Expected<void, std::string> Daemon::start() {
  if (auto r = open_sockets(); !r) return r;
  if (auto r = open_dataplane(); !r) return r;
  auto control = ControlServer::start_async(io_, config_.daemon.socket,
                                            [this](const json& r, ControlServer::Reply reply,
                                                   ControlServer::Progress progress) {
                                              handle(r, std::move(reply), std::move(progress));
                                            });
  if (!control) return unexpected(control.error());
  control_ = std::move(*control);
  if (config_.daemon.metrics) {
    auto m = MetricsServer::start(io_, *config_.daemon.metrics, [this] { return render_metrics(); });
    if (!m) return unexpected(m.error());
    metrics_ = std::move(*m);
  }

  if (config_.cluster) {
    if (config_.cluster->return_traffic != ReturnTraffic::kNone) {
      auto rp = ReturnPath::create(*config_.cluster);
      if (!rp) return unexpected(rp.error());
      return_path_ = std::move(*rp);
    }
    cluster::DataplaneAccess access;
    access.apply_pending = [this] { apply_dataplane_ops(); };
    access.esp_state = [this](std::uint64_t child) { return dataplane_->esp_state(child); };
    cluster_ = std::make_unique<ClusterMember>(io_, engine_, *config_.cluster, std::move(access), random_,
                                               [this] { flush(); });
    cluster_->on_returned = [this](std::uint64_t id) {
      if (return_path_) return_path_->announce(id);
    };
    if (auto r = cluster_->start(); !r) return r;
  }

  wait_signals();
  addresses_.start();

  for (const auto& c : config_.connections)
    if (c.start == ike::StartAction::kInitiate)
      initiator_.initiate(c.name, [name = c.name](Expected<std::uint64_t, std::string> r) {
        if (!r) spdlog::error("cannot initiate '{}': {}", name, r.error());
      });
  install_traps();
  flush();
  // Everything a client or peer needs is up: sockets, data plane, control socket,
  // connections. Initiations started above may still be under way; they are the
  // daemon's work, not part of its start-up.
  if (auto r = notifier_.ready(status_text()); !r) spdlog::warn("service manager: {}", r.error().message());
  if (notifier_.watchdog_interval()) {
    spdlog::debug("service manager watchdog: WATCHDOG=1 every {} ms",
                  std::chrono::duration_cast<std::chrono::milliseconds>(*notifier_.watchdog_interval()).count());
    ping_watchdog();
  }
  return {};
}

void Daemon::ping_watchdog() {
  if (auto r = notifier_.watchdog(); !r) spdlog::warn("service manager: {}", r.error().message());
  watchdog_timer_.expires_after(*notifier_.watchdog_interval());
  // Also while stopping: deleting many SAs politely may take a while, and the manager
  // should not kill a daemon that is doing so.
  watchdog_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) ping_watchdog();
  });
}

std::string Daemon::render_metrics() const {
  json cluster = cluster_ ? cluster_->status() : json(nullptr);
  return render_prometheus(collect_metrics(
      {engine_, io_counters_, addresses_.counters(), dataplane_.get(), cluster_ ? &cluster : nullptr}));
}

std::string Daemon::status_text() const {
  auto n = config_.connections.size();
  return std::to_string(n) + (n == 1 ? " connection" : " connections") + " loaded, " +
         std::to_string(sockets_.sockets().size()) + " IKE sockets";
}

Expected<void, std::string> Daemon::open_sockets() {
  std::vector<std::string> warnings;
  auto sockets = platform::IkeSockets::open(config_.daemon.listen, config_.daemon.ike_port, config_.daemon.natt_port,
                                            kIkeSocketBuffer, &warnings);
  if (!sockets) return unexpected(sockets.error());
  for (const auto& w : warnings) spdlog::warn("{}", w);
  sockets_ = std::move(*sockets);
  for (std::size_t i = 0; i < sockets_.sockets().size(); ++i) {
    auto& s = sockets_.sockets()[i];
    spdlog::info("listening on {}", s.udp.local_endpoint().to_string());
    watches_.push_back(std::make_unique<asio::posix::stream_descriptor>(io_, s.udp.fd()));
  }
  for (std::size_t i = 0; i < watches_.size(); ++i) wait_readable(i);
  return {};
}

Expected<void, std::string> Daemon::open_dataplane() {
  if (config_.daemon.dataplane == DataplaneKind::kUserspace) {
    auto dp = UserspaceDataplane::create(io_, config_.daemon, [this](std::span<const platform::UdpSocket::Outgoing> out) {
      // Runs of datagrams from the same source go out in one sendmmsg.
      std::size_t sent = 0;
      for (std::size_t i = 0; i < out.size();) {
        std::size_t j = i + 1;
        while (j < out.size() && out[j].from == out[i].from) ++j;
        if (auto* s = sockets_.for_source(out[i].from)) sent += s->udp.send_batch(out.subspan(i, j - i));
        i = j;
      }
      return sent;
    });
    if (!dp) return unexpected(dp.error());
    dataplane_ = std::move(*dp);
    for (auto& s : sockets_.sockets())
      if (s.natt) {
        if (!s.udp.set_buffer_sizes(kEspSocketBuffer))
          spdlog::warn("NAT-T socket buffers: {}", s.udp.last_error()->message());
        if (!s.udp.enable_gro()) spdlog::info("no UDP GRO: {}", s.udp.last_error()->message());
      }
  } else if (config_.daemon.dataplane == DataplaneKind::kXfrm) {
    auto dp = XfrmDataplane::create(config_.daemon);
    if (!dp) return unexpected(dp.error());
    // Before the first Child SA: its policies may cover the peer's address, and IKE
    // itself must never be caught by them.
    for (auto& s : sockets_.sockets()) {
      auto family = s.udp.local_endpoint().address.family();
      if (auto r = prepare_ike_socket_for_xfrm(s.udp.fd(), family, s.natt); !r) return unexpected(r.error());
    }
    dataplane_ = std::move(*dp);
  } else {
    dataplane_ = std::make_unique<NoDataplane>();
  }
  dataplane_->set_report_callback([this] {
    asio::post(io_, [this] {
      if (!stopping_) flush();
    });
  });
  if (int fd = dataplane_->event_fd(); fd >= 0) {
    dataplane_events_ = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
    wait_dataplane_events();
  }
  return {};
}

void Daemon::wait_dataplane_events() {
  dataplane_events_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const std::error_code& ec) {
    if (ec || stopping_) return;
    auto mappings = dataplane_->take_esp_mappings();
    for (const auto& [spi, from] : mappings) engine_.on_esp_mapping(spi, from, now());
    // flush() collects the expires, which arrive on the same socket.
    flush();
    wait_dataplane_events();
  });
}

void Daemon::take_expires() {
  for (const auto& x : dataplane_->take_expires()) {
    bool acted = engine_.on_child_expire(x.child_sa_id, x.hard, x.cause, now());
    spdlog::debug("data plane: Child SA {} passed a {} limit ({}){}", x.child_sa_id, x.hard ? "hard" : "soft",
                  ike::to_string(x.cause), acted ? "" : ", nothing to do");
  }
}

void Daemon::wait_signals() {
  signals_.async_wait([this](const std::error_code& ec, int sig) {
    if (ec || stopping_) return;
    if (sig == SIGHUP) {
      if (auto r = reload(); !r) spdlog::error("reload failed: {}", r.error());
      wait_signals();
      return;
    }
    spdlog::info("signal {}: deleting SAs and exiting", sig);
    shutdown();
  });
}

void Daemon::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  // Scrapes end first: what they would show is being torn down.
  if (metrics_) metrics_->stop();
  if (auto r = notifier_.stopping("deleting SAs"); !r) spdlog::warn("service manager: {}", r.error().message());
  // Out of the cluster first: no node hands us an SA while ours are being deleted.
  if (cluster_) cluster_->stop();
  initiator_.stop();
  engine_.shutdown(now());
  flush();
  timer_.cancel();
  addresses_.stop();
  signals_.cancel();
  for (auto& w : watches_) w->cancel();
  if (dataplane_events_) dataplane_events_->cancel();
  // A client waiting for a switch gets what is known; its answer is written before the
  // control socket closes.
  switch_.shutdown();
  drain_timer_.expires_after(kDrainTime);
  drain_timer_.async_wait([this](const std::error_code&) {
    if (control_) control_->stop();
    io_.stop();
  });
}

void Daemon::wait_readable(std::size_t i) {
  watches_[i]->async_wait(asio::posix::stream_descriptor::wait_read, [this, i](const std::error_code& ec) {
    if (ec || stopping_) return;
    on_readable(i);
    wait_readable(i);
  });
}

void Daemon::on_readable(std::size_t i) {
  auto& s = sockets_.sockets()[i];
  // Bounded so that one busy socket cannot starve the others or the timers.
  if (s.natt) {
    // The NAT-T port also carries ESP: take it in batches (recvmmsg).
    for (int round = 0; round < 8; ++round) {
      std::size_t n = s.udp.receive_batch(batch_bufs_, batch_received_);
      for (std::size_t k = 0; k < n; ++k) handle_datagram(s, batch_received_[k], batch_bufs_[k]);
      if (n < batch_bufs_.size()) break;
    }
  } else {
    for (int k = 0; k < 256; ++k) {
      auto r = s.udp.receive(buffer_);
      if (!r) break;
      handle_datagram(s, *r, buffer_);
    }
  }
  flush();
}

void Daemon::handle_datagram(platform::IkeSockets::Socket& s, const platform::UdpSocket::Received& r,
                             std::span<std::uint8_t> buf) {
  if (r.truncated) {
    io_counters_.oversize_datagrams++;
    return;
  }
  if (r.segment_size) {
    // Coalesced by UDP GRO: each segment is a datagram of its own.
    for (std::size_t off = 0; off < r.size; off += r.segment_size) {
      platform::UdpSocket::Received one = r;
      one.segment_size = 0;
      one.size = std::min<std::size_t>(r.segment_size, r.size - off);
      handle_datagram(s, one, buf.subspan(off));
    }
    return;
  }
  std::span<std::uint8_t> data = buf.first(r.size);
  if (s.natt) {
    auto d = platform::classify_natt(data);
    if (d.kind == platform::NattDatagram::Kind::kKeepalive) {
      io_counters_.keepalives_in++;
      return;
    }
    if (d.kind == platform::NattDatagram::Kind::kEsp) {
      dataplane_->on_udp_esp(d.payload, r.local, r.remote);
      return;
    }
    data = d.payload;
  }
  engine_.on_datagram(r.local, r.remote, data, now());
}

void Daemon::flush() {
  if (dataplane_) {
    take_expires();
    take_acquires();
  }
  // The data plane first: an SA goes into the kernel before the message that tells the
  // peer of it (a CREATE_CHILD_SA response) leaves, or the peer may send on it before
  // it exists here (RFC 7296 §2.17: the responder installs the SA before responding).
  apply_dataplane_ops();
  for (auto& d : engine_.take_datagrams()) {
    bool ok = d.kind == ike::OutDatagram::Kind::kIke ? sockets_.send_ike(d.local, d.remote, d.data)
                                                     : sockets_.send_raw(d.local, d.remote, d.data);
    if (!ok) {
      io_counters_.send_errors++;
      // A source with no socket is a bug of ours; a failed send is the network's.
      spdlog::log(sockets_.for_source(d.local) ? spdlog::level::debug : spdlog::level::warn, "send {} -> {} failed: {}",
                  d.local.to_string(), d.remote.to_string(), sockets_.error());
    }
  }
  for (auto& e : engine_.take_events()) {
    log_event(e);
    switch_.on_event(e);
    initiator_.on_event(e);
    if (cluster_) cluster_->on_event(e);
  }
  switch_.finish_if_done();
  if (cluster_) cluster_->after_flush();
  arm_timer();
}

void Daemon::apply_dataplane_ops() {
  for (auto& op : engine_.take_dataplane_ops()) {
    spdlog::debug("dataplane {} child {} spi in {:08x} out {:08x}",
                  op.kind == ike::DataplaneOp::Kind::kInstall ? "install" :
                  op.kind == ike::DataplaneOp::Kind::kDelete ? "delete" : "update",
                  op.child_sa_id, op.spi_in, op.spi_out);
    if (dataplane_) dataplane_->apply(op);
    if (return_path_) return_path_->on_dataplane_op(op);
  }
}

void Daemon::arm_timer() {
  auto next = engine_.next_timeout();
  if (!next) {
    if (timer_at_ != ike::TimePoint::max()) timer_.cancel();
    timer_at_ = ike::TimePoint::max();
    return;
  }
  if (*next == timer_at_) return;
  timer_at_ = *next;
  timer_.expires_at(*next);
  timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopping_) return;
    timer_at_ = ike::TimePoint::max();
    engine_.on_timeout(now());
    flush();
  });
}

void Daemon::log_event(const ike::Event& e) {
  const char* what = "";
  switch (e.kind) {
    case ike::EventKind::kIkeEstablished: what = "IKE SA established"; break;
    case ike::EventKind::kIkeRekeyed: what = "IKE SA rekeyed"; break;
    case ike::EventKind::kIkeDeleted: what = "IKE SA deleted"; break;
    case ike::EventKind::kIkeFailed: what = "IKE SA failed"; break;
    case ike::EventKind::kChildEstablished: what = "CHILD SA established"; break;
    case ike::EventKind::kChildRekeyed: what = "CHILD SA rekeyed"; break;
    case ike::EventKind::kChildDeleted: what = "CHILD SA deleted"; break;
    case ike::EventKind::kChildFailed: what = "CHILD SA failed"; break;
    case ike::EventKind::kAddressesUpdated: what = "addresses updated"; break;
    case ike::EventKind::kAddressUpdateRefused: what = "address update refused"; break;
    case ike::EventKind::kSwitchSucceeded: what = "switch succeeded"; break;
    case ike::EventKind::kSwitchRefused: what = "switch refused"; break;
    case ike::EventKind::kSwitchFailed: what = "switch failed"; break;
    case ike::EventKind::kHandoffAnswered: what = "handed-over request answered here"; break;
    case ike::EventKind::kMidSynced: what = "message IDs synchronised (RFC 6311)"; break;
    case ike::EventKind::kNoPath: what = "no path to the peer answers"; break;
  }
  // With the SA's fields in the journal; its peer only while the SA is still there.
  auto line = fmt::format("{}[{}] {}{}{}", e.connection, e.ike_sa_id, what, e.detail.empty() ? "" : ": ", e.detail);
  if (e.ike_sa_id == 0) {
    spdlog::info("{}", line);
    return;
  }
  SaFields fields{e.ike_sa_id, e.connection, std::nullopt};
  if (const ike::IkeSa* sa = engine_.find_ike_sa(e.ike_sa_id)) fields.peer = sa->remote;
  log_about_sa(spdlog::level::info, line, fields);
}

std::optional<IpAddress> Daemon::local_address_for(const ike::ConnectionConfig& c, const IpAddress& remote) const {
  if (c.local_addrs.empty()) return platform::source_address_for(remote);
  // The first named address the host has (wherever it sits), else the first named one
  // (the address monitor may not have reported yet).
  for (const auto& a : mobility::usable_local_addresses(c, engine_.local_addresses()))
    if (a.family() == remote.family()) return a;
  for (const auto& a : c.local_addrs)
    if (a.family() == remote.family()) return a;
  return std::nullopt;
}

std::optional<IpAddress> Daemon::local_address_for(const ike::ConnectionConfig& c) const {
  for (const auto& r : c.remote_addrs)
    if (auto a = IpAddress::parse(r))
      if (auto local = local_address_for(c, *a)) return local;
  return std::nullopt;
}

void Daemon::install_traps() {
  for (const auto& [id, trap] : traps_) dataplane_->remove_trap(id);
  traps_.clear();
  for (const auto& c : engine_.connections_list()) {
    if (c->start != ike::StartAction::kTrap) continue;
    auto local = local_address_for(*c);
    std::optional<IpAddress> remote;
    for (const auto& r : c->remote_addrs)
      if (auto a = IpAddress::parse(r); a && local && a->family() == local->family()) {
        remote = a;
        break;
      }
    if (!local || !remote) {
      spdlog::error("connection '{}': no route to its remote address, no trap installed", c->name);
      continue;
    }
    for (const auto& child : c->children) {
      // With virtual IPs asked for, the "dynamic" side is every address of their family
      // (like IKE_AUTH's TSi): traffic from the virtual IP, once assigned, must fire the
      // traps of children not set up yet, and a trap route with our outer address as its
      // preferred source would keep later traffic from leaving from the virtual IP.
      TrapSpec spec{*local, *remote, ike::dynamic_ts(child.local_ts, c->vips, {}, *local),
                    ike::ts_from_config(child.remote_ts, *remote)};
      const std::uint64_t id = next_trap_id_++;
      if (auto r = dataplane_->install_trap(id, spec); !r) {
        spdlog::error("connection '{}' child '{}': trap not installed: {}", c->name, child.name, r.error());
        continue;
      }
      traps_[id] = {c->name, child.name};
      spdlog::info("connection '{}' child '{}': trap installed ({} -> {}), waiting for traffic", c->name, child.name,
                   local->to_string(), remote->to_string());
    }
  }
}

void Daemon::take_acquires() {
  for (auto id : dataplane_->take_acquires()) {
    auto it = traps_.find(id);
    if (it == traps_.end()) continue;
    const auto& [connection, child] = it->second;
    const ike::ConnectionConfig* cfg = nullptr;
    for (const auto& c : engine_.connections_list())
      if (c->name == connection) cfg = c.get();
    auto local = cfg ? local_address_for(*cfg) : std::nullopt;
    if (!local) {
      spdlog::warn("traffic for connection '{}': no route to its remote address", connection);
      continue;
    }
    auto what = engine_.acquire(connection, child, *local, now());
    spdlog::debug("traffic for connection '{}' child '{}': {}", connection, child,
                  what == ike::Engine::Acquired::kInitiated        ? "initiating"
                  : what == ike::Engine::Acquired::kChildRequested ? "creating the Child SA"
                  : what == ike::Engine::Acquired::kUnderWay       ? "already under way"
                                                                   : "unknown");
  }
}

Expected<void, std::string> Daemon::reload() {
  if (auto r = notifier_.reloading("reloading " + config_path_); !r)
    spdlog::warn("service manager: {}", r.error().message());
  auto result = apply_config_file();
  // READY=1 either way: the manager holds the unit in "reloading" until it comes.
  // A refused file's first error only: STATUS= is one line in `systemctl status`.
  std::string status = result ? status_text()
                              : "reload failed, still " + status_text() + ": " +
                                    result.error().substr(0, result.error().find('\n'));
  if (auto r = notifier_.ready(status); !r) spdlog::warn("service manager: {}", r.error().message());
  return result;
}

Expected<void, std::string> Daemon::apply_config_file() {
  auto cfg = load_config(config_path_);
  if (!cfg) return unexpected(cfg.error());
  config_.connections = cfg->connections;
  engine_.set_connections(std::move(cfg->connections));
  config_.pools = cfg->pools;
  engine_.set_pools(std::move(cfg->pools));
  install_traps();
  spdlog::info("configuration reloaded: {} connections", config_.connections.size());
  return {};
}

Expected<void, std::string> Daemon::update_addresses(std::uint64_t id, std::optional<IpAddress> local) {
  const ike::IkeSa* sa = engine_.find_ike_sa(id);
  if (!sa) return unexpected("no IKE SA #" + std::to_string(id));
  const auto& host = engine_.local_addresses();
  if (local) {
    if (!host.empty() && sa->config && !mobility::usable_local_address(*sa->config, host, *local))
      return unexpected(local->to_string() + " is not an address connection '" + sa->config->name + "' may use");
  } else {
    // The route's source towards the peer if the connection may use it, else its most
    // preferred other address of the same family.
    local = platform::source_address_for(sa->remote.address);
    if (local && !host.empty() && sa->config && !mobility::usable_local_address(*sa->config, host, *local)) {
      local.reset();
      for (const auto& a : mobility::usable_local_addresses(*sa->config, host))
        if (a != sa->local.address && a.family() == sa->remote.address.family()) {
          local = a;
          break;
        }
    }
  }
  if (!local) return unexpected("no address to move to towards " + sa->remote.address.to_string());
  if (!mobility::update_addresses(engine_, id, *local, now()))
    return unexpected("IKE SA #" + std::to_string(id) + " cannot move (not established, not the MOBIKE initiator, or no MOBIKE)");
  spdlog::info("IKE SA {}: moving to {}", id, local->to_string());
  return {};
}

void Daemon::handle(const json& raw, ControlServer::Reply reply, ControlServer::Progress progress) {
  if (stopping_) return reply(control::error_response("mobiked is stopping"));
  auto req = control::request_from_json(raw);
  if (!req) return reply(control::error_response(req.error()));
  if (auto* sw = std::get_if<control::SwitchRequest>(&*req))
    return switch_.start(*sw, std::move(reply), std::move(progress));
  if (auto* i = std::get_if<control::InitiateRequest>(&*req))
    // Answered once the IKE SA is under way, after looking up the names in remote_addrs.
    return initiator_.initiate(i->connection, [reply = std::move(reply)](Expected<std::uint64_t, std::string> id) {
      reply(id ? control::ok_response(json{{"id", *id}}) : control::error_response(id.error()));
    });
  const bool cluster_command = std::holds_alternative<control::ClusterStatusRequest>(*req) ||
                               std::holds_alternative<control::ClusterMoveRequest>(*req) ||
                               std::holds_alternative<control::ClusterDrainRequest>(*req) ||
                               std::holds_alternative<control::ClusterRebalanceRequest>(*req);
  if (cluster_command && !cluster_)
    return reply(control::error_response("this mobiked is not a cluster node (no [cluster] section)"));
  if (auto* m = std::get_if<control::ClusterMoveRequest>(&*req))
    return cluster_->move(*m, std::move(reply), std::move(progress));
  if (auto* d = std::get_if<control::ClusterDrainRequest>(&*req))
    return cluster_->drain(*d, std::move(reply), std::move(progress));
  if (std::holds_alternative<control::ClusterRebalanceRequest>(*req))
    return cluster_->rebalance(std::move(reply), std::move(progress));
  reply(handle_now(*req));
}

json Daemon::handle_now(const control::Request& req) {
  auto t = now();
  json result = nullptr;
  json response = nullptr;  // a complete response, when the command builds one
  std::string error;
  std::visit(
      [&](const auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, control::ListSasRequest>) {
          result = sa_list_view(engine_, dataplane_.get(), t);
          if (cluster_) cluster_->annotate(result);
        } else if constexpr (std::is_same_v<T, control::StatsRequest>) {
          result = stats_view(engine_, io_counters_, addresses_.counters(), dataplane_.get());
        } else if constexpr (std::is_same_v<T, control::InitiateRequest>) {
          error = "initiate is answered by the initiator";  // handle() passes it there
        } else if constexpr (std::is_same_v<T, control::TerminateRequest>) {
          if (r.sa) {
            if (!engine_.terminate_ike(*r.sa, t)) error = "no IKE SA #" + std::to_string(*r.sa);
          } else if (r.connection) {
            auto n = engine_.terminate_connection(*r.connection, t);
            if (!n) error = "no IKE SA of connection '" + *r.connection + "'";
            result = json{{"terminated", n}};
          }
        } else if constexpr (std::is_same_v<T, control::RekeyRequest>) {
          bool ok = r.kind == control::RekeyRequest::Kind::kIke ? engine_.rekey_ike(r.id, t) : engine_.rekey_child(r.id, t);
          if (!ok) error = std::string("no established ") + (r.kind == control::RekeyRequest::Kind::kIke ? "IKE" : "CHILD") +
                           " SA #" + std::to_string(r.id);
        } else if constexpr (std::is_same_v<T, control::UpdateAddressesRequest>) {
          std::optional<IpAddress> local;
          if (r.local) local = IpAddress::parse(*r.local);
          if (r.local && !local)
            error = "'" + *r.local + "' is not an IP address";
          else if (auto u = update_addresses(r.sa, local); !u)
            error = u.error();
        } else if constexpr (std::is_same_v<T, control::ReloadRequest>) {
          if (auto rr = reload(); !rr) error = rr.error();
        } else if constexpr (std::is_same_v<T, control::SwitchCancelRequest>) {
          response = switch_.cancel();
        } else if constexpr (std::is_same_v<T, control::ListAddressesRequest>) {
          result = addresses_.view();
        } else if constexpr (std::is_same_v<T, control::ListConnsRequest>) {
          std::vector<const ike::ConnectionConfig*> conns;
          for (const auto& c : config_.connections) conns.push_back(&c);
          result = connection_list_view(conns);
        } else if constexpr (std::is_same_v<T, control::ListPoolsRequest>) {
          result = json::array();
          for (const auto& [name, pool] : engine_.pools()) {
            json leases = json::array();
            for (const auto& l : pool->leases())
              leases.push_back({{"address", l.address.to_string()}, {"identity", l.identity}, {"online", l.online}});
            json dns = json::array(), domains = json::array();
            for (const auto& a : pool->config().dns) dns.push_back(a.to_string());
            for (const auto& dom : pool->config().dns_domains) domains.push_back(dom);
            result.push_back({{"name", name},
                              {"first", pool->config().first.to_string()},
                              {"last", pool->config().last.to_string()},
                              {"size", pool->size()},
                              {"online", pool->online()},
                              {"offline", leases.size() - pool->online()},
                              {"dns", dns},
                              {"split_dns", domains},
                              {"leases", leases}});
          }
        } else if constexpr (std::is_same_v<T, control::ClusterStatusRequest>) {
          result = cluster_->status();
          if (return_path_) {
            const auto& c = return_path_->counters();
            result["return_traffic"] = {{"taken", c.taken},         {"released", c.released},
                                        {"announced", c.announced}, {"hook_runs", c.hook_runs},
                                        {"hook_failures", c.hook_failures}, {"errors", c.errors}};
          }
        }
      },
      req);
  flush();
  if (!response.is_null()) return response;
  if (!error.empty()) return control::error_response(error);
  return control::ok_response(result);
}

}  // namespace mobike::daemon
