// The sans-IO IKEv2 engine: datagrams, timeouts and commands in; datagrams (with
// explicit source addresses), data-plane operations and events out. It never reads a
// clock, opens a socket or sleeps.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/expected.h"
#include "crypto/random.h"
#include "ike/address_pool.h"
#include "ike/connection.h"
#include "ike/ike_sa.h"
#include "ike/mobility.h"
#include "ike/protection.h"
#include "ike/sa_snapshot.h"
#include "ike/services.h"
#include "ike/types.h"

namespace mobike::ike {

class Task;

// One line of the engine's log with what it is about as data: a sink that keeps fields
// (the daemon's journal entries) reads the IKE SA from `sa`, valid during the call only;
// line() is the text every sink shows ("[connection|id] message").
struct LogRecord {
  LogLevel level = LogLevel::kInfo;
  std::string_view message;
  const IkeSa* sa = nullptr;
  std::string line() const;
};

using LogSink = std::function<void(LogLevel, const std::string&)>;
using LogRecordSink = std::function<void(const LogRecord&)>;

class Engine final : private Services {
 public:
  Engine(EngineConfig config, crypto::Random& random, LogSink log = {});
  Engine(EngineConfig config, crypto::Random& random, LogRecordSink log);
  ~Engine() override;

  // Replaces the connection set. SAs of connections that disappear keep running on
  // their old definition until they end.
  void set_connections(std::vector<ConnectionConfig> connections);
  const std::vector<std::unique_ptr<ConnectionConfig>>& connections_list() const { return connections_; }
  // Replaces the virtual IP pools; a pool whose range stays keeps its leases.
  void set_pools(std::vector<PoolConfig> pools);
  const std::map<std::string, std::unique_ptr<AddressPool>>& pools() const { return pools_; }

  // --- inputs
  // An IKE datagram (non-ESP marker already removed) that arrived at `local` from `remote`.
  void on_datagram(const Endpoint& local, const Endpoint& remote, ByteView data, TimePoint now);
  void on_timeout(TimePoint now);
  // The kernel data plane decrypted ESP of the Child SA with our SPI `spi_in` arriving
  // from `from`, not the SA's peer endpoint (XFRM_MSG_MAPPING: a NAT mapping changed).
  // A responder whose peer is behind a NAT, without MOBIKE, follows it as it follows an
  // IKE request from there (RFC 7296 §2.23); a MOBIKE peer updates its addresses
  // itself (RFC 4555 §3.8) and an initiator keeps its path. True if the SA moved.
  bool on_esp_mapping(std::uint32_t spi_in, const Endpoint& from, TimePoint now);
  // The data plane reports that a Child SA reached a limit of its ChildLimits (or ran
  // out of sequence numbers). Soft: the Child SA is rekeyed, unless it is being rekeyed
  // or deleted already. Hard: the data plane stopped using it; it is deleted (DELETE to
  // the peer), as at the end of its lifetime. True if a rekey or delete was started.
  bool on_child_expire(std::uint64_t child_sa_id, bool hard, ExpireCause cause, TimePoint now);

  // Traffic for a child of a connection with start = "trap" (the data plane's acquire).
  // Starts what brings that Child SA about: an IKE SA from `local` (its IKE_AUTH makes
  // the connection's first child; another one follows with CREATE_CHILD_SA), or a
  // CREATE_CHILD_SA on the connection's IKE SA; nothing while one is under way.
  enum class Acquired : std::uint8_t { kInitiated, kChildRequested, kUnderWay, kUnknown };
  Acquired acquire(const std::string& connection, const std::string& child, const IpAddress& local, TimePoint now);

