// One gateway node's part in moving live IKE SAs between nodes (docs/cluster.md), as a
// sans-IO state machine: store events, store write results, engine events and time in;
// store writes, engine commands (on the engine it is given) and move outcomes out. The
// store is etcd in the daemon and a fake in the tests; the node only needs
// compare-and-put on one key and a watch of the cluster's prefix.
//
// A planned move of SA S from node A to node B:
//  1. A quiesces S and exports it once idle, stops its Child SAs sending, seals the
//     snapshot and writes sas/<S> = {moving, owner B, from A, blob}, if the key is still
//     at the revision A last saw (one owner at a time).
//  2. B sees the record, opens and imports it, and asks the client to switch to B's
//     address, sending from A's (the client's NAT knows that one). With
//     SwitchSender::kOldNode, B instead expects the answer to a request it does not
//     send and writes {ready, owner B, to: B's address}; A, seeing it, sends that
//     request from its own address (Engine::relay): the network need not let B send
//     with A's address. A refusal or no answer reaches A, which takes S back (4.).
//  3. Switched: B writes {owned, owner B}, and once that write has won its Child SAs
//     send; A, seeing the record, releases S without a DELETE. Not switched (refused, no
//     answer, S failed on B) or not importable: B forgets S silently and writes
//     {returned, owner A, why}; A resumes S. Until the switch B sent nothing but its
//     switch request, so A's copy is S as the client knows it (if the client answered
//     that request, A saw the answer and skips its ID).
//  4. The client answers B's request at A's address and stays there (a refusal), or B
//     leaves the cluster: A does not wait for B but takes S back itself — it writes
//     {returned, owner A} resp. {owned, owner A} on the revision of its {moving} record
//     and resumes S once that write has won; B, seeing the record, drops its copy.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/sa_blob.h"
#include "cluster/switch_sender.h"
#include "common/expected.h"
#include "crypto/random.h"
#include "ike/engine.h"

