#include "cluster/node.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "crypto/wipe.h"
#include "mobility/mobike.h"
#include "wire/reader.h"
#include "wire/writer.h"

namespace mobike::cluster {

namespace {

// 2 added the flags and the switch address after the detail; 1 is still read.
constexpr std::uint8_t kRecordVersion = 2;
constexpr std::uint8_t kFlagOldNodeSends = 0x01, kFlagAnswered = 0x02;
constexpr std::size_t kMaxName = 1024;  // node names and reasons
constexpr std::size_t kMaxBlob = 1u << 20;
constexpr ike::Duration kExportRetry{50};

void put_string(wire::Writer& w, const std::string& s) {
  w.u16(static_cast<std::uint16_t>(s.size()));
  w.bytes(ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}

bool get_string(wire::Reader& r, std::string& out) {
  std::uint16_t n = 0;
  ByteView v;
  if (!r.read_u16(n) || n > kMaxName || !r.read_view(n, v)) return false;
  out.assign(v.begin(), v.end());
  return true;
}

}  // namespace

Bytes encode_record(const SaRecord& r) {
  wire::Writer w;
  w.u8(kRecordVersion);
  w.u8(static_cast<std::uint8_t>(r.phase));
  put_string(w, r.owner);
  put_string(w, r.from);
  w.u32(static_cast<std::uint32_t>(r.blob.size()));
  w.bytes(r.blob);
  put_string(w, r.detail);
  w.u8(static_cast<std::uint8_t>((r.old_node_sends ? kFlagOldNodeSends : 0) | (r.answered ? kFlagAnswered : 0)));
  const Bytes to = r.switch_to ? r.switch_to->to_bytes() : Bytes{};
  w.u8(static_cast<std::uint8_t>(to.size()));
  w.bytes(to);
  return std::move(w).take();
}

Expected<SaRecord, std::string> decode_record(ByteView in) {
  wire::Reader r(in);
  std::uint8_t version = 0, phase = 0;
  std::uint32_t n = 0;
  SaRecord rec;
  if (!r.read_u8(version)) return unexpected(std::string("empty SA record"));
  if (version != 1 && version != kRecordVersion)
    return unexpected("SA record of unknown version " + std::to_string(version));
  const auto malformed = [] { return unexpected(std::string("malformed SA record")); };
  if (!r.read_u8(phase) || phase < 1 || phase > (version == 1 ? 3 : 4) || !get_string(r, rec.owner) ||
      !get_string(r, rec.from) || !r.read_u32(n) || n > kMaxBlob || !r.read_bytes(n, rec.blob) ||
      !get_string(r, rec.detail))
    return malformed();
  if (version >= 2) {
    std::uint8_t flags = 0, len = 0;
    ByteView to;
    if (!r.read_u8(flags) || (flags & ~(kFlagOldNodeSends | kFlagAnswered)) || !r.read_u8(len) ||
        (len != 0 && len != 4 && len != 16) || !r.read_view(len, to))
      return malformed();
    rec.old_node_sends = flags & kFlagOldNodeSends;
    rec.answered = flags & kFlagAnswered;
    if (len) rec.switch_to = IpAddress::from_bytes(to);
  }
  if (!r.empty()) return malformed();
  rec.phase = static_cast<SaRecord::Phase>(phase);
  return rec;
}

const char* to_string(MoveOutcome::Result r) {
  switch (r) {
    case MoveOutcome::Result::kMoved: return "moved";
    case MoveOutcome::Result::kReturned: return "returned";
    case MoveOutcome::Result::kFailed: return "failed";
  }
  return "?";
}

Node::Node(NodeConfig config, ike::Engine& engine, DataplaneAccess dataplane, crypto::Random& random,
           ike::LogSink log)
    : config_(std::move(config)),
      engine_(engine),
      dataplane_(std::move(dataplane)),
      random_(random),
      log_(std::move(log)) {}

std::string Node::sa_name(std::uint64_t spi_i, std::uint64_t spi_r) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx-%016llx", static_cast<unsigned long long>(spi_i),
                static_cast<unsigned long long>(spi_r));
  return buf;
}

