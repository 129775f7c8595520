#include "daemon/metrics.h"

#include <gtest/gtest.h>

#include <asio/io_context.hpp>

#include "crypto/random.h"
#include "daemon/metrics_server.h"

namespace mobike::daemon {
namespace {

TEST(Metrics, RendersASmallSnapshotExactly) {
  MetricsSnapshot s;
  MetricFamily sas{"mobiked_ike_sas", "IKE SAs by state", MetricType::kGauge, {}, {}};
  sas.samples.push_back({{{"state", "established"}}, 1});
  sas.samples.push_back({{{"state", "connecting"}}, 0});
  s.push_back(sas);
  MetricFamily retransmits{"mobiked_retransmissions_total", "our requests sent again", MetricType::kCounter, {}, {}};
  retransmits.samples.push_back({{}, 42});
  s.push_back(retransmits);
  MetricFamily moves{"mobiked_move_duration_seconds", "moves", MetricType::kHistogram, {}, {}};
  moves.histograms.push_back({{{"outcome", "succeeded"}}, {0.05, 0.5}, {1, 0, 2}, 3.25});
  s.push_back(moves);
  EXPECT_EQ(render_prometheus(s),
            "# HELP mobiked_ike_sas IKE SAs by state\n"
            "# TYPE mobiked_ike_sas gauge\n"
            "mobiked_ike_sas{state=\"established\"} 1\n"
            "mobiked_ike_sas{state=\"connecting\"} 0\n"
            "# HELP mobiked_retransmissions_total our requests sent again\n"
            "# TYPE mobiked_retransmissions_total counter\n"
            "mobiked_retransmissions_total 42\n"
            "# HELP mobiked_move_duration_seconds moves\n"
            "# TYPE mobiked_move_duration_seconds histogram\n"
            "mobiked_move_duration_seconds_bucket{outcome=\"succeeded\",le=\"0.05\"} 1\n"
            "mobiked_move_duration_seconds_bucket{outcome=\"succeeded\",le=\"0.5\"} 1\n"
            "mobiked_move_duration_seconds_bucket{outcome=\"succeeded\",le=\"+Inf\"} 3\n"
            "mobiked_move_duration_seconds_sum{outcome=\"succeeded\"} 3.25\n"
            "mobiked_move_duration_seconds_count{outcome=\"succeeded\"} 3\n");
}

TEST(Metrics, EscapesLabelValuesAndHelpText) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");
  MetricsSnapshot s;
  MetricFamily f{"mobiked_cluster_node_sas", "per node\nand \\ state", MetricType::kGauge, {}, {}};
  f.samples.push_back({{{"node", "gw\"1\\\n"}, {"state", "active"}}, 7});
  s.push_back(f);
  EXPECT_EQ(render_prometheus(s),
            "# HELP mobiked_cluster_node_sas per node\\nand \\\\ state\n"
            "# TYPE mobiked_cluster_node_sas gauge\n"
            "mobiked_cluster_node_sas{node=\"gw\\\"1\\\\\\n\",state=\"active\"} 7\n");
}

TEST(Metrics, FormatsFractionsAndLargeCounters) {
  MetricsSnapshot s;
  MetricFamily f{"x_total", "x", MetricType::kCounter, {}, {}};
  f.samples.push_back({{}, 0.125});
  f.samples.push_back({{}, 123456789012.0});
  s.push_back(f);
  EXPECT_EQ(render_prometheus(s), "# HELP x_total x\n# TYPE x_total counter\nx_total 0.125\nx_total 123456789012\n");
}

// The engine's own histograms as the daemon shows them: every bound of LatencyHistogram
// in seconds, cumulative, +Inf equal to _count, _sum in seconds.
TEST(Metrics, EngineHistogramsAreCumulativeInSeconds) {
  crypto::SeededRandom random{1};
  ike::Engine engine(ike::EngineConfig{}, random);
  IoCounters io;
  AddressFollower::Counters addresses;
  auto snapshot = collect_metrics({engine, io, addresses, nullptr, nullptr});
  const MetricFamily* moves = nullptr;
  for (const auto& f : snapshot) {
    EXPECT_EQ(f.type == MetricType::kCounter, f.name.ends_with("_total")) << f.name;
    EXPECT_TRUE(f.name.starts_with("mobiked_")) << f.name;
    if (f.name == "mobiked_move_duration_seconds") moves = &f;
  }
  ASSERT_NE(moves, nullptr);
  ASSERT_EQ(moves->histograms.size(), 3u);  // succeeded, refused, failed
  EXPECT_EQ(moves->histograms[0].bounds.front(), 0.005);
  EXPECT_EQ(moves->histograms[0].bounds.size() + 1, moves->histograms[0].buckets.size());

  // A histogram with values, rendered from the engine's type.
  LatencyHistogram h;
  h.observe(std::chrono::milliseconds(30));
  h.observe(std::chrono::milliseconds(70));
  h.observe(std::chrono::milliseconds(70));
  MetricFamily f{"mobiked_switch_duration_seconds", "switches", MetricType::kHistogram, {}, {}};
  HistogramSample hs;
  hs.labels = {{"outcome", "succeeded"}};
  for (auto ms : LatencyHistogram::kBoundsMs) hs.bounds.push_back(ms / 1000.0);
  hs.buckets.assign(h.buckets.begin(), h.buckets.end());
  hs.sum = static_cast<double>(h.sum_ms) / 1000.0;
  f.histograms.push_back(hs);
  const std::string text = render_prometheus({f});
  EXPECT_NE(text.find("mobiked_switch_duration_seconds_bucket{outcome=\"succeeded\",le=\"0.025\"} 0\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mobiked_switch_duration_seconds_bucket{outcome=\"succeeded\",le=\"0.05\"} 1\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mobiked_switch_duration_seconds_bucket{outcome=\"succeeded\",le=\"0.1\"} 3\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mobiked_switch_duration_seconds_bucket{outcome=\"succeeded\",le=\"300\"} 3\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mobiked_switch_duration_seconds_bucket{outcome=\"succeeded\",le=\"+Inf\"} 3\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("mobiked_switch_duration_seconds_sum{outcome=\"succeeded\"} 0.17\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mobiked_switch_duration_seconds_count{outcome=\"succeeded\"} 3\n"), std::string::npos) << text;
}

TEST(Metrics, FreshEngineShowsZeroSasInEveryState) {
  crypto::SeededRandom random{1};
  ike::Engine engine(ike::EngineConfig{}, random);
  IoCounters io;
  io.oversize_datagrams = 2;
  AddressFollower::Counters addresses;
  NoDataplane dp;
  const std::string text = render_prometheus(collect_metrics({engine, io, addresses, &dp, nullptr}));
  EXPECT_NE(text.find("mobiked_ike_sas{state=\"ESTABLISHED\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mobiked_ike_dropped_total{reason=\"oversize\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mobiked_exchanges_total{exchange=\"IKE_AUTH\",role=\"initiator\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE mobiked_dataplane_packets_total counter\n"), std::string::npos);
  EXPECT_EQ(text.find("mobiked_cluster_"), std::string::npos);  // no [cluster]
}

// A data plane whose numbers come from elsewhere (the kernel's, for xfrm) says so.
class SourcedDataplane final : public Dataplane {
 public:
  void apply(const ike::DataplaneOp&) override {}
  std::optional<ChildTraffic> traffic(std::uint64_t) const override { return std::nullopt; }
  std::optional<ike::EspState> esp_state(std::uint64_t) const override { return std::nullopt; }
  nlohmann::json stats() const override { return nlohmann::json::object(); }
  std::optional<DataplaneTotals> totals() const override {
    DataplaneTotals t;
    t.packets_in = 12;
    t.bytes_out = 1800;
    t.drops["unknown SPI"] = 3;
    t.drops["XfrmInNoPols"] = 0;
    t.traffic_source = "the kernel's SA counters";
    t.drops_source = "/proc/net/xfrm_stat";
    return t;
  }
  void on_udp_esp(std::span<std::uint8_t>, const Endpoint&, const Endpoint&) override {}
};

TEST(Metrics, DataplaneTotalsSayWhereTheyComeFrom) {
  crypto::SeededRandom random{1};
  ike::Engine engine(ike::EngineConfig{}, random);
  IoCounters io;
  AddressFollower::Counters addresses;
  SourcedDataplane dp;
  const std::string text = render_prometheus(collect_metrics({engine, io, addresses, &dp, nullptr}));
  for (const char* line :
       {"# HELP mobiked_dataplane_packets_total ESP packets of the Child SAs (the kernel's SA counters)\n",
        "# HELP mobiked_dataplane_bytes_total octets the Child SAs carried (the kernel's SA counters)\n",
        "# HELP mobiked_dataplane_drops_total packets the data plane dropped, by reason (/proc/net/xfrm_stat)\n",
        "mobiked_dataplane_packets_total{direction=\"in\"} 12\n",
        "mobiked_dataplane_bytes_total{direction=\"out\"} 1800\n",
        "mobiked_dataplane_drops_total{reason=\"unknown SPI\"} 3\n",
        "mobiked_dataplane_drops_total{reason=\"XfrmInNoPols\"} 0\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  // Without a source (the userspace data plane counts itself): the plain text.
  NoDataplane none;
  const std::string plain = render_prometheus(collect_metrics({engine, io, addresses, &none, nullptr}));
  EXPECT_NE(plain.find("# HELP mobiked_dataplane_packets_total ESP packets of the Child SAs\n"), std::string::npos);
}

TEST(Metrics, ClusterStateFromTheMembersStatus) {
  crypto::SeededRandom random{1};
  ike::Engine engine(ike::EngineConfig{}, random);
  IoCounters io;
  AddressFollower::Counters addresses;
  const nlohmann::json status = {
      {"node", "gw1"},
      {"state", "active"},
      {"etcd", {{"reachable", true}}},
      {"nodes", {{{"name", "gw1"}, {"state", "active"}, {"sas", 3}, {"self", true}},
                 {{"name", "gw\"2"}, {"state", "draining"}, {"sas", 1}}}},
      {"moving", {{{"sa", 7}, {"to", "gw2"}}}},
      {"counters", {{"moves_out", 4}, {"moves_in", 2}}}};
  const std::string text = render_prometheus(collect_metrics({engine, io, addresses, nullptr, &status}));
  for (const char* line : {"mobiked_cluster_etcd_reachable 1\n",
                           "mobiked_cluster_node_sas{node=\"gw1\",state=\"active\"} 3\n",
                           "mobiked_cluster_node_sas{node=\"gw\\\"2\",state=\"draining\"} 1\n",
                           "mobiked_cluster_moves_in_flight 1\n",
                           "mobiked_cluster_events_total{event=\"moves_out\"} 4\n",
                           "mobiked_cluster_events_total{event=\"moves_in\"} 2\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  // Without a data plane: no data-plane families.
  EXPECT_EQ(text.find("mobiked_dataplane_"), std::string::npos);
}

TEST(MetricsServer, RefusesAnAddressItCannotBind) {
  asio::io_context io;
  auto m = MetricsServer::start(io, Endpoint{IpAddress::parse("192.0.2.1").value(), 9560}, [] { return ""; });
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().find("192.0.2.1:9560"), std::string::npos) << m.error();
}

}  // namespace
}  // namespace mobike::daemon
