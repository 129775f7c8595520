#include "sim_network.h"

#include <algorithm>

#include "ike/proposal_string.h"
#include "mobility/mobike.h"

namespace mobike::sim {

Endpoint Nat::translate_out(const Endpoint& inside, const Endpoint& remote) {
  auto it = mappings_.find(inside);
  std::uint16_t port;
  if (it != mappings_.end()) {
    port = it->second;
  } else {
    port = static_cast<std::uint16_t>(inside.port + port_offset);
    while (reverse_.count(port)) port = static_cast<std::uint16_t>(port == 65535 ? 1024 : port + 1);
    mappings_[inside] = port;
    reverse_[port] = inside;
  }
  allowed_.insert({inside, remote});
  return {public_, port};
}

std::optional<Endpoint> Nat::translate_in(const Endpoint& public_ep, const Endpoint& remote) const {
  if (public_ep.address != public_) return std::nullopt;
  auto it = reverse_.find(public_ep.port);
  if (it == reverse_.end()) return std::nullopt;
  if (!allowed_.count({it->second, remote})) {
    const_cast<Nat*>(this)->dropped_by_filter++;
    return std::nullopt;
  }
  return it->second;
}

Host& Network::add_host(const std::string& name, std::vector<IpAddress> addresses, ike::EngineConfig cfg,
                        std::uint64_t seed) {
  auto h = std::make_unique<Host>();
  h->name = name;
  h->random = std::make_unique<crypto::SeededRandom>(seed ? seed : std::hash<std::string>()(name));
  Host* raw = h.get();
  h->engine = std::make_unique<ike::Engine>(cfg, *h->random, [raw](const ike::LogRecord& r) {
    raw->log.push_back(r.line());
    Host::Logged l{std::string(r.message), std::nullopt};
    if (r.sa) l.sa = Host::LoggedSa{r.sa->id, r.sa->connection_name, r.sa->remote};
    raw->records.push_back(std::move(l));
  });
  // As the daemon does: every simulated host speaks MOBIKE.
  mobility::install(*h->engine);
  h->addresses = std::move(addresses);
  h->engine->set_local_addresses(h->host_addresses(), now_);
  hosts_.push_back(std::move(h));
  return *hosts_.back();
}

std::vector<ike::HostAddress> Host::host_addresses() const {
  std::vector<ike::HostAddress> out;
  for (const auto& a : addresses) out.push_back({a, on_loopback.contains(a)});
  return out;
}

void Network::set_addresses(Host& host, std::vector<IpAddress> addresses) {
  host.addresses = std::move(addresses);
  host.engine->set_local_addresses(host.host_addresses(), now_);
  collect(host);
}

Nat& Network::add_nat(const std::string& name, const IpAddress& public_address) {
  nats_.push_back(std::make_unique<Nat>(name, public_address));
  return *nats_.back();
}

Host* Network::owner_of(const IpAddress& a) {
  for (auto& h : hosts_)
    if (std::find(h->addresses.begin(), h->addresses.end(), a) != h->addresses.end()) return h.get();
  return nullptr;
}

Nat* Network::nat_with(const IpAddress& a) {
  for (auto& n : nats_)
    if (n->public_address() == a) return n.get();
  return nullptr;
}

void Network::collect(Host& h) {
  for (auto& d : h.engine->take_datagrams()) {
    Packet p{d.local, d.remote, std::move(d.data), d.kind == ike::OutDatagram::Kind::kNatKeepalive, h.name};
    if (p.keepalive) h.keepalives_sent++;
    // A host can only send from an address it owns, or one it may send from without
    // owning it (nonlocal_sources), and only to an address of the same family.
    if ((!std::count(h.addresses.begin(), h.addresses.end(), p.src.address) &&
         !std::count(h.nonlocal_sources.begin(), h.nonlocal_sources.end(), p.src.address)) ||
        p.src.address.family() != p.dst.address.family()) {
      dropped++;
      unsendable++;
      continue;
    }
    if (Nat* nat = h.nat_for(p.src.address)) p.src = nat->translate_out(p.src, p.dst);
    schedule(p);
  }
  for (auto& op : h.engine->take_dataplane_ops()) h.dataplane.push_back(std::move(op));
  for (auto& ev : h.engine->take_events()) h.events.push_back(std::move(ev));
}

void Network::schedule(const Packet& p) {
  if (drop && drop(p)) {
    dropped++;
    return;
  }
  Duration extra = jitter ? jitter(p) : Duration(0);
  in_flight_.push({now_ + latency + extra, seq_++, p});
  int copies = duplicates ? duplicates(p) : 0;
  for (int i = 0; i < copies; ++i) in_flight_.push({now_ + latency + extra + Duration(1 + i), seq_++, p});
}

void Network::deliver(const Packet& p) {
  Endpoint dst = p.dst;
  Host* h = nullptr;
  if (Nat* nat = nat_with(dst.address)) {
    auto inside = nat->translate_in(dst, p.src);
    if (!inside) {
      dropped++;
      return;
    }
    dst = *inside;
    h = owner_of(dst.address);
    if (h && h->nat_for(dst.address) != nat) h = nullptr;
  } else {
    h = owner_of(dst.address);
    // Hosts behind a NAT are reachable only through it.
    if (h && h->nat_for(dst.address)) h = nullptr;
  }
  if (!h) {
    dropped++;
    return;
  }
  delivered++;
  if (p.keepalive) return;
  h->engine->on_datagram(dst, p.src, p.data, now_);
  collect(*h);
}

void Network::step_all() {
  for (auto& h : hosts_) collect(*h);
}

bool Network::run_until(const std::function<bool()>& until, Duration limit) {
  TimePoint end = now_ + limit;
  step_all();
  while (!until()) {
    TimePoint next = TimePoint::max();
    if (!in_flight_.empty()) next = in_flight_.top().at;
    for (auto& h : hosts_)
      if (auto t = h->engine->next_timeout()) next = std::min(next, *t);
    for (auto& w : wakeups)
      if (auto t = w()) next = std::min(next, std::max(*t, now_));
    if (next == TimePoint::max() || next > end) {
      now_ = end;
      return until();
    }
    now_ = std::max(now_, next);
    while (!in_flight_.empty() && in_flight_.top().at <= now_) {
      Packet p = in_flight_.top().packet;
      in_flight_.pop();
      deliver(p);
    }
    for (auto& h : hosts_) {
      auto t = h->engine->next_timeout();
      if (t && *t <= now_) {
        h->engine->on_timeout(now_);
        collect(*h);
      }
    }
  }
  return true;
}

void Network::run_for(Duration d) {
  run_until([] { return false; }, d);
}

ike::ConnectionConfig psk_connection(const std::string& name, const std::string& remote, const std::string& local_id,
                                     const std::string& remote_id, const std::string& ike, const std::string& esp) {
  ike::ConnectionConfig c;
  c.name = name;
  if (!remote.empty()) c.remote_addrs = {remote};
  c.local_id = *ike::Identity::parse(local_id);
  if (!remote_id.empty()) c.remote_id = ike::Identity::parse(remote_id);
  c.psk = to_bytes("simulated-shared-secret");
  c.ike_proposals = *ike::parse_ike_proposals(ike);
  ike::ChildConfig child;
  child.name = name + "-child";
  child.esp_proposals = *ike::parse_esp_proposals(esp);
  c.children.push_back(child);
  return c;
}

const ike::IkeSa* only_sa(const Host& h) {
  const ike::IkeSa* found = nullptr;
  std::size_t n = 0;
  h.engine->for_each_ike_sa([&](const ike::IkeSa& sa) {
    found = &sa;
    ++n;
  });
  return n == 1 ? found : nullptr;
}

std::size_t count_events(const Host& h, ike::EventKind kind) {
  return static_cast<std::size_t>(std::count_if(h.events.begin(), h.events.end(),
                                                [&](const ike::Event& e) { return e.kind == kind; }));
}

}  // namespace mobike::sim
