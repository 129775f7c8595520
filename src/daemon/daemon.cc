#include "daemon/daemon.h"

#include <csignal>

#include <asio/post.hpp>
#include <spdlog/spdlog.h>

#include "control/protocol.h"
#include "daemon/userspace_dataplane.h"
#include "daemon/xfrm_dataplane.h"
#include "ike/proposal_string.h"
#include "ike/traffic_selector.h"
#include "mobility/address_policy.h"
#include "mobility/mobike.h"
#include "platform/route.h"

namespace mobike::daemon {

using nlohmann::json;

namespace {

constexpr std::uint8_t kNonEspMarker[4] = {0, 0, 0, 0};
constexpr int kEspSocketBuffer = 4 << 20;
constexpr int kIkeSocketBuffer = 16 << 20;

ike::TimePoint now() { return ike::Clock::now(); }

spdlog::level::level_enum to_spdlog(ike::LogLevel l) {
  switch (l) {
    case ike::LogLevel::kTrace: return spdlog::level::trace;
    case ike::LogLevel::kDebug: return spdlog::level::debug;
    case ike::LogLevel::kInfo: return spdlog::level::info;
    case ike::LogLevel::kWarn: return spdlog::level::warn;
    case ike::LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::vector<std::string> ts_strings(const std::vector<wire::TrafficSelector>& ts) {
  std::vector<std::string> out;
  for (const auto& t : ts) out.push_back(ike::ts_to_string(t));
  return out;
}

}  // namespace

ike::EngineConfig engine_config(const DaemonConfig& d) {
  ike::EngineConfig e;
  e.ike_port = d.ike_port;
  e.natt_port = d.natt_port;
  e.retransmit_timeout = d.retransmit_timeout;
  e.retransmit_base = d.retransmit_base;
  e.retransmit_tries = d.retransmit_tries;
  e.half_open_threshold = d.half_open_threshold;
  e.half_open_timeout = d.half_open_timeout;
  e.keepalive_interval = d.keepalive_interval;
  e.switch_notify_type = d.switch_notify_type;
  return e;
}

Daemon::Daemon(Config config, std::string config_path)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      timer_(io_),
      engine_(engine_config(config_.daemon), random_,
              [](ike::LogLevel l, const std::string& m) { spdlog::log(to_spdlog(l), "{}", m); }),
      debounce_timer_(io_),
      switch_timer_(io_),
      buffer_(65536) {
  // Room for any datagram, or for what UDP GRO coalesced (up to 64 KiB) on the NAT-T port.
  batch_storage_.assign(32, std::vector<std::uint8_t>(kBatchDatagramSize));
  for (auto& b : batch_storage_) batch_bufs_.emplace_back(b);
  batch_received_.resize(batch_storage_.size());
  mobility::Config mobike;
  mobike.path_timeout = config_.daemon.mobike_path_timeout;
  mobility::install(engine_, mobike);
  engine_.set_connections(config_.connections);
}

std::vector<ike::HostAddress> Daemon::engine_addresses(const platform::AddressSet& set) const {
  // The tunnel's own device carries inner addresses: never a path to the peer.
  std::vector<ike::HostAddress> out;
  for (const auto& a : set)
    if (a.ifname != config_.daemon.tun_name) out.push_back({a.address, a.on_loopback});
  return out;
}

Daemon::~Daemon() {
  for (auto& s : sockets_)
    if (s->watch) s->watch->release();  // the UdpSocket owns the descriptor
  if (addresses_watch_) addresses_watch_->release();
}

Expected<void, std::string> Daemon::start() {
  for (const auto& addr : config_.daemon.listen) {
    for (bool natt : {false, true}) {
      auto port = natt ? config_.daemon.natt_port : config_.daemon.ike_port;
      auto udp = platform::UdpSocket::open(Endpoint{addr, port});
      if (!udp) return unexpected("cannot listen on " + Endpoint{addr, port}.to_string() + ": " + udp.error().message());
      auto s = std::make_unique<Socket>();
      s->udp = std::move(*udp);
      s->natt = natt;
      // Bursts of thousands of IKE messages (a mass switch, a gateway restart) must not
      // overflow the default buffers; losses would cost a retransmission timeout each.
      if (!s->udp.set_buffer_sizes(kIkeSocketBuffer))
        spdlog::warn("socket buffers of {}: {}", s->udp.local_endpoint().to_string(),
                     s->udp.last_error()->message());
      s->watch = std::make_unique<asio::posix::stream_descriptor>(io_, s->udp.fd());
      spdlog::info("listening on {}", s->udp.local_endpoint().to_string());
      sockets_.push_back(std::move(s));
    }
  }
  for (auto& s : sockets_) wait_readable(*s);

  if (config_.daemon.dataplane == DataplaneKind::kUserspace) {
    auto dp = UserspaceDataplane::create(io_, config_.daemon, [this](std::span<const platform::UdpSocket::Outgoing> out) {
      // Runs of datagrams from the same source go out in one sendmmsg.
      std::size_t sent = 0;
      for (std::size_t i = 0; i < out.size();) {
        std::size_t j = i + 1;
        while (j < out.size() && out[j].from == out[i].from) ++j;
        if (Socket* s = socket_for(out[i].from)) sent += s->udp.send_batch(out.subspan(i, j - i));
        i = j;
      }
      return sent;
    });
    if (!dp) return unexpected(dp.error());
    dataplane_ = std::move(*dp);
    for (auto& s : sockets_)
      if (s->natt) {
        if (!s->udp.set_buffer_sizes(kEspSocketBuffer))
          spdlog::warn("NAT-T socket buffers: {}", s->udp.last_error()->message());
        if (!s->udp.enable_gro()) spdlog::info("no UDP GRO: {}", s->udp.last_error()->message());
      }
  } else if (config_.daemon.dataplane == DataplaneKind::kXfrm) {
    auto dp = XfrmKernelDataplane::create(config_.daemon);
    if (!dp) return unexpected(dp.error());
    // Before the first Child SA: its policies may cover the peer's address, and IKE
    // itself must never be caught by them.
    for (auto& s : sockets_) {
      auto family = s->udp.local_endpoint().address.family();
      if (auto r = prepare_ike_socket_for_xfrm(s->udp.fd(), family, s->natt); !r) return unexpected(r.error());
    }
    dataplane_ = std::move(*dp);
  } else {
    dataplane_ = std::make_unique<NoDataplane>();
  }

  auto control = ControlServer::start_async(io_, config_.daemon.socket,
                                            [this](const json& r, ControlServer::Reply reply) { handle(r, std::move(reply)); });
  if (!control) return unexpected(control.error());
  control_ = std::move(*control);

  wait_signals();
  start_address_monitor();

  for (const auto& c : config_.connections)
    if (c.start == ike::StartAction::kInitiate)
      if (auto r = initiate(c.name); !r) spdlog::error("cannot initiate '{}': {}", c.name, r.error());
  flush();
  return {};
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

void Daemon::start_address_monitor() {
  auto m = platform::AddressMonitor::open();
  if (!m) {
    spdlog::warn("no address monitoring ({}): MOBIKE moves only on request", m.error().message());
    return;
  }
  addresses_ = std::move(*m);
  if (auto d = addresses_->dump(); !d) {
    spdlog::warn("address dump failed ({}): MOBIKE moves only on request", d.error().message());
    addresses_.reset();
    return;
  }
  // An interface going away emits its address and route events within a few ms: a
  // short quiet period still coalesces them and keeps the move fast (the gap in the
  // tunnel's traffic is what MOBIKE users feel).
  engine_.set_local_addresses(engine_addresses(addresses_->snapshot()), now());
  debouncer_.emplace(addresses_->snapshot(),
                     platform::Debouncer::Config{std::chrono::milliseconds(20), std::chrono::milliseconds(250)});
  addresses_watch_ = std::make_unique<asio::posix::stream_descriptor>(io_, addresses_->fd());
  watch_addresses();
}

void Daemon::watch_addresses() {
  addresses_watch_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const std::error_code& ec) {
    if (ec || stopping_) return;
    auto events = addresses_->process();
    if (events && !events->empty()) {
      debouncer_->feed(*events, addresses_->snapshot(), now());
      arm_debounce_timer();
    }
    watch_addresses();
  });
}

void Daemon::arm_debounce_timer() {
  auto at = debouncer_->next_deadline();
  if (!at) return;
  debounce_timer_.expires_at(*at);
  debounce_timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopping_) return;
    if (auto change = debouncer_->due(now())) on_addresses_changed(*change);
    arm_debounce_timer();
  });
}

