#include "daemon/cluster_member.h"

#include <algorithm>
#include <cmath>

#include <asio/post.hpp>
#include <ifaddrs.h>
#include <net/if.h>
#include <spdlog/spdlog.h>

#include "daemon/log_sink.h"
#include "mobility/mobike.h"
#include "platform/etcd_json.h"
#include "platform/proxy_arp.h"
#include "platform/rtnetlink.h"
#include "platform/sockaddr.h"

namespace mobike::daemon {

using nlohmann::json;
namespace etcd = platform::etcd;

namespace {

ike::TimePoint now() { return ike::Clock::now(); }

// Moves started at once by one command: enough to keep both nodes and etcd busy, few
// enough that an operator's Ctrl-C or a failing target costs little.
constexpr std::size_t kParallelMoves = 64;
constexpr auto kRetryPause = std::chrono::milliseconds(200);
constexpr auto kRevokeTimeout = std::chrono::milliseconds(500);
// etcd connections (and threads) for the SA records' writes, besides the one for
// membership: etcd answers several clients' transactions together (measured: 391-714
// serial transactions/s through one connection, 968-1614/s through 8).
constexpr std::size_t kWriters = 4;
// Checkpoints per transaction: a compare and an operation each, under etcd's default
// limit of 128 operations.
constexpr std::size_t kBatch = 100;
// Checkpoints have a worker of their own: a move's writes must not wait behind them.
constexpr std::size_t kCheckpointWorker = 1 + kWriters;

bool not_sent(const etcd::Error& e) {
  // Nothing applied: no connection was made, or etcd refused before acting ("no leader",
  // the answer to our hasleader metadata). Not "leader changed" or "request timed out,
  // possibly due to previous leader failure": those come after the proposal, which the
  // next leader may still commit, and a write sent again would then find its own change
  // and fail as if another node had made it (a member removed during a drain did that).
  return e.kind == etcd::Error::Kind::kUnreachable || e.kind == etcd::Error::Kind::kInvalidArgument ||
         etcd::is_no_leader(e);
}

std::string as_string(const Bytes& b) { return std::string(b.begin(), b.end()); }
Bytes as_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// What became of a compare-and-put whose answer was lost. The key's latest value is not
// enough: the new owner may already have written over ours (it acts within milliseconds
// of seeing it). So the key's history is read backwards, version by version, down to the
// revision the write compared against: ours is there, or it never applied.
struct Fate {
  enum class Kind : std::uint8_t { kApplied, kUnchanged, kOvertaken } kind;
  std::int64_t revision = 0;  // kApplied: the revision of our write
};
// nullopt while etcd does not tell (also for a compacted revision: rather wait than guess).
std::optional<Fate> fate_of(platform::EtcdClient& c, const cluster::StoreWrite& w) {
  if (!w.put) return std::nullopt;  // the node writes no deletes
  const std::string ours = as_string(*w.put);
  etcd::RangeRequest r;
  r.key = w.key;
  bool latest = true;
  for (int version = 0; version < 64; ++version) {
    auto g = c.range(r);
    if (!g) return std::nullopt;
    const std::int64_t now_at = g->kvs.empty() ? 0 : g->kvs.front().mod_revision;
    if (!g->kvs.empty() && g->kvs.front().value == ours) return Fate{Fate::Kind::kApplied, now_at};
    // Still as the write expected it: it did not apply, and may simply be sent again.
    if (latest && now_at == w.expect) return Fate{Fate::Kind::kUnchanged};
    if (now_at <= w.expect) return Fate{Fate::Kind::kOvertaken};
    r.revision = now_at - 1;  // the key as it was just before this change
    latest = false;
  }
  return std::nullopt;
}

}  // namespace

ClusterMember::ClusterMember(asio::io_context& io, ike::Engine& engine, ClusterConfig config,
                             cluster::DataplaneAccess dataplane, crypto::Random& random, std::function<void()> flush)
    : io_(io),
      engine_(engine),
      config_(std::move(config)),
      flush_(std::move(flush)),
      node_(
          [&] {
            cluster::NodeConfig n;
            n.name = config_.node;
            n.prefix = config_.prefix;
            n.key = config_.key;
            n.addresses = config_.addresses;
            n.switch_sender = config_.switch_sender;
            n.relay_patience = config_.move_timeout;
            if (config_.failover) n.checkpoint_interval = config_.checkpoint_interval;
            return n;
          }(),
          engine, std::move(dataplane), random, log_to_spdlog),
      keepalive_timer_(io),
      node_timer_(io),
      job_timer_(io),
      drive_timer_(io) {}

ClusterMember::~ClusterMember() { stop(); }

Expected<void, std::string> ClusterMember::start() {
  platform::EtcdClientOptions o;
  o.endpoints = config_.etcd;
  for (std::size_t i = 0; i < 2 + kWriters; ++i) {
    auto c = platform::EtcdClient::create(o);
    if (!c) return unexpected("cluster: " + c.error().to_string());
    workers_.push_back(std::make_unique<Worker>());
    workers_.back()->client.emplace(std::move(*c));
  }
  unreachable_since_ = now();
  for (auto& w : workers_) w->thread = std::thread([this, &w = *w] { worker_loop(w); });
  spdlog::info("cluster: node {} joining through etcd {}", config_.node, config_.etcd.front());
  join_cluster();
  keepalive_tick();
  return {};
}

void ClusterMember::stop() {
  if (workers_.empty() || stopped_) return;
  stopped_ = true;
  keepalive_timer_.cancel();
  node_timer_.cancel();
  job_timer_.cancel();
  drive_timer_.cancel();
  if (job_) job_->progress.reset();
  if (job_ && job_->reply) {
    auto reply = std::move(job_->reply);
    job_->reply = nullptr;
    reply(control::error_response("mobiked is stopping; moves in flight: " + std::to_string(job_->in_flight)));
  }
  // The SAs are deleted next (a DELETE to each client): their checkpoints go first, or
  // the others would take them over once our lease is gone.
  if (auto deletes = node_.checkpoint_deletes(); !deletes.empty() && reachable_) {
    post_work([deletes = std::move(deletes)](platform::EtcdClient& c) {
      for (std::size_t i = 0; i < deletes.size(); i += kBatch) {
        std::vector<etcd::Compare> cmp;
        std::vector<etcd::Op> ops;
        for (std::size_t j = i; j < std::min(deletes.size(), i + kBatch); ++j) {
          cmp.push_back(etcd::Compare::mod_revision(deletes[j].key, etcd::Compare::Result::kEqual, deletes[j].expect));
          ops.push_back(etcd::Op::del_key(deletes[j].key));
        }
        if (auto r = c.txn(cmp, ops); r && !r->succeeded)
          for (std::size_t j = 0; j < cmp.size(); ++j) (void)c.txn(std::span(&cmp[j], 1), std::span(&ops[j], 1));
      }
    });
  }
  // Leaving at once rather than when the lease runs out: the others stop sending moves here.
  if (lease_ && !workers_.empty())
    post_work([lease = lease_](platform::EtcdClient& c) { (void)c.lease_revoke(lease, kRevokeTimeout); });
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  watch_.reset();
  workers_.clear();
}

// --------------------------------------------------------------------------- worker

void ClusterMember::post_work(Work w, std::size_t worker) {
  if (worker >= workers_.size()) return;  // stopped: nothing goes to etcd any more
  {
    std::lock_guard lock(mu_);
    workers_.at(worker)->work.push_back(std::move(w));
  }
  cv_.notify_all();
}

void ClusterMember::worker_loop(Worker& me) {
  for (;;) {
    Work w;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !me.work.empty(); });
      if (me.work.empty()) return;  // stopping, nothing left
      w = std::move(me.work.front());
      me.work.pop_front();
    }
    w(*me.client);
  }
}