namespace mobike::cluster {

using ike::TimePoint;

// A compare-and-put (or delete) on one key: applied only if the key's modification
// revision is still `expect` (0: the key must not exist).
struct StoreWrite {
  std::uint64_t tag = 0;  // echoed in the result
  std::string key;
  std::int64_t expect = 0;
  std::optional<Bytes> put;  // nullopt: delete
  // A checkpoint (failover): may go out in one transaction with others (each keeps its
  // compare; a batch whose compares do not all hold is retried key by key).
  bool batch = false;
};
struct StoreWriteResult {
  std::uint64_t tag = 0;
  bool succeeded = false;
  std::int64_t revision = 0;  // the key's modification revision after a successful put
};
// A change under the cluster's prefix, as a watch reports it.
struct StoreEvent {
  std::string key;
  std::optional<Bytes> value;  // nullopt: deleted
  std::int64_t mod_revision = 0;
};

// A read of every key under `prefix` (failover: a dead node's checkpoints are read from
// the store when it dies, not mirrored on every node); answered with on_read_result().
struct StoreRead {
  std::uint64_t tag = 0;
  std::string prefix;
};

// The value of sas/<spi_i>-<spi_r>.
struct SaRecord {
  // kReady: the importer waits for the answer to the switch request the node the SA
  // came from is to send (SwitchSender::kOldNode).
  enum class Phase : std::uint8_t { kMoving = 1, kOwned = 2, kReturned = 3, kReady = 4 };
  Phase phase = Phase::kOwned;
  std::string owner;  // the node that runs the SA (the importer while moving)
  std::string from;   // moving / returned / ready: the node it came from
  Bytes blob;          // moving: the sealed snapshot
  std::string detail;  // returned: why
  bool old_node_sends = false;  // moving: the node it came from sends the switch request
  bool answered = false;        // returned: the client answered the switch request at the importer
  std::optional<IpAddress> switch_to;  // ready: the importer's address, for the request
  friend bool operator==(const SaRecord&, const SaRecord&) = default;
};
Bytes encode_record(const SaRecord& r);
Expected<SaRecord, std::string> decode_record(ByteView in);

struct NodeConfig {
  std::string name;
  SwitchSender switch_sender = SwitchSender::kNewNode;
  // kOldNode, on the importer: how long to wait for the client's answer to the old
  // node's request before giving the SA back.
  ike::Duration relay_patience{30000};
  std::string prefix = "/mobiked/";  // keys are <prefix>sas/...
  ClusterKey key{};
  std::vector<IpAddress> addresses;  // this node's own public addresses (switch targets)
  ike::Duration export_patience{5000};  // how long a move waits for the SA to go idle
  // Failover (docs/cluster.md "Failover"): how often the SAs we run are checkpointed
  // into their records if they changed (0: no checkpoints, no failover). Established,
  // rekeyed, moved and synchronised SAs are checkpointed at once.
  ike::Duration checkpoint_interval{0};
  // Message IDs an SA may use between checkpoints without one (the failover's jump,
  // ike::kMidSyncMargin, covers many more); ESP counters: any inbound change (the
  // replay window) and outbound runs of this many packets.
  std::uint32_t checkpoint_mid_drift = 64;
  std::uint64_t checkpoint_seq_drift = std::uint64_t{1} << 24;
};

// What the node needs of the data plane behind its engine.
struct DataplaneAccess {
  // Applies the engine's pending data-plane operations now (the kSuspendOutbound of an
  // export must be in force before the sequence numbers are read).
  std::function<void()> apply_pending;
  std::function<std::optional<ike::EspState>(std::uint64_t child_sa_id)> esp_state;
};

struct MoveOutcome {
  enum class Result : std::uint8_t { kMoved, kReturned, kFailed };
  std::uint64_t ike_sa_id = 0;  // on the node that started the move
  std::string to;
  Result result = Result::kFailed;
  std::string detail;
};
const char* to_string(MoveOutcome::Result r);

struct NodeStats {
  std::uint64_t moves_out = 0, moves_in = 0, returned = 0, failed = 0;
  std::uint64_t taken_back = 0;  // moves this node ended itself: the client stayed, or the new node left
  std::uint64_t withdrawn = 0;   // imports dropped because the node the SA came from took it back
  std::uint64_t blobs_refused = 0;   // did not open: altered, other key, unknown format
  std::uint64_t records_refused = 0; // malformed records under sas/
  // Failover: checkpoints written (and records deleted with their SA), nodes whose SAs
  // were shared out, SAs this node claimed and continues (with the combined switch or
  // the plain synchronisation from a taken-over address), SAs lost (by reason), and SAs
  // dropped here because another node claimed them (we were taken for dead).
  std::uint64_t checkpoints = 0, checkpoint_deletes = 0;
  std::uint64_t failovers = 0, claimed = 0, claimed_combined = 0, claimed_plain = 0, claims_lost = 0;
  std::uint64_t lost = 0;
  std::map<std::string, std::uint64_t> lost_by_reason;
  std::uint64_t fenced = 0;
};

class Node {
 public:
  Node(NodeConfig config, ike::Engine& engine, DataplaneAccess dataplane, crypto::Random& random,
       ike::LogSink log = {});

  // Moves our IKE SA `ike_sa_id` to node `to`. The outcome arrives in take_outcomes().
  Expected<void, std::string> move(std::uint64_t ike_sa_id, const std::string& to, TimePoint now);

