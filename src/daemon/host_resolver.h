// Host names resolved off the event loop: getaddrinfo blocks, so each lookup runs on a
// thread of its own and its answer is posted back onto the io_context. Lookups still
// running when the resolver goes away finish on their own and are dropped unanswered.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "common/expected.h"
#include "common/ip_address.h"

namespace mobike::daemon {

class HostResolver {
 public:
  using Answer = Expected<std::vector<IpAddress>, std::string>;  // addresses, or gai_strerror
  explicit HostResolver(asio::io_context& io);
  ~HostResolver();
  HostResolver(const HostResolver&) = delete;
  HostResolver& operator=(const HostResolver&) = delete;

  // `done` runs on the io_context's thread.
  void resolve(const std::string& name, std::function<void(Answer)> done);

 private:
  struct Shared {
    std::mutex mutex;
    asio::io_context* io = nullptr;  // null once the resolver is gone
  };
  std::shared_ptr<Shared> shared_;
};

}  // namespace mobike::daemon