void ClusterMember::join_cluster() {
  if (joining_) return;
  joining_ = true;
  const std::string self_key = config_.prefix + "nodes/" + config_.node;
  const std::string record = self_record();
  const auto ttl = config_.lease_ttl.count();
  post_work([this, self_key, record, ttl](platform::EtcdClient& c) {
    auto fail = [&](const etcd::Error& e) {
      asio::post(io_, [this, e] {
        joining_ = false;
        etcd_errors_++;
        set_reachable(false, e.to_string());
      });
    };
    auto lease = c.lease_grant(ttl);
    if (!lease) return fail(lease.error());
    auto put = c.put(self_key, record, lease->id);
    if (!put) return fail(put.error());
    auto list = c.range(config_.prefix);
    if (!list) return fail(list.error());
    // The watch starts right after what was listed: nothing between is missed.
    watch_.reset();
    etcd::WatchRequest wr;
    wr.key = config_.prefix;
    wr.range_end = etcd::prefix_range_end(config_.prefix);
    wr.start_revision = list->revision() + 1;
    auto w = c.watch(wr, [this](const etcd::WatchUpdate& u) { asio::post(io_, [this, u] { on_watch_update(u); }); });
    if (!w) return fail(w.error());
    watch_.emplace(std::move(*w));
    asio::post(io_, [this, lease = lease->id, kvs = std::move(list->kvs), endpoint = c.current_endpoint(), record] {
      if (stopped()) return;
      joining_ = false;
      lease_ = lease;
      joined_ = true;
      endpoint_ = endpoint;
      published_state_ = state_;
      published_sas_ = own_sa_count();
      set_reachable(true, {});
      // A node that left while we were not watching (the listing replaces the watch,
      // whose delete events are lost) is gone all the same: moves to it must end.
      auto before = std::exchange(members_, {});
      for (const auto& kv : kvs) on_kv(kv.key, kv.value, kv.mod_revision);
      sync_members();
      for (const auto& [name, m] : before)
        if (!members_.count(name)) {
          spdlog::info("cluster: node {} left (while we were away)", name);
          node_.on_node_gone(name, now());
        }
      // SAs of nodes that died unseen, and our own of a run before this one.
      node_.adopt_orphans(now());
      announce_members();
      spdlog::info("cluster: node {} joined ({} other nodes)", config_.node, members_.size());
      flush_();
    });
  });
}

