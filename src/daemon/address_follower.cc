#include "daemon/address_follower.h"

#include <spdlog/spdlog.h>

#include "mobility/address_policy.h"
#include "platform/route.h"

namespace mobike::daemon {

namespace {
ike::TimePoint now() { return ike::Clock::now(); }
}  // namespace

AddressFollower::AddressFollower(asio::io_context& io, ike::Engine& engine, std::string tun_name,
                                 std::function<void()> changed)
    : io_(io), engine_(engine), tun_name_(std::move(tun_name)), changed_(std::move(changed)), debounce_timer_(io) {}

AddressFollower::~AddressFollower() {
  if (watch_) watch_->release();  // the monitor owns the descriptor
}

std::vector<ike::HostAddress> AddressFollower::engine_addresses(const platform::AddressSet& set) const {
  std::vector<ike::HostAddress> out;
  for (const auto& a : set)
    if (a.ifname != tun_name_) out.push_back({a.address, a.on_loopback});
  return out;
}

void AddressFollower::start() {
  auto m = platform::AddressMonitor::open();
  if (!m) {
    spdlog::warn("no address monitoring ({}): MOBIKE moves only on request", m.error().message());
    return;
  }
  monitor_ = std::move(*m);
  monitor_->ignore_routes_via(tun_name_);
  if (auto d = monitor_->dump(); !d) {
    spdlog::warn("address dump failed ({}): MOBIKE moves only on request", d.error().message());
    monitor_.reset();
    return;
  }
  engine_.set_local_addresses(engine_addresses(monitor_->snapshot()), now());
  // An interface going away emits its address and route events within a few ms: a
  // short quiet period still coalesces them and keeps the move fast (the gap in the
  // tunnel's traffic is what MOBIKE users feel).
  debouncer_.emplace(monitor_->snapshot(),
                     platform::Debouncer::Config{std::chrono::milliseconds(20), std::chrono::milliseconds(250)});
  watch_ = std::make_unique<asio::posix::stream_descriptor>(io_, monitor_->fd());
  watch();
}

void AddressFollower::stop() {
  stopped_ = true;
  debounce_timer_.cancel();
  if (watch_) watch_->cancel();
}

void AddressFollower::watch() {
  watch_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const std::error_code& ec) {
    if (ec || stopped_) return;
    auto events = monitor_->process();
    if (events && !events->empty()) {
      debouncer_->feed(*events, monitor_->snapshot(), now());
      arm_debounce_timer();
    }
    watch();
  });
}

void AddressFollower::arm_debounce_timer() {
  auto at = debouncer_->next_deadline();
  if (!at) return;
  debounce_timer_.expires_at(*at);
  debounce_timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped_) return;
    if (auto change = debouncer_->due(now())) on_change(*change);
    arm_debounce_timer();
  });
}

void AddressFollower::on_change(const platform::AddressSetChange& change) {
  counters_.address_changes++;
  auto before = engine_addresses(change.before);
  auto after = engine_addresses(change.after);
  spdlog::info("local addresses changed: {} usable", after.size());
  // Announces the new set to MOBIKE peers and lets SAs that lost every path probe again.
  engine_.set_local_addresses(after, now());
  auto plan = mobility::plan_address_change(before, after, mobility::sa_facts(engine_),
                                            [](const IpAddress& peer) { return platform::source_address_for(peer); });
  auto outcome = mobility::execute(engine_, plan, now());
  for (const auto& line : outcome.log_info) spdlog::info("{}", line);
  for (const auto& line : outcome.log_warn) spdlog::warn("{}", line);
  counters_.automatic_moves += outcome.moves;
  counters_.automatic_switches += outcome.switches;
  changed_();
}

nlohmann::json AddressFollower::view() const {
  auto out = nlohmann::json::array();
  if (monitor_) {
    for (const auto& a : monitor_->snapshot())
      if (a.ifname != tun_name_)
        out.push_back({{"addr", a.address.to_string()}, {"prefix", a.prefix_len}, {"interface", a.ifname},
                       {"deprecated", a.deprecated()}, {"on_loopback", a.on_loopback}});
  } else {
    for (const auto& a : engine_.local_addresses())
      out.push_back({{"addr", a.address.to_string()}, {"on_loopback", a.on_loopback}});
  }
  return out;
}

}  // namespace mobike::daemon
