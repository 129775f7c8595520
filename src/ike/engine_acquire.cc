// On-demand SAs (start = "trap"): the data plane saw traffic for a child's selectors
// that no Child SA carries (the kernel's XFRM_MSG_ACQUIRE, or the userspace data
// plane's own check).
#include <algorithm>

#include "ike/create_child.h"
#include "ike/engine.h"

namespace mobike::ike {

namespace {

// The kernel holds back further acquires for a flow for its larval SA's lifetime; the
// userspace data plane reports once a second. An exchange answered or retransmitted
// to its end takes longer than either, so repeats within this are the same request.
constexpr Duration kAcquireHold{std::chrono::seconds(30)};

}  // namespace

Engine::Acquired Engine::acquire(const std::string& connection, const std::string& child, const IpAddress& local,
                                 TimePoint now) {
  now_ = now;
  const ConnectionConfig* cfg = nullptr;
  for (const auto& c : connections_)
    if (c->name == connection) cfg = c.get();
  const ChildConfig* wanted = nullptr;
  if (cfg)
    for (const auto& c : cfg->children)
      if (c.name == child) wanted = &c;
  if (!wanted) return Acquired::kUnknown;

  for (auto& [id, sa] : by_id_) {
    if (sa->connection_name != connection || sa->state == IkeState::kDead || sa->state == IkeState::kDeleting ||
        sa->handoff != Handoff::kNone)
      continue;
    const bool has_child = std::any_of(sa->children.begin(), sa->children.end(), [&](const ChildSa& c) {
      return c.name == child && c.state != ChildState::kDeleting;
    });
    // IKE_AUTH of an SA being set up brings the connection's first child.
    const bool coming = sa->state == IkeState::kConnecting && sa->config && !sa->config->children.empty() &&
                        sa->config->children.front().name == child;
    const auto& acquired = sa->extras().acquired;
    auto asked = acquired.find(child);
    if (has_child || coming || (asked != acquired.end() && now - asked->second < kAcquireHold)) {
      stats_.acquires_under_way++;
      return Acquired::kUnderWay;
    }
    // Queued behind IKE_AUTH when the SA is still being set up.
    sa->edit_extras().acquired[child] = now;
    stats_.acquires_initiated++;
    log(LogLevel::kInfo, sa, "traffic for child '" + child + "': creating it");
    queue_task(*sa, std::make_unique<ChildCreateTask>(wanted, 0));
    reschedule(*sa);
    reap();
    return Acquired::kChildRequested;
  }

  auto id = initiate(connection, local, now);
  if (!id) {
    log(LogLevel::kWarn, nullptr, "traffic for '" + connection + "': cannot initiate: " + id.error());
    return Acquired::kUnknown;
  }
  stats_.acquires_initiated++;
  if (IkeSa* sa = find_sa(*id)) {
    sa->edit_extras().acquired[child] = now;
    if (sa->config->children.front().name != child) {
      queue_task(*sa, std::make_unique<ChildCreateTask>(wanted, 0));
      reschedule(*sa);
    }
  }
  reap();
  return Acquired::kInitiated;
}

}  // namespace mobike::ike
