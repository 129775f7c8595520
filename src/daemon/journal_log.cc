#include "daemon/journal_log.h"

#include <syslog.h>

#include <atomic>
#include <cstdio>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>

#include "daemon/log_sink.h"
#include "platform/systemd_notify.h"

namespace mobike::daemon {

namespace {

std::atomic<bool> to_journal{false};
std::string journal_identifier = "mobiked";

}  // namespace

void init_logging(const std::string& name) {
  std::shared_ptr<spdlog::logger> logger;
  if (platform::stderr_is_journal()) {
    // The journal stamps time and priority itself; the sink sends the bare message.
    logger = spdlog::systemd_logger_mt(name, name);
    journal_identifier = name;
    to_journal = true;
  } else {
    logger = spdlog::stderr_color_mt(name);
    to_journal = false;
  }
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
}

bool logging_to_journal() { return to_journal; }

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return LOG_DEBUG;
    case spdlog::level::info: return LOG_INFO;
    case spdlog::level::warn: return LOG_WARNING;
    case spdlog::level::err: return LOG_ERR;
    case spdlog::level::critical: return LOG_CRIT;
    default: return LOG_INFO;
  }
}

std::vector<std::string> journal_fields(spdlog::level::level_enum level, std::string_view message,
                                        std::string_view identifier, const SaFields* sa) {
  std::vector<std::string> fields;
  fields.reserve(sa ? 6 : 3);
  fields.push_back("MESSAGE=" + std::string(message));
  fields.push_back("PRIORITY=" + std::to_string(syslog_priority(level)));
  fields.push_back("SYSLOG_IDENTIFIER=" + std::string(identifier));
  if (sa) {
    fields.push_back("MOBIKED_IKE_SA=" + std::to_string(sa->id));
    fields.push_back("MOBIKED_CONNECTION=" + std::string(sa->connection));
    if (sa->peer) fields.push_back("MOBIKED_PEER=" + sa->peer->to_string());
  }
  return fields;
}

SaFields sa_fields(const ike::IkeSa& sa) { return SaFields{sa.id, sa.connection_name, sa.remote}; }

void log_about_sa(spdlog::level::level_enum level, std::string_view line, const SaFields& sa) {
  if (!spdlog::should_log(level)) return;
  if (!to_journal) {
    spdlog::log(level, "{}", line);
    return;
  }
  // Past spdlog: its journal sink has no way to add fields to an entry.
  auto fields = journal_fields(level, line, journal_identifier, &sa);
  if (auto r = platform::journal_send(fields); !r) {
    // Like spdlog's own sinks on a failed write: say so on stderr, never stop the daemon.
    std::fprintf(stderr, "mobiked: journal: %s\n", r.error().message().c_str());
  }
}

void log_record(const ike::LogRecord& record) {
  auto level = to_spdlog(record.level);
  if (!spdlog::should_log(level)) return;
  if (record.sa)
    log_about_sa(level, record.line(), sa_fields(*record.sa));
  else
    spdlog::log(level, "{}", record.message);
}

}  // namespace mobike::daemon
