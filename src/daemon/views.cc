#include "daemon/views.h"

#include "control/protocol.h"
#include "ike/proposal_string.h"
#include "ike/traffic_selector.h"
#include "mobility/mobike.h"

namespace mobike::daemon {

using nlohmann::json;

namespace {

std::vector<std::string> ts_strings(const std::vector<wire::TrafficSelector>& ts) {
  std::vector<std::string> out;
  for (const auto& t : ts) out.push_back(ike::ts_to_string(t));
  return out;
}

}  // namespace

namespace {

template <class T>
json strings(const std::vector<T>& v) {
  json out = json::array();
  for (const auto& x : v) out.push_back(x.to_string());
  return out;
}

}  // namespace

json connection_list_view(const std::vector<const ike::ConnectionConfig*>& conns) {
  json out = json::array();
  for (const ike::ConnectionConfig* c : conns) {
    json remote = json::array();
    for (const auto& r : c->remote_addrs) remote.push_back(r);
    json j = {{"name", c->name},
              {"local_addrs", strings(c->local_addrs)},
              {"remote_addrs", remote},
              {"remote_port", c->remote_port},
              {"local_id", c->local_id.to_string()},
              {"remote_id", c->remote_id ? c->remote_id->to_string() : "%any"},
              {"local_auth", ike::to_string(c->local_auth)},
              {"remote_auth", ike::to_string(c->remote_auth)},
              {"ike_proposals", ike::proposals_to_string(c->ike_proposals)},
              {"mobike", c->mobike},
              {"start", ike::to_string(c->start)},
              {"dpd_delay_s", std::chrono::duration_cast<std::chrono::seconds>(c->dpd_delay).count()},
              {"rekey_time_s", std::chrono::duration_cast<std::chrono::seconds>(c->rekey_time).count()}};
    if (c->eap_id) j["eap_id"] = *c->eap_id;
    if (c->eap_tls13_pre_rfc9190) j["eap_tls13"] = "pre-rfc9190";
    if (!c->pools.empty()) j["pools"] = c->pools;
    if (!c->vips.empty()) j["vips"] = strings(c->vips);
    json children = json::array();
    for (const auto& ch : c->children)
      children.push_back({{"name", ch.name},
                          {"local_ts", strings(ch.local_ts)},
                          {"remote_ts", strings(ch.remote_ts)},
                          {"esp_proposals", ike::proposals_to_string(ch.esp_proposals)},
                          {"rekey_time_s", std::chrono::duration_cast<std::chrono::seconds>(ch.rekey_time).count()}});
    j["children"] = std::move(children);
    out.push_back(std::move(j));
  }
  return out;
}

json sa_list_view(const ike::Engine& engine, const Dataplane* dataplane, ike::TimePoint t) {
  std::vector<control::IkeSaInfo> out;
  engine.for_each_ike_sa([&](const ike::IkeSa& sa) {
    control::IkeSaInfo i;
    i.id = sa.id;
    i.name = sa.connection_name;
    i.state = std::string(ike::to_string(sa.state));
    i.initiator = sa.initiator;
    i.local = sa.local;
    i.remote = sa.remote;
    if (sa.config) i.local_id = sa.config->local_id.to_string();
    if (sa.remote_id) i.remote_id = sa.remote_id->to_string();
    i.remote_eap_id = sa.remote_eap_id;
    i.spi_i = sa.spi_i;
    i.spi_r = sa.spi_r;
    i.nat_local = sa.nat_local;
    i.nat_remote = sa.nat_remote;
    i.mobike = sa.peer_mobike;
    if (sa.peer_mid_sync) i.ha_sync.push_back("message_id");
    if (sa.peer_replay_sync) i.ha_sync.push_back("replay_counter");
    if (auto v = mobility::view(sa)) {
      for (const auto& a : v->peer_addresses) i.peer_addresses.push_back(a.to_string());
      i.path_probing = v->probing;
      i.rr_pending = v->rr_pending;
      i.moves = v->updates;
      i.peer_switch = v->peer_switch;
      if (v->switching_to) i.switching_to = v->switching_to->to_string();
    }
    i.ike_proposal = sa.ike_proposal.transforms.empty() ? "" : ike::proposal_to_string(sa.ike_proposal);
    if (sa.state != ike::IkeState::kConnecting)
      i.established_seconds = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::seconds>(t - sa.established_at).count());
    for (const auto& c : sa.children) {
      control::ChildSaInfo ci;
      ci.id = c.id;
      ci.name = c.name;
      ci.state = std::string(ike::to_string(c.state));
      ci.spi_in = c.spi_in;
      ci.spi_out = c.spi_out;
      ci.local_ts = ts_strings(c.local_ts);
      ci.remote_ts = ts_strings(c.remote_ts);
      ci.esp_proposal = ike::proposal_to_string(c.proposal);
      if (auto t = dataplane ? dataplane->traffic(c.id) : std::nullopt) {
        ci.bytes_in = t->bytes_in;
        ci.bytes_out = t->bytes_out;
        ci.packets_in = t->packets_in;
        ci.packets_out = t->packets_out;
        ci.drops = t->drops;
      }
      i.children.push_back(std::move(ci));
    }
    out.push_back(std::move(i));
  });
  return json(out);
}

json stats_view(const ike::Engine& engine, const IoCounters& io, const AddressFollower::Counters& addresses,
                const Dataplane* dataplane) {
  const auto& s = engine.counters();
  return json{{"ike_sas", engine.ike_sa_count()},
              {"half_open", engine.half_open_count()},
              {"datagrams", {{"in", s.datagrams_in}, {"out", s.datagrams_out}}},
              {"dropped",
               {{"malformed", s.dropped_malformed},
                {"unknown_spi", s.dropped_unknown_spi},
                {"bad_message_id", s.dropped_bad_message_id},
                {"integrity", s.dropped_integrity},
                {"unexpected", s.dropped_unexpected},
                {"handed_over", s.dropped_handed_over},
                {"sync", s.dropped_sync},
                {"oversize", io.oversize_datagrams}}},
              {"retransmits", {{"sent", s.retransmits_sent}, {"answered", s.retransmits_answered}}},
              // RFC 7383: SKF datagrams sent and kept, messages reassembled, fragments dropped.
              {"fragments", {{"sent", s.fragments_sent}, {"received", s.fragments_received},
                             {"reassembled", s.reassembled}, {"dropped", s.dropped_fragment}}},
              {"cookies_sent", s.cookies_sent},
              {"keepalives_in", io.keepalives_in},
              {"address_changes", addresses.address_changes},
              {"automatic_moves", addresses.automatic_moves},
              {"automatic_switches", addresses.automatic_switches},
              {"send_errors", io.send_errors},
              {"ike", {{"established", s.ike_established}, {"failed", s.ike_failed}, {"half_open_expired", s.half_open_expired},
                       {"exported", s.ike_exported}, {"imported", s.ike_imported}}},
              {"child", {{"established", s.child_established},
                         {"soft_expired", s.child_soft_expired},
                         {"hard_expired", s.child_hard_expired}}},
              // RFC 6311: synchronisations answered as the peer, completed as a cluster member.
              {"mid_sync", {{"answered", s.mid_syncs_answered}, {"completed", s.mid_syncs_completed}}},
              {"esp_mappings", {{"followed", s.esp_mappings_followed}, {"ignored", s.esp_mappings_ignored}}},
              {"dataplane", dataplane ? dataplane->stats() : json(nullptr)}};
}

}  // namespace mobike::daemon