void ClusterMember::keepalive_tick() {
  if (stopped()) return;
  if (!joined_) {
    join_cluster();
  } else {
    post_work([this, lease = lease_](platform::EtcdClient& c) {
      auto r = c.lease_keepalive(lease);
      asio::post(io_, [this, r, endpoint = c.current_endpoint()] {
        if (stopped()) return;
        if (r) {
          endpoint_ = endpoint;
          set_reachable(true, {});
          return;
        }
        etcd_errors_++;
        if (r.error().kind == etcd::Error::Kind::kLeaseNotFound) {
          // Out of reach for longer than the lease: the others took us for gone.
          spdlog::warn("cluster: our lease expired; joining again");
          joined_ = false;
          rejoins_++;
          join_cluster();
          return;
        }
        set_reachable(false, r.error().to_string());
      });
    });
    if (own_sa_count() != published_sas_ || state_ != published_state_) publish_self();
    // After a rebalance the other nodes' published counts lag by up to a tick: wait for
    // them before judging again, or two nodes could hand SAs back and forth.
    if (config_.rebalance_tolerance > 0 && !job_ && !cannot_move() && state_ == "active" &&
        now() >= rebalance_quiet_until_) {
      Job j;
      j.what = "automatic rebalance";
      plan_rebalance(j, true);
      if (!j.queue.empty()) {
        spdlog::info("cluster: {} SAs above the cluster's mean by more than {}: rebalancing {}", config_.node,
                     config_.rebalance_tolerance, j.queue.size());
        start_job(std::move(j));
      }
    }
  }
  auto period = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(1000), config_.lease_ttl / 3);
  keepalive_timer_.expires_after(period);
  keepalive_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) keepalive_tick();
  });
}

void ClusterMember::publish_self() {
  if (!joined_) return;
  published_sas_ = own_sa_count();
  published_state_ = state_;
  post_work([this, key = config_.prefix + "nodes/" + config_.node, record = self_record(),
             lease = lease_](platform::EtcdClient& c) {
    auto r = c.put(key, record, lease);
    if (!r)
      asio::post(io_, [this, e = r.error()] {
        if (stopped()) return;
        etcd_errors_++;
        published_sas_ = UINT64_MAX;  // try again at the next tick
        if (e.kind != etcd::Error::Kind::kLeaseNotFound) set_reachable(false, e.to_string());
      });
  });
}

std::string ClusterMember::self_record() const {
  json addrs = json::array();
  for (const auto& a : config_.addresses) addrs.push_back(a.to_string());
  return json{{"addresses", addrs}, {"state", state_}, {"sas", own_sa_count()}}.dump();
}

void ClusterMember::set_reachable(bool reachable, const std::string& error) {
  if (reachable == reachable_) {
    if (!reachable) etcd_error_ = error;
    return;
  }
  reachable_ = reachable;
  if (reachable) {
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(now() - unreachable_since_).count();
    spdlog::info("cluster: etcd reachable again (at {}, after {} s)", endpoint_, secs);
    etcd_error_.clear();
  } else {
    unreachable_since_ = now();
    etcd_error_ = error;
    spdlog::warn("cluster: etcd unreachable: {}; serving the SAs we have, starting no move", error);
  }
}

// --------------------------------------------------------------------------- etcd -> node

void ClusterMember::on_watch_update(const etcd::WatchUpdate& u) {
  if (stopped()) return;
  switch (u.kind) {
    case etcd::WatchUpdate::Kind::kCreated:
      endpoint_ = u.endpoint;
      set_reachable(true, {});
      break;
    case etcd::WatchUpdate::Kind::kProgress: break;
    case etcd::WatchUpdate::Kind::kEvents:
      for (const auto& ev : u.events) {
        watch_events_++;
        on_kv(ev.kv.key, ev.type == etcd::WatchEvent::Type::kPut ? std::optional<std::string>(ev.kv.value) : std::nullopt,
              ev.kv.mod_revision);
      }
      flush_();
      break;
    case etcd::WatchUpdate::Kind::kDisconnected:
      set_reachable(false, u.error ? u.error->to_string() : std::string("watch disconnected"));
      break;
    case etcd::WatchUpdate::Kind::kCompacted:
    case etcd::WatchUpdate::Kind::kCanceled:
      // Events may be lost: read everything again and watch anew.
      spdlog::warn("cluster: watch ended ({}); listing again", etcd::to_string(u.kind));
      joined_ = false;
      join_cluster();
      break;
  }
}

void ClusterMember::announce_members() {
  if (!config_.announce_addresses) return;
  std::vector<IpAddress> out;
  for (const auto& [name, m] : members_)
    for (const auto& text : m.addresses) {
      auto a = IpAddress::parse(text);
      if (a && std::find(config_.addresses.begin(), config_.addresses.end(), *a) == config_.addresses.end() &&
          std::find(out.begin(), out.end(), *a) == out.end())
        out.push_back(*a);
    }
  std::sort(out.begin(), out.end());
  engine_.set_cluster_addresses(std::move(out));
}

