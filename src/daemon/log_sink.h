// The engine's log levels in spdlog's terms: one sink for everything sans-IO in the
// daemon (the engine, the cluster node).
#pragma once

#include <string>

#include <spdlog/spdlog.h>

#include "ike/types.h"

namespace mobike::daemon {

inline spdlog::level::level_enum to_spdlog(ike::LogLevel l) {
  switch (l) {
    case ike::LogLevel::kTrace: return spdlog::level::trace;
    case ike::LogLevel::kDebug: return spdlog::level::debug;
    case ike::LogLevel::kInfo: return spdlog::level::info;
    case ike::LogLevel::kWarn: return spdlog::level::warn;
    case ike::LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

inline void log_to_spdlog(ike::LogLevel l, const std::string& message) { spdlog::log(to_spdlog(l), "{}", message); }

}  // namespace mobike::daemon
