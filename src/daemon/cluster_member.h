// mobiked as a node of a gateway cluster (docs/cluster.md): cluster::Node (the sans-IO
// move logic) wired to etcd. etcd calls block, so they run on worker threads (one for
// membership, a few for the SA records' writes) and the watch on the watch's thread; all
// hand their results to the event loop, where everything else happens. What this adds
// to the Node:
//  - membership: <prefix>nodes/<name> = {addresses, state, sas}, bound to a lease kept
//    alive every lease_ttl/3; the other nodes' records from the watch;
//  - the commands: move, drain (this node, or another one through
//    <prefix>requests/<node>), rebalance, status; automatic rebalancing past a tolerance;
//  - etcd out of reach: the node serves its SAs as before, starts no move, says so in
//    status and the log, and picks up by itself (new lease if the old one expired).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "cluster/node.h"
#include "control/protocol.h"
#include "daemon/config.h"
#include "daemon/control_server.h"
#include "daemon/progress_reporter.h"
#include "ike/engine.h"
#include "platform/etcd_client.h"

namespace mobike::daemon {

class ClusterMember {
 public:
  // `flush` runs the daemon's flush (engine output out, events back in through on_event).
  ClusterMember(asio::io_context& io, ike::Engine& engine, ClusterConfig config, cluster::DataplaneAccess dataplane,
                crypto::Random& random, std::function<void()> flush);
  ~ClusterMember();
  ClusterMember(const ClusterMember&) = delete;
  ClusterMember& operator=(const ClusterMember&) = delete;

  // Checks the endpoints and starts the worker, which joins the cluster (and keeps
  // trying while etcd cannot be reached).
  Expected<void, std::string> start();
  // Leaves: a waiting command gets what is known, the lease is revoked (briefly tried).
  void stop();

  // Every engine event, from the daemon's flush; then after_flush() once per flush.
  void on_event(const ike::Event& e);
  void after_flush();

  // `progress`: the client's interim sender when it asked for progress lines, else empty.
  void move(const control::ClusterMoveRequest& r, ControlServer::Reply reply, ControlServer::Progress progress = {});
  void drain(const control::ClusterDrainRequest& r, ControlServer::Reply reply, ControlServer::Progress progress = {});
  void rebalance(ControlServer::Reply reply, ControlServer::Progress progress = {});
  nlohmann::json status() const;
  // list-sas: the owner of each IKE SA (this node) and where it is being handed.
  void annotate(nlohmann::json& sa_list) const;
  // An IKE SA whose move came back (return traffic is announced again).
  std::function<void(std::uint64_t ike_sa_id)> on_returned;

 private:
  struct MemberInfo {
    std::vector<std::string> addresses;
    std::string state;
    std::uint64_t sas = 0;
  };
  // One running move command (move, drain, rebalance): started a few at a time,
  // answered when every move has ended.
  struct Job {
    std::string what;
    std::vector<std::pair<std::uint64_t, std::string>> queue;  // SA, target node
    std::size_t next = 0;
    std::size_t in_flight = 0;
    nlohmann::json sas = nlohmann::json::array();
    std::uint64_t moved = 0, returned = 0, failed = 0, not_asked = 0;
    ike::TimePoint started{};
    ControlServer::Reply reply;  // empty: nobody waits (automatic, or asked through etcd)
    std::unique_ptr<ProgressReporter> progress;  // the waiting client asked for progress lines
    std::string finally_state;   // the node's state once done ("" = unchanged)
  };
  using Work = std::function<void(platform::EtcdClient&)>;

  struct Worker {
    std::optional<platform::EtcdClient> client;
    std::deque<Work> work;
    std::thread thread;
  };
  // Worker 0: membership, listing, the watch, requests; 1..: SA record writes by key.
  void post_work(Work w, std::size_t worker = 0);
  void worker_loop(Worker& me);
  void join_cluster();                     // worker: lease, own record, list, watch
  void keepalive_tick();
  void on_watch_update(const platform::etcd::WatchUpdate& u);
  void on_kv(const std::string& key, const std::optional<std::string>& value, std::int64_t mod_revision);
  // The other members' addresses to the engine (announced to clients), if configured.
  void announce_members();
  void set_reachable(bool reachable, const std::string& error);
  void publish_self();
  std::string self_record() const;
  void send_writes();
  void send_batch(std::vector<cluster::StoreWrite> batch);
  // Waits kRetryPause on a worker thread; false once the member is stopping.
  bool pause_unless_stopping();
  void send_read(const cluster::StoreRead& read);
  void sync_members();                       // the live members to the Node (failover)
  void take_address(const IpAddress& address);  // a dead node's, for clients without the switch
  nlohmann::json failover_view() const;
  void arm_node_timer();
  void start_job(Job job);
  void drive_job();
  void finish_job();
  void record_outcome(const cluster::MoveOutcome& o);
  // The running job's counts (done: with an outcome, not_asked included; failed: returned
  // or failed), and the reporter, if any, told that they may have changed.
  control::Progress job_progress() const;
  void job_changed();
  void attach_progress(Job& job, ControlServer::Progress progress);
  std::optional<std::string> cannot_move() const;  // why no move may start now
  std::vector<std::string> targets() const;        // active nodes other than this one
  std::uint64_t own_sa_count() const;
  void plan_drain(Job& job);
  void plan_rebalance(Job& job, bool automatic);

  asio::io_context& io_;
  ike::Engine& engine_;
  ClusterConfig config_;
  std::function<void()> flush_;
  cluster::Node node_;
  std::map<std::string, MemberInfo> members_;  // other nodes, from etcd
  std::string state_ = "active";              // this node: active, draining, drained
  std::map<std::uint64_t, std::string> moving_;  // our IKE SAs being handed to a node

  // etcd's reachability as this node sees it.
  bool reachable_ = false;
  bool joined_ = false;
  bool joining_ = false;  // a join is with the worker
  bool stopped_ = false;
  bool stopped() const { return stopped_; }
  std::string etcd_error_ = "not contacted yet";
  ike::TimePoint unreachable_since_{};
  std::string endpoint_;
  std::int64_t lease_ = 0;
  std::uint64_t published_sas_ = UINT64_MAX;
  std::string published_state_;
  std::uint64_t etcd_ops_ = 0, etcd_errors_ = 0, watch_events_ = 0, rejoins_ = 0;
  std::vector<std::string> taken_over_;  // dead nodes' addresses this node took over

  std::optional<Job> job_;
  ike::TimePoint rebalance_quiet_until_{};
  std::deque<Job> waiting_jobs_;  // requested through etcd while a job runs

  asio::steady_timer keepalive_timer_;
  asio::steady_timer node_timer_;
  asio::steady_timer job_timer_;
  asio::steady_timer drive_timer_;
  ike::TimePoint node_timer_at_ = ike::TimePoint::max();

  // The worker threads, each with its etcd connection; the watch is started by worker 0.
  std::vector<std::unique_ptr<Worker>> workers_;
  std::optional<platform::EtcdWatch> watch_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace mobike::daemon