void ClusterMember::on_kv(const std::string& key, const std::optional<std::string>& value, std::int64_t rev) {
  const std::string nodes = config_.prefix + "nodes/", requests = config_.prefix + "requests/";
  const auto t = now();
  if (key.starts_with(nodes)) {
    const std::string name = key.substr(nodes.size());
    if (name == config_.node) {
      if (!value && joined_) {
        spdlog::warn("cluster: our node record vanished (lease expired?); joining again");
        joined_ = false;
        rejoins_++;
        join_cluster();
      }
      return;
    }
    if (!value) {
      if (members_.erase(name)) {
        spdlog::info("cluster: node {} left", name);
        sync_members();
        node_.on_node_gone(name, t);
        announce_members();
      }
      return;
    }
    MemberInfo m;
    auto j = json::parse(*value, nullptr, false);
    if (j.is_object()) {
      m.state = j.value("state", std::string("?"));
      if (j.contains("sas") && j["sas"].is_number_unsigned()) m.sas = j["sas"].get<std::uint64_t>();
      if (j.contains("addresses") && j["addresses"].is_array())
        for (const auto& a : j["addresses"])
          if (a.is_string()) m.addresses.push_back(a.get<std::string>());
    } else {
      m.state = "unreadable";
    }
    if (!members_.count(name)) spdlog::info("cluster: node {} is a member ({})", name, m.state);
    const bool moved = !members_.count(name) || members_[name].addresses != m.addresses;
    const bool joined = !members_.count(name);
    members_[name] = std::move(m);
    if (joined) sync_members();
    if (moved) announce_members();
  } else if (key.starts_with(requests)) {
    if (key.substr(requests.size()) != config_.node || !value) return;
    auto j = json::parse(*value, nullptr, false);
    post_work([key](platform::EtcdClient& c) { (void)c.del(key); });
    if (!j.is_object() || !j.value("drain", false)) {
      spdlog::warn("cluster: unreadable request at {}", key);
      return;
    }
    spdlog::info("cluster: {} asks this node to drain", j.value("by", std::string("?")));
    Job d;
    d.what = "drain asked by " + j.value("by", std::string("?"));
    plan_drain(d);
    if (job_)
      waiting_jobs_.push_back(std::move(d));
    else
      start_job(std::move(d));
  } else {
    cluster::StoreEvent e;
    e.key = key;
    if (value) e.value = as_bytes(*value);
    e.mod_revision = rev;
    node_.on_store_event(e, t);
  }
}

// --------------------------------------------------------------------------- node -> etcd

void ClusterMember::on_event(const ike::Event& e) { node_.on_engine_event(e, now()); }

void ClusterMember::after_flush() {
  if (stopped()) return;
  for (auto& o : node_.take_outcomes()) record_outcome(o);
  bool taken = false;
  for (const auto& a : node_.take_address_takeovers()) {
    take_address(a);
    // Taken or not (an error is logged): the SAs waiting for it synchronise now, and
    // retransmit until the address answers.
    node_.address_taken(a, now());
    taken = true;
  }
  if (taken) {
    flush_();  // the synchronisation requests out
    return;    // flush_() ran after_flush() again
  }
  for (const auto& r : node_.take_reads()) send_read(r);
  send_writes();
  arm_node_timer();
}

void ClusterMember::sync_members() {
  std::vector<std::string> names{config_.node};
  for (const auto& [name, m] : members_) names.push_back(name);
  node_.set_members(std::move(names));
}

void ClusterMember::take_address(const IpAddress& address) {
  // On the interface of our own address of its family (the nodes share that network),
  // announced at once so that the router's neighbour entry points here.
  std::string interface;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i && interface.empty(); i = i->ifa_next) {
      if (!i->ifa_addr) continue;
      const socklen_t len = i->ifa_addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
      auto ep = platform::from_sockaddr(i->ifa_addr, len);
      if (!ep) continue;
      for (const auto& own : config_.addresses)
        if (own == ep->address && own.family() == address.family()) interface = i->ifa_name;
    }
    ::freeifaddrs(list);
  }
  if (interface.empty()) {
    spdlog::error("cluster: cannot take {} over: no interface holds an address of this node of its family",
                  address.to_string());
    return;
  }
  auto rc = platform::RouteControl::open();
  auto added = rc ? rc->add_address(address, static_cast<int>(::if_nametoindex(interface.c_str())))
                  : Expected<void, platform::SysError>(unexpected(rc.error()));
  if (!added) {
    spdlog::error("cluster: cannot take {} over on {}: {}", address.to_string(), interface, added.error().message());
    return;
  }
  taken_over_.push_back(address.to_string());
  if (auto arp = platform::ProxyArp::open(interface); arp) {
    if (auto a = arp->announce(address); !a) spdlog::warn("cluster: announcing {}: {}", address.to_string(), a.error().message());
  }
  spdlog::info("cluster: took {} over on {} (its node died; clients without the switch sync there)",
               address.to_string(), interface);
}

void ClusterMember::send_read(const cluster::StoreRead& read) {
  etcd_ops_++;
  post_work([this, read](platform::EtcdClient& c) {
    // Until it works: a failover cannot go on without the dead node's records.
    for (;;) {
      auto list = c.range(read.prefix);
      if (list) {
        std::vector<cluster::StoreEvent> records;
        records.reserve(list->kvs.size());
        for (auto& kv : list->kvs) records.push_back({kv.key, as_bytes(kv.value), kv.mod_revision});
        asio::post(io_, [this, tag = read.tag, records = std::move(records)] {
          if (stopped()) return;
          node_.on_read_result(tag, records, now());
          flush_();
        });
        return;
      }
      asio::post(io_, [this, e = list.error()] {
        if (stopped()) return;
        etcd_errors_++;
        set_reachable(false, e.to_string());
      });
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, kRetryPause, [&] { return stopping_; })) return;
    }
  }, 0);
}

