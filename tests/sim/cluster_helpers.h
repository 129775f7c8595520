// Helpers for the cluster sim tests: an in-memory store with etcd's compare-and-put
// semantics and a watch every node sees in order, the SPIs a host's data plane sends on,
// and cluster keys.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cluster/node.h"
#include "switch_helpers.h"

namespace mobike::sim {

// One key space with a global revision, compare-and-put on the modification revision,
// and a watch that every node sees in order.
class FakeStore {
 public:
  struct Entry {
    Bytes value;
    std::int64_t mod_revision = 0;
  };
  std::map<std::string, Entry> kv;
  std::int64_t revision = 0;
  std::size_t refused_writes = 0;

  // Applies one of `from`'s writes; adds its result and the event for every watcher.
  void apply(cluster::Node& from, const cluster::StoreWrite& w, std::vector<std::pair<cluster::Node*, cluster::StoreWriteResult>>& results,
             std::vector<cluster::StoreEvent>& events) {
    auto it = kv.find(w.key);
    const std::int64_t current = it == kv.end() ? 0 : it->second.mod_revision;
    cluster::StoreWriteResult r{w.tag, current == w.expect, 0};
    if (r.succeeded) {
      ++revision;
      if (w.put)
        kv[w.key] = {*w.put, revision};
      else
        kv.erase(w.key);
      r.revision = revision;
      events.push_back({w.key, w.put, revision});
    } else {
      refused_writes++;
    }
    results.emplace_back(&from, r);
  }
};

// The outbound SPIs a host's data plane sends on, from the operations it was given.
inline std::set<std::uint32_t> sending(const Host& h) {
  std::map<std::uint64_t, std::pair<std::uint32_t, bool>> children;  // id -> (SPI out, sends)
  for (const auto& op : h.dataplane) {
    using K = ike::DataplaneOp::Kind;
    if (op.kind == K::kInstall) children[op.child_sa_id] = {op.spi_out, !op.outbound_deferred};
    if (op.kind == K::kActivateOutbound) children[op.child_sa_id] = {op.spi_out, true};
    if (op.kind == K::kSuspendOutbound || op.kind == K::kDelete) children[op.child_sa_id] = {op.spi_out, false};
  }
  std::set<std::uint32_t> out;
  for (const auto& [id, c] : children)
    if (c.second) out.insert(c.first);
  return out;
}

inline cluster::ClusterKey key_of(std::uint8_t seed) {
  cluster::ClusterKey k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed ^ (i * 31));
  return k;
}

}  // namespace mobike::sim