  // Starts an IKE SA for `connection` from `local` (the daemon chose the source address
  // by routing) to `remote`, or without one to the connection's first remote address of
  // `local`'s family (the daemon resolves DNS names and passes what they gave). Returns
  // the IKE SA id.
  Expected<std::uint64_t, std::string> initiate(const std::string& connection, const IpAddress& local, TimePoint now,
                                                std::optional<IpAddress> remote = std::nullopt);
  bool terminate_ike(std::uint64_t ike_sa_id, TimePoint now);
  std::size_t terminate_connection(const std::string& connection, TimePoint now);
  bool terminate_child(std::uint64_t child_sa_id, TimePoint now);
  bool rekey_ike(std::uint64_t ike_sa_id, TimePoint now);
  // The host's usable addresses changed (the daemon's address monitor): MOBIKE
  // announces them and resumes path probing (src/mobility).
  void set_local_addresses(std::vector<HostAddress> addresses, TimePoint now);
  const std::vector<HostAddress>& local_addresses() const override { return local_addresses_; }
  // The other cluster nodes' addresses, announced to peers from now on (IKE_AUTH and
  // later address lists); SAs that announced an older set are not told at once.
  void set_cluster_addresses(std::vector<IpAddress> addresses) { cluster_addresses_ = std::move(addresses); }
  const std::vector<IpAddress>& cluster_addresses() const override { return cluster_addresses_; }
  // Installs the address-mobility extension (src/mobility) before any SA exists.
  void set_mobility(std::unique_ptr<Mobility> mobility) { mobility_ = std::move(mobility); }
  Mobility* mobility() override { return mobility_.get(); }
  AddressPool* pool(const std::string& name) override;
  // Runs f(IkeSa&, Services&) -> bool on a live IKE SA at `now`, then re-arms its
  // timers: the way extensions act on one SA from outside. False if there is no such SA.
  template <class F>
  bool with_sa(std::uint64_t ike_sa_id, TimePoint now, F&& f) {
    now_ = now;
    IkeSa* sa = find_sa(ike_sa_id);
    if (!sa || sa->state == IkeState::kDead) return false;
    bool ok = f(*sa, static_cast<Services&>(*this));
    if (sa->state != IkeState::kDead) reschedule(*sa);
    reap();
    return ok;
  }
  // Another Child SA of the IKE SA's connection, by child config name.
  bool initiate_child(std::uint64_t ike_sa_id, const std::string& child, TimePoint now);
  bool rekey_child(std::uint64_t child_sa_id, TimePoint now);
  // Deletes every SA politely (DELETE sent, no retransmission waited for).
  void shutdown(TimePoint now);

  // --- cluster moves: an established IKE SA with its Child SAs goes to another node's
  // engine and continues there; the peer sees nothing but, at most, an address change.
  // Starts no new exchange of ours on the SA: liveness checks and rekeys wait (their
  // timers stay due) and commands are refused. Exchanges in flight finish, with what
  // they queue (a rekey's delete); the peer's requests are still answered. False if
  // there is no such established SA.
  bool quiesce(std::uint64_t ike_sa_id, TimePoint now);
  // The quiesced SA as a value another engine continues with import_sa(), once it is
  // idle: no request of ours outstanding or queued, every Child SA installed and none
  // being rekeyed, and the mobility extension idle; otherwise why not (try again after
  // the exchange in flight). From then on the SA answers and sends nothing, and each
  // Child SA gets a kSuspendOutbound operation: apply those before reading the Child
  // SAs' EspState for the snapshot (docs/cluster.md: never two senders on one key).
  // Should the peer answer the new owner's first request here and stay, the engine
  // reports it (EventKind::kHandoffAnswered).
  Expected<IkeSaSnapshot, std::string> export_sa(std::uint64_t ike_sa_id, TimePoint now);
  // The move failed: a quiesced or exported SA runs here again (its Child SAs send again).
  // `answered_elsewhere`: the new owner saw the peer answer the request sent for the
  // move, so its Message ID is used up even though no answer arrived here.
  bool resume(std::uint64_t ike_sa_id, TimePoint now, bool answered_elsewhere = false);
  // The old node asks (docs/cluster.md, planned move step 4): the exported SA sends
  // `task`'s request, with the Message ID the snapshot recorded, on behalf of the node
  // that imported it, and retransmits it as its own. Its answer is processed here (the
  // task reports it: a refusal, say); everything else stays handed over. False if the
  // SA is not exported or relays already.
  bool relay(std::uint64_t ike_sa_id, std::unique_ptr<Task> task, TimePoint now);
  // The other half, on the importing node: the SA's next Message ID is taken by the
  // request the old node sends for `task`, whose answer may arrive here (a generation-1
  // peer answers towards the new address). Nothing is ever sent for it; the task is
  // abandoned if no answer came by `until`, and dropped quietly once the peer's next
  // request arrives here (it answered at the old node). False if the SA is busy.
  bool adopt_request(std::uint64_t ike_sa_id, std::unique_ptr<Task> task, TimePoint until, TimePoint now);
  // Forgets an SA without a DELETE (its Child SAs are removed from the data plane): the
  // move succeeded and another node runs it, or it came here and goes back. resume()
  // of an exported SA whose peer answered the other node's request here (see
  // IkeSa::handoff_answered) skips that Message ID.
  bool release(std::uint64_t ike_sa_id, TimePoint now);
  // Continues an SA another engine exported: every Child SA needs its EspState. Returns
  // the SA's id here. The IKE SA runs at once (it must make the peer follow), but its
  // Child SAs are installed receive-only until confirm_import(): the old node may
  // still take the SA back and send from the same sequence numbers.
  Expected<std::uint64_t, std::string> import_sa(const IkeSaSnapshot& snapshot, TimePoint now);
  // --- cluster failover (docs/cluster.md "Failover", RFC 6311): another node died.
  // An established SA as a checkpoint (export_sa's value without the handoff: the SA
  // runs on; the daemon adds the data plane's EspState), or why not now.
  Expected<IkeSaSnapshot, std::string> checkpoint(std::uint64_t ike_sa_id, TimePoint now) const;
  // Continues an SA of a node that died, from its last checkpoint, which may be stale:
  // the SA's Message IDs jump by kMidSyncMargin, its outbound ESP sequence numbers by
  // seq_jump(), and `sync` (a MidSyncTask; mobility adds the switch to it) goes out at
  // once with Message ID 0 — from the snapshot's local address, which was the dead
  // node's. Refused for a peer without RFC 6311 Message ID sync: its SA cannot go on.
  Expected<std::uint64_t, std::string> take_over(const IkeSaSnapshot& snapshot, std::unique_ptr<Task> sync,
                                                 TimePoint now);