  void on_store_event(const StoreEvent& e, TimePoint now);
  void on_write_result(const StoreWriteResult& r, TimePoint now);
  void on_engine_event(const ike::Event& e, TimePoint now);
  // `node` left the cluster (the daemon saw <prefix>nodes/<node> deleted: its lease
  // expired, or it left). Moves to it end here: one not exported yet fails and the SA
  // runs on; an exported one comes back (written {owned, owner us} on the revision of
  // our {moving} record), unless the record shows that node got the SA first, which is
  // then followed. Known limitation: if the client had already followed that node
  // before it went, our copy is stale — failover (RFC 6311) covers that case.
  // Node does not know the cluster's members: the caller must not move() to a node it
  // knows is gone — nothing would import the SA, and the move would wait, the SA
  // exported, until this call.
  void on_node_gone(const std::string& node, TimePoint now);
  // The live members, this node included (failover shares a dead node's SAs out
  // between them: rendezvous hashing, the claim decided by the store).
  void set_members(std::vector<std::string> members) { members_ = std::move(members); }
  // After (re)joining and reading every record: SAs whose node is no member (it died
  // while no node watched) are shared out as on_node_gone() does, and our own records of
  // SAs this process does not run (it was restarted before its lease ran out, so no one
  // took them over) are continued here, from the same address.
  void adopt_orphans(TimePoint now);
  // The store reads the node wants (StoreRead), and their answers: every key under the
  // prefix with its value and modification revision, as the watch reports changes. A
  // read that failed is for the caller to try again.
  std::vector<StoreRead> take_reads() { return std::exchange(reads_out_, {}); }
  void on_read_result(std::uint64_t tag, const std::vector<StoreEvent>& records, TimePoint now);
  // Addresses of dead nodes this node must now receive on (the plain synchronisation's
  // answers come there: peers without the switch), each once. The SAs that need one
  // wait for address_taken(): the address added and announced, so that the peer's
  // first answer already reaches us.
  std::vector<IpAddress> take_address_takeovers() { return std::exchange(takeovers_, {}); }
  void address_taken(const IpAddress& address, TimePoint now);
  // Deletes of our checkpoints, each compared on the revision we know (the node stops and
  // deletes its SAs: no survivor may continue them).
  std::vector<StoreWrite> checkpoint_deletes() const;
  void on_timeout(TimePoint now);
  std::optional<TimePoint> next_timeout() const;

  std::vector<StoreWrite> take_writes() { return std::exchange(writes_, {}); }
  std::vector<MoveOutcome> take_outcomes() { return std::exchange(outcomes_, {}); }
  const NodeStats& stats() const { return stats_; }
  const NodeConfig& config() const { return config_; }

  static std::string sa_name(std::uint64_t spi_i, std::uint64_t spi_r);

 private:
  // An SA leaving this node: waiting to export, then waiting for the new owner.
  struct Outgoing {
    std::uint64_t ike_sa_id = 0;
    std::string to;
    std::string key;
    TimePoint export_deadline{};
    bool exported = false;
    Bytes blob;  // what we wrote: a return of exactly this resumes the SA as it is
    TimePoint retry_at = TimePoint::max();  // the next export attempt
    std::uint64_t moving_tag = 0;  // the {moving} write
    bool moving_written = false;   // ... has won: its revision is the one we compare on
    // Taking the SA back ourselves (reclaim()): the record to write, waiting for
    // moving_written, then that write in flight, and the outcome's detail (not empty:
    // we want the SA back).
    SaRecord reclaim_record;
    bool reclaim_waits = false;
    std::uint64_t reclaim_tag = 0;
    std::string reclaim_detail;
    // SwitchSender::kOldNode: the importer's {ready} seen, our request for it sent.
    bool relay = false;
    bool ready_seen = false;
    bool relayed = false;
  };
  // Failover: an SA we run and checkpoint, with what its last checkpoint held (changes
  // against it make the next one due).
  struct Held {
    std::uint64_t ike_sa_id = 0;
    bool written = false;  // a checkpoint of ours is in the store
    std::uint32_t mids = 0;  // next request + expected peer Message IDs at that checkpoint
    std::vector<std::uint32_t> spis;
    std::vector<std::uint64_t> out_seq, in_top;
    Endpoint local, remote;
  };
  // An SA arriving here: imported, its switch under way, then its {owned} write.
  struct Incoming {
    std::uint64_t ike_sa_id = 0;
    std::string from;
    std::string key;
    std::uint64_t owned_tag = 0;  // switched: the {owned} write in flight
    std::uint64_t ready_tag = 0;  // SwitchSender::kOldNode: the {ready} write
    std::uint32_t request_mid = 0;  // the Message ID of the switch request
    std::optional<Held> checkpointed;  // the checkpoint in our {owned} write (failover)
  };
  // What the node knows of a key: the store revision of the last change it saw, and
  // the key's modification revision after it (0: absent), the one writes compare on.
  struct Seen {
    std::int64_t at = 0;
    std::int64_t mod = 0;
  };

