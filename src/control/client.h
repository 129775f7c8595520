// The client side of the control protocol: one request, one response, over the daemon's
// Unix socket, with a deadline so that a wedged daemon cannot hang mobikectl.
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

// The same for a long command that can be cancelled: on the first SIGINT while waiting,
// `cancel` goes to the daemon on a second connection (`on_cancel` is told what it
// answered) and the wait for the first answer goes on; a second SIGINT gives up.
Expected<json, std::string> call_cancellable(const std::string& socket_path, const json& request, const json& cancel,
                                             const std::function<void(const std::string&)>& on_cancel,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace mobike::control
