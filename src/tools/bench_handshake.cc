#include "tools/bench_handshake.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <unordered_map>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include "crypto/random.h"
#include "ike/engine.h"
#include "ike/proposal_string.h"
#include "mobility/mobike.h"
#include "platform/ike_sockets.h"
#include "platform/udp_socket.h"

namespace mobike::bench {

namespace {

using ike::Clock;
using ike::TimePoint;

// Engine::initiate() finds its connection by a linear scan, so the bench hands the
// engine its per-SA definitions in batches of this many instead of all N at once
// (earlier batches stay alive inside the engine for the SAs that use them).
constexpr std::size_t kConfigBatch = 256;
// Received datagrams handled per readable event before timers get a turn.
constexpr int kReceiveBatch = 64;
// Engine warnings printed before the rest are only counted: with thousands of SAs a
// systematic failure would otherwise flood the terminal.
constexpr int kMaxPrintedWarnings = 20;

double ms_between(TimePoint a, TimePoint b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

// utime + stime of a process in seconds, from /proc/PID/stat.
std::optional<double> cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name (field 2) may contain spaces and parentheses: fields are counted
  // from the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  // After the name: state is field 3, utime field 14, stime field 15.
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double own_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

class Run {
 public:
  explicit Run(const HandshakeOptions& o) : o_(o), timer_(io_), buffer_(65536) {}

  ~Run() {
    // The UdpSockets own the descriptors.
    for (auto& w : watches_)
      if (w) w->release();
  }

  Expected<HandshakeReport, std::string> execute();

 private:
  struct Pending {
    std::size_t index = 0;
    TimePoint started{};
    bool ike_up = false;
    bool child_up = false;
  };

  Expected<void, std::string> open_sockets();
  std::vector<ike::ConnectionConfig> configs(std::size_t first, std::size_t last) const;
  static std::string name(std::size_t i) { return "b" + std::to_string(i); }

  void wait_readable(std::size_t s);
  void on_readable(std::size_t s);
  void pump(TimePoint now);
  void start_due(TimePoint now);
  void initiate(TimePoint now);
  void send(const ike::OutDatagram& d);
  void on_event(const ike::Event& e, TimePoint now);
  void resolve(std::unordered_map<std::uint64_t, Pending>::iterator it, TimePoint now,
               const std::string& failure);
  void note_vip(std::uint64_t ike_sa_id);
  void check_deadlines(TimePoint now);
  std::optional<TimePoint> next_slot() const;
  void arm_timer();
  void run_until(const std::function<bool()>& done, TimePoint deadline);
  void hold();

  const HandshakeOptions& o_;
  asio::io_context io_;
  asio::steady_timer timer_;
  std::optional<TimePoint> timer_at_;
  platform::IkeSockets sockets_;
  std::vector<std::unique_ptr<asio::posix::stream_descriptor>> watches_;
  Bytes buffer_;
  crypto::SystemRandom random_;
  std::unique_ptr<ike::Engine> engine_;
  int warnings_ = 0;

  std::size_t started_ = 0;
  std::size_t resolved_ = 0;
  TimePoint first_request_{};
  TimePoint last_established_{};
  TimePoint last_resolved_{};
  std::unordered_map<std::uint64_t, Pending> pending_;
  // SAs in start order with their deadlines; all share one timeout, so the front is
  // always the next to expire.
  std::deque<std::pair<TimePoint, std::uint64_t>> deadlines_;
  std::vector<double> latencies_ms_;
  std::set<IpAddress> vips_seen_;
  std::uint64_t send_errors_ = 0;
  bool holding_ = false;
  TimePoint hold_start_{};
  HandshakeReport r_;
};

Expected<void, std::string> Run::open_sockets() {
  // Thousands of SAs answer at once (a gateway switching all of them): room for it.
  auto sockets = platform::IkeSockets::open(std::span(&o_.local, 1), o_.local_port, o_.local_natt_port, 16 << 20);
  if (!sockets) return unexpected(sockets.error());
  sockets_ = std::move(*sockets);
  if (sockets_.sockets()[0].udp.local_endpoint().port == sockets_.sockets()[1].udp.local_endpoint().port)
    return unexpected(std::string("the IKE and NAT-T ports must differ"));
  return {};
}

std::vector<ike::ConnectionConfig> Run::configs(std::size_t first, std::size_t last) const {
  std::vector<ike::ConnectionConfig> out;
  out.reserve(last - first);
  const IpAddress first_address = o_.ts_pool.first();
  auto base = first_address.bytes();
  std::uint32_t pool = std::uint32_t{base[0]} << 24 | std::uint32_t{base[1]} << 16 |
                       std::uint32_t{base[2]} << 8 | base[3];
  for (std::size_t i = first; i < last; ++i) {
    ike::ConnectionConfig c;
    c.name = name(i);
    c.local_addrs = {o_.local};
    c.remote_addrs = {o_.target.address.to_string()};
    c.remote_port = o_.target.port;
    c.local_id = o_.local_id;
    c.remote_id = o_.remote_id;
    c.local_auth = c.remote_auth = o_.auth;
    if (o_.auth == ike::AuthClass::kPsk) {
      c.psk = o_.psk;
    } else {
      // The same objects for every SA: only the pointers are copied.
      c.private_key = o_.private_key;
      c.local_certs = o_.local_certs;
      c.trust = o_.trust;
    }
    if (o_.vip) c.vips = {IpAddress::v4(0)};
    c.ike_proposals = o_.ike_proposals;
    // The bench measures handshakes: no liveness checks or rekeys of its own while the
    // SAs stay up for the memory reading.
    c.dpd_delay = ike::Duration(0);
    c.rekey_time = ike::Duration(0);
    c.mobike = o_.mobike;
    c.switch_allow = o_.switch_allow;
    ike::ChildConfig child;
    child.name = c.name;
    // +1: the pool's network address itself reads like a mistake in a responder's log.
    // With a virtual IP, no local_ts: "dynamic", the address the responder assigns.
    if (!o_.vip) child.local_ts = {IpPrefix{IpAddress::v4(pool + static_cast<std::uint32_t>(i) + 1), 32}};
    child.remote_ts = o_.remote_ts;
    child.esp_proposals = o_.esp_proposals;
    child.rekey_time = ike::Duration(0);
    c.children.push_back(std::move(child));
    out.push_back(std::move(c));
  }
  return out;
}

void Run::wait_readable(std::size_t s) {
  watches_[s]->async_wait(asio::posix::stream_descriptor::wait_read, [this, s](const std::error_code& ec) {
    if (ec) return;
    on_readable(s);
    wait_readable(s);
  });
}

void Run::on_readable(std::size_t s) {
  auto& sock = sockets_.sockets()[s];
  for (int i = 0; i < kReceiveBatch; ++i) {
    auto r = sock.udp.receive(buffer_);
    if (!r) break;
    if (r->truncated) continue;
    std::span<std::uint8_t> data(buffer_.data(), r->size);
    if (sock.natt) {
      // Keepalives and ESP-in-UDP carry no IKE; only marked datagrams go on.
      auto d = platform::classify_natt(data);
      if (d.kind != platform::NattDatagram::Kind::kIke) continue;
      data = d.payload;
    }
    // One datagram at a time through the engine and straight out again: the latency of
    // an SA should not include the time spent on the rest of a receive batch.
    auto now = Clock::now();
    engine_->on_datagram(r->local, r->remote, data, now);
    pump(now);
  }
  arm_timer();
}

void Run::send(const ike::OutDatagram& d) {
  bool ok = d.kind == ike::OutDatagram::Kind::kIke ? sockets_.send_ike(d.local, d.remote, d.data)
                                                   : sockets_.send_raw(d.local, d.remote, d.data);
  // A full send buffer loses the datagram as the wire would; the engine retransmits.
  if (!ok) send_errors_++;
}

std::optional<TimePoint> Run::next_slot() const {
  if (started_ >= o_.count || o_.rate <= 0) return std::nullopt;
  auto offset = std::chrono::duration<double>(static_cast<double>(started_) / o_.rate);
  return first_request_ + std::chrono::duration_cast<Clock::duration>(offset);
}

void Run::initiate(TimePoint now) {
  std::size_t i = started_++;
  if (i == 0) first_request_ = now;
  if (i % kConfigBatch == 0) engine_->set_connections(configs(i, std::min(o_.count, i + kConfigBatch)));
  auto id = engine_->initiate(name(i), o_.local, now);
  if (!id) {
    resolved_++;
    r_.failed++;
    r_.failure_reasons["cannot initiate: " + id.error()]++;
    last_resolved_ = now;
    return;
  }
  pending_[*id] = Pending{i, now};
  deadlines_.emplace_back(now + o_.sa_timeout, *id);
}

void Run::start_due(TimePoint now) {
  while (started_ < o_.count && pending_.size() < o_.concurrency) {
    if (started_ > 0)
      if (auto slot = next_slot(); slot && *slot > now) break;
    initiate(now);
  }
}

void Run::resolve(std::unordered_map<std::uint64_t, Pending>::iterator it, TimePoint now,
                  const std::string& failure) {
  if (failure.empty()) {
    r_.established++;
    latencies_ms_.push_back(ms_between(it->second.started, now));
    last_established_ = now;
    if (o_.vip) note_vip(it->first);
  } else {
    r_.failed++;
    r_.failure_reasons[failure]++;
  }
  last_resolved_ = now;
  resolved_++;
  pending_.erase(it);
}

// What the responder made of the SA's request for a virtual IP: the address it
// assigned, and whether it narrowed the Child SA's TSi (0.0.0.0/0) to just that.
void Run::note_vip(std::uint64_t ike_sa_id) {
  const ike::IkeSa* sa = engine_->find_ike_sa(ike_sa_id);
  if (!sa || sa->extras().local_vips.empty()) return;
  const IpAddress& vip = sa->extras().local_vips.front();
  r_.vips_assigned++;
  vips_seen_.insert(vip);
  if (sa->children.empty()) return;
  const auto& ts = sa->children.back().local_ts;
  if (ts.size() == 1 && ts.front().start_address == vip && ts.front().end_address == vip) r_.vips_in_ts++;
}

void Run::on_event(const ike::Event& e, TimePoint now) {
  if (holding_) {
    if (e.kind == ike::EventKind::kAddressesUpdated) {
      double t = std::chrono::duration<double>(now - hold_start_).count();
      if (!r_.first_move_s) r_.first_move_s = t;
      r_.last_move_s = t;
    }
    if (e.kind == ike::EventKind::kIkeRekeyed) r_.rekeyed++;
  }
  auto it = pending_.find(e.ike_sa_id);
  if (it == pending_.end()) return;  // resolved already (e.g. terminated on timeout)
  switch (e.kind) {
    case ike::EventKind::kIkeEstablished: it->second.ike_up = true; break;
    case ike::EventKind::kChildEstablished: it->second.child_up = true; break;
    case ike::EventKind::kIkeFailed: resolve(it, now, "IKE SA failed: " + e.detail); return;
    // The detail is the child's name, different for every SA: not a useful key.
    case ike::EventKind::kChildFailed: resolve(it, now, "Child SA refused or unacceptable"); return;
    case ike::EventKind::kIkeDeleted: resolve(it, now, "IKE SA deleted before established: " + e.detail); return;
    default: return;
  }
  if (it->second.ike_up && it->second.child_up) resolve(it, now, "");
}

void Run::check_deadlines(TimePoint now) {
  while (!deadlines_.empty()) {
    auto [at, id] = deadlines_.front();
    auto it = pending_.find(id);
    if (it != pending_.end()) {
      if (at > now) break;
      resolve(it, now, "timeout");
      engine_->terminate_ike(id, now);
    }
    deadlines_.pop_front();
  }
}

void Run::pump(TimePoint now) {
  check_deadlines(now);
  start_due(now);
  for (;;) {
    for (const auto& d : engine_->take_datagrams()) send(d);
    engine_->take_dataplane_ops();  // the bench installs nothing
    auto events = engine_->take_events();
    if (events.empty()) break;
    for (const auto& e : events) on_event(e, now);
    // Finished SAs free concurrency slots for new ones at once.
    start_due(now);
  }
}

void Run::arm_timer() {
  std::optional<TimePoint> next = engine_->next_timeout();
  auto earliest = [&](std::optional<TimePoint> t) {
    if (t && (!next || *t < *next)) next = t;
  };
  if (pending_.size() < o_.concurrency) earliest(next_slot());
  while (!deadlines_.empty() && !pending_.count(deadlines_.front().second)) deadlines_.pop_front();
  if (!deadlines_.empty()) earliest(deadlines_.front().first);
  if (next == timer_at_) return;
  timer_at_ = next;
  if (!next) {
    timer_.cancel();
    return;
  }
  timer_.expires_at(*next);
  timer_.async_wait([this](const std::error_code& ec) {
    if (ec) return;
    timer_at_.reset();
    auto now = Clock::now();
    engine_->on_timeout(now);
    pump(now);
    arm_timer();
  });
}

void Run::hold() {
  std::map<std::uint64_t, IpAddress> before;
  engine_->for_each_ike_sa([&](const ike::IkeSa& sa) {
    if (sa.state == ike::IkeState::kEstablished) before[sa.id] = sa.remote.address;
  });
  r_.held = before.size();
  holding_ = true;
  hold_start_ = Clock::now();
  if (!o_.ready_file.empty()) std::ofstream(o_.ready_file) << before.size() << "\n";
  run_until([] { return false; }, hold_start_ + o_.hold);
  holding_ = false;
  r_.hold_s = std::chrono::duration<double>(Clock::now() - hold_start_).count();
  for (const auto& [id, address] : before) {
    const ike::IkeSa* sa = engine_->find_ike_sa(id);
    if (!sa || sa->state == ike::IkeState::kDead) {
      r_.lost++;
      continue;
    }
    if (sa->remote.address != address) r_.moved++;
    r_.remote_addresses[sa->remote.address.to_string()]++;
  }
}

void Run::run_until(const std::function<bool()>& done, TimePoint deadline) {
  while (!done() && Clock::now() < deadline) io_.run_one_until(deadline);
}

Expected<HandshakeReport, std::string> Run::execute() {
  if (auto ok = open_sockets(); !ok) return unexpected(ok.error());
  ike::EngineConfig ec;
  ec.ike_port = sockets_.sockets()[0].udp.local_endpoint().port;
  ec.natt_port = sockets_.sockets()[1].udp.local_endpoint().port;
  ec.retransmit_timeout = o_.retransmit_timeout;
  ec.retransmit_tries = o_.retransmit_tries;
  engine_ = std::make_unique<ike::Engine>(ec, random_, [this](ike::LogLevel level, const std::string& m) {
    if (level < ike::LogLevel::kWarn) return;
    if (++warnings_ <= kMaxPrintedWarnings)
      std::cerr << "mobike-bench: " << m << "\n";
    else if (warnings_ == kMaxPrintedWarnings + 1)
      std::cerr << "mobike-bench: (further engine warnings suppressed)\n";
  });
  // The initiators speak MOBIKE like mobiked does, including following a gateway's
  // switch requests (announced with the 0x52 octet).
  if (o_.mobike) mobility::install(*engine_);
  for (auto& s : sockets_.sockets()) {
    watches_.push_back(std::make_unique<asio::posix::stream_descriptor>(io_, s.udp.fd()));
    wait_readable(watches_.size() - 1);
  }

  r_.target = o_.target.to_string();
  r_.local = Endpoint{o_.local, ec.ike_port}.to_string();
  r_.count = o_.count;
  r_.rate_limit = o_.rate;
  r_.concurrency = o_.concurrency;
  r_.ike_proposals = ike::proposals_to_string(o_.ike_proposals);
  r_.esp_proposals = ike::proposals_to_string(o_.esp_proposals);
  r_.mobike = o_.mobike;
  r_.vip = o_.vip;
  if (o_.auth == ike::AuthClass::kPsk) {
    r_.auth = "psk";
  } else {
    r_.auth = "pubkey";
    const auto& key = o_.local_certs.front()->public_key();
    r_.key = crypto::key_type_name(key.type());
    if (key.type() == crypto::KeyType::kRsa) r_.key += " " + std::to_string(key.bits());
  }
  r_.responder_pid = o_.responder_pid;

  std::optional<double> cpu_before;
  if (o_.responder_pid) {
    r_.rss_before = resident_bytes(*o_.responder_pid);
    if (!r_.rss_before) return unexpected("cannot read /proc/" + std::to_string(*o_.responder_pid) + "/status");
    cpu_before = cpu_seconds(*o_.responder_pid);
  }
  double own_before = own_cpu_seconds();

  auto now = Clock::now();
  pump(now);
  arm_timer();
  // Every SA resolves by its own deadline, and at worst each wave of `concurrency` SAs
  // waits that long; the bound only guards against a bug here.
  auto schedule = o_.rate > 0 ? std::chrono::duration<double>(static_cast<double>(o_.count) / o_.rate)
                              : std::chrono::duration<double>(0);
  auto waves = static_cast<long>(o_.count / o_.concurrency + 2);
  auto hard_deadline = now + std::chrono::duration_cast<Clock::duration>(schedule) + o_.sa_timeout * waves +
                       std::chrono::seconds(10);
  run_until([&] { return resolved_ >= o_.count; }, hard_deadline);
  if (resolved_ < o_.count) {
    auto n = o_.count - resolved_;
    r_.failed += n;
    r_.failure_reasons["never resolved (bench deadline)"] += n;
  }

  // The responder may still be finishing work for the last SAs (or freeing scratch
  // memory); keep answering it while waiting.
  run_until([] { return false; }, Clock::now() + o_.settle);
  if (o_.responder_pid) {
    r_.rss_after = resident_bytes(*o_.responder_pid);
    if (r_.rss_after && r_.rss_before && r_.established)
      r_.bytes_per_sa = (static_cast<double>(*r_.rss_after) - static_cast<double>(*r_.rss_before)) /
                        static_cast<double>(r_.established);
    auto cpu_after = cpu_seconds(*o_.responder_pid);
    if (cpu_before && cpu_after) {
      r_.responder_cpu_s = *cpu_after - *cpu_before;
    }
  }
  r_.bench_cpu_s = own_cpu_seconds() - own_before;

  if (r_.established) {
    r_.elapsed_s = std::chrono::duration<double>(last_established_ - first_request_).count();
    r_.sas_per_s = r_.elapsed_s > 0 ? static_cast<double>(r_.established) / r_.elapsed_s : 0;
  }
  if (resolved_) r_.wall_s = std::chrono::duration<double>(last_resolved_ - first_request_).count();
  std::sort(latencies_ms_.begin(), latencies_ms_.end());
  r_.latency_p50_ms = percentile(latencies_ms_, 50);
  r_.latency_p90_ms = percentile(latencies_ms_, 90);
  r_.latency_p99_ms = percentile(latencies_ms_, 99);
  r_.latency_max_ms = latencies_ms_.empty() ? 0 : latencies_ms_.back();
  const auto& st = engine_->counters();
  r_.retransmits = st.retransmits_sent;
  r_.datagrams_out = st.datagrams_out;
  r_.datagrams_in = st.datagrams_in;
  r_.send_errors = send_errors_;
  r_.vips_distinct = vips_seen_.size();

  if (o_.hold.count() > 0) hold();

  if (o_.delete_after) {
    std::vector<std::uint64_t> ids;
    engine_->for_each_ike_sa([&](const ike::IkeSa& sa) { ids.push_back(sa.id); });
    std::size_t before = engine_->ike_sa_count();
    auto t = Clock::now();
    for (auto id : ids) engine_->terminate_ike(id, t);
    pump(t);
    arm_timer();
    run_until([&] { return engine_->ike_sa_count() == 0; }, Clock::now() + std::chrono::seconds(30));
    r_.deleted = before - engine_->ike_sa_count();
  }
  return r_;
}

std::string format_bytes(std::uint64_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

std::optional<std::uint64_t> resident_bytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    std::uint64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

Expected<HandshakeReport, std::string> run_handshake(const HandshakeOptions& options) {
  if (options.count == 0) return unexpected(std::string("--count must be at least 1"));
  if (options.concurrency == 0) return unexpected(std::string("--concurrency must be at least 1"));
  if (options.auth != ike::AuthClass::kPsk && options.auth != ike::AuthClass::kPubkey)
    return unexpected(std::string("the bench authenticates by PSK or by certificate only"));
  if (options.auth == ike::AuthClass::kPsk && options.psk.empty())
    return unexpected(std::string("PSK authentication needs a PSK"));
  if (options.auth == ike::AuthClass::kPubkey &&
      (options.local_certs.empty() || !options.private_key || !options.trust || options.trust->empty()))
    return unexpected(std::string("certificate authentication needs our certificate, its key and a CA certificate"));
  if (options.vip && !options.target.address.is_v4())
    return unexpected(std::string("a virtual IP is asked for over IPv4 only"));
  if (!options.ts_pool.address.is_v4())
    return unexpected(std::string("the traffic selector pool must be IPv4"));
  std::uint64_t pool_size = std::uint64_t{1} << (32 - options.ts_pool.length);
  if (options.count + 1 > pool_size)
    return unexpected("--ts-pool " + options.ts_pool.to_string() + " has room for " +
                      std::to_string(pool_size - 1) + " SAs, not " + std::to_string(options.count));
  if (options.local.family() != options.target.address.family())
    return unexpected(std::string("--local and --target must be of the same address family"));
  Run run(options);
  return run.execute();
}

nlohmann::json to_json(const HandshakeReport& r) {
  using nlohmann::json;
  json j{{"target", r.target},
         {"local", r.local},
         {"count", r.count},
         {"rate_limit", r.rate_limit},
         {"concurrency", r.concurrency},
         {"ike_proposals", r.ike_proposals},
         {"esp_proposals", r.esp_proposals},
         {"mobike", r.mobike},
         {"auth", r.auth},
         {"vip", r.vip},
         {"established", r.established},
         {"failed", r.failed},
         {"failure_reasons", r.failure_reasons},
         {"elapsed_s", r.elapsed_s},
         {"sas_per_s", r.sas_per_s},
         {"wall_s", r.wall_s},
         {"latency_ms", {{"p50", r.latency_p50_ms}, {"p90", r.latency_p90_ms},
                         {"p99", r.latency_p99_ms}, {"max", r.latency_max_ms}}},
         {"retransmits", r.retransmits},
         {"datagrams", {{"out", r.datagrams_out}, {"in", r.datagrams_in}}},
         {"send_errors", r.send_errors},
         {"bench_cpu_s", r.bench_cpu_s},
         {"deleted", r.deleted}};
  if (!r.key.empty()) j["key"] = r.key;
  if (r.vip) {
    j["vips_assigned"] = r.vips_assigned;
    j["vips_distinct"] = r.vips_distinct;
    j["vips_in_ts"] = r.vips_in_ts;
  }
  if (r.hold_s > 0)
    j["hold"] = {{"seconds", r.hold_s},          {"held", r.held},
                 {"moved", r.moved},             {"lost", r.lost},
                 {"ike_rekeys", r.rekeyed},      {"remote_addresses", r.remote_addresses},
                 {"first_move_s", r.first_move_s}, {"last_move_s", r.last_move_s}};
  json resp = nullptr;
  if (r.responder_pid) {
    resp = json{{"pid", *r.responder_pid}};
    resp["rss_before"] = r.rss_before ? json(*r.rss_before) : json(nullptr);
    resp["rss_after"] = r.rss_after ? json(*r.rss_after) : json(nullptr);
    resp["bytes_per_sa"] = r.bytes_per_sa ? json(*r.bytes_per_sa) : json(nullptr);
    resp["cpu_s"] = r.responder_cpu_s ? json(*r.responder_cpu_s) : json(nullptr);
    resp["cpu_us_per_sa"] = r.responder_cpu_s && r.established
                                ? json(*r.responder_cpu_s * 1e6 / static_cast<double>(r.established))
                                : json(nullptr);
  }
  j["responder"] = resp;
  return j;
}

std::string to_text(const HandshakeReport& r) {
  std::ostringstream o;
  char buf[256];
  o << "handshake: " << r.count << " IKE SAs (one Child SA each) " << r.local << " -> " << r.target
    << ", concurrency " << r.concurrency << ", rate "
    << (r.rate_limit > 0 ? std::to_string(static_cast<long long>(r.rate_limit)) + "/s" : std::string("unlimited"))
    << "\n  " << r.ike_proposals << " / " << r.esp_proposals << (r.mobike ? ", MOBIKE offered" : "")
    << (r.key.empty() ? "" : ", certificates (" + r.key + ")") << (r.vip ? ", virtual IP requested" : "") << "\n";
  std::snprintf(buf, sizeof buf, "  established  %zu\n  failed       %zu\n", r.established, r.failed);
  o << buf;
  for (const auto& [why, n] : r.failure_reasons) o << "    " << n << " x " << why << "\n";
  if (r.vip) {
    std::snprintf(buf, sizeof buf, "  virtual IPs  %zu assigned (%zu distinct), %zu Child SAs narrowed to theirs\n",
                  r.vips_assigned, r.vips_distinct, r.vips_in_ts);
    o << buf;
  }
  std::snprintf(buf, sizeof buf, "  elapsed      %.3f s (first request to last establishment)\n", r.elapsed_s);
  o << buf;
  std::snprintf(buf, sizeof buf, "  rate         %.1f SAs/s\n", r.sas_per_s);
  o << buf;
  std::snprintf(buf, sizeof buf, "  latency      p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                r.latency_p50_ms, r.latency_p90_ms, r.latency_p99_ms, r.latency_max_ms);
  o << buf;
  std::snprintf(buf, sizeof buf, "  retransmits  %llu (datagrams out %llu, in %llu, send errors %llu)\n",
                static_cast<unsigned long long>(r.retransmits), static_cast<unsigned long long>(r.datagrams_out),
                static_cast<unsigned long long>(r.datagrams_in), static_cast<unsigned long long>(r.send_errors));
  o << buf;
  std::snprintf(buf, sizeof buf, "  bench CPU    %.2f s\n", r.bench_cpu_s);
  o << buf;
  if (r.responder_pid) {
    o << "  responder    pid " << *r.responder_pid;
    if (r.rss_before && r.rss_after)
      o << ": VmRSS " << format_bytes(*r.rss_before) << " before, " << format_bytes(*r.rss_after) << " after";
    o << "\n";
    if (r.bytes_per_sa) {
      std::snprintf(buf, sizeof buf, "  memory/SA    %.0f bytes\n", *r.bytes_per_sa);
      o << buf;
    }
    if (r.responder_cpu_s && r.established) {
      std::snprintf(buf, sizeof buf, "  CPU/SA       %.0f us (responder CPU %.2f s)\n",
                    *r.responder_cpu_s * 1e6 / static_cast<double>(r.established), *r.responder_cpu_s);
      o << buf;
    }
  }
  if (r.hold_s > 0) {
    std::snprintf(buf, sizeof buf, "  hold         %.1f s: %zu SAs up, %zu moved (%.3f-%.3f s), %zu lost, %zu IKE rekeys\n",
                  r.hold_s, r.held, r.moved, r.first_move_s, r.last_move_s, r.lost, r.rekeyed);
    o << buf;
    for (const auto& [a, n] : r.remote_addresses) o << "    " << n << " x now with " << a << "\n";
  }
  if (r.deleted) o << "  deleted      " << r.deleted << " IKE SAs at the end\n";
  return o.str();
}

}  // namespace mobike::bench
