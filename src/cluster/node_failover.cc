// Failover (docs/cluster.md "Failover"): every SA a node runs is checkpointed into its
// record, sas/<S> = {owned, owner, blob}, when it is established, rekeyed, moved or
// synchronised and, if it changed, every checkpoint_interval; when a node's lease
// expires the survivors read its records from the store (nothing is mirrored on the
// nodes) and share its SAs out by rendezvous hashing, the chosen one claims
// each with a compare-and-put on the record (the store decides: exactly one wins), and
// continues it with RFC 6311 (mobility::take_over). A node that sees another claim an SA
// it still runs was taken for dead: it drops its copy (fencing by the record's revision:
// its own checkpoint writes compare on the revision it last saw, and fail).
#include <algorithm>
#include <set>

#include "cluster/node.h"
#include "ike/mid_sync.h"
#include "mobility/failover.h"

namespace mobike::cluster {

namespace {

// FNV-1a: the same on every node and build, unlike std::hash.
std::uint64_t stable_hash(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

bool live(const ike::IkeSa& sa) {
  return sa.state == ike::IkeState::kEstablished || sa.state == ike::IkeState::kRekeying;
}

}  // namespace

bool Node::ours_to_take(const std::string& item) const {
  // Rendezvous hashing: every survivor computes the same winner from the same members,
  // and a node that joins or leaves moves only its own share.
  const std::string* best = &config_.name;
  std::uint64_t best_score = stable_hash(item + "\n" + config_.name);
  for (const auto& m : members_) {
    const std::uint64_t score = stable_hash(item + "\n" + m);
    if (score > best_score || (score == best_score && m < *best)) {
      best_score = score;
      best = &m;
    }
  }
  return *best == config_.name;
}

void Node::checkpoint_due(TimePoint now, bool all) {
  const std::string prefix = config_.prefix + "sas/";
  std::set<std::string> running;
  // One SA: checkpointed if it changed since its last checkpoint.
  auto consider = [&](const ike::IkeSa& sa) {
    if (!live(sa) || sa.handoff != ike::Handoff::kNone) return;
    const std::string key = prefix + sa_name(sa.spi_i, sa.spi_r);
    if (outgoing_.count(key) || incoming_.count(key)) return;  // the move's records
    if (all) running.insert(key);
    Held& h = held_[key];
    if (h.ike_sa_id != sa.id) h = Held{sa.id};
    if (sa.state != ike::IkeState::kEstablished || queued_writes_.count(key)) return;
    // Urgent or not, only what changed is written: an event says when to look.
    bool changed = !h.written || sa.local != h.local || sa.remote != h.remote ||
                   sa.children.size() != h.spis.size() ||
                   sa.next_request_mid + sa.expected_peer_mid - h.mids >= config_.checkpoint_mid_drift;
    for (std::size_t i = 0; !changed && i < sa.children.size(); ++i) {
      const auto& c = sa.children[i];
      if (c.spi_in != h.spis[i]) {
        changed = true;
        break;
      }
      auto esp = dataplane_.esp_state ? dataplane_.esp_state(c.id) : std::nullopt;
      // Inbound: any change (the replay window a peer without replay counter sync
      // relies on); outbound: runs of checkpoint_seq_drift (the failover jumps 2^30).
      changed = esp && (esp->in_top != h.in_top[i] || esp->out_seq - h.out_seq[i] >= config_.checkpoint_seq_drift);
    }
    if (changed) checkpoint(key, sa, h, now);
  };
  if (!all) {
    // Only the SAs an event named: a scan of every SA per event would cost a cluster
    // move of N SAs N^2.
    for (std::uint64_t id : urgent_)
      if (const ike::IkeSa* sa = engine_.find_ike_sa(id)) consider(*sa);
    urgent_.clear();
    return;
  }
  engine_.for_each_ike_sa(consider);
  urgent_.clear();
  // Deleted, failed, replaced by an IKE rekey: its record goes too (SAs that moved away
  // left held_ when they did; their records are the new owner's).
  for (auto it = held_.begin(); it != held_.end();) {
    if (running.count(it->first) || outgoing_.count(it->first) || incoming_.count(it->first)) {
      ++it;
      continue;
    }
    if (const ike::IkeSa* sa = engine_.find_ike_sa(it->second.ike_sa_id); sa && live(*sa)) {
      ++it;  // quiesced or exported: a move in progress decides
      continue;
    }
    if (queued_writes_.count(it->first)) {
      ++it;  // after the write in flight
      continue;
    }
    if (it->second.written) {
      write(it->first, std::nullopt, true);
      stats_.checkpoint_deletes++;
    }
    it = held_.erase(it);
  }
}

std::optional<Bytes> Node::sealed_checkpoint(const std::string& key, const ike::IkeSa& sa, Held& h, TimePoint now) {
  auto snap = engine_.checkpoint(sa.id, now);
  if (!snap) return std::nullopt;  // an exchange of MOBIKE under way: the next tick
  Held next{sa.id, true, sa.next_request_mid + sa.expected_peer_mid, {}, {}, {}, sa.local, sa.remote};
  for (auto& cs : snap->children) {
    const ike::ChildSa* c = nullptr;
    for (const auto& x : sa.children)
      if (x.spi_in == cs.spi_in) c = &x;
    auto esp = c && dataplane_.esp_state ? dataplane_.esp_state(c->id) : std::nullopt;
    if (!esp) {
      wipe_snapshot_keys(*snap);
      return std::nullopt;
    }
    next.spis.push_back(cs.spi_in);
    next.out_seq.push_back(esp->out_seq);
    next.in_top.push_back(esp->in_top);
    cs.esp = std::move(*esp);
  }
  // The fingerprint compares child by child in the SA's order.
  if (next.spis.size() != sa.children.size()) next.spis.assign(sa.children.size(), 0);
  Bytes blob = seal_snapshot(*snap, config_.key, key, random_);
  wipe_snapshot_keys(*snap);
  h = std::move(next);
  stats_.checkpoints++;
  return blob;
}

void Node::checkpoint(const std::string& key, const ike::IkeSa& sa, Held& h, TimePoint now) {
  if (auto blob = sealed_checkpoint(key, sa, h, now))
    write(key, encode_record({SaRecord::Phase::kOwned, config_.name, {}, std::move(*blob)}), true);
}

std::vector<StoreWrite> Node::checkpoint_deletes() const {
  std::vector<StoreWrite> out;
  for (const auto& [key, h] : held_) {
    if (!h.written) continue;
    auto it = seen_.find(key);
    out.push_back({0, key, it == seen_.end() ? 0 : it->second.mod, std::nullopt, true});
  }
  return out;
}

void Node::fence(const std::string& key, const SaRecord& rec, TimePoint now) {
  if (rec.phase != SaRecord::Phase::kOwned || rec.owner == config_.name) return;
  auto h = held_.find(key);
  if (h == held_.end() || outgoing_.count(key) || incoming_.count(key)) return;
  // Another node claimed an SA we run: the cluster took us for dead (our lease expired)
  // and the SA is that node's now. Ours goes without a DELETE.
  const std::uint64_t id = h->second.ike_sa_id;
  held_.erase(h);
  if (engine_.release(id, now)) {
    stats_.fenced++;
    log(ike::LogLevel::kWarn, key + " was claimed by " + rec.owner + " (this node was taken for dead): dropped here");
  }
}

void Node::request_read(PendingRead why) {
  const std::uint64_t tag = next_tag_++;
  reads_[tag] = std::move(why);
  reads_out_.push_back({tag, config_.prefix + "sas/"});
}

void Node::adopt_orphans(TimePoint) {
  if (config_.checkpoint_interval.count() > 0) request_read({{}, true});
}

void Node::on_read_result(std::uint64_t tag, const std::vector<StoreEvent>& records, TimePoint) {
  auto it = reads_.find(tag);
  if (it == reads_.end()) return;
  const PendingRead why = std::move(it->second);
  reads_.erase(it);
  std::map<std::string, std::vector<std::pair<std::string, Bytes>>> orphans;  // by owner
  for (const auto& r : records) {
    // A change the watch has not told yet: the key is at least there.
    if (Seen& k = seen_[r.key]; r.mod_revision > k.at) k = {r.mod_revision, r.value ? r.mod_revision : 0};
    if (!r.value) continue;
    auto rec = decode_record(*r.value);
    if (!rec || rec->phase != SaRecord::Phase::kOwned || rec->blob.empty()) continue;
    const bool running = held_.count(r.key) || outgoing_.count(r.key) || incoming_.count(r.key) ||
                         std::any_of(claims_.begin(), claims_.end(), [&](const auto& c) { return c.second.key == r.key; });
    if (running) continue;
    const bool member = std::find(members_.begin(), members_.end(), rec->owner) != members_.end();
    if (why.dead.count(rec->owner) || (why.adopt && (rec->owner == config_.name || !member)))
      orphans[rec->owner].emplace_back(r.key, std::move(rec->blob));
  }
  for (auto& [owner, list] : orphans) share_out(owner, std::move(list), owner == config_.name);
}

void Node::share_out(const std::string& dead, std::vector<std::pair<std::string, Bytes>> orphans, bool self) {
  if (orphans.empty()) return;
  stats_.failovers++;
  std::size_t mine = 0;
  for (auto& [key, blob] : orphans) {
    auto snap = open_snapshot(blob, config_.key, key);
    if (!snap) {
      if (ours_to_take(key)) lose(key, "unreadable checkpoint", to_string(snap.error().error));
      continue;
    }
    const auto to = own_address(snap->local.address);
    auto how = mobility::failover_sync(*snap, to);
    // Peers without the switch answer the plain synchronisation at the dead node's
    // address: one node takes that address over and all those SAs with it.
    const bool plain = how && *how == mobility::FailoverSync::kPlain;
    const std::string item = plain ? "address " + snap->local.address.to_string() : key;
    const bool has_address = to.has_value();
    if (!self && !ours_to_take(item)) {
      wipe_snapshot_keys(*snap);
      continue;
    }
    if (!how || !has_address) {
      wipe_snapshot_keys(*snap);
      if (!how)
        lose(key, "no RFC 6311", how.error());
      else
        lose(key, "no address of its family", "this node has none");
      continue;
    }
    // The claim carries the checkpoint with the counters already past what this
    // node's synchronisation will use: should we die before our own next checkpoint,
    // the node that claims it from us jumps further still, and the peer does not take
    // its synchronisation for a replay of ours.
    snap->next_request_mid += ike::kMidSyncMargin;
    for (auto& c : snap->children)
      if (c.esp) c.esp->out_seq += ike::seq_jump(c.esp->out_seq, c.keys.esn ? ~std::uint64_t{0} : 0xffffffffu);
    Bytes claim_blob = seal_snapshot(*snap, config_.key, key, random_);
    wipe_snapshot_keys(*snap);
    SaRecord claim{SaRecord::Phase::kOwned, config_.name, dead, claim_blob};
    // Batched: rendezvous hashing leaves each SA to one survivor, so the compares hold.
    claims_[write(key, encode_record(claim), true)] = {key, dead, std::move(blob)};
    mine++;
  }
  log(ike::LogLevel::kInfo, dead + " left with " + std::to_string(orphans.size()) + " SA(s); claiming " +
                                std::to_string(mine) + " of them");
}

void Node::claimed(const Claim& c, bool won, TimePoint now) {
  if (!won) {
    stats_.claims_lost++;
    log(ike::LogLevel::kInfo, c.key + " of " + c.dead + ": another node claimed it first");
    return;
  }
  auto snap = open_snapshot(c.blob, config_.key, c.key);
  if (!snap) return lose(c.key, "unreadable checkpoint", to_string(snap.error().error));
  const IpAddress dead_address = snap->local.address;
  auto how = mobility::failover_sync(*snap, own_address(dead_address));
  wipe_snapshot_keys(*snap);
  const bool ours = std::find(config_.addresses.begin(), config_.addresses.end(), dead_address) != config_.addresses.end();
  if (how && *how == mobility::FailoverSync::kPlain && !ours &&
      std::find(taken_.begin(), taken_.end(), dead_address) == taken_.end()) {
    // The peer answers the plain synchronisation at the dead node's address: that must
    // be ours, and announced, before the request leaves (address_taken()).
    if (std::find(takeovers_.begin(), takeovers_.end(), dead_address) == takeovers_.end())
      takeovers_.push_back(dead_address);
    awaiting_address_.emplace_back(dead_address, c);
    return;
  }
  continue_claimed(c, now);
}

void Node::address_taken(const IpAddress& address, TimePoint now) {
  if (std::find(taken_.begin(), taken_.end(), address) == taken_.end()) taken_.push_back(address);
  std::vector<Claim> ready;
  std::erase_if(awaiting_address_, [&](auto& waiting) {
    const bool match = waiting.first == address;
    if (match) ready.push_back(std::move(waiting.second));
    return match;
  });
  for (const auto& c : ready) continue_claimed(c, now);
}

void Node::continue_claimed(const Claim& c, TimePoint now) {
  auto snap = open_snapshot(c.blob, config_.key, c.key);
  if (!snap) return lose(c.key, "unreadable checkpoint", to_string(snap.error().error));
  const IpAddress dead_address = snap->local.address;
  auto taken = mobility::take_over(engine_, *snap, own_address(dead_address), now);
  wipe_snapshot_keys(*snap);
  if (!taken) return lose(c.key, "not continued", taken.error());
  stats_.claimed++;
  const bool plain = taken->sync == mobility::FailoverSync::kPlain;
  (plain ? stats_.claimed_plain : stats_.claimed_combined)++;
  held_[c.key] = Held{taken->ike_sa_id, true};
  log(ike::LogLevel::kInfo, c.key + " of " + c.dead + " continues here (" +
                                (plain ? "synchronising from " + dead_address.to_string()
                                       : "synchronising and switching the client here") +
                                ")");
}

void Node::lose(const std::string& key, const std::string& reason, const std::string& detail) {
  stats_.lost++;
  stats_.lost_by_reason[reason]++;
  log(ike::LogLevel::kWarn, key + " is lost: " + reason + " (" + detail + ")");
  write(key, std::nullopt);
}

}  // namespace mobike::cluster
