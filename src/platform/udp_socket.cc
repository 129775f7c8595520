#include "platform/udp_socket.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "platform/sockaddr.h"

namespace mobike::platform {
namespace {

bool set_int(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0;
}

SysError error_now(std::string context) { return SysError{errno, std::move(context)}; }

// Socket options shared by the IKE socket and the short-lived non-local sender.
bool apply_options(int fd, AddressFamily family, const UdpSocketOptions& o,
                   std::string* failed) {
  bool v6 = family == AddressFamily::kV6;
  auto want = [&](bool ok, const char* what) {
    if (!ok) *failed = what;
    return ok;
  };
  if (!want(set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1), "setsockopt SO_REUSEADDR")) return false;
  if (o.reuse_port && !want(set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1), "setsockopt SO_REUSEPORT"))
    return false;
  if (v6 && !want(set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1), "setsockopt IPV6_V6ONLY"))
    return false;
  // IP_FREEBIND is an inet-level flag that IPv6 sockets honour as well.
  if (o.freebind && !want(set_int(fd, IPPROTO_IP, IP_FREEBIND, 1), "setsockopt IP_FREEBIND"))
    return false;
  if (o.transparent) {
    bool ok = v6 ? set_int(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
                 : set_int(fd, IPPROTO_IP, IP_TRANSPARENT, 1);
    if (!want(ok, v6 ? "setsockopt IPV6_TRANSPARENT" : "setsockopt IP_TRANSPARENT"))
      return false;
  }
  return true;
}

Expected<UniqueFd, SysError> open_bound(const Endpoint& local, const UdpSocketOptions& o) {
  UniqueFd fd(::socket(to_af(local.address.family()),
                       SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd) return unexpected(error_now("socket"));
  std::string failed;
  if (!apply_options(fd.get(), local.address.family(), o, &failed))
    return unexpected(error_now(failed));
  SockAddr sa = to_sockaddr(local);
  if (::bind(fd.get(), sa.get(), sa.length) != 0)
    return unexpected(error_now("bind " + local.to_string()));
  return fd;
}

}  // namespace

Expected<UdpSocket, SysError> UdpSocket::open(const Endpoint& local,
                                              const UdpSocketOptions& options) {
  auto fd = open_bound(local, options);
  if (!fd) return unexpected(fd.error());
  bool v6 = local.address.is_v6();
  bool ok = v6 ? set_int(fd->get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
               : set_int(fd->get(), IPPROTO_IP, IP_PKTINFO, 1);
  if (!ok) return unexpected(error_now(v6 ? "setsockopt IPV6_RECVPKTINFO" : "setsockopt IP_PKTINFO"));

  SockAddr bound;
  bound.length = sizeof bound.storage;
  if (::getsockname(fd->get(), bound.get(), &bound.length) != 0)
    return unexpected(error_now("getsockname"));
  auto ep = from_sockaddr(bound.get(), bound.length);
  if (!ep) return unexpected(SysError{EAFNOSUPPORT, "getsockname"});

  UdpSocket s;
  s.fd_ = std::move(*fd);
  s.local_ = *ep;
  return s;
}

Expected<UdpSocket, SysError> UdpSocket::open_reuse_port(const Endpoint& local) {
  UdpSocketOptions o;
  o.reuse_port = true;
  return open(local, o);
}

bool UdpSocket::fail(int code, const char* context) {
  last_error_ = SysError{code, context};
  return false;
}

std::optional<UdpSocket::Received> UdpSocket::receive(std::span<std::uint8_t> buf) {
  last_error_.reset();
  if (!fd_) {
    fail(EBADF, "recvmsg");
    return std::nullopt;
  }
  sockaddr_storage remote{};
  iovec iov{buf.data(), buf.size()};
  // Room for either pktinfo plus anything else the kernel might add.
  alignas(cmsghdr) std::uint8_t control[CMSG_SPACE(sizeof(in6_pktinfo)) + 64];
  msghdr msg{};
  msg.msg_name = &remote;
  msg.msg_namelen = sizeof remote;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;

  ssize_t n;
  do {
    n = ::recvmsg(fd_.get(), &msg, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail(errno, "recvmsg");
    return std::nullopt;
  }

  auto peer = from_sockaddr(reinterpret_cast<const sockaddr*>(&remote), msg.msg_namelen);
  if (!peer) {
    fail(EAFNOSUPPORT, "recvmsg: unexpected source address family");
    return std::nullopt;
  }
  Received r;
  r.size = static_cast<std::size_t>(n);
  r.remote = *peer;
  r.truncated = (msg.msg_flags & MSG_TRUNC) != 0;
  bool have_local = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(in_pktinfo))) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      // ipi_addr is the header's destination; ipi_spec_dst would be the address the
      // kernel picks for replies, which differs for broadcasts and secondary routes.
      r.local.address = *IpAddress::from_bytes(
          ByteView(reinterpret_cast<const std::uint8_t*>(&pi.ipi_addr), 4));
      have_local = true;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
               c->cmsg_len >= CMSG_LEN(sizeof(in6_pktinfo))) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      r.local.address = *IpAddress::from_bytes(
          ByteView(reinterpret_cast<const std::uint8_t*>(&pi.ipi6_addr), 16));
      have_local = true;
    }
  }
  if (!have_local) {
    // Only when control data was cut off; fall back to the bound address.
    r.local.address = local_.address;
  }
  r.local.port = local_.port;
  return r;
}

