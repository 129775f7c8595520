// A latency histogram with fixed bucket bounds: what the engine records (with the
// times it is given, never a clock of its own) and the daemon's metrics endpoint shows
// as a Prometheus histogram. Counts are per bucket here; the rendering makes them
// cumulative.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace mobike {

struct LatencyHistogram {
  // Upper bounds (inclusive) in milliseconds: from a LAN round trip to a path timeout's
  // worth of retransmissions. A duration above the last one counts in the +Inf bucket.
  static constexpr std::array<std::uint32_t, 14> kBoundsMs = {5,    10,   25,    50,    100,   250,   500,
                                                              1000, 2500, 5000, 10000, 30000, 60000, 300000};

  std::array<std::uint64_t, kBoundsMs.size() + 1> buckets{};  // the last one: above every bound
  std::uint64_t count = 0;
  std::uint64_t sum_ms = 0;

  void observe(std::chrono::milliseconds d) {
    const std::uint64_t ms = d.count() < 0 ? 0 : static_cast<std::uint64_t>(d.count());
    std::size_t i = 0;
    while (i < kBoundsMs.size() && ms > kBoundsMs[i]) ++i;
    ++buckets[i];
    ++count;
    sum_ms += ms;
  }
  friend bool operator==(const LatencyHistogram&, const LatencyHistogram&) = default;
};

}  // namespace mobike