Expected<void, std::string> Node::move(std::uint64_t id, const std::string& to, TimePoint now) {
  if (to == config_.name) return unexpected(std::string("the SA is on this node already"));
  const ike::IkeSa* sa = engine_.find_ike_sa(id);
  if (!sa || sa->state != ike::IkeState::kEstablished) return unexpected("no established IKE SA " + std::to_string(id));
  const std::string key = config_.prefix + "sas/" + sa_name(sa->spi_i, sa->spi_r);
  if (outgoing_.count(key) || incoming_.count(key)) return unexpected(std::string("the SA is moving already"));
  // Only a client that announced the switch can follow the SA to another address.
  auto view = mobility::view(*sa);
  if (!view || !view->peer_switch)
    return unexpected(std::string("the peer did not announce SWITCH_TO_IP_ADDRESS support: it cannot follow"));
  if (!engine_.quiesce(id, now)) return unexpected(std::string("the SA cannot be quiesced"));
  Outgoing& o = outgoing_[key];
  o = Outgoing{id, to, key, now + config_.export_patience, false, {}};
  try_export(o, now);
  return {};
}

Expected<Bytes, Node::ExportFailure> Node::export_sealed(std::uint64_t id, const std::string& key, TimePoint now) {
  auto snap = engine_.export_sa(id, now);
  if (!snap) return unexpected(ExportFailure{snap.error(), true});
  // The Child SAs stop sending before their sequence numbers are read.
  if (dataplane_.apply_pending) dataplane_.apply_pending();
  const ike::IkeSa* sa = engine_.find_ike_sa(id);
  for (std::size_t i = 0; i < snap->children.size(); ++i) {
    auto esp = dataplane_.esp_state ? dataplane_.esp_state(sa->children[i].id) : std::nullopt;
    if (!esp)
      return unexpected(ExportFailure{"the data plane cannot tell Child SA " + std::to_string(sa->children[i].id) +
                                          "'s sequence numbers",
                                      false});
    snap->children[i].esp = std::move(*esp);
  }
  Bytes blob = seal_snapshot(*snap, config_.key, key, random_);
  wipe_snapshot_keys(*snap);
  return blob;
}

void Node::try_export(Outgoing& o, TimePoint now) {
  auto blob = export_sealed(o.ike_sa_id, o.key, now);
  if (!blob) {
    if (blob.error().transient && now < o.export_deadline && engine_.find_ike_sa(o.ike_sa_id)) {
      o.retry_at = now + kExportRetry;  // an exchange in flight: try again shortly
      return;
    }
    engine_.resume(o.ike_sa_id, now);
    std::string why = "not moved: " + blob.error().why;
    const auto id = o.ike_sa_id;
    const auto to = o.to;
    const auto key = o.key;
    outgoing_.erase(key);
    finish(id, to, MoveOutcome::Result::kFailed, why);
    return;
  }
  o.exported = true;
  o.retry_at = TimePoint::max();
  o.blob = *blob;
  o.relay = config_.switch_sender == SwitchSender::kOldNode;
  SaRecord moving{SaRecord::Phase::kMoving, o.to, config_.name, std::move(*blob)};
  moving.old_node_sends = o.relay;
  o.moving_tag = write(o.key, encode_record(moving));
}

std::uint64_t Node::write(const std::string& key, std::optional<Bytes> value, bool batch) {
  const std::uint64_t tag = next_tag_++;
  pending_writes_[tag] = {key, std::move(value)};
  if (batch) batch_tags_.insert(tag);
  auto [q, first] = queued_writes_.try_emplace(key);
  q->second.push_back(tag);
  if (first) send_write(tag);
  return tag;
}

void Node::send_write(std::uint64_t tag) {
  const auto& [key, value] = pending_writes_.at(tag);
  StoreWrite w;
  w.tag = tag;
  w.key = key;
  auto it = seen_.find(key);
  w.expect = it == seen_.end() ? 0 : it->second.mod;
  w.put = value;
  w.batch = batch_tags_.count(tag) > 0;
  writes_.push_back(std::move(w));
}