bool ClusterMember::pause_unless_stopping() {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, kRetryPause, [&] { return stopping_; });
}

void ClusterMember::send_batch(std::vector<cluster::StoreWrite> batch) {
  etcd_ops_++;
  post_work([this, batch = std::move(batch)](platform::EtcdClient& c) {
    // One transaction for all when every compare holds (the usual case: each key is ours
    // and at the revision we know); else each on its own, so that one key another node
    // changed does not hold the others back.
    std::vector<cluster::StoreWriteResult> results;
    std::optional<etcd::Error> last;
    std::vector<etcd::Compare> cmp;
    std::vector<etcd::Op> ops;
    for (const auto& w : batch) {
      cmp.push_back(etcd::Compare::mod_revision(w.key, etcd::Compare::Result::kEqual, w.expect));
      ops.push_back(w.put ? etcd::Op::put_kv(w.key, as_string(*w.put)) : etcd::Op::del_key(w.key));
    }
    // An answer lost after the request went out (a member dying mid-answer): the
    // writes may have applied, and the node must learn their revisions, or its next
    // write of such a key (a move's, at once) compares against a stale one and fails
    // as if another node had written it. What etcd holds tells, as for single writes.
    auto settle = [&](const cluster::StoreWrite& w, const etcd::Error& e) {
      cluster::StoreWriteResult result{w.tag, false, 0};
      if (not_sent(e)) return result;
      std::optional<Fate> f;
      while (!(f = fate_of(c, w)) && pause_unless_stopping()) {
      }
      if (f && f->kind == Fate::Kind::kApplied) result = {w.tag, true, f->revision};
      return result;
    };
    auto r = c.txn(cmp, ops);
    if (r && r->succeeded) {
      for (const auto& w : batch) results.push_back(cluster::StoreWriteResult{w.tag, true, r->revision()});
    } else if (r) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        auto one = c.txn(std::span(&cmp[i], 1), std::span(&ops[i], 1));
        if (!one) {
          last = one.error();
          results.push_back(settle(batch[i], *last));
          continue;
        }
        results.push_back(cluster::StoreWriteResult{batch[i].tag, one->succeeded, one->revision()});
      }
    } else {
      last = r.error();
      for (const auto& w : batch) results.push_back(settle(w, *last));
    }
    asio::post(io_, [this, results = std::move(results), last] {
      if (stopped()) return;
      if (last) {
        etcd_errors_++;
        set_reachable(false, last->to_string());
      }
      for (const auto& result : results) node_.on_write_result(result, now());
      flush_();
    });
  }, kCheckpointWorker);
}

void ClusterMember::send_writes() {
  std::vector<cluster::StoreWrite> batch;
  for (auto& w : node_.take_writes()) {
    if (w.batch) {
      batch.push_back(std::move(w));
      // etcd allows 128 operations per transaction by default (--max-txn-ops).
      if (batch.size() == kBatch) send_batch(std::exchange(batch, {}));
      continue;
    }
    etcd_ops_++;
    // A write per SA and node: one thread and connection each would make etcd's round
    // trips the pace of a drain; by key, so that the writes of one SA stay in order.
    const std::size_t writer = 1 + std::hash<std::string>{}(w.key) % kWriters;
    post_work([this, w = std::move(w), deadline = now() + config_.move_timeout](platform::EtcdClient& c) {
      cluster::StoreWriteResult result{w.tag, false, 0};
      std::optional<etcd::Error> last;
      auto pause = [this] { return pause_unless_stopping(); };
      // An earlier attempt went out and its fate was read as "not applied". A proposal
      // still on its way to the leader (forwarded by a member that then went away) can
      // commit after that read, and the attempt sent again then finds our own change.
      bool earlier_may_apply = false;
      for (;;) {
        std::vector<etcd::Compare> cmp = {etcd::Compare::mod_revision(w.key, etcd::Compare::Result::kEqual, w.expect)};
        std::vector<etcd::Op> ops = {w.put ? etcd::Op::put_kv(w.key, as_string(*w.put)) : etcd::Op::del_key(w.key)};
        auto r = c.txn(cmp, ops);
        if (r) {
          result.succeeded = r->succeeded;
          result.revision = r->revision();
          if (!r->succeeded && earlier_may_apply) {
            std::optional<Fate> f;
            while (!(f = fate_of(c, w)) && pause()) {
            }
            if (f && f->kind == Fate::Kind::kApplied) result = {w.tag, true, f->revision};
          }
          break;
        }
        last = r.error();
        if (not_sent(*last)) {
          if (ike::Clock::now() < deadline && pause()) continue;
        } else {
          earlier_may_apply = true;
          // The request may have reached etcd (a timeout, a member going away mid-answer):
          // only what etcd holds now tells whether it applied. Until some member answers,
          // the SA stays as it is (an exported SA sends nothing), never resumed on a guess.
          std::optional<Fate> f;
          while (!(f = fate_of(c, w)) && pause()) {
          }
          if (f && f->kind == Fate::Kind::kUnchanged && ike::Clock::now() < deadline) continue;
          if (f && f->kind == Fate::Kind::kApplied) {
            result.succeeded = true;
            result.revision = f->revision;
          }
        }
        break;
      }
      asio::post(io_, [this, result, last] {
        if (stopped()) return;
        if (last && !result.succeeded) {
          etcd_errors_++;
          set_reachable(false, last->to_string());
        }
        node_.on_write_result(result, now());
        flush_();
      });
    }, writer);
  }
  if (!batch.empty()) send_batch(std::move(batch));
}

