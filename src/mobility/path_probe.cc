#include "mobility/path_probe.h"

#include <algorithm>

#include "ike/connection.h"
#include "ike/ike_init.h"
#include "mobility/address_list.h"
#include "mobility/address_policy.h"
#include "mobility/update.h"

namespace mobike::mobility {

using ike::IkeSa;
using ike::LogLevel;
using ike::Services;

namespace {

constexpr std::size_t kMaxPaths = 16;

std::string describe(const Path& p) { return p.local.to_string() + " -> " + p.remote.to_string(); }

}  // namespace

int path_rank(const IkeSa& sa, const Path& p) {
  const auto& pref = sa.config->local_addrs;
  auto it = std::find(pref.begin(), pref.end(), p.local.address);
  int local_rank = pref.empty() ? 0 : static_cast<int>(it - pref.begin());
  const SaState* st = find_state(sa);
  auto usual = st && !st->committed.local.address.is_unspecified() ? st->committed.local.address.family()
                                                                   : sa.local.address.family();
  int family = p.local.address.family() == usual ? 0 : 1;
  int remote = p.remote.address == sa.remote.address ? 0 : 1;
  return local_rank * 4 + family * 2 + remote;
}

std::vector<Path> candidate_paths(const IkeSa& sa, Services& s) {
  const SaState* st = find_state(sa);
  std::vector<Endpoint> remotes{sa.remote};
  if (st) {
    if (st->committed.remote.address != sa.remote.address && !st->committed.remote.address.is_unspecified())
      remotes.push_back(st->committed.remote);
    for (const auto* list : {&st->peer_addresses, &st->looked_up})
      for (const auto& a : *list)
        if (std::none_of(remotes.begin(), remotes.end(), [&](const Endpoint& e) { return e.address == a; }))
          remotes.push_back({a, s.config().natt_port});
  }
  std::vector<Path> out;
  for (const auto& local : usable_local_addresses(*sa.config, s.local_addresses())) {
    for (const auto& remote : remotes)
      if (remote.address.family() == local.family()) out.push_back({{local, s.config().natt_port}, remote});
  }
  std::stable_sort(out.begin(), out.end(),
                   [&](const Path& a, const Path& b) { return path_rank(sa, a) < path_rank(sa, b); });
  if (out.size() > kMaxPaths) out.resize(kMaxPaths);
  return out;
}

std::optional<std::vector<wire::Payload>> PathProbeTask::build_request(IkeSa& sa, Services& s) {
  if (sa.state != ike::IkeState::kEstablished) return std::nullopt;
  std::vector<wire::Payload> out;
  if (sa.config->nat_traversal && sa.peer_nat_d) ike::add_nat_detection(sa, out, sa.config->encap_force, s.random());
  return out;
}

std::size_t transmit_probes(IkeSa& sa, Services& s) {
  auto& st = state(sa);
  st.probe_mid = sa.active_mid;
  auto paths = candidate_paths(sa, s);
  for (const auto& p : paths) {
    s.send_on(sa, p.local, p.remote, sa.active_request);
    if (std::find(st.probed.begin(), st.probed.end(), p) == st.probed.end() && st.probed.size() < 4 * kMaxPaths)
      st.probed.push_back(p);
  }
  return paths.size();
}

void start_probing(IkeSa& sa, Services& s, const char* why) {
  auto& st = state(sa);
  if (st.probing) return;
  st.probing = true;
  st.deciding = false;
  st.answers.clear();
  st.probed.clear();
  st.probing_since = s.now();
  st.no_path_reported = false;
  s.log(LogLevel::kInfo, &sa, std::string(why) + ": probing " + std::to_string(candidate_paths(sa, s).size()) +
                                  " path(s)");
  if (sa.active)
    transmit_probes(sa, s);
  else
    s.queue(sa, std::make_unique<PathProbeTask>());
}

void probe_answered(IkeSa& sa, Services& s, const Config& config, const Path& path) {
  auto& st = state(sa);
  // An authentic answer can still be replayed from elsewhere: only the paths we probed
  // count, once each.
  if (std::find(st.probed.begin(), st.probed.end(), path) == st.probed.end()) {
    s.log(LogLevel::kDebug, &sa, "probe answer on " + describe(path) + ", a path not probed: ignored");
    return;
  }
  if (std::find(st.answers.begin(), st.answers.end(), path) == st.answers.end()) st.answers.push_back(path);
  if (!st.deciding) {
    st.probing = false;
    st.deciding = true;
    sa.mobility_at = s.now() + config.probe_grace;
  }
  // Nothing can beat an answer of the best possible rank: no need to wait.
  auto paths = candidate_paths(sa, s);
  if (!paths.empty() && path_rank(sa, path) <= path_rank(sa, paths.front())) decide_probe(sa, s);
}

void decide_probe(IkeSa& sa, Services& s) {
  auto& st = state(sa);
  if (!st.deciding || st.answers.empty()) return;
  Path best = st.answers.front();
  for (const auto& p : st.answers)
    if (path_rank(sa, p) < path_rank(sa, best)) best = p;
  s.log(LogLevel::kInfo, &sa, "path probing: " + std::to_string(st.answers.size()) + " path(s) answered, taking " +
                                  describe(best));
  st.deciding = false;
  st.answers.clear();
  st.probed.clear();
  sa.local = best.local;
  sa.remote = best.remote;
  // Even on the old path: the peer may have taken another copy of the probe as an
  // update, and the NAT may have changed.
  queue_update(sa, s);
}

}  // namespace mobike::mobility