void Daemon::on_addresses_changed(const platform::AddressSetChange& change) {
  stats_.address_changes++;
  auto before = engine_addresses(change.before);
  auto after = engine_addresses(change.after);
  spdlog::info("local addresses changed: {} usable", after.size());
  // Announces the new set to MOBIKE peers and lets SAs that lost every path probe again.
  engine_.set_local_addresses(after, now());
  // Where each SA goes is the mobility layer's decision (mobility/address_policy.h);
  // the daemon only carries it out.
  auto facts = mobility::sa_facts(engine_);
  auto plan = mobility::plan_address_change(before, after, facts, [](const IpAddress& peer) {
    return platform::source_address_for(peer);
  });
  auto outcome = mobility::execute(engine_, plan, now());
  for (const auto& line : outcome.log_info) spdlog::info("{}", line);
  for (const auto& line : outcome.log_warn) spdlog::warn("{}", line);
  stats_.automatic_moves += outcome.moves;
  stats_.automatic_switches += outcome.switches;
  flush();
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

void Daemon::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  engine_.shutdown(now());
  flush();
  timer_.cancel();
  debounce_timer_.cancel();
  switch_timer_.cancel();
  signals_.cancel();
  if (control_) control_->stop();
  for (auto& s : sockets_)
    if (s->watch) s->watch->cancel();
  io_.stop();
}

