#include "daemon/metrics.h"

#include <cmath>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "common/histogram.h"

namespace mobike::daemon {

namespace {

// Integers as integers (counters beyond 2^53 lose their last digits, as in any
// Prometheus client), fractions in the shortest form that reads back the same.
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.0f}", v);
  return fmt::format("{}", v);
}

void labels(std::string& out, const std::vector<MetricLabel>& ls, const MetricLabel* extra = nullptr) {
  if (ls.empty() && !extra) return;
  out += '{';
  bool first = true;
  auto one = [&](const MetricLabel& l) {
    if (!first) out += ',';
    first = false;
    out += l.name;
    out += "=\"";
    out += escape_label_value(l.value);
    out += '"';
  };
  for (const auto& l : ls) one(l);
  if (extra) one(*extra);
  out += '}';
}

const char* type_name(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string render_prometheus(const MetricsSnapshot& snapshot) {
  std::string out;
  for (const auto& f : snapshot) {
    out += "# HELP " + f.name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + f.name + " " + type_name(f.type) + "\n";
    if (f.type != MetricType::kHistogram) {
      for (const auto& s : f.samples) {
        out += f.name;
        labels(out, s.labels);
        out += ' ';
        out += number(s.value);
        out += '\n';
      }
      continue;
    }
    for (const auto& h : f.histograms) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < h.buckets.size(); ++i) {
        cumulative += h.buckets[i];
        MetricLabel le{"le", i < h.bounds.size() ? number(h.bounds[i]) : "+Inf"};
        out += f.name + "_bucket";
        labels(out, h.labels, &le);
        out += ' ' + std::to_string(cumulative) + '\n';
      }
      out += f.name + "_sum";
      labels(out, h.labels);
      out += ' ' + number(h.sum) + '\n';
      out += f.name + "_count";
      labels(out, h.labels);
      out += ' ' + std::to_string(cumulative) + '\n';
    }
  }
  return out;
}

