// Non-blocking UDP sockets for IKE (ports 500/4500), IPv4 or IPv6, that tell on which
// local address each datagram arrived and send from an explicit source address.
//
// Sending from an address the host no longer owns (the responder-initiated address
// update sends from the gateway's old address): send() first sends through this socket
// with an IP_PKTINFO / IPV6_PKTINFO source. When the kernel refuses that source as
// non-local (ENETUNREACH / EINVAL / EADDRNOTAVAIL, depending on family and kernel
// version), send() falls back to send_from_nonlocal(), which
// sends from a short-lived socket with IP_TRANSPARENT / IPV6_TRANSPARENT (+ IP_FREEBIND)
// bound to exactly (from.address, from.port). The socket lives only for that one
// datagram on purpose: a socket kept bound to the old address would, should the address
// come back, receive (and hide from the event loop) the IKE traffic sent to it.
// IP_TRANSPARENT needs CAP_NET_ADMIN (the daemon runs as root); without it the fallback
// fails with EPERM and send() reports that error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "platform/sys_error.h"
#include "platform/unique_fd.h"

namespace mobike::platform {

struct UdpSocketOptions {
  // SO_REUSEPORT: several sockets (workers, or a restarted daemon beside the old one)
  // share one (address, port); the kernel spreads datagrams between them by flow hash.
  bool reuse_port = false;
  // IP_FREEBIND: bind an address that is not (yet) configured on this host.
  bool freebind = false;
  // IP_TRANSPARENT / IPV6_TRANSPARENT on the socket itself (needs CAP_NET_ADMIN).
  bool transparent = false;
};

class UdpSocket {
 public:
  struct Received {
    std::size_t size = 0;  // bytes stored in the buffer
    Endpoint local;        // the address the datagram was sent to, and our port
    Endpoint remote;
    bool truncated = false;  // the datagram was larger than the buffer
    // UDP GRO: the buffer holds back-to-back datagrams of this size (the last may be
    // shorter), coalesced by the kernel; 0 for a single datagram.
    std::uint16_t segment_size = 0;
  };

  // Binds (address, port) with SO_REUSEADDR; port 0 picks an ephemeral port (see
  // local_endpoint()). IPv6 sockets are IPV6_V6ONLY: one socket per family.
  static Expected<UdpSocket, SysError> open(const Endpoint& local,
                                            const UdpSocketOptions& options = {});
  // The same with SO_REUSEPORT.
  static Expected<UdpSocket, SysError> open_reuse_port(const Endpoint& local);

  UdpSocket() = default;
  UdpSocket(UdpSocket&&) noexcept = default;
  UdpSocket& operator=(UdpSocket&&) noexcept = default;

  // For the event loop (readable -> call receive() until it returns nullopt).
  int fd() const { return fd_.get(); }
  bool is_open() const { return fd_.valid(); }
  AddressFamily family() const { return local_.address.family(); }
  // The bound address and the actual port.
  const Endpoint& local_endpoint() const { return local_; }

  // One datagram, or nullopt when none is queued (EAGAIN) or on an error; last_error()
  // tells which (empty after EAGAIN).
  std::optional<Received> receive(std::span<std::uint8_t> buf);

  // Sends `data` to `to` with source address from.address (unspecified: the kernel
  // chooses). from.port must be 0 or this socket's port. Falls back to
  // send_from_nonlocal() when the source is not a local address (see above). On false,
  // last_error() says why; EAGAIN means the send buffer is full (the datagram is lost,
  // as on the wire; IKE retransmits).
  bool send(const Endpoint& from, const Endpoint& to, ByteView data);
  // Several datagrams in one sendmmsg(2) (the data plane's bulk path). Sources must be
  // local addresses; returns how many were sent (the rest failed: last_error()).
  struct Outgoing {
    Endpoint from;
    Endpoint to;
    ByteView data;
    // UDP GSO (UDP_SEGMENT): `data` holds back-to-back datagrams of this size (the
    // last may be shorter), sent as one and split by the kernel as late as possible.
    std::uint16_t segment_size = 0;
  };
  static constexpr std::size_t kMaxBatch = 64;
  std::size_t send_batch(std::span<const Outgoing> items);
  // Up to bufs.size() (at most kMaxBatch) datagrams in one recvmmsg(2); `out` receives
  // one Received per datagram, in order. Returns how many (0: none queued or an error).
  std::size_t receive_batch(std::span<std::span<std::uint8_t>> bufs, std::span<Received> out);
  // Sends from (from.address, from.port, or this socket's port if 0) whether or not the
  // host owns from.address.
  bool send_from_nonlocal(const Endpoint& from, const Endpoint& to, ByteView data);

  const std::optional<SysError>& last_error() const { return last_error_; }
  // Larger kernel buffers for a socket that carries bulk ESP: a burst the event loop
  // has not yet drained is otherwise dropped (and TCP inside the tunnel backs off).
  // Uses the *FORCE options (root may exceed net.core.[rw]mem_max).
  bool set_buffer_sizes(int bytes);
  // UDP_GRO: the kernel may hand several datagrams of one flow over at once (see
  // Received::segment_size). Only for receivers that split them.
  bool enable_gro();
  // How many datagrams left through the non-local path.
  std::uint64_t nonlocal_sends() const { return nonlocal_sends_; }

 private:
  bool fail(int code, const char* context);

  UniqueFd fd_;
  Endpoint local_;
  std::optional<SysError> last_error_;
  std::uint64_t nonlocal_sends_ = 0;
};

}  // namespace mobike::platform
