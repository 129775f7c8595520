// The client side of the control protocol: one request, one response (after any progress
// lines the request asked for), over the daemon's Unix socket, with a deadline so that a
// wedged daemon cannot hang mobikectl.
//
// The deadline is on silence, not on the whole command: it restarts with every line from
// mobiked. For a request without "progress" that is the same thing (one line). With
// "progress", mobiked sends a line at least every second while a bulk command runs, so
// that a switch of many SAs at a low rate, or a drain waiting on slow clients, may take
// as long as it takes while a daemon that stopped answering is still noticed within the
// timeout. (A deadline on the whole command would make --timeout a guess at the job's
// length; one on silence measures what it is for: whether mobiked is alive.)
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "common/expected.h"
#include "control/protocol.h"

namespace mobike::control {

// Longest response line accepted: a list-sas of many thousands of SAs fits.
inline constexpr std::size_t kMaxResponseLine = 256 * 1024 * 1024;

// Sends `request` and returns the daemon's response object (not yet checked for "ok";
// see response_from_json). The error says what failed: connecting (with the path), the
// deadline, or an unreadable answer.
Expected<json, std::string> call(const std::string& socket_path, const json& request,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Told each progress line (already checked by progress_from_json).
using OnProgress = std::function<void(const Progress&)>;

// The same for a long command that can be cancelled: on the first SIGINT while waiting,
// `cancel` goes to the daemon on a second connection (`on_cancel` is told what it
// answered) and the wait for the first answer goes on; a second SIGINT gives up. A null
// `cancel` leaves SIGINT alone. Progress lines (when `request` asked for them) go to
// `on_progress`; the first other line is the answer; a progress line that does not
// parse ends the call with an error.
Expected<json, std::string> call_cancellable(const std::string& socket_path, const json& request, const json& cancel,
                                             const std::function<void(const std::string&)>& on_cancel,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(30),
                                             const OnProgress& on_progress = {});

}  // namespace mobike::control