void Daemon::wait_readable(Socket& s) {
  s.watch->async_wait(asio::posix::stream_descriptor::wait_read, [this, &s](const std::error_code& ec) {
    if (ec || stopping_) return;
    on_readable(s);
    wait_readable(s);
  });
}

void Daemon::on_readable(Socket& s) {
  // Bounded so that one busy socket cannot starve the others or the timers.
  if (s.natt) {
    // The NAT-T port also carries ESP: take it in batches (recvmmsg).
    for (int round = 0; round < 8; ++round) {
      std::size_t n = s.udp.receive_batch(batch_bufs_, batch_received_);
      for (std::size_t k = 0; k < n; ++k) handle_datagram(s, batch_received_[k], batch_bufs_[k]);
      if (n < batch_bufs_.size()) break;
    }
  } else {
    for (int i = 0; i < 256; ++i) {
      auto r = s.udp.receive(buffer_);
      if (!r) break;
      handle_datagram(s, *r, buffer_);
    }
  }
  flush();
}

void Daemon::handle_datagram(Socket& s, const platform::UdpSocket::Received& r, std::span<std::uint8_t> buf) {
  if (r.truncated) {
    stats_.oversize_datagrams++;
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
    if (data.size() == 1 && data[0] == 0xff) {
      stats_.keepalives_in++;
      return;
    }
    if (data.size() < 4 || data[0] || data[1] || data[2] || data[3]) {
      // ESP in UDP (RFC 3948): a non-zero SPI where IKE has its marker.
      dataplane_->on_udp_esp(data, r.local, r.remote);
      return;
    }
    data = data.subspan(4);
  }
  engine_.on_datagram(r.local, r.remote, data, now());
}

