#include "mobility/address_policy.h"

#include <algorithm>
#include <tuple>

#include "ike/engine.h"
#include "mobility/address_list.h"
#include "mobility/mobike.h"

namespace mobike::mobility {

using ike::HostAddress;

bool host_has(std::span<const HostAddress> host, const IpAddress& address) {
  return std::any_of(host.begin(), host.end(), [&](const HostAddress& h) { return h.address == address; });
}

std::vector<IpAddress> usable_local_addresses(const ike::ConnectionConfig& c, std::span<const HostAddress> host) {
  std::vector<IpAddress> out;
  if (!c.local_addrs.empty()) {
    // The configuration names the service addresses: where they sit is the operator's
    // routing, not a reason to ignore them.
    for (const auto& a : c.local_addrs)
      if (usable_address(a) && host_has(host, a) && std::find(out.begin(), out.end(), a) == out.end())
        out.push_back(a);
    return out;
  }
  for (const auto& h : host)
    if (!h.on_loopback && usable_address(h.address) &&
        std::find(out.begin(), out.end(), h.address) == out.end())
      out.push_back(h.address);
  return out;
}

bool usable_local_address(const ike::ConnectionConfig& c, std::span<const HostAddress> host,
                          const IpAddress& address) {
  auto u = usable_local_addresses(c, host);
  return std::find(u.begin(), u.end(), address) != u.end();
}

namespace {

std::size_t position(const std::vector<IpAddress>& list, const IpAddress& a) {
  return static_cast<std::size_t>(std::find(list.begin(), list.end(), a) - list.begin());
}

bool contains(const std::vector<IpAddress>& list, const IpAddress& a) {
  return std::find(list.begin(), list.end(), a) != list.end();
}

void plan_initiator(const SaFacts& sa, const std::vector<IpAddress>& usable, const std::optional<IpAddress>& route,
                    AddressPlan& plan) {
  const IpAddress& current = sa.local.address;
  const bool current_ok = contains(usable, current);
  if (route && *route != current && contains(usable, *route)) {
    if (!current_ok) {
      plan.moves.push_back({sa.id, route, current.to_string() + " is gone; the route to the peer now leaves from " +
                                              route->to_string()});
    } else if (sa.config->local_addrs.empty()) {
      plan.moves.push_back({sa.id, route, "the route to the peer now leaves from " + route->to_string()});
    } else if (position(sa.config->local_addrs, *route) < position(sa.config->local_addrs, current)) {
      plan.moves.push_back({sa.id, route, route->to_string() + " is back and preferred in local_addrs"});
    }
    return;
  }
  if (!current_ok)
    plan.moves.push_back({sa.id, std::nullopt,
                          current.to_string() + " is gone and no route leaves from an address the connection may use"});
}

void plan_responder(const SaFacts& sa, const std::vector<IpAddress>& usable, const std::vector<IpAddress>& usable_before,
                    const std::optional<IpAddress>& route, AddressPlan& plan) {
  const IpAddress& current = sa.local.address;
  const auto& prefer = sa.config->switch_prefer;
  if (!contains(usable, current)) {
    // Lexicographic rank, smaller is better (see the header).
    auto rank = [&](std::size_t i) {
      const IpAddress& a = usable[i];
      return std::make_tuple(position(prefer, a), contains(sa.announced, a) ? 0 : 1,
                             a.family() == current.family() ? 0 : 1, route && *route == a ? 0 : 1, i);
    };
    std::optional<std::size_t> best;
    for (std::size_t i = 0; i < usable.size(); ++i)
      if (usable[i] != current && (!best || rank(i) < rank(*best))) best = i;
    if (!best) {
      plan.stranded.push_back({sa.id, current.to_string() + " is gone and connection '" + sa.config->name +
                                          "' has no other usable address"});
      return;
    }
    plan.switches.push_back({sa.id, usable[*best], current.to_string() + " is gone"});
    return;
  }
  // A preferred address came back: SAs on addresses listed after it return.
  if (!contains(prefer, current)) return;
  for (const auto& a : prefer) {
    if (a == current) break;
    if (contains(usable, a) && !contains(usable_before, a)) {
      plan.switches.push_back({sa.id, a, a.to_string() + " is back and preferred in switch_prefer"});
      return;
    }
  }
}

}  // namespace

AddressPlan plan_address_change(std::span<const HostAddress> before, std::span<const HostAddress> after,
                                std::span<const SaFacts> sas, const RouteLookup& route) {
  AddressPlan plan;
  for (const auto& sa : sas) {
    if (!sa.config || (!sa.may_update && !sa.may_switch)) continue;
    auto usable = usable_local_addresses(*sa.config, after);
    auto r = route ? route(sa.remote.address) : std::nullopt;
    if (sa.may_update)
      plan_initiator(sa, usable, r, plan);
    else
      plan_responder(sa, usable, usable_local_addresses(*sa.config, before), r, plan);
  }
  return plan;
}

std::vector<SaFacts> sa_facts(const ike::Engine& engine) {
  std::vector<SaFacts> out;
  engine.for_each_ike_sa([&](const ike::IkeSa& sa) {
    if (sa.state != ike::IkeState::kEstablished || !sa.config) return;
    auto v = view(sa);
    SaFacts f;
    f.id = sa.id;
    f.config = sa.config;
    f.local = sa.local;
    f.remote = sa.remote;
    f.may_update = may_update(sa);
    f.may_switch = !sa.original_initiator && sa.peer_mobike && v && v->peer_switch && !v->switching_to;
    if (v) f.announced = v->announced;
    out.push_back(std::move(f));
  });
  return out;
}

PlanOutcome execute(ike::Engine& engine, const AddressPlan& plan, ike::TimePoint now) {
  PlanOutcome out;
  auto sa_name = [](std::uint64_t id) { return "IKE SA " + std::to_string(id); };
  for (const auto& s : plan.switches) {
    if (auto r = switch_address(engine, s.sa, s.to, now); !r) {
      out.log_warn.push_back(sa_name(s.sa) + ": " + s.why + " but it cannot switch to " + s.to.to_string() + ": " +
                             r.error());
    } else {
      out.log_info.push_back(sa_name(s.sa) + ": " + s.why + "; asking the initiator to switch to " + s.to.to_string());
      out.switches++;
    }
  }
  for (const auto& m : plan.moves) {
    if (!m.to) {
      if (probe_paths(engine, m.sa, now)) {
        out.log_warn.push_back(sa_name(m.sa) + ": " + m.why + ": probing paths");
        out.moves++;
      }
    } else if (!update_addresses(engine, m.sa, *m.to, now)) {
      out.log_warn.push_back(sa_name(m.sa) + ": " + m.why + " but it cannot move yet");
    } else {
      out.log_info.push_back(sa_name(m.sa) + ": " + m.why + "; moving to " + m.to->to_string());
      out.moves++;
    }
  }
  for (const auto& s : plan.stranded) out.log_warn.push_back(sa_name(s.sa) + ": " + s.why);
  return out;
}

}  // namespace mobike::mobility