void Node::on_write_result(const StoreWriteResult& r, TimePoint now) {
  auto it = pending_writes_.find(r.tag);
  if (it == pending_writes_.end()) return;
  const std::string key = it->second.first;
  pending_writes_.erase(it);
  // A checkpoint that did not make it (etcd out of reach, or the key changed: then the
  // watch tells why) is written again when next due.
  if (batch_tags_.erase(r.tag) && !r.succeeded)
    if (auto h = held_.find(key); h != held_.end()) h->second.written = false;
  // The watch may have told us of later changes already: the result must not hide them.
  if (Seen& k = seen_[key]; r.succeeded && r.revision > k.at) k = {r.revision, r.revision};
  if (auto q = queued_writes_.find(key); q != queued_writes_.end()) {
    std::erase(q->second, r.tag);
    if (q->second.empty())
      queued_writes_.erase(q);
    else
      send_write(q->second.front());
  }

  if (auto c = claims_.find(r.tag); c != claims_.end()) {
    Claim claim = std::move(c->second);
    claims_.erase(c);
    return claimed(claim, r.succeeded, now);
  }
  if (auto o = outgoing_.find(key); o != outgoing_.end() && r.tag == o->second.moving_tag) {
    if (!r.succeeded) {
      // Someone else changed the key since we last saw it: one owner at a time.
      engine_.resume(o->second.ike_sa_id, now);
      const auto id = o->second.ike_sa_id;
      const auto to = o->second.to;
      outgoing_.erase(o);
      finish(id, to, MoveOutcome::Result::kFailed, "the SA's record changed meanwhile (another node wrote it)");
      return;
    }
    o->second.moving_written = true;
    if (std::exchange(o->second.reclaim_waits, false))
      reclaim(o->second, o->second.reclaim_record, o->second.reclaim_detail);
    return;
  } else if (o != outgoing_.end() && r.tag == o->second.reclaim_tag) {
    if (r.succeeded) return reclaimed(key, now);
    o->second.reclaim_tag = 0;
    // {ready} came first: the new node still has no client, and we still want it back.
    if (o->second.ready_seen) return reclaim(o->second, o->second.reclaim_record, o->second.reclaim_detail);
    // The new node wrote first: {owned} (it has the client) or {returned} (it gave up).
    // Its record, from the watch, decides as it would have without us.
    log(ike::LogLevel::kInfo, key + ": " + o->second.to + " wrote the SA's record first; following it");
    return;
  }
  if (auto in = incoming_.find(key); in != incoming_.end() && r.tag == in->second.ready_tag) {
    if (!r.succeeded) return withdraw(key, "the record changed before ours (" + in->second.from + " took it back)", now);
    return;
  }
  if (auto in = incoming_.find(key); in != incoming_.end() && r.tag == in->second.owned_tag) {
    if (!r.succeeded) return withdraw(key, "the record changed before ours (" + in->second.from + " took it back)", now);
    // Ours for good: only now may its Child SAs send (see reclaim()).
    engine_.confirm_import(in->second.ike_sa_id, now);
    if (in->second.checkpointed) held_[key] = std::move(*in->second.checkpointed);
    stats_.moves_in++;
    log(ike::LogLevel::kInfo, key + " taken over from " + in->second.from);
    incoming_.erase(in);
    return;
  }
  if (!r.succeeded) log(ike::LogLevel::kWarn, key + ": a write lost against another node's");
}

void Node::on_store_event(const StoreEvent& e, TimePoint now) {
  const std::string sas = config_.prefix + "sas/";
  if (e.key.compare(0, sas.size(), sas) != 0) return;
  if (Seen& k = seen_[e.key]; e.mod_revision >= k.at) k = {e.mod_revision, e.value ? e.mod_revision : 0};
  if (!e.value) return;
  auto rec = decode_record(*e.value);
  if (!rec) {
    stats_.records_refused++;
    log(ike::LogLevel::kWarn, e.key + ": " + rec.error());
    return;
  }
  fence(e.key, *rec, now);
  auto o = outgoing_.find(e.key);
  if (o != outgoing_.end() && o->second.reclaim_tag) {
    // Our own take-back, reported by the watch before the write's result.
    if (auto w = pending_writes_.find(o->second.reclaim_tag); w != pending_writes_.end() && w->second.second == *e.value)
      return reclaimed(e.key, now);
  }
  if (rec->phase == SaRecord::Phase::kMoving && rec->owner == config_.name && !incoming_.count(e.key)) {
    import(e.key, *rec, e.mod_revision, now);
  } else if (incoming_.count(e.key) && rec->owner != config_.name) {
    // The node it came from took it back (the client stayed there, or it thought us gone).
    withdraw(e.key, rec->owner + " took it back" + (rec->detail.empty() ? "" : ": " + rec->detail), now);
  } else if (rec->phase == SaRecord::Phase::kOwned && rec->owner != config_.name) {
    // The new owner has it: ours goes, without a DELETE.
    if (o != outgoing_.end() && o->second.exported) {
      engine_.release(o->second.ike_sa_id, now);
      auto id = o->second.ike_sa_id;
      auto to = o->second.to;
      outgoing_.erase(o);
      held_.erase(e.key);  // its checkpoints are the new owner's now
      stats_.moves_out++;
      finish(id, to, MoveOutcome::Result::kMoved, "the client follows " + rec->owner);
    }
  } else if (rec->phase == SaRecord::Phase::kReturned && rec->owner == config_.name) {
    take_back(e.key, *rec, now);
  } else if (rec->phase == SaRecord::Phase::kReady && o != outgoing_.end() && o->second.exported &&
             rec->owner == o->second.to) {
    o->second.ready_seen = true;
    if (!o->second.reclaim_detail.empty()) {
      // We want it back (the new node left, say): again, on this revision.
      if (!o->second.reclaim_tag && !o->second.reclaim_waits)
        reclaim(o->second, o->second.reclaim_record, o->second.reclaim_detail);
    } else if (o->second.relay && !o->second.relayed) {
      relay(o->second, *rec, now);
    }
  }
}

