// An errno with the operation that produced it, for results of system calls.
#pragma once

#include <cstring>
#include <string>

namespace mobike::platform {

struct SysError {
  int code = 0;         // errno value
  std::string context;  // "bind 192.0.2.1:500", "sendmsg", ...

  std::string message() const { return context + ": " + std::strerror(code); }
  friend bool operator==(const SysError&, const SysError&) = default;
};

}  // namespace mobike::platform
