// The metrics endpoint's content (`[daemon] metrics`): a snapshot of metric families
// that the event loop collects from the engine's, the data plane's and the daemon's
// counters (collect_metrics), and its rendering in Prometheus' text exposition format
// 0.0.4 (render_prometheus), a pure function any thread may run on a snapshot it holds.
// The HTTP side is metrics_server.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/address_follower.h"
#include "daemon/dataplane.h"
#include "daemon/views.h"
#include "ike/engine.h"

namespace mobike::daemon {

struct MetricLabel {
  std::string name;
  std::string value;  // any text: render_prometheus() escapes it
};

struct MetricSample {
  std::vector<MetricLabel> labels;
  double value = 0;
};

struct HistogramSample {
  std::vector<MetricLabel> labels;
  std::vector<double> bounds;           // upper bounds, ascending (the "le" labels)
  std::vector<std::uint64_t> buckets;   // per bucket, not cumulative: bounds.size() + 1, the last above every bound
  double sum = 0;
};

enum class MetricType : std::uint8_t { kCounter, kGauge, kHistogram };

struct MetricFamily {
  std::string name;  // counters end in _total; a histogram's samples add _bucket, _sum, _count
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<MetricSample> samples;        // counters and gauges
  std::vector<HistogramSample> histograms;  // histograms
};

using MetricsSnapshot = std::vector<MetricFamily>;

// "# HELP" and "# TYPE" lines and the samples of each family, in the snapshot's order;
// bucket counts cumulative, ending with le="+Inf" (= _count).
std::string render_prometheus(const MetricsSnapshot& snapshot);
// The exposition format's escapes: a label value's \, " and newline; HELP text's \ and newline.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view text);

// What the daemon hands over, read on the event loop's thread only.
struct MetricsSources {
  const ike::Engine& engine;
  const IoCounters& io;
  const AddressFollower::Counters& addresses;
  const Dataplane* dataplane = nullptr;
  // ClusterMember::status() with a [cluster] section; null without.
  const nlohmann::json* cluster = nullptr;
};

MetricsSnapshot collect_metrics(const MetricsSources& sources);

}  // namespace mobike::daemon