void Node::relay(Outgoing& o, const SaRecord& ready, TimePoint now) {
  o.relayed = true;
  auto sent = ready.switch_to ? mobility::relay_switch(engine_, o.ike_sa_id, *ready.switch_to, now)
                              : Expected<void, std::string>(unexpected(o.to + " named no address to switch to"));
  if (sent) return;
  const std::string why = "the switch request was not sent: " + sent.error();
  reclaim(o, {SaRecord::Phase::kReturned, config_.name, o.to, {}, why}, why);
}

bool Node::answered_here(const Incoming& in) const {
  // The switch request's Message ID is used up once its answer was processed here: the
  // request (sent, or adopted from the old node) is no longer the outstanding one.
  const ike::IkeSa* sa = engine_.find_ike_sa(in.ike_sa_id);
  return sa && sa->next_request_mid > in.request_mid && !(sa->active && sa->active_mid == in.request_mid);
}

void Node::import(const std::string& key, const SaRecord& r, std::int64_t, TimePoint now) {
  // Whatever keeps us from taking the SA, its first node still has it, untouched but
  // for the Message ID our switch request may have used (Engine::resume sees to that).
  auto back = [&](const std::string& why) {
    stats_.returned++;
    log(ike::LogLevel::kWarn, key + " from " + r.from + " not taken: " + why);
    write(key, encode_record({SaRecord::Phase::kReturned, r.from, config_.name, {}, why}));
  };
  auto snap = open_snapshot(r.blob, config_.key, key);
  if (!snap) {
    stats_.blobs_refused++;
    return back(std::string(to_string(snap.error().error)) + ": " + snap.error().detail);
  }
  auto to = own_address(snap->local.address);
  if (!to) return back("no address of this node in the SA's address family");
  auto id = engine_.import_sa(*snap, now);
  const std::uint32_t request_mid = snap->next_request_mid;
  wipe_snapshot_keys(*snap);
  if (!id) return back("import refused: " + id.error());
  auto sw = r.old_node_sends ? mobility::adopt_switch(engine_, *id, *to, now + config_.relay_patience, now)
                             : mobility::switch_address(engine_, *id, *to, now);
  if (!sw) {
    engine_.release(*id, now);
    return back("switch not started: " + sw.error());
  }
  Incoming in{*id, r.from, key};
  in.request_mid = request_mid;
  if (r.old_node_sends) {
    SaRecord ready{SaRecord::Phase::kReady, config_.name, r.from};
    ready.switch_to = *to;
    in.ready_tag = write(key, encode_record(ready));
  }
  incoming_[key] = std::move(in);
}