Daemon::Socket* Daemon::socket_for(const Endpoint& local) {
  Socket* fallback = nullptr;
  for (auto& s : sockets_) {
    const auto& ep = s->udp.local_endpoint();
    if (ep.port != local.port || ep.address.family() != local.address.family()) continue;
    if (ep.address == local.address) return s.get();
    if (ep.address.is_unspecified()) fallback = s.get();
  }
  return fallback;
}

void Daemon::flush() {
  if (dataplane_)
    for (auto id : dataplane_->take_rekey_requests()) {
      spdlog::info("Child SA {} is running out of sequence numbers: rekeying", id);
      engine_.rekey_child(id, now());
    }
  for (auto& d : engine_.take_datagrams()) {
    Socket* s = socket_for(d.local);
    if (!s) {
      stats_.send_errors++;
      spdlog::warn("no socket to send from {}", d.local.to_string());
      continue;
    }
    bool ok;
    if (s->natt && d.kind == ike::OutDatagram::Kind::kIke) {
      Bytes framed(kNonEspMarker, kNonEspMarker + 4);
      append(framed, d.data);
      ok = s->udp.send(d.local, d.remote, framed);
    } else {
      ok = s->udp.send(d.local, d.remote, d.data);
    }
    if (!ok) {
      stats_.send_errors++;
      spdlog::debug("send {} -> {} failed: {}", d.local.to_string(), d.remote.to_string(),
                    s->udp.last_error() ? s->udp.last_error()->message() : "?");
    }
  }
  for (auto& op : engine_.take_dataplane_ops()) {
    spdlog::debug("dataplane {} child {} spi in {:08x} out {:08x}",
                  op.kind == ike::DataplaneOp::Kind::kInstall ? "install" :
                  op.kind == ike::DataplaneOp::Kind::kDelete ? "delete" : "update",
                  op.child_sa_id, op.spi_in, op.spi_out);
    if (dataplane_) dataplane_->apply(op);
  }
  for (auto& e : engine_.take_events()) {
    log_event(e);
    if (switch_job_) switch_job_->on_event(e);
  }
  if (switch_job_ && switch_job_->done()) {
    auto reply = std::move(switch_reply_);
    auto result = switch_job_->result(now());
    switch_job_.reset();
    switch_timer_.cancel();
    reply(control::ok_response(std::move(result)));
  }
  arm_timer();
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
  }
  spdlog::info("{}[{}] {}{}{}", e.connection, e.ike_sa_id, what, e.detail.empty() ? "" : ": ", e.detail);
}

Expected<std::uint64_t, std::string> Daemon::initiate(const std::string& name) {
  const ike::ConnectionConfig* cfg = nullptr;
  for (const auto& c : engine_.connections_list())
    if (c->name == name) cfg = c.get();
  if (!cfg) return unexpected("no connection named '" + name + "'");
  std::optional<IpAddress> local;
  if (!cfg->local_addrs.empty()) {
    // The first named address the host has (wherever it sits) of the family of the peer
    // the engine initiates to, else the first named one.
    std::optional<IpAddress> peer;
    for (const auto& r : cfg->remote_addrs)
      if ((peer = IpAddress::parse(r))) break;
    for (const auto& a : mobility::usable_local_addresses(*cfg, engine_.local_addresses()))
      if (!local && (!peer || a.family() == peer->family())) local = a;
    if (!local) local = cfg->local_addrs.front();
  } else {
    for (const auto& r : cfg->remote_addrs)
      if (auto a = IpAddress::parse(r))
        if ((local = platform::source_address_for(*a))) break;
  }
  if (!local) return unexpected("no route to any remote address of '" + name + "'");
  auto id = engine_.initiate(name, *local, now());
  flush();
  return id;
}

Expected<void, std::string> Daemon::reload() {
  auto cfg = load_config(config_path_);
  if (!cfg) return unexpected(cfg.error());
  config_.connections = cfg->connections;
  engine_.set_connections(std::move(cfg->connections));
  spdlog::info("configuration reloaded: {} connections", config_.connections.size());
  return {};
}

