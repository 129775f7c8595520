// Where mobiked's log lines go. On a terminal or into a file: stderr, one formatted line
// each, as always. Started by systemd with stderr connected to journald: the journal
// itself, so that every entry carries its priority and, when it concerns an IKE SA,
// fields to select by (journalctl MOBIKED_IKE_SA=7, MOBIKED_CONNECTION=gw,
// MOBIKED_PEER=198.51.100.3:4500) instead of the text having to be grepped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/ip_address.h"
#include "ike/engine.h"

namespace mobike::daemon {

// Installs the default logger named `name`: the journal when stderr is journald's
// stream (platform::stderr_is_journal()), else stderr with the daemon's line format.
void init_logging(const std::string& name);
bool logging_to_journal();

// What a journal entry says of the IKE SA its line is about. The peer is left out when
// the SA is gone already (a line about its deletion).
struct SaFields {
  std::uint64_t id = 0;
  std::string_view connection;
  std::optional<Endpoint> peer;
};
SaFields sa_fields(const ike::IkeSa& sa);

// The engine's log sink: its lines about an IKE SA reach the journal with the SA's
// fields; everywhere else, and for lines about no SA, they are ordinary log lines.
void log_record(const ike::LogRecord& record);
// A line of the daemon's own about an IKE SA (its events), the same way.
void log_about_sa(spdlog::level::level_enum level, std::string_view line, const SaFields& sa);

// syslog(3) priority of a level, the journal's PRIORITY= (the same table as spdlog's
// own journal sink, so both kinds of entries agree).
int syslog_priority(spdlog::level::level_enum level);

// The fields of one journal entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and, with an SA,
// MOBIKED_IKE_SA (its id, as mobikectl shows it), MOBIKED_CONNECTION and MOBIKED_PEER
// (the peer's current address:port).
std::vector<std::string> journal_fields(spdlog::level::level_enum level, std::string_view message,
                                        std::string_view identifier, const SaFields* sa);

}  // namespace mobike::daemon