void Node::on_engine_event(const ike::Event& e, TimePoint now) {
  using K = ike::EventKind;
  if (config_.checkpoint_interval.count() > 0 &&
      (e.kind == K::kIkeEstablished || e.kind == K::kIkeRekeyed || e.kind == K::kChildEstablished ||
       e.kind == K::kChildRekeyed || e.kind == K::kAddressesUpdated || e.kind == K::kSwitchSucceeded ||
       e.kind == K::kMidSynced))
    urgent_.push_back(e.ike_sa_id);
  if (e.kind == ike::EventKind::kSwitchRefused || e.kind == ike::EventKind::kSwitchFailed) {
    // Our request for the new node: refused, or no answer (or no update after one).
    auto o = std::find_if(outgoing_.begin(), outgoing_.end(),
                          [&](const auto& kv) { return kv.second.ike_sa_id == e.ike_sa_id && kv.second.relayed; });
    if (o != outgoing_.end()) {
      std::string why = std::string(e.kind == ike::EventKind::kSwitchRefused ? "the client refused the switch: "
                                                                             : "the switch failed: ") +
                        e.detail;
      return reclaim(o->second, {SaRecord::Phase::kReturned, config_.name, o->second.to, {}, why}, why);
    }
  }
  if (e.kind == ike::EventKind::kIkeRekeyed) {
    // The peer rekeyed an imported SA before we confirmed it: its successor holds the
    // Child SAs now.
    for (auto& [k, in] : incoming_)
      if (in.ike_sa_id == e.replaces) in.ike_sa_id = e.ike_sa_id;
    return;
  }
  if (e.kind == ike::EventKind::kHandoffAnswered) {
    auto o = std::find_if(outgoing_.begin(), outgoing_.end(),
                          [&](const auto& kv) { return kv.second.ike_sa_id == e.ike_sa_id; });
    if (o == outgoing_.end() || !o->second.exported) return;
    const ike::IkeSa* sa = engine_.find_ike_sa(e.ike_sa_id);
    std::string why = "the client answered at " + (sa ? sa->local.address.to_string() : std::string("our address")) +
                      ": " + e.detail;
    return reclaim(o->second, {SaRecord::Phase::kReturned, config_.name, o->second.to, {}, why}, why);
  }
  const bool died = e.kind == ike::EventKind::kIkeFailed || e.kind == ike::EventKind::kIkeDeleted;
  const bool switched = e.kind == ike::EventKind::kSwitchSucceeded;
  if (!died && !switched && e.kind != ike::EventKind::kSwitchRefused && e.kind != ike::EventKind::kSwitchFailed)
    return;
  auto it = std::find_if(incoming_.begin(), incoming_.end(),
                         [&](const auto& kv) { return kv.second.ike_sa_id == e.ike_sa_id; });
  // Switched already: the {owned} write in flight decides.
  if (it == incoming_.end() || it->second.owned_tag) return;
  const std::string key = it->first, from = it->second.from;
  if (switched) {
    log(ike::LogLevel::kInfo, key + ": the client follows; claiming it from " + from);
    // The claim carries the SA's first checkpoint here (failover), so that a move costs
    // one write more than without failover, not two.
    Bytes blob;
    if (config_.checkpoint_interval.count() > 0)
      if (const ike::IkeSa* sa = engine_.find_ike_sa(e.ike_sa_id)) {
        Held h;
        if (auto b = sealed_checkpoint(key, *sa, h, now)) {
          blob = std::move(*b);
          it->second.checkpointed = std::move(h);  // ours once the claim has won
        }
      }
    it->second.owned_tag = write(key, encode_record({SaRecord::Phase::kOwned, config_.name, {}, std::move(blob), {}}));
    return;
  }
  // Not followed: until the switch we only sent that one request, so the first node's
  // copy is the SA as the client knows it — but for that request's Message ID, used up
  // if the client answered it here. Ours goes, silently.
  SaRecord returned{SaRecord::Phase::kReturned, from, config_.name};
  returned.answered = answered_here(it->second);
  incoming_.erase(it);
  const std::string why = std::string(died ? "the SA failed here: "
                                      : e.kind == ike::EventKind::kSwitchRefused ? "the client refused the switch: "
                                                                                : "the switch failed: ") +
                          e.detail;
  if (!died) engine_.release(e.ike_sa_id, now);
  stats_.returned++;
  log(ike::LogLevel::kWarn, key + " goes back to " + from + ": " + why);
  returned.detail = why;
  write(key, encode_record(returned));
}

void Node::take_back(const std::string& key, const SaRecord& r, TimePoint now) {
  auto o = outgoing_.find(key);
  if (o == outgoing_.end()) return;
  const std::uint64_t id = o->second.ike_sa_id;
  const std::string to = o->second.to;
  outgoing_.erase(o);
  engine_.resume(id, now, r.answered);
  write(key, encode_record({SaRecord::Phase::kOwned, config_.name, {}, {}, {}}));
  finish(id, to, MoveOutcome::Result::kReturned, "returned by " + r.from + (r.detail.empty() ? "" : ": " + r.detail));
}

