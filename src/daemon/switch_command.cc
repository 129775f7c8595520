#include "daemon/switch_command.h"

#include <asio/post.hpp>
#include <spdlog/spdlog.h>

#include "mobility/address_policy.h"
#include "mobility/mobike.h"

namespace mobike::daemon {

namespace {
ike::TimePoint now() { return ike::Clock::now(); }
}  // namespace

SwitchCommand::SwitchCommand(asio::io_context& io, ike::Engine& engine, std::function<void()> flush)
    : io_(io), engine_(engine), flush_(std::move(flush)), timer_(io) {}

void SwitchCommand::start(const control::SwitchRequest& r, ControlServer::Reply reply,
                          ControlServer::Progress progress) {
  if (job_) return reply(control::error_response("a switch is already running; try again when it ends"));
  auto to = IpAddress::parse(r.to);
  if (!to) return reply(control::error_response("'" + r.to + "' is not an IP address"));
  std::vector<std::uint64_t> ids;
  std::vector<std::pair<std::uint64_t, std::string>> skipped;
  const auto& host = engine_.local_addresses();
  engine_.for_each_ike_sa([&](const ike::IkeSa& sa) {
    if (r.sa && sa.id != *r.sa) return;
    if (r.connection && sa.connection_name != *r.connection) return;
    if (r.all && sa.original_initiator) return;  // only SAs where we are the responder
    // The same set as announced and as chosen automatically: an address the connection
    // may not use would never receive the initiator's answer.
    if (!host.empty() && sa.config && !mobility::usable_local_address(*sa.config, host, *to)) {
      skipped.emplace_back(sa.id, to->to_string() + " is not an address connection '" + sa.config->name + "' may use");
      return;
    }
    ids.push_back(sa.id);
  });
  if (ids.empty() && skipped.size() == 1) return reply(control::error_response(skipped.front().second));
  if (ids.empty() && skipped.empty()) {
    std::string what = r.sa           ? "no IKE SA #" + std::to_string(*r.sa)
                       : r.connection ? "no IKE SA of connection '" + *r.connection + "'"
                                      : std::string("no IKE SA where we are the responder");
    return reply(control::error_response(what));
  }
  spdlog::info("switching {} IKE SA(s) to {}{}", ids.size(), to->to_string(),
               r.rate > 0 ? fmt::format(" at {}/s", r.rate) : std::string());
  job_ = std::make_unique<SwitchJob>(std::move(ids), std::move(skipped), *to, r.rate, now());
  reply_ = std::move(reply);
  if (progress)
    progress_ = std::make_unique<ProgressReporter>(io_, std::move(progress), [this] {
      return job_ ? job_->progress(now()) : control::Progress{};
    });
  drive();
}

void SwitchCommand::drive() {
  if (!job_) return;
  auto next = job_->start_due(now(), [this](std::uint64_t id, const IpAddress& to) {
    return mobility::switch_address(engine_, id, to, now());
  });
  flush_();  // may finish the job
  if (!next || !job_) return;
  timer_.expires_at(*next);
  timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) drive();
  });
}

nlohmann::json SwitchCommand::cancel() {
  if (!job_) return control::error_response("no switch is running");
  auto n = job_->cancel("cancelled");
  timer_.cancel();
  spdlog::info("switch cancelled: {} IKE SA(s) not started", n);
  // The switches in flight still end by events; with none left the answer goes now.
  asio::post(io_, [this] { finish_if_done(); });
  return control::ok_response({{"cancelled", n}});
}

void SwitchCommand::on_event(const ike::Event& e) {
  if (job_) job_->on_event(e);
}

void SwitchCommand::finish_if_done() {
  if (job_ && job_->done()) return reply_now();
  if (job_ && progress_) progress_->changed();
}

void SwitchCommand::shutdown() {
  timer_.cancel();
  if (!job_) return;
  job_->abandon("mobiked is stopping");
  reply_now();
}

void SwitchCommand::reply_now() {
  auto reply = std::move(reply_);
  if (progress_) progress_->finish();
  progress_.reset();
  auto result = job_->result(now());
  job_.reset();
  timer_.cancel();
  reply(control::ok_response(std::move(result)));
}

}  // namespace mobike::daemon
