// The daemon's side of systemd: readiness and state notifications to the service manager
// (sd_notify(3), through libsystemd) and whether stderr is the journal's stream
// (JOURNAL_STREAM, systemd.exec(5)) with the send of one structured journal entry.
// Outside systemd (no NOTIFY_SOCKET, no JOURNAL_STREAM) every call here does nothing, so
// the daemon calls it unconditionally.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/expected.h"
#include "platform/sys_error.h"

namespace mobike::platform {

// The notification datagrams, built apart from sending them so that their content can
// be checked without a service manager. `status` becomes STATUS= (a line of its own in
// the protocol, so newlines in it are replaced by spaces); empty leaves it out.
std::string ready_message(std::string_view status);
// RELOADING=1 with MONOTONIC_USEC=: systemd 253's Type=notify-reload wants the
// CLOCK_MONOTONIC time at which the reload began, to tell this reload from one it asked
// for earlier; systemd 252 (Debian 12) ignores the field and needs only RELOADING=1
// followed by READY=1 once the reload is done.
std::string reloading_message(std::chrono::microseconds monotonic_now, std::string_view status);
std::string stopping_message(std::string_view status);
std::string status_message(std::string_view status);

class SystemdNotifier {
 public:
  // Reads NOTIFY_SOCKET and the watchdog settings (WATCHDOG_USEC, WATCHDOG_PID) of this
  // process. The environment is left as it is: the notifications go on for the whole
  // life of the daemon.
  static SystemdNotifier from_environment();

  // A notifier that sends nothing (not under a service manager).
  SystemdNotifier() = default;

  bool enabled() const { return enabled_; }
  // How often to send WATCHDOG=1: half the manager's WatchdogSec (as sd_watchdog_enabled(3)
  // advises, leaving room for a late loop turn), or nullopt without a watchdog.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_interval_; }

  // Each returns the error of the send (the daemon logs it; the manager would then see
  // no readiness and fail the start after TimeoutStartSec, which is the right outcome).
  Expected<void, SysError> ready(std::string_view status);
  Expected<void, SysError> reloading(std::string_view status);
  Expected<void, SysError> stopping(std::string_view status);
  Expected<void, SysError> status(std::string_view status);
  Expected<void, SysError> watchdog();

 private:
  Expected<void, SysError> send(const std::string& message);

  bool enabled_ = false;
  std::optional<std::chrono::microseconds> watchdog_interval_;
};

// JOURNAL_STREAM's "DEVICE:INODE" (decimal), nullopt if it is not that.
std::optional<std::pair<dev_t, ino_t>> parse_journal_stream(std::string_view value);

// True when standard error is the stream systemd connected to journald: JOURNAL_STREAM is
// set and names stderr's device and inode. Checking the inode, not just the variable,
// matters: a child started from a unit inherits JOURNAL_STREAM even when its own stderr
// was redirected elsewhere (a test log, a terminal).
bool stderr_is_journal();

// One journal entry from "FIELD=value" strings (sd_journal_sendv(3)); values may hold
// newlines, which the journal keeps.
Expected<void, SysError> journal_send(std::span<const std::string> fields);

}  // namespace mobike::platform