void Node::reclaim(Outgoing& o, SaRecord record, std::string detail) {
  if (o.reclaim_waits || o.reclaim_tag) return;  // taking it back already
  o.reclaim_record = std::move(record);
  o.reclaim_detail = std::move(detail);
  if (!o.moving_written) {
    // The compare must be on our {moving} record's revision or a later one: wait.
    o.reclaim_waits = true;
    return;
  }
  // Never two senders on one key: we take the SA back without the new node's word, so
  // the store decides. We resume only once this write, compared on the revision of our
  // {moving} record, has won; from then on the new node's {owned} write, compared on the
  // same revision, fails, and it drops its copy on that failure or on seeing this
  // record. Until its own write has won, its copy sends no ESP (Engine::import_sa holds
  // the Child SAs receive-only) and its IKE messages carry random IVs, so while both
  // copies exist only one sends under the SA's keys. If its write won first, ours fails
  // and its record is followed as without us: {owned} releases ours, {returned} resumes it.
  o.reclaim_tag = write(o.key, encode_record(o.reclaim_record));
}

void Node::reclaimed(const std::string& key, TimePoint now) {
  auto o = outgoing_.find(key);
  if (o == outgoing_.end()) return;
  const std::uint64_t id = o->second.ike_sa_id;
  const std::string to = o->second.to, why = o->second.reclaim_detail;
  outgoing_.erase(o);
  engine_.resume(id, now);
  stats_.taken_back++;
  log(ike::LogLevel::kInfo, key + " taken back from " + to + ": " + why);
  finish(id, to, MoveOutcome::Result::kReturned, why);
}

void Node::withdraw(const std::string& key, const std::string& why, TimePoint now) {
  auto in = incoming_.find(key);
  if (in == incoming_.end()) return;
  const std::uint64_t id = in->second.ike_sa_id;
  incoming_.erase(in);
  // Never confirmed, so its Child SAs never sent: the copy goes without a trace.
  engine_.release(id, now);
  stats_.withdrawn++;
  log(ike::LogLevel::kWarn, key + " dropped: " + why);
}

void Node::on_node_gone(const std::string& node, TimePoint now) {
  std::vector<std::string> keys;
  for (const auto& [k, o] : outgoing_)
    if (o.to == node) keys.push_back(k);
  for (const auto& k : keys) {
    Outgoing& o = outgoing_.at(k);
    if (o.exported) {
      const std::string why = node + " left the cluster during the move";
      reclaim(o, {SaRecord::Phase::kOwned, config_.name, {}, {}, {}}, why);
      continue;
    }
    // Nothing left this node yet: the SA runs on as if never asked to move.
    const auto id = o.ike_sa_id;
    outgoing_.erase(k);
    engine_.resume(id, now);
    finish(id, node, MoveOutcome::Result::kFailed, "not moved: " + node + " left the cluster");
  }
  if (config_.checkpoint_interval.count() > 0) request_read({{node}, false});
}

void Node::on_timeout(TimePoint now) {
  if (config_.checkpoint_interval.count() > 0) {
    const bool all = now >= next_checkpoint_;
    if (all || !urgent_.empty()) checkpoint_due(now, all);
    if (all) next_checkpoint_ = now + config_.checkpoint_interval;
  }
  std::vector<std::string> due;
  for (auto& [k, o] : outgoing_)
    if (o.retry_at <= now) due.push_back(k);
  for (const auto& k : due)
    if (auto it = outgoing_.find(k); it != outgoing_.end()) try_export(it->second, now);
}

std::optional<TimePoint> Node::next_timeout() const {
  TimePoint t = TimePoint::max();
  for (const auto& [k, o] : outgoing_) t = std::min(t, o.retry_at);
  if (config_.checkpoint_interval.count() > 0) t = std::min(t, urgent_.empty() ? next_checkpoint_ : TimePoint{});
  if (t == TimePoint::max()) return std::nullopt;
  return t;
}

void Node::finish(std::uint64_t id, const std::string& to, MoveOutcome::Result r, std::string detail) {
  if (r == MoveOutcome::Result::kFailed) stats_.failed++;
  outcomes_.push_back({id, to, r, std::move(detail)});
}

std::optional<IpAddress> Node::own_address(const IpAddress& like) const {
  for (const auto& a : config_.addresses)
    if (a.family() == like.family()) return a;
  return std::nullopt;
}

}  // namespace mobike::cluster