void ClusterMember::arm_node_timer() {
  auto next = node_.next_timeout();
  if (!next) {
    node_timer_at_ = ike::TimePoint::max();
    node_timer_.cancel();
    return;
  }
  if (*next == node_timer_at_) return;
  node_timer_at_ = *next;
  node_timer_.expires_at(*next);
  node_timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped()) return;
    node_timer_at_ = ike::TimePoint::max();
    node_.on_timeout(now());
    flush_();
  });
}

// --------------------------------------------------------------------------- commands

std::optional<std::string> ClusterMember::cannot_move() const {
  if (!joined_ || !reachable_)
    return "etcd is unreachable (" + etcd_error_ + "): no move starts until it is back";
  return std::nullopt;
}

std::vector<std::string> ClusterMember::targets() const {
  std::vector<std::string> out;
  for (const auto& [name, m] : members_)
    if (m.state == "active") out.push_back(name);
  return out;
}

std::uint64_t ClusterMember::own_sa_count() const {
  std::uint64_t n = 0;
  engine_.for_each_ike_sa([&](const ike::IkeSa& sa) {
    if (sa.state == ike::IkeState::kEstablished && sa.handoff == ike::Handoff::kNone) ++n;
  });
  return n;
}

void ClusterMember::move(const control::ClusterMoveRequest& r, ControlServer::Reply reply,
                         ControlServer::Progress progress) {
  if (job_) return reply(control::error_response("a cluster command is running (" + job_->what + "); try again when it ends"));
  if (auto why = cannot_move()) return reply(control::error_response(*why));
  auto m = members_.find(r.to);
  if (m == members_.end()) {
    std::string known;
    for (const auto& [name, _] : members_) known += (known.empty() ? "" : ", ") + name;
    return reply(control::error_response("no node '" + r.to + "' in the cluster (other nodes: " +
                                         (known.empty() ? "none" : known) + ")"));
  }
  if (m->second.state != "active")
    return reply(control::error_response("node '" + r.to + "' is " + m->second.state + ", it takes no SAs"));
  if (auto started = node_.move(r.sa, r.to, now()); !started) return reply(control::error_response(started.error()));
  Job j;
  j.what = "move of #" + std::to_string(r.sa);
  j.reply = std::move(reply);
  j.started = now();
  j.in_flight = 1;
  attach_progress(j, std::move(progress));
  moving_[r.sa] = r.to;
  job_ = std::move(j);
  job_changed();
  flush_();
}

void ClusterMember::drain(const control::ClusterDrainRequest& r, ControlServer::Reply reply,
                          ControlServer::Progress progress) {
  if (r.node && *r.node != config_.node) {
    if (!members_.count(*r.node)) return reply(control::error_response("no node '" + *r.node + "' in the cluster"));
    if (auto why = cannot_move()) return reply(control::error_response(*why));
    post_work([this, key = config_.prefix + "requests/" + *r.node,
               value = json{{"drain", true}, {"by", config_.node}}.dump(), node = *r.node,
               reply = std::move(reply)](platform::EtcdClient& c) {
      auto p = c.put(key, value);
      asio::post(io_, [p, node, reply] {
        if (p)
          reply(control::ok_response({{"requested", node},
                                      {"detail", "node " + node + " drains itself; `cluster status` shows it"}}));
        else
          reply(control::error_response("cannot reach etcd: " + p.error().to_string()));
      });
    });
    return;
  }
  if (job_) return reply(control::error_response("a cluster command is running (" + job_->what + "); try again when it ends"));
  if (auto why = cannot_move()) return reply(control::error_response(*why));
  if (targets().empty()) return reply(control::error_response("no other active node to drain to"));
  Job j;
  j.what = "drain";
  j.reply = std::move(reply);
  attach_progress(j, std::move(progress));
  plan_drain(j);
  start_job(std::move(j));
}

void ClusterMember::rebalance(ControlServer::Reply reply, ControlServer::Progress progress) {
  if (job_) return reply(control::error_response("a cluster command is running (" + job_->what + "); try again when it ends"));
  if (auto why = cannot_move()) return reply(control::error_response(*why));
  Job j;
  j.what = "rebalance";
  j.reply = std::move(reply);
  attach_progress(j, std::move(progress));
  plan_rebalance(j, false);
  start_job(std::move(j));
}

