#include "daemon/host_resolver.h"

#include <system_error>
#include <thread>

#include <asio/post.hpp>

#include "platform/resolver.h"

namespace mobike::daemon {

HostResolver::HostResolver(asio::io_context& io) : shared_(std::make_shared<Shared>()) { shared_->io = &io; }

HostResolver::~HostResolver() {
  std::lock_guard lock(shared_->mutex);
  shared_->io = nullptr;
}

void HostResolver::resolve(const std::string& name, std::function<void(Answer)> done) {
  auto callback = std::make_shared<std::function<void(Answer)>>(std::move(done));
  auto deliver = [shared = shared_, callback](Answer answer) {
    std::lock_guard lock(shared->mutex);
    if (shared->io)
      asio::post(*shared->io, [callback, answer = std::move(answer)]() mutable { (*callback)(std::move(answer)); });
  };
  try {
    std::thread([name, deliver] { deliver(platform::resolve_host(name)); }).detach();
  } catch (const std::system_error& e) {
    deliver(unexpected(std::string("no thread to resolve it: ") + e.what()));
  }
}

}  // namespace mobike::daemon
