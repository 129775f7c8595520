#include "daemon/return_path.h"

#include <spawn.h>
#include <cstring>
#include <sys/wait.h>

#include <spdlog/spdlog.h>

#include "ike/traffic_selector.h"
#include "platform/proxy_arp.h"

extern char** environ;

namespace mobike::daemon {

Expected<std::unique_ptr<ReturnPath>, std::string> ReturnPath::create(const ClusterConfig& config) {
  std::unique_ptr<ReturnPath> r(new ReturnPath(config));
  if (config.return_traffic == ReturnTraffic::kProxyArp) {
    auto arp = platform::ProxyArp::open(config.lan_interface);
    if (!arp) return unexpected("proxy ARP on " + config.lan_interface + ": " + arp.error().message());
    if (auto s = arp->enable_sysctls(AddressFamily::kV4); !s)
      return unexpected("proxy ARP on " + config.lan_interface + ": " + s.error().message());
    r->arp_ = std::make_unique<platform::ProxyArp>(std::move(*arp));
  }
  return r;
}

ReturnPath::ReturnPath(const ClusterConfig& config)
    : mode_(config.return_traffic), node_(config.node), hook_(config.hook) {}

ReturnPath::~ReturnPath() {
  // What this node attracted stays attracted only while it holds the SAs.
  for (auto& [address, n] : refs_)
    if (arp_)
      if (auto a = IpAddress::parse(address)) (void)arp_->remove(*a);
  reap();
}

void ReturnPath::on_dataplane_op(const ike::DataplaneOp& op) {
  if (mode_ == ReturnTraffic::kNone) return;
  reap();
  if (op.kind == ike::DataplaneOp::Kind::kInstall) {
    Child c;
    c.ike_sa_id = op.ike_sa_id;
    for (const auto& ts : op.remote_ts) {
      c.selectors.push_back(ike::ts_to_string(ts));
      if (ts.start_address == ts.end_address) c.hosts.push_back(ts.start_address);
    }
    take(op.child_sa_id, std::move(c), op.resume.has_value());
  } else if (op.kind == ike::DataplaneOp::Kind::kDelete) {
    release(op.child_sa_id);
  }
}

void ReturnPath::take(std::uint64_t child_sa_id, Child c, bool moved_here) {
  if (arp_) {
    for (const auto& h : c.hosts) {
      // A rekey's new Child SA overlaps the old one: the address is already ours, and a
      // new announcement would only disturb the LAN. One taken from another node is not.
      if (refs_[h.to_string()]++ > 0 && !moved_here) continue;
      // IPv6 only once needed: forwarding on the interface makes it ignore router
      // advertisements, which an IPv4-only LAN should not change.
      if (h.is_v6() && !v6_enabled_) {
        if (auto s = arp_->enable_sysctls(AddressFamily::kV6); !s)
          spdlog::warn("cluster: proxy NDP sysctls: {}", s.error().message());
        v6_enabled_ = true;
      }
      if (auto r = arp_->add(h); !r) {
        counters_.errors++;
        spdlog::warn("cluster: cannot attract {} (proxy ARP): {}", h.to_string(), r.error().message());
      } else {
        counters_.announced++;
      }
    }
  }
  if (mode_ == ReturnTraffic::kHook) run_hook("take", child_sa_id, c);
  counters_.taken++;
  children_[child_sa_id] = std::move(c);
}

void ReturnPath::release(std::uint64_t child_sa_id) {
  auto it = children_.find(child_sa_id);
  if (it == children_.end()) return;
  if (arp_) {
    for (const auto& h : it->second.hosts) {
      auto r = refs_.find(h.to_string());
      if (r == refs_.end() || --r->second > 0) continue;
      refs_.erase(r);
      if (auto d = arp_->remove(h); !d) {
        counters_.errors++;
        spdlog::warn("cluster: cannot stop attracting {}: {}", h.to_string(), d.error().message());
      }
    }
  }
  if (mode_ == ReturnTraffic::kHook) run_hook("release", child_sa_id, it->second);
  counters_.released++;
  children_.erase(it);
}

void ReturnPath::announce(std::uint64_t ike_sa_id) {
  for (const auto& [id, c] : children_) {
    if (c.ike_sa_id != ike_sa_id) continue;
    if (arp_)
      for (const auto& h : c.hosts)
        if (auto r = arp_->announce(h); r) counters_.announced++;
    if (mode_ == ReturnTraffic::kHook) run_hook("take", id, c);
  }
}

void ReturnPath::run_hook(const char* verb, std::uint64_t child_sa_id, const Child& c) {
  std::string selectors;
  for (const auto& s : c.selectors) selectors += (selectors.empty() ? "" : " ") + s;
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (std::string_view(*e).substr(0, 8) != "MOBIKED_") env.emplace_back(*e);
  env.push_back(std::string("MOBIKED_VERB=") + verb);
  env.push_back("MOBIKED_NODE=" + node_);
  env.push_back("MOBIKED_IKE_SA=" + std::to_string(c.ike_sa_id));
  env.push_back("MOBIKED_CHILD_SA=" + std::to_string(child_sa_id));
  env.push_back("MOBIKED_REMOTE_TS=" + selectors);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", cmd = hook_;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = 0;
  // Not waited for here: a slow router API must not stall IKE. Reaped on later calls.
  if (int rc = ::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv, envp.data()); rc != 0) {
    counters_.hook_failures++;
    spdlog::warn("cluster: cannot run hook '{}': {}", hook_, std::strerror(rc));
    return;
  }
  counters_.hook_runs++;
  hooks_running_.push_back(pid);
}

void ReturnPath::reap() {
  for (auto it = hooks_running_.begin(); it != hooks_running_.end();) {
    int status = 0;
    pid_t r = ::waitpid(*it, &status, WNOHANG);
    if (r == 0) {
      ++it;
      continue;
    }
    if (r == *it && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      counters_.hook_failures++;
      spdlog::warn("cluster: hook '{}' failed (status {})", hook_, status);
    }
    it = hooks_running_.erase(it);
  }
}

}  // namespace mobike::daemon