  void try_export(Outgoing& o, TimePoint now);
  void import(const std::string& key, const SaRecord& r, std::int64_t revision, TimePoint now);
  void take_back(const std::string& key, const SaRecord& r, TimePoint now);
  void reclaim(Outgoing& o, SaRecord record, std::string detail);
  void relay(Outgoing& o, const SaRecord& ready, TimePoint now);
  bool answered_here(const Incoming& in) const;
  void reclaimed(const std::string& key, TimePoint now);
  void withdraw(const std::string& key, const std::string& why, TimePoint now);
  struct ExportFailure {
    std::string why;
    bool transient = false;  // an exchange in flight: worth trying again shortly
  };
  Expected<Bytes, ExportFailure> export_sealed(std::uint64_t ike_sa_id, const std::string& key, TimePoint now);
  std::uint64_t write(const std::string& key, std::optional<Bytes> value, bool batch = false);
  void send_write(std::uint64_t tag);
  void finish(std::uint64_t ike_sa_id, const std::string& to, MoveOutcome::Result r, std::string detail);
  std::optional<IpAddress> own_address(const IpAddress& like) const;
  // Failover (node_failover.cc).
  // What a read of the records is for: the SAs of these dead nodes, and/or (adopt) our
  // own SAs of an earlier run and those of nodes that are no members.
  struct PendingRead {
    std::set<std::string> dead;
    bool adopt = false;
  };
  struct Claim {
    std::string key;
    std::string dead;
    Bytes blob;
  };
  void checkpoint_due(TimePoint now, bool all);
  void checkpoint(const std::string& key, const ike::IkeSa& sa, Held& h, TimePoint now);
  // The SA's checkpoint, sealed under `key`; `h` becomes its fingerprint. nullopt while
  // it cannot be taken (an exchange of MOBIKE under way, sequence numbers unknown).
  std::optional<Bytes> sealed_checkpoint(const std::string& key, const ike::IkeSa& sa, Held& h, TimePoint now);
  void fence(const std::string& key, const SaRecord& rec, TimePoint now);
  void request_read(PendingRead why);
  void share_out(const std::string& dead, std::vector<std::pair<std::string, Bytes>> orphans, bool self);
  void claimed(const Claim& c, bool won, TimePoint now);
  void continue_claimed(const Claim& c, TimePoint now);
  void lose(const std::string& key, const std::string& reason, const std::string& detail);
  bool ours_to_take(const std::string& item) const;
  void log(ike::LogLevel level, const std::string& message) const {
    if (log_) log_(level, "cluster: " + message);
  }

  NodeConfig config_;
  ike::Engine& engine_;
  DataplaneAccess dataplane_;
  crypto::Random& random_;
  ike::LogSink log_;
  std::map<std::string, Outgoing> outgoing_;  // by key
  std::map<std::string, Incoming> incoming_;  // by key
  std::map<std::string, Seen> seen_;
  std::map<std::uint64_t, std::pair<std::string, std::optional<Bytes>>> pending_writes_;  // tag -> key, value
  // One write per key in flight: the next compares on the revision the one before made
  // (the importer's {owned} right behind its {ready}, say), so it waits here.
  std::map<std::string, std::vector<std::uint64_t>> queued_writes_;  // key -> tags, in order
  std::uint64_t next_tag_ = 1;
  std::vector<StoreWrite> writes_;
  std::vector<MoveOutcome> outcomes_;
  NodeStats stats_;
  std::map<std::string, Held> held_;        // by key: SAs we run and checkpoint
  std::map<std::uint64_t, PendingRead> reads_;  // by read tag
  std::vector<StoreRead> reads_out_;
  std::map<std::uint64_t, Claim> claims_;   // by write tag
  std::set<std::uint64_t> batch_tags_;      // checkpoint writes (StoreWrite::batch)
  std::vector<std::uint64_t> urgent_;       // IKE SAs to checkpoint at once
  std::vector<std::string> members_;
  std::vector<IpAddress> takeovers_, taken_;
  // Claims won, waiting for address_taken() of the dead node's address they name.
  std::vector<std::pair<IpAddress, Claim>> awaiting_address_;
  TimePoint next_checkpoint_{};  // the epoch: due at once
};

}  // namespace mobike::cluster