void ClusterMember::plan_drain(Job& job) {
  // Fewest SAs first, counting what this drain sends each node.
  std::map<std::string, std::uint64_t> load;
  for (const auto& t : targets()) load[t] = members_.at(t).sas;
  state_ = "draining";
  job.finally_state = "drained";
  engine_.for_each_ike_sa([&](const ike::IkeSa& sa) {
    if (sa.state != ike::IkeState::kEstablished || sa.handoff != ike::Handoff::kNone || moving_.count(sa.id)) return;
    auto view = mobility::view(sa);
    if (!view || !view->peer_switch) {
      job.not_asked++;
      job.sas.push_back({{"sa", sa.id}, {"to", ""}, {"result", "not_asked"},
                         {"detail", "the client did not announce SWITCH_TO_IP_ADDRESS support: it stays here"}});
      return;
    }
    if (load.empty()) return;
    auto best = std::min_element(load.begin(), load.end(), [](auto& a, auto& b) { return a.second < b.second; });
    job.queue.emplace_back(sa.id, best->first);
    best->second++;
  });
}

void ClusterMember::plan_rebalance(Job& job, bool automatic) {
  std::map<std::string, std::uint64_t> load;
  for (const auto& t : targets()) load[t] = members_.at(t).sas;
  if (load.empty()) return;
  const std::uint64_t own = own_sa_count();
  std::uint64_t total = own;
  for (const auto& [_, n] : load) total += n;
  const std::uint64_t nodes = load.size() + 1;
  const std::uint64_t fair = (total + nodes - 1) / nodes;  // the most any node should hold
  if (own <= fair) return;
  if (automatic) {
    std::uint64_t least = UINT64_MAX;
    for (const auto& [_, n] : load) least = std::min(least, n);
    if (own - least <= config_.rebalance_tolerance) return;
  }
  std::uint64_t excess = own - fair;
  engine_.for_each_ike_sa([&](const ike::IkeSa& sa) {
    if (!excess || sa.state != ike::IkeState::kEstablished || sa.handoff != ike::Handoff::kNone ||
        moving_.count(sa.id))
      return;
    auto view = mobility::view(sa);
    if (!view || !view->peer_switch) return;  // cannot follow: not counted as movable
    auto best = std::min_element(load.begin(), load.end(), [](auto& a, auto& b) { return a.second < b.second; });
    if (best->second + 1 > fair) return;
    job.queue.emplace_back(sa.id, best->first);
    best->second++;
    excess--;
  });
}

void ClusterMember::start_job(Job job) {
  job.started = now();
  job_ = std::move(job);
  if (job_->queue.empty() && job_->in_flight == 0) {
    finish_job();
    return;
  }
  publish_self();
  drive_job();
}

void ClusterMember::drive_job() {
  if (!job_) return;
  const auto t = now();
  bool started = false;
  while (job_->in_flight < kParallelMoves && job_->next < job_->queue.size()) {
    if (cannot_move() && t - unreachable_since_ < config_.move_timeout) {
      // etcd away for a moment (a member lost, the watch moving to another): the rest
      // waits for it rather than failing.
      drive_timer_.expires_after(kRetryPause);
      drive_timer_.async_wait([this](const std::error_code& ec) {
        if (!ec && !stopped()) drive_job();
      });
      break;
    }
    auto [id, to] = job_->queue[job_->next++];
    if (auto why = cannot_move()) {
      job_->failed++;
      job_->sas.push_back({{"sa", id}, {"to", to}, {"result", "failed"}, {"detail", *why}});
      continue;
    }
    if (auto r = node_.move(id, to, t); !r) {
      job_->failed++;
      job_->sas.push_back({{"sa", id}, {"to", to}, {"result", "failed"}, {"detail", r.error()}});
      continue;
    }
    moving_[id] = to;
    job_->in_flight++;
    started = true;
  }
  if (job_->in_flight == 0 && job_->next >= job_->queue.size()) {
    finish_job();
    return;
  }
  job_changed();
  // An answer for the operator even if a move never ends (its target hangs): what is
  // still under way is reported as pending.
  job_timer_.expires_after(config_.move_timeout);
  job_timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped() || !job_ || !job_->reply) return;
    json r = {{"moved", job_->moved}, {"returned", job_->returned}, {"failed", job_->failed},
              {"not_asked", job_->not_asked}, {"pending", job_->in_flight + job_->queue.size() - job_->next},
              {"seconds", std::chrono::duration<double>(now() - job_->started).count()}, {"sas", job_->sas}};
    auto reply = std::move(job_->reply);
    job_->reply = nullptr;
    if (job_->progress) job_->progress->finish();
    job_->progress.reset();
    reply(control::ok_response(r));
  });
  if (started) flush_();
}

void ClusterMember::record_outcome(const cluster::MoveOutcome& o) {
  moving_.erase(o.ike_sa_id);
  using R = cluster::MoveOutcome::Result;
  spdlog::log(o.result == R::kMoved ? spdlog::level::info : spdlog::level::warn, "cluster: IKE SA {} -> {}: {}: {}",
              o.ike_sa_id, o.to, cluster::to_string(o.result), o.detail);
  if (o.result == R::kReturned && on_returned) on_returned(o.ike_sa_id);
  if (!job_) return;
  (o.result == R::kMoved ? job_->moved : o.result == R::kReturned ? job_->returned : job_->failed)++;
  job_->sas.push_back({{"sa", o.ike_sa_id}, {"to", o.to}, {"result", cluster::to_string(o.result)}, {"detail", o.detail}});
  if (job_->in_flight) job_->in_flight--;
  job_changed();
  asio::post(io_, [this] {
    if (!stopped()) drive_job();
  });
}