namespace {

constexpr std::size_t kControlSize = CMSG_SPACE(sizeof(in6_pktinfo)) + 64;

// Puts the source address into `control` as IP_PKTINFO / IPV6_PKTINFO; returns the
// control length (0 when the kernel is to choose).
std::size_t put_source(const IpAddress& from, AddressFamily family, std::uint8_t* control) {
  if (from.is_unspecified()) return 0;
  cmsghdr* c = reinterpret_cast<cmsghdr*>(control);
  if (family == AddressFamily::kV4) {
    in_pktinfo pi{};
    // ipi_spec_dst is the source address for sends; ifindex 0 lets routing choose.
    std::memcpy(&pi.ipi_spec_dst, from.bytes().data(), 4);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
  }
  in6_pktinfo pi{};
  std::memcpy(&pi.ipi6_addr, from.bytes().data(), 16);
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof pi);
  std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
  return CMSG_SPACE(sizeof pi);
}

// The destination address of a received datagram, from its pktinfo.
std::optional<IpAddress> local_of(msghdr& msg) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(in_pktinfo))) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      return IpAddress::from_bytes(ByteView(reinterpret_cast<const std::uint8_t*>(&pi.ipi_addr), 4));
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(in6_pktinfo))) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      return IpAddress::from_bytes(ByteView(reinterpret_cast<const std::uint8_t*>(&pi.ipi6_addr), 16));
    }
  }
  return std::nullopt;
}

}  // namespace

std::size_t UdpSocket::send_batch(std::span<const Outgoing> items) {
  last_error_.reset();
  std::size_t done = 0, ok = 0;
  while (done < items.size()) {
    std::size_t n = std::min(items.size() - done, kMaxBatch);
    mmsghdr msgs[kMaxBatch];
    iovec iovs[kMaxBatch];
    SockAddr dsts[kMaxBatch];
    alignas(cmsghdr) std::uint8_t controls[kMaxBatch][CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(std::uint16_t))];
    for (std::size_t i = 0; i < n; ++i) {
      const auto& it = items[done + i];
      dsts[i] = to_sockaddr(it.to);
      iovs[i] = {const_cast<std::uint8_t*>(it.data.data()), it.data.size()};
      msghdr& m = msgs[i].msg_hdr;
      m = msghdr{};
      m.msg_name = dsts[i].get();
      m.msg_namelen = dsts[i].length;
      m.msg_iov = &iovs[i];
      m.msg_iovlen = 1;
      std::size_t cl = put_source(it.from.address, family(), controls[i]);
      if (it.segment_size) {
        cmsghdr* c = reinterpret_cast<cmsghdr*>(controls[i] + cl);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
        std::memcpy(CMSG_DATA(c), &it.segment_size, sizeof it.segment_size);
        cl += CMSG_SPACE(sizeof(std::uint16_t));
      }
      m.msg_control = cl ? controls[i] : nullptr;
      m.msg_controllen = cl;
      msgs[i].msg_len = 0;
    }
    int sent;
    do {
      sent = ::sendmmsg(fd_.get(), msgs, static_cast<unsigned>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent <= 0) {
      // The first datagram failed: report it and go on with the next, as a lost packet.
      fail(sent < 0 ? errno : EIO, "sendmmsg");
      ++done;
      continue;
    }
    // A partial send leaves the rest for the next round.
    done += static_cast<std::size_t>(sent);
    ok += static_cast<std::size_t>(sent);
  }
  return ok;
}

std::size_t UdpSocket::receive_batch(std::span<std::span<std::uint8_t>> bufs, std::span<Received> out) {
  last_error_.reset();
  std::size_t n = std::min({bufs.size(), out.size(), kMaxBatch});
  if (!fd_ || n == 0) return 0;
  mmsghdr msgs[kMaxBatch];
  iovec iovs[kMaxBatch];
  sockaddr_storage remotes[kMaxBatch];
  alignas(cmsghdr) std::uint8_t controls[kMaxBatch][kControlSize];
  for (std::size_t i = 0; i < n; ++i) {
    iovs[i] = {bufs[i].data(), bufs[i].size()};
    msghdr& m = msgs[i].msg_hdr;
    m = msghdr{};
    m.msg_name = &remotes[i];
    m.msg_namelen = sizeof remotes[i];
    m.msg_iov = &iovs[i];
    m.msg_iovlen = 1;
    m.msg_control = controls[i];
    m.msg_controllen = kControlSize;
  }
  int got;
  do {
    got = ::recvmmsg(fd_.get(), msgs, static_cast<unsigned>(n), MSG_DONTWAIT, nullptr);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail(errno, "recvmmsg");
    return 0;
  }
  std::size_t k = 0;
  for (int i = 0; i < got; ++i) {
    msghdr& m = msgs[i].msg_hdr;
    auto peer = from_sockaddr(reinterpret_cast<const sockaddr*>(&remotes[i]), m.msg_namelen);
    if (!peer) continue;
    Received r;
    r.size = msgs[i].msg_len;
    r.remote = *peer;
    r.truncated = (m.msg_flags & MSG_TRUNC) != 0;
    r.local = Endpoint{local_of(m).value_or(local_.address), local_.port};
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int seg;
        std::memcpy(&seg, CMSG_DATA(c), sizeof seg);
        if (seg > 0 && static_cast<std::size_t>(seg) < r.size) r.segment_size = static_cast<std::uint16_t>(seg);
      }
    // Keep buffers and results paired: move this buffer down if an entry was skipped.
    if (k != static_cast<std::size_t>(i)) std::copy_n(bufs[static_cast<std::size_t>(i)].data(), r.size, bufs[k].data());
    out[k++] = r;
  }
  return k;
}

