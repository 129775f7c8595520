// A layer-3 TUN device (IFF_TUN | IFF_NO_PI): the userspace data plane reads the
// packets the kernel routes into it and writes decrypted packets back.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "common/bytes.h"
#include "common/expected.h"
#include "platform/sys_error.h"
#include "platform/unique_fd.h"

namespace mobike::platform {

class TunDevice {
 public:
  // Creates (or attaches to) `name`, non-blocking, sets its MTU and brings it up.
  static Expected<TunDevice, SysError> open(const std::string& name, int mtu);

  TunDevice() = default;
  TunDevice(TunDevice&&) noexcept = default;
  TunDevice& operator=(TunDevice&&) noexcept = default;

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  int ifindex() const { return ifindex_; }
  int mtu() const { return mtu_; }

  // One packet, or nullopt when none is queued (EAGAIN) or on error (last_error()).
  std::optional<std::size_t> read(std::span<std::uint8_t> buf);
  bool write(ByteView packet);
  const std::optional<SysError>& last_error() const { return last_error_; }

 private:
  UniqueFd fd_;
  std::string name_;
  int ifindex_ = 0;
  int mtu_ = 0;
  std::optional<SysError> last_error_;
};

}  // namespace mobike::platform