control::Progress ClusterMember::job_progress() const {
  control::Progress p;
  if (!job_) return p;
  p.done = job_->moved + job_->returned + job_->failed + job_->not_asked;
  p.failed = job_->returned + job_->failed;
  p.in_flight = job_->in_flight;
  p.remaining = job_->in_flight + (job_->queue.size() - std::min(job_->next, job_->queue.size()));
  p.seconds = std::chrono::duration<double>(now() - job_->started).count();
  return p;
}

void ClusterMember::job_changed() {
  if (job_ && job_->progress) job_->progress->changed();
}

void ClusterMember::attach_progress(Job& job, ControlServer::Progress progress) {
  if (!progress) return;
  job.progress = std::make_unique<ProgressReporter>(io_, std::move(progress), [this] { return job_progress(); });
}

void ClusterMember::finish_job() {
  job_timer_.cancel();
  drive_timer_.cancel();
  rebalance_quiet_until_ = now() + 3 * std::max<std::chrono::milliseconds>(std::chrono::milliseconds(1000),
                                                                            config_.lease_ttl / 3);
  if (job_->progress) job_->progress->finish();
  Job job = std::move(*job_);
  job_.reset();
  job.progress.reset();
  if (!job.finally_state.empty()) state_ = job.finally_state;
  publish_self();
  const double secs = std::chrono::duration<double>(now() - job.started).count();
  spdlog::info("cluster: {} done in {:.3f} s: {} moved, {} returned, {} failed, {} not asked", job.what, secs,
               job.moved, job.returned, job.failed, job.not_asked);
  if (job.reply)
    job.reply(control::ok_response({{"moved", job.moved}, {"returned", job.returned}, {"failed", job.failed},
                                    {"not_asked", job.not_asked}, {"seconds", secs}, {"sas", job.sas}}));
  if (!waiting_jobs_.empty()) {
    Job next = std::move(waiting_jobs_.front());
    waiting_jobs_.pop_front();
    start_job(std::move(next));
  }
}

json ClusterMember::status() const {
  json nodes = json::array();
  json self_addrs = json::array();
  for (const auto& a : config_.addresses) self_addrs.push_back(a.to_string());
  nodes.push_back({{"name", config_.node}, {"state", state_}, {"sas", own_sa_count()}, {"addresses", self_addrs},
                   {"self", true}});
  for (const auto& [name, m] : members_)
    nodes.push_back({{"name", name}, {"state", m.state}, {"sas", m.sas}, {"addresses", m.addresses}});
  json moving = json::array();
  for (const auto& [id, to] : moving_) moving.push_back({{"sa", id}, {"to", to}});
  const auto& s = node_.stats();
  json etcd_view = {{"reachable", reachable_ && joined_}, {"endpoint", endpoint_}, {"endpoints", config_.etcd}};
  if (!(reachable_ && joined_)) {
    etcd_view["error"] = etcd_error_;
    etcd_view["unreachable_seconds"] =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(now() - unreachable_since_).count());
  }
  return {{"node", config_.node},
          {"state", state_},
          {"sas", own_sa_count()},
          {"addresses", self_addrs},
          {"etcd", etcd_view},
          {"nodes", nodes},
          {"moving", moving},
          {"job", job_ ? json(job_->what) : json(nullptr)},
          {"counters",
           {{"moves_out", s.moves_out},
            {"moves_in", s.moves_in},
            {"returned", s.returned},
            {"failed", s.failed},
            {"taken_back", s.taken_back},
            {"withdrawn", s.withdrawn},
            {"blobs_refused", s.blobs_refused},
            {"records_refused", s.records_refused},
            {"etcd_writes", etcd_ops_},
            {"etcd_errors", etcd_errors_},
            {"watch_events", watch_events_},
            {"rejoins", rejoins_}}},
          {"failover", failover_view()}};
}

json ClusterMember::failover_view() const {
  const auto& s = node_.stats();
  json lost = json::object();
  for (const auto& [why, n] : s.lost_by_reason) lost[why] = n;
  return {{"enabled", config_.failover},
          {"checkpoint_interval_ms", config_.checkpoint_interval.count()},
          {"checkpoints", s.checkpoints},
          {"checkpoint_deletes", s.checkpoint_deletes},
          {"failovers", s.failovers},
          {"claimed", s.claimed},
          {"claimed_combined", s.claimed_combined},
          {"claimed_plain", s.claimed_plain},
          {"claims_lost", s.claims_lost},
          {"lost", s.lost},
          {"lost_by_reason", lost},
          {"fenced", s.fenced},
          {"addresses_taken_over", taken_over_}};
}

void ClusterMember::annotate(json& list) const {
  if (!list.is_array()) return;
  for (auto& sa : list) {
    sa["owner"] = config_.node;
    auto id = sa.value("id", std::uint64_t{0});
    if (auto it = moving_.find(id); it != moving_.end()) sa["moving_to"] = it->second;
  }
}

}  // namespace mobike::daemon
