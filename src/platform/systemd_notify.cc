#include "platform/systemd_notify.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <vector>

// Without it sd_journal_sendv() adds CODE_FILE/CODE_LINE of this file to every entry,
// which would name this wrapper rather than where the line came from.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

namespace mobike::platform {

namespace {

// STATUS= ends at the end of its line: a newline inside would start a new assignment
// that the manager reads as something else.
std::string status_line(std::string_view status) {
  if (status.empty()) return {};
  std::string out = "\nSTATUS=";
  for (char c : status) out += (c == '\n' || c == '\r') ? ' ' : c;
  return out;
}

template <typename T>
bool parse_decimal(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

std::string ready_message(std::string_view status) { return "READY=1" + status_line(status); }

std::string reloading_message(std::chrono::microseconds monotonic_now, std::string_view status) {
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_now.count()) + status_line(status);
}

std::string stopping_message(std::string_view status) { return "STOPPING=1" + status_line(status); }

std::string status_message(std::string_view status) {
  // Without the leading newline status_line() puts before it.
  auto line = status_line(status);
  return line.empty() ? std::string("STATUS=") : line.substr(1);
}

SystemdNotifier SystemdNotifier::from_environment() {
  SystemdNotifier n;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  n.enabled_ = socket && *socket;
  std::uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is this process.
  if (n.enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
    n.watchdog_interval_ = std::chrono::microseconds(usec / 2);
  return n;
}

Expected<void, SysError> SystemdNotifier::ready(std::string_view status) { return send(ready_message(status)); }

Expected<void, SysError> SystemdNotifier::reloading(std::string_view status) {
  // steady_clock is CLOCK_MONOTONIC on Linux, the clock MONOTONIC_USEC is read against.
  auto now = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch());
  return send(reloading_message(now, status));
}

Expected<void, SysError> SystemdNotifier::stopping(std::string_view status) { return send(stopping_message(status)); }

Expected<void, SysError> SystemdNotifier::status(std::string_view status) { return send(status_message(status)); }

Expected<void, SysError> SystemdNotifier::watchdog() { return send("WATCHDOG=1"); }

Expected<void, SysError> SystemdNotifier::send(const std::string& message) {
  if (!enabled_) return {};
  int r = sd_notify(0, message.c_str());
  if (r < 0) return unexpected(SysError{-r, "sd_notify"});
  return {};
}

std::optional<std::pair<dev_t, ino_t>> parse_journal_stream(std::string_view value) {
  auto colon = value.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  // dev_t and ino_t are unsigned 64-bit on Linux; parse as such and narrow nothing.
  std::uint64_t dev = 0, ino = 0;
  if (!parse_decimal(value.substr(0, colon), dev) || !parse_decimal(value.substr(colon + 1), ino)) return std::nullopt;
  return std::pair<dev_t, ino_t>{static_cast<dev_t>(dev), static_cast<ino_t>(ino)};
}

bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (!env) return false;
  auto want = parse_journal_stream(env);
  if (!want) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == want->first && st.st_ino == want->second;
}

Expected<void, SysError> journal_send(std::span<const std::string> fields) {
  std::vector<iovec> iov;
  iov.reserve(fields.size());
  for (const auto& f : fields) iov.push_back({const_cast<char*>(f.data()), f.size()});
  int r = sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
  if (r < 0) return unexpected(SysError{-r, "sd_journal_sendv"});
  return {};
}

}  // namespace mobike::platform
