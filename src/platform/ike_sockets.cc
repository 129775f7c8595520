#include "platform/ike_sockets.h"

namespace mobike::platform {

namespace {
constexpr std::uint8_t kNonEspMarker[4] = {0, 0, 0, 0};
}

NattDatagram classify_natt(std::span<std::uint8_t> datagram) {
  if (datagram.size() == 1 && datagram[0] == 0xff) return {NattDatagram::Kind::kKeepalive, {}};
  // ESP's SPI is never zero (RFC 4303 §2.1): four zero octets can only be the marker.
  if (datagram.size() < 4 || datagram[0] || datagram[1] || datagram[2] || datagram[3])
    return {NattDatagram::Kind::kEsp, datagram};
  return {NattDatagram::Kind::kIke, datagram.subspan(4)};
}

Expected<IkeSockets, std::string> IkeSockets::open(std::span<const IpAddress> listen, std::uint16_t ike_port,
                                                   std::uint16_t natt_port, int buffer_bytes,
                                                   std::vector<std::string>* warnings) {
  IkeSockets out;
  for (const auto& addr : listen) {
    for (bool natt : {false, true}) {
      Endpoint ep{addr, natt ? natt_port : ike_port};
      auto udp = UdpSocket::open(ep);
      if (!udp) return unexpected("cannot listen on " + ep.to_string() + ": " + udp.error().message());
      if (buffer_bytes > 0 && !udp->set_buffer_sizes(buffer_bytes) && warnings)
        warnings->push_back("socket buffers of " + udp->local_endpoint().to_string() + ": " +
                            udp->last_error()->message());
      out.sockets_.push_back({std::move(*udp), natt});
    }
  }
  return out;
}

IkeSockets::Socket* IkeSockets::for_source(const Endpoint& local) {
  Socket* fallback = nullptr;
  for (auto& s : sockets_) {
    const auto& ep = s.udp.local_endpoint();
    if (ep.port != local.port || ep.address.family() != local.address.family()) continue;
    if (ep.address == local.address) return &s;
    if (ep.address.is_unspecified()) fallback = &s;
  }
  return fallback;
}

bool IkeSockets::send_ike(const Endpoint& local, const Endpoint& remote, ByteView message) {
  Socket* s = for_source(local);
  if (!s) {
    error_ = "no socket to send from " + local.to_string();
    return false;
  }
  ByteView out = message;
  if (s->natt) {
    framed_.assign(kNonEspMarker, kNonEspMarker + 4);
    append(framed_, message);
    out = framed_;
  }
  if (s->udp.send(local, remote, out)) return true;
  error_ = s->udp.last_error() ? s->udp.last_error()->message() : "send failed";
  return false;
}

bool IkeSockets::send_raw(const Endpoint& local, const Endpoint& remote, ByteView datagram) {
  Socket* s = for_source(local);
  if (!s) {
    error_ = "no socket to send from " + local.to_string();
    return false;
  }
  if (s->udp.send(local, remote, datagram)) return true;
  error_ = s->udp.last_error() ? s->udp.last_error()->message() : "send failed";
  return false;
}

}  // namespace mobike::platform
