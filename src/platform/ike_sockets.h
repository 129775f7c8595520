// The IKE sockets of one host: UDP on the IKE port and the NAT-T port of each listen
// address, and the framing of the NAT-T port (RFC 3948 §2): IKE behind a four-octet
// non-ESP marker, ESP in UDP with its SPI where the marker would be, and one-octet NAT
// keepalives. Used by mobiked and mobike-bench alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/expected.h"
#include "common/ip_address.h"
#include "platform/udp_socket.h"

namespace mobike::platform {

// What a datagram on the NAT-T port carries.
struct NattDatagram {
  enum class Kind : std::uint8_t { kIke, kEsp, kKeepalive };
  Kind kind = Kind::kIke;
  // kIke: the IKE message without its marker; kEsp: the whole datagram (from the SPI).
  std::span<std::uint8_t> payload;
};
NattDatagram classify_natt(std::span<std::uint8_t> datagram);

class IkeSockets {
 public:
  struct Socket {
    UdpSocket udp;
    bool natt = false;  // the NAT-T port: IKE messages carry the non-ESP marker
  };

  // One socket per listen address and port (the IKE port, then the NAT-T port), with
  // `buffer_bytes` of kernel buffer each: bursts of thousands of IKE messages (a mass
  // switch, a gateway restart) must not overflow the default buffers, since each loss
  // costs a retransmission timeout. A buffer that cannot grow is reported in
  // `warnings`, not fatal.
  static Expected<IkeSockets, std::string> open(std::span<const IpAddress> listen, std::uint16_t ike_port,
                                                std::uint16_t natt_port, int buffer_bytes,
                                                std::vector<std::string>* warnings = nullptr);

  std::vector<Socket>& sockets() { return sockets_; }
  const std::vector<Socket>& sockets() const { return sockets_; }

  // The socket that sends from `local`: bound to that address, or the wildcard one of
  // its family and port. nullptr if none.
  Socket* for_source(const Endpoint& local);

  // An IKE message from `local` to `remote`, with the non-ESP marker on the NAT-T port.
  // False: no socket for `local`, or the send failed (error() says why).
  bool send_ike(const Endpoint& local, const Endpoint& remote, ByteView message);
  // A datagram as it is (a NAT keepalive, ESP).
  bool send_raw(const Endpoint& local, const Endpoint& remote, ByteView datagram);
  const std::string& error() const { return error_; }

 private:
  std::vector<Socket> sockets_;
  Bytes framed_;
  std::string error_;
};

}  // namespace mobike::platform