json Daemon::list_sas() const {
  std::vector<control::IkeSaInfo> out;
  auto t = now();
  engine_.for_each_ike_sa([&](const ike::IkeSa& sa) {
    control::IkeSaInfo i;
    i.id = sa.id;
    i.name = sa.connection_name;
    i.state = std::string(ike::to_string(sa.state));
    i.initiator = sa.initiator;
    i.local = sa.local;
    i.remote = sa.remote;
    if (sa.config) i.local_id = sa.config->local_id.to_string();
    if (sa.remote_id) i.remote_id = sa.remote_id->to_string();
    i.spi_i = sa.spi_i;
    i.spi_r = sa.spi_r;
    i.nat_local = sa.nat_local;
    i.nat_remote = sa.nat_remote;
    i.mobike = sa.peer_mobike;
    if (auto v = mobility::view(sa)) {
      for (const auto& a : v->peer_addresses) i.peer_addresses.push_back(a.to_string());
      i.path_probing = v->probing;
      i.rr_pending = v->rr_pending;
      i.moves = v->updates;
      i.peer_switch = v->peer_switch;
      if (v->switching_to) i.switching_to = v->switching_to->to_string();
    }
    i.ike_proposal = sa.ike_proposal.transforms.empty() ? "" : ike::proposal_to_string(sa.ike_proposal);
    if (sa.state != ike::IkeState::kConnecting)
      i.established_seconds = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::seconds>(t - sa.established_at).count());
    for (const auto& c : sa.children) {
      control::ChildSaInfo ci;
      ci.id = c.id;
      ci.name = c.name;
      ci.state = std::string(ike::to_string(c.state));
      ci.spi_in = c.spi_in;
      ci.spi_out = c.spi_out;
      ci.local_ts = ts_strings(c.local_ts);
      ci.remote_ts = ts_strings(c.remote_ts);
      ci.esp_proposal = ike::proposal_to_string(c.proposal);
      if (auto t = dataplane_ ? dataplane_->traffic(c.id) : std::nullopt) {
        ci.bytes_in = t->bytes_in;
        ci.bytes_out = t->bytes_out;
        ci.packets_in = t->packets_in;
        ci.packets_out = t->packets_out;
        ci.drops = t->drops;
      }
      i.children.push_back(std::move(ci));
    }
    out.push_back(std::move(i));
  });
  return json(out);
}

json Daemon::stats() const {
  const auto& s = engine_.counters();
  return json{{"ike_sas", engine_.ike_sa_count()},
              {"half_open", engine_.half_open_count()},
              {"datagrams", {{"in", s.datagrams_in}, {"out", s.datagrams_out}}},
              {"dropped",
               {{"malformed", s.dropped_malformed},
                {"unknown_spi", s.dropped_unknown_spi},
                {"bad_message_id", s.dropped_bad_message_id},
                {"integrity", s.dropped_integrity},
                {"unexpected", s.dropped_unexpected},
                {"oversize", stats_.oversize_datagrams}}},
              {"retransmits", {{"sent", s.retransmits_sent}, {"answered", s.retransmits_answered}}},
              {"cookies_sent", s.cookies_sent},
              {"keepalives_in", stats_.keepalives_in},
              {"address_changes", stats_.address_changes},
              {"automatic_moves", stats_.automatic_moves},
              {"automatic_switches", stats_.automatic_switches},
              {"send_errors", stats_.send_errors},
              {"ike", {{"established", s.ike_established}, {"failed", s.ike_failed}, {"half_open_expired", s.half_open_expired}}},
              {"child", {{"established", s.child_established}}},
              {"dataplane", dataplane_ ? dataplane_->stats() : json(nullptr)}};
}