namespace {

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

MetricFamily one(std::string name, std::string help, MetricType type, double value) {
  auto f = family(std::move(name), std::move(help), type);
  f.samples.push_back({{}, value});
  return f;
}

void add(MetricFamily& f, std::vector<MetricLabel> ls, double value) { f.samples.push_back({std::move(ls), value}); }

HistogramSample seconds(const LatencyHistogram& h, std::vector<MetricLabel> ls) {
  HistogramSample s;
  s.labels = std::move(ls);
  for (auto ms : LatencyHistogram::kBoundsMs) s.bounds.push_back(ms / 1000.0);
  s.buckets.assign(h.buckets.begin(), h.buckets.end());
  s.sum = static_cast<double>(h.sum_ms) / 1000.0;
  return s;
}

std::string text(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A count, whether the JSON holds it as unsigned or (non-negative) signed.
std::optional<std::uint64_t> count(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(v.get<std::int64_t>());
  return std::nullopt;
}

std::uint64_t u64(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() ? count(*it).value_or(0) : 0;
}

}  // namespace

MetricsSnapshot collect_metrics(const MetricsSources& src) {
  using T = MetricType;
  MetricsSnapshot out;
  const ike::Stats& s = src.engine.counters();

  // --- SAs now
  std::map<std::string, std::uint64_t> ike_states, child_states;
  for (auto st : {ike::IkeState::kConnecting, ike::IkeState::kEstablished, ike::IkeState::kRekeying,
                  ike::IkeState::kDeleting})
    ike_states[std::string(ike::to_string(st))] = 0;
  for (auto st : {ike::ChildState::kCreating, ike::ChildState::kInstalled, ike::ChildState::kRekeying,
                  ike::ChildState::kDeleting})
    child_states[std::string(ike::to_string(st))] = 0;
  src.engine.for_each_ike_sa([&](const ike::IkeSa& sa) {
    if (sa.state == ike::IkeState::kDead) return;
    ike_states[std::string(ike::to_string(sa.state))]++;
    for (const auto& c : sa.children) child_states[std::string(ike::to_string(c.state))]++;
  });
  auto ike_sas = family("mobiked_ike_sas", "IKE SAs by state", T::kGauge);
  for (const auto& [state, n] : ike_states) add(ike_sas, {{"state", state}}, static_cast<double>(n));
  out.push_back(std::move(ike_sas));
  auto child_sas = family("mobiked_child_sas", "Child SAs by state", T::kGauge);
  for (const auto& [state, n] : child_states) add(child_sas, {{"state", state}}, static_cast<double>(n));
  out.push_back(std::move(child_sas));
  out.push_back(one("mobiked_half_open_ike_sas", "responder IKE SAs waiting for IKE_AUTH", T::kGauge,
                    static_cast<double>(src.engine.half_open_count())));

  // --- SA events
  auto ike_events = family("mobiked_ike_sa_events_total",
                           "IKE SAs established, failed, expired half-open, handed to / taken from another cluster node",
                           T::kCounter);
  add(ike_events, {{"event", "established"}}, static_cast<double>(s.ike_established));
  add(ike_events, {{"event", "failed"}}, static_cast<double>(s.ike_failed));
  add(ike_events, {{"event", "half_open_expired"}}, static_cast<double>(s.half_open_expired));
  add(ike_events, {{"event", "exported"}}, static_cast<double>(s.ike_exported));
  add(ike_events, {{"event", "imported"}}, static_cast<double>(s.ike_imported));
  out.push_back(std::move(ike_events));
  auto child_events = family("mobiked_child_sa_events_total",
                             "Child SAs established, and rekeyed or deleted at a data-plane limit", T::kCounter);
  add(child_events, {{"event", "established"}}, static_cast<double>(s.child_established));
  add(child_events, {{"event", "soft_expired"}}, static_cast<double>(s.child_soft_expired));
  add(child_events, {{"event", "hard_expired"}}, static_cast<double>(s.child_hard_expired));
  out.push_back(std::move(child_events));

  // --- exchanges
  auto exchanges = family("mobiked_exchanges_total",
                          "IKE exchanges: requests we sent (initiator) and requests of the peer we answered (responder)",
                          T::kCounter);
  auto failures = family("mobiked_exchange_failures_total",
                         "our requests given up without an answer (unanswered) or whose answer ended the IKE SA (failed)",
                         T::kCounter);
  for (std::size_t i = 0; i < ike::kExchangeKinds; ++i) {
    const std::string name = ike::kExchangeNames[i];
    add(exchanges, {{"exchange", name}, {"role", "initiator"}}, static_cast<double>(s.exchanges[i].initiated));
    add(exchanges, {{"exchange", name}, {"role", "responder"}}, static_cast<double>(s.exchanges[i].responded));
    add(failures, {{"exchange", name}, {"reason", "unanswered"}}, static_cast<double>(s.exchanges[i].unanswered));
    add(failures, {{"exchange", name}, {"reason", "failed"}}, static_cast<double>(s.exchanges[i].failed));
  }
  out.push_back(std::move(exchanges));
  out.push_back(std::move(failures));
  out.push_back(one("mobiked_retransmissions_total", "our requests sent again", T::kCounter,
                    static_cast<double>(s.retransmits_sent)));
  out.push_back(one("mobiked_retransmissions_answered_total", "retransmitted requests of the peer answered again",
                    T::kCounter, static_cast<double>(s.retransmits_answered)));

  // --- datagrams
  auto datagrams = family("mobiked_ike_datagrams_total", "IKE datagrams received and sent", T::kCounter);
  add(datagrams, {{"direction", "in"}}, static_cast<double>(s.datagrams_in));
  add(datagrams, {{"direction", "out"}}, static_cast<double>(s.datagrams_out));
  out.push_back(std::move(datagrams));
  auto drops = family("mobiked_ike_dropped_total", "IKE datagrams dropped, by reason", T::kCounter);
  const std::pair<const char*, std::uint64_t> reasons[] = {
      {"malformed", s.dropped_malformed},       {"unknown_spi", s.dropped_unknown_spi},
      {"bad_message_id", s.dropped_bad_message_id}, {"integrity", s.dropped_integrity},
      {"unexpected", s.dropped_unexpected},     {"handed_over", s.dropped_handed_over},
      {"sync", s.dropped_sync},                 {"fragment", s.dropped_fragment},
      {"oversize", src.io.oversize_datagrams}};
  for (const auto& [reason, n] : reasons) add(drops, {{"reason", reason}}, static_cast<double>(n));
  out.push_back(std::move(drops));
  auto fragments = family("mobiked_ike_fragments_total",
                          "RFC 7383 fragments sent and received, and messages reassembled", T::kCounter);
  add(fragments, {{"event", "sent"}}, static_cast<double>(s.fragments_sent));
  add(fragments, {{"event", "received"}}, static_cast<double>(s.fragments_received));
  add(fragments, {{"event", "reassembled"}}, static_cast<double>(s.reassembled));
  out.push_back(std::move(fragments));
  out.push_back(one("mobiked_cookies_sent_total", "COOKIE demands sent to initiators", T::kCounter,
                    static_cast<double>(s.cookies_sent)));
  out.push_back(one("mobiked_nat_keepalives_received_total", "NAT keepalives received", T::kCounter,
                    static_cast<double>(src.io.keepalives_in)));
  out.push_back(one("mobiked_send_errors_total", "IKE datagrams the host refused to send", T::kCounter,
                    static_cast<double>(src.io.send_errors)));

  // --- mobility
  auto moves = family("mobiked_moves_total", "MOBIKE moves we asked for (UPDATE_SA_ADDRESSES), by outcome",
                      T::kCounter);
  auto move_seconds = family("mobiked_move_duration_seconds",
                             "MOBIKE moves we asked for, from the update being queued to its outcome", T::kHistogram);
  auto switches = family("mobiked_switches_total",
                         "responder-initiated switches we asked for (SWITCH_TO_IP_ADDRESS), by outcome", T::kCounter);
  auto switch_seconds = family("mobiked_switch_duration_seconds",
                               "responder-initiated switches we asked for, from the request to the outcome",
                               T::kHistogram);
  for (std::size_t i = 0; i < ike::kMobilityOutcomes; ++i) {
    const std::string outcome = ike::kMobilityOutcomeNames[i];
    add(moves, {{"outcome", outcome}}, static_cast<double>(s.moves[i].count));
    move_seconds.histograms.push_back(seconds(s.moves[i], {{"outcome", outcome}}));
    add(switches, {{"outcome", outcome}}, static_cast<double>(s.switches[i].count));
    switch_seconds.histograms.push_back(seconds(s.switches[i], {{"outcome", outcome}}));
  }
  out.push_back(std::move(moves));
  out.push_back(std::move(move_seconds));
  out.push_back(std::move(switches));
  out.push_back(std::move(switch_seconds));
  out.push_back(one("mobiked_moves_followed_total", "the peer's MOBIKE moves we followed (as the responder)",
                    T::kCounter, static_cast<double>(s.moves_followed)));
  auto automatic = family("mobiked_automatic_mobility_total",
                          "moves (initiator) and switches (responder) started because the host's addresses changed",
                          T::kCounter);
  add(automatic, {{"kind", "move"}}, static_cast<double>(src.addresses.automatic_moves));
  add(automatic, {{"kind", "switch"}}, static_cast<double>(src.addresses.automatic_switches));
  out.push_back(std::move(automatic));
  out.push_back(one("mobiked_address_changes_total", "changes of the host's address set", T::kCounter,
                    static_cast<double>(src.addresses.address_changes)));
  auto mappings = family("mobiked_esp_mappings_total", "new NAT mappings the kernel reported for ESP", T::kCounter);
  add(mappings, {{"result", "followed"}}, static_cast<double>(s.esp_mappings_followed));
  add(mappings, {{"result", "ignored"}}, static_cast<double>(s.esp_mappings_ignored));
  out.push_back(std::move(mappings));

  // --- data plane
  if (auto t = src.dataplane ? src.dataplane->totals() : std::nullopt) {
    auto from = [](std::string help, const std::string& source) {
      return source.empty() ? help : help + " (" + source + ")";
    };
    auto packets = family("mobiked_dataplane_packets_total", from("ESP packets of the Child SAs", t->traffic_source),
                          T::kCounter);
    add(packets, {{"direction", "in"}}, static_cast<double>(t->packets_in));
    add(packets, {{"direction", "out"}}, static_cast<double>(t->packets_out));
    out.push_back(std::move(packets));
    auto bytes = family("mobiked_dataplane_bytes_total", from("octets the Child SAs carried", t->traffic_source),
                        T::kCounter);
    add(bytes, {{"direction", "in"}}, static_cast<double>(t->bytes_in));
    add(bytes, {{"direction", "out"}}, static_cast<double>(t->bytes_out));
    out.push_back(std::move(bytes));
    auto dp_drops = family("mobiked_dataplane_drops_total",
                           from("packets the data plane dropped, by reason", t->drops_source), T::kCounter);
    for (const auto& [reason, n] : t->drops) add(dp_drops, {{"reason", reason}}, static_cast<double>(n));
    out.push_back(std::move(dp_drops));
  }

  // --- cluster
  if (src.cluster && src.cluster->is_object()) {
    const auto& c = *src.cluster;
    auto etcd = c.find("etcd");
    bool reachable = etcd != c.end() && etcd->is_object() && etcd->contains("reachable") &&
                     (*etcd)["reachable"].is_boolean() && (*etcd)["reachable"].get<bool>();
    out.push_back(one("mobiked_cluster_etcd_reachable", "1 while this node reaches etcd and is joined", T::kGauge,
                      reachable ? 1 : 0));
    auto nodes = family("mobiked_cluster_node_sas", "IKE SAs of each cluster node, with its state", T::kGauge);
    if (auto ns = c.find("nodes"); ns != c.end() && ns->is_array())
      for (const auto& n : *ns)
        add(nodes, {{"node", text(n, "name")}, {"state", text(n, "state")}},
            static_cast<double>(u64(n, "sas")));
    out.push_back(std::move(nodes));
    auto moving = c.find("moving");
    out.push_back(one("mobiked_cluster_moves_in_flight", "IKE SAs being handed to another node", T::kGauge,
                      moving != c.end() && moving->is_array() ? static_cast<double>(moving->size()) : 0));
    auto events = family("mobiked_cluster_events_total",
                         "cluster moves (out, in, returned, failed, ...) and etcd operations", T::kCounter);
    if (auto cs = c.find("counters"); cs != c.end() && cs->is_object())
      for (const auto& [name, v] : cs->items())
        if (auto n = count(v)) add(events, {{"event", name}}, static_cast<double>(*n));
    out.push_back(std::move(events));
  }
  return out;
}

}  // namespace mobike::daemon
