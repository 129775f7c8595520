#include "daemon/initiator.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace mobike::daemon {

namespace {

bool contains(const auto& list, const IpAddress& a) { return std::find(list.begin(), list.end(), a) != list.end(); }

}  // namespace

std::string join_addresses(const std::vector<IpAddress>& addresses) {
  std::string out;
  for (const auto& a : addresses) out += (out.empty() ? "" : ", ") + a.to_string();
  return out;
}

const ike::ConnectionConfig* Initiator::config(const std::string& name) const {
  for (const auto& c : engine_.connections_list())
    if (c->name == name) return c.get();
  return nullptr;
}

std::uint64_t Initiator::start(const std::string& connection, const std::vector<std::string>& remote_addrs) {
  const std::uint64_t id = ++last_id_;
  Attempt& a = attempts_[id];
  a.connection = connection;
  a.entries = remote_addrs;
  for (const auto& r : remote_addrs) {
    if (auto address = IpAddress::parse(r)) {
      if (!contains(a.queue, *address)) a.queue.push_back(*address);
    } else if (is_host_name(r) && std::find(a.names.begin(), a.names.end(), r) == a.names.end()) {
      a.names.push_back(r);
    }
  }
  return id;
}

void Initiator::initiate(const std::string& connection, Done done) {
  const ike::ConnectionConfig* cfg = config(connection);
  if (!cfg) return done(unexpected("no connection named '" + connection + "'"));
  const std::uint64_t id = start(connection, cfg->remote_addrs);
  Attempt& a = attempts_.at(id);
  a.done = std::move(done);
  if (a.names.empty())
    try_next(id, true);
  else
    resolve_all(id);
}

void Initiator::look_up_for(std::uint64_t ike_sa) {
  const ike::IkeSa* sa = engine_.find_ike_sa(ike_sa);
  if (!sa || !sa->config) return;
  for (const auto& [id, a] : attempts_)
    if (a.for_sa == ike_sa) return;  // under way
  const std::uint64_t id = start(sa->connection_name, sa->config->remote_addrs);
  Attempt& a = attempts_.at(id);
  if (a.names.empty()) {
    attempts_.erase(id);
    return;
  }
  a.for_sa = ike_sa;
  spdlog::info("connection '{}': IKE SA {} has no path to the peer: looking up {} again", a.connection, ike_sa,
               a.names.front() + (a.names.size() > 1 ? ", ..." : ""));
  resolve_all(id);
}

void Initiator::resolve_all(std::uint64_t id) {
  Attempt& a = attempts_.at(id);
  a.round++;
  a.pending = a.names.size();
  a.answers.clear();
  a.errors.clear();
  const auto names = a.names;  // `a` may be gone once a lookup answered
  const std::uint64_t round = a.round;
  for (const auto& name : names)
    hooks_.resolve(name, [this, id, round, name](Addresses answer) { resolved(id, round, name, std::move(answer)); });
}

void Initiator::resolved(std::uint64_t id, std::uint64_t round, const std::string& name, Addresses answer) {
  auto it = attempts_.find(id);
  if (it == attempts_.end() || it->second.round != round) return;
  Attempt& a = it->second;
  if (answer) {
    spdlog::info("connection '{}': resolved {} to {}", a.connection, name, join_addresses(*answer));
    a.answers[name] = std::move(*answer);
  } else {
    spdlog::warn("connection '{}': cannot resolve {}: {}", a.connection, name, answer.error());
    a.errors.push_back("cannot resolve " + name + ": " + answer.error());
  }
  if (--a.pending > 0) return;
  // In the order of remote_addrs, each name's addresses in the resolver's order.
  a.queue.clear();
  auto add = [&](const IpAddress& address) {
    if (!contains(a.tried, address) && !contains(a.queue, address)) a.queue.push_back(address);
  };
  for (const auto& r : a.entries) {
    if (auto address = IpAddress::parse(r)) {
      add(*address);
    } else if (auto found = a.answers.find(r); found != a.answers.end()) {
      for (const auto& address : found->second) add(address);
    }
  }
  if (a.for_sa) {
    const std::uint64_t sa = a.for_sa;
    std::vector<IpAddress> addresses(a.queue.begin(), a.queue.end());
    attempts_.erase(it);
    if (!addresses.empty() && hooks_.add_peer_addresses(sa, std::move(addresses))) hooks_.flush();
    return;
  }
  try_next(id, true);
}

void Initiator::try_next(std::uint64_t id, bool fresh) {
  auto it = attempts_.find(id);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  const ike::ConnectionConfig* cfg = config(a.connection);
  if (!cfg) return finish(id, "no connection named '" + a.connection + "' any more");
  while (!a.queue.empty()) {
    const IpAddress remote = a.queue.front();
    a.queue.pop_front();
    a.tried.push_back(remote);
    auto local = hooks_.local_for(*cfg, remote);
    if (!local) {
      spdlog::debug("connection '{}': no local address towards {}", a.connection, remote.to_string());
      a.unroutable.push_back(remote);
      continue;
    }
    auto sa = engine_.initiate(a.connection, *local, hooks_.now(), remote);
    if (!sa) return finish(id, sa.error());
    a.current = remote;
    a.sa = *sa;
    hooks_.flush();
    if (a.done) std::exchange(a.done, nullptr)(*sa);
    return;
  }
  // Every known address failed: the names may lead elsewhere by now.
  if (!fresh && !a.names.empty()) {
    spdlog::info("connection '{}': no answer from {}: resolving again", a.connection, join_addresses(a.unanswered));
    return resolve_all(id);
  }
  std::vector<std::string> why;
  if (!a.unanswered.empty()) why.push_back("no answer from " + join_addresses(a.unanswered));
  for (const auto& e : a.errors) why.push_back(e);
  if (!a.unroutable.empty()) why.push_back("no local address towards " + join_addresses(a.unroutable));
  if (why.empty()) why.push_back("no route to any remote address of '" + a.connection + "'");
  std::string text;
  for (const auto& w : why) text += (text.empty() ? "" : "; ") + w;
  finish(id, text);
}

void Initiator::finish(std::uint64_t id, const std::string& why) {
  auto it = attempts_.find(id);
  if (it == attempts_.end()) return;
  Done done = std::move(it->second.done);
  const std::string connection = it->second.connection;
  attempts_.erase(it);
  if (done)
    done(unexpected(why));
  else
    spdlog::warn("connection '{}': giving up: {}", connection, why);
}

void Initiator::on_event(const ike::Event& e) {
  if (e.kind == ike::EventKind::kNoPath) {
    // Not from inside the daemon's batch of engine events.
    hooks_.post([this, sa = e.ike_sa_id] { look_up_for(sa); });
    return;
  }
  if (e.kind != ike::EventKind::kIkeEstablished && e.kind != ike::EventKind::kIkeFailed &&
      e.kind != ike::EventKind::kIkeDeleted)
    return;
  for (auto it = attempts_.begin(); it != attempts_.end(); ++it) {
    Attempt& a = it->second;
    if (a.sa == 0 || a.sa != e.ike_sa_id) continue;
    if (e.kind == ike::EventKind::kIkeFailed && e.unanswered) {
      a.unanswered.push_back(a.current);
      a.sa = 0;
      // Not from inside the daemon's batch of engine events.
      hooks_.post([this, id = it->first] { try_next(id, false); });
    } else {
      attempts_.erase(it);
    }
    return;
  }
}

void Initiator::stop() {
  auto attempts = std::exchange(attempts_, {});
  for (auto& [id, a] : attempts)
    if (a.done) a.done(unexpected(std::string("mobiked is stopping")));
}

}  // namespace mobike::daemon