  // The imported SA is ours for good (the cluster store says so): its Child SAs send.
  // False if there is no such SA or nothing of it was held back.
  bool confirm_import(std::uint64_t ike_sa_id, TimePoint now);

  // --- outputs
  std::optional<TimePoint> next_timeout();
  std::vector<OutDatagram> take_datagrams() { return std::exchange(out_datagrams_, {}); }
  std::vector<DataplaneOp> take_dataplane_ops() { return std::exchange(out_dataplane_, {}); }
  std::vector<Event> take_events() { return std::exchange(out_events_, {}); }

  // --- views
  const Stats& counters() const { return stats_; }
  std::size_t ike_sa_count() const { return by_spi_.size(); }
  std::size_t half_open_count() const { return half_open_; }
  const IkeSa* find_ike_sa(std::uint64_t id) const;
  template <class F>
  void for_each_ike_sa(F&& f) const {
    for (const auto& [id, sa] : by_id_) f(*sa);
  }

 private:
  // Services
  crypto::Random& random() override { return random_; }
  const EngineConfig& config() const override { return config_; }
  TimePoint now() const override { return now_; }
  Stats& stats() override { return stats_; }
  std::uint64_t next_child_id() override { return ++last_child_id_; }
  void event(EventKind kind, const IkeSa& sa, std::uint64_t child_id, std::string detail) override;
  void dataplane(DataplaneOp op) override { out_dataplane_.push_back(std::move(op)); }
  void log(LogLevel level, const IkeSa* sa, std::string message) override;
  std::vector<const ConnectionConfig*> connections() const override;
  void queue(IkeSa& sa, std::unique_ptr<Task> task) override;
  IkeSa& spawn_rekeyed(IkeSa& old, bool initiator, std::uint64_t spi_i, std::uint64_t spi_r) override;
  std::uint64_t fresh_ike_spi() override;
  IkeSa* find_sa(std::uint64_t id) override;
  void retire(IkeSa& sa, const std::string& why) override { kill(sa, false, why); }
  void arm_lifetimes(IkeSa& sa);

  IkeSa& create_sa(bool initiator, std::uint64_t spi_i, std::uint64_t spi_r);
  IkeSa* find_by_spi(std::uint64_t spi);
  const ConnectionConfig* connection_for(const Endpoint& local, const Endpoint& remote) const;
  void handle_init_request(const Endpoint& local, const Endpoint& remote, const wire::Message& m,
                           ByteView data);
  void handle_request(IkeSa& sa, const Endpoint& local, const Endpoint& remote,
                      const wire::Message& m, ByteView data);
  void handle_response(IkeSa& sa, const Endpoint& local, const Endpoint& remote, const wire::Message& m,
                       ByteView data);
  bool cookie_required(const wire::Message& m, const Endpoint& remote);
  Bytes cookie_for(const wire::Message& m, const Endpoint& remote) const;

