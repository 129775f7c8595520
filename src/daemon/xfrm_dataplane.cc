#include "daemon/xfrm_dataplane.h"

#include <ifaddrs.h>
#include <linux/xfrm.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>

#include <spdlog/spdlog.h>

#include "platform/sockaddr.h"

namespace mobike::daemon {

namespace {

// How many SAs found gone at their delete are remembered for a late hard expire.
constexpr std::size_t kVanishedKept = 64;

const char* errno_name(int code) {
  const char* n = strerrorname_np(code);
  return n ? n : "?";
}

void wipe(Bytes& b) {
  if (!b.empty()) explicit_bzero(b.data(), b.size());
}

}  // namespace

Expected<std::unique_ptr<XfrmDataplane>, std::string> XfrmDataplane::create(
    const DaemonConfig& config) {
  auto s = platform::XfrmSocket::open();
  if (!s) return unexpected("xfrm data plane: " + s.error().message());
  auto socket = std::make_unique<platform::XfrmSocket>(std::move(*s));
  std::unique_ptr<XfrmDataplane> d(new XfrmDataplane(*socket, config));
  d->socket_ = std::move(socket);
  if (config.install_routes) {
    auto routes = platform::RouteControl::open();
    if (!routes) return unexpected("xfrm data plane: " + routes.error().message());
    d->routes_ = std::move(*routes);
    d->routing_table_ = config.routing_table;
  }
  if (auto ev = platform::XfrmEventSocket::open())
    d->events_ = std::move(*ev);
  else
    spdlog::warn("xfrm: no kernel events (NAT mapping changes of ESP go unnoticed): {}", ev.error().message());
  spdlog::info("xfrm data plane (kernel IPsec), replay window {}, routes {}", d->replay_window_,
               config.install_routes ? "in table " + std::to_string(config.routing_table) : std::string("off"));
  return d;
}

XfrmDataplane::XfrmDataplane(platform::XfrmTransport& kernel, const DaemonConfig& config)
    : xfrm_(kernel),
      // The userspace backend allows windows the kernel does not: cap rather than have
      // every SA refused.
      replay_window_(std::min<std::uint32_t>(config.replay_window, XFRMA_REPLAY_ESN_MAX)) {
  if (replay_window_ != config.replay_window)
    spdlog::warn("xfrm: replay_window {} is above the kernel's maximum, using {}", config.replay_window,
                 replay_window_);
}

XfrmDataplane::~XfrmDataplane() {
  if (auto r = xfrm_.remove_all(); !r)
    spdlog::warn("xfrm: removing the remaining Child SAs on exit: {}", r.error().message());
  while (!child_routes_.empty()) remove_routes(child_routes_.begin()->first);
  if (routes_) {
    for (int i = 0; i < 2; ++i)
      if (rule_added_[i])
        (void)routes_->del_rule(i == 0 ? AddressFamily::kV4 : AddressFamily::kV6, routing_table_, routing_table_);
  }
}

namespace {

bool in_selector(const IpAddress& a, const wire::TrafficSelector& ts) {
  return a.family() == ts.start_address.family() && !(a < ts.start_address) && !(ts.end_address < a);
}

// A local address inside the local selectors, for locally originated traffic to match
// the Child SA: an address of the selectors' own when it is a single one, else the
// first of the host's addresses they cover.
std::optional<IpAddress> source_in(const std::vector<wire::TrafficSelector>& local_ts, AddressFamily family) {
  for (const auto& t : local_ts)
    if (t.start_address == t.end_address && t.start_address.family() == family) return t.start_address;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return std::nullopt;
  std::optional<IpAddress> found;
  for (ifaddrs* i = list; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    int af = i->ifa_addr->sa_family;
    if (af != AF_INET && af != AF_INET6) continue;
    auto e = platform::from_sockaddr(i->ifa_addr, af == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    if (!e || e->address.family() != family) continue;
    const IpAddress& a = e->address;
    if (!a.is_v4() && a.bytes()[0] == 0xfe && (a.bytes()[1] & 0xc0) == 0x80) continue;  // link-local
    for (const auto& t : local_ts)
      if (in_selector(a, t)) {
        found = a;
        break;
      }
  }
  freeifaddrs(list);
  return found;
}

}  // namespace

void XfrmDataplane::add_routes(const ike::DataplaneOp& op) {
  if (!routes_) return;
  auto hop = routes_->lookup(op.remote.address);
  if (!hop) {
    route_errors_++;
    spdlog::warn("xfrm: no route to the peer {} for Child SA {}'s routes: {}", op.remote.address.to_string(),
                 op.child_sa_id, hop.error().message());
    return;
  }
  // Virtual IPs go on the interface towards the peer, as strongSwan installs them, before
  // the routes that name them as source.
  if (!op.virtual_ips.empty()) child_vips_[op.child_sa_id] = op.virtual_ips;
  for (const auto& v : op.virtual_ips) {
    auto& ref = vip_refs_[v];
    if (ref.refs++ > 0) continue;
    ref.ifindex = hop->ifindex;
    if (auto r = routes_->add_address(v, hop->ifindex); !r) {
      route_errors_++;
      spdlog::warn("xfrm: virtual IP {}: {}", v.to_string(), r.error().message());
    } else {
      spdlog::info("xfrm: virtual IP {} installed", v.to_string());
    }
  }
  auto& mine = child_routes_[op.child_sa_id];
  for (const auto& ts : op.remote_ts) {
    for (const auto& p : platform::range_to_prefixes(ts.start_address, ts.end_address)) {
      // A prefix that covers the peer itself stays with the main table's route: ours,
      // looked up first, would otherwise give IKE to the peer a source inside our
      // selectors. The main table's route leads to the peer anyway.
      if (p.contains(op.remote.address)) continue;
      mine.push_back(p);
      auto& ref = route_refs_[{p.address, p.length}];
      if (ref.refs++ > 0) continue;
      int fam = p.address.is_v4() ? 0 : 1;
      if (!rule_added_[fam]) {
        if (auto r = routes_->add_rule(p.address.family(), routing_table_, routing_table_); !r) {
          route_errors_++;
          spdlog::warn("xfrm: rule lookup {}: {}", routing_table_, r.error().message());
        } else {
          rule_added_[fam] = true;
        }
      }
      ref.owner = op.child_sa_id;
      ref.spec = platform::RouteSpec{p, hop->ifindex, hop->gateway, source_in(op.local_ts, p.address.family()),
                                     routing_table_};
      if (auto r = routes_->add_route(ref.spec); !r) {
        route_errors_++;
        spdlog::warn("xfrm: route {} (table {}): {}", p.to_string(), routing_table_, r.error().message());
      } else {
        routes_installed_++;
      }
    }
  }
}

void XfrmDataplane::remove_routes(std::uint64_t child_sa_id) {
  if (auto v = child_vips_.find(child_sa_id); v != child_vips_.end()) {
    for (const auto& a : v->second) {
      auto ref = vip_refs_.find(a);
      if (ref == vip_refs_.end() || --ref->second.refs > 0) continue;
      if (routes_) {
        if (auto r = routes_->del_address(a, ref->second.ifindex); !r) {
          route_errors_++;
          spdlog::warn("xfrm: remove virtual IP {}: {}", a.to_string(), r.error().message());
        }
      }
      vip_refs_.erase(ref);
    }
    child_vips_.erase(v);
  }
  auto it = child_routes_.find(child_sa_id);
  if (it == child_routes_.end()) return;
  for (const auto& p : it->second) {
    auto ref = route_refs_.find({p.address, p.length});
    if (ref == route_refs_.end()) continue;
    if (--ref->second.refs > 0) {
      // A Child SA with the same selectors (its rekey) still needs the route.
      if (ref->second.owner == child_sa_id) ref->second.owner = 0;
      continue;
    }
    if (routes_) {
      if (auto r = routes_->del_route(ref->second.spec); !r) {
        route_errors_++;
        spdlog::warn("xfrm: delete route {}: {}", p.to_string(), r.error().message());
      }
    }
    route_refs_.erase(ref);
  }
  child_routes_.erase(it);
}

void XfrmDataplane::reroute(const ike::DataplaneOp& op) {
  auto it = child_routes_.find(op.child_sa_id);
  if (!routes_ || it == child_routes_.end()) return;
  auto hop = routes_->lookup(op.remote.address);
  if (!hop) {
    route_errors_++;
    spdlog::warn("xfrm: no route to the peer {} after a move: {}", op.remote.address.to_string(),
                 hop.error().message());
    return;
  }
  for (const auto& p : it->second) {
    auto ref = route_refs_.find({p.address, p.length});
    if (ref == route_refs_.end()) continue;
    auto& spec = ref->second.spec;
    if (spec.ifindex == hop->ifindex && spec.gateway == hop->gateway) continue;
    // The old interface may be gone, and the kernel with it removed the route.
    (void)routes_->del_route(spec);
    spec.ifindex = hop->ifindex;
    spec.gateway = hop->gateway;
    if (auto r = routes_->add_route(spec); !r) {
      route_errors_++;
      spdlog::warn("xfrm: route {} after a move: {}", p.to_string(), r.error().message());
    }
  }
}

platform::XfrmChild XfrmDataplane::child_of(const ike::DataplaneOp& op, std::uint32_t replay_window) {
  platform::XfrmChild c;
  c.local = op.local;
  c.remote = op.remote;
  c.spi_in = op.spi_in;
  c.spi_out = op.spi_out;
  c.udp_encap = op.udp_encap;
  c.local_ts = op.local_ts;
  c.remote_ts = op.remote_ts;
  const auto& k = op.keys;
  c.in = platform::EspTransforms{k.encr_id, k.encr_key_bits, k.integ_id, k.esn, k.encr_in, k.integ_in};
  c.out = platform::EspTransforms{k.encr_id, k.encr_key_bits, k.integ_id, k.esn, k.encr_out, k.integ_out};
  // The kernel enforces them and reports what it reached (XFRM_MSG_EXPIRE, take_expires):
  // volume only it can count; the times repeat the engine's own timers, rounded up.
  const auto& l = op.limits;
  c.lifetime = platform::SaLifetime{l.soft_bytes,   l.hard_bytes,   l.soft_packets,
                                    l.hard_packets, l.soft_seconds, l.hard_seconds};
  c.replay_window = replay_window;
  return c;
}

void XfrmDataplane::record_error(const char* op, const platform::SysError& e) {
  spdlog::error("xfrm {} failed: {} ({})", op, e.message(), errno_name(e.code));
  // The usual cause on a new host, said once rather than with every Child SA.
  if ((e.code == EPROTONOSUPPORT || e.code == ENOSYS) && (!last_error_ || last_error_->code != e.code))
    spdlog::warn("xfrm: the kernel lacks ESP or this algorithm (esp4/esp6, crypto templates); "
                 "Child SAs are negotiated but carry no traffic");
  last_error_ = e;
}

void XfrmDataplane::apply(const ike::DataplaneOp& op) {
  using Kind = ike::DataplaneOp::Kind;
  switch (op.kind) {
    case Kind::kInstall: {
      if (op.resume) {
        // Installing it would restart the sequence numbers at 1 under the same key: a
        // nonce reuse. Continuing them (XFRMA_REPLAY_ESN_VAL) comes with the kernel ESP
        // tests; until then a moved SA is not installed here.
        stats_.install_errors++;
        spdlog::error("xfrm: Child SA {} (SPI {:08x}) continues another node's: not supported by this backend yet",
                      op.child_sa_id, op.spi_in);
        return;
      }
      platform::XfrmChild child = child_of(op, replay_window_);
      // A rekey's responder receives on the new SA at once but sends on it only once
      // the initiator has it (kActivateOutbound): no packet is lost to the switch.
      auto r = xfrm_.install(op.child_sa_id, child, !op.outbound_deferred);
      // XfrmChildSas keeps (and later wipes) its own copy of the keys.
      for (Bytes* b : {&child.in.encr_key, &child.in.integ_key, &child.out.encr_key, &child.out.integ_key})
        wipe(*b);
      if (!r) {
        stats_.install_errors++;
        record_error("install", r.error());
        return;
      }
      stats_.installs++;
      add_routes(op);
      spdlog::debug("xfrm: installed Child SA {} (reqid {}): in {:08x} out {:08x} via {} -> {}{}{}", op.child_sa_id,
                    xfrm_.reqid(op.child_sa_id).value_or(0), op.spi_in, op.spi_out, op.local.to_string(),
                    op.remote.to_string(), op.udp_encap ? " (UDP)" : "",
                    op.outbound_deferred ? ", receive-only until the peer has it" : "");
      break;
    }
    case Kind::kDelete: {
      // Not there: its install failed (already counted) or the op repeats.
      if (!xfrm_.contains(op.child_sa_id)) return;
      // A hard expire of its SAs still waiting carries their last counters: read while
      // the SAs are still known as ours.
      read_events();
      platform::XfrmChildUsage last;
      std::vector<platform::XfrmSaRef> gone;
      auto r = xfrm_.remove(op.child_sa_id, &last, &gone);
      retire(last);
      for (const auto& g : gone) {
        if (vanished_.size() >= kVanishedKept) vanished_.erase(vanished_.begin());
        vanished_.push_back(g);
      }
      remove_routes(op.child_sa_id);
      stats_.removals++;  // gone from the table either way; the kernel may have kept parts
      if (!r) {
        stats_.remove_errors++;
        record_error("remove", r.error());
      }
      break;
    }
    case Kind::kUpdateAddresses: {
      if (!xfrm_.contains(op.child_sa_id)) return;
      auto r = xfrm_.update_addresses(op.child_sa_id, op.local, op.remote, op.udp_encap);
      if (!r) {
        stats_.update_errors++;
        record_error("address update", r.error());
        return;
      }
      stats_.updates++;
      reroute(op);
      spdlog::info("xfrm: Child SA {} moved to {} -> {}{}: {} policies migrated, {} replaced, {} SAs updated, {} "
                   "re-created",
                   op.child_sa_id, op.local.to_string(), op.remote.to_string(), op.udp_encap ? " (UDP)" : "",
                   r->policies_migrated, r->policies_replaced, r->sas_updated, r->sas_reinstalled);
      if (r->migrate_error) spdlog::debug("xfrm: MIGRATE not used: {}", r->migrate_error->message());
      break;
    }
    case Kind::kActivateOutbound: {
      if (!xfrm_.contains(op.child_sa_id) || xfrm_.outbound_active(op.child_sa_id)) return;
      if (auto r = xfrm_.activate_outbound(op.child_sa_id); !r) {
        stats_.install_errors++;
        record_error("activate outbound", r.error());
        return;
      }
      stats_.activations++;
      spdlog::debug("xfrm: Child SA {} sends on its new outbound SA {:08x}", op.child_sa_id, op.spi_out);
      break;
    }
    case Kind::kSuspendOutbound:
      // Needs the split install too; until then a kernel-held SA cannot move
      // (esp_state() says so).
      spdlog::warn("xfrm: Child SA {}: suspending outbound ESP is not supported", op.child_sa_id);
      break;
    case Kind::kAdvanceOutbound:
      // Needs XFRM_MSG_NEWAE with the replay state (issue 12, under a kernel with ESP);
      // the Child SA is rekeyed soon after a failover anyway.
      spdlog::warn("xfrm: Child SA {}: advancing outbound sequence numbers by {} is not supported", op.child_sa_id,
                   op.advance);
      break;
  }
}

std::optional<ChildTraffic> XfrmDataplane::traffic(std::uint64_t child_sa_id) const {
  if (!xfrm_.contains(child_sa_id)) return std::nullopt;
  auto u = xfrm_.usage(child_sa_id);
  if (!u) {
    // Polled by every list-sas: a debug line, not an error per poll.
    usage_errors_++;
    spdlog::debug("{}", u.error().message());
    return std::nullopt;
  }
  // The inbound SA's own drop counters (xfrm_stats), under the userspace backend's names.
  ChildTraffic t{u->in.bytes, u->out.bytes, u->in.packets, u->out.packets, {}};
  if (auto n = std::uint64_t{u->in_stats.replay} + u->in_stats.replay_window) t.drops["replay"] = n;
  if (u->in_stats.integrity_failed) t.drops["authentication"] = u->in_stats.integrity_failed;
  return t;
}

void XfrmDataplane::retire(bool inbound, const platform::SaUsage& u) {
  (inbound ? retired_.bytes_in : retired_.bytes_out) += u.bytes;
  (inbound ? retired_.packets_in : retired_.packets_out) += u.packets;
}

void XfrmDataplane::retire(const platform::XfrmChildUsage& u) {
  retire(true, u.in);
  retire(false, u.out);
}

std::optional<DataplaneTotals> XfrmDataplane::totals() const {
  DataplaneTotals t = retired_;
  if (auto live = xfrm_.usage_all()) {
    for (const auto& [id, u] : *live) {
      t.bytes_in += u.in.bytes;
      t.bytes_out += u.out.bytes;
      t.packets_in += u.in.packets;
      t.packets_out += u.out.packets;
    }
  } else {
    usage_errors_++;
    spdlog::debug("{}", live.error().message());
  }
  if (auto st = platform::read_xfrm_stat(xfrm_stat_path_.c_str())) {
    t.drops = xfrm_drop_reasons(*st);
  } else if (xfrm_stat_errors_++ == 0) {
    spdlog::warn("xfrm: no data-plane drops in the metrics: {} (a kernel without CONFIG_XFRM_STATISTICS?)",
                 st.error().message());
  }
  t.traffic_source =
      "xfrm: the kernel's SA counters, of the live SAs at each scrape and of deleted, rekeyed and "
      "expired ones as last read before they went; inner packets";
  t.drops_source =
      "xfrm: " + xfrm_stat_path_ +
      ", the network namespace's XFRM error counters for all its SAs since it was created; XfrmInNoStates as "
      "unknown SPI, XfrmInStateSeqError as replay, XfrmInStateProtoError as authentication, XfrmInHdrError as "
      "malformed, XfrmInTmplMismatch as policy, XfrmOutStateSeqError as sequence number overflow, "
      "XfrmIn/OutStateExpired as expired, the others by their kernel names";
  return t;
}

std::map<std::string, std::uint64_t> xfrm_drop_reasons(
    const std::vector<std::pair<std::string, std::uint64_t>>& xfrm_stat) {
  // Same meaning as an esp::Drop of the userspace data plane (esp::to_string).
  static const std::map<std::string, std::string, std::less<>> kSame = {
      {"XfrmInNoStates", "unknown SPI"},
      {"XfrmInStateSeqError", "replay"},
      {"XfrmInStateProtoError", "authentication"},
      {"XfrmInHdrError", "malformed"},
      {"XfrmInTmplMismatch", "policy"},
      {"XfrmOutStateSeqError", "sequence number overflow"},
      {"XfrmInStateExpired", "expired"},
      {"XfrmOutStateExpired", "expired"},
  };
  std::map<std::string, std::uint64_t> out;
  for (const auto& [name, n] : xfrm_stat) {
    auto it = kSame.find(name);
    out[it != kSame.end() ? it->second : name] += n;
  }
  return out;
}

nlohmann::json XfrmDataplane::stats() const {
  nlohmann::json last = nullptr;
  if (last_error_)
    last = {{"errno", last_error_->code}, {"name", errno_name(last_error_->code)}, {"message", last_error_->message()}};
  return {{"backend", "xfrm"},
          {"child_sas", stats_.installs - stats_.removals},
          {"policies", xfrm_.policies().size()},
          {"installs", stats_.installs},
          {"outbound_activations", stats_.activations},
          {"removals", stats_.removals},
          {"updates", stats_.updates},
          {"install_errors", stats_.install_errors},
          {"remove_errors", stats_.remove_errors},
          {"update_errors", stats_.update_errors},
          {"usage_errors", usage_errors_},
          {"errors", stats_.install_errors + stats_.remove_errors + stats_.update_errors},
          {"last_error", last},
          {"esp_udp_dropped", stats_.esp_udp_dropped},
          {"esp_mappings", mappings_},
          {"esp_mappings_malformed", events_malformed_},
          {"events_malformed", events_malformed_},
          {"expires", {{"soft", expires_soft_}, {"hard", expires_hard_}}},
          {"traps", xfrm_.trap_count()},
          {"acquires", acquires_},
          {"acquires_unmatched", acquires_unmatched_},
          {"routes", route_refs_.size()},
          {"routes_installed", routes_installed_},
          {"route_errors", route_errors_}};
}

void XfrmDataplane::read_events() {
  if (events_) on_events(events_->read(events_malformed_));
}

void XfrmDataplane::on_events(const platform::XfrmEvents& ev) {
  for (const auto& m : ev.mappings) {
    mappings_++;
    spdlog::debug("xfrm: ESP of SA {:08x} from {} (was {})", m.spi, m.new_src.to_string(), m.old_src.to_string());
    pending_mappings_.emplace_back(m.spi, m.new_src);
  }
  for (const auto& a : ev.acquires) {
    if (a.dir != platform::XfrmDir::kOut) continue;
    auto trap = xfrm_.find_trap(a.policy);
    if (!trap) {
      // A Child SA's own policy whose SA the kernel expired (hard): its delete is on the way.
      acquires_unmatched_++;
      continue;
    }
    acquires_++;
    spdlog::debug("xfrm: acquire {} for {} (trap {})", a.seq, platform::to_string(a.flow), *trap);
    if (std::find(pending_acquires_.begin(), pending_acquires_.end(), *trap) == pending_acquires_.end())
      pending_acquires_.push_back(*trap);
  }
  for (const auto& e : ev.expires) {
    auto sa = xfrm_.find_sa(e.dst, e.spi);
    if (e.hard && e.spi != 0) {
      // The kernel deleted the SA: these are its last counters.
      if (sa) {
        retire(sa->inbound, e.usage);
      } else if (auto v = std::find_if(vanished_.begin(), vanished_.end(),
                                        [&](const platform::XfrmSaRef& r) { return r.dst == e.dst && r.spi == e.spi; });
                 v != vanished_.end()) {
        retire(v->inbound, e.usage);
        vanished_.erase(v);
      }
    }
    if (!sa) continue;  // an acquire's placeholder, or an SA removed meanwhile
    const std::optional<std::uint64_t> child = sa->child_id;
    (e.hard ? expires_hard_ : expires_soft_)++;
    using L = platform::XfrmExpire::Limit;
    const auto cause = e.limit == L::kBytes     ? ike::ExpireCause::kBytes
                       : e.limit == L::kPackets ? ike::ExpireCause::kPackets
                                                : ike::ExpireCause::kTime;
    spdlog::debug("xfrm: SA {:08x} of Child SA {} reached a {} limit ({}; {} bytes, {} packets)", e.spi, *child,
                  e.hard ? "hard" : "soft", ike::to_string(cause), e.usage.bytes, e.usage.packets);
    // Both SAs of a Child SA usually expire together: one report of each kind is enough.
    ChildExpire x{*child, e.hard, cause};
    if (std::find_if(pending_expires_.begin(), pending_expires_.end(), [&](const ChildExpire& p) {
          return p.child_sa_id == x.child_sa_id && p.hard == x.hard;
        }) == pending_expires_.end())
      pending_expires_.push_back(x);
  }
}

Expected<void, std::string> XfrmDataplane::install_trap(std::uint64_t trap_id, const TrapSpec& spec) {
  platform::XfrmChild shape;
  shape.local = {spec.local, 0};
  shape.remote = {spec.remote, 0};
  shape.local_ts = spec.local_ts;
  shape.remote_ts = spec.remote_ts;
  if (auto r = xfrm_.install_trap(trap_id, shape); !r) {
    record_error("trap", r.error());
    return unexpected(r.error().message());
  }
  spdlog::debug("xfrm: trap {} installed ({} -> {})", trap_id, spec.local.to_string(), spec.remote.to_string());
  return {};
}

void XfrmDataplane::remove_trap(std::uint64_t trap_id) {
  if (auto r = xfrm_.remove_trap(trap_id); !r) spdlog::warn("xfrm: removing trap {}: {}", trap_id, r.error().message());
}

std::vector<std::uint64_t> XfrmDataplane::take_acquires() {
  read_events();
  return std::exchange(pending_acquires_, {});
}

std::vector<std::pair<std::uint32_t, Endpoint>> XfrmDataplane::take_esp_mappings() {
  read_events();
  return std::exchange(pending_mappings_, {});
}

std::vector<ChildExpire> XfrmDataplane::take_expires() {
  read_events();
  return std::exchange(pending_expires_, {});
}

void XfrmDataplane::on_udp_esp(std::span<std::uint8_t>, const Endpoint&, const Endpoint&) {
  // With UDP_ENCAP on the NAT-T socket the kernel takes ESP before the socket sees it;
  // what still arrives here is too short to be ESP for the kernel or came before the
  // option was set.
  stats_.esp_udp_dropped++;
}

Expected<void, std::string> prepare_ike_socket_for_xfrm(int fd, AddressFamily family, bool natt) {
  if (auto r = platform::xfrm_bypass_socket(fd, family); !r)
    return unexpected("xfrm: cannot exempt the IKE socket from IPsec policies: " + r.error().message());
  if (natt)
    if (auto r = platform::xfrm_enable_udp_encap(fd); !r)
      return unexpected("xfrm: cannot enable ESP-in-UDP on the NAT-T socket: " + r.error().message());
  return {};
}

}  // namespace mobike::daemon