void Daemon::handle(const json& raw, ControlServer::Reply reply) {
  auto req = control::request_from_json(raw);
  if (req)
    if (auto* sw = std::get_if<control::SwitchRequest>(&*req)) return start_switch_job(*sw, std::move(reply));
  reply(handle_now(raw));
}

void Daemon::start_switch_job(const control::SwitchRequest& r, ControlServer::Reply reply) {
  if (switch_job_) return reply(control::error_response("a switch is already running; try again when it ends"));
  auto to = IpAddress::parse(r.to);
  if (!to) return reply(control::error_response("'" + r.to + "' is not an IP address"));
  std::vector<std::uint64_t> ids;
  std::vector<std::pair<std::uint64_t, std::string>> skipped;
  engine_.for_each_ike_sa([&](const ike::IkeSa& sa) {
    if (r.sa && sa.id != *r.sa) return;
    if (r.connection && sa.connection_name != *r.connection) return;
    if (r.all && sa.original_initiator) return;  // only SAs where we are the responder
    // The same set as announced and as chosen automatically: an address the connection
    // may not use would never receive the initiator's answer.
    const auto& host = engine_.local_addresses();
    if (!host.empty() && sa.config && !mobility::usable_local_address(*sa.config, host, *to)) {
      skipped.emplace_back(sa.id, to->to_string() + " is not an address connection '" + sa.config->name + "' may use");
      return;
    }
    ids.push_back(sa.id);
  });
  if (ids.empty() && skipped.size() == 1) return reply(control::error_response(skipped.front().second));
  if (ids.empty() && skipped.empty()) {
    std::string what = r.sa ? "no IKE SA #" + std::to_string(*r.sa)
                     : r.connection ? "no IKE SA of connection '" + *r.connection + "'"
                                    : std::string("no IKE SA where we are the responder");
    return reply(control::error_response(what));
  }
  spdlog::info("switching {} IKE SA(s) to {}{}", ids.size(), to->to_string(),
               r.rate > 0 ? fmt::format(" at {}/s", r.rate) : std::string());
  switch_job_ = std::make_unique<SwitchJob>(std::move(ids), std::move(skipped), *to, r.rate, now());
  switch_reply_ = std::move(reply);
  drive_switch_job();
}

void Daemon::drive_switch_job() {
  if (!switch_job_) return;
  auto next = switch_job_->start_due(now(), [this](std::uint64_t id, const IpAddress& to) {
    return mobility::switch_address(engine_, id, to, now());
  });
  flush();  // may finish the job
  if (!next || !switch_job_) return;
  switch_timer_.expires_at(*next);
  switch_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec && !stopping_) drive_switch_job();
  });
}

json Daemon::handle_now(const json& raw) {
  auto req = control::request_from_json(raw);
  if (!req) return control::error_response(req.error());
  auto t = now();
  json result = nullptr;
  std::string error;
  std::visit(
      [&](const auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, control::ListSasRequest>) {
          result = list_sas();
        } else if constexpr (std::is_same_v<T, control::StatsRequest>) {
          result = stats();
        } else if constexpr (std::is_same_v<T, control::InitiateRequest>) {
          auto id = initiate(r.connection);
          if (id) result = json{{"id", *id}};
          else error = id.error();
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
        } else if constexpr (std::is_same_v<T, control::ListAddressesRequest>) {
          result = json::array();
          if (addresses_) {
            for (const auto& a : addresses_->snapshot())
              if (a.ifname != config_.daemon.tun_name)
                result.push_back({{"addr", a.address.to_string()}, {"prefix", a.prefix_len},
                                  {"interface", a.ifname}, {"deprecated", a.deprecated()},
                                  {"on_loopback", a.on_loopback}});
          } else {
            for (const auto& a : engine_.local_addresses())
              result.push_back({{"addr", a.address.to_string()}, {"on_loopback", a.on_loopback}});
          }
        }
      },
      *req);
  flush();
  if (!error.empty()) return control::error_response(error);
  return control::ok_response(result);
}

}  // namespace mobike::daemon