  void queue_task(IkeSa& sa, std::unique_ptr<Task> task);
  void start_next(IkeSa& sa);
  void send_request(IkeSa& sa, std::unique_ptr<Task> task, const std::vector<wire::Payload>& payloads);
  void send_active(IkeSa& sa);
  bool retransmit_due(IkeSa& sa);
  void drop_adopted(IkeSa& sa, bool answered_elsewhere);
  void send(const IkeSa& sa, const Endpoint& local, const Endpoint& remote, Bytes data);
  void send_all(const IkeSa& sa, const Endpoint& local, const Endpoint& remote, const std::vector<Bytes>& datagrams);
  // A message of `sa` as its datagrams: RFC 7383 fragments if both sides announced
  // fragmentation and it exceeds EngineConfig::fragment_size on the SA's path.
  std::vector<Bytes> build(const IkeSa& sa, wire::ExchangeType exchange, bool response, std::uint32_t mid,
                           const std::vector<wire::Payload>& payloads);
  // The response to the peer's request `mid` as its datagrams, kept in sa.last_response.
  std::vector<Bytes> keep_response(IkeSa& sa, wire::ExchangeType exchange, std::uint32_t mid,
                                   const std::vector<wire::Payload>& payloads);
  std::size_t fragment_limit(const IkeSa& sa) const;
  void log_fragments(const IkeSa& sa, wire::ExchangeType exchange, bool response, std::uint32_t mid,
                     const std::vector<Bytes>& datagrams, std::size_t limit);
  static const wire::SkfPayload* fragment_of(const wire::Message& m);
  // Files one SKF message in `r` (counted); the whole message's inner payloads once the
  // last fragment is in, else OpenError::kIncomplete (or kIntegrity: not authentic).
  Expected<std::vector<wire::Payload>, OpenFailure> take_fragment(IkeSa& sa, std::unique_ptr<Reassembly>& r,
                                                                  const wire::Message& m, ByteView data);
  void send_on(const IkeSa& sa, const Endpoint& local, const Endpoint& remote, Bytes data) override {
    send(sa, local, remote, std::move(data));
  }
  void service_timers(IkeSa& sa);
  void handed_over(IkeSa& sa, const wire::Message& m, ByteView data);
  // The peer side of RFC 6311: true if the Message-ID-0 INFORMATIONAL request was a
  // synchronisation request (answered or dropped); false: an ordinary request.
  bool handle_mid_sync(IkeSa& sa, const Endpoint& local, const Endpoint& remote, const wire::Message& m,
                       ByteView data);
  IkeSaSnapshot snapshot_of(const IkeSa& sa, TimePoint now) const;
  Expected<IkeSa*, std::string> continue_sa(const IkeSaSnapshot& s, bool hold_outbound, TimePoint now);
  // `unanswered`: Event::unanswered of the kIkeFailed event.
  void kill(IkeSa& sa, bool failed, const std::string& why, bool unanswered = false);
  void reschedule(IkeSa& sa);
  void reap();

  EngineConfig config_;
  crypto::Random& random_;
  LogRecordSink log_;
  TimePoint now_{};
  Stats stats_;

  std::vector<std::unique_ptr<ConnectionConfig>> connections_;
  std::vector<std::unique_ptr<ConnectionConfig>> retired_connections_;

  std::unordered_map<std::uint64_t, std::unique_ptr<IkeSa>> by_spi_;  // our SPI
  std::map<std::uint64_t, IkeSa*> by_id_;
  // Responder: the initiator's SPI and address of half-open SAs, so that a retransmitted
  // IKE_SA_INIT finds the SA it already created.
  std::map<std::pair<std::uint64_t, Endpoint>, std::uint64_t> init_index_;
  std::size_t half_open_ = 0;
  std::uint64_t last_ike_id_ = 0;
  std::uint64_t last_child_id_ = 0;
  Bytes cookie_secret_;
  std::unique_ptr<Mobility> mobility_;
  std::map<std::string, std::unique_ptr<AddressPool>> pools_;
  IkeSa* responding_ = nullptr;  // handle_request() is building this SA's response
  std::vector<HostAddress> local_addresses_;
  std::vector<IpAddress> cluster_addresses_;

  struct Wakeup {
    TimePoint at;
    std::uint64_t spi;
    bool operator>(const Wakeup& o) const { return at > o.at; }
  };
  std::priority_queue<Wakeup, std::vector<Wakeup>, std::greater<Wakeup>> timers_;
  std::vector<std::uint64_t> dead_;  // our SPIs of SAs to reap

  std::vector<OutDatagram> out_datagrams_;
  std::vector<DataplaneOp> out_dataplane_;
  std::vector<Event> out_events_;
};

}  // namespace mobike::ike