bool UdpSocket::enable_gro() {
  int on = 1;
  if (::setsockopt(fd_.get(), SOL_UDP, UDP_GRO, &on, sizeof on) != 0) return fail(errno, "setsockopt UDP_GRO");
  return true;
}

bool UdpSocket::set_buffer_sizes(int bytes) {
  last_error_.reset();
  for (int opt : {SO_RCVBUFFORCE, SO_SNDBUFFORCE}) {
    if (::setsockopt(fd_.get(), SOL_SOCKET, opt, &bytes, sizeof bytes) == 0) continue;
    // Without CAP_NET_ADMIN: what net.core.[rw]mem_max allows.
    int plain = opt == SO_RCVBUFFORCE ? SO_RCVBUF : SO_SNDBUF;
    if (::setsockopt(fd_.get(), SOL_SOCKET, plain, &bytes, sizeof bytes) != 0) return fail(errno, "setsockopt buffer");
  }
  return true;
}

bool UdpSocket::send(const Endpoint& from, const Endpoint& to, ByteView data) {
  last_error_.reset();
  if (!fd_) return fail(EBADF, "sendmsg");
  if (to.address.family() != family() ||
      (!from.address.is_unspecified() && from.address.family() != family()))
    return fail(EAFNOSUPPORT, "sendmsg: address family differs from the socket's");
  if (from.port != 0 && from.port != local_.port)
    return fail(EINVAL, "sendmsg: source port differs from the socket's port");

  SockAddr dst = to_sockaddr(to);
  iovec iov{const_cast<std::uint8_t*>(data.data()), data.size()};
  alignas(cmsghdr) std::uint8_t control[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(dst.get());
  msg.msg_namelen = dst.length;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!from.address.is_unspecified()) {
    msg.msg_control = control;
    cmsghdr* c = reinterpret_cast<cmsghdr*>(control);
    if (family() == AddressFamily::kV4) {
      in_pktinfo pi{};
      // ipi_spec_dst is the source address for sends; ifindex 0 lets routing choose.
      std::memcpy(&pi.ipi_spec_dst, from.address.bytes().data(), 4);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
      msg.msg_controllen = CMSG_SPACE(sizeof pi);
    } else {
      in6_pktinfo pi{};
      std::memcpy(&pi.ipi6_addr, from.address.bytes().data(), 16);
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
      msg.msg_controllen = CMSG_SPACE(sizeof pi);
    }
  }

  ssize_t n;
  do {
    n = ::sendmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return true;
  int err = errno;
  // The kernel's answer to a pktinfo source it does not own differs by family and
  // version: ENETUNREACH (IPv4 route lookup, 6.x), EINVAL (older IPv4, IPv6's
  // control-message check), EADDRNOTAVAIL. A destination that really is unreachable
  // fails again on the fallback, which then reports the same error.
  if ((err == EINVAL || err == EADDRNOTAVAIL || err == ENETUNREACH) &&
      !from.address.is_unspecified())
    return send_from_nonlocal(from, to, data);
  return fail(err, "sendmsg");
}

bool UdpSocket::send_from_nonlocal(const Endpoint& from, const Endpoint& to, ByteView data) {
  last_error_.reset();
  if (from.address.family() != to.address.family())
    return fail(EAFNOSUPPORT, "send_from_nonlocal: address families differ");
  Endpoint src{from.address, from.port != 0 ? from.port : local_.port};
  UdpSocketOptions o;
  o.freebind = true;
  o.transparent = true;
  auto fd = open_bound(src, o);
  if (!fd) {
    last_error_ = SysError{fd.error().code, "send_from_nonlocal: " + fd.error().context};
    return false;
  }
  SockAddr dst = to_sockaddr(to);
  ssize_t n;
  do {
    n = ::sendto(fd->get(), data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL, dst.get(),
                 dst.length);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail(errno, "send_from_nonlocal: sendto");
  ++nonlocal_sends_;
  return true;
}

}  // namespace mobike::platform
